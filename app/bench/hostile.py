"""Hostile load on loopback: what clients without the token and maximum-size uploads cost a real server.

`unauthorised_load` runs clients that send `POST /complete` headers declaring a maximum-size body (with
no token, or a wrong one) and then trickle that body slowly, reconnecting after each answer, beside
authorised closed-loop clients that complete real photos. What it must show: every authorised request
answered 200, every unauthorised one 401 soon after its headers (before its body is read), and the
server's resident memory and the files it spools uploads to bounded throughout.

`burst` sends many requests at once and sorts the answers by why they got them: the admission door
(`app.api.admission`) refuses past its queue places, its byte budget and its pixel budget with 503 +
Retry-After, and its detail names which. Both sample the server's RSS from /proc while they run.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

from app.bench.overload import Payload

_BOUNDARY = "hostile-load-boundary"
_LABEL = re.compile(r'(\w+)="([^"]*)"')
_TICK_S = 0.1  # the trickle writes its bytes in ticks of this length


@dataclass(frozen=True)
class Attempt:
    """One unauthorised request: when its headers were sent (s from the start), its answer and what it cost."""

    client: int
    sent: float
    status: int  # 0: no status line before the attempt's timeout or the connection closed first
    seconds: float  # from the headers sent to the answer's status line
    body_sent: int  # body bytes the client had written when the answer came


@dataclass(frozen=True)
class Completion:
    """One authorised request: when it was sent (s from the start), its status, how long it took."""

    sent: float
    status: int
    seconds: float


@dataclass(frozen=True)
class Sample:
    """The server at one moment: resident memory, and the bytes of the files it holds in its spool folder."""

    t: float
    rss_mib: float
    spool_bytes: int


@dataclass
class HostileRun:
    """Everything `unauthorised_load` saw."""

    seconds: float
    body_bytes: int
    trickle_bytes_per_s: float
    attempts: list[Attempt] = field(default_factory=list)
    completions: list[Completion] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    peak_rss_mib: float = float("nan")  # the server's VmHWM at the end (its whole life, start-up included)
    # (s from the start, s): how late the clients' own event loop woke from a 10 ms sleep; a 401 cannot be seen
    # sooner than the loop wakes, so this bounds what of the measured latency is the client's
    client_lag: list[tuple[float, float]] = field(default_factory=list)
    # the server's own histogram of the refused completions (model="none"): upper bound (s) -> count at or under it
    server_buckets: dict[float, float] = field(default_factory=dict)


@dataclass(frozen=True)
class BurstAnswer:
    """One request of a burst: its status, the admission budget that refused it (if one did), when it ended."""

    status: int
    reason: str  # ok, queue, bytes, pixels, other-503, or the status's problem type
    retry_after: str | None
    seconds: float


@dataclass
class BurstRun:
    """Everything `burst` saw."""

    answers: list[BurstAnswer] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)  # spool_bytes 0 when no spool folder was given
    peak_rss_before_mib: float = float("nan")  # VmHWM before the burst: start-up's own peak
    peak_rss_mib: float = float("nan")  # VmHWM after it


def status_mib(pid: int, key: str) -> float:
    """A memory line of /proc/<pid>/status (VmRSS, VmHWM) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {key} for process {pid}")


def spool_bytes(pid: int, folder: Path) -> int:
    """Disk the process holds under `folder`: its open files there (deleted ones included, as a spooled upload
    is) and the files left in it, each counted once, by allocated blocks."""
    seen: dict[tuple[int, int], int] = {}
    prefix = str(folder.resolve())
    descriptors = Path(f"/proc/{pid}/fd")
    for entry in os.scandir(descriptors):
        try:
            target = os.readlink(entry.path)
            if target.startswith(prefix):
                info = os.stat(entry.path)
                seen[(info.st_dev, info.st_ino)] = info.st_blocks * 512
        except OSError:  # closed while we looked
            continue
    for root, _, names in os.walk(folder):
        for name in names:
            try:
                info = os.stat(os.path.join(root, name))
            except OSError:
                continue
            seen[(info.st_dev, info.st_ino)] = info.st_blocks * 512
    return sum(seen.values())


