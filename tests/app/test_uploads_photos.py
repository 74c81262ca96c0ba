"""Uploads as phones and scanners write them decode the way a photo viewer shows them."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from app.api.colour import from_srgb, read_profile, to_srgb
from app.api.uploads import UploadError, decode_upload, encode_image, in_upload_space
from tests.app.conftest import mask_png
from tests.app.icc import cmyk_profile, rgb_profile
from tests.app.photo_files import (
    animated,
    cmyk_jpeg,
    colour_key,
    mpo,
    palette_with_transparent_index,
    png16,
    tagged,
    with_orientation,
    with_raw_exif,
)

LIMIT = 10_000_000
# EXIF blocks found by fuzzing a camera's IFD0 that made Pillow's exif_transpose raise (struct.error, TypeError)
# while re-writing them: the service used to answer 500; they hold a readable orientation 6
EXIF_THAT_CRASHED_EXIF_TRANSPOSE = [
    bytes.fromhex(
        "4d4d002a00000008000401000002000000070000003e0112000300000001000600000132000200000014000000468769000400"
        "0000010000005a0000000043616d65a1610000323032303a30313a30312030303a30303a303000000000000000"
    ),
    bytes.fromhex(
        "4d4d002a000000080004010f0002000000070000003e011200030000000100060000011a000200000014000000468769000400"
        "0000010000fa5a0000000043616d6572610000323032303a30313a30312030303a30303a303000005700000000"
    ),
]


@pytest.fixture
def photo(faces: np.ndarray) -> np.ndarray:
    """A non-square real photo: 64 x 48, so a wrong rotation cannot pass."""
    return np.ascontiguousarray(faces[7][:, 8:56])


def _hole(height: int, width: int) -> np.ndarray:
    hole = np.zeros((height, width), bool)
    hole[height // 4 : height // 2, width // 4 : width // 2] = True
    return hole


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_exif_orientation_is_applied(photo: np.ndarray, orientation: int, fmt: str) -> None:
    data = with_orientation(photo, orientation, fmt)
    shown = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    assert (shown.shape[0] == photo.shape[0]) == (orientation < 5)
    upload = decode_upload(data, mask_png(_hole(*shown.shape[:2])), LIMIT)
    np.testing.assert_array_equal(upload.image, shown)


@pytest.mark.parametrize("exif", EXIF_THAT_CRASHED_EXIF_TRANSPOSE)
def test_damaged_exif_is_read_as_far_as_it_goes(photo: np.ndarray, exif: bytes) -> None:
    upload = decode_upload(with_raw_exif(photo, exif), mask_png(_hole(48, 64)), LIMIT)
    assert upload.image.shape == (48, 64, 3)  # its orientation 6 applied


def test_unreadable_exif_is_a_named_error(photo: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    """No fuzzed block made getexif itself raise; should a Pillow version do so, the answer is 422, not 500."""

    def broken(self: Image.Image) -> Image.Exif:
        raise SyntaxError("not a TIFF file")

    monkeypatch.setattr(Image.Image, "getexif", broken)
    with pytest.raises(UploadError) as caught:
        decode_upload(with_orientation(photo, 6), mask_png(_hole(48, 64)), LIMIT)
    assert caught.value.reason == "bad-metadata" and "exiftool" in str(caught.value)


def test_mpo_is_its_first_picture(photo: np.ndarray) -> None:
    data = mpo(photo, np.ascontiguousarray(photo[::-1]))
    upload = decode_upload(data, mask_png(_hole(64, 48)), LIMIT)
    first = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    np.testing.assert_array_equal(upload.image, first)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_animations_are_refused(photo: np.ndarray, fmt: str) -> None:
    with pytest.raises(UploadError) as caught:
        decode_upload(animated(fmt, photo, np.ascontiguousarray(photo[::-1])), mask_png(_hole(64, 48)), LIMIT)
    assert caught.value.reason == "animated-image"


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_16_bit_pngs_are_rounded_not_truncated(channels: int) -> None:
    rng = np.random.default_rng(channels)
    shape = (32, 40) if channels == 1 else (32, 40, channels)
    pixels = rng.integers(0, 65536, shape).astype(np.uint16)
    if channels == 4:
        pixels[..., 3] = np.where(_hole(32, 40), 0, 65535)
    mask = None if channels == 4 else mask_png(_hole(32, 40))
    upload = decode_upload(png16(pixels), mask, LIMIT)
    rounded = np.rint(pixels.astype(np.float64) / 257).astype(np.uint8)
    expected = np.repeat(rounded[..., None], 3, 2) if channels == 1 else rounded[..., :3]
    np.testing.assert_array_equal(upload.image, expected)
    np.testing.assert_array_equal(upload.hole, _hole(32, 40))
    assert (upload.image != (pixels[..., :3] >> 8 if channels > 1 else 0)).any() or channels == 1


def test_16_bit_grey_mask() -> None:
    hole = _hole(32, 40)
    upload = decode_upload(png16(np.zeros((32, 40, 3), np.uint16)), png16(np.where(hole, 65535, 0)), LIMIT)
    np.testing.assert_array_equal(upload.hole, hole)


def test_palette_transparency_is_not_a_hole(photo: np.ndarray) -> None:
    data, shown = palette_with_transparent_index(photo)
    with pytest.raises(UploadError) as caught:
        decode_upload(data, None, LIMIT)
    assert caught.value.reason == "missing-mask" and "palette" in str(caught.value)
    upload = decode_upload(data, mask_png(_hole(64, 48)), LIMIT)
    np.testing.assert_array_equal(upload.image, shown)
    np.testing.assert_array_equal(upload.hole, _hole(64, 48))


def test_colour_key_is_not_a_hole(photo: np.ndarray) -> None:
    key = tuple(int(v) for v in photo[0, 0])
    data = colour_key(photo, key)  # type: ignore[arg-type]
    upload = decode_upload(data, mask_png(_hole(64, 48)), LIMIT)
    np.testing.assert_array_equal(upload.image, photo)
    np.testing.assert_array_equal(upload.hole, _hole(64, 48))


def test_cmyk_without_a_profile_uses_pillows_formula(photo: np.ndarray) -> None:
    data, cmyk = cmyk_jpeg(photo)
    upload = decode_upload(data, mask_png(_hole(64, 48)), LIMIT)
    np.testing.assert_array_equal(upload.image, np.asarray(cmyk.convert("RGB")))
    assert upload.icc_profile is None


def test_cmyk_is_converted_through_its_profile(photo: np.ndarray) -> None:
    profile = cmyk_profile()
    data, cmyk = cmyk_jpeg(photo, profile)
    upload = decode_upload(data, mask_png(_hole(64, 48)), LIMIT)
    through_profile = np.asarray(to_srgb(cmyk, read_profile(profile, "CMYK")))  # type: ignore[arg-type]
    np.testing.assert_array_equal(upload.image, through_profile)
    assert np.abs(through_profile.astype(int) - np.asarray(cmyk.convert("RGB"))).mean() > 5  # not the plain formula
    assert upload.icc_profile is None  # the answer is sRGB: there is no CMYK PNG


def test_wide_gamut_keeps_its_pixels_and_profile_and_the_model_sees_srgb(photo: np.ndarray) -> None:
    profile = rgb_profile()
    upload = decode_upload(tagged(photo, profile), mask_png(_hole(64, 48)), LIMIT)
    np.testing.assert_array_equal(upload.image, photo)  # known pixels come back as sent
    assert upload.icc_profile == profile
    srgb = to_srgb(Image.fromarray(photo), read_profile(profile, "RGB"))  # type: ignore[arg-type]
    np.testing.assert_array_equal(upload.model_image, np.asarray(srgb))
    assert np.abs(upload.model_image.astype(int) - photo).mean() > 3  # Adobe RGB is not sRGB
    answer = Image.open(io.BytesIO(encode_image(upload.image, "png", upload.icc_profile)))
    assert answer.info["icc_profile"] == profile


def test_the_fill_goes_back_into_the_uploads_space(photo: np.ndarray) -> None:
    profile = rgb_profile()
    upload = decode_upload(tagged(photo, profile), mask_png(_hole(64, 48)), LIMIT)
    generated = torch.rand(3, 8, 8) * 2 - 1
    back = in_upload_space(upload, generated)
    as_srgb = generated.add(1).mul(127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    expected = from_srgb(np.ascontiguousarray(as_srgb), profile)
    np.testing.assert_allclose(back.add(1).mul(127.5).permute(1, 2, 0).numpy(), expected, atol=1e-3)
    plain = decode_upload(encode_image(photo, "png"), mask_png(_hole(64, 48)), LIMIT)
    assert in_upload_space(plain, generated) is generated and plain.model_image is plain.image


def test_unreadable_profiles_are_ignored_as_a_viewer_ignores_them(photo: np.ndarray) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        upload = decode_upload(tagged(photo, b"not a profile" * 20), mask_png(_hole(64, 48)), LIMIT)
    assert upload.icc_profile is None
    np.testing.assert_array_equal(upload.model_image, photo)


def test_grey_uploads_become_rgb(photo: np.ndarray) -> None:
    grey = np.asarray(Image.fromarray(photo).convert("L"))
    upload = decode_upload(encode_image(np.repeat(grey[..., None], 3, 2), "png"), mask_png(_hole(64, 48)), LIMIT)
    np.testing.assert_array_equal(upload.image[..., 0], grey)
