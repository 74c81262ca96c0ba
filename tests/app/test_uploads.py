"""The upload boundary: both mask conventions become one bool hole (True = missing), bad files a named error."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from app.api.uploads import UploadError, decode_upload, encode_image
from tests.app.conftest import center_hole, decode, encode, mask_png

LIMIT = 10_000_000


def test_white_mask_marks_the_hole(faces: np.ndarray) -> None:
    hole = center_hole(64, 64)
    upload = decode_upload(encode(faces[0]), mask_png(hole), LIMIT)
    np.testing.assert_array_equal(upload.image, faces[0])
    np.testing.assert_array_equal(upload.hole, hole)
    assert upload.hole.dtype == np.bool_


def test_grey_and_rgba_masks(faces: np.ndarray) -> None:
    hole = center_hole(64, 64)
    grey = np.where(hole, 200, 30).astype(np.uint8)
    np.testing.assert_array_equal(decode_upload(encode(faces[0]), encode(grey), LIMIT).hole, hole)
    # white strokes on a transparent sheet: only opaque white fills
    sheet = np.zeros((64, 64, 4), dtype=np.uint8)
    sheet[..., :3] = 255
    sheet[..., 3] = np.where(hole, 255, 0)
    np.testing.assert_array_equal(decode_upload(encode(faces[0]), encode(sheet), LIMIT).hole, hole)


def test_alpha_marks_the_hole(faces: np.ndarray) -> None:
    hole = center_hole(64, 64)
    alpha = np.where(hole, 0, 255).astype(np.uint8)
    alpha[0, 0] = 254  # any transparency counts as damage
    upload = decode_upload(encode(np.dstack([faces[1], alpha])), None, LIMIT)
    np.testing.assert_array_equal(upload.image, faces[1])
    np.testing.assert_array_equal(upload.hole, hole | (alpha < 255))


def test_mask_wins_over_alpha(faces: np.ndarray) -> None:
    opaque = np.dstack([faces[2], np.full((64, 64), 255, np.uint8)])
    hole = center_hole(64, 64)
    np.testing.assert_array_equal(decode_upload(encode(opaque), mask_png(hole), LIMIT).hole, hole)


def _animated(*frames: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    first, *rest = (Image.fromarray(frame) for frame in frames)
    first.save(buffer, format="PNG", save_all=True, append_images=rest)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("image", "mask", "reason"),
    [
        (b"", None, "not-an-image"),
        (b"GIF89a not really", None, "not-an-image"),
        ("truncated", None, "truncated-image"),
        ("face", "small-mask", "mask-size-mismatch"),
        ("face", None, "missing-mask"),
        ("huge", None, "image-too-large"),
        ("animated", None, "animated-image"),
    ],
)
def test_named_errors(faces: np.ndarray, image: object, mask: object, reason: str) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    images = {
        "truncated": encode(noise)[:3000],
        "face": encode(faces[3]),
        "huge": encode(np.zeros((4000, 3000), bool)),
        "animated": _animated(faces[5], faces[6]),
    }
    masks = {"small-mask": mask_png(center_hole(32, 32))}
    data = images.get(image, image) if isinstance(image, str) else image
    assert isinstance(data, bytes)
    with pytest.raises(UploadError) as caught:
        decode_upload(data, masks.get(mask) if isinstance(mask, str) else None, LIMIT)
    assert caught.value.reason == reason and str(caught.value)


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_lossless_encodings_round_trip(faces: np.ndarray, fmt: str) -> None:
    np.testing.assert_array_equal(decode(encode_image(faces[4], fmt)), faces[4])  # type: ignore[arg-type]