def _body_parts(body_bytes: int) -> tuple[bytes, int, bytes]:
    """A multipart body of exactly `body_bytes`: an image part's head, filler bytes, the closing boundary."""
    head = (
        f'--{_BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="photo.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    tail = f"\r\n--{_BOUNDARY}--\r\n".encode()
    return head, max(body_bytes - len(head) - len(tail), 0), tail


def _body_slice(head: bytes, filler: int, tail: bytes, start: int, end: int) -> bytes:
    """Bytes [start, end) of the body head + `filler` zero bytes + tail, without building all of it."""
    out = bytearray(head[start:end])
    zeros_end = len(head) + filler
    zeros = min(end, zeros_end) - max(start, len(head))
    if zeros > 0:
        out += bytes(zeros)
    if end > zeros_end:
        out += tail[max(start - zeros_end, 0) : end - zeros_end]
    return bytes(out)


async def _attempt(
    host: str, port: int, client: int, token: str | None, body_bytes: int, rate: float, timeout_s: float, t0: float
) -> Attempt:
    """Headers declaring `body_bytes`, then the body at `rate` bytes/s while waiting for the answer's status line."""
    reader, writer = await asyncio.open_connection(host, port)
    authorization = f"Authorization: Bearer {token}\r\n" if token is not None else ""
    headers = (
        f"POST /complete HTTP/1.1\r\nHost: {host}:{port}\r\n{authorization}"
        f"Content-Type: multipart/form-data; boundary={_BOUNDARY}\r\nContent-Length: {body_bytes}\r\n\r\n"
    ).encode()
    head, filler, tail = _body_parts(body_bytes)
    written = 0

    async def trickle() -> None:
        nonlocal written
        chunk = max(int(rate * _TICK_S), 1)
        while written < body_bytes:
            end = min(written + chunk, body_bytes)
            writer.write(_body_slice(head, filler, tail, written, end))
            await writer.drain()
            written = end
            await asyncio.sleep(_TICK_S)

    writer.write(headers)
    await writer.drain()
    sent = time.perf_counter()
    sender = asyncio.ensure_future(trickle())
    status = 0
    try:
        line = await asyncio.wait_for(reader.readline(), timeout_s)
        parts = line.split()
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    except (TimeoutError, ConnectionError):
        pass
    answered = time.perf_counter()
    sender.cancel()
    await asyncio.gather(sender, return_exceptions=True)
    writer.close()
    try:
        await writer.wait_closed()
    except (ConnectionError, OSError):
        pass
    return Attempt(client, sent - t0, status, answered - sent, written)


@contextmanager
def _sampling(pid: int, spool: Path | None, t0: float, every_s: float, into: list[Sample]) -> Iterator[None]:
    """Samples the server every `every_s` in a thread of its own, so a busy client event loop does not starve it;
    once more at the end."""
    stop = threading.Event()

    def sample() -> None:
        used = spool_bytes(pid, spool) if spool is not None else 0
        into.append(Sample(time.perf_counter() - t0, status_mib(pid, "VmRSS"), used))

    def loop() -> None:
        while not stop.wait(every_s):
            sample()

    sample()
    thread = threading.Thread(target=loop, name="hostile-sampler", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        sample()


async def unauthorised_load(
    url: str,
    payloads: Sequence[Payload],
    token: str,
    *,
    pid: int,
    spool: Path | None,
    unauthorised: int,
    authorised: int,
    seconds: float,
    body_bytes: int = 20_000_000,
    trickle_bytes_per_s: float = 300_000,
    pause_s: float = 0.5,
    attempt_timeout_s: float = 30.0,
    sample_every_s: float = 0.25,
) -> HostileRun:
    """`unauthorised` clients (even-numbered without a token, odd-numbered with a wrong one) trickle `body_bytes`
    bodies at `trickle_bytes_per_s` each, a new attempt `pause_s` after each answer, while `authorised` closed-loop
    clients send `payloads` with the token; for `seconds`, then every attempt in flight is waited for (at most
    `attempt_timeout_s`). `pid` and `spool`: the server's process and the folder it spools uploads to."""
    run = HostileRun(seconds=seconds, body_bytes=body_bytes, trickle_bytes_per_s=trickle_bytes_per_s)
    address = httpx.URL(url)
    host, port = address.host, address.port or 80
    t0 = time.perf_counter()
    stop = t0 + seconds
    done = asyncio.Event()

    async def attacker(client: int) -> None:
        wrong = None if client % 2 == 0 else f"not-the-token-{client}"
        while time.perf_counter() < stop:
            try:
                attempt = await _attempt(
                    host, port, client, wrong, body_bytes, trickle_bytes_per_s, attempt_timeout_s, t0
                )
            except OSError:  # refused at connect: counted as no answer
                now = time.perf_counter()
                attempt = Attempt(client, now - t0, 0, 0.0, 0)
            run.attempts.append(attempt)
            await asyncio.sleep(pause_s)

    async def customer(index: int, http: httpx.AsyncClient) -> None:
        number = index
        while time.perf_counter() < stop:
            payload = payloads[number % len(payloads)]
            sent = time.perf_counter()
            try:
                response = await http.post("/complete", files=payload.files, data=payload.data)
                status = response.status_code
            except httpx.HTTPError:
                status = 0
            run.completions.append(Completion(sent - t0, status, time.perf_counter() - sent))
            number += authorised

    async def lag() -> None:
        while not done.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.01)
            run.client_lag.append((before - t0, time.perf_counter() - before - 0.01))

    limits = httpx.Limits(max_connections=None)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits, headers=headers) as http:
        lagger = asyncio.ensure_future(lag())
        with _sampling(pid, spool, t0, sample_every_s, run.samples):
            await asyncio.gather(
                *(attacker(client) for client in range(unauthorised)),
                *(customer(index, http) for index in range(authorised)),
            )
        done.set()
        await lagger
        run.server_buckets = await _refusal_buckets(http)
    run.peak_rss_mib = status_mib(pid, "VmHWM")
    return run


