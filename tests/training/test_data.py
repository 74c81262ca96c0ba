"""Loading image sets from folders, zips and npz archives, and the name-hash split."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.data import DataError, is_held_out, load_images, split, to_pixels, to_signed, to_uint8


def _write_images(folder: Path, faces: np.ndarray) -> list[Path]:
    """Mixed sizes and modes on purpose: RGB, grayscale, RGBA, a non-square JPEG."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / "a.png", folder / "b.png", folder / "c.png", folder / "sub" / "d.jpg"]
    Image.fromarray(faces[0]).save(paths[0])
    Image.fromarray(faces[1]).convert("L").save(paths[1])
    Image.fromarray(faces[2]).convert("RGBA").resize((100, 100)).save(paths[2])
    paths[3].parent.mkdir()
    Image.fromarray(faces[3]).resize((96, 64)).save(paths[3])
    return paths


def test_folder_with_mixed_sizes_and_modes(tmp_path: Path, faces: np.ndarray) -> None:
    _write_images(tmp_path / "imgs", faces)
    images = load_images(tmp_path / "imgs", 32)
    assert images.images.shape == (4, 3, 32, 32)
    assert images.names == ["a.png", "b.png", "c.png", "sub/d.jpg"]


def test_zip_matches_folder(tmp_path: Path, faces: np.ndarray) -> None:
    paths = _write_images(tmp_path / "imgs", faces)
    with zipfile.ZipFile(tmp_path / "imgs.zip", "w") as archive:
        for path in paths:
            archive.write(path, path.relative_to(tmp_path / "imgs"))
    from_zip, from_folder = load_images(tmp_path / "imgs.zip", 64), load_images(tmp_path / "imgs", 64)
    assert from_zip.names == from_folder.names
    assert np.array_equal(from_zip.images.numpy(), from_folder.images.numpy())


def test_npz_keeps_pixels_at_native_resolution(tmp_path: Path, faces: np.ndarray) -> None:
    np.savez(tmp_path / "set.npz", images=faces[:5], filenames=np.array([f"f{i}" for i in range(5)]))
    images = load_images(tmp_path / "set.npz", 64)
    assert images.names == [f"f{i}" for i in range(5)]
    assert np.array_equal(images.images.permute(0, 2, 3, 1).numpy(), faces[:5])


def test_empty_folder_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no pictures here")
    with pytest.raises(DataError, match="holds no images"):
        load_images(tmp_path / "empty", 64)


def test_unreadable_image_names_the_file(tmp_path: Path, faces: np.ndarray) -> None:
    _write_images(tmp_path / "imgs", faces)
    (tmp_path / "imgs" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(DataError, match="broken.png"):
        load_images(tmp_path / "imgs", 64)


def test_npz_without_images_array(tmp_path: Path) -> None:
    np.savez(tmp_path / "bad.npz", pixels=np.zeros((2, 8, 8, 3), np.uint8))
    with pytest.raises(DataError, match="no 'images' array"):
        load_images(tmp_path / "bad.npz", 64)


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_images(tmp_path / "nowhere", 64)


def test_split_is_stable_and_by_name(faces: np.ndarray, tmp_path: Path) -> None:
    names = np.array([f"img_{i}.jpg" for i in range(200)])
    np.savez(tmp_path / "set.npz", images=np.resize(faces, (200, 64, 64, 3)), filenames=names)
    images = load_images(tmp_path / "set.npz", 64)
    train, held = split(images, 0.1)
    assert len(train) + len(held) == 200
    assert 5 <= len(held) <= 40
    assert set(held.names).isdisjoint(train.names)
    assert all(is_held_out(name, 0.1) for name in held.names)
    reversed_set = images.subset(list(range(199, -1, -1)))
    assert sorted(split(reversed_set, 0.1)[1].names) == sorted(held.names)


def test_signed_round_trip(faces: np.ndarray) -> None:
    import torch

    pixels = torch.from_numpy(faces[:2])
    assert torch.equal(to_uint8(to_signed(pixels)), pixels)


def test_to_uint8_saturates_as_clamping_after_rounding_did() -> None:
    """to_uint8 once clamped to 0..255 after rounding; it now rounds `to_pixels`, which clamps to [-1, 1] first:
    the same byte for every value, inside the range, on its edges and past them."""
    import torch

    values = torch.cat([torch.linspace(-1.5, 1.5, 300_001), torch.tensor([-1.0, 1.0, -1.0001, 1.0001, 1e9, -1e9])])
    clamped_after = values.add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)
    assert torch.equal(to_uint8(values), clamped_after)


def test_conversions_match_the_copies_they_replaced() -> None:
    """Bit for bit the arithmetic the service wrote by hand before calling these (compose.model_pixels, prepare,
    faces.align.warp_in): the answers are compared byte for byte across releases."""
    import torch

    values = torch.cat([torch.linspace(-1.5, 1.5, 300_001), torch.tensor([float("inf"), float("-inf"), -0.0])])
    assert torch.equal(to_pixels(values), values.clamp(-1, 1).add(1).mul(127.5))
    assert torch.equal(to_pixels(values.half()), values.half().float().clamp(-1, 1).add(1).mul(127.5))
    planes = torch.linspace(0, 255, 100_003)  # box-filtered float planes, not only whole levels
    assert torch.equal(to_signed(planes), planes.div(127.5).sub(1.0))
