"""`evaluate` end to end: a tiny model, 4 real held-out faces, every mask family; files read back and checked."""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from app.engine import MASK_KINDS
from app.quality.cli import add_parser
from app.quality.evaluate import MEDIAN_METRICS, METHODS, METRICS, make_cases
from app.quality.grid import COLUMNS, HEADER
from app.store import ModelStore
from tests.app.glcic_store import save_tiny_glcic
from tests.conftest import REPO
from training.data import load_images

FACES_USED = 4
SCALE, GAP = 4, 2  # the grid's enlargement of 32-pixel tiles, and its gap


def evaluate_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["evaluate", *argv])
    code: int = args.handler(args)
    return code


@pytest.fixture
def store_and_data(make_tiny_store: Callable[..., Path], faces: np.ndarray, tmp_path: Path) -> tuple[Path, Path]:
    """A tiny model whose card holds out 4 of 6 faces, and those faces as an npz with names."""
    store = make_tiny_store(("tiny",))
    names = [f"face{i}.jpg" for i in range(6)]
    data = tmp_path / "faces.npz"
    np.savez(data, images=faces[100:106], filenames=np.array(names))
    card_path = store / "tiny" / "1" / "model.json"
    card = json.loads(card_path.read_text())
    card["dataset"]["held_out"] = names[1:5]  # the weights' sha256 does not cover the card's dataset block
    card_path.write_text(json.dumps(card))
    return store, data


