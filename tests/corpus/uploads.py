"""The malformed-upload corpus: every request a phone, a scanner, a broken client or an attacker might send.

`build(face)` generates the cases from one real 64x64 face (nothing is stored in the
repository); each case names its class, how to send it, and the answers it may get:
a documented 4xx problem (status and reason) or a 200 whose image is checked.
`python -m tests.corpus.uploads OUT` writes the generated files to OUT for a look.
"""

from __future__ import annotations

import io
import random
import socket
import struct
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from tests.app.conftest import center_hole, encode, mask_png
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

OK = (200, None)
NOT_AN_IMAGE = (415, "not-an-image")
TRUNCATED = (422, "truncated-image")
TOO_MANY_PIXELS = (413, "image-too-large")
TOO_LARGE = (413, "upload-too-large")
INVALID = (422, "invalid-parameter")
BAD_MASK = (422, "bad-mask")
MISMATCH = (422, "mask-size-mismatch")
MISSING_MASK = (422, "missing-mask")
ANIMATED = (422, "animated-image")
UNKNOWN_MODEL = (422, "unknown-model")
BAD_METADATA = (422, "bad-metadata")
MALFORMED = (400, "malformed-body")

# the server the corpus runs against must use these limits
MAX_UPLOAD_BYTES = 2_000_000
MAX_IMAGE_PIXELS = 4_000_000
MAX_ITERATIONS = 50
MAX_RESTARTS = 4
REQUEST_TIMEOUT_S = 60


@dataclass
class Case:
    """One request and the answers it may get; `upright` is the image a 200 must hold outside the hole."""

    kind: str
    name: str
    send: Callable[[httpx.Client], httpx.Response]
    allowed: frozenset[tuple[int, str | None]]
    upright: np.ndarray | None = None
    hole: np.ndarray | None = None
    shape: tuple[int, int] | None = None  # (H, W) of a 200's image, where `upright` is not given
    parts: dict[str, bytes] = field(default_factory=dict)  # the files it sends, for `main`


def _post(image: bytes | None, mask: bytes | None, data: dict[str, str] | None = None) -> Callable[..., Any]:
    files: list[tuple[str, tuple[str, bytes]]] = []
    if image is not None:
        files.append(("image", ("upload", image)))
    if mask is not None:
        files.append(("mask", ("mask", mask)))
    form = {"iterations": "2", **(data or {})}
    return lambda http: http.post("/complete", files=files, data=form)


