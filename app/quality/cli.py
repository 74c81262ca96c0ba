"""`python -m app evaluate`: one or more models against classical inpainting on their held-out photos.

`add_parser` registers the subcommand on `python -m app`'s subparsers and
`run` executes it; the table goes to stdout, progress and errors to stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm import tqdm

from app.engine import MASK_KINDS, PRECISIONS, EngineError, SearchParams, SearchRunner
from app.engine.kinds import Limits
from app.engine.search import INITS, params_for
from app.store import ModelEntry, ModelStore, UnknownModelError
from training.checkpoint import CheckpointError
from training.data import DataError, load_images

if TYPE_CHECKING:
    from app.quality.curves import Start
    from app.quality.evaluate import Contender

# command-line flag -> SearchParams field; a flag left out keeps the engine's default
SEARCH_FLAGS = ("iterations", "restarts", "prior_weight", "lr", "z_bound", "patience", "seed")


class EvaluateError(Exception):
    """A request the command cannot run as given; the message says what to change."""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `evaluate` on `python -m app`'s subcommands."""
    parser = subparsers.add_parser(
        "evaluate",
        help="score models against mean fill, OpenCV Telea and Navier-Stokes on held-out photos",
        description="Each photo's hole is overwritten with noise before any method sees it. "
        "Writes summary.csv/.json, per_image.csv, table.md, gaps.md (paired differences), "
        "speed.md (each model's latency and throughput) and grid_<masks>.png to --out.",
    )
    parser.add_argument(
        "--model",
        default="faces",
        help="name or name:version (default faces, latest version); several, comma-separated, of any kind "
        "(e.g. faces:2,faces-glcic) are scored side by side on the same photos, each named by its key",
    )
    parser.add_argument(
        "--model-store",
        type=Path,
        default=Path(os.environ.get("IMGCOMP_MODEL_STORE", "model_store")),
        help="default IMGCOMP_MODEL_STORE or model_store",
    )
    parser.add_argument("--data", type=Path, help="npz, folder or zip of photos (default: the card's dataset source)")
    parser.add_argument(
        "--all-images",
        action="store_true",
        help="use every photo in --data, not only the model card's held-out ones (for photos it never saw)",
    )
    parser.add_argument(
        "--photo-size",
        type=int,
        help="damage and restore the photos at this side in pixels, through the service's whole path "
        "(e.g. 200 for the 200x200 faces zip at its own size); default: the model's resolution",
    )
    parser.add_argument("--masks", default=",".join(MASK_KINDS), help=f"comma-separated of {', '.join(MASK_KINDS)}")
    parser.add_argument("--n", type=int, default=300, help="photos per mask family, the first n of the split")
    parser.add_argument("--out", type=Path, required=True, help="folder for tables and grids")
    parser.add_argument(
        "--speed-batch",
        type=int,
        default=32,
        help="after scoring, time each model at batch 1 and at this batch (default 32; 0 skips speed.md)",
    )
    parser.add_argument(
        "--iterations", type=int, help="search iterations per restart (default: engine's; search models only)"
    )
    parser.add_argument("--restarts", type=int, help="restarts per photo (default: engine's)")
    parser.add_argument("--prior-weight", type=float, help="lambda of the prior loss (default: engine's)")
    parser.add_argument("--lr", type=float, help="Adam step on z (default: engine's)")
    parser.add_argument("--z-bound", type=float, help="clamp on |z_i| (default: engine's)")
    parser.add_argument("--patience", type=int, help="plateau iterations before an early stop (default: engine's)")
    parser.add_argument("--seed", type=int, default=0, help="masks, noise and search start (default 0)")
    parser.add_argument("--batch", type=int, default=32, help="photos searched together (default 32)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda:N (default cpu)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32", help="search precision (default fp32)")
    threads = os.environ.get("IMGCOMP_TORCH_THREADS")
    parser.add_argument(
        "--threads",
        type=int,
        default=int(threads) if threads and threads.isdigit() else None,
        help="torch CPU threads (default IMGCOMP_TORCH_THREADS, else one per core; 1 is fastest on a busy shared CPU)",
    )
    parser.add_argument("--grid-rows", type=int, default=8, help="photos shown per grid (default 8)")
    parser.add_argument(
        "--init", choices=INITS, help="search start (default: encoder where the model has one, else random)"
    )
    curves = parser.add_argument_group(
        "curves", "quality against iterations instead of the method table: curves.md/.csv/.json/.png in --out"
    )
    curves.add_argument("--curves", type=_iterations, help="checkpoints, e.g. 0,25,50,100,200,400,800")
    curves.add_argument(
        "--starts",
        help="comma-separated init:restarts:prior_weight[:until], the first is the reference "
        "(default random:2:0.003, plus encoder:1:0 and encoder:1:0.003:200 where the model has an encoder)",
    )
    curves.add_argument(
        "--reference-iterations", type=int, default=400, help="the reference start's budget (default 400)"
    )
    parser.set_defaults(handler=run)
    return parser


