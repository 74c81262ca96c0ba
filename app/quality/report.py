"""Write an evaluation as a table (text), CSV and JSON files and grid PNGs."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from app.quality.evaluate import METHODS, METRICS, Evaluation
from app.quality.grid import comparison_grid

DIGITS = {"psnr": 2, "ssim": 3, "l1": 4, "seam": 4}
HEADINGS = {"psnr": "hole PSNR dB", "ssim": "SSIM", "l1": "hole L1", "seam": "seam grad err"}


def format_table(evaluation: Evaluation) -> str:
    """Markdown table: one row per (family, method), each cell `mean ± 95 % half-width`."""
    lines = [
        "| masks | method | n | " + " | ".join(HEADINGS[m] for m in METRICS) + " |",
        "|---|---|---:|" + "---:|" * len(METRICS),
    ]
    for kind in evaluation.cases:
        for method in METHODS:
            cells = {metric: evaluation.cells[(kind, method, metric)] for metric in METRICS}
            figures = [f"{c.mean:.{DIGITS[m]}f} ± {c.half_width:.{DIGITS[m]}f}" for m, c in cells.items()]
            lines.append(f"| {kind} | {method} | {cells['psnr'].n} | " + " | ".join(figures) + " |")
    return "\n".join(lines) + "\n"


def summary_rows(evaluation: Evaluation) -> list[dict[str, Any]]:
    return [
        {"kind": kind, "method": method, "metric": metric, **interval.to_dict()}
        for (kind, method, metric), interval in evaluation.cells.items()
    ]


def write_outputs(evaluation: Evaluation, out: Path, settings: dict[str, Any], grid_rows: int = 8) -> list[Path]:
    """summary.csv, summary.json (settings + cells), per_image.csv, table.md and grid_<family>.png; returns them."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    rows = summary_rows(evaluation)
    with (out / "summary.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    written.append(out / "summary.csv")
    with (out / "per_image.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(evaluation.records[0]))
        writer.writeheader()
        writer.writerows(evaluation.records)
    written.append(out / "per_image.csv")
    iterations = [case.iterations for cases in evaluation.cases.values() for case in cases]
    document = {
        **settings,
        "search_seconds": round(evaluation.search_seconds, 2),
        "mean_search_iterations": sum(iterations) / len(iterations),
        "cells": rows,
    }
    (out / "summary.json").write_text(json.dumps(document, indent=2) + "\n")
    (out / "table.md").write_text(format_table(evaluation))
    written += [out / "summary.json", out / "table.md"]
    for kind, cases in evaluation.cases.items():
        path = out / f"grid_{kind}.png"
        comparison_grid(cases[:grid_rows]).save(path)
        written.append(path)
    return written
