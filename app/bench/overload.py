"""Overload: open-loop arrivals at a multiple of the measured capacity, against a real server on loopback.

Closed-loop clients (each waits for its answer) can never overload a server; real
traffic does not wait. `capacity` measures completions per second with closed-loop
clients, then `open_loop` sends requests on a fixed schedule at a rate of the
caller's choosing for a fixed time and stops by itself, recording every answer and
the server's resident memory. What it must show: the excess refused with 503 and
Retry-After at once, every accepted request answered once, accepted latency bounded,
memory flat.
"""

from __future__ import annotations

import asyncio
import csv
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

from app.bench.load import png
from training.masks import make_mask


@dataclass(frozen=True)
class Payload:
    """One request's multipart parts and form fields."""

    files: dict[str, tuple[str, bytes, str]]
    data: dict[str, str]


def face_payloads(faces: np.ndarray, data: dict[str, str]) -> list[Payload]:
    """Damaged faces as a restoration service sees them (centre blocks, strokes and blocks in turn, grey in the
    hole) with their masks, one request each."""
    out = []
    for index, face in enumerate(faces):
        hole = make_mask(("center", "strokes", "blocks")[index % 3], face.shape[0], np.random.default_rng(index))
        damaged = face.copy()
        damaged[hole.astype(bool)] = 128
        files = {
            "image": ("face.png", png(damaged), "image/png"),
            "mask": ("mask.png", png(hole.astype(np.uint8) * 255), "image/png"),
        }
        out.append(Payload(files=files, data={**data, "seed": str(index)}))
    return out


@dataclass(frozen=True)
class Answer:
    """What one request got: when it was sent (s from the start), its status (0 = no HTTP answer), how long it took."""

    sent: float
    status: int
    seconds: float
    retry_after: str | None


@dataclass
class Run:
    """Everything an open-loop run saw."""

    rate: float
    duration: float
    answers: list[Answer] = field(default_factory=list)
    rss: list[tuple[float, float]] = field(default_factory=list)  # (s from the start, MiB)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


async def _post(http: httpx.AsyncClient, payload: Payload) -> tuple[int, str | None]:
    try:
        response = await http.post("/complete", files=payload.files, data=payload.data)
    except httpx.HTTPError:
        return 0, None
    return response.status_code, response.headers.get("retry-after")


async def capacity(url: str, payloads: Sequence[Payload], clients: int, seconds: float) -> float:
    """Completions per second of `clients` closed-loop clients over `seconds` (after each client's first answer)."""
    done: list[float] = []
    stop = time.perf_counter() + seconds

    async def client(index: int, http: httpx.AsyncClient) -> None:
        number = 0
        while time.perf_counter() < stop:
            status, _ = await _post(http, payloads[(index + number) % len(payloads)])
            if status == 200:
                done.append(time.perf_counter())
            number += 1

    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=300) as http:
        await asyncio.gather(*(client(index, http) for index in range(clients)))
    warm = sorted(done)[clients - 1] if len(done) >= clients else started  # skip the first answers' ramp
    counted = [moment for moment in done if moment > warm]
    return len(counted) / max(max(counted, default=warm) - warm, 1e-9)


async def open_loop(url: str, payloads: Sequence[Payload], rate: float, seconds: float, pid: int) -> Run:
    """Send `rate` requests a second for `seconds` whatever the answers, then wait for every answer."""
    run = Run(rate=rate, duration=seconds)
    started = time.perf_counter()
    finished = asyncio.Event()

    async def one(number: int, http: httpx.AsyncClient) -> None:
        sent = time.perf_counter()
        status, retry_after = await _post(http, payloads[number % len(payloads)])
        run.answers.append(Answer(sent - started, status, time.perf_counter() - sent, retry_after))

    async def sample_memory() -> None:
        while not finished.is_set():
            run.rss.append((time.perf_counter() - started, rss_mib(pid)))
            await asyncio.sleep(0.5)

    limits = httpx.Limits(max_connections=None, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as http:
        sampler = asyncio.ensure_future(sample_memory())
        tasks = []
        total = int(rate * seconds)
        for number in range(total):
            delay = started + number / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one(number, http)))
        await asyncio.gather(*tasks)
        finished.set()
        await sampler
    return run


