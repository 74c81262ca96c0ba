"""The fast PNG reader gives Pillow's pixels, and leaves to Pillow every file it would read differently."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from app.api.png_read import is_plain_png, read_plain_png
from app.api.uploads import UploadError, decode_upload
from app.bench.outside import photo
from tests.app.conftest import encode, mask_png
from tests.app.photo_files import png16, with_orientation


def _opened(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def _saved(picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def _chunks(data: bytes) -> list[bytes]:
    """The file's chunks, whole (length, type, payload, CRC), after the signature."""
    chunks, position = [], 8
    while position < len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        chunks.append(data[position : position + 12 + length])
        position += 12 + length
    return chunks


def _exif_after_pixels(data: bytes) -> bytes:
    """The same file with its eXIf chunk moved behind the pixels, where PNG allows it too."""
    chunks = _chunks(data)
    exif = next(chunk for chunk in chunks if chunk[4:8] == b"eXIf")
    rest = [chunk for chunk in chunks if chunk is not exif]
    return data[:8] + b"".join(rest[:-1]) + exif + rest[-1]


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_plain_pngs_decode_to_pillows_pixels(faces: np.ndarray, channels: int) -> None:
    photo = faces[3]
    pixels = {1: photo[..., 0], 3: photo, 4: np.dstack([photo, photo[..., 1]])}[channels]
    data = encode(np.ascontiguousarray(pixels))
    picture = _opened(data)
    assert is_plain_png(data, picture)
    decoded = read_plain_png(data, picture)
    assert decoded is not None
    np.testing.assert_array_equal(decoded, np.asarray(picture))  # shapes too: (H, W) grey, (H, W, C) colour


def test_a_photo_in_many_idat_chunks_decodes_to_pillows_pixels() -> None:
    data = encode(photo(512, 384))
    assert sum(chunk[4:8] == b"IDAT" for chunk in _chunks(data)) > 1
    decoded = read_plain_png(data, _opened(data))
    assert decoded is not None
    np.testing.assert_array_equal(decoded, np.asarray(_opened(data)))


def test_rows_beyond_the_header_are_left_to_pillow(faces: np.ndarray) -> None:
    """A stream with a row more than IHDR declares: not ours to judge, so Pillow's answer stands."""
    data = encode(faces[3])
    ihdr = bytearray(_chunks(data)[0])
    ihdr[8 + 4 : 8 + 8] = (63).to_bytes(4, "big")  # height 63 of the stream's 64 rows
    ihdr[-4:] = zlib.crc32(bytes(ihdr[4:-4])).to_bytes(4, "big")
    shorter = data[:8] + bytes(ihdr) + data[8 + len(ihdr) :]
    assert read_plain_png(shorter, _opened(shorter)) is None
    upload = decode_upload(shorter, mask_png(np.ones((63, 64), bool)), 10**6)
    np.testing.assert_array_equal(upload.image, faces[3][:63])


def test_files_pillow_reads_differently_stay_pillows(faces: np.ndarray) -> None:
    photo = faces[3]
    others = {
        "grey and alpha": encode(np.dstack([photo[..., 0], photo[..., 1]])),
        "palette": _saved(Image.fromarray(photo).quantize(16)),
        "16-bit": png16(photo.astype(np.uint16) * 257),
        "eXIf after the pixels": _exif_after_pixels(with_orientation(photo, 6, "PNG")),
        "JPEG": encode(photo, "JPEG"),
    }
    for name, data in others.items():
        assert not is_plain_png(data, _opened(data)), name
    assert is_plain_png(with_orientation(photo, 6, "PNG"), _opened(with_orientation(photo, 6, "PNG")))


@pytest.mark.parametrize("move", [False, True], ids=["eXIf before the pixels", "eXIf after them"])
def test_orientation_is_read_wherever_the_exif_chunk_is(faces: np.ndarray, move: bool) -> None:
    photo = np.ascontiguousarray(faces[7][:, 8:56])  # 64 x 48: a wrong turn cannot pass
    data = with_orientation(photo, 6, "PNG")
    upload = decode_upload(_exif_after_pixels(data) if move else data, mask_png(np.ones((48, 64), bool)), 10**6)
    np.testing.assert_array_equal(upload.image, np.rot90(photo, -1))


def test_damaged_pixels_are_a_truncated_upload(faces: np.ndarray) -> None:
    data = encode(faces[3])
    idat = next(chunk for chunk in _chunks(data) if chunk[4:8] == b"IDAT")
    cut = data[: data.index(idat) + len(idat) // 2]
    assert read_plain_png(cut, _opened(cut)) is None  # Pillow decides, and refuses it
    with pytest.raises(UploadError) as caught:
        decode_upload(cut, mask_png(np.zeros((64, 64), bool)), 10**6)
    assert caught.value.reason == "truncated-image"


_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def _interlaced(pixels: np.ndarray) -> bytes:
    """An Adam7-interlaced 8-bit RGB PNG of (H, W, 3) pixels, unfiltered (neither Pillow nor OpenCV writes one)."""
    height, width = pixels.shape[:2]
    rows = b""
    for left, top, step_x, step_y in _ADAM7:
        part = pixels[top::step_y, left::step_x]
        if part.size:
            rows += b"".join(b"\0" + row.tobytes() for row in part)

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 1)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def test_interlaced_pngs_decode_to_pillows_pixels(faces: np.ndarray) -> None:
    """Interlaced files go to libspng as sent (the re-wrap is for plain rows): still Pillow's pixels."""
    pixels = np.ascontiguousarray(faces[5][:61, :59])  # odd sizes: the passes do not divide them evenly
    data = _interlaced(pixels)
    picture = _opened(data)
    assert picture.info.get("interlace") == 1 and is_plain_png(data, picture)
    decoded = read_plain_png(data, picture)
    assert decoded is not None
    np.testing.assert_array_equal(decoded, np.asarray(picture))
    np.testing.assert_array_equal(decoded, pixels)