async def _refusal_buckets(http: httpx.AsyncClient) -> dict[float, float]:
    """`imgcomp_request_duration_seconds_bucket{model="none",...}` from /metrics (empty if it is not served there)."""
    try:
        text = (await http.get("/metrics")).text
    except httpx.HTTPError:
        return {}
    buckets = {}
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if not name.startswith("imgcomp_request_duration_seconds_bucket{"):
            continue
        labels = dict(_LABEL.findall(name))
        if labels.get("model") == "none" and "le" in labels:
            buckets[float(labels["le"])] = float(value)
    return buckets


def _reason(response: httpx.Response) -> str:
    """Which admission budget a 503 names (its detail is `app.api.admission`'s), else the answer's problem type."""
    if response.status_code == 200:
        return "ok"
    try:
        problem = response.json()
    except ValueError:
        return f"{response.status_code}"
    detail = str(problem.get("detail", ""))
    if response.status_code == 503:
        for marker, reason in (("queue places", "queue"), ("bytes", "bytes"), ("pixels", "pixels")):
            if marker in detail:
                return reason
        return "other-503"
    return str(problem.get("type", response.status_code)).rsplit("/", 1)[-1]


async def burst(
    url: str,
    payload: Payload,
    count: int,
    token: str | None,
    *,
    pid: int,
    spool: Path | None = None,
    sample_every_s: float = 0.05,
) -> BurstRun:
    """`count` copies of `payload` sent at once; waits for every answer, sampling the server's RSS (and what it
    holds in `spool`, its upload folder) meanwhile."""
    run = BurstRun(peak_rss_before_mib=status_mib(pid, "VmHWM"))
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    t0 = time.perf_counter()

    async def one(http: httpx.AsyncClient) -> None:
        try:
            response = await http.post("/complete", files=payload.files, data=payload.data)
        except httpx.HTTPError:
            run.answers.append(BurstAnswer(0, "no-answer", None, time.perf_counter() - t0))
            return
        retry_after = response.headers.get("retry-after")
        run.answers.append(BurstAnswer(response.status_code, _reason(response), retry_after, time.perf_counter() - t0))

    limits = httpx.Limits(max_connections=None)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits, headers=headers) as http:
        with _sampling(pid, spool, t0, sample_every_s, run.samples):
            await asyncio.gather(*(one(http) for _ in range(count)))
    run.peak_rss_mib = status_mib(pid, "VmHWM")
    return run


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def hostile_summary(run: HostileRun) -> dict[str, float]:
    """The load test's figures: answers by class, the 401s' latency, memory and spool."""
    refusals = [a.seconds for a in run.attempts if a.status == 401]
    answered = [c for c in run.completions if c.status == 200]
    rss = [s.rss_mib for s in run.samples]
    return {
        "attempts": len(run.attempts),
        "attempts_401": len(refusals),
        "attempts_other": len(run.attempts) - len(refusals),
        "401_p50_ms": percentile(refusals, 50) * 1000,
        "401_p99_ms": percentile(refusals, 99) * 1000,
        "401_max_ms": max(refusals, default=float("nan")) * 1000,
        "401_over_100ms": sum(1 for seconds in refusals if seconds > 0.1),
        "body_sent_max_bytes": max((a.body_sent for a in run.attempts), default=0),
        "completions": len(run.completions),
        "completions_200": len(answered),
        "completions_other": len(run.completions) - len(answered),
        "completion_p50_s": percentile([c.seconds for c in answered], 50),
        "completion_max_s": max((c.seconds for c in answered), default=float("nan")),
        "rss_start_mib": rss[0] if rss else float("nan"),
        "rss_max_mib": max(rss, default=float("nan")),
        "rss_end_mib": rss[-1] if rss else float("nan"),
        "spool_max_bytes": max((s.spool_bytes for s in run.samples), default=0),
        "client_lag_p99_ms": percentile([lag for _, lag in run.client_lag], 99) * 1000,
        "client_lag_max_ms": max((lag for _, lag in run.client_lag), default=float("nan")) * 1000,
        "server_refused": run.server_buckets.get(float("inf"), float("nan")),
        "server_refused_within_25ms": run.server_buckets.get(0.025, float("nan")),
        "server_refused_within_100ms": run.server_buckets.get(0.1, float("nan")),
    }


