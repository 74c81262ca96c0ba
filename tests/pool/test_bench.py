"""`python -m app bench` end to end on a tiny model with short windows: every cell measured, files written."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np

from app.bench.cli import main


def test_bench_measures_every_engine_cell_and_writes_csv_and_png(
    make_tiny_store: Callable[..., Path], tmp_path: Path
) -> None:
    store = make_tiny_store(("tiny",))
    images = tmp_path / "photos.npz"
    np.savez(images, images=np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8))
    out = io.StringIO()
    argv = ["--model-store", str(store), "--model", "tiny", "--images", str(images), "--clients", "1,4"]
    argv += ["--duration", "0.6", "--warmup", "0.2", "--iterations", "5,20", "--http-clients", "", "--out", str(tmp_path)]
    assert main(argv, out) == 0

    with (tmp_path / "bench.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    cells = {(row["mode"], row["precision"], int(row["clients"])) for row in rows}
    assert cells == {
        (mode, precision, clients)
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
    assert "iteration fp32 at 4 clients" in out.getvalue()