def run(store: Path, data: Path, out: Path, *extra: str) -> int:
    common = ["--model", "tiny", "--model-store", str(store), "--data", str(data), "--out", str(out)]
    budget = ["--iterations", "4", "--restarts", "1", "--batch", "3", "--seed", "7", "--speed-batch", "0"]
    return evaluate_cli([*common, *budget, *extra])


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_end_to_end_tables_and_grids(
    store_and_data: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, data = store_and_data
    out = tmp_path / "eval"
    assert run(store, data, out) == 0
    printed = capsys.readouterr().out

    # per-image scores: every family x held-out face x method, and only held-out faces
    per_image = read_csv(out / "per_image.csv")
    assert len(per_image) == len(MASK_KINDS) * FACES_USED * len(METHODS)
    assert {row["name"] for row in per_image} == {f"face{i}.jpg" for i in range(1, 5)}
    for row in per_image:
        assert 5 < float(row["psnr"]) < 59 and -1 <= float(row["ssim"]) <= 1
        assert 0 <= float(row["l1"]) <= 1 and 0 <= float(row["seam"]) <= 1 and 0 < float(row["gms"]) <= 1

    # summary: one cell per (family, method, metric), the mean (the median for sharpness) of the per-image rows
    summary = read_csv(out / "summary.csv")
    assert len(summary) == len(MASK_KINDS) * len(METHODS) * len(METRICS)
    for cell in summary:
        group = [r for r in per_image if (r["kind"], r["method"]) == (cell["kind"], cell["method"])]
        values = [float(r[cell["metric"]]) for r in group]
        assert int(cell["n"]) == FACES_USED
        if cell["metric"] in MEDIAN_METRICS:  # 4 photos: too few for a 95 % interval of a median
            assert cell["mean"] == cell["low"] == "" and float(cell["median"]) == pytest.approx(np.median(values))
        else:
            assert float(cell["mean"]) == pytest.approx(np.mean(values))
            assert float(cell["low"]) <= float(cell["mean"]) <= float(cell["high"])

    document = json.loads((out / "summary.json").read_text())
    assert document["split"] == "held-out" and document["n"] == FACES_USED and document["seed"] == 7
    assert document["search"]["iterations"] == 4 and document["masks"] == list(MASK_KINDS)
    assert document["command"].startswith("python -m app evaluate --model tiny")

    # the printed tables are the written ones: a row per (family, method), paired gaps a row per family
    table, gaps = (out / "table.md").read_text(), (out / "gaps.md").read_text()
    assert table in printed and gaps in printed
    assert len([line for line in table.splitlines() if line.startswith("| center |")]) == len(METHODS)
    assert [line.split(" | ")[0] for line in gaps.splitlines()[2:]] == [f"| {kind}" for kind in MASK_KINDS]

    # grids: the original column is the face, the damaged column is noise in the hole, ours keeps known pixels
    images = load_images(data, 32).images.permute(0, 2, 3, 1).numpy()[1:5]
    cases = make_cases(images, [f"face{i}.jpg" for i in range(1, 5)], "center", seed=7)
    side = 32 * SCALE
    for kind in MASK_KINDS:
        grid = np.asarray(Image.open(out / f"grid_{kind}.png").convert("RGB"))
        assert grid.shape == (HEADER + FACES_USED * (side + GAP) + GAP, len(COLUMNS) * (side + GAP) + GAP, 3)

    def tile(grid: np.ndarray, row: int, column: int) -> np.ndarray:
        top, left = HEADER + GAP + row * (side + GAP), GAP + column * (side + GAP)
        return grid[top : top + side : SCALE, left : left + side : SCALE]

    grid = np.asarray(Image.open(out / "grid_center.png").convert("RGB"))
    for row, case in enumerate(cases):
        np.testing.assert_array_equal(tile(grid, row, 0), case.truth)
        np.testing.assert_array_equal(tile(grid, row, 1), case.damaged)
        for column in range(2, len(COLUMNS)):
            np.testing.assert_array_equal(tile(grid, row, column)[~case.hole], case.truth[~case.hole])
        assert not np.array_equal(tile(grid, row, 5)[case.hole], case.damaged[case.hole])


def test_same_seed_same_figures_other_seed_other_masks(store_and_data: tuple[Path, Path], tmp_path: Path) -> None:
    store, data = store_and_data
    for name, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        assert run(store, data, tmp_path / name, "--masks", "random80", "--seed", seed) == 0
    first, again, other = (read_csv(tmp_path / name / "per_image.csv") for name in "abc")
    assert first == again
    assert first != other


def test_masks_of_a_family_do_not_depend_on_the_others_or_on_n(faces: np.ndarray) -> None:
    names = [str(i) for i in range(4)]
    few = make_cases(faces[:2], names[:2], "blocks", seed=0)
    many = make_cases(faces[:4], names, "blocks", seed=0)
    for a, b in zip(few, many[:2], strict=True):
        np.testing.assert_array_equal(a.hole, b.hole)
        np.testing.assert_array_equal(a.damaged, b.damaged)
    assert not np.array_equal(many[0].hole, many[1].hole)


def test_requests_that_cannot_run(
    store_and_data: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, data = store_and_data
    assert run(store, data, tmp_path / "x", "--masks", "center,circle") == 2
    assert "unknown mask families" in capsys.readouterr().err
    strangers = tmp_path / "strangers.npz"
    np.savez(strangers, images=np.zeros((2, 32, 32, 3), np.uint8), filenames=np.array(["x.jpg", "y.jpg"]))
    assert run(store, strangers, tmp_path / "y") == 2
    assert "--all-images" in capsys.readouterr().err
    assert run(store, strangers, tmp_path / "z", "--all-images", "--masks", "half") == 0
    assert json.loads((tmp_path / "z" / "summary.json").read_text())["split"] == "all"


def test_registered_on_python_m_app(store_and_data: tuple[Path, Path], tmp_path: Path) -> None:
    from app.__main__ import main

    store, data = store_and_data
    out = tmp_path / "m"
    argv = ["evaluate", "--model", "tiny", "--model-store", str(store), "--data", str(data), "--out", str(out)]
    assert main([*argv, "--masks", "center", "--iterations", "2", "--restarts", "1"]) == 0
    assert len(read_csv(out / "per_image.csv")) == FACES_USED * len(METHODS)


def test_families_run_apart_merge_into_one_folder(store_and_data: tuple[Path, Path], tmp_path: Path) -> None:
    store, data = store_and_data
    for kind in ("half", "center"):
        assert run(store, data, tmp_path / kind, "--masks", kind) == 0
    out = tmp_path / "merged"
    script = REPO / "scripts" / "merge_evaluations.py"
    folders = [str(tmp_path / kind) for kind in ("half", "center")]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, str(script), str(out), *folders], check=True, capture_output=True, env=env)

    merged = read_csv(out / "per_image.csv")
    assert merged == read_csv(tmp_path / "half" / "per_image.csv") + read_csv(tmp_path / "center" / "per_image.csv")
    table = (out / "table.md").read_text().splitlines()
    for kind in ("half", "center"):
        alone = (tmp_path / kind / "table.md").read_text().splitlines()
        assert [line for line in table if line.startswith(f"| {kind} |")] == alone[2:]
        assert (out / f"grid_{kind}.png").read_bytes() == (tmp_path / kind / f"grid_{kind}.png").read_bytes()
    gaps = (out / "gaps.md").read_text().splitlines()
    assert [line.split(" | ")[0] for line in gaps[2:]] == ["| half", "| center"]
    document = json.loads((out / "summary.json").read_text())
    assert document["masks"] == ["half", "center"] and set(document["per_family"]) == {"half", "center"}
    assert document["per_family"]["center"]["command"].endswith(f"--out {tmp_path / 'center'}")

    recorder = REPO / "scripts" / "record_quality.py"
    subprocess.run([sys.executable, str(recorder), str(out), str(store / "tiny" / "1")], check=True, env=env)
    card = json.loads((store / "tiny" / "1" / "model.json").read_text())
    assert set(card["quality"]["results"]) == set(card["quality"]["gaps"]) == {"half", "center"}
    assert card["quality"]["n_per_mask"] == FACES_USED and len(card["quality"]["commands"]) == 2
    assert ModelStore.discover(store, "tiny").resolve("tiny").load(torch.device("cpu")).card == card

    assert run(store, data, tmp_path / "other", "--masks", "blocks", "--seed", "8") == 0
    refused = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "x"), folders[0], str(tmp_path / "other")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert refused.returncode != 0 and "seed" in refused.stderr and "only merge runs of one setting" in refused.stderr


