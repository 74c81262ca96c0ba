"""A plain PNG's pixels by ISA-L and libspng: about three times as fast as Pillow's decoder on photos.

Decoding was the largest part of a large upload's time outside the model: Pillow took 44 ms for the
1280x886 bench photo on one core, 17.5 ms of it zlib's inflate. Here ISA-L (`isal`, already the PNG
writer's deflate) inflates the pixel stream in 5 ms, the rows are handed to libspng (`pyspng`) re-wrapped
as stored deflate blocks, which its inflate only copies, and libspng undoes the row filters (5.6 ms): 13 ms
in all (libspng on the file as sent: 23 ms, its own inflate being zlib's).

Pillow still opens every file: it reads the header and every chunk before the pixels (the size checked
against the pixel budget, the ICC profile, EXIF and XMP), so only the pixels are decoded here, and only
where Pillow would read no more than that: 8 bits a channel, grey, RGB or RGBA, and no metadata chunk after
the pixels (where an eXIf or a text chunk holding XMP may say which way is up). Every other PNG is
Pillow's, as before.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import numpy as np
import pyspng
from isal import isal_zlib
from isal.igzip_lib import IsalError
from PIL import Image

from app.api.png import EMPTY_FINAL_BLOCK, ZLIB_HEADER, chunk

_CHANNELS = {"L": 1, "RGB": 3, "RGBA": 4}  # libspng has no grey-and-alpha output
# chunks that may carry an orientation (eXIf, or XMP in a text chunk) and that Pillow reads only with the pixels
_METADATA = {b"eXIf", b"tEXt", b"zTXt", b"iTXt"}
_SIGNATURE_BYTES = 8
_BIT_DEPTH_AT, _INTERLACE_AT = 24, 28  # in IHDR, after the signature, IHDR's length and type, width and height
_STORED_BLOCK = 65535  # the most bytes one stored deflate block holds


def _chunks(data: bytes) -> Iterator[tuple[bytes, int, int]]:
    """(type, where its length field starts, where its payload ends) of each chunk, up to IEND or the end."""
    position = _SIGNATURE_BYTES
    while position + 8 <= len(data):
        kind = data[position + 4 : position + 8]
        end = position + 8 + int.from_bytes(data[position : position + 4], "big")
        yield kind, position, end
        if kind == b"IEND":
            return
        position = end + 4  # past the CRC


def _metadata_after_pixels(data: bytes) -> bool:
    """Whether a metadata chunk follows the first IDAT. A walk over the chunks' headers, not their payloads."""
    in_pixels = False
    for kind, _, _ in _chunks(data):
        in_pixels = in_pixels or kind == b"IDAT"
        if in_pixels and kind in _METADATA:
            return True
    return False


def is_plain_png(data: bytes, picture: Image.Image) -> bool:
    """Whether `read_plain_png` decodes `data` (a PNG Pillow has opened as `picture`) to the pixels Pillow would."""
    return (
        picture.format == "PNG"
        and picture.mode in _CHANNELS
        and len(data) > _INTERLACE_AT
        and data[_BIT_DEPTH_AT] == 8
        and not _metadata_after_pixels(data)
    )


def _stored(rows: list[bytes]) -> list[bytes | memoryview]:
    """`rows` (pieces of the filtered rows, in order) as the parts of a zlib stream: stored deflate blocks
    and an empty last block: inflating it is a copy. The pieces are referred to, not copied."""
    parts: list[bytes | memoryview] = [ZLIB_HEADER]
    adler = 1
    for piece in rows:
        view = memoryview(piece)
        for start in range(0, len(view), _STORED_BLOCK):
            block = view[start : start + _STORED_BLOCK]
            parts += [struct.pack("<BHH", 0, len(block), len(block) ^ 0xFFFF), block]
        adler = isal_zlib.adler32(piece, adler)
    return [*parts, EMPTY_FINAL_BLOCK, struct.pack(">I", adler)]


def _inflated(data: bytes, picture: Image.Image) -> bytes:
    """The same PNG with its pixel stream inflated by ISA-L and stored uncompressed (non-interlaced files only;
    an interlaced one is returned as it is). ValueError where the stream is short, damaged or too long."""
    if data[_INTERLACE_AT] != 0:
        return data
    idat = [(start, end) for kind, start, end in _chunks(data) if kind == b"IDAT"]
    if not idat:
        raise ValueError("no IDAT chunk")
    width, height = picture.size
    expected = height * (1 + width * _CHANNELS[picture.mode])  # each row: its filter type, then its bytes
    inflater, rows, produced = isal_zlib.decompressobj(), [], 0
    for start, end in idat:  # never more than one byte past the expected: a bomb stops there
        rows.append(inflater.decompress(memoryview(data)[start + 8 : end], expected + 1 - produced))
        produced += len(rows[-1])
        if produced > expected:
            break
    if produced != expected or not inflater.eof:  # eof: the stream ended, its Adler-32 checked
        raise ValueError(f"the pixel stream holds {produced} bytes, not {expected}")
    return b"".join([memoryview(data)[: idat[0][0]], *chunk(b"IDAT", *_stored(rows)), *chunk(b"IEND")])


def read_plain_png(data: bytes, picture: Image.Image) -> np.ndarray | None:
    """The pixels of a plain PNG (see `is_plain_png`) in `picture`'s mode, (H, W) grey or (H, W, 3 or 4); None
    where ISA-L or libspng refuse them (a short or damaged stream, extra bytes after the rows): Pillow then
    decides, as for any other file. No gamma or colour key is applied, as Pillow applies none: the pixels are
    the file's."""
    try:
        pixels: np.ndarray = pyspng.load(_inflated(data, picture), picture.mode)
    except (ValueError, RuntimeError, IsalError):  # type: ignore[misc]  # isal's stubs declare IsalError an instance
        return None
    return pixels
