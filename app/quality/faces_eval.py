"""`python -m app.quality.faces_eval`: faces in photos through the real service, against the classical fills.

Every scene is built from held-out faces only (`app.quality.scenes`); each is sent to a
real server twice (`region=auto`, `region=whole`) and filled by Telea and Navier-Stokes
at the photo's size. Writes `table.md`, `results.json` and `grid.png` to `--out`.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import dlib
import httpx
import numpy as np
from PIL import Image

from app.bench.server import serving
from app.config import Settings
from app.engine.inpaint import INPAINTS
from app.faces.locate import model_file
from app.quality.metrics import hole_psnr, ssim
from app.quality.scenes import FAMILIES, Scene, face_chip, held_out_faces, scene
from app.quality.stats import mean_interval
from training.checkpoint import read_card

METHODS = ("ours", "whole", "telea", "ns")


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def complete_json(
    client: httpx.Client, damaged: np.ndarray, hole: np.ndarray, region: str, model: str | None = None
) -> tuple[np.ndarray, dict[str, Any]]:
    """The service's answer for `damaged` with its `hole`, `region` and `model` (the server's default when None):
    the restored image and the rest of the JSON."""
    response = client.post(
        "/complete",
        files={"image": png(damaged), "mask": png(hole.astype(np.uint8) * 255)},
        data={"region": region} | ({"model": model} if model is not None else {}),
        headers={"Accept": "application/json"},
    )
    response.raise_for_status()
    answer = response.json()
    image = np.asarray(Image.open(io.BytesIO(base64.b64decode(answer.pop("image")))).convert("RGB"))
    return image, answer


class Identity:
    """dlib's face descriptor network (face-recognition-models): distance < 0.6 reads as the same person."""

    def __init__(self) -> None:
        self.net = dlib.face_recognition_model_v1(str(model_file("dlib_face_recognition_resnet_model_v1.dat")))

    def distance(self, a: np.ndarray, b: np.ndarray) -> float:
        da = np.asarray(self.net.compute_face_descriptor(np.ascontiguousarray(a)))
        db = np.asarray(self.net.compute_face_descriptor(np.ascontiguousarray(b)))
        return float(np.linalg.norm(da - db))


def _found(answer: dict[str, Any], item: Scene) -> tuple[bool, bool, int]:
    """(face found, face restored, false boxes): a box counts as the face when its centre is within a third of the
    face's side of the face's centre."""
    found = restored = False
    false = 0
    for face in answer.get("faces", []):
        near = item.is_face(*face["box"])
        found |= near
        restored |= near and face["status"] == "restored"
        false += int(not near)
    return found, restored, false


def evaluate(
    url: str, n: int, families: tuple[str, ...], faces: list[tuple[str, np.ndarray]], clients: int
) -> list[dict[str, Any]]:
    identity = Identity()

    def one(job: tuple[int, str]) -> dict[str, Any]:
        index, family = job
        item = scene(index, family, faces[index])
        damaged = item.image.copy()
        damaged[item.hole] = 0
        with httpx.Client(base_url=url, timeout=900) as client:
            ours, answer = complete_json(client, damaged, item.hole, "auto")
            whole, _ = complete_json(client, damaged, item.hole, "whole")
        results = {"ours": ours, "whole": whole, **{name: fill(damaged, item.hole) for name, fill in INPAINTS.items()}}
        rows, cols = np.flatnonzero(item.hole.any(axis=1)), np.flatnonzero(item.hole.any(axis=0))
        box = (slice(max(0, rows[0] - 8), rows[-1] + 9), slice(max(0, cols[0] - 8), cols[-1] + 9))
        found, restored, false = _found(answer, item)
        record: dict[str, Any] = {
            "scene": item.name,
            "family": family,
            "side": round(item.side, 1),
            "found": bool(found),
            "restored": bool(restored),
            "false_boxes": false,
            "timings": answer["timings"],
            "faces": answer["faces"],
        }
        truth_chip = face_chip(item.image, item.to_scene)
        for name in METHODS:
            record[f"psnr_{name}"] = hole_psnr(results[name], item.image, item.hole)
            record[f"ssim_{name}"] = ssim(results[name][box], item.image[box])
            if family != "off-face":
                record[f"identity_{name}"] = identity.distance(face_chip(results[name], item.to_scene), truth_chip)
        return record

    jobs = [(index, family) for index in range(n) for family in families]
    records = []
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for done, record in enumerate(pool.map(one, jobs), 1):
            records.append(record)
            if done % 20 == 0:
                print(f"{done}/{len(jobs)} scenes, {time.perf_counter() - started:.0f} s", flush=True)  # noqa: T201
    return records