def _iterations(text: str) -> list[int]:
    values = sorted({int(part) for part in text.split(",") if part.strip()})
    if not values or values[0] < 0:
        raise argparse.ArgumentTypeError(f"checkpoints are iteration counts of 0 or more, got {text!r}")
    return values


def _starts(text: str | None, has_encoder: bool) -> list[Start]:
    from app.quality.curves import Start

    default = "random:2:0.003" + (",encoder:1:0,encoder:1:0.003:200" if has_encoder else "")
    try:
        starts = [Start.parse(part) for part in (text or default).split(",") if part.strip()]
    except ValueError as error:
        raise EvaluateError(str(error)) from None
    if any(start.init == "encoder" for start in starts) and not has_encoder:
        raise EvaluateError("this model has no encoder: drop the encoder starts or pick a version with one")
    return starts


def _kinds(text: str) -> list[str]:
    kinds = [kind.strip() for kind in text.split(",") if kind.strip()]
    unknown = [kind for kind in kinds if kind not in MASK_KINDS]
    if unknown or not kinds:
        raise EvaluateError(f"unknown mask families {unknown or text!r}: choose from {', '.join(MASK_KINDS)}")
    return list(dict.fromkeys(kinds))


def _select(names: list[str], cards: list[dict[str, Any]], all_images: bool, n: int) -> tuple[list[int], str]:
    """Indices of the first n photos held out by every model (or of all of them), and which split that is."""
    held_outs = [set(card.get("dataset", {}).get("held_out") or []) for card in cards]
    if all_images:
        chosen, split = list(range(len(names))), "all"
    elif not all(held_outs):
        raise EvaluateError("a model card lists no held-out photos: pass --all-images with photos it never saw")
    else:
        wanted = set.intersection(*held_outs)
        chosen, split = [i for i, name in enumerate(names) if name in wanted], "held-out"
        if not chosen:
            raise EvaluateError(
                "no photo in --data is held out by every model card: pass the training data set, "
                "or --all-images with photos the models never saw"
            )
    return chosen[:n], split


def _run_curves(
    args: argparse.Namespace,
    model: str,
    runner: SearchRunner,
    images: np.ndarray,
    names: list[str],
    kinds: list[str],
    params: SearchParams,
    starts: list[Start],
    data: Path,
    split: str,
) -> int:
    """Every start's curve on the same damaged photos; tables and plot to --out, the tables to stdout."""
    from app.quality.curves import RealismScore, Start, curve_records, default_budgets, write_curves
    from app.quality.evaluate import make_cases

    cases = [case for kind in kinds for case in make_cases(images, names, kind, args.seed)]
    realism = RealismScore(runner, images)
    records = []
    for start in starts:
        with tqdm(total=len(cases), unit="search", desc=f"{model} {start.label}") as progress:
            slots = args.batch * start.restarts
            records += curve_records(cases, runner, start, args.curves, params, slots, realism, progress.update)
    settings = {
        "model": model,
        "data": str(data),
        "split": split,
        "n": len(names),
        "masks": kinds,
        "seed": args.seed,
        "precision": args.precision,
        "checkpoints": args.curves,
        "starts": [start.label for start in starts],
        "command": command(args, data),
    }
    default = params_for(runner.has_encoder)
    budgets = default_budgets(records, args.seed, images.shape[1], default)
    label = Start(default.init, default.restarts, default.prior_weight).label
    text = write_curves(records, args.out, settings, (starts[0].label, args.reference_iterations), (label, budgets))
    sys.stdout.write(text + f"files in {args.out}\n")
    return 0


