"""Make the README's before/after picture by calling a running service over HTTP.

Held-out photos (never seen in training) are enlarged to 192x192 like a small
scan, damaged (their hole pixels overwritten with noise, so nothing can leak
back), sent to `POST /complete` with a mask, and shown as rows of
original | damaged | restored.

    python -m app serve &   # the shipped models on 127.0.0.1:8000
    python scripts/readme_figure.py --model faces --data ../shared/data/utkface_crop_part1_64.npz \
        --out docs/before_after_faces.png
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import httpx
import numpy as np
from PIL import Image, ImageDraw

SIDE = 192


def _damage(rng: np.random.Generator, kind: str) -> np.ndarray:
    """A hole like real damage: a lost block, or scratches and a stain."""
    mask = Image.new("L", (SIDE, SIDE), 0)
    draw = ImageDraw.Draw(mask)
    if kind == "block":
        draw.rectangle((SIDE // 4, SIDE // 4, 3 * SIDE // 4, 3 * SIDE // 4), fill=255)
    else:
        for _ in range(4):
            points = [tuple(int(v) for v in rng.integers(0, SIDE, 2)) for _ in range(3)]
            draw.line(points, fill=255, width=int(rng.integers(8, 16)))
        x, y = (int(v) for v in rng.integers(40, SIDE - 60, 2))
        draw.ellipse((x, y, x + 45, y + 35), fill=255)
    return np.asarray(mask) > 0


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--model", default="faces")
    parser.add_argument("--model-store", type=Path, default=Path("model_store"))
    parser.add_argument("--data", type=Path, required=True, help="the .npz the model was trained from")
    parser.add_argument("--rows", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    card = json.loads(max((args.model_store / args.model).glob("*/model.json")).read_text())
    held_out = set(card["dataset"]["held_out"])
    with np.load(args.data) as archive:
        names, images = [str(n) for n in archive["filenames"]], archive["images"]
    rng = np.random.default_rng(args.seed)
    picks = rng.choice([i for i, n in enumerate(names) if n in held_out], args.rows, replace=False)
    rows = []
    with httpx.Client(base_url=args.url, timeout=300) as client:
        for row, index in enumerate(picks):
            photo = np.asarray(Image.fromarray(images[index]).resize((SIDE, SIDE), Image.Resampling.LANCZOS))
            hole = _damage(rng, "block" if row % 2 == 0 else "scratches")
            damaged = photo.copy()
            damaged[hole] = rng.integers(0, 256, (int(hole.sum()), 3), dtype=np.uint8)
            response = client.post(
                "/complete",
                files={
                    "image": ("photo.png", _png(damaged), "image/png"),
                    "mask": ("mask.png", _png(hole.astype(np.uint8) * 255), "image/png"),
                },
                data={"model": args.model, "seed": str(args.seed)},
            )
            response.raise_for_status()
            restored = np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))
            rows.append(np.concatenate([photo, damaged, restored], axis=1))
            seconds, model = response.headers.get("X-Total-Seconds"), response.headers.get("X-Model")
            print(f"{names[index]}: {seconds} s, model {model}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, axis=0)).save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
