"""The framing network's training: examples whose answer is where the face's points truly are, and a run that
writes a helper model the store does not serve."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from app.faces.refine import FaceFramer
from app.store import ModelStore
from training.__main__ import main
from training.checkpoint import load_model, read_card, save_checkpoint
from training.framing_data import make_examples
from training.framing_net import TEMPLATE, FramingNet
from training.networks import Discriminator, Generator, NetworkConfig

FACES_200_ZIP = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "utkface_crop_part1_200.zip"


def _dots() -> np.ndarray:
    """A dark 200x200 'face' with a bright dot at each template point."""
    face = np.full((200, 200, 3), 40, dtype=np.uint8)
    for x, y in TEMPLATE:
        cv2.circle(face, (int(x), int(y)), 6, (255, 255, 255), -1)
    return face


def test_an_examples_answer_is_where_the_faces_points_land_in_its_crop() -> None:
    """Whatever the framing's error, the brightest spot near each answered point is that point's dot."""
    faces = _dots()[None]
    examples = make_examples(faces, 24, 64, np.random.default_rng(3), family="none")
    moved = 0.0
    for crop, points in zip(examples.crops, examples.points, strict=True):
        brightness = crop.mean(dim=0).numpy()
        blurred = cv2.GaussianBlur(brightness, (0, 0), 1.0)
        for x, y in points.numpy() * 64 / 200:
            near = blurred[max(0, int(y) - 6) : int(y) + 7, max(0, int(x) - 6) : int(x) + 7]
            peak_y, peak_x = np.unravel_index(np.argmax(near), near.shape)
            found = np.array([peak_x + max(0, int(x) - 6), peak_y + max(0, int(y) - 6)]) + 0.5
            assert np.hypot(*(found - (x, y))) < 1.5  # model pixels: the dot is where the answer says
        moved += float(np.abs(points.numpy() - TEMPLATE).mean())
    assert moved / len(examples.points) > 2.0  # and the framings were off: the answers are not the template


def test_holes_hide_pixels_and_the_hidden_pixels_are_zero() -> None:
    faces = _dots()[None]
    examples = make_examples(faces, 16, 64, np.random.default_rng(5), family="half")
    hidden = ~examples.known
    assert all(bool(row.any()) for row in hidden)  # every half-face example lost pixels
    assert float(examples.crops.permute(0, 2, 3, 1)[hidden].abs().max()) == 0.0


@pytest.fixture(scope="module")
def small_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twenty of the real 200x200 crops, so a run reads real faces in seconds."""
    if not FACES_200_ZIP.exists():
        pytest.fail(f"{FACES_200_ZIP} is missing: the tests read the shared data set beside the repository")
    path = tmp_path_factory.mktemp("data") / "faces.zip"
    with zipfile.ZipFile(FACES_200_ZIP) as source, zipfile.ZipFile(path, "w") as target:
        for name in [n for n in source.namelist() if n.endswith(".jpg")][:20]:
            target.writestr(name, source.read(name))
    return path


def test_a_run_writes_a_framer_the_store_does_not_serve(small_zip: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    config = NetworkConfig(resolution=64, z_dim=8, g_width=4, d_width=4)
    card = {"dataset": {"name": "none", "licence": "n/a", "held_out": []}, "training": {"steps": 0}}
    save_checkpoint(store, "faces", "1", Generator(config), Discriminator(config), config, card)
    args = ["framing", "--data", str(small_zip), "--model-store", str(store), "--run-dir", str(tmp_path / "run")]
    args += ["--steps", "4", "--batch-size", "4", "--width", "4", "--sample-every", "2", "--no-progress"]
    assert main(args) == 0
    folder = store / "faces-framing" / "1"
    card = read_card(folder)
    assert card["kind"] == "framing"
    assert set(card["validation"]) == {"none", "block", "half", "strokes", "block+strokes"}
    assert isinstance(load_model(folder).networks["framer"], FramingNet)
    assert [entry.key for entry in ModelStore.discover(store, "faces").entries()] == ["faces:1"]
    framer = FaceFramer.discover(store, "faces-framing")
    assert framer is not None and framer.key == "faces-framing:1"
    assert FaceFramer.discover(store, "") is None
    assert sorted(p.name for p in (tmp_path / "run").glob("*.png")) == [
        "loss_curve.png",
        "samples_000002.png",
        "samples_000004.png",
        "samples_final.png",
    ]
    with Image.open(io.BytesIO((folder / "samples.png").read_bytes())) as grid:
        assert grid.width > 128 * 4
