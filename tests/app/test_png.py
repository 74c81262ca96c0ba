"""The fast PNG writer: lossless for every shape, with or without bands compressed before the hole was filled."""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from app.api.png import adler32_combine, compress_known, encode_png


def _noise(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _hole(height: int, width: int, top: int, bottom: int) -> np.ndarray:
    hole = np.zeros((height, width), dtype=bool)
    hole[top:bottom, width // 3 : 2 * width // 3 + 1] = True
    return hole


@pytest.mark.parametrize("size", [(1, 1), (3, 7), (64, 64), (37, 100), (200, 31)])
def test_pillow_and_opencv_read_back_the_pixels(size: tuple[int, int]) -> None:
    image = _noise(*size)
    data = encode_png(image)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), image)
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB), image)


@pytest.mark.parametrize(("top", "bottom"), [(0, 5), (10, 20), (30, 40), (0, 40)])
def test_bands_compressed_from_the_upload_join_the_filled_rows(top: int, bottom: int) -> None:
    upload, hole = _noise(40, 50), _hole(40, 50, top, bottom)
    answer = upload.copy()
    answer[hole] = _noise(40, 50, seed=1)[hole]  # the fill: only hole pixels change
    known = compress_known(upload, hole)
    assert all(band.stop <= top or band.start >= bottom for band in known)
    data = encode_png(answer, known=known)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), answer)
    assert all(band.deflated in data for band in known), "the early bands are used as they are"
    # zlib checks the stream's Adler-32 (Pillow's decoder does not): the bands' checksums combined are right
    assert len(zlib.decompress(_idat(data))) == 40 * (1 + 50 * 3)


def _idat(data: bytes) -> bytes:
    """The zlib stream of a PNG: its IDAT chunks' payloads joined."""
    position, stream = 8, b""
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        if data[position + 4 : position + 8] == b"IDAT":
            stream += data[position + 8 : position + 8 + length]
        position += 12 + length
    return stream


@pytest.mark.parametrize("lengths", [(0, 0), (1, 0), (0, 5), (3, 7), (5552, 5553), (70000, 131071), (200000, 1)])
def test_adler32_combine_is_the_checksum_of_the_joined_bytes(lengths: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(lengths))
    first, second = (rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in lengths)
    combined = adler32_combine(zlib.adler32(first), zlib.adler32(second), len(second))
    assert combined == zlib.adler32(first + second)


def test_no_hole_leaves_nothing_to_compress_early() -> None:
    assert compress_known(_noise(8, 8), np.zeros((8, 8), dtype=bool)) == []


def test_the_icc_profile_travels() -> None:
    data = encode_png(_noise(4, 4), icc_profile=b"a profile")
    assert Image.open(io.BytesIO(data)).info["icc_profile"] == b"a profile"
