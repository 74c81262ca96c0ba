"""Tune the edge fill (`app.engine.depth.EdgeFill`) on held-out photos at their own size.

The search runs once per damaged photo; each (method, near, far) candidate then
only re-composes the same Poisson-blended fill with its classical edge fill, so
a grid of candidates costs about one evaluation. Prints, per candidate and mask
family, the mean hole PSNR, its paired gap to the best classical method with a
95 % interval, and the hole sharpness; writes the table to --out.

    python scripts/tune_edge_fill.py --model faces:2 \\
        --data ../shared/data/utkface_crop_part1_200.zip --photo-size 200 --n 100 \\
        --near 0,0.5,1 --far 1,2,3,4 --methods telea,ns --out docs/evaluation/edge-fill-200
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from app.engine.compose import blended_fill, compose
from app.engine.depth import EdgeFill
from app.engine.search import params_for
from app.quality.baselines import BASELINES
from app.quality.evaluate import LONE, Contender, make_cases, run_baselines, run_model
from app.quality.metrics import hole_psnr, hole_sharpness
from app.quality.stats import mean_interval
from app.store import ModelStore
from training.data import load_images


def _floats(text: str) -> list[float]:
    return [float(part) for part in text.split(",") if part.strip()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="faces")
    parser.add_argument("--model-store", type=Path, default=Path("model_store"))
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--photo-size", type=int, required=True)
    parser.add_argument("--masks", default="center,half,strokes,blocks")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--near", type=_floats, default=[0.0])
    parser.add_argument("--far", type=_floats, default=[1.0, 2.0, 3.0, 4.0])
    parser.add_argument("--full-at", type=_floats, default=[2.0], help="photo px per model px of full strength")
    parser.add_argument("--methods", default="telea,ns")
    parser.add_argument("--precision", default="bf16")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    entry = ModelStore.discover(args.model_store, args.model.partition(":")[0]).resolve(args.model)
    photos = load_images(args.data, args.photo_size)
    held_out = set(entry.card["dataset"]["held_out"])
    chosen = [i for i, name in enumerate(photos.names) if name in held_out][: args.n]
    images = photos.images[chosen].permute(0, 2, 3, 1).numpy()
    names = [photos.names[i] for i in chosen]
    device = torch.device("cpu")
    runner = entry.served.runner(entry.load_served(device), device, args.precision)
    params = params_for(entry.has_encoder, seed=args.seed)
    contender = Contender.alone(entry.served, runner, params, entry.resolution)
    kinds = args.masks.split(",")
    cases = [case for kind in kinds for case in make_cases(images, names, kind, args.seed)]
    run_baselines(cases)
    with tqdm(total=len(cases), unit="search", desc=entry.key) as progress:
        run_model(cases, contender, 32, progress.update)
    fills = [blended_fill(c.damaged, c.hole, c.generated[LONE]) for c in cases]

    candidates: list[EdgeFill | None] = [None]
    for method, near, far, full_at in itertools.product(args.methods.split(","), args.near, args.far, args.full_at):
        if near < far:
            candidates.append(EdgeFill(method, near, far, full_at))
    rows = []
    for edge in tqdm(candidates, desc="candidates"):
        for kind in kinds:
            psnr, gap, sharp = [], [], []
            for case, fill in zip(cases, fills, strict=True):
                if case.kind != kind:
                    continue
                out = compose(case.damaged, case.hole, fill, entry.resolution, edge)
                best = max(hole_psnr(case.outputs[m], case.truth, case.hole) for m in ("telea", "ns"))
                psnr.append(hole_psnr(out, case.truth, case.hole))
                gap.append(psnr[-1] - best)
                sharp.append(hole_sharpness(out, case.truth, case.hole))
            interval = mean_interval(gap)
            label = "none" if edge is None else f"{edge.method} {edge.near:g}-{edge.far:g}, full at {edge.full_at:g}"
            rows.append(
                {
                    "edge": label,
                    "kind": kind,
                    "psnr": float(np.mean(psnr)),
                    "gap": interval.mean,
                    "gap_low": interval.low,
                    "gap_high": interval.high,
                    "sharp": float(np.mean(sharp)),
                }
            )
    lines = [
        f"{entry.key} on {len(chosen)} held-out photos at {args.photo_size}x{args.photo_size}, seed {args.seed}",
        "",
        "| edge fill | masks | hole PSNR dB | - best classical [95 %] | hole sharpness |",
        "|---|---|---:|---:|---:|",
    ]
    for kind in kinds:
        for classical in BASELINES:
            values = [hole_psnr(c.outputs[classical], c.truth, c.hole) for c in cases if c.kind == kind]
            sharp_values = [hole_sharpness(c.outputs[classical], c.truth, c.hole) for c in cases if c.kind == kind]
            lines.append(f"| ({classical}) | {kind} | {np.mean(values):.2f} | | {np.mean(sharp_values):.2f} |")
    for row in rows:
        lines.append(
            f"| {row['edge']} | {row['kind']} | {row['psnr']:.2f} | {row['gap']:+.2f} "
            f"[{row['gap_low']:+.2f}, {row['gap_high']:+.2f}] | {row['sharp']:.2f} |"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines) + "\n"
    (args.out / "tuning.md").write_text(text)
    (args.out / "tuning.json").write_text(json.dumps({"command": " ".join(sys.argv), "rows": rows}, indent=2))
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
