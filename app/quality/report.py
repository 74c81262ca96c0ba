"""Write an evaluation as tables (markdown), CSV and JSON files and grid PNGs."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from app.quality.baselines import BASELINES
from app.quality.evaluate import LONE, METRICS, Evaluation
from app.quality.gaps import Record, family_gaps, format_gaps, format_model_gaps, model_gaps
from app.quality.grid import comparison_grid, grid_columns
from app.quality.stats import Cell

Cells = Mapping[tuple[str, str, str], Cell]

DIGITS = {"psnr": 2, "ssim": 3, "l1": 4, "seam": 4, "sharp": 2, "gms": 3}
HEADINGS = {
    "psnr": "hole PSNR dB",
    "ssim": "SSIM",
    "l1": "hole L1",
    "seam": "seam grad err",
    "sharp": "hole sharpness, median [95 %]",
    "gms": "hole GMS",
}


def format_table(cells: Cells) -> str:
    """Markdown table: one row per (family, method), each cell `mean ± 95 % half-width` or `median [95 %]`."""
    metrics = [metric for metric in METRICS if any(key[2] == metric for key in cells)]
    lines = [
        "| masks | method | n | " + " | ".join(HEADINGS[m] for m in metrics) + " |",
        "|---|---|---:|" + "---:|" * len(metrics),
    ]
    methods = list(dict.fromkeys(method for _, method, _ in cells))
    for kind in dict.fromkeys(kind for kind, _, _ in cells):
        for method in methods:
            row = {metric: cells[(kind, method, metric)] for metric in metrics}
            figures = [cell.text(DIGITS[metric]) for metric, cell in row.items()]
            lines.append(f"| {kind} | {method} | {row['psnr'].n} | " + " | ".join(figures) + " |")
    return "\n".join(lines) + "\n"


def summary_rows(cells: Cells) -> list[dict[str, Any]]:
    return [
        {"kind": kind, "method": method, "metric": metric, **interval.to_dict()}
        for (kind, method, metric), interval in cells.items()
    ]


def format_any_gaps(records: Sequence[Record]) -> str:
    """One model's gaps (with its blend and edge-fill ablations), or several models' side by side."""
    methods = list(dict.fromkeys(str(record["method"]) for record in records))
    if LONE in methods:
        return format_gaps(family_gaps(records))
    return format_model_gaps(model_gaps(records, [m for m in methods if m not in BASELINES]))


def write_tables(records: Sequence[Record], cells: Cells, out: Path, document: dict[str, Any]) -> list[Path]:
    """summary.csv, per_image.csv, summary.json (document + cells), table.md and gaps.md; returns them."""
    out.mkdir(parents=True, exist_ok=True)
    rows = summary_rows(cells)
    with (out / "summary.csv").open("w", newline="") as handle:  # a median's row leaves `mean` empty
        writer = csv.DictWriter(handle, fieldnames=list(dict.fromkeys(key for row in rows for key in row)))
        writer.writeheader()
        writer.writerows(rows)
    with (out / "per_image.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)
    (out / "summary.json").write_text(json.dumps({**document, "cells": rows}, indent=2) + "\n")
    (out / "table.md").write_text(format_table(cells))
    (out / "gaps.md").write_text(format_any_gaps(records))
    return [out / name for name in ("summary.csv", "per_image.csv", "summary.json", "table.md", "gaps.md")]


def read_records(folder: Path) -> list[Record]:
    """The per-image scores of a written folder, typed as `evaluate` made them (for merging and gaps)."""
    with (folder / "per_image.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    held = [metric for metric in METRICS if rows and metric in rows[0]]  # older folders lack the newer metrics
    return [{**row, "index": int(row["index"]), **{metric: float(row[metric]) for metric in held}} for row in rows]


def write_outputs(evaluation: Evaluation, out: Path, settings: dict[str, Any], grid_rows: int = 8) -> list[Path]:
    """The tables of `write_tables` and a grid_<family>.png per family; returns every file written."""
    every = [case for cases in evaluation.cases.values() for case in cases]
    first = next(iter(evaluation.seconds))
    document = {
        **settings,
        "search_seconds": round(evaluation.search_seconds, 2),
        "mean_search_iterations": sum(case.iterations[first] for case in every) / len(every),
        "seconds": {label: round(seconds, 2) for label, seconds in evaluation.seconds.items()},
    }
    written = write_tables(evaluation.records, evaluation.cells, out, document)
    columns = grid_columns(evaluation.methods)
    for kind, cases in evaluation.cases.items():
        path = out / f"grid_{kind}.png"
        comparison_grid(cases[:grid_rows], columns).save(path)
        written.append(path)
    return written
