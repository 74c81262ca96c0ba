"""Hostile load on loopback: clients without the token trickling maximum-size bodies, and a burst of
maximum-size flat PNGs, each against a fresh server with a token set; writes the reports into --out.

    .venv/bin/python scripts/hostile_load.py --out docs/overload

1. `unauthorised`: --unauthorised clients (half without a token, half with a wrong one) each declare a
   --body-mb body and trickle it at --trickle-kbps, reconnecting after each answer, while --authorised
   clients complete held-out faces with --model, for --seconds; the server's RSS and the bytes it holds
   in its spool folder (its TMPDIR, a fresh folder) are sampled from /proc. Writes unauthorised.md,
   unauthorised.png and two CSVs.
2. `burst`: --burst requests at once, each a flat image of the server's maximum size
   (IMGCOMP_MAX_IMAGE_PIXELS, a square) with a mask of the same size; the answers are sorted by the
   admission budget their 503 names, and the server's RSS is sampled every 50 ms. Writes burst.md,
   burst.png and a CSV. `burst-bytes`: the same with images of noise just under the upload limit (the
   largest bodies, against the byte budget and the /tmp they spool to); writes burst-bytes.md, .png, .csv.
The servers run with the service's defaults for the upload limit, queue and budgets unless overridden
through --env. Both phases are bounded in time and count and stop by themselves.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import secrets
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from app.bench.hostile import burst, unauthorised_load, write_burst, write_hostile  # noqa: E402
from app.bench.load import png  # noqa: E402
from app.bench.overload import Payload, face_payloads  # noqa: E402
from app.bench.server import start_server  # noqa: E402
from app.config import Settings  # noqa: E402

MEMORY_LIMIT_MIB = 8 * 1024  # deploy/k8s/base/deployment.yaml: resources.limits.memory


def flat_payload(max_pixels: int, data: dict[str, str]) -> tuple[Payload, str]:
    """A flat grey square of the largest side within `max_pixels`, a centred square hole a fifth of its side."""
    side = math.isqrt(max_pixels)
    image = np.full((side, side, 3), 118, np.uint8)
    mask = np.zeros((side, side), np.uint8)
    hole = side // 5
    mask[(side - hole) // 2 : (side + hole) // 2, (side - hole) // 2 : (side + hole) // 2] = 255
    files = {"image": ("flat.png", png(image), "image/png"), "mask": ("mask.png", png(mask), "image/png")}
    body = len(files["image"][1]) + len(files["mask"][1])
    note = f"a flat {side}x{side} PNG with its mask ({body / 1e3:.0f} kB sent, {2 * side * side / 1e6:.0f} M pixels)"
    return Payload(files=files, data=data), note


def noisy_payload(body_bytes: int, data: dict[str, str]) -> tuple[Payload, str]:
    """Random RGB pixels (incompressible) as a PNG just under `body_bytes` with its mask: the largest body the
    server takes, and the fewest pixels for it."""
    side = math.isqrt(int(body_bytes * 0.97) // 3)
    image = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    mask = np.zeros((side, side), np.uint8)
    hole = side // 5
    mask[(side - hole) // 2 : (side + hole) // 2, (side - hole) // 2 : (side + hole) // 2] = 255
    files = {"image": ("noise.png", png(image), "image/png"), "mask": ("mask.png", png(mask), "image/png")}
    body = len(files["image"][1]) + len(files["mask"][1])
    note = (
        f"a {side}x{side} PNG of noise with its mask ({body / 1e6:.1f} MB sent, {2 * side * side / 1e6:.1f} M pixels)"
    )
    return Payload(files=files, data=data), note


def _stop(server: subprocess.Popen[bytes]) -> None:
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(120)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-store", type=Path, default=REPO / "model_store")
    parser.add_argument("--model", default="faces-glcic", help="the authorised clients' and the burst's model")
    parser.add_argument("--faces", type=Path, default=REPO.parent / "shared" / "data" / "utkface_crop_part1_64.npz")
    parser.add_argument("--phases", default="unauthorised,burst,burst-bytes")
    parser.add_argument("--unauthorised", type=int, default=64)
    parser.add_argument("--authorised", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--body-mb", type=float, default=20, help="what each unauthorised request declares")
    parser.add_argument("--trickle-kbps", type=float, default=300, help="kB/s each unauthorised client sends")
    parser.add_argument("--burst", type=int, default=128)
    parser.add_argument("--region", default="whole", help="the burst's region (auto runs the face locator)")
    parser.add_argument("--threads", type=int, default=2, help="IMGCOMP_TORCH_THREADS")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the servers (repeatable)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "overload")
    parser.add_argument("--note", default="", help="a line on the conditions, written above the tables")
    args = parser.parse_args(argv)

    phases = {phase.strip() for phase in args.phases.split(",") if phase.strip()}
    token = secrets.token_hex(16)
    base = {
        "IMGCOMP_MODEL_STORE": str(args.model_store),
        "IMGCOMP_DEFAULT_MODEL": args.model,
        "IMGCOMP_DEVICES": "cpu",
        "IMGCOMP_TORCH_THREADS": str(args.threads),
        "IMGCOMP_API_TOKEN": token,
        **dict(item.split("=", 1) for item in args.env),
    }
    settings = Settings(**{name.removeprefix("IMGCOMP_").lower(): value for name, value in base.items()})
    command = "$ .venv/bin/python scripts/hostile_load.py " + shlex.join(argv if argv is not None else sys.argv[1:])

    def head(started: float) -> str:
        load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
        return (
            f"{args.model} on the CPU ({args.threads} torch threads), loopback, a fresh server with a token set "
            f"and the service's defaults (upload limit {settings.max_upload_bytes:,} bytes, queue "
            f"{settings.queue_size}, byte budget {settings.admission_bytes:,}, pixel budget "
            f"{settings.admission_pixels:,}), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))}; "
            f"load average (1, 5, 15 min) at the end: {load}. {args.note}\n\n    {command}"
        )

    if "unauthorised" in phases:
        with np.load(args.faces) as archive:
            faces = archive["images"][1000:1016]
        payloads = face_payloads(faces, {"model": args.model, "region": "whole"})
        with tempfile.TemporaryDirectory(prefix="imgcomp-spool-") as spool:
            server, url = start_server({**base, "TMPDIR": spool})
            started = time.time()
            try:
                run = asyncio.run(
                    unauthorised_load(
                        url,
                        payloads,
                        token,
                        pid=server.pid,
                        spool=Path(spool),
                        unauthorised=args.unauthorised,
                        authorised=args.authorised,
                        seconds=args.seconds,
                        body_bytes=int(args.body_mb * 1e6),
                        trickle_bytes_per_s=args.trickle_kbps * 1e3,
                    )
                )
            finally:
                _stop(server)
        write_hostile(run, args.out, head(started), args.unauthorised, args.authorised)
        print((args.out / "unauthorised.md").read_text(), flush=True)

    for phase in ("burst", "burst-bytes"):
        if phase not in phases:
            continue
        data = {"model": args.model, "region": args.region}
        if phase == "burst":
            payload, note = flat_payload(settings.max_image_pixels, data)
        else:
            payload, note = noisy_payload(settings.max_upload_bytes, data)
        with tempfile.TemporaryDirectory(prefix="imgcomp-spool-") as spool:
            server, url = start_server({**base, "TMPDIR": spool})
            started = time.time()
            try:
                result = asyncio.run(burst(url, payload, args.burst, token, pid=server.pid, spool=Path(spool)))
            finally:
                _stop(server)
        budget = settings.admission_bytes
        write_burst(result, args.out, head(started), args.burst, note, MEMORY_LIMIT_MIB, stem=phase, byte_budget=budget)
        print((args.out / f"{phase}.md").read_text(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
