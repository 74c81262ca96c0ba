"""Overload test on loopback: start the service, measure its capacity, offer a multiple of it, write the report.

    .venv/bin/python scripts/overload.py --seconds 180 --factor 2 --out docs/overload

Starts `python -m app serve` on a free port with the shipped model (or --model-store/--model), measures
completions/s with closed-loop clients, then sends requests open loop at --factor times that for --seconds
and stops by itself. Writes table.md, answers.csv, rss.csv and overload.png to --out and prints the table.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from app.bench.overload import capacity, face_payloads, open_loop, table, write_report  # noqa: E402
from app.bench.server import start_server  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-store", type=Path, default=REPO / "model_store")
    parser.add_argument("--model", default="faces")
    parser.add_argument("--faces", type=Path, default=REPO.parent / "shared" / "data" / "utkface_crop_part1_64.npz")
    parser.add_argument("--clients", type=int, default=16, help="closed-loop clients that measure capacity")
    parser.add_argument("--capacity-seconds", type=float, default=30)
    parser.add_argument("--factor", type=float, default=2.0, help="offered rate = factor x measured capacity")
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--queue-size", type=int, default=16)
    parser.add_argument("--slots", type=int, default=32, help="IMGCOMP_SLOTS_PER_DEVICE")
    parser.add_argument("--threads", type=int, default=2, help="IMGCOMP_TORCH_THREADS")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "overload")
    parser.add_argument("--note", default="", help="a line on the conditions, written above the table")
    args = parser.parse_args(argv)

    with np.load(args.faces) as archive:
        faces = archive["images"][1000:1048]
    env = {
        "IMGCOMP_MODEL_STORE": str(args.model_store),
        "IMGCOMP_DEFAULT_MODEL": args.model,
        "IMGCOMP_DEVICES": "cpu",
        "IMGCOMP_QUEUE_SIZE": str(args.queue_size),
        "IMGCOMP_SLOTS_PER_DEVICE": str(args.slots),
        "IMGCOMP_TORCH_THREADS": str(args.threads),
    }
    server, url = start_server(env)
    try:
        requests = face_payloads(faces, {})
        measured = asyncio.run(capacity(url, requests, args.clients, args.capacity_seconds))
        print(f"capacity: {measured:.2f} completions/s with {args.clients} closed-loop clients", flush=True)
        run = asyncio.run(open_loop(url, requests, args.factor * measured, args.seconds, server.pid))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(120)
    note = (
        f"{args.model} on the CPU ({args.threads} torch threads, {args.slots} slots, queue {args.queue_size}), "
        f"loopback, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. {args.note}"
    )
    figures = write_report(run, measured, args.out, note)
    print(table(figures, measured))
    return 0


if __name__ == "__main__":
    sys.exit(main())
