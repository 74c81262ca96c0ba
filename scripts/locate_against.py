"""The face locator of this checkout against another commit's, on held-out scenes: the same faces, in what time.

Loads `app/faces/locate.py` as it was at `--against` (by `git show`) beside this checkout's, runs both on the
evaluation's scenes (`app.quality.scenes`: held-out UTKFace crops pasted into bundled photos, every hole
family, the hole blanked as an upload's), and prints how many scenes gave the same boxes, scores and
landmarks, and each side's seconds. A change meant to keep the locator's answers (threads, caching) shows
`identical N/N`.

    python scripts/locate_against.py --against 01133b3 --faces 8
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from app.faces.locate import FaceLocator
from app.quality.faces_eval import held_out_names
from app.quality.scenes import FAMILIES, held_out_faces, scene

REPO = Path(__file__).resolve().parents[1]


def _module_at(commit: str) -> ModuleType:
    """`app/faces/locate.py` as it was at `commit`, imported under its own name."""
    source = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{commit}:app/faces/locate.py"], capture_output=True, text=True, check=True
    ).stdout
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "locate_before.py"
        path.write_text(source)
        spec = importlib.util.spec_from_file_location("locate_before", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["locate_before"] = module  # dataclasses look their module up while the class is made
        spec.loader.exec_module(module)
    return module


def _answer(faces: list[Any]) -> list[tuple[list[int], float, list[list[float]]]]:
    return [(face.box.as_list(), face.score, face.landmarks.tolist()) for face in faces]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--against", required=True, help="the commit whose locator to compare with")
    parser.add_argument("--faces", type=int, default=8, help="held-out faces, each in every hole family")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "utkface_crop_part1_200.zip")
    parser.add_argument("--store", type=Path, default=REPO / "model_store")
    args = parser.parse_args(argv)
    before = _module_at(args.against).FaceLocator()
    after = FaceLocator()
    faces = held_out_faces(args.data, held_out_names(args.store)[: args.faces])
    same = count = 0
    seconds = {"before": 0.0, "after": 0.0}
    for index, face in enumerate(faces):
        for family in FAMILIES:
            case = scene(index, family, face)
            damaged = np.where(case.hole[..., None], 0, case.image).astype(np.uint8)
            answers = {}
            for side, locator in (("before", before), ("after", after)):
                started = time.perf_counter()
                answers[side] = _answer(locator.detect(damaged, case.hole))
                seconds[side] += time.perf_counter() - started
            same += answers["before"] == answers["after"]
            count += 1
    print(
        f"identical {same}/{count} scenes; before ({args.against}) {seconds['before']:.1f} s, after "
        f"{seconds['after']:.1f} s; load average {' '.join(Path('/proc/loadavg').read_text().split()[:3])}"
    )
    return 0 if same == count else 1


if __name__ == "__main__":
    sys.exit(main())