def test_photos_at_their_own_size_through_the_service_path(store_and_data: tuple[Path, Path], tmp_path: Path) -> None:
    """--photo-size 96 on a 32x32 model: masks drawn, methods run and grids drawn at 96x96, known pixels kept."""
    store, data = store_and_data
    out = tmp_path / "native"
    assert run(store, data, out, "--photo-size", "96", "--masks", "center,strokes") == 0
    document = json.loads((out / "summary.json").read_text())
    assert document["photo_size"] == 96 and "--photo-size 96" in document["command"]
    per_image = read_csv(out / "per_image.csv")
    assert {row["method"] for row in per_image} == set(METHODS)
    assert all(float(row["sharp"]) >= 0 for row in per_image)
    # the edge fill changes the answer near the hole's edge on these 3x photos, nowhere else
    ours = {(r["kind"], r["index"]): float(r["psnr"]) for r in per_image if r["method"] == "ours"}
    no_edge = {(r["kind"], r["index"]): float(r["psnr"]) for r in per_image if r["method"] == "ours-no-edge"}
    assert ours != no_edge
    grid = np.asarray(Image.open(out / "grid_strokes.png").convert("RGB"))
    assert grid.shape == (HEADER + FACES_USED * (96 + GAP) + GAP, len(COLUMNS) * (96 + GAP) + GAP, 3)
    images = load_images(data, 96).images.permute(0, 2, 3, 1).numpy()[1:5]
    (case, *_) = make_cases(images, [f"face{i}.jpg" for i in range(1, 5)], "strokes", seed=7)
    top, left = HEADER + GAP, GAP + 5 * (96 + GAP)
    np.testing.assert_array_equal(grid[top : top + 96, left : left + 96][~case.hole], case.truth[~case.hole])
    assert "edge fill's gain" in (out / "gaps.md").read_text()


