"""Quality against iterations: one search per start, read at every checkpoint on the way.

A restart's path does not depend on its budget (every per-row quantity is its
own), so a search run to the largest checkpoint and read with `SearchBatch.peek`
after k steps gives exactly the answer of a k-iteration search. One run per
start therefore yields the whole curve. Each answer is finished as the service
finishes it (Poisson blend into the damaged photo) and scored on the hole.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from app.engine import SearchJob, SearchParams, SearchRunner
from app.engine.restore import Restoration
from app.engine.search import INITS, Init
from app.quality.evaluate import Case, case_rng
from app.quality.gaps import Record, verdict
from app.quality.metrics import hole_psnr, ssim
from app.quality.stats import Interval, mean_interval
from training.masks import make_mask

CURVE_METRICS = ("psnr", "ssim", "realism")


@dataclass(frozen=True)
class Start:
    """How a curve's searches start and what each step costs: `init:restarts:prior_weight[:until]`.

    `until` stops this start's curve at that many iterations (an ablation need not pay for the whole range).
    """

    init: Init
    restarts: int
    prior_weight: float
    until: int | None = None

    @property
    def label(self) -> str:
        return f"{self.init}:{self.restarts}:{self.prior_weight:g}"

    @classmethod
    def parse(cls, text: str) -> Start:
        parts = text.strip().split(":")
        if len(parts) not in (3, 4) or parts[0] not in INITS:
            raise ValueError(
                f"a start is init:restarts:prior_weight[:until] with init one of {', '.join(INITS)}, got {text!r}"
            )
        init: Init = "encoder" if parts[0] == "encoder" else "random"
        return cls(init, int(parts[1]), float(parts[2]), int(parts[3]) if len(parts) == 4 else None)


def step_of(iterations: int) -> int:
    """The step after which a peek is the `iterations`-budget answer (0 = the start's image, seen at step 1)."""
    return max(iterations, 1)


class RealismScore:
    """1 when D rates a completion above the median logit of the real photos, else 0: its mean is the share
    of completions D finds as real as a typical real photo."""

    def __init__(self, runner: SearchRunner, real: np.ndarray) -> None:
        self._discriminator, self._device = runner.discriminator, runner.device
        self.threshold = float(np.median(self._logits(real)))

    @torch.no_grad()
    def _logits(self, images: np.ndarray) -> np.ndarray:
        batch = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div(127.5).sub(1)
        return self._discriminator(batch.to(self._device)).float().cpu().numpy()

    def __call__(self, image: np.ndarray) -> float:
        return float(self._logits(image[None])[0] > self.threshold)


def curve_records(
    cases: Sequence[Case],
    runner: SearchRunner,
    start: Start,
    checkpoints: Sequence[int],
    base: SearchParams,
    slots: int,
    realism: Callable[[np.ndarray], float],
    progress: Callable[[int], None] | None = None,
) -> list[Record]:
    """Every case searched from `start` to the largest checkpoint; one scored record per (case, checkpoint)."""
    checkpoints = [k for k in checkpoints if start.until is None or k <= start.until]
    top = max(checkpoints)
    params = replace(
        base, init=start.init, restarts=start.restarts, prior_weight=start.prior_weight, iterations=max(top, 1)
    )
    resolution = runner.generator.config.resolution
    batch = runner.batch()
    pending = list(reversed(cases))
    live: dict[int, tuple[Case, Restoration, int]] = {}  # key -> case, its restoration, step count at admission
    records: list[Record] = []
    step = 0

    def read(key: int, case: Case, restoration: Restoration, due: list[int]) -> None:
        result = batch.peek(key)
        restored = restoration.finish(result.generated)
        scores = {
            "psnr": hole_psnr(restored, case.truth, case.hole),
            "ssim": ssim(restored, case.truth),
            "realism": realism(restored),
        }
        for iterations in due:
            record: Record = {"kind": case.kind, "index": case.index, "name": case.name, "start": start.label}
            records.append(record | {"iterations": iterations, "ran": min(result.iterations, iterations), **scores})

    while pending or live:
        while pending and (batch.live_slots == 0 or batch.live_slots + params.restarts <= slots):
            case = pending.pop()
            restoration = Restoration.begin(case.damaged, case.hole, resolution)
            live[batch.add(SearchJob(restoration.prepared.target, restoration.prepared.hole, params))] = (
                case,
                restoration,
                step,
            )
        finished = set(batch.step())
        step += 1
        for key, (case, restoration, admitted) in list(live.items()):
            ran = step - admitted
            due = [k for k in checkpoints if step_of(k) == ran or (key in finished and step_of(k) > ran)]
            if due:
                read(key, case, restoration, due)
            if key in finished:
                batch.pop(key)
                del live[key]
                if progress is not None:
                    progress(1)
    return records


def curve_cells(records: Sequence[Record]) -> dict[tuple[str, str, int, str], Interval]:
    """(family, start, iterations, metric) -> mean and 95 % interval over photos."""
    groups: dict[tuple[str, str, int], list[Record]] = {}
    for record in records:
        groups.setdefault((str(record["kind"]), str(record["start"]), int(record["iterations"])), []).append(record)
    return {
        (kind, start, iterations, metric): mean_interval([float(r[metric]) for r in group])
        for (kind, start, iterations), group in groups.items()
        for metric in CURVE_METRICS
    }


@dataclass(frozen=True)
class CurveGap:
    """One (start, iterations) against the reference (start, iterations) on one family, paired per photo."""

    kind: str
    start: str
    iterations: int
    psnr: Interval
    ssim: Interval


def curve_gaps(records: Sequence[Record], reference: tuple[str, int]) -> list[CurveGap]:
    """Every other (start, iterations) minus the reference, photo by photo, per family."""
    table: dict[tuple[str, str, int], dict[int, Record]] = {}
    for record in records:
        key = (str(record["kind"]), str(record["start"]), int(record["iterations"]))
        table.setdefault(key, {})[int(record["index"])] = record
    gaps = []
    for (kind, start, iterations), photos in table.items():
        base = table.get((kind, *reference))
        if base is None or (start, iterations) == reference:
            continue
        shared = sorted(set(photos) & set(base))
        psnr, quality = (
            mean_interval([float(photos[i][metric]) - float(base[i][metric]) for i in shared])
            for metric in ("psnr", "ssim")
        )
        gaps.append(CurveGap(kind, start, iterations, psnr, quality))
    return gaps


def budget_rows(
    records: Sequence[Record], budgets: dict[tuple[str, int], int], start: str, reference: tuple[str, int]
) -> str:
    """Markdown: `start` at each photo's own budget (e.g. the service's `HOLE_BUDGET`), per family, with its
    mean iterations, scores and paired hole PSNR gap to the reference. Exact, not interpolated: each photo's
    record at its budget is that budget's answer."""
    found = {(str(r["kind"]), int(r["index"]), str(r["start"]), int(r["iterations"])): r for r in records}
    lines = [
        f"| masks | mean iterations | hole PSNR dB | SSIM | minus {reference[0]} at {reference[1]}, hole PSNR |",
        "|---|---:|---:|---:|---:|",
    ]
    for kind in dict.fromkeys(k for k, _ in budgets):
        photos = [(i, k) for (family, i), k in budgets.items() if family == kind]
        chosen = [found.get((kind, i, start, k)) for i, k in photos]
        base = [found.get((kind, i, *reference)) for i, _ in photos]
        if any(r is None for r in chosen) or any(r is None for r in base):
            continue  # a budget or the reference that this run did not read
        psnr = mean_interval([float(r["psnr"]) for r in chosen if r])
        quality = mean_interval([float(r["ssim"]) for r in chosen if r])
        gap = mean_interval([float(a["psnr"]) - float(b["psnr"]) for a, b in zip(chosen, base, strict=True) if a and b])
        lines.append(
            f"| {kind} | {np.mean([k for _, k in photos]):.0f} | {psnr.mean:.2f} ± {psnr.half_width:.2f} "
            f"| {quality.mean:.3f} ± {quality.half_width:.3f} "
            f"| {gap.mean:+.2f} [{gap.low:+.2f}, {gap.high:+.2f}] {verdict(gap)} |"
        )
    return "\n".join(lines) + "\n"


def format_curves(cells: dict[tuple[str, str, int, str], Interval], metric: str, digits: int) -> str:
    """Markdown: a row per (family, start), a column per checkpoint, `mean ± half-width`."""
    iterations = sorted({k for _, _, k, _ in cells})
    lines = ["| masks | start | " + " | ".join(f"{k} it" for k in iterations) + " |"]
    lines.append("|---|---|" + "---:|" * len(iterations))
    for kind in dict.fromkeys(kind for kind, _, _, _ in cells):
        for start in dict.fromkeys(start for family, start, _, _ in cells if family == kind):
            row = [cells.get((kind, start, k, metric)) for k in iterations]
            figures = [f"{c.mean:.{digits}f} ± {c.half_width:.{digits}f}" if c else "" for c in row]
            lines.append(f"| {kind} | {start} | " + " | ".join(figures) + " |")
    return "\n".join(lines) + "\n"


def format_curve_gaps(gaps: Sequence[CurveGap], reference: tuple[str, int]) -> str:
    """Markdown: a row per (start, iterations), a column per family: paired hole PSNR gap, interval, verdict."""
    kinds = list(dict.fromkeys(gap.kind for gap in gaps))
    rows = list(dict.fromkeys((gap.start, gap.iterations) for gap in gaps))
    found = {(gap.kind, gap.start, gap.iterations): gap for gap in gaps}
    lines = [
        f"Hole PSNR minus {reference[0]} at {reference[1]} iterations, paired per photo (dB, 95 % interval):",
        "",
        "| start | iterations | " + " | ".join(kinds) + " |",
        "|---|---:|" + "---:|" * len(kinds),
    ]
    for start, iterations in rows:
        cells = []
        for kind in kinds:
            gap = found.get((kind, start, iterations))
            psnr = gap.psnr if gap else None
            cells.append(f"{psnr.mean:+.2f} [{psnr.low:+.2f}, {psnr.high:+.2f}] {verdict(psnr)}" if psnr else "")
        lines.append(f"| {start} | {iterations} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_curves(cells: dict[tuple[str, str, int, str], Interval], path: str, title: str) -> None:
    """One column per family; hole PSNR, SSIM and realism share against iterations, a line per start."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = list(dict.fromkeys(kind for kind, _, _, _ in cells))
    starts = list(dict.fromkeys(start for _, start, _, _ in cells))
    labels = {"psnr": "hole PSNR dB", "ssim": "SSIM", "realism": "share D rates as real"}
    fig, axes = plt.subplots(len(CURVE_METRICS), len(kinds), figsize=(3.2 * len(kinds), 7.5), dpi=100, squeeze=False)
    for column, kind in enumerate(kinds):
        for row, metric in enumerate(CURVE_METRICS):
            ax = axes[row][column]
            for start in starts:
                points = sorted((k, c) for (f, s, k, m), c in cells.items() if (f, s, m) == (kind, start, metric))
                xs = [k for k, _ in points]
                ax.errorbar(
                    xs, [c.mean for _, c in points], yerr=[c.half_width for _, c in points], label=start, capsize=2
                )
            ax.set_xscale("symlog", linthresh=25)
            ticks = sorted({k for (f, _, k, _) in cells if f == kind})
            ax.set_xticks(ticks, [str(k) for k in ticks], fontsize=7)
            ax.minorticks_off()
            ax.grid(alpha=0.3)
            if row == 0:
                ax.set_title(kind)
            if column == 0:
                ax.set_ylabel(labels[metric])
            if row == len(CURVE_METRICS) - 1:
                ax.set_xlabel("iterations")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def default_budgets(
    records: Sequence[Record], seed: int, resolution: int, default: SearchParams
) -> dict[tuple[str, int], int]:
    """Each evaluated photo's budget under `default` (e.g. the hole's, `HOLE_BUDGET`), from its seeded mask."""
    photos = dict.fromkeys((str(r["kind"]), int(r["index"])) for r in records)
    blank = torch.zeros(3, resolution, resolution)
    return {
        (kind, index): SearchJob(
            blank, torch.from_numpy(make_mask(kind, resolution, case_rng(seed, kind, index))), default
        ).budget
        for kind, index in photos
    }


def read_curves(folder: Path) -> tuple[list[Record], dict[str, Any]]:
    """A written curves folder back: the per-photo records (typed) and the run's settings."""
    types = {"index": int, "iterations": int, "ran": int, "psnr": float, "ssim": float, "realism": float}
    with (folder / "curves.csv").open() as handle:
        records: list[Record] = [
            {key: types[key](value) if key in types else value for key, value in row.items()}
            for row in csv.DictReader(handle)
        ]
    document = json.loads((folder / "curves.json").read_text())
    return records, {k: v for k, v in document.items() if k != "cells"}


def write_curves(
    records: Sequence[Record],
    out: Path,
    settings: dict[str, Any],
    reference: tuple[str, int],
    default: tuple[str, dict[tuple[str, int], int]] | None = None,
) -> str:
    """curves.csv (per photo), curves.json (settings and cells), curves.md (tables, paired gaps), curves.png.

    `default`: a start and each photo's budget under the service's default, shown as its own table.
    """
    out.mkdir(parents=True, exist_ok=True)
    with (out / "curves.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)
    cells = curve_cells(records)
    document = {
        **{k: v for k, v in settings.items() if k != "reference"},
        "reference": {"start": reference[0], "iterations": reference[1]},
        "cells": [
            {"kind": kind, "start": start, "iterations": iterations, "metric": metric, **interval.to_dict()}
            for (kind, start, iterations, metric), interval in cells.items()
        ],
    }
    (out / "curves.json").write_text(json.dumps(document, indent=2) + "\n")
    text = "\n".join(
        [
            f"# Quality against iterations: {settings['model']}, {settings['n']} {settings['split']} photos per family",
            "",
            f"`{settings['command']}`",
            "",
            "Start = init:restarts:prior_weight. Each figure is the service's answer (Poisson-blended) at that budget.",
            "",
            "## Hole PSNR (dB, mean ± 95 % half-width)",
            "",
            format_curves(cells, "psnr", 2),
            "## SSIM",
            "",
            format_curves(cells, "ssim", 3),
            "## Realism: share of completions D rates above the median real held-out photo",
            "",
            format_curves(cells, "realism", 2),
            "## Paired gaps",
            "",
            format_curve_gaps(curve_gaps(records, reference), reference),
        ]
        + (
            [
                f"## The service default: {default[0]}, iterations set by the hole (app.engine.search.HOLE_BUDGET)",
                "",
                budget_rows(records, default[1], default[0], reference),
            ]
            if default
            else []
        )
    )
    (out / "curves.md").write_text(text)
    plot_curves(cells, str(out / "curves.png"), f"{settings['model']}: {settings['n']} {settings['split']} photos")
    return text