def burst_summary(run: BurstRun) -> dict[str, float]:
    """The burst's figures: answers by class, Retry-After on every 503, peak memory."""
    counts: dict[str, float] = {}
    for answer in run.answers:
        counts[answer.reason] = counts.get(answer.reason, 0) + 1
    refused = [a for a in run.answers if a.status == 503]
    return {
        "sent": len(run.answers),
        "ok_200": sum(1 for a in run.answers if a.status == 200),
        "refused_503": len(refused),
        "503_with_retry_after": sum(1 for a in refused if a.retry_after),
        "other": sum(1 for a in run.answers if a.status not in (200, 503)),
        **{f"reason_{reason}": count for reason, count in sorted(counts.items())},
        "last_answer_s": max((a.seconds for a in run.answers), default=float("nan")),
        "rss_start_mib": run.samples[0].rss_mib if run.samples else float("nan"),
        "rss_max_sampled_mib": max((s.rss_mib for s in run.samples), default=float("nan")),
        "peak_rss_before_mib": run.peak_rss_before_mib,
        "peak_rss_mib": run.peak_rss_mib,
        "spool_max_bytes": max((s.spool_bytes for s in run.samples), default=0),
    }


def _rows(rows: Sequence[tuple[str, str]]) -> str:
    return "| figure | value |\n|---|---|\n" + "".join(f"| {name} | {value} |\n" for name, value in rows)


def hostile_table(figures: dict[str, float], run: HostileRun, unauthorised: int, authorised: int) -> str:
    return _rows(
        [
            (
                "clients",
                f"{unauthorised} without the token (half none, half a wrong one), {authorised} with it, "
                f"for {run.seconds:.0f} s",
            ),
            (
                "each unauthorised request",
                f"declares a {run.body_bytes / 1e6:.0f} MB body and trickles it at "
                f"{run.trickle_bytes_per_s / 1e3:.0f} kB/s",
            ),
            (
                "unauthorised requests answered 401",
                f"{figures['attempts_401']:.0f} of {figures['attempts']:.0f} (other: {figures['attempts_other']:.0f})",
            ),
            (
                "headers sent -> 401, p50 / p99 / max",
                "{:.1f} / {:.1f} / {:.1f} ms ({:.0f} over 100 ms)".format(
                    figures["401_p50_ms"], figures["401_p99_ms"], figures["401_max_ms"], figures["401_over_100ms"]
                ),
            ),
            (
                "the server's own timing of them (its histogram): within 25 / 100 ms",
                "{:.0f} / {:.0f} of {:.0f}".format(
                    figures["server_refused_within_25ms"],
                    figures["server_refused_within_100ms"],
                    figures["server_refused"],
                ),
            ),
            (
                "the clients' event loop late by, p99 / max (a bound on the client's share of the above)",
                f"{figures['client_lag_p99_ms']:.1f} / {figures['client_lag_max_ms']:.1f} ms",
            ),
            (
                "most body bytes one had written to its socket by its 401",
                f"{figures['body_sent_max_bytes'] / 1e3:.0f} kB",
            ),
            (
                "authorised requests answered 200",
                f"{figures['completions_200']:.0f} of {figures['completions']:.0f} "
                f"(other: {figures['completions_other']:.0f})",
            ),
            (
                "authorised latency p50 / max",
                f"{figures['completion_p50_s']:.2f} / {figures['completion_max_s']:.2f} s",
            ),
            (
                "server RSS start / max / end (VmHWM, start-up included)",
                "{:.0f} / {:.0f} / {:.0f} MiB ({:.0f} MiB)".format(
                    figures["rss_start_mib"], figures["rss_max_mib"], figures["rss_end_mib"], run.peak_rss_mib
                ),
            ),
            ("spool folder (TMPDIR) max, open deleted files included", f"{figures['spool_max_bytes'] / 1e6:.1f} MB"),
        ]
    )