def _cell(values: list[float]) -> str:
    interval = mean_interval(values)
    return f"{interval.mean:+.2f} [{interval.low:+.2f}, {interval.high:+.2f}]"


def table(records: list[dict[str, Any]]) -> str:
    lines = [
        "| family | n | ours | whole | Telea | NS | ours - best classical, 95 % | ours - whole, 95 % "
        "| SSIM ours / whole / best classical | found (>= 80 px) | restored | false boxes "
        "| identity ours / whole / Telea |",
        "|---|---:|---:|---:|---:|---:|---|---|---|---|---|---:|---|",
    ]
    for family in FAMILIES:
        rows = [r for r in records if r["family"] == family]
        if not rows:
            continue
        mean = {m: np.mean([r[f"psnr_{m}"] for r in rows]) for m in METHODS}
        best = "telea" if mean["telea"] >= mean["ns"] else "ns"
        ssim_mean = {m: np.mean([r[f"ssim_{m}"] for r in rows]) for m in METHODS}
        big = [r for r in rows if r["side"] >= 80]
        identity = (
            " / ".join(f"{np.mean([r[f'identity_{m}'] for r in rows]):.3f}" for m in ("ours", "whole", "telea"))
            if family != "off-face"
            else "-"
        )
        found = f"{sum(r['found'] for r in big)}/{len(big)}" if family != "off-face" else "-"
        restored = f"{sum(r['restored'] for r in rows)}/{len(rows)}" if family != "off-face" else "-"
        lines.append(
            f"| {family} | {len(rows)} | {mean['ours']:.2f} | {mean['whole']:.2f} | {mean['telea']:.2f} | "
            f"{mean['ns']:.2f} | {_cell([r['psnr_ours'] - r[f'psnr_{best}'] for r in rows])} | "
            f"{_cell([r['psnr_ours'] - r['psnr_whole'] for r in rows])} | "
            f"{ssim_mean['ours']:.3f} / {ssim_mean['whole']:.3f} / {ssim_mean[best]:.3f} | {found} | {restored} | "
            f"{sum(r['false_boxes'] for r in rows)} | {identity} |"
        )
    return "\n".join(lines) + "\n"


def grid(url: str, faces: list[tuple[str, np.ndarray]], out: Path, count: int = 3) -> None:
    """Face chips of the first scenes of each face family: truth, damaged, Telea, whole, ours."""
    rows = []
    with httpx.Client(base_url=url, timeout=900) as client:
        for family in ("eyes", "nose-mouth", "half", "strokes"):
            for index in range(count):
                item = scene(index, family, faces[index])
                damaged = item.image.copy()
                damaged[item.hole] = 255
                ours, _ = complete_json(client, damaged, item.hole, "auto")
                whole, _ = complete_json(client, damaged, item.hole, "whole")
                telea = INPAINTS["telea"](damaged, item.hole)
                chips = [face_chip(x, item.to_scene, 128) for x in (item.image, damaged, telea, whole, ours)]
                rows.append(np.concatenate(chips, axis=1))
    Image.fromarray(np.concatenate(rows, axis=0)).save(out / "grid.png")


def held_out_names(store: Path) -> list[str]:
    """The 200x200 faces neither shipped face model trained on (both cards hold them out), sorted: scene i
    places face i."""
    names = set(read_card(store / "faces" / "2")["dataset"]["held_out"])
    return sorted(names & set(read_card(store / "faces-128" / "2")["dataset"]["held_out"]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/utkface_crop_part1_200.zip"))
    parser.add_argument("--store", type=Path, default=Path("model_store"))
    parser.add_argument("--n", type=int, default=100, help="scenes per family")
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("docs/evaluation/faces-in-photos"))
    args = parser.parse_args(argv)
    faces = held_out_faces(args.data, held_out_names(args.store)[: args.n])
    settings = Settings(
        model_store=args.store, devices=("cpu",), queue_size=4096, request_timeout_s=3600, slots_per_device=128
    )
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"load average {os.getloadavg()}", flush=True)  # noqa: T201
    with serving(settings) as url:
        records = evaluate(url, args.n, tuple(args.families.split(",")), faces, args.clients)
        (args.out / "results.json").write_text(json.dumps(records, indent=1))
        (args.out / "table.md").write_text(table(records))
        print(table(records))  # noqa: T201
        grid(url, faces, args.out)


if __name__ == "__main__":
    main()