def test_a_search_and_a_one_pass_model_side_by_side(
    store_and_data: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Both kinds on the same held-out photos and holes: one table, paired gaps per model, speed, a grid column each."""
    store, data = store_and_data
    folder = save_tiny_glcic(store, "tiny-glcic")
    card = json.loads((folder / "model.json").read_text())
    card["dataset"]["held_out"] = [f"face{i}.jpg" for i in range(1, 4)]  # face4 is held out by tiny only
    (folder / "model.json").write_text(json.dumps(card))
    out = tmp_path / "both"
    common = ["--model-store", str(store), "--data", str(data), "--iterations", "4", "--restarts", "1", "--seed", "7"]
    argv = ["--model", "tiny,tiny-glcic", "--masks", "center,blocks", "--speed-batch", "4", "--out", str(out)]
    assert evaluate_cli([*common, *argv]) == 0
    printed = capsys.readouterr().out

    models = ["tiny:1", "tiny-glcic:1"]
    per_image = read_csv(out / "per_image.csv")
    assert {row["method"] for row in per_image} == {"mean", "telea", "ns", *models}
    assert {row["name"] for row in per_image} == {f"face{i}.jpg" for i in range(1, 4)}  # held out by both
    assert len(per_image) == 2 * 3 * 5
    document = json.loads((out / "summary.json").read_text())
    assert document["models"]["tiny-glcic:1"]["kind"] == "glcic" and document["models"]["tiny:1"]["kind"] == "search"
    assert document["search"]["iterations"] == 4 and set(document["seconds"]) == set(models)

    gaps = (out / "gaps.md").read_text()
    rows = [line.split(" | ") for line in gaps.splitlines()[2:]]
    assert [(row[0], row[1]) for row in rows] == [(f"| {k}", m) for k in ("center", "blocks") for m in models]
    assert all(row[-1] == "(reference) |" for row in rows if row[1] == "tiny:1")
    assert all(row[-1].endswith(("win |", "tie |", "loss |")) for row in rows if row[1] == "tiny-glcic:1")

    speed = (out / "speed.md").read_text()
    assert gaps in printed and speed in printed
    lines = {line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in speed.splitlines() if line[:3] == "| t"}
    assert lines["tiny:1"][1:3] == ["search", "4"] and lines["tiny-glcic:1"][1:3] == ["glcic", "one pass"]
    assert all(float(lines[m][3]) > 0 and float(lines[m][4]) > 0 for m in models)

    images = load_images(data, 32).images.permute(0, 2, 3, 1).numpy()[1:4]
    cases = make_cases(images, [f"face{i}.jpg" for i in range(1, 4)], "blocks", seed=7)
    grid = np.asarray(Image.open(out / "grid_blocks.png").convert("RGB"))
    side = 32 * SCALE
    assert grid.shape[1] == 6 * (side + GAP) + GAP  # original, damaged, telea, ns, then each model
    for row, case in enumerate(cases):
        top, left = HEADER + GAP + row * (side + GAP), GAP + 5 * (side + GAP)
        tile = grid[top : top + side : SCALE, left : left + side : SCALE]
        np.testing.assert_array_equal(tile[~case.hole], case.truth[~case.hole])
        assert not np.array_equal(tile[case.hole], case.damaged[case.hole])


def test_model_lists_that_cannot_run(
    store_and_data: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, data = store_and_data
    save_tiny_glcic(store, "tiny-glcic")
    common = ["--model-store", str(store), "--data", str(data), "--out", str(tmp_path / "x"), "--all-images"]
    refusals = {
        ("--model", "tiny-glcic", "--iterations", "3"): "--iterations tune a search",
        ("--model", "tiny,tiny-glcic", "--curves", "0,2"): "pass one search model",
        ("--model", "tiny,tiny:1"): "names one version twice",
        ("--model", "tiny,cats"): "cats",
    }
    for argv, message in refusals.items():
        assert evaluate_cli([*common, *argv]) == 2
        assert message in capsys.readouterr().err
