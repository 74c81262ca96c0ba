"""The README's faces-in-photos figure: scikit-image's `astronaut` with its eyes blocked, sent to a running
service (`make serve`) with region=auto and region=whole, beside OpenCV's Telea.

    python scripts/astronaut_figure.py --url http://127.0.0.1:8000 --out docs/faces/astronaut.png --repeat 5

With `--repeat N` it also times the photo (region=auto) against the same face sent as a crop (its square
cut from the photo, region=whole with the model region=auto chose): the median of N answers' total_s each.
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

import httpx
import numpy as np
import skimage.data
from PIL import Image, ImageDraw

from app.engine.inpaint import telea
from app.quality.faces_eval import complete_json
from app.quality.metrics import hole_psnr

EYES = (slice(95, 135), slice(160, 265))  # rows, columns of the block over both eyes
VIEW = (slice(30, 250), slice(110, 330))  # the face and its surroundings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--out", type=Path, default=Path("docs/faces/astronaut.png"))
    parser.add_argument("--repeat", type=int, default=0, help="time each request this many times (0: no timing)")
    args = parser.parse_args()
    truth = skimage.data.astronaut()
    hole = np.zeros(truth.shape[:2], dtype=bool)
    hole[EYES] = True
    damaged = truth.copy()
    damaged[hole] = 0
    panels = [("damaged", damaged), ("Telea", telea(damaged, hole))]
    with httpx.Client(base_url=args.url, timeout=300) as client:
        answers = {}
        for region in ("whole", "auto"):
            image, answers[region] = complete_json(client, damaged, hole, region)
            label = "region=whole" if region == "whole" else "region=auto (ours)"
            panels.append((label, image))
            print(region, answers[region]["timings"], answers[region]["faces"])
        if args.repeat:
            timed(client, damaged, hole, answers["auto"]["faces"], args.repeat)
    tiles = []
    for label, image in panels:
        psnr = "" if label == "damaged" else f" {hole_psnr(image, truth, hole):.1f} dB"
        tile = Image.fromarray(np.ascontiguousarray(image[VIEW]))
        ImageDraw.Draw(tile).text((6, 4), label + psnr, fill=(255, 255, 0))
        tiles.append(np.asarray(tile))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(tiles, axis=1)).save(args.out)
    print(f"wrote {args.out}")


def timed(client: httpx.Client, damaged: np.ndarray, hole: np.ndarray, faces: list[dict], repeat: int) -> None:
    """Median total_s of the photo (region=auto, region=whole) and of its restored face sent as a crop."""
    face = next(face for face in faces if face["status"] == "restored")
    x, y, w, h = face["box"]
    side = round(face["side"])  # the crop square the model saw, centred on the face's box
    top, left = max(0, y + h // 2 - side // 2), max(0, x + w // 2 - side // 2)
    square = (slice(top, top + side), slice(left, left + side))
    cases = {
        "photo, region=auto": (damaged, hole, "auto", None),
        "photo, region=whole": (damaged, hole, "whole", None),
        f"face crop {side}x{side}, region=whole, {face['model']}": (
            damaged[square],
            hole[square],
            "whole",
            face["model"],
        ),
    }
    print(f"load average {os.getloadavg()}")
    print("| request | median total_s | runs |\n|---|---:|---:|")
    for label, (image, mask, region, model) in cases.items():
        seconds = [complete_json(client, image, mask, region, model)[1]["timings"]["total_s"] for _ in range(repeat)]
        print(f"| {label} | {statistics.median(seconds):.2f} | {repeat} |")


if __name__ == "__main__":
    main()
