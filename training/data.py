"""Image sets from a folder, a .zip or an .npz, as uint8 tensors at one resolution.

Every image is converted to RGB, centre-cropped to its largest square and
resized with Lanczos, the preprocessing of `../shared/data`. The held-out split
is a pure function of each image's name, so the service's evaluation can find
the same split from the names recorded in the model card.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


class DataError(ValueError):
    """A dataset that cannot be read; the message says what to fix."""


@dataclass
class ImageSet:
    """Images (N, 3, R, R) uint8 and the name each came from."""

    images: torch.Tensor
    names: list[str]
    source: str

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, indices: list[int]) -> ImageSet:
        return ImageSet(self.images[indices], [self.names[i] for i in indices], self.source)


def square_resize(image: Image.Image, resolution: int) -> np.ndarray:
    """RGB, centre crop to the largest square, Lanczos resize: (R, R, 3) uint8.

    The training set's preprocessing (that of `../shared/data`), not one of the service's resizes
    (`app.engine.resize`): it crops, and every model was trained on its Lanczos output. It stays here
    because the service may import training but training never imports the service.
    """
    image = image.convert("RGB")
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    image = image.crop((left, top, left + side, top + side))
    if side != resolution:
        image = image.resize((resolution, resolution), Image.Resampling.LANCZOS)
    return np.asarray(image, dtype=np.uint8)


def _decode(data: bytes, name: str, resolution: int) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return square_resize(image, resolution)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise DataError(f"cannot read image {name!r} ({exc.__class__.__name__}): remove or replace it") from exc


def _folder_items(path: Path) -> Iterator[tuple[str, bytes]]:
    for file in sorted(path.rglob("*")):
        if file.is_file() and file.suffix.lower() in IMAGE_SUFFIXES:
            yield str(file.relative_to(path)), file.read_bytes()


def _zip_items(path: Path) -> Iterator[tuple[str, bytes]]:
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise DataError(f"{path} is not a valid zip archive: re-create it") from exc
    with archive:
        for info in sorted(archive.infolist(), key=lambda i: i.filename):
            if not info.is_dir() and Path(info.filename).suffix.lower() in IMAGE_SUFFIXES:
                yield info.filename, archive.read(info)


def _load_npz_raw(path: Path) -> tuple[np.ndarray, list[str] | None]:
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path} is not a readable .npz archive: re-create it with numpy.savez") from exc
    with archive:
        if "images" not in archive:
            raise DataError(f"{path} has no 'images' array: save your images as images=(N, H, W, 3) uint8")
        images = archive["images"]
        names = [str(n) for n in archive["filenames"]] if "filenames" in archive else None
    return images, names


def _load_npz(path: Path, resolution: int) -> tuple[np.ndarray, list[str]]:
    images, names = _load_npz_raw(path)
    if images.ndim == 3:
        images = np.repeat(images[..., None], 3, axis=-1)
    if images.ndim != 4 or images.shape[-1] not in (1, 3, 4) or images.dtype != np.uint8:
        raise DataError(f"{path}: 'images' must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
    if images.shape[-1] != 3 or images.shape[1:3] != (resolution, resolution):
        images = np.stack([square_resize(Image.fromarray(img.squeeze()), resolution) for img in images])
    if names is None or len(names) != len(images):
        names = [f"{path.name}:{i}" for i in range(len(images))]
    return images, names


def native_resolution(path: str | Path) -> int | None:
    """The side of an .npz's square images as stored; None for folders and zips (resized on load)."""
    path = Path(path)
    if not (path.is_file() and path.suffix.lower() == ".npz"):
        return None
    images, _ = _load_npz_raw(path)
    return int(images.shape[1]) if images.ndim >= 3 and images.shape[1] == images.shape[2] else None


def load_images(path: str | Path, resolution: int) -> ImageSet:
    """Read every image under `path` (folder, .zip or .npz) at `resolution`."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} does not exist: pass a folder, a .zip or an .npz of images")
    if path.is_file() and path.suffix.lower() == ".npz":
        arrays, names = _load_npz(path, resolution)
    else:
        if path.is_dir():
            items = _folder_items(path)
        elif path.suffix.lower() == ".zip":
            items = _zip_items(path)
        else:
            raise DataError(f"{path} is neither a folder, a .zip nor an .npz")
        decoded = [(name, _decode(data, name, resolution)) for name, data in items]
        names = [name for name, _ in decoded]
        arrays = np.stack([img for _, img in decoded]) if decoded else np.zeros((0,))
    if len(names) == 0:
        kinds = ", ".join(sorted(IMAGE_SUFFIXES))
        raise DataError(f"{path} holds no images (looked for {kinds})")
    images = torch.from_numpy(np.ascontiguousarray(arrays)).permute(0, 3, 1, 2).contiguous()
    return ImageSet(images=images, names=names, source=str(path))


def is_held_out(name: str, fraction: float) -> bool:
    """Deterministic split by name: stable across runs, machines and orderings."""
    bucket = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") / 2**64
    return bucket < fraction


def split(images: ImageSet, holdout_fraction: float) -> tuple[ImageSet, ImageSet]:
    """(train, held_out) by name hash."""
    held = [i for i, n in enumerate(images.names) if is_held_out(n, holdout_fraction)]
    held_set = set(held)
    train = [i for i in range(len(images)) if i not in held_set]
    return images.subset(train), images.subset(held)


# The one mapping between model values in [-1, 1] (the tanh generator's range) and pixel values 0..255; the
# service (app/) calls these too, since app may import training but never the reverse. The order of the float
# operations is part of the contract: the service's answers are compared byte for byte across releases.


def to_signed(images: torch.Tensor) -> torch.Tensor:
    """Pixels 0..255 (uint8, or float such as box-filtered planes) -> float32 [-1, 1]: x / 127.5 - 1."""
    return images.float().div(127.5).sub(1.0)


def to_pixels(images: torch.Tensor) -> torch.Tensor:
    """Model values -> float32 pixels 0..255, unrounded: clamped to [-1, 1] first, then (x + 1) * 127.5."""
    return images.detach().float().clamp(-1.0, 1.0).add(1.0).mul(127.5)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Model values -> uint8 [0, 255]: `to_pixels` rounded to the nearest level."""
    return to_pixels(images).round().to(torch.uint8)