def burst_table(figures: dict[str, float], count: int, payload_note: str, budget_mib: float) -> str:
    reasons = ", ".join(
        f"{name.removeprefix('reason_')} {value:.0f}" for name, value in figures.items() if name.startswith("reason_")
    )
    return _rows(
        [
            ("sent at once", f"{count} x {payload_note}"),
            ("answered 200", f"{figures['ok_200']:.0f}"),
            (
                "answered 503",
                f"{figures['refused_503']:.0f} ({figures['503_with_retry_after']:.0f} with Retry-After)",
            ),
            ("other answers", f"{figures['other']:.0f}"),
            ("by reason (the budget a 503's detail names)", reasons),
            ("last answer after", f"{figures['last_answer_s']:.1f} s"),
            (
                "server RSS before / max sampled (every 50 ms)",
                f"{figures['rss_start_mib']:.0f} / {figures['rss_max_sampled_mib']:.0f} MiB",
            ),
            (
                "server peak RSS (VmHWM) before / after the burst",
                f"{figures['peak_rss_before_mib']:.0f} / {figures['peak_rss_mib']:.0f} MiB",
            ),
            ("spool folder (TMPDIR) max, open deleted files included", f"{figures['spool_max_bytes'] / 1e6:.1f} MB"),
            (
                "memory budget (the Kubernetes manifest's limit)",
                f"{budget_mib:.0f} MiB: peak at {100 * figures['peak_rss_mib'] / budget_mib:.0f}%",
            ),
        ]
    )