def command(args: argparse.Namespace, data: Path) -> str:
    """The command line that reproduces this run (every flag that shapes the figures, defaults included)."""
    parts = ["python -m app evaluate", f"--model {args.model}", f"--data {data}", f"--masks {args.masks}"]
    parts += [f"--photo-size {args.photo_size}"] if args.photo_size else []
    parts += [f"--n {args.n}", f"--seed {args.seed}", f"--precision {args.precision}"]
    parts += [f"--speed-batch {args.speed_batch}"] if args.speed_batch != 32 and not args.curves else []
    parts += ["--all-images"] if args.all_images else []
    parts += [f"--init {args.init}"] if args.init else []
    if args.curves:
        parts += [f"--curves {','.join(map(str, args.curves))}", f"--reference-iterations {args.reference_iterations}"]
        parts += [f"--starts {args.starts}"] if args.starts else []
    for flag in SEARCH_FLAGS[:-1]:
        if getattr(args, flag) is not None:
            parts.append(f"--{flag.replace('_', '-')} {getattr(args, flag)}")
    return " ".join([*parts, f"--out {args.out}"])


def _entries(args: argparse.Namespace) -> list[ModelEntry]:
    specs = list(dict.fromkeys(spec.strip() for spec in args.model.split(",") if spec.strip()))
    if not specs:
        raise EvaluateError("--model names no model: pass name, name:version, or several comma-separated")
    entries = [ModelStore.discover(args.model_store, spec.partition(":")[0]).resolve(spec) for spec in specs]
    if len({entry.key for entry in entries}) < len(entries):
        raise EvaluateError(f"--model {args.model} names one version twice")
    if args.photo_size is None and len({entry.resolution for entry in entries}) > 1:
        raise EvaluateError("these models differ in resolution: pass --photo-size to score them at one photo size")
    tuned = [flag for flag in (*SEARCH_FLAGS[:-1], "init") if getattr(args, flag) is not None]
    if tuned and not any(set(tuned) <= entry.served.parameters for entry in entries):
        flags = ", ".join(f"--{flag.replace('_', '-')}" for flag in tuned)
        raise EvaluateError(f"{flags} tune a search: {args.model} takes none of them")
    if args.curves and (len(entries) > 1 or "iterations" not in entries[0].served.parameters):
        raise EvaluateError("--curves follows one search model's quality over its iterations: pass one search model")
    return entries


def _contender(entry: ModelEntry, args: argparse.Namespace, device: torch.device, alone: bool) -> Contender:
    """The model's runner from its kind's engine, with the parameters the flags give a search."""
    from app.quality.evaluate import Contender

    runner = entry.served.runner(entry.load_served(device), device, args.precision)
    # the search flags given go to every model: a kind that takes none of them has already been refused
    sent = {flag: getattr(args, flag) for flag in (*SEARCH_FLAGS, "init") if flag in entry.served.parameters}
    params = entry.served.params(sent, entry.facts, Limits())
    if alone:
        return Contender.alone(entry.served, runner, params, entry.resolution)
    return Contender.among(entry.key, entry.served, runner, params, entry.resolution)