def summary(run: Run) -> dict[str, float]:
    """The report's figures: offered, accepted, refused, latencies, memory."""
    accepted = np.array([a.seconds for a in run.answers if a.status == 200])
    refused = np.array([a.seconds for a in run.answers if a.status == 503])
    other = [a for a in run.answers if a.status not in (200, 503)]
    rss = np.array([mib for _, mib in run.rss])
    settle = rss[len(rss) // 10 :] if len(rss) >= 10 else rss  # after the first tenth: allocator warm-up

    def pct(values: np.ndarray, q: float) -> float:
        return float(np.percentile(values, q)) if len(values) else float("nan")

    return {
        "rate_per_s": run.rate,
        "seconds": run.duration,
        "offered": len(run.answers),
        "accepted_200": len(accepted),
        "refused_503": len(refused),
        "other": len(other),
        "503_with_retry_after": sum(1 for a in run.answers if a.status == 503 and a.retry_after),
        "accepted_p50_s": pct(accepted, 50),
        "accepted_p99_s": pct(accepted, 99),
        "accepted_max_s": float(accepted.max()) if len(accepted) else float("nan"),
        "refused_p50_s": pct(refused, 50),
        "refused_p99_s": pct(refused, 99),
        "rss_start_mib": float(rss[0]) if len(rss) else float("nan"),
        "rss_settled_mib": float(settle[0]) if len(settle) else float("nan"),
        "rss_end_mib": float(rss[-1]) if len(rss) else float("nan"),
        "rss_max_mib": float(rss.max()) if len(rss) else float("nan"),
    }


def table(figures: dict[str, float], capacity_per_s: float) -> str:
    rows = [
        ("measured capacity (closed loop)", f"{capacity_per_s:.2f} completions/s"),
        (
            "offered",
            f"{figures['offered']:.0f} requests at {figures['rate_per_s']:.2f}/s for {figures['seconds']:.0f} s",
        ),
        ("accepted (200)", f"{figures['accepted_200']:.0f}"),
        ("refused (503)", f"{figures['refused_503']:.0f} ({figures['503_with_retry_after']:.0f} with Retry-After)"),
        ("other answers", f"{figures['other']:.0f}"),
        (
            "accepted latency p50 / p99 / max",
            "{:.2f} / {:.2f} / {:.2f} s".format(
                figures["accepted_p50_s"], figures["accepted_p99_s"], figures["accepted_max_s"]
            ),
        ),
        ("503 latency p50 / p99", f"{figures['refused_p50_s'] * 1000:.1f} / {figures['refused_p99_s'] * 1000:.1f} ms"),
        (
            "server RSS start / settled / end / max",
            "{:.0f} / {:.0f} / {:.0f} / {:.0f} MiB".format(
                figures["rss_start_mib"], figures["rss_settled_mib"], figures["rss_end_mib"], figures["rss_max_mib"]
            ),
        ),
    ]
    return "| figure | value |\n|---|---|\n" + "".join(f"| {name} | {value} |\n" for name, value in rows)


def write_report(run: Run, capacity_per_s: float, folder: Path, note: str) -> dict[str, float]:
    """table.md, answers.csv, rss.csv and overload.png under `folder`; returns the summary."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    figures = summary(run)
    (folder / "table.md").write_text(f"{note}\n\n{table(figures, capacity_per_s)}")
    with (folder / "answers.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["sent_s", "status", "seconds", "retry_after"])
        writer.writerows((f"{a.sent:.3f}", a.status, f"{a.seconds:.4f}", a.retry_after or "") for a in run.answers)
    with (folder / "rss.csv").open("w", newline="") as out:
        csv.writer(out).writerows([("t_s", "rss_mib"), *((f"{t:.2f}", f"{m:.1f}") for t, m in run.rss)])

    figure, (latency, rates, memory) = plt.subplots(3, 1, figsize=(9, 9), sharex=True)
    for status, colour, label in ((200, "tab:blue", "accepted (200)"), (503, "tab:red", "refused (503)")):
        points = [(a.sent, a.seconds) for a in run.answers if a.status == status]
        if points:
            xs, ys = zip(*points, strict=True)
            latency.scatter(xs, ys, s=4, c=colour, label=label, alpha=0.6)
    latency.set_yscale("log")
    latency.set_ylabel("latency (s)")
    latency.legend(loc="upper left")
    latency.set_title(f"open loop at {run.rate:.1f} req/s = {run.rate / capacity_per_s:.1f}x measured capacity")
    edges = np.arange(0, run.duration + 1, 5.0)
    for status, colour, label in ((200, "tab:blue", "accepted"), (503, "tab:red", "refused")):
        counts, _ = np.histogram([a.sent for a in run.answers if a.status == status], bins=edges)
        rates.plot(edges[:-1], counts / 5.0, c=colour, label=label, drawstyle="steps-post")
    rates.axhline(capacity_per_s, c="grey", ls="--", label="capacity")
    rates.set_ylabel("requests/s (by send time)")
    rates.legend(loc="upper left")
    memory.plot([t for t, _ in run.rss], [m for _, m in run.rss], c="tab:green")
    memory.set_ylabel("server RSS (MiB)")
    memory.set_xlabel("seconds since the first request")
    figure.tight_layout()
    figure.savefig(folder / "overload.png", dpi=110)
    plt.close(figure)
    return figures
