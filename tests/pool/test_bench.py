"""`python -m app bench` end to end on a tiny model with short windows: every cell measured, files written."""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from app.__main__ import main


@pytest.fixture(autouse=True)
def _no_server_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bench's servers read IMGCOMP_* variables: one in the shell must not leak in."""
    for name in [name for name in os.environ if name.startswith("IMGCOMP_")]:
        monkeypatch.delenv(name)


def _photos(folder: Path) -> Path:
    """Six seeded noise photos at the tiny models' 32x32, as the .npz the bench reads."""
    images = folder / "photos.npz"
    np.savez(images, images=np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8))
    return images


def test_bench_measures_every_cell_and_writes_csv_and_png(
    make_tiny_store: Callable[..., Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = make_tiny_store(("tiny",))
    images = _photos(tmp_path)
    argv = ["bench", "--model-store", str(store), "--model", "tiny", "--images", str(images), "--clients", "1,4"]
    argv += ["--duration", "0.6", "--warmup", "0.2", "--iterations", "5,20", "--http-clients", "2"]
    argv += ["--out", str(tmp_path)]
    assert main(argv) == 0

    with (tmp_path / "bench.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    cells = {(row["mode"], row["transport"], row["precision"], int(row["clients"])) for row in rows}
    assert cells == {("iteration", "http", "fp32", 2)} | {
        (mode, "engine", precision, clients)
        for clients in (1, 4)
        for mode, precision in [
            ("one-at-a-time", "fp32"),
            ("request-batch", "fp32"),
            ("iteration", "fp32"),
            ("iteration", "bf16"),
        ]
    }
    for row in rows:
        assert float(row["image_iterations_per_s"]) > 0 and int(row["completed"]) > 0, row
        assert 0 < float(row["peak_share"]) < 10, row
        assert 1 <= float(row["slots_per_step"]) <= int(row["clients"]), row
    assert (tmp_path / "bench.png").read_bytes().startswith(b"\x89PNG")
    assert "iteration fp32 at 4 clients" in capsys.readouterr().out


def test_defaults_bench_serves_each_side_with_its_own_defaults(
    make_tiny_store: Callable[..., Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import torch

    from tests.conftest import TINY
    from training.checkpoint import save_with_encoder
    from training.networks import Encoder, EncoderConfig

    store = make_tiny_store(("tiny",))
    torch.manual_seed(2)
    save_with_encoder(store / "tiny" / "1", "2", Encoder(TINY, EncoderConfig(width=8, groups=4)).eval(), {})
    images = _photos(tmp_path)
    argv = ["bench", "--model-store", str(store), "--model", "tiny", "--images", str(images)]
    argv += ["--defaults", "tiny:1@fp32,tiny:2@bf16,tiny:2@bf16/0", "--http-clients", "1,3"]
    argv += ["--duration", "1.5", "--warmup", "0.3"]
    argv += ["--out", str(tmp_path)]
    assert main(argv) == 0
    with (tmp_path / "defaults.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    cells = {(row["mode"], row["precision"], int(row["clients"])) for row in rows}
    sides = [("tiny:1 random", "fp32"), ("tiny:2 encoder", "bf16"), ("tiny:2 encoder 0 it", "bf16")]
    assert cells == {(mode, precision, c) for mode, precision in sides for c in (1, 3)}
    for row in rows:
        assert float(row["image_iterations_per_s"]) > 0, row
    # the random start's default is 2 restarts stepped together; the encoder's is 1
    alone = {row["mode"]: float(row["slots_per_step"]) for row in rows if row["clients"] == "1"}
    assert alone["tiny:1 random"] == pytest.approx(2.0, abs=0.3) and alone["tiny:2 encoder"] <= 1.0
    assert (tmp_path / "defaults.png").read_bytes().startswith(b"\x89PNG")
    assert "tiny:2 encoder bf16 http" in capsys.readouterr().out


def test_step_profile_prints_every_variant(
    make_tiny_store: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = make_tiny_store(("tiny",))
    argv = ["bench", "--model-store", str(store), "--model", "tiny", "--profile", "1,4", "--precisions", "fp32"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith(("plain", "channels"))]
    assert [(line[0], line[2]) for line in lines] == [
        ("plain", "1"),
        ("plain", "4"),
        ("channels_last", "1"),
        ("channels_last", "4"),
    ]
    for line in lines:
        g_forward, d_forward, step, without_d = float(line[3]), float(line[4]), float(line[6]), float(line[7])
        assert 0 < g_forward < step and 0 < d_forward < step and 0 < without_d, line


def test_defaults_bench_puts_a_one_pass_model_beside_a_search(
    make_tiny_store: Callable[..., Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.app.glcic_store import save_tiny_glcic

    store = make_tiny_store(("tiny",))
    save_tiny_glcic(store)
    images = _photos(tmp_path)
    argv = ["bench", "--model-store", str(store), "--model", "tiny", "--images", str(images)]
    argv += ["--defaults", "tiny:1@fp32,tiny-glcic:1@fp32", "--http-clients", "2", "--region", "whole"]
    argv += ["--duration", "1.0", "--warmup", "0.3", "--out", str(tmp_path)]
    assert main(argv) == 0
    with (tmp_path / "defaults.csv").open() as handle:
        rows = {row["mode"]: row for row in csv.DictReader(handle)}
    assert set(rows) == {"tiny:1 random region=whole", "tiny-glcic:1 glcic region=whole", "tiny-glcic:1 glcic network"}
    one_pass = rows["tiny-glcic:1 glcic region=whole"]
    # one forward per image: images per second is the server's rows stepped, and every request is one of them
    assert int(one_pass["completed"]) > 0 and float(one_pass["gflops"]) > 0
    assert float(one_pass["image_iterations_per_s"]) == pytest.approx(float(one_pass["completions_per_s"]), rel=0.5)
    # the network alone, in the same run, at a batch of the client count: what HTTP is measured against
    network = rows["tiny-glcic:1 glcic network"]
    assert (network["transport"], network["clients"]) == ("in-process", "2")
    assert float(network["completions_per_s"]) == pytest.approx(float(network["image_iterations_per_s"]), rel=0.01)
    assert float(network["slots_per_step"]) == 2.0 and float(network["gflops"]) > 0
    # each server is a process of its own: its CPU per completion is counted apart from the clients'
    for side in ("tiny:1 random region=whole", "tiny-glcic:1 glcic region=whole"):
        assert float(rows[side]["server_cpu_ms"]) > 0 and float(rows[side]["client_cpu_ms"]) > 0, rows[side]
    assert network["server_cpu_ms"] == "nan" and network["client_cpu_ms"] == "nan"
    out = capsys.readouterr().out
    assert "tiny-glcic:1 glcic region=whole fp32 http" in out
    # --defaults measures no matmul peak: its %peak column says so instead of printing nan%
    table = out[out.index("%peak") :].splitlines()[2:5]
    assert len(table) == 3 and all(line.endswith(" -") for line in table), table
    assert "nan" not in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--defaults", "tiny:1@fp32,tiny-glcic:1@fp32/0"], "tiny-glcic:1 (kind glcic) takes no /iterations"),
        (["--model", "tiny-glcic", "--http-clients", "1"], "compare it with a search model through HTTP"),
        (["--defaults", "tiny:1@fp64"], "precision 'fp64' of 'tiny:1@fp64' is not one of"),
    ],
)
def test_bench_refuses_what_it_cannot_time_in_one_line(
    make_tiny_store: Callable[..., Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    from tests.app.glcic_store import save_tiny_glcic

    store = make_tiny_store(("tiny",))
    save_tiny_glcic(store)
    argv = ["bench", "--model-store", str(store), "--model", "tiny", "--out", str(tmp_path), *extra]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_a_one_pass_models_profile_times_its_forward_in_each_layout(
    make_tiny_store: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.app.glcic_store import save_tiny_glcic

    store = make_tiny_store(("tiny",))
    save_tiny_glcic(store)
    argv = ["bench", "--model-store", str(store), "--model", "tiny-glcic", "--profile", "1,2"]
    assert main([*argv, "--precisions", "fp32,bf16", "--out", str(tmp_path)]) == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith(("plain", "channels"))]
    assert [(line[0], line[1], line[2]) for line in lines] == [
        (layout, precision, batch)
        for layout in ("plain", "channels_last")
        for precision in ("fp32", "bf16")
        for batch in ("1", "2")
    ]
    assert all(float(line[3]) > 0 and float(line[4]) > 0 for line in lines)
