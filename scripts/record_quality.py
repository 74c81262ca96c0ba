"""Record an `evaluate` folder's results in a model card (`model.json`, key `quality`).

The card travels with the weights, so whoever serves a model can read how it
compares with classical inpainting without finding the report. The weights'
sha256 covers the weight files, not the card, so this leaves the checkpoint valid.

    python scripts/record_quality.py docs/evaluation/faces model_store/faces/1
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from app.quality.gaps import family_gaps, verdict
from app.quality.report import read_records
from app.quality.stats import Interval

RECORDED_METRICS = ("psnr", "ssim")


def paired(gap: Interval) -> dict[str, Any]:
    return {"mean": round(gap.mean, 3), "low": round(gap.low, 3), "high": round(gap.high, 3), "verdict": verdict(gap)}


def quality(folder: Path) -> dict[str, Any]:
    """The card's `quality` block: settings, per-method means and the paired gaps of one evaluation."""
    summary = json.loads((folder / "summary.json").read_text())
    results: dict[str, dict[str, dict[str, float]]] = {}
    for cell in summary["cells"]:
        if cell["metric"] in RECORDED_METRICS:
            digits = 2 if cell["metric"] == "psnr" else 3
            method = results.setdefault(cell["kind"], {}).setdefault(cell["method"], {})
            method[cell["metric"]] = round(cell["mean"], digits)
    families = summary.get("per_family") or {kind: summary for kind in summary["masks"]}
    return {
        "what": "hole PSNR (dB) and whole-image SSIM, mean over held-out photos at model resolution, "
        "hole overwritten with noise first; gaps are paired means with 95 % intervals",
        "n_per_mask": summary["n"],
        "split": summary["split"],
        "search": summary["search"],
        "precision": summary["precision"],
        "commands": [family["command"] for family in families.values()],
        "report": str(folder / "table.md"),
        "results": results,
        "gaps": {
            gaps.kind: {
                "best_classical": gaps.best_classical,
                "psnr_vs_best_classical": paired(gaps.psnr_vs_best),
                "share_of_photos_ahead": round(gaps.psnr_ahead_share, 3),
                "ssim_vs_telea": paired(gaps.ssim_vs_telea),
            }
            for gaps in family_gaps(read_records(folder))
        },
    }


def record(folder: Path, model_dir: Path) -> dict[str, Any]:
    """Rewrite model_dir/model.json with the new `quality` block (atomically: a reader never sees half a card)."""
    card_path = model_dir / "model.json"
    card = json.loads(card_path.read_text())
    card["quality"] = quality(folder)
    staging = card_path.with_suffix(".json.tmp")
    staging.write_text(json.dumps(card, indent=2) + "\n")
    os.replace(staging, card_path)
    return card


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("evaluation", type=Path, help="a folder written by python -m app evaluate (or merged)")
    parser.add_argument("model_dir", type=Path, help="model_store/<name>/<version>")
    args = parser.parse_args()
    card = record(args.evaluation, args.model_dir)
    print(json.dumps(card["quality"]["gaps"], indent=2))


if __name__ == "__main__":
    main()
