"""The bench's command-line options: argparse only, so `python -m app` starts without the bench's imports."""

from __future__ import annotations

import argparse
from pathlib import Path

MODES = ("one-at-a-time", "request-batch", "iteration")


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-store", type=Path, default=Path("model_store"), help="default model_store")
    parser.add_argument("--model", default="faces", help="name or name:version (default faces, latest)")
    parser.add_argument(
        "--images",
        type=Path,
        default=Path("../shared/data/utkface_crop_part1_64.npz"),
        help="an .npz with an `images` (N, H, W, 3) uint8 array: the photos the clients damage and send",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda:N (default cpu)")
    parser.add_argument(
        "--threads",
        type=int,
        help="torch intra-op threads for every mode and the HTTP server (default: torch's, one per core); "
        "on a CPU shared with a busy process, 1 can be several times faster than 2",
    )
    parser.add_argument("--clients", type=_ints, default=[1, 8, 32, 64], help="client counts (default 1,8,32,64)")
    parser.add_argument("--modes", type=_names, default=list(MODES), help=f"subset of {','.join(MODES)}")
    parser.add_argument(
        "--precisions",
        type=_names,
        default=["fp32", "bf16"],
        help="the iteration mode runs in each; the baselines and HTTP in the first (default fp32,bf16)",
    )
    parser.add_argument("--http-clients", type=_ints, default=[1, 8, 32, 64], help="through-HTTP client counts")
    parser.add_argument(
        "--region",
        choices=("auto", "whole"),
        help="through HTTP: the region field sent (default: none, the server's default: auto for face models, "
        "where a photo's faces are looked for first)",
    )
    parser.add_argument("--duration", type=float, default=12.0, help="measured seconds per cell (default 12)")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds before each window")
    parser.add_argument("--iterations", type=_ints, default=[100, 600], help="budget range LOW,HIGH (default 100,600)")
    parser.add_argument("--restarts", type=int, default=1, help="restarts per request (default 1)")
    parser.add_argument("--slots", type=int, default=64, help="slot budget per device; request-batch's max batch")
    parser.add_argument("--batch-wait-ms", type=float, default=50.0, help="request-batch's wait for more requests")
    parser.add_argument("--seed", type=int, default=0, help="workload seed (default 0)")
    parser.add_argument(
        "--defaults",
        help="instead of the batching modes: compare servers' default searches through HTTP, "
        "comma-separated model@precision[/iterations] sides, e.g. faces:1@fp32,faces:2@auto,faces:2@auto/0 "
        "(requests carry no budget; /N sets that server's default iterations)",
    )
    parser.add_argument(
        "--profile",
        type=_ints,
        help="instead of the batching modes: time a step's parts (G, D, backward) at these batch sizes, e.g. 1,8,32,64",
    )
    parser.add_argument(
        "--finish",
        type=_ints,
        help="instead of the batching modes: time blending and edge-filling an answer into square uploads of "
        "these sides with the right half missing, against the first release's full-size blend, e.g. 256,1024,4800",
    )
    parser.add_argument("--compile", action="store_true", help="with --profile: also time torch.compile'd networks")
    parser.add_argument("--out", type=Path, default=Path("docs/bench"), help="folder for bench.csv and bench.png")
