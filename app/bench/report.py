"""Bench rows -> the printed table, a CSV and a PNG plot."""

from __future__ import annotations

import csv
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: the bench runs on servers without a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from app.bench.load import Measurement  # noqa: E402


@dataclass
class Row:
    """One (mode, transport, precision, clients) cell of the bench."""

    mode: str
    transport: str
    precision: str
    clients: int
    completed: int  # requests that finished inside the window
    window_s: float
    completions_per_s: float
    image_iterations_per_s: float
    p50_s: float
    p95_s: float
    p99_s: float
    slots_per_step: float
    gflops: float
    peak_share: float = math.nan  # achieved FLOP/s over this precision's matmul peak, set once the run knows it
    # CPU milliseconds per completion where the server is a process of its own (`--defaults`), NaN elsewhere:
    # the server's (every thread: event loop, pool, post-processing) and the bench process's (the clients')
    server_cpu_ms: float = math.nan
    client_cpu_ms: float = math.nan

    @classmethod
    def of(cls, mode: str, transport: str, precision: str, clients: int, m: Measurement, flops: float) -> Row:
        slots = m.after.slots - m.before.slots
        steps = m.after.steps - m.before.steps
        rate = slots / m.seconds
        lat = np.array(m.latencies) if m.latencies else np.array([math.nan])
        done = len(m.latencies)
        p50, p95, p99 = (float(np.percentile(lat, q)) for q in (50, 95, 99))
        return cls(
            mode=mode,
            transport=transport,
            precision=precision,
            clients=clients,
            completed=len(m.latencies),
            window_s=m.seconds,
            completions_per_s=len(m.latencies) / m.seconds,
            image_iterations_per_s=rate,
            p50_s=p50,
            p95_s=p95,
            p99_s=p99,
            slots_per_step=slots / steps if steps else 0.0,
            gflops=rate * flops / 1e9,
            server_cpu_ms=(m.after.cpu_s - m.before.cpu_s) / done * 1000 if done else math.nan,
            # the bench process holds only the clients when the server's CPU is counted apart
            client_cpu_ms=m.own_cpu_s / done * 1000 if done and not math.isnan(m.before.cpu_s) else math.nan,
        )

    @property
    def label(self) -> str:
        return f"{self.mode} {self.precision}" + (" http" if self.transport == "http" else "")


_COLUMNS = (
    f"{'clients':>8}{'done':>6}{'compl/s':>9}{'img-it/s':>10}"
    f"{'p50 s':>8}{'p95 s':>8}{'p99 s':>8}{'slots/step':>11}{'GFLOP/s':>9}{'srv ms':>8}{'cli ms':>8}{'%peak':>7}"
)


def table(rows: list[Row]) -> str:
    """Fixed-width text, one line per cell, grouped by client count."""
    width = max([24, *(len(row.label) + 1 for row in rows)])
    header = f"{'mode':<{width}}{_COLUMNS}"
    lines = [header, "-" * len(header)]
    for row in sorted(rows, key=lambda r: r.clients):
        lines.append(
            f"{row.label:<{width}}{row.clients:>8}{row.completed:>6}{row.completions_per_s:>9.3f}"
            f"{row.image_iterations_per_s:>10.1f}{row.p50_s:>8.2f}{row.p95_s:>8.2f}{row.p99_s:>8.2f}"
            f"{row.slots_per_step:>11.1f}{row.gflops:>9.1f}{_ms(row.server_cpu_ms):>8}{_ms(row.client_cpu_ms):>8}"
            f"{_share(row.peak_share):>7}"
        )
    return "\n".join(lines)


def _ms(value: float) -> str:
    """CPU ms per completion; `-` where the run could not tell the server's CPU from the clients'."""
    return "-" if math.isnan(value) else f"{value:.1f}"


def _share(peak_share: float) -> str:
    """`-` where the run measured no matmul peak (`--defaults`), not `nan%`."""
    return "-" if math.isnan(peak_share) else f"{peak_share:.0%}"


def ratios(rows: list[Row], mode: str, baselines: tuple[str, ...]) -> str:
    """`mode`'s image-iteration throughput over each baseline's, per client count (same precision, engine)."""
    lines = []
    engine = {(r.mode, r.precision, r.clients): r for r in rows if r.transport == "engine"}
    for (name, precision, clients), row in sorted(engine.items(), key=lambda item: item[0][2]):
        if name != mode:
            continue
        parts = []
        for base in baselines:
            other = engine.get((base, precision, clients))
            if other is not None and other.image_iterations_per_s > 0:
                parts.append(f"{row.image_iterations_per_s / other.image_iterations_per_s:.2f}x {base}")
        if parts:
            lines.append(f"{mode} {precision} at {clients} clients: " + ", ".join(parts))
    return "\n".join(lines)


def write_csv(rows: list[Row], path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[f.name for f in fields(Row)], lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(row).items()})


def plot(rows: list[Row], path: Path, title: str, per_completion: bool = False) -> None:
    """Throughput, batch occupancy and p95 latency against client count, one line per mode.

    Throughput is image-iterations/s where every line runs the same budgets, completions/s
    (`per_completion`) where the lines' budgets differ, as a search's and a one-pass model's do.
    """
    figure, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    throughput = (
        ("completions / s", lambda r: r.completions_per_s)
        if per_completion
        else ("image-iterations / s", lambda r: r.image_iterations_per_s)
    )
    panels = (
        throughput,
        ("mean slots per step", lambda r: r.slots_per_step),
        ("p95 latency, s (requests finished in the window)", lambda r: r.p95_s),
    )
    for label in dict.fromkeys(row.label for row in rows):
        series = sorted((r for r in rows if r.label == label), key=lambda r: r.clients)
        for axis, (_, value) in zip(axes, panels, strict=True):
            axis.plot([r.clients for r in series], [value(r) for r in series], marker="o", label=label)
    for axis, (ylabel, _) in zip(axes, panels, strict=True):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("concurrent clients")
        axis.set_ylabel(ylabel)
        axis.grid(True, alpha=0.3)
    if all(math.isnan(r.p95_s) for r in rows):
        axes[2].text(0.5, 0.5, "no request finished inside a window", ha="center", transform=axes[2].transAxes)
    axes[0].legend(fontsize=8)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
