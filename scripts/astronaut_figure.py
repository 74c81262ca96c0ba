"""The README's faces-in-photos figure: scikit-image's `astronaut` with its eyes blocked, sent to a running
service (`make serve`) with region=auto and region=whole, beside OpenCV's Telea.

    python scripts/astronaut_figure.py --url http://127.0.0.1:8000 --out docs/faces/astronaut.png
"""

from __future__ import annotations

import argparse
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
    args = parser.parse_args()
    truth = skimage.data.astronaut()
    hole = np.zeros(truth.shape[:2], dtype=bool)
    hole[EYES] = True
    damaged = truth.copy()
    damaged[hole] = 0
    panels = [("damaged", damaged), ("Telea", telea(damaged, hole))]
    with httpx.Client(base_url=args.url, timeout=300) as client:
        for region in ("whole", "auto"):
            image, answer = complete_json(client, damaged, hole, region)
            label = "region=whole" if region == "whole" else "region=auto (ours)"
            panels.append((label, image))
            print(region, answer["timings"], answer["faces"])
    tiles = []
    for label, image in panels:
        psnr = "" if label == "damaged" else f" {hole_psnr(image, truth, hole):.1f} dB"
        tile = Image.fromarray(np.ascontiguousarray(image[VIEW]))
        ImageDraw.Draw(tile).text((6, 4), label + psnr, fill=(255, 255, 0))
        tiles.append(np.asarray(tile))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(tiles, axis=1)).save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
