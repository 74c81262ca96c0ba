"""Each evaluated model's cost per image: latency alone (batch 1) and throughput in a full table (batch 32).

Measured on the evaluation's own damaged photos with the same parameters, runner
and precision, so a speed-up is read beside the quality it buys. A batch-1 figure
is the median of several runs after a warm-up run; the batch figure is one run
after its warm-up. These are measurements on whatever machine runs them, written
to a table, never asserted.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

from app.quality.evaluate import Case, Contender


@dataclass(frozen=True)
class Speed:
    """One model's cost: seconds per image alone, images per second in a batch."""

    label: str
    kind: str
    latency: float  # seconds for one image at batch 1 (median)
    throughput: float  # images per second at `batch`
    batch: int
    iterations: float  # mean network steps per job at batch 1 (0 for one pass)


def _timed(contender: Contender, cases: Sequence[Case]) -> tuple[float, float]:
    """Seconds to run `cases` in one runner call, and the mean iterations of their results.

    The runner hands its results back on the CPU, so the time includes every device's work;
    bringing the photo to the model's square and finishing the answer (the same for every
    kind) are outside it.
    """
    jobs = [contender.job(contender.restoration(case)) for case in cases]
    start = time.perf_counter()
    results = contender.runner.run(jobs)
    return time.perf_counter() - start, sum(result.iterations for result in results) / len(results)


def spread(cases: Sequence[Case], count: int) -> list[Case]:
    """`count` cases evenly spaced through the list (which runs family by family), so every family is timed."""
    return [cases[(i * len(cases)) // count % len(cases)] for i in range(count)]


def measure_speed(contender: Contender, cases: Sequence[Case], batch: int = 32, repeats: int = 5) -> Speed:
    """Batch 1 on `repeats` photos (median), then `batch` photos at once; each after one untimed run.

    Both draw photos from every family evaluated: a search's budget depends on the hole.
    """
    _timed(contender, cases[:1])
    alone = [_timed(contender, [case]) for case in spread(cases, repeats)]
    many = spread(cases, batch)
    _timed(contender, many[: min(batch, 4)])
    seconds, _ = _timed(contender, many)
    return Speed(
        contender.label,
        contender.kind,
        latency=statistics.median(s for s, _ in alone),
        throughput=batch / seconds,
        batch=batch,
        iterations=statistics.mean(i for _, i in alone),
    )


def _ratio(ratio: float) -> str:
    return f"{ratio:,.0f}x" if ratio >= 10 else f"{ratio:.2f}x"


def format_speed(speeds: Sequence[Speed], threads: int, device: str) -> str:
    """Markdown table; the speed-up is against the first model at batch 1, as the gaps are."""
    first = speeds[0]
    batch = first.batch
    lines = [
        f"Measured on {device}, {threads} torch thread(s).",
        "",
        f"| model | kind | search iterations per image | ms per image, batch 1 | images/s, batch {batch} "
        f"| faster than {first.label} at batch 1 |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for speed in speeds:
        lines.append(
            f"| {speed.label} | {speed.kind} | {f'{speed.iterations:.0f}' if speed.iterations else 'one pass'} "
            f"| {speed.latency * 1000:.1f} "
            f"| {speed.throughput:.1f} | {_ratio(first.latency / speed.latency)} |"
        )
    return "\n".join(lines) + "\n"
