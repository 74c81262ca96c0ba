"""Uploaded bytes to (image, hole) arrays and back: the one place the mask convention is converted.

Inside the service a hole is an (H, W) bool array, True = missing. Uploads
mark it either with a separate mask (white = fill) or with the image's alpha
channel (any transparency = fill). Pillow, OpenCV and NumPy: the HTTP routes and
the offline CLI share it, and it runs in a thread pool, never on the event loop.

Files are decoded the way a photo viewer shows them, so a mask drawn over the
photo in a viewer lines up with it:
- EXIF orientation is applied (an EXIF block that cannot be read is a 422, since
  which way is up is then unknown);
- a multi-picture JPEG (MPO, phones' depth and stereo shots) is its first picture;
- RGB pixels tagged with an ICC profile are what the model sees in sRGB, and the
  answer keeps the upload's pixels and profile (`app.api.colour`); CMYK is converted
  to sRGB through its own profile (Pillow's plain formula when it has none);
- 16-bit PNGs are rounded to 8 bits (v * 255 / 65535), not truncated;
- only a real alpha channel (RGBA, LA, PA) marks a hole: a palette's transparent
  index or a colour key (PNG tRNS) is a display hint that would turn every pixel
  of one colour into hole, so those pixels count as known.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import torch
from PIL import Image, ImageCms

from app.api.colour import from_srgb, read_profile, to_srgb
from app.api.png import Band, encode_png
from app.api.png_read import is_plain_png, read_plain_png
from app.engine.compose import FinishPlan
from app.engine.restore import Restoration
from training.data import to_signed, to_uint8

OutputFormat = Literal["png", "jpeg", "webp"]
MEDIA_TYPES: dict[str, str] = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
_ACCEPTED = {"PNG", "JPEG", "WEBP", "MPO"}
_ALPHA_MODES = {"RGBA", "LA", "PA"}
_MODES = {"1", "L", "P", "RGB", "CMYK", "I", "I;16", "I;16B", "I;16L"} | _ALPHA_MODES
_ORIENTATION_TAG = 0x0112
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


class UploadError(ValueError):
    """An upload that cannot be used; `reason` names the problem type, the message says what to fix."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class Upload:
    """A decoded upload: its upright pixels in its own colour space, the hole, and what the model sees."""

    image: np.ndarray  # (H, W, 3) uint8, upright, in the space of `icc_profile`: what known pixels come back as
    hole: np.ndarray  # (H, W) bool, True = missing
    icc_profile: bytes | None = None  # the upload's RGB profile, re-attached on output; None = sRGB
    srgb: np.ndarray | None = None  # `image` converted to sRGB where its profile is another

    @property
    def model_image(self) -> np.ndarray:
        """What the model sees: sRGB pixels, as it was trained on."""
        return self.image if self.srgb is None else self.srgb


@dataclass(frozen=True)
class _Decoded:
    picture: Image.Image  # upright; mode L, RGB, RGBA, LA, PA, P, 1 or CMYK, 8 bits per channel
    icc_profile: bytes | None
    # `picture`'s pixels as the fast PNG reader made them (None: Pillow's alone), so that they are not
    # copied back out of Pillow (0.7 ms of a 1280x886 RGB photo)
    array: np.ndarray | None = None


def _orientation(picture: Image.Image, part: str, *, read_at_open: bool = False) -> int:
    """`read_at_open`: all the metadata was read with the header (a plain PNG's), so none is loaded with pixels
    that Pillow did not decode (a PNG's own `getexif` loads them to reach an eXIf chunk after the pixels)."""
    try:
        with warnings.catch_warnings():  # a damaged tag is skipped with a warning, as a viewer skips it
            warnings.simplefilter("ignore")
            exif = Image.Image.getexif(picture) if read_at_open else picture.getexif()
            value = exif.get(_ORIENTATION_TAG, 1)
    except Exception:  # Pillow raises many types on a corrupt EXIF block (struct.error, SyntaxError, ...)
        raise UploadError(
            "bad-metadata",
            f"the {part}'s EXIF block cannot be read, so its orientation is unknown: "
            "re-save the photo or strip its metadata (e.g. exiftool -all= photo.jpg)",
        ) from None
    return value if isinstance(value, int) else 1


def _is_16_bit_png(data: bytes, picture: Image.Image) -> bool:
    return picture.format == "PNG" and len(data) > 24 and data[24] == 16


