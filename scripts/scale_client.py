# ruff: noqa: T201 (a command-line script: printing is its output)
"""Client side of scripts/scale-smoke.sh: bounded bursts through the balancer and per-replica counts from Prometheus.

    python scripts/scale_client.py burst --url http://127.0.0.1:18080 --prom http://127.0.0.1:19091 \
        --faces ../shared/data/utkface_crop_part1_64.npz --requests 60 --concurrency 6 --iterations 5 \
        [--at 15 --run "docker kill some-container"] [--names 172.18.0.3=app-1,...]

A burst sends `--requests` completions from `--concurrency` threads and reports every answer's status
and the replica that answered (the balancer's X-Replica header). With `--at K --run CMD`, CMD starts
(without waiting for it) once K answers are in: the fault lands mid-burst. Prometheus's
imgcomp_requests_total{status="200"} per replica (instance) is read before and after, after a scrape.
Exit status 0 when every request was answered 200, 1 otherwise (the shell script decides what a
phase may lose).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from smoke_client import _centre_hole, _multipart, _png  # the compose smoke's helpers, same folder

SCRAPE_WAIT_S = 7.0  # Prometheus scrapes every 5 s


def _served(prom: str) -> dict[str, float]:
    """Completions answered 200 so far, per replica address, as Prometheus last scraped them."""
    query = urllib.parse.urlencode({"query": 'sum by (instance) (imgcomp_requests_total{status="200"})'})
    with urllib.request.urlopen(f"{prom}/api/v1/query?{query}", timeout=10) as answer:
        result = json.load(answer)["data"]["result"]
    return {item["metric"]["instance"]: float(item["value"][1]) for item in result}


def _scalar(prom: str, query: str) -> float:
    """One number from Prometheus (0 when the query has no result yet)."""
    encoded = urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(f"{prom}/api/v1/query?{encoded}", timeout=10) as answer:
        result = json.load(answer)["data"]["result"]
    return float(result[0]["value"][1]) if result else 0.0


RETRIES = 'sum(haproxy_backend_retry_warnings_total{proxy="replicas"})'


def _post(url: str, body: bytes, content_type: str, timeout: float) -> tuple[int, str, float]:
    """(status, replica, seconds) of one POST /complete; status 0 when no HTTP answer came at all.

    A failure is printed with what answered it and the start of its body.
    """
    request = urllib.request.Request(f"{url}/complete", data=body, headers={"Content-Type": content_type})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            answer.read()
            return answer.status, answer.headers.get("X-Replica", "?"), time.perf_counter() - started
    except urllib.error.HTTPError as error:
        replica = error.headers.get("X-Replica", "the balancer")
        print(f"  {error.code} from {replica}: {error.read()[:160].decode(errors='replace')}")
        return error.code, replica, time.perf_counter() - started
    except OSError as error:
        print(f"  no answer: {error}")
        return 0, "-", time.perf_counter() - started


def cmd_burst(args: argparse.Namespace) -> int:
    with np.load(args.faces) as archive:
        faces = archive["images"][: args.requests]
    fields = {"iterations": str(args.iterations), "restarts": str(args.restarts), "seed": "0"}
    bodies = []
    for face in faces:
        hole = _centre_hole(face.shape)
        damaged = face.copy()
        damaged[hole] = 128
        bodies.append(_multipart({"image": _png(damaged), "mask": _png(hole.astype(np.uint8) * 255)}, fields))
    names = dict(pair.split("=", 1) for pair in args.names.split(",") if pair) if args.names else {}

    before = _served(args.prom) if args.prom else {}
    retries_before = _scalar(args.prom, RETRIES) if args.prom else 0.0
    answered = 0
    fired: list[tuple[float, subprocess.Popen[bytes]]] = []
    lock = threading.Lock()
    started = time.monotonic()

    def one(index: int) -> tuple[int, str, float, float]:
        nonlocal answered
        status, replica, seconds = _post(args.url, *bodies[index % len(bodies)], args.timeout)
        with lock:
            answered += 1
            if args.run and answered == args.at:
                fired.append((time.monotonic() - started, subprocess.Popen(shlex.split(args.run))))
        return status, replica, seconds, time.monotonic() - started

    with ThreadPoolExecutor(args.concurrency) as pool:
        results = list(pool.map(one, range(args.requests)))
    wall = time.monotonic() - started
    for _, process in fired:
        process.wait(120)

    statuses = Counter(status for status, *_ in results)
    print(
        f"[{args.label}] {args.requests} completions, {args.concurrency} at a time, {args.iterations} iterations "
        f"x {args.restarts} restarts: {wall:.1f} s, {args.requests / wall:.2f} completions/s"
    )
    print(
        f"[{args.label}] answers: "
        + ", ".join(f"{count} x {status or 'no answer'}" for status, count in sorted(statuses.items()))
    )

    def by_replica(keep: Callable[[float], bool]) -> str:
        spread = Counter(replica for status, replica, _, t in results if status == 200 and keep(t))
        return ", ".join(f"{names.get(r.rsplit(':', 1)[0], r)} {n}" for r, n in sorted(spread.items()))

    if fired:
        at = fired[0][0]
        print(f"[{args.label}] `{args.run}` ran at {at:.1f} s, after answer {args.at}")
        print(f"[{args.label}] answered before it, by replica (X-Replica): {by_replica(lambda t: t <= at)}")
        print(f"[{args.label}] answered after it, by replica (X-Replica):  {by_replica(lambda t: t > at)}")
    else:
        print(f"[{args.label}] answered by replica (X-Replica): {by_replica(lambda t: True)}")
    latencies = sorted(seconds for status, _, seconds, _ in results if status == 200)
    if latencies:
        print(
            f"[{args.label}] latency of the 200s: p50 {latencies[len(latencies) // 2]:.2f} s, max {latencies[-1]:.2f} s"
        )
    if args.prom:
        time.sleep(SCRAPE_WAIT_S)
        after = _served(args.prom)
        print(f'[{args.label}] completions per replica (Prometheus, imgcomp_requests_total{{status="200"}}):')
        for instance in sorted(set(before) | set(after)):
            name = names.get(instance.rsplit(":", 1)[0], "")
            if instance not in after:
                print(f"[{args.label}]   {instance:<20} {name:<28}  gone (not scraped since it stopped)")
                continue
            old, new = before.get(instance, 0.0), after[instance]
            delta = new - old if new >= old else new  # a restarted replica's counter starts again at 0
            print(f"[{args.label}]   {instance:<20} {name:<28} {delta:5.0f}")
        retried = _scalar(args.prom, RETRIES) - retries_before
        print(f"[{args.label}] requests the balancer sent to another replica after a failed try: {retried:.0f}")
    return 0 if statuses == Counter({200: args.requests}) else 1


def cmd_targets(args: argparse.Namespace) -> int:
    """Wait until Prometheus scrapes `--expect` replicas (job imgcomp) and print them."""
    deadline = time.monotonic() + args.timeout
    while True:
        query = urllib.parse.urlencode({"query": 'up{job="imgcomp"} == 1'})
        with urllib.request.urlopen(f"{args.prom}/api/v1/query?{query}", timeout=10) as answer:
            up = sorted(item["metric"]["instance"] for item in json.load(answer)["data"]["result"])
        if len(up) >= args.expect:
            print(f"Prometheus scrapes {len(up)} replicas: {', '.join(up)}")
            return 0
        if time.monotonic() > deadline:
            print(f"only {len(up)} of {args.expect} replicas scraped after {args.timeout} s: {up}", file=sys.stderr)
            return 1
        time.sleep(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    burst = commands.add_parser("burst", help="a bounded burst through the balancer, optionally with a fault")
    burst.add_argument("--url", required=True)
    burst.add_argument("--prom")
    burst.add_argument("--faces", type=Path, required=True)
    burst.add_argument("--requests", type=int, default=60)
    burst.add_argument("--concurrency", type=int, default=6)
    burst.add_argument("--iterations", type=int, default=5)
    burst.add_argument("--restarts", type=int, default=1)
    burst.add_argument("--timeout", type=float, default=120)
    burst.add_argument("--at", type=int, default=0)
    burst.add_argument("--run", default="")
    burst.add_argument("--names", default="")
    burst.add_argument("--label", default="burst")
    burst.set_defaults(func=cmd_burst)
    targets = commands.add_parser("targets", help="wait until Prometheus scrapes N replicas")
    targets.add_argument("--prom", required=True)
    targets.add_argument("--expect", type=int, required=True)
    targets.add_argument("--timeout", type=float, default=90)
    targets.set_defaults(func=cmd_targets)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
