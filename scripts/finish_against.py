"""The finish of this checkout against another commit's: how many pixels of the finished photos differ, by how much.

Both sides finish the same generator answer (seeded noise: the search is not what is compared) into the same
photos, with the Poisson blend and the edge fill and without the blend: the bench's astronaut at each of its
sizes and at 1920x1080 (`app.bench.outside`), and the evaluation's scenes (`app.quality.scenes`: held-out
UTKFace crops pasted into bundled photos, every hole family), whole-photo finish as `region=whole` runs it.
The other commit runs from a `git worktree` in a child process. Prints, per set, the photos that differ, the
pixels that differ and the largest difference in levels, and each side's finishing milliseconds.

    python scripts/finish_against.py --against f84678c --faces 8
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SIZES = ((512, 512), (1280, 886), (1920, 1080))


def _cases(faces: int, data: Path, store: Path) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """(set, name, photo, hole): the bench's photos, then the evaluation's held-out scenes."""
    from app.bench.outside import hole, photo
    from app.quality.faces_eval import held_out_names
    from app.quality.scenes import FAMILIES, held_out_faces, scene

    cases = [("bench photo", f"{w}x{h}", photo(w, h), hole(w, h)) for w, h in SIZES]
    for index, face in enumerate(held_out_faces(data, held_out_names(store)[:faces])):
        for family in FAMILIES:
            made = scene(index, family, face)
            damaged = np.where(made.hole[..., None], 0, made.image).astype(np.uint8)
            cases.append(("held-out scenes", f"{face[0]} {family}", damaged, made.hole))
    return cases


def _emit(out: Path, faces: int, data: Path, store: Path) -> None:
    """Finish every case with the `app` on the path (this side's) and save the photos and milliseconds."""
    import torch
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")  # as the server sizes its pools (app.threads), whichever tree runs
    from app.engine.compose import finish_planned, plan_finish

    generated = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    cases = _cases(faces, data, store)
    photos, seconds = {}, {}
    for number, (_, _, image, hole) in enumerate(cases):
        for blend in ("poisson", "none"):
            plan = plan_finish(image, hole, 64, blend)
            best = float("inf")
            for _ in range(3):
                started = time.perf_counter()
                finished = finish_planned(image, hole, generated, plan)
                best = min(best, time.perf_counter() - started)
            photos[f"{number} {blend}"], seconds[f"{number} {blend}"] = finished, best
    sets = np.array([set_name for set_name, *_ in cases])
    np.savez(out, names=np.array(list(photos)), seconds=np.array(list(seconds.values())), sets=sets, **photos)


def _side(commit: str | None, out: Path, args: argparse.Namespace, folder: Path) -> None:
    tree = REPO
    if commit is not None:
        tree = folder / "tree"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(tree), commit], check=True)
    command = [sys.executable, str(Path(__file__).resolve()), "--emit", str(out), "--faces", str(args.faces)]
    command += ["--data", str(args.data), "--store", str(args.store)]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    try:
        subprocess.run(command, cwd=tree, env=env, check=True)
    finally:
        if commit is not None:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=True)


def _total_ms(saved: np.lib.npyio.NpzFile, keys: list[str]) -> float:
    index = {name: i for i, name in enumerate(saved["names"])}
    return sum(float(saved["seconds"][index[key]]) for key in keys) * 1000


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--against", help="the commit whose finish to compare with")
    parser.add_argument("--faces", type=int, default=8, help="held-out faces, each in every hole family")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "utkface_crop_part1_200.zip")
    parser.add_argument("--store", type=Path, default=REPO / "model_store")
    parser.add_argument("--out", type=Path, help="also write the table here")
    parser.add_argument("--emit", type=Path, help=argparse.SUPPRESS)  # the child's side: finish and save
    args = parser.parse_args(argv)
    if args.emit is not None:
        _emit(args.emit, args.faces, args.data, args.store)
        return 0
    if args.against is None:
        parser.error("--against is required")
    with tempfile.TemporaryDirectory() as folder:
        before, after = Path(folder) / "before.npz", Path(folder) / "after.npz"
        _side(args.against, before, args, Path(folder))
        _side(None, after, args, Path(folder))
        with np.load(before) as old, np.load(after) as new:
            sets = [str(name) for name in new["sets"]]  # each case's set, as the children made them
            assert sets == [str(name) for name in old["sets"]], "both sides must finish the same cases"
            lines = [
                "| set | blend | photos differing | pixels differing | largest | "
                f"ms before ({args.against}) | ms after |",
                "|---|---|---:|---:|---:|---:|---:|",
            ]
            for set_name in dict.fromkeys(sets):
                for blend in ("poisson", "none"):
                    keys = [f"{i} {blend}" for i, name in enumerate(sets) if name == set_name]
                    gaps = [np.abs(old[k].astype(int) - new[k].astype(int)).max(axis=2) for k in keys]
                    times = {side: _total_ms(saved, keys) for side, saved in (("before", old), ("after", new))}
                    lines.append(
                        f"| {set_name} ({len(keys)}) | {blend} | {sum(int(g.any()) for g in gaps)} | "
                        f"{sum(int((g > 0).sum()) for g in gaps)} | {max(int(g.max()) for g in gaps)} | "
                        f"{times['before']:.1f} | {times['after']:.1f} |"
                    )
    lines += ["", f"Milliseconds: each photo's best of 3 in one thread, summed over the set. Load average {_load()}."]
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out:
        command = " ".join(["python scripts/finish_against.py", *(argv if argv is not None else sys.argv[1:])])
        args.out.write_text(f"# The finish against {args.against}\n\n```sh\n{command}\n```\n\n{table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
