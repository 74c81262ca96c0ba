"""`evaluate --curves`: one run per start read at every checkpoint equals separate runs at each budget."""

from __future__ import annotations

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

from app.engine import SearchParams, SearchRunner, finish, prepare
from app.engine.search import SearchJob
from app.quality.curves import RealismScore, Start, curve_records
from app.quality.evaluate import make_cases
from app.quality.metrics import hole_psnr
from tests.conftest import REPO, TINY
from tests.quality.test_evaluate import evaluate_cli, store_and_data  # noqa: F401  (a fixture)
from training.checkpoint import save_with_encoder
from training.networks import Encoder, EncoderConfig


def test_each_checkpoint_is_the_answer_of_that_budget(runner: SearchRunner, faces: np.ndarray) -> None:
    images = np.stack([np.asarray(face) for face in faces[200:203, ::2, ::2]])  # 32x32, the tiny model's size
    cases = make_cases(images, ["a", "b", "c"], "strokes", seed=3)
    start = Start("random", 2, 0.003)
    realism = RealismScore(runner, images)
    records = curve_records(cases, runner, start, [1, 4, 9], SearchParams(seed=5), 4, realism)
    assert len(records) == 3 * 3
    for budget in (1, 4, 9):
        params = SearchParams(iterations=budget, restarts=2, prior_weight=0.003, seed=5)
        for case in cases:
            prepared = prepare(case.damaged, case.hole, 32)
            alone = runner.run([SearchJob(prepared.target, prepared.hole, params)])[0]
            expected = hole_psnr(finish(case.damaged, case.hole, alone.generated), case.truth, case.hole)
            found = [r for r in records if r["index"] == case.index and r["iterations"] == budget]
            assert len(found) == 1 and found[0]["psnr"] == pytest.approx(expected, abs=0.05)
            assert found[0]["realism"] in (0.0, 1.0)


def test_start_spec_is_parsed_or_refused() -> None:
    assert Start.parse("encoder:1:0") == Start("encoder", 1, 0.0)
    assert Start.parse("random:2:0.003").label == "random:2:0.003"
    assert Start.parse("encoder:1:0.003:100") == Start("encoder", 1, 0.003, until=100)
    with pytest.raises(ValueError, match=r"init:restarts:prior_weight\[:until\]"):
        Start.parse("sideways:1:0")


def test_curves_cli_writes_tables_plot_and_gaps(
    store_and_data: tuple[Path, Path],  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store, data = store_and_data
    torch.manual_seed(1)
    save_with_encoder(store / "tiny" / "1", "2", Encoder(TINY, EncoderConfig(width=8, groups=4)).eval(), {})
    out = tmp_path / "curves"
    argv = ["--model", "tiny", "--model-store", str(store), "--data", str(data), "--out", str(out)]
    argv += ["--masks", "center,half", "--curves", "0,2,25", "--reference-iterations", "2", "--batch", "3"]
    assert evaluate_cli(argv) == 0
    with (out / "curves.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    starts = {"random:2:0.003", "encoder:1:0", "encoder:1:0.003"}
    assert {(r["start"], r["iterations"]) for r in rows} == {(s, k) for s in starts for k in ("0", "2", "25")}
    assert len(rows) == 3 * 3 * 2 * 4  # starts x checkpoints x families x held-out photos
    encoder_zero = [r for r in rows if r["start"] == "encoder:1:0" and r["iterations"] == "0"]
    assert all(r["ran"] == "0" for r in encoder_zero)
    text = (out / "curves.md").read_text()
    assert "Hole PSNR minus random:2:0.003 at 2 iterations" in text and "| encoder:1:0 | 25 |" in text
    assert json.loads((out / "curves.json").read_text())["checkpoints"] == [0, 2, 25]
    assert (out / "curves.png").read_bytes().startswith(b"\x89PNG")
    assert "## Paired gaps" in capsys.readouterr().out
    assert "## The service default: encoder:1:0, iterations set by the hole" in text
    # a 32x32 centre hole is 8 pixels deep (a quarter of the side): the short budget
    assert "| center | 25 |" in text and "| half | 0 |" in text  # half a photo: the one-pass answer
    (out / "curves.md").unlink()
    report = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "curves_report.py"),
            str(out),
            "--resolution",
            "32",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert report.returncode == 0, report.stderr
    assert (out / "curves.md").read_text() == text


def test_curves_refuse_encoder_starts_without_an_encoder(
    store_and_data: tuple[Path, Path],  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    make_tiny_store: Callable[..., Path],
) -> None:
    store, data = store_and_data
    argv = ["--model", "tiny", "--model-store", str(store), "--data", str(data), "--out", str(tmp_path)]
    assert evaluate_cli([*argv, "--curves", "0,2", "--starts", "encoder:1:0"]) == 2
    assert "has no encoder" in capsys.readouterr().err


def test_curves_refuse_a_reference_budget_they_do_not_reach(
    store_and_data: tuple[Path, Path],  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The paired gaps read the reference start at --reference-iterations: a checkpoint it never reaches is refused,
    not answered with empty gap tables."""
    store, data = store_and_data
    argv = ["--model", "tiny", "--model-store", str(store), "--data", str(data), "--out", str(tmp_path)]
    assert evaluate_cli([*argv, "--curves", "0,2", "--reference-iterations", "400"]) == 2
    assert "--reference-iterations 400 is not among the --curves checkpoints 0,2" in capsys.readouterr().err
    assert not (tmp_path / "curves.md").exists()
