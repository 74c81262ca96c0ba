"""scripts/retable_evaluation.py: a folder written before the median and GMS gets its tables anew, records untouched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from app.quality.evaluate import METHODS
from app.quality.report import write_tables
from app.quality.stats import mean_interval
from tests.conftest import REPO

OLD_METRICS = ("psnr", "ssim", "l1", "seam", "sharp")  # a folder's records from before hole GMS


def old_folder(folder: Path) -> None:
    """Ten photos of one family, every method, sharpness summarised by its mean as it used to be."""
    rng = np.random.default_rng(0)
    records: list[dict[str, float | int | str]] = [
        {"kind": "center", "index": i, "name": f"p{i}.jpg", "method": method}
        | {metric: float(rng.uniform(0.1, 30)) for metric in OLD_METRICS}
        for i in range(10)
        for method in METHODS
    ]
    records[0]["sharp"] = 400.0  # a nearly flat original: it carries the mean
    cells = {
        ("center", method, metric): mean_interval([float(r[metric]) for r in records if r["method"] == method])
        for method in METHODS
        for metric in OLD_METRICS
    }
    write_tables(records, cells, folder, {"n": 10, "command": "python -m app evaluate ..."})


def test_retable_turns_sharpness_into_a_median_and_keeps_the_records(tmp_path: Path) -> None:
    old_folder(tmp_path)
    before = {name: (tmp_path / name).read_bytes() for name in ("per_image.csv", "gaps.md")}
    assert "± " in (tmp_path / "table.md").read_text().splitlines()[2].split(" | ")[-1]
    script = REPO / "scripts" / "retable_evaluation.py"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, str(script), str(tmp_path)], check=True, capture_output=True, env=env)

    assert {name: (tmp_path / name).read_bytes() for name in before} == before
    table = (tmp_path / "table.md").read_text().splitlines()
    assert table[0].endswith("| hole sharpness, median [95 %] |")  # and no GMS column: the records lack it
    sharp = table[2].split(" | ")[-1]
    assert "[" in sharp and float(sharp.split()[0]) < 30  # the median, not the 400-inflated mean
    document = json.loads((tmp_path / "summary.json").read_text())
    assert document["command"] == "python -m app evaluate ..." and document["n"] == 10
    cell = next(c for c in document["cells"] if c["metric"] == "sharp")
    assert set(cell) == {"kind", "method", "metric", "n", "median", "low", "high"}
