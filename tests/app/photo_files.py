"""Files as phones, scanners and paint programs write them, built from arrays for the upload tests and the corpus."""

from __future__ import annotations

import io
import struct

import cv2
import numpy as np
from PIL import Image

from tests.app.conftest import encode

ORIENTATION = 0x0112


def png16(pixels: np.ndarray) -> bytes:
    """A 16-bit PNG of (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA uint16 pixels."""
    if pixels.ndim == 3:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR if pixels.shape[2] == 3 else cv2.COLOR_RGBA2BGRA)
    ok, data = cv2.imencode(".png", pixels)
    assert ok
    return data.tobytes()


def with_orientation(pixels: np.ndarray, orientation: int, fmt: str = "JPEG") -> bytes:
    """`pixels` as stored by a camera held sideways: the file says how to turn them upright."""
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    options: dict[str, object] = {"JPEG": {"quality": 100, "subsampling": 0}, "WEBP": {"lossless": True}}.get(fmt, {})
    return encode(pixels, fmt, exif=exif.tobytes(), **options)


def with_raw_exif(pixels: np.ndarray, exif: bytes) -> bytes:
    """A JPEG whose APP1 segment holds `exif` (after the Exif header) byte for byte, however broken."""
    plain = encode(pixels, "JPEG", quality=95)
    segment = b"Exif\0\0" + exif
    app1 = b"\xff\xe1" + struct.pack(">H", len(segment) + 2) + segment
    return plain[:2] + app1 + plain[2:]


def mpo(*frames: np.ndarray) -> bytes:
    """A multi-picture JPEG, as phones save depth and stereo shots."""
    buffer = io.BytesIO()
    first, *rest = (Image.fromarray(frame) for frame in frames)
    first.save(buffer, format="MPO", save_all=True, append_images=rest, quality=95)
    return buffer.getvalue()


def animated(fmt: str, *frames: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    first, *rest = (Image.fromarray(frame) for frame in frames)
    options = {"lossless": True} if fmt == "WEBP" else {}
    first.save(buffer, format=fmt, save_all=True, append_images=rest, duration=100, **options)
    return buffer.getvalue()


def palette_with_transparent_index(pixels: np.ndarray, transparent: int = 0) -> tuple[bytes, np.ndarray]:
    """An indexed PNG whose palette index `transparent` is marked transparent; also its RGB pixels."""
    picture = Image.fromarray(pixels).quantize(16)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", transparency=transparent)
    return buffer.getvalue(), np.asarray(picture.convert("RGB"))


def colour_key(pixels: np.ndarray, key: tuple[int, int, int]) -> bytes:
    """An RGB PNG with a tRNS colour key: every pixel of colour `key` is displayed transparent."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", transparency=key)
    return buffer.getvalue()


def cmyk_jpeg(pixels: np.ndarray, icc_profile: bytes | None = None) -> tuple[bytes, Image.Image]:
    """A CMYK JPEG (as scanners and print workflows write) and the CMYK picture it holds."""
    picture = Image.fromarray(pixels).convert("CMYK")
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=100, **({"icc_profile": icc_profile} if icc_profile else {}))
    return buffer.getvalue(), Image.open(io.BytesIO(buffer.getvalue())).convert("CMYK")


def tagged(pixels: np.ndarray, icc_profile: bytes, fmt: str = "PNG") -> bytes:
    """Pixels tagged with an ICC profile (a wide-gamut photo)."""
    options = {"lossless": True} if fmt == "WEBP" else {}
    return encode(pixels, fmt, icc_profile=icc_profile, **options)