def _hole(height: int, width: int) -> np.ndarray:
    hole = np.zeros((height, width), bool)
    hole[height // 4 : height // 2 + 1, width // 4 : width // 2 + 1] = True
    return hole


def _with_ihdr(png: bytes, width: int, height: int) -> bytes:
    """The PNG with its header declaring another size (CRC fixed), as a hand-made bomb or a 0-wide image."""
    ihdr = b"IHDR" + struct.pack(">II", width, height) + png[24:29]
    return png[:12] + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + png[33:]


def _with_sof(jpeg: bytes, width: int, height: int) -> bytes:
    start = jpeg.index(b"\xff\xc0")
    return jpeg[: start + 5] + struct.pack(">HH", height, width) + jpeg[start + 9 :]


def _with_vp8l_size(webp: bytes, width: int, height: int) -> bytes:
    start = webp.index(b"VP8L") + 9
    bits = struct.unpack("<I", webp[start : start + 4])[0] & ~0x0FFFFFFF
    return webp[:start] + struct.pack("<I", bits | (width - 1) | ((height - 1) << 14)) + webp[start + 4 :]


def _flip(data: bytes, seed: int, count: int) -> bytes:
    rng = random.Random(seed)
    out = bytearray(data)
    for _ in range(count):
        index = rng.randrange(len(out) // 4, len(out))  # past the signature, so it is still recognised
        out[index] = rng.randrange(256)
    return bytes(out)


def _fuzzed_exif(seed: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "Camera"
    exif[0x0132] = "2020:01:01 00:00:00"
    raw = exif.tobytes()
    raw = raw[6:] if raw.startswith(b"Exif") else raw
    return _flip(raw, seed, 3)


def _formats(face: np.ndarray) -> dict[str, bytes]:
    return {
        "png": encode(face, "PNG"),
        "jpeg": encode(face, "JPEG", quality=90),
        "webp": encode(face, "WEBP", quality=90),
        "webp-lossless": encode(face, "WEBP", lossless=True),
    }


def _upload_cases(face: np.ndarray) -> list[Case]:
    hole = center_hole(64, 64)
    mask = mask_png(hole)
    cases: list[Case] = []

    def add(kind: str, name: str, image: bytes, allowed: set[tuple[int, str | None]], **extra: Any) -> None:
        mask_bytes = extra.pop("mask", mask)
        data = extra.pop("data", None)
        cases.append(
            Case(kind, name, _post(image, mask_bytes, data), frozenset(allowed), **extra, parts={"image": image})
        )

    for fmt, data in _formats(face).items():
        for fraction in (0.0, 0.02, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99):
            cut = data[: max(1, int(len(data) * fraction))]
            add("truncated", f"{fmt} cut at {fraction:.0%}", cut, {NOT_AN_IMAGE, TRUNCATED})
        for seed in range(8):
            add(
                "corrupt",
                f"{fmt} with bytes flipped (seed {seed})",
                _flip(data, seed, 8),
                {OK, NOT_AN_IMAGE, TRUNCATED},
            )
        add("corrupt", f"{fmt} with garbage appended", data + bytes(range(256)) * 4, {OK}, upright=None)
    png, jpeg, webp = encode(face, "PNG"), encode(face, "JPEG"), encode(face, "WEBP", lossless=True)
    for width, height in ((2001, 2000), (20_000, 20_000), (65_535, 65_535), (2**31 - 1, 2**31 - 1), (100_000, 41)):
        add("bomb", f"png declaring {width}x{height}", _with_ihdr(png, width, height), {TOO_MANY_PIXELS, NOT_AN_IMAGE})
    for width, height in ((4000, 4000), (65_000, 65_000), (60_000, 100)):
        add("bomb", f"jpeg declaring {width}x{height}", _with_sof(jpeg, width, height), {TOO_MANY_PIXELS})
    for width, height in ((16_384, 16_384), (4096, 1024)):
        add("bomb", f"webp declaring {width}x{height}", _with_vp8l_size(webp, width, height), {TOO_MANY_PIXELS})
    add("bomb", "png of 20000x20000 zeros (deflated)", encode(np.zeros((20_000, 20_000), bool)), {TOO_MANY_PIXELS})
    for width, height in ((0, 64), (64, 0), (0, 0)):
        add("degenerate", f"png declaring {width}x{height}", _with_ihdr(png, width, height), {NOT_AN_IMAGE})
    for height, width in ((1, 100_000), (100_000, 1), (1, 1), (2, 2), (1, 64), (3, 5000)):
        thin = np.random.default_rng(height).integers(0, 256, (height, width, 3), dtype=np.uint8)
        thin_hole = np.zeros((height, width), bool)
        thin_hole[: max(1, height // 2), : max(1, width // 2)] = True
        add(
            "degenerate",
            f"{width}x{height} image, hole in one corner",
            encode(thin),
            {OK, BAD_MASK},
            mask=mask_png(thin_hole),
            upright=thin,
            hole=thin_hole,
        )
    return cases


def _photo_cases(face: np.ndarray) -> list[Case]:
    cases: list[Case] = []
    photo = np.ascontiguousarray(face[:, 8:56])  # 64 x 48, so a wrong rotation changes the shape
    hole48 = _hole(64, 48)

    def add(kind: str, name: str, image: bytes, allowed: set[tuple[int, str | None]], **extra: Any) -> None:
        mask_bytes = extra.pop("mask", mask_png(hole48))
        cases.append(Case(kind, name, _post(image, mask_bytes), frozenset(allowed), **extra, parts={"image": image}))

    rng = np.random.default_rng(16)
    wide = rng.integers(0, 65536, (64, 48, 3)).astype(np.uint16)
    wide_8 = np.rint(wide / 257).astype(np.uint8)
    add("16-bit", "16-bit RGB png", png16(wide), {OK}, upright=wide_8, hole=hole48)
    add("16-bit", "16-bit grey png", png16(wide[..., 0]), {OK}, upright=np.repeat(wide_8[..., :1], 3, 2), hole=hole48)
    alpha16 = np.dstack([wide, np.where(hole48, 0, 65535).astype(np.uint16)])
    add("16-bit", "16-bit RGBA png, alpha hole", png16(alpha16), {OK}, mask=None, upright=wide_8, hole=hole48)
    add("16-bit", "16-bit grey mask", encode(photo), {OK}, mask=png16(np.where(hole48, 65535, 0).astype(np.uint16)))
    for colours in (2, 16, 256):
        indexed = Image.fromarray(photo).quantize(colours)
        shown = np.asarray(indexed.convert("RGB"))
        buffer = io.BytesIO()
        indexed.save(buffer, format="PNG")
        add("palette", f"{colours}-colour palette png", buffer.getvalue(), {OK}, upright=shown, hole=hole48)
    transparent, shown = palette_with_transparent_index(photo)
    add("palette", "palette with a transparent index, masked", transparent, {OK}, upright=shown, hole=hole48)
    add("palette", "palette with a transparent index, no mask", transparent, {MISSING_MASK}, mask=None)
    key = tuple(int(v) for v in photo[0, 0])
    add("palette", "RGB colour key, masked", colour_key(photo, key), {OK}, upright=photo, hole=hole48)  # type: ignore[arg-type]
    add("palette", "RGB colour key, no mask", colour_key(photo, key), {MISSING_MASK}, mask=None)  # type: ignore[arg-type]
    for profile_name, profile in (("no profile", None), ("its profile", cmyk_profile())):
        data, _ = cmyk_jpeg(photo, profile)
        add("cmyk", f"CMYK jpeg, {profile_name}", data, {OK})
    grey = np.asarray(Image.fromarray(photo).convert("L"))
    for fmt in ("PNG", "JPEG", "WEBP"):
        options = {"lossless": True} if fmt == "WEBP" else {}
        upright = np.repeat(grey[..., None], 3, 2) if fmt != "JPEG" else None
        add("grayscale", f"grey {fmt}", encode(grey, fmt, **options), {OK}, upright=upright, hole=hole48)
    la = np.dstack([grey, np.where(hole48, 0, 255).astype(np.uint8)])
    add("grayscale", "grey+alpha png, alpha hole", encode(la, "PNG"), {OK}, mask=None, hole=hole48)
    add("grayscale", "1-bit png", encode(grey > 128, "PNG"), {OK})
    for fmt in ("JPEG", "PNG", "WEBP"):
        for orientation in range(1, 9):
            turned = (64, 48) if orientation < 5 else (48, 64)
            add(
                "exif-rotated",
                f"{fmt} orientation {orientation}",
                with_orientation(photo, orientation, fmt),
                {OK},
                mask=mask_png(_hole(*turned)),
                hole=_hole(*turned),
                shape=turned,
                upright=None if fmt == "JPEG" else _turn(photo, orientation),
            )
        add("exif-rotated", f"{fmt} orientation 6, mask not turned", with_orientation(photo, 6, fmt), {MISMATCH})
    hole_turned = _hole(48, 64)
    for name, exif in (
        ("not TIFF", b"XX\0*\0\0\0\x08"),
        ("two bytes", b"MM"),
        ("65535 entries", b"MM\0*\0\0\0\x08\xff\xff"),
        ("offset past the end", b"MM\0*\xff\xff\xff\xff"),
        ("empty", b""),
        ("orientation as text", b"MM\0*\0\0\0\x08\0\x01\x01\x12\0\x02\0\0\0\x04abc\0\0\0\0\0"),
        ("orientation 99", b"MM\0*\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x63\0\0\0\0\0\0"),
    ):
        add("malformed-exif", name, with_raw_exif(photo, exif), {OK, BAD_METADATA})
    for seed in range(12):
        exif = _fuzzed_exif(seed)
        # orientation 6 may or may not survive the flips: either shape is a correct answer
        cases.append(
            Case(
                "malformed-exif",
                f"fuzzed camera EXIF (seed {seed})",
                _post_either(with_raw_exif(photo, exif), mask_png(hole48), mask_png(hole_turned)),
                frozenset({OK, BAD_METADATA}),
            )
        )
    for frames in (2, 3):
        stack = [np.ascontiguousarray(np.roll(photo, 7 * index, 1)) for index in range(frames)]
        add("mpo", f"MPO of {frames} pictures", mpo(*stack), {OK})
    for fmt, allowed in (("GIF", NOT_AN_IMAGE), ("PNG", ANIMATED), ("WEBP", ANIMATED)):
        for frames in (2, 5):
            stack = [np.ascontiguousarray(np.roll(photo, 5 * index, 0)) for index in range(frames)]
            add("animated", f"{fmt} of {frames} frames", animated(fmt, *stack), {allowed})
    add("colour", "Adobe RGB png", tagged(photo, rgb_profile()), {OK}, upright=photo, hole=hole48)
    add("colour", "Adobe RGB webp", tagged(photo, rgb_profile(), "WEBP"), {OK}, upright=photo, hole=hole48)
    add("colour", "garbage ICC profile", tagged(photo, b"\0" * 300), {OK}, upright=photo, hole=hole48)
    add("colour", "CMYK profile on RGB", tagged(photo, cmyk_profile()), {OK}, upright=photo, hole=hole48)
    return cases


def _turn(photo: np.ndarray, orientation: int) -> np.ndarray:
    picture = Image.fromarray(photo)
    methods = {2: 0, 3: 3, 4: 1, 5: 5, 6: 4, 7: 6, 8: 2}
    return np.asarray(picture.transpose(methods[orientation])) if orientation in methods else photo  # type: ignore[arg-type]


def _post_either(image: bytes, mask: bytes, turned_mask: bytes) -> Callable[[httpx.Client], httpx.Response]:
    def send(http: httpx.Client) -> httpx.Response:
        first = _post(image, mask)(http)
        if first.status_code == 422 and first.json()["type"].endswith("mask-size-mismatch"):
            return _post(image, turned_mask)(http)
        return first

    return send


def _mask_cases(face: np.ndarray) -> list[Case]:
    hole = center_hole(64, 64)
    image = encode(face)
    cases: list[Case] = []

    def add(kind: str, name: str, mask: bytes | None, allowed: set[tuple[int, str | None]], **extra: Any) -> None:
        cases.append(Case(kind, name, _post(image, mask), frozenset(allowed), **extra, parts={"mask": mask or b""}))

    for height, width in ((32, 32), (64, 63), (63, 64), (128, 128), (1, 1), (64, 1000)):
        add("mask-size", f"mask {width}x{height} for a 64x64 image", mask_png(center_hole(height, width)), {MISMATCH})
    white = hole.astype(np.uint8) * 255
    for mode in ("RGB", "RGBA", "P", "1", "LA", "CMYK"):
        picture = Image.fromarray(white).convert(mode)
        fmt = "JPEG" if mode == "CMYK" else "PNG"
        buffer = io.BytesIO()
        picture.save(buffer, format=fmt, **({"quality": 100} if fmt == "JPEG" else {}))
        add("mask-mode", f"{mode} mask", buffer.getvalue(), {OK}, upright=face, hole=hole if mode != "CMYK" else None)
    add("mask-mode", "16-bit mask, white = 65535", png16(hole.astype(np.uint16) * 65535), {OK}, upright=face, hole=hole)
    # 255 of 65535 is near black, not white: nothing to fill
    add("mask-mode", "16-bit mask holding 8-bit values", png16(hole.astype(np.uint16) * 255), {BAD_MASK})
    add("mask-mode", "mask as jpeg (lossy edges)", encode(white, "JPEG"), {OK})
    add("mask-mode", "transparent sheet with white strokes", encode(np.dstack([white] * 3 + [white])), {OK}, hole=hole)
    add("mask-mode", "mask not an image", b"a mask, allegedly", {NOT_AN_IMAGE})
    add("mask-mode", "truncated mask", mask_png(hole)[:60], {TRUNCATED, NOT_AN_IMAGE})
    add("mask-mode", "empty mask part", b"", {NOT_AN_IMAGE})
    add("mask-mode", "animated mask", animated("PNG", white, 255 - white), {ANIMATED})
    add("no-hole", "all-black mask", mask_png(np.zeros((64, 64), bool)), {BAD_MASK})
    add("no-hole", "mask of grey 127 (below the white threshold)", encode(np.full((64, 64), 127, np.uint8)), {BAD_MASK})
    add("no-known", "all-white mask", mask_png(np.ones((64, 64), bool)), {BAD_MASK})
    speckle = np.ones((64, 64), bool)
    speckle[::3, ::3] = False
    add("no-known", "known pixels too scattered for the model", mask_png(speckle), {BAD_MASK})
    opaque = np.dstack([face, np.full((64, 64), 255, np.uint8)])
    clear = np.dstack([face, np.zeros((64, 64), np.uint8)])
    for name, rgba, allowed in (("fully opaque", opaque, BAD_MASK), ("fully transparent", clear, BAD_MASK)):
        cases.append(
            Case(
                "no-hole" if rgba is opaque else "no-known",
                f"{name} alpha",
                _post(encode(rgba), None),
                frozenset({allowed}),
            )
        )
    return cases


def _raw(body: bytes, headers: dict[str, str]) -> Callable[[httpx.Client], httpx.Response]:
    return lambda http: http.post("/complete", content=body, headers=headers)


def _body_cases(face: np.ndarray) -> list[Case]:
    image, mask = encode(face), mask_png(center_hole(64, 64))
    boundary = "corpusboundary"

    def multipart(*parts: tuple[str, bytes, bool]) -> bytes:
        out = b""
        for name, value, is_file in parts:
            filename = f'; filename="{name}.png"' if is_file else ""
            out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"{filename}\r\n\r\n'.encode()
            out += value + b"\r\n"
        return out + f"--{boundary}--\r\n".encode()

    form = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    good = multipart(("image", image, True), ("mask", mask, True))
    cases = [
        Case(
            "huge-body",
            "Content-Length over the limit",
            _huge_declared(good, form),
            frozenset({TOO_LARGE}),
        ),
        Case(
            "huge-body",
            "streamed body over the limit",
            _streamed(image, mask, MAX_UPLOAD_BYTES + 10),
            frozenset({TOO_LARGE}),
        ),
        Case("huge-body", "image part of 3 MB", _post(image + bytes(3_000_000), mask), frozenset({TOO_LARGE})),
        Case(
            "huge-body",
            "10,000 tiny form fields",
            _raw(multipart(*[(f"f{i}", b"1", False) for i in range(10_000)]), form),
            frozenset({MALFORMED, INVALID, TOO_LARGE}),
        ),
        Case(
            "huge-body",
            "one 1.9 MB text field",
            _raw(multipart(("image", image, True), ("mask", mask, True), ("model", b"x" * 1_900_000, False)), form),
            frozenset({UNKNOWN_MODEL, MALFORMED, INVALID}),
        ),
        Case("missing-field", "no image", _post(None, mask), frozenset({INVALID})),
        Case("missing-field", "empty body", _raw(b"", form), frozenset({INVALID, MALFORMED})),
        Case("missing-field", "no body, no content type", _raw(b"", {}), frozenset({INVALID})),
        Case(
            "missing-field",
            "image sent as a text field",
            _raw(multipart(("image", b"abc", False)), form),
            frozenset({INVALID}),
        ),
        Case(
            "missing-field",
            "JSON body",
            _raw(b'{"image": "abc"}', {"Content-Type": "application/json"}),
            frozenset({INVALID}),
        ),
        Case(
            "missing-field",
            "urlencoded body",
            _raw(b"image=abc", {"Content-Type": "application/x-www-form-urlencoded"}),
            frozenset({INVALID}),
        ),
        Case(
            "missing-field",
            "multipart without boundary",
            _raw(good, {"Content-Type": "multipart/form-data"}),
            frozenset({MALFORMED, INVALID}),
        ),
        Case(
            "missing-field",
            "multipart cut in the middle",
            _raw(good[: len(good) // 2], form),
            frozenset({MALFORMED, INVALID}),
        ),
        Case(
            "missing-field",
            "multipart with a wrong boundary",
            _raw(good.replace(boundary.encode(), b"other"), form),
            frozenset({MALFORMED, INVALID}),
        ),
        Case(
            "duplicate-field",
            "two images",
            _raw(multipart(("image", image, True), ("image", image, True), ("mask", mask, True)), form),
            frozenset({OK, INVALID}),
        ),
        Case(
            "duplicate-field",
            "two masks",
            _raw(multipart(("image", image, True), ("mask", mask, True), ("mask", mask, True)), form),
            frozenset({OK, INVALID}),
        ),
        Case(
            "duplicate-field",
            "two iteration counts",
            _raw(
                multipart(
                    ("image", image, True),
                    ("mask", mask, True),
                    ("iterations", b"2", False),
                    ("iterations", b"3", False),
                ),
                form,
            ),
            frozenset({OK, INVALID}),
        ),
        Case(
            "duplicate-field",
            "two models",
            _raw(
                multipart(
                    ("image", image, True), ("mask", mask, True), ("model", b"tiny", False), ("model", b"cats", False)
                ),
                form,
            ),
            frozenset({OK, INVALID, UNKNOWN_MODEL}),
        ),
    ]
    return cases


def _huge_declared(body: bytes, headers: dict[str, str]) -> Callable[[httpx.Client], httpx.Response]:
    """A Content-Length over the limit on a raw socket: refused from the header, before the body is read."""

    def send(http: httpx.Client) -> httpx.Response:
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        declared = f"Content-Length: {MAX_UPLOAD_BYTES + 1}\r\nConnection: close\r\n"
        with socket.create_connection((http.base_url.host, http.base_url.port), timeout=30) as raw:
            raw.sendall(f"POST /complete HTTP/1.1\r\nHost: x\r\n{head}{declared}\r\n".encode() + body)
            answer = b""
            while chunk := raw.recv(65_536):
                answer += chunk
        status_line, _, rest = answer.partition(b"\r\n")
        header_block, _, content = rest.partition(b"\r\n\r\n")
        parsed = dict(line.decode().split(": ", 1) for line in header_block.split(b"\r\n") if b": " in line)
        return httpx.Response(int(status_line.split()[1]), headers=parsed, content=content)

    return send


def _streamed(image: bytes, mask: bytes, size: int) -> Callable[[httpx.Client], httpx.Response]:
    """A chunked body (no Content-Length) that grows past the limit while it streams."""

    def chunks() -> Any:
        yield b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n' + image
        sent = len(image)
        while sent < size:
            yield bytes(65_536)
            sent += 65_536

    return lambda http: http.post(
        "/complete", content=chunks(), headers={"Content-Type": "multipart/form-data; boundary=b"}
    )


def _param_cases(face: np.ndarray) -> list[Case]:
    image, mask = encode(face), mask_png(center_hole(64, 64))
    values: dict[str, list[tuple[str, frozenset[tuple[int, str | None]]]]] = {
        "iterations": [
            ("-1", {INVALID}),
            ("51", {INVALID}),
            (str(2**63), {INVALID}),
            ("1.5", {INVALID}),
            ("abc", {INVALID}),
            ("", {OK, INVALID}),
            ("0", {INVALID}),
            ("1e3", {INVALID}),
            ("50", {OK}),
            ("٣", {OK, INVALID}),
        ],
        "restarts": [
            ("0", {INVALID}),
            ("-3", {INVALID}),
            ("5", {INVALID}),
            ("4", {OK}),
            ("two", {INVALID}),
            ("99999999999999999999", {INVALID}),
        ],
        "seed": [
            ("-1", {INVALID}),
            (str(2**63), {INVALID}),
            (str(2**63 - 1), {OK}),
            ("0x10", {INVALID}),
            ("nan", {INVALID}),
            ("7", {OK}),
        ],
        "timeout": [
            ("0", {INVALID}),
            ("-1", {INVALID}),
            ("61", {INVALID}),
            ("1e308", {INVALID}),
            ("nan", {INVALID}),
            ("inf", {INVALID}),
            ("abc", {INVALID}),
            ("30", {OK}),
        ],
        "model": [
            ("", {OK, INVALID, UNKNOWN_MODEL}),
            ("cats", {UNKNOWN_MODEL}),
            ("tiny:", {OK}),
            ("tiny:x", {UNKNOWN_MODEL}),
            ("tiny:1:2", {UNKNOWN_MODEL}),
            ("../tiny", {UNKNOWN_MODEL}),
            ("tiny:1", {OK}),
            ("TINY", {OK, UNKNOWN_MODEL}),
        ],
        "init": [("bogus", {INVALID}), ("encoder", {INVALID}), ("random", {OK}), ("", {OK, INVALID})],
        "blend": [("magic", {INVALID}), ("none", {OK}), ("POISSON", {INVALID}), ("", {OK, INVALID})],
        "format": [("gif", {INVALID}), ("jpeg", {OK}), ("webp", {OK}), ("PNG", {INVALID}), ("", {OK, INVALID})],
    }
    cases = []
    for field_name, options in values.items():
        for value, allowed in options:
            data = {field_name: value}
            cases.append(Case("params", f"{field_name}={value!r}", _post(image, mask, data), frozenset(allowed)))
    cases.append(Case("params", "unknown field", _post(image, mask, {"colour": "blue"}), frozenset({OK})))
    return cases


def build(face: np.ndarray) -> list[Case]:
    """Every case of the corpus, generated from one 64x64 RGB face."""
    return [*_upload_cases(face), *_photo_cases(face), *_mask_cases(face), *_body_cases(face), *_param_cases(face)]


def main(argv: list[str]) -> int:
    """Write each case's files under OUT/<kind>/ for a person to open them in a viewer."""
    out = Path(argv[0])
    face = np.asarray(Image.new("RGB", (64, 64), (200, 150, 120)))
    for index, case in enumerate(build(face)):
        for part, data in case.parts.items():
            folder = out / case.kind
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{index:03d}-{part}.bin").write_bytes(data)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
