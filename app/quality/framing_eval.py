"""`python -m app.quality.framing_eval`: what the framing costs a restored face, with the true framing known.

The held-out scenes (`app.quality.scenes`) know where each face was placed, so the same face
and hole are completed in-process, with the service's defaults, in four framings: the true one,
dlib's landmarks on the undamaged photo, the landmarks the hole left alone, and those corrected by
the framing network (what `region=auto` uses where the store has one). Hole PSNR against the best
classical fill, and each framing's error: the template's eyes and nose mapped through it, mean
distance in crop pixels of 200. Writes `table.md` and `results.json` to `--out`.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from app.config import Settings
from app.engine.depth import edge_fill
from app.engine.inpaint import INPAINTS
from app.engine.search import SearchJob, params_for
from app.faces.align import TEMPLATE, Framing, from_landmarks, warp_in
from app.faces.locate import Face, FaceLocator
from app.faces.paste import FaceFill, paste_faces
from app.faces.plan import Sized, pick_model, surviving
from app.faces.refine import FaceFramer
from app.loading import load_runners
from app.quality.faces_eval import held_out_names
from app.quality.metrics import hole_psnr
from app.quality.scenes import Scene, held_out_faces, scene
from app.quality.stats import mean_interval
from app.store import ModelStore

FRAMINGS = ("true", "undamaged", "surviving", "refined")


def framing_error(framing: Framing, item: Scene) -> float:
    """Mean distance, in crop pixels of 200, between the template's points and where `framing` puts them."""
    points = item.to_scene[:, :2] @ TEMPLATE.T + item.to_scene[:, 2:3]
    mapped = framing.matrix[:, :2] @ points + framing.matrix[:, 2:3]
    return float(np.linalg.norm(mapped - TEMPLATE.T, axis=0).mean())


def _the_face(faces: list[Face], item: Scene) -> Face | None:
    return next((face for face in faces if item.is_face(*face.box.as_list())), None)


class Completer:
    """The shipped face models in-process, completing a face in a given framing as `region=auto` does."""

    def __init__(self, store: Path) -> None:
        models = ModelStore.discover(store, "faces")
        entries = [models.resolve("faces"), models.resolve("faces-128")]
        self.runners = load_runners(entries, ["cpu"], Settings(model_store=store).precision)[0]
        self.models = [Sized(e.key, e.resolution, e.has_encoder) for e in entries]
        self.edge = edge_fill("telea")
        framer = FaceFramer.discover(store, Settings(model_store=store).face_framer)
        if framer is None:
            raise SystemExit(f"{store} holds no framing network: train one with `python -m training framing`")
        self.framer = framer

    def __call__(self, item: Scene, damaged: np.ndarray, framing: Framing) -> float:
        model = pick_model(framing.side, self.models)
        aligned = warp_in(damaged, item.hole, framing, model.resolution)
        [result] = self.runners[model.key].run([SearchJob(aligned.target, aligned.hole, params_for(True))])
        restored = paste_faces(damaged, item.hole, [FaceFill(result.generated, framing)], "telea", self.edge, "poisson")
        return hole_psnr(restored, item.image, item.hole)


def evaluate(
    n: int, families: list[str], faces: list[tuple[str, np.ndarray]], complete: Completer
) -> list[dict[str, Any]]:
    locator = FaceLocator()
    records = []
    for family in families:
        for index in range(n):
            item = scene(index, family, faces[index])
            damaged = item.image.copy()
            damaged[item.hole] = 0
            clean = _the_face(locator.detect(item.image, np.zeros_like(item.hole)), item)
            broken = _the_face(locator.detect(damaged, item.hole), item)
            if clean is None or broken is None:
                continue
            left = from_landmarks(broken.landmarks, surviving(broken, item.hole))
            framings = {
                "true": Framing(cv2.invertAffineTransform(item.to_scene)),
                "undamaged": from_landmarks(clean.landmarks),
                "surviving": left,
                "refined": complete.framer.refine(damaged, item.hole, [left])[0],
            }
            record: dict[str, Any] = {"scene": item.name, "family": family, "side": round(item.side, 1)}
            record["classical"] = max(
                hole_psnr(fill(damaged, item.hole), item.image, item.hole) for fill in INPAINTS.values()
            )
            done: dict[bytes, float] = {}  # a framing met twice (no two landmarks survived) is completed once
            for name, framing in framings.items():
                key = framing.matrix.tobytes()
                record[f"psnr_{name}"] = done[key] = done[key] if key in done else complete(item, damaged, framing)
                record[f"error_{name}"] = framing_error(framing, item)
            records.append(record)
            print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in record.items()}), flush=True)  # noqa: T201
    return records


def table(records: list[dict[str, Any]]) -> str:
    lines = [
        "| family | n | " + " | ".join(f"{name}: PSNR - best classical, 95 % / error" for name in FRAMINGS) + " |",
        "|---|---:|" + "---|" * len(FRAMINGS),
    ]
    for family in dict.fromkeys(r["family"] for r in records):
        rows = [r for r in records if r["family"] == family]
        cells = []
        for name in FRAMINGS:
            interval = mean_interval([r[f"psnr_{name}"] - r["classical"] for r in rows])
            error = float(np.median([r[f"error_{name}"] for r in rows]))
            cells.append(f"{interval.mean:+.2f} [{interval.low:+.2f}, {interval.high:+.2f}] / {error:.1f} px")
        lines.append(f"| {family} | {len(rows)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/utkface_crop_part1_200.zip"))
    parser.add_argument("--store", type=Path, default=Path("model_store"))
    parser.add_argument("--n", type=int, default=30, help="scenes per family")
    parser.add_argument("--families", default="eyes,nose-mouth,half,strokes")
    parser.add_argument("--out", type=Path, default=Path("docs/evaluation/faces-framing"))
    args = parser.parse_args(argv)
    torch.set_num_threads(os.cpu_count() or 1)
    faces = held_out_faces(args.data, held_out_names(args.store)[: args.n])
    print(f"load average {os.getloadavg()}", flush=True)  # noqa: T201
    records = evaluate(args.n, args.families.split(","), faces, Completer(args.store))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(records, indent=1))
    (args.out / "table.md").write_text(table(records))
    print(table(records))  # noqa: T201


if __name__ == "__main__":
    main()