def write_hostile(run: HostileRun, folder: Path, head: str, unauthorised: int, authorised: int) -> dict[str, float]:
    """unauthorised.md, unauthorised-attempts.csv, unauthorised-samples.csv and unauthorised.png under `folder`."""
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    figures = hostile_summary(run)
    (folder / "unauthorised.md").write_text(f"{head}\n\n{hostile_table(figures, run, unauthorised, authorised)}")
    with (folder / "unauthorised-attempts.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["kind", "client", "sent_s", "status", "seconds", "body_sent_bytes"])
        writer.writerows(
            ("unauthorised", a.client, f"{a.sent:.3f}", a.status, f"{a.seconds:.5f}", a.body_sent) for a in run.attempts
        )
        writer.writerows(("authorised", "", f"{c.sent:.3f}", c.status, f"{c.seconds:.4f}", "") for c in run.completions)
    with (folder / "unauthorised-samples.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["t_s", "rss_mib", "spool_bytes"])
        writer.writerows((f"{s.t:.2f}", f"{s.rss_mib:.1f}", s.spool_bytes) for s in run.samples)

    figure, (latency, answered, memory) = plt.subplots(3, 1, figsize=(9, 9), sharex=True)
    refused = [(a.sent, a.seconds * 1000) for a in run.attempts if a.status == 401]
    if refused:
        xs, ys = zip(*refused, strict=True)
        latency.scatter(xs, ys, s=3, c="tab:red", alpha=0.5, label=f"401 ({len(refused)})")
    if run.client_lag:
        xs, ys = zip(*run.client_lag, strict=True)
        latency.plot(xs, [y * 1000 for y in ys], c="grey", lw=0.6, alpha=0.8, label="clients' event loop late by")
    latency.axhline(100, c="black", ls="--", label="100 ms target")
    latency.set_yscale("log")
    latency.set_ylim(top=3000)  # room for the legend above the target line
    latency.set_ylabel("headers sent -> 401 (ms)")
    latency.legend(loc="upper right")
    latency.set_title(
        f"{unauthorised} clients without the token trickling {run.body_bytes / 1e6:.0f} MB bodies, {authorised} with it"
    )
    done = [(c.sent + c.seconds, c.seconds) for c in run.completions if c.status == 200]
    if done:
        xs, ys = zip(*done, strict=True)
        answered.scatter(xs, ys, s=6, c="tab:blue", label=f"authorised, 200 ({len(done)})")
    failed = [(c.sent + c.seconds, c.seconds) for c in run.completions if c.status != 200]
    if failed:
        xs, ys = zip(*failed, strict=True)
        answered.scatter(xs, ys, s=12, c="black", marker="x", label=f"authorised, not 200 ({len(failed)})")
    answered.set_ylabel("completion latency (s)")
    answered.legend(loc="upper right")
    memory.plot([s.t for s in run.samples], [s.rss_mib for s in run.samples], c="tab:green", label="server RSS")
    memory.set_ylabel("server RSS (MiB)")
    memory.set_ylim(0, max(figures["rss_max_mib"] * 1.3, 1))
    spool = memory.twinx()
    spool.plot([s.t for s in run.samples], [s.spool_bytes / 1e6 for s in run.samples], c="tab:orange")
    spool.set_ylabel("spool folder (MB)", color="tab:orange")
    spool.set_ylim(0, max(figures["spool_max_bytes"] / 1e6 * 1.3, 1))
    memory.legend(loc="lower right")
    memory.set_xlabel("seconds since the start (answers at the time they came)")
    figure.tight_layout()
    figure.savefig(folder / "unauthorised.png", dpi=110)
    plt.close(figure)
    return figures


def write_burst(
    run: BurstRun,
    folder: Path,
    head: str,
    count: int,
    payload_note: str,
    budget_mib: float,
    stem: str = "burst",
    byte_budget: int | None = None,
) -> dict[str, float]:
    """<stem>.md, <stem>-answers.csv and <stem>.png under `folder`; `byte_budget` is drawn beside the spool."""
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    figures = burst_summary(run)
    (folder / f"{stem}.md").write_text(f"{head}\n\n{burst_table(figures, count, payload_note, budget_mib)}")
    with (folder / f"{stem}-answers.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["status", "reason", "retry_after", "answered_s"])
        writer.writerows((a.status, a.reason, a.retry_after or "", f"{a.seconds:.3f}") for a in run.answers)

    figure, (memory, answers) = plt.subplots(2, 1, figsize=(9, 7), sharex=True)
    memory.plot([s.t for s in run.samples], [s.rss_mib for s in run.samples], c="tab:green", label="server RSS")
    memory.axhline(budget_mib, c="tab:red", ls="--", label=f"memory limit ({budget_mib:.0f} MiB)")
    memory.axhline(run.peak_rss_mib, c="tab:green", ls=":", label=f"peak (VmHWM) {run.peak_rss_mib:.0f} MiB")
    memory.set_ylim(0, budget_mib * 1.25)  # the limit and the byte budget drawn at different heights
    memory.set_ylabel("server RSS (MiB)")
    memory.legend(loc="center right")
    if any(s.spool_bytes for s in run.samples):
        spool = memory.twinx()
        spool.plot([s.t for s in run.samples], [s.spool_bytes / 1e6 for s in run.samples], c="tab:orange")
        spool.set_ylabel("spool folder (MB)", color="tab:orange")
        top = max(figures["spool_max_bytes"], byte_budget or 0) / 1e6
        if byte_budget is not None:
            spool.axhline(byte_budget / 1e6, c="tab:orange", ls="--", lw=0.8)
            spool.annotate("byte budget", (0, byte_budget / 1e6), color="tab:orange", va="bottom", fontsize=8)
        spool.set_ylim(0, top * 1.1)
    memory.set_title(f"{count} requests at once: {payload_note}")
    styles = {"ok": ("tab:blue", "o", "200"), "queue": ("tab:grey", "|", "503: queue places")}
    styles |= {"bytes": ("tab:orange", "|", "503: byte budget"), "pixels": ("tab:red", "|", "503: pixel budget")}
    reasons = sorted({a.reason for a in run.answers}, key=lambda reason: (reason not in styles, reason))
    labels = []
    for row, reason in enumerate(reasons):
        colour, marker, label = styles.get(reason, ("black", "x", reason))
        times = [a.seconds for a in run.answers if a.reason == reason]
        answers.scatter(times, [row] * len(times), c=colour, marker=marker, s=40, alpha=0.7)
        labels.append(f"{label}: {len(times)}")
    answers.set_yticks(range(len(reasons)), labels)
    answers.set_ylim(-0.5, len(reasons) - 0.5)
    answers.set_ylabel("answer")
    answers.set_xlabel("seconds since the burst was sent (each answer at the time it came)")
    figure.tight_layout()
    figure.savefig(folder / f"{stem}.png", dpi=110)
    plt.close(figure)
    return figures
