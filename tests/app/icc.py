"""A real wide-gamut ICC profile built byte by byte (ICC.1:2001-04 matrix/TRC), for tests without system profiles."""

from __future__ import annotations

import struct

# Adobe RGB (1998): primaries adapted to the D50 connection space, and its 563/256 gamma
_ADOBE_COLUMNS = ((0.60974, 0.31111, 0.01947), (0.20528, 0.62567, 0.06087), (0.14919, 0.06322, 0.74457))
_D50 = (0.9642, 1.0, 0.8249)


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz(x: float, y: float, z: float) -> bytes:
    return b"XYZ " + bytes(4) + _s15(x) + _s15(y) + _s15(z)


def _desc(text: str) -> bytes:
    ascii_text = text.encode("ascii") + b"\0"
    return b"desc" + bytes(4) + struct.pack(">I", len(ascii_text)) + ascii_text + bytes(4 + 4 + 2 + 1 + 67)


def rgb_profile(name: str = "Adobe RGB (1998) test", columns=_ADOBE_COLUMNS, gamma: float = 563 / 256) -> bytes:
    """An RGB display profile LittleCMS accepts: description, white point, three colorants, three gamma curves."""
    curve = b"curv" + bytes(4) + struct.pack(">IH", 1, round(gamma * 256)) + bytes(2)
    tags = [
        (b"desc", _desc(name)),
        (b"cprt", b"text" + bytes(4) + b"public domain\0"),
        (b"wtpt", _xyz(*_D50)),
        (b"rXYZ", _xyz(*columns[0])),
        (b"gXYZ", _xyz(*columns[1])),
        (b"bXYZ", _xyz(*columns[2])),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    return _assemble(tags, b"mntrRGB XYZ ")


def _assemble(tags: list[tuple[bytes, bytes]], class_and_spaces: bytes) -> bytes:
    """Header, tag table and 4-byte aligned tag data; `class_and_spaces`: device class, colour space, PCS."""
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for signature, body in tags:
        body += bytes(-len(body) % 4)
        table += signature + struct.pack(">II", offset + len(data), len(body))
        data += body
    size = offset + len(data)
    header = (
        struct.pack(">I", size)
        + bytes(4)
        + struct.pack(">I", 0x02100000)
        + class_and_spaces
        + struct.pack(">6H", 2026, 1, 1, 0, 0, 0)
        + b"acsp"
        + bytes(24)
        + struct.pack(">I", 0)
        + _s15(_D50[0])
        + _s15(_D50[1])
        + _s15(_D50[2])
        + bytes(4)
    )
    header += bytes(128 - len(header))
    return header + struct.pack(">I", len(tags)) + table + data


def _lab_d50(rgb: tuple[float, float, float]) -> tuple[float, float, float]:
    """CIELAB (D50) of a linear-light RGB triple through the Adobe colorants above."""
    x, y, z = (
        sum(column[axis] * value for column, value in zip(_ADOBE_COLUMNS, rgb, strict=True)) for axis in range(3)
    )

    def f(t: float) -> float:
        return t ** (1 / 3) if t > (6 / 29) ** 3 else t / (3 * (6 / 29) ** 2) + 4 / 29

    fx, fy, fz = f(x / _D50[0]), f(y / _D50[1]), f(z / _D50[2])
    return 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)


def cmyk_profile(name: str = "press CMYK test") -> bytes:
    """A CMYK output-class profile whose A2B0 is a 2-point lut8: a simple press with slightly warm black.

    Its colours differ from Pillow's plain `255 * (1 - C) * (1 - K)`, so a test can tell which one ran.
    """
    clut = b""
    for c in (0, 1):
        for m in (0, 1):
            for y in (0, 1):
                for k in (0, 1):
                    ink = (1 - 0.9 * c) * (1 - 0.85 * k), (1 - 0.9 * m) * (1 - 0.88 * k), (1 - 0.8 * y) * (1 - 0.9 * k)
                    lab = _lab_d50(ink)
                    clut += bytes(
                        (
                            round(lab[0] * 255 / 100),
                            round(min(max(lab[1] + 128, 0), 255)),
                            round(min(max(lab[2] + 128, 0), 255)),
                        )
                    )
    identity = bytes(range(256))
    matrix = b"".join(_s15(1.0 if row == col else 0.0) for row in range(3) for col in range(3))
    lut = b"mft1" + bytes(4) + bytes((4, 3, 2, 0)) + matrix + identity * 4 + clut + identity * 3
    tags = [
        (b"desc", _desc(name)),
        (b"cprt", b"text" + bytes(4) + b"public domain\0"),
        (b"wtpt", _xyz(*_D50)),
        (b"A2B0", lut),
    ]
    return _assemble(tags, b"prtrCMYKLab ")