def run(args: argparse.Namespace) -> int:
    """Evaluate, write the files, print the tables; 2 on a request that cannot run."""
    # imported here: scipy.stats and scikit-image add ~1.7 s that `serve` and `complete` should not pay
    from app.quality.evaluate import evaluate
    from app.quality.report import write_outputs
    from app.quality.speed import format_speed, measure_speed

    try:
        kinds = _kinds(args.masks)
        if args.n < 1 or args.batch < 1 or args.grid_rows < 1 or args.speed_batch < 0:
            raise EvaluateError("--n, --batch and --grid-rows must be at least 1, --speed-batch at least 0")
        if args.photo_size is not None and args.photo_size < 8:
            raise EvaluateError("--photo-size must be at least 8 pixels")
        entries = _entries(args)
        first = entries[0]
        data = args.data or Path(str(first.card.get("dataset", {}).get("source", "")))
        if not str(data) or not data.exists():
            raise EvaluateError(f"the data set {str(data)!r} is not here: pass --data (npz, folder or zip)")
        if args.curves and args.photo_size not in (None, first.resolution):
            raise EvaluateError("--curves scores at the model's resolution: drop --photo-size")
        photos = load_images(data, args.photo_size or first.resolution)
        chosen, split = _select(photos.names, [entry.card for entry in entries], args.all_images, args.n)
        starts = _starts(args.starts, first.has_encoder) if args.curves else []
        if args.curves and args.reference_iterations not in args.curves:
            raise EvaluateError(
                f"--reference-iterations {args.reference_iterations} is not among the --curves checkpoints "
                f"{','.join(map(str, args.curves))}: the paired gaps read the reference start there, so add it "
                "to --curves or pick one of them"
            )
        if args.threads is not None:
            if args.threads < 1:
                raise EvaluateError("--threads must be at least 1")
            torch.set_num_threads(args.threads)
        device = torch.device(args.device)
        contenders = [_contender(entry, args, device, alone=len(entries) == 1) for entry in entries]
    except (EvaluateError, UnknownModelError, CheckpointError, DataError, EngineError, FileNotFoundError) as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    images = photos.images[chosen].permute(0, 2, 3, 1).numpy()
    names = [photos.names[i] for i in chosen]
    if args.curves:
        runner, params = contenders[0].runner, contenders[0].params
        assert isinstance(runner, SearchRunner) and isinstance(params, SearchParams)
        return _run_curves(args, first.key, runner, images, names, kinds, params, starts, data, split)
    label = ", ".join(entry.key for entry in entries)
    with tqdm(total=len(kinds) * len(chosen) * len(entries), unit="image", desc=f"evaluating {label}") as progress:
        evaluation = evaluate(images, names, contenders, kinds, args.seed, args.batch, progress.update)
    searches = [c.params for c in contenders if isinstance(c.params, SearchParams)]
    settings = {
        "model": label,
        "models": {
            c.label: {"key": e.key, "kind": c.kind, "params": vars(c.params)}
            for c, e in zip(contenders, entries, strict=True)
        },
        "data": str(data),
        "split": split,
        "n": len(chosen),
        "photo_size": args.photo_size or first.resolution,
        "masks": kinds,
        "seed": args.seed,
        "device": str(device),
        "precision": args.precision,
        "search": vars(searches[0]) if searches else {},
        "command": command(args, data),
    }
    write_outputs(evaluation, args.out, settings, args.grid_rows)
    printed = ["table.md", "gaps.md"]
    if args.speed_batch:
        every = [case for cases in evaluation.cases.values() for case in cases]
        speeds = [measure_speed(contender, every, args.speed_batch) for contender in contenders]
        (args.out / "speed.md").write_text(format_speed(speeds, torch.get_num_threads(), str(device)))
        printed.append("speed.md")
    parameters = "; ".join(f"{c.label}: {c.params}" for c in contenders)
    sys.stdout.write(f"{label} on {len(chosen)} {split} photos of {data}, seed {args.seed}, {parameters}\n")
    # the tables as written, so what is printed is what is on disk, and the gaps are paired only once
    sys.stdout.write("\n".join((args.out / name).read_text() for name in printed))
    sys.stdout.write(f"models {evaluation.search_seconds:.0f} s; files in {args.out}\n")
    return 0


__all__ = ["add_parser", "run"]