def _decode_16_bit_png(data: bytes, part: str) -> Image.Image:
    """OpenCV keeps the 16 bits Pillow truncates; rounded here to the nearest 8-bit level."""
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None or pixels.dtype != np.uint16:
        raise UploadError("truncated-image", f"the {part} is truncated or corrupt: upload the complete file")
    rounded = ((pixels.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if rounded.ndim == 2:
        return Image.fromarray(rounded, "L")
    if rounded.shape[2] == 4:
        return Image.fromarray(cv2.cvtColor(rounded, cv2.COLOR_BGRA2RGBA), "RGBA")
    return Image.fromarray(cv2.cvtColor(rounded, cv2.COLOR_BGR2RGB), "RGB")


def declared_pixels(data: bytes | None) -> int:
    """Width x height from a file's header, without decoding its pixels; 0 for what is not an image (the decode
    refuses it with its own problem)."""
    if not data:
        return 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            width, height = Image.open(io.BytesIO(data)).size
    except Exception:  # garbage, or a bomb Pillow refuses outright: decode_upload names it
        return 0
    return int(width) * int(height)


def _open(data: bytes, part: str, max_pixels: int) -> _Decoded:
    """Decode a still PNG/JPEG/WebP upright, refusing oversized or truncated files before they cost memory."""
    if not data:
        raise UploadError("not-an-image", f"the {part} part is empty: attach the file's bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            picture = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise UploadError(
            "image-too-large", f"the {part} declares too many pixels: send at most {max_pixels:,} pixels"
        ) from None
    except Exception:  # Pillow's parsers raise OSError, SyntaxError, struct.error, ... on garbage
        raise UploadError("not-an-image", f"the {part} is not a PNG, JPEG or WebP image") from None
    if picture.format not in _ACCEPTED:
        raise UploadError("not-an-image", f"the {part} is {picture.format}: convert it to PNG, JPEG or WebP")
    width, height = picture.size
    # checked from the header, before decoding: a small file can declare a huge canvas (a decompression bomb)
    if width * height > max_pixels:
        raise UploadError(
            "image-too-large",
            f"the {part} is {width}x{height} = {width * height:,} pixels: send at most {max_pixels:,} pixels",
        )
    if width == 0 or height == 0:
        raise UploadError("not-an-image", f"the {part} is {width}x{height}: send an image with pixels")
    if picture.mode not in _MODES:
        raise UploadError("not-an-image", f"the {part} has {picture.mode} pixels: save it as 8-bit RGB or grey")
    # an MPO's later pictures are the same scene (depth map, other eye): the first one is the photo
    if picture.format != "MPO" and getattr(picture, "n_frames", 1) > 1:
        raise UploadError("animated-image", f"the {part} is animated: send a single still frame")
    fast = read_plain_png(data, picture) if is_plain_png(data, picture) else None
    try:
        if fast is not None:
            pixels = Image.fromarray(fast)
        else:
            pixels = _decode_16_bit_png(data, part) if _is_16_bit_png(data, picture) else picture
            # loads the PNG (its eXIf chunk may follow the pixels), where Pillow keeps what it read
            picture.load()
    except UploadError:
        raise
    except Image.DecompressionBombError:
        raise UploadError("image-too-large", f"the {part} is too large: send at most {max_pixels:,} pixels") from None
    except Exception:
        raise UploadError("truncated-image", f"the {part} is truncated or corrupt: upload the complete file") from None
    orientation = _orientation(picture, part, read_at_open=fast is not None)
    icc_profile = picture.info.get("icc_profile")
    if pixels.mode.startswith("I"):  # 16-bit grey that was not a PNG's: there is no other, but never guess
        raise UploadError("not-an-image", f"the {part} has {pixels.mode} pixels: save it with 8 bits per channel")
    if orientation in _TRANSPOSE:
        pixels, fast = pixels.transpose(_TRANSPOSE[orientation]), None
    return _Decoded(pixels, icc_profile if isinstance(icc_profile, bytes) else None, fast)


def _rgb(decoded: _Decoded) -> tuple[np.ndarray, np.ndarray | None, bytes | None, np.ndarray | None]:
    """(pixels as sent, alpha, their RGB profile, their sRGB view) of a decoded image."""
    picture = decoded.picture
    if decoded.array is not None and picture.mode == "RGB":  # RGBA: Pillow drops the alpha faster than NumPy
        array = decoded.array
        array.flags.writeable = False  # as read-only as the arrays NumPy makes of Pillow's pixels
        return _with_srgb(array, None, picture, decoded.icc_profile, read_profile(decoded.icc_profile, "RGB"))
    alpha = np.asarray(picture.getchannel("A")) if picture.mode in ("RGBA", "LA") else None
    if picture.mode == "PA":
        alpha = np.asarray(picture.convert("RGBA"))[..., 3]
    if picture.mode == "CMYK":  # no CMYK output format: the answer is in sRGB
        profile = read_profile(decoded.icc_profile, "CMYK")
        converted = to_srgb(picture, profile) if profile is not None else picture.convert("RGB")
        return np.asarray(converted), alpha, None, None
    # palette transparency and colour keys are dropped here on purpose: only a real alpha channel marks a hole
    if picture.mode == "RGB":
        rgb = picture
    elif picture.mode == "P":
        rgb = picture.convert("RGBA").convert("RGB")
    else:
        rgb = picture.convert("RGB")
    profile = read_profile(decoded.icc_profile, "RGB") if picture.mode not in ("L", "LA", "1") else None
    return _with_srgb(np.asarray(rgb), alpha, rgb, decoded.icc_profile, profile)


def _with_srgb(
    image: np.ndarray,
    alpha: np.ndarray | None,
    rgb: Image.Image,
    icc_profile: bytes | None,
    profile: ImageCms.ImageCmsProfile | None,
) -> tuple[np.ndarray, np.ndarray | None, bytes | None, np.ndarray | None]:
    """The pixels with their sRGB view where `profile` (the RGB profile `icc_profile` holds) is given."""
    if profile is None:
        return image, alpha, None, None
    try:
        srgb = np.asarray(to_srgb(rgb, profile))
    except ImageCms.PyCMSError:  # a profile LittleCMS reads but cannot transform with: ignored, as a viewer does
        return image, alpha, None, None
    assert icc_profile is not None
    return image, alpha, icc_profile, srgb


def _mask_hole(picture: Image.Image) -> np.ndarray:
    """White = fill. A mask with alpha counts only its opaque white (strokes painted on a transparent sheet)."""
    if picture.mode in _ALPHA_MODES:
        rgba = picture.convert("RGBA")
        luma = np.asarray(rgba.convert("L"), dtype=np.uint16)
        alpha = np.asarray(rgba, dtype=np.uint16)[..., 3]
        return luma * alpha >= 128 * 255
    if picture.mode == "P":
        picture = picture.convert("RGBA").convert("RGB")
    return np.asarray(picture.convert("L")) >= 128


def decode_upload(image_data: bytes, mask_data: bytes | None, max_pixels: int, *, hole_required: bool = True) -> Upload:
    """The upload's RGB pixels and its hole, from a separate mask if given, else from the image's alpha.

    With neither, a 422 (missing-mask), or an empty hole where `hole_required` is False (locating faces).
    """
    decoded = _open(image_data, "image", max_pixels)
    image, alpha, icc_profile, srgb = _rgb(decoded)
    height, width = image.shape[:2]
    if mask_data is not None:
        mask = _open(mask_data, "mask", max_pixels).picture
        if mask.size != (width, height):
            raise UploadError(
                "mask-size-mismatch",
                f"the mask is {mask.width}x{mask.height} but the image is {width}x{height} "
                "(both as shown upright): send a mask of the image's size",
            )
        hole = _mask_hole(mask)
    elif alpha is not None:
        hole = alpha < 255
    elif not hole_required:
        hole = np.zeros((height, width), dtype=bool)
    else:
        raise UploadError(
            "missing-mask",
            "no mask: attach a `mask` file (white = fill) or upload a PNG/WebP whose alpha channel marks the hole "
            "(a palette's transparent colour does not count)",
        )
    return Upload(
        image=np.ascontiguousarray(image),
        hole=hole,
        icc_profile=icc_profile,
        srgb=np.ascontiguousarray(srgb) if srgb is not None else None,
    )


def in_upload_space(upload: Upload, generated: torch.Tensor) -> torch.Tensor:
    """The model's sRGB fill (C, R, R) in [-1, 1], converted into the upload's own colour space."""
    if upload.icc_profile is None:
        return generated
    pixels = to_uint8(generated.cpu()).expand(3, -1, -1).permute(1, 2, 0).contiguous().numpy()
    converted = torch.from_numpy(from_srgb(pixels, upload.icc_profile).copy())
    return to_signed(converted.permute(2, 0, 1))


def begin_restoration(upload: Upload, resolution: int) -> Restoration:
    """The upload on its way through a model: the model sees its sRGB pixels, its own come back."""
    return Restoration.begin(upload.image, upload.hole, resolution, upload.model_image)


def restored_file(
    upload: Upload,
    restoration: Restoration,
    generated: torch.Tensor,
    plan: FinishPlan,
    output_format: OutputFormat,
    known: list[Band] | None = None,
) -> bytes:
    """The model's answer in the upload's colours, finished into the photo by `plan` and encoded."""
    restored = restoration.finish(in_upload_space(upload, generated), plan)
    return encode_image(restored, output_format, upload.icc_profile, known)


def encode_image(
    image: np.ndarray, output_format: OutputFormat, icc_profile: bytes | None = None, known: list[Band] | None = None
) -> bytes:
    """PNG and WebP are lossless, so known pixels survive byte for byte; JPEG is for callers who ask for it.

    `icc_profile` is the upload's own, so the answer is shown in the colours it was sent in. `known`: PNG bands
    of the upload's rows the hole does not touch, compressed while the search ran (`app.api.png`).
    """
    if output_format == "png":
        return encode_png(image, icc_profile, known)
    buffer = io.BytesIO()
    picture = Image.fromarray(image)
    options = {"icc_profile": icc_profile} if icc_profile else {}
    if output_format == "webp":
        picture.save(buffer, format="WEBP", lossless=True, **options)
    else:
        picture.save(buffer, format="JPEG", quality=95, **options)
    return buffer.getvalue()
