"""The server's time outside the model, before and after, in one run: two `python -m app serve`, side by side.

The old code serves from a `git worktree` of `--before`, the new from this checkout, on the same model store.
One client sends each upload (the astronaut with a block missing over the face, `app.bench.outside`) to each
server in turn (`--run` requests at a time), so a busy spell on the machine falls on both alike; outside the
model is the response's X-Total-Seconds minus X-Search-Seconds (decoding, preparing, blending, edge filling,
encoding and the thread hops), the median of `--repeats` after one unmeasured request. Prints and writes a
markdown table.

    python scripts/bench_outside.py --before ccc07c4 --out docs/bench/outside-the-model/table.md
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import httpx

from app.bench.outside import SIZES, upload
from app.bench.server import REPO, server_process


def _worktree(commit: str, path: Path) -> Path:
    """A detached checkout of `commit` at `path` (made once; an existing one is moved to the commit)."""
    if not path.exists():
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(path), commit], check=True)
    else:
        subprocess.run(["git", "-C", str(path), "checkout", "--detach", "--quiet", commit], check=True)
    return path


def _send(client: httpx.Client, url: str, files: tuple[bytes, bytes], model: str, region: str) -> tuple[float, float]:
    """(model seconds, seconds outside it) of one answer."""
    image, mask = files
    response = client.post(
        f"{url}/complete",
        files={"image": ("photo.png", image, "image/png"), "mask": ("mask.png", mask, "image/png")},
        data={"model": model, "region": region, "seed": "0"},
    )
    response.raise_for_status()
    search, total = float(response.headers["X-Search-Seconds"]), float(response.headers["X-Total-Seconds"])
    return search, total - search


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--before", default="ccc07c4", help="the commit to compare against (default ccc07c4)")
    parser.add_argument("--worktree", type=Path, default=Path("/tmp/imgcomp-before"), help="where it is checked out")
    parser.add_argument(
        "--after",
        help="a commit to serve as 'after' from its own worktree (default: this working tree, as it is; others' "
        "unfinished edits included)",
    )
    parser.add_argument("--model-store", type=Path, default=REPO / "model_store")
    parser.add_argument("--models", default="faces-glcic,faces", help="comma list (default faces-glcic,faces)")
    parser.add_argument("--repeats", type=int, default=7, help="measured requests per cell (default 7)")
    parser.add_argument(
        "--run",
        type=int,
        default=1,
        help="requests in a row to one server before turning to the other (default 1: strict turns, as in the "
        "first tables; each turn then finds the caches holding the other server's photo)",
    )
    parser.add_argument(
        "--region",
        choices=("whole", "auto"),
        default="whole",
        help="the region sent (default whole); auto: faces in photos, its locating counted outside the model",
    )
    parser.add_argument(
        "--alone",
        action="store_true",
        help="one server at a time: each side's server is started for its `--run` requests of every upload and "
        "model, then stopped before the other's starts (two idle servers side by side cost the one at work "
        "5 to 15 ms at 1280x886 on 2 cores)",
    )
    parser.add_argument("--out", type=Path, help="also write the table here")
    args = parser.parse_args(argv)
    models = [name for name in args.models.split(",") if name]
    env = {"IMGCOMP_MODEL_STORE": str(args.model_store.resolve()), "IMGCOMP_DEVICES": "cpu"}
    load_before = _loadavg()
    after = REPO if args.after is None else _worktree(args.after, Path(f"{args.worktree}-after"))
    sides = {"before": _worktree(args.before, args.worktree), "after": after}
    cells: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
    uploads = {(width, height): upload(width, height) for width, height in SIZES}

    def measure(url: str, side: str, width: int, height: int, model: str, count: int) -> None:
        key = (f"{width}x{height}", model, side)
        for _ in range(count):
            cells.setdefault(key, []).append(_send(client, url, uploads[(width, height)], model, args.region))

    with httpx.Client(timeout=120) as client:
        if args.alone:
            for first in range(0, args.repeats, args.run):
                for side, cwd in sides.items():
                    with server_process(env, cwd) as (url, _):
                        for (width, height), model in itertools.product(SIZES, models):
                            _send(client, url, uploads[(width, height)], model, args.region)  # unmeasured: first use
                            measure(url, side, width, height, model, min(args.run, args.repeats - first))
        else:
            with ExitStack() as stack:
                servers = {side: stack.enter_context(server_process(env, cwd)) for side, cwd in sides.items()}
                for (width, height), model in itertools.product(SIZES, models):
                    for url, _ in servers.values():
                        _send(client, url, uploads[(width, height)], model, args.region)  # unmeasured: first use
                    for first in range(0, args.repeats, args.run):
                        for side, (url, _) in servers.items():
                            measure(url, side, width, height, model, min(args.run, args.repeats - first))
    head = " | ".join(f"{m}: model / outside before | {m}: model / outside after" for m in models)
    lines = [f"| upload | {head} |", "|---|" + "---:|---:|" * len(models)]
    for width, height in SIZES:
        row = [f"{width}x{height} PNG"]
        for model in models:
            for side in sides:
                measured = cells[(f"{width}x{height}", model, side)]
                search = statistics.median(s for s, _ in measured) * 1000
                outside = statistics.median(o for _, o in measured) * 1000
                row.append(f"{search:.1f} / **{outside:.1f}** ms")
        lines.append("| " + " | ".join(row) + " |")
    commit = subprocess.run(["git", "-C", str(after), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    lines += [
        "",
        f"Median of {args.repeats} per cell ({args.run} in a row to one server"
        f"{', one server running at a time' if args.alone else ''}), region={args.region}, one client, "
        f"before = {args.before}, after = {commit.stdout.strip()}"
        f"{' (working tree)' if args.after is None else ''}, {os.cpu_count()} CPUs. "
        f"Load average (1, 5, 15 min) at the start {load_before}, at the end {_loadavg()}.",
    ]
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out:
        command = " ".join(["python scripts/bench_outside.py", *(argv if argv is not None else sys.argv[1:])])
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(f"# Time outside the model, before and after\n\n```sh\n{command}\n```\n\n{table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
