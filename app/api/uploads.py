"""Uploaded bytes to (image, hole) arrays and back: the one place the mask convention is converted.

Inside the service a hole is an (H, W) bool array, True = missing. Uploads
mark it either with a separate mask (white = fill) or with the image's alpha
channel (any transparency = fill). Plain Pillow and NumPy: the HTTP routes and
the offline CLI share it, and it runs in a thread pool, never on the event loop.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

OutputFormat = Literal["png", "jpeg", "webp"]
MEDIA_TYPES: dict[str, str] = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
_ACCEPTED = {"PNG", "JPEG", "WEBP"}


class UploadError(ValueError):
    """An upload that cannot be used; `reason` names the problem type, the message says what to fix."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class Upload:
    """A decoded upload: RGB pixels exactly as sent, and the hole to fill."""

    image: np.ndarray  # (H, W, 3) uint8
    hole: np.ndarray  # (H, W) bool, True = missing


def _open(data: bytes, part: str, max_pixels: int) -> Image.Image:
    """Decode a still PNG/JPEG/WebP, refusing oversized or truncated files before they cost memory."""
    if not data:
        raise UploadError("not-an-image", f"the {part} part is empty: attach the file's bytes")
    try:
        picture = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise UploadError(
            "image-too-large", f"the {part} declares too many pixels: send at most {max_pixels:,} pixels"
        ) from None
    except (UnidentifiedImageError, OSError):
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
    if picture.mode.startswith(("I", "F")):  # 16-bit or float: converting to RGB would clip, not scale
        raise UploadError("not-an-image", f"the {part} has {picture.mode} pixels: save it with 8 bits per channel")
    if getattr(picture, "n_frames", 1) > 1:
        raise UploadError("animated-image", f"the {part} is animated: send a single still frame")
    try:
        picture.load()
    except Image.DecompressionBombError:
        raise UploadError("image-too-large", f"the {part} is too large: send at most {max_pixels:,} pixels") from None
    except (OSError, SyntaxError, ValueError):
        raise UploadError("truncated-image", f"the {part} is truncated or corrupt: upload the complete file") from None
    # pixels as a viewer shows them, so a mask drawn over a phone photo lines up with it
    return ImageOps.exif_transpose(picture)


def _has_alpha(picture: Image.Image) -> bool:
    return picture.mode in ("RGBA", "LA", "PA") or "transparency" in picture.info


def _mask_hole(picture: Image.Image) -> np.ndarray:
    """White = fill. A mask with alpha counts only its opaque white (strokes painted on a transparent sheet)."""
    if _has_alpha(picture):
        rgba = picture.convert("RGBA")
        luma = np.asarray(rgba.convert("L"), dtype=np.uint16)
        alpha = np.asarray(rgba, dtype=np.uint16)[..., 3]
        return luma * alpha >= 128 * 255
    return np.asarray(picture.convert("L")) >= 128


def decode_upload(image_data: bytes, mask_data: bytes | None, max_pixels: int) -> Upload:
    """The upload's RGB pixels and its hole, from a separate mask if given, else from the image's alpha."""
    picture = _open(image_data, "image", max_pixels)
    alpha: np.ndarray | None = None
    if _has_alpha(picture):
        rgba = np.asarray(picture.convert("RGBA"))
        image, alpha = rgba[..., :3], rgba[..., 3]
    else:
        image = np.asarray(picture.convert("RGB"))
    if mask_data is not None:
        mask_picture = _open(mask_data, "mask", max_pixels)
        if mask_picture.size != picture.size:
            raise UploadError(
                "mask-size-mismatch",
                f"the mask is {mask_picture.width}x{mask_picture.height} but the image is "
                f"{picture.width}x{picture.height}: send a mask of the image's size",
            )
        hole = _mask_hole(mask_picture)
    elif alpha is not None:
        hole = alpha < 255
    else:
        raise UploadError(
            "missing-mask",
            "no mask: attach a `mask` file (white = fill) or upload a PNG/WebP whose transparent pixels mark the hole",
        )
    return Upload(image=np.ascontiguousarray(image), hole=hole)


def encode_image(image: np.ndarray, output_format: OutputFormat) -> bytes:
    """PNG and WebP are lossless, so known pixels survive byte for byte; JPEG is for callers who ask for it."""
    buffer = io.BytesIO()
    picture = Image.fromarray(image)
    if output_format == "png":
        picture.save(buffer, format="PNG")
    elif output_format == "webp":
        picture.save(buffer, format="WEBP", lossless=True)
    else:
        picture.save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()
