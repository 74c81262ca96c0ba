"""`python -m app complete`: a folder of damaged photos and masks paired by name, restored offline."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from app.__main__ import main
from tests.app.conftest import center_hole, damaged, decode, encode, mask_png
from tests.app.glcic_store import save_tiny_glcic


@pytest.fixture
def store(make_tiny_store: Callable[..., Path], clean_env: None) -> Path:
    return make_tiny_store(("tiny",))


def _args(store: Path, *rest: str) -> list[str]:
    common = ["--model", "tiny", "--model-store", str(store), "--device", "cpu", "--iterations", "3", "--restarts", "1"]
    return ["complete", *rest, *common]


def test_folder_with_masks_paired_by_name(store: Path, tmp_path: Path, faces: np.ndarray) -> None:
    images, masks, out = tmp_path / "in", tmp_path / "masks", tmp_path / "out"
    images.mkdir()
    masks.mkdir()
    hole = center_hole(64, 64)
    uploads = {f"face{i}": damaged(faces[400 + i], hole) for i in range(3)}
    for name, upload in uploads.items():
        (images / f"{name}.png").write_bytes(encode(upload))
        (masks / f"{name}.png").write_bytes(mask_png(hole))
    assert main(_args(store, str(images), "--masks", str(masks), "--out", str(out), "--batch-size", "2")) == 0
    for name, upload in uploads.items():
        restored = decode((out / f"{name}.png").read_bytes())
        np.testing.assert_array_equal(restored[~hole], upload[~hole])
        assert np.abs(restored[hole].astype(int) - 128).mean() > 1.0


def test_single_file_with_alpha(store: Path, tmp_path: Path, faces: np.ndarray) -> None:
    hole = center_hole(64, 64)
    rgba = np.dstack([damaged(faces[410], hole), np.where(hole, 0, 255).astype(np.uint8)])
    source = tmp_path / "photo.png"
    source.write_bytes(encode(rgba))
    assert main(_args(store, str(source), "--out", str(tmp_path / "out"), "--format", "webp")) == 0
    restored = decode((tmp_path / "out" / "photo.webp").read_bytes())
    np.testing.assert_array_equal(restored[~hole], rgba[..., :3][~hole])


def test_missing_mask_and_unknown_model(
    store: Path, tmp_path: Path, faces: np.ndarray, capsys: pytest.CaptureFixture[str]
) -> None:
    images, masks = tmp_path / "in", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    (images / "a.png").write_bytes(encode(faces[0]))
    assert main(_args(store, str(images), "--masks", str(masks), "--out", str(tmp_path / "out"))) == 2
    assert "no mask in" in capsys.readouterr().err
    args = _args(store, str(images), "--out", str(tmp_path / "out"))
    args[args.index("tiny")] = "tiny:5"
    assert main(args) == 2
    assert "has no version '5'" in capsys.readouterr().err


def test_bad_file_is_skipped_not_fatal(store: Path, tmp_path: Path, faces: np.ndarray) -> None:
    images = tmp_path / "in"
    images.mkdir()
    hole = center_hole(64, 64)
    good = np.dstack([damaged(faces[420], hole), np.where(hole, 0, 255).astype(np.uint8)])
    (images / "good.png").write_bytes(encode(good))
    (images / "opaque.png").write_bytes(encode(faces[421]))  # no alpha, no mask: skipped with a message
    assert main(_args(store, str(images), "--out", str(tmp_path / "out"))) == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.png"]


def test_a_one_pass_model_completes_offline_and_refuses_search_options(
    store: Path, tmp_path: Path, faces: np.ndarray, capsys: pytest.CaptureFixture[str]
) -> None:
    save_tiny_glcic(store)
    hole = center_hole(64, 64)
    upload = damaged(faces[420], hole)
    source, mask = tmp_path / "photo.png", tmp_path / "mask.png"
    source.write_bytes(encode(upload))
    mask.write_bytes(mask_png(hole))
    common = ["complete", str(source), "--masks", str(mask), "--out", str(tmp_path / "out"), "--model", "tiny-glcic"]
    common += ["--model-store", str(store), "--device", "cpu"]
    assert main(common) == 0
    restored = decode((tmp_path / "out" / "photo.png").read_bytes())
    np.testing.assert_array_equal(restored[~hole], upload[~hole])
    assert np.abs(restored[hole].astype(int) - 128).mean() > 1.0
    capsys.readouterr()
    assert main([*common, "--iterations", "5"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: model tiny-glcic:1 (kind glcic) takes no iterations: leave it out, or pick a model that does "
        "(GET /v1/models lists each one's parameters)"
    )
