"""`python -m app serve | complete | bench`: the service, completion over a folder offline, or the batching bench.

Each subcommand is a `_name(args) -> exit code` function registered in
`build_parser`, so later ones (`evaluate`, `bench`) slot in beside them.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import torch
from pydantic import ValidationError
from tqdm import tqdm

from app.api.uploads import MEDIA_TYPES, Upload, UploadError, begin_restoration, decode_upload, restored_file
from app.bench.options import add_arguments as add_bench_arguments
from app.config import Settings, describe_errors
from app.engine.depth import EDGE_NAMES, edge_fill
from app.engine.errors import EngineError
from app.engine.kinds import Job, Limits, Params, RequestParameter, request_parameters
from app.engine.precision import cuda_flags
from app.engine.precision import resolve as resolve_precision
from app.engine.restore import Restoration
from app.quality import cli as quality_cli
from app.store import ModelEntry, ModelStore, UnknownModelError
from app.threads import size_thread_pools
from training.checkpoint import CheckpointError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def _at_least(minimum: int | None, kind: Callable[[str], Any]) -> Callable[[str], Any]:
    """A flag's parser for numbers of `kind` no smaller than `minimum` (None: any)."""

    def parse(text: str) -> Any:
        value = kind(text)
        if minimum is not None and value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def _add_kind_flag(parser: argparse.ArgumentParser, parameter: RequestParameter, kinds: list[str]) -> None:
    """`--name` for one kind parameter, from the kind's own description (as the route's form field is)."""
    flag = f"--{parameter.name.replace('_', '-')}"
    help_text = f"{parameter.description} Kind {', '.join(kinds)} only."
    choices = get_args(parameter.annotation) if get_origin(parameter.annotation) is Literal else None
    if choices:
        parser.add_argument(flag, dest=parameter.name, choices=choices, help=help_text)
    else:
        parser.add_argument(
            flag, dest=parameter.name, type=_at_least(parameter.minimum, parameter.annotation), help=help_text
        )


def _settings(**overrides: Any) -> Settings | None:
    """Settings from the environment plus command-line overrides; None after printing what to fix."""
    try:
        return Settings(**{key: value for key, value in overrides.items() if value is not None})
    except ValidationError as error:
        for line in describe_errors(error):
            print(f"invalid setting: {line}", file=sys.stderr)
        return None


def _serve(args: argparse.Namespace) -> int:
    from app.main import create_app
    from app.serving import STARTUP_FAILED, STARTUP_FAILED_LINE, configure_logging, serve_app, tcp_listener
    from app.supervisor import supervise

    settings = _settings(host=args.host, port=args.port)
    if settings is None:
        return 2
    # bind before loading any model: a taken port is one line and exit 2, not a half-started server
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    try:
        listener = tcp_listener(settings.host, settings.port)
    except OSError as error:
        print(f"cannot listen on {settings.host}:{settings.port}: {error.strerror}", file=sys.stderr)
        return 2
    if settings.metrics_port is not None:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((settings.host, settings.metrics_port))
            except OSError as error:
                listener.close()
                print(
                    f"cannot serve metrics on {settings.host}:{settings.metrics_port}: {error.strerror}",
                    file=sys.stderr,
                )
                return 2
    # every weight file checked before uvicorn starts: a missing, truncated, tampered or misshapen file is
    # one line naming it and exit 2, not a traceback from the lifespan
    try:
        verified = ModelStore.discover(settings.model_store, settings.default_model).verify()
    except (CheckpointError, UnknownModelError) as error:
        listener.close()
        print(f"cannot serve {settings.model_store}: {error}", file=sys.stderr)
        return 2
    configure_logging(settings)
    if settings.process_per_device():
        del verified  # each child verifies and loads its own copy
        return supervise(listener, settings)
    if len(settings.devices) > 1:
        logging.getLogger(__name__).warning(
            "IMGCOMP_SEVERAL_DEVICES=true: one process steps %s, whose workers share one interpreter lock and one "
            "post-processing pool; unset it for one process per device",
            ",".join(settings.devices),
        )
    # what was verified is what the lifespan puts on the devices: no weight file is read twice
    app = create_app(settings, verified)
    del verified  # the lifespan holds the only reference now, and drops it once the models are on the devices
    if not serve_app(listener, app, settings):
        print(STARTUP_FAILED_LINE, file=sys.stderr)
        return STARTUP_FAILED
    return 0


def _bench(args: argparse.Namespace) -> int:
    from app.bench.cli import run
    from app.bench.errors import BenchError

    try:
        return run(args, sys.stdout)
    except BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 2


def _images(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _pair(inputs: Path, masks: Path | None) -> list[tuple[Path, Path | None]]:
    """Each image with the mask of the same stem (or the one mask file for all; None: use the image's alpha)."""
    images = _images(inputs)
    if masks is None or masks.is_file():
        return [(image, masks) for image in images]
    by_stem = {p.stem: p for p in _images(masks)}
    missing = [image.name for image in images if image.stem not in by_stem]
    if missing:
        raise FileNotFoundError(f"no mask in {masks} for {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    return [(image, by_stem[image.stem]) for image in images]


def _params(entry: ModelEntry, args: argparse.Namespace) -> Params:
    """The model's kind makes its parameters from the flags; one it does not take is a ParamsError naming it."""
    sent = {name: getattr(args, name) for name in request_parameters()} | {"seed": args.seed}
    return entry.served.params(sent, entry.facts, Limits())


def _complete(args: argparse.Namespace) -> int:
    settings = _settings(model_store=args.model_store, default_model=args.model.partition(":")[0], devices=args.device)
    if settings is None:
        return 2
    try:
        entry = ModelStore.discover(settings.model_store, settings.default_model).resolve(args.model)
        pairs = _pair(args.inputs, args.masks)
        if not pairs:
            raise FileNotFoundError(f"no PNG, JPEG or WebP image in {args.inputs}")
        device = torch.device(settings.devices[0])
        size_thread_pools(settings.torch_threads)
        if device.type == "cuda":
            cuda_flags(settings.deterministic)
        precision = resolve_precision(settings.precision, device)
        # no warm-up: a batch run meets each size once anyway
        options = replace(settings.step_options(settings.devices[0]), warm=False)
        runner = entry.served.runner(entry.load_served(device), device, precision, options)
        params = _params(entry, args)
    except (UnknownModelError, CheckpointError, FileNotFoundError, EngineError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    failures = 0
    with tqdm(total=len(pairs), unit="img", desc=f"completing with {entry.key}") as progress:
        for start in range(0, len(pairs), args.batch_size):
            chunk: list[tuple[Path, Upload, Restoration, Job]] = []
            for image_path, mask_path in pairs[start : start + args.batch_size]:
                try:
                    mask = mask_path.read_bytes() if mask_path is not None else None
                    upload = decode_upload(image_path.read_bytes(), mask, settings.max_image_pixels)
                    restoration = begin_restoration(upload, entry.resolution)
                except (UploadError, EngineError) as error:
                    tqdm.write(f"skipped {image_path.name}: {error}", file=sys.stderr)
                    failures += 1
                    progress.update()
                    continue
                chunk.append((image_path, upload, restoration, restoration.job(entry.served, params)))
            results = runner.run([job for *_, job in chunk]) if chunk else []
            for (image_path, upload, restoration, _), result in zip(chunk, results, strict=True):
                plan = restoration.plan(args.blend, edge_fill(args.edge))
                target = args.out / f"{image_path.stem}.{args.format}"
                target.write_bytes(restored_file(upload, restoration, result.generated, plan, args.format))
                progress.update()
    return 1 if failures else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m app",
        description="Image completion by DCGAN latent search. Settings come from IMGCOMP_* environment variables.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP service (one uvicorn process per device, sharing one port)")
    serve.add_argument("--host", help="listen address (default IMGCOMP_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default IMGCOMP_PORT or 8000)")
    serve.set_defaults(handler=_serve)

    bench = commands.add_parser(
        "bench", help="compare one-at-a-time, request-level and iteration-level batching (table, CSV, PNG)"
    )
    add_bench_arguments(bench)
    bench.set_defaults(handler=_bench)

    offline = commands.add_parser("complete", help="complete a file or a folder of images offline, without a server")
    offline.add_argument("inputs", type=Path, help="an image file or a folder of PNG/JPEG/WebP images")
    offline.add_argument(
        "--masks",
        type=Path,
        help="a mask file for all, or a folder of masks paired by file name (white = fill); "
        "omit to use each image's transparent pixels",
    )
    offline.add_argument("--out", type=Path, required=True, help="folder for the restored images")
    offline.add_argument("--model", default="faces", help="name or name:version (default faces, latest version)")
    offline.add_argument("--model-store", type=Path, help="default IMGCOMP_MODEL_STORE or model_store")
    offline.add_argument("--device", help="cpu or cuda:N (default: the first of IMGCOMP_DEVICES)")
    for parameter, kinds in request_parameters().values():
        _add_kind_flag(offline, parameter, kinds)
    offline.add_argument("--seed", type=int, default=0, help="same seed, same result (default 0)")
    offline.add_argument("--blend", choices=("poisson", "none"), default="poisson", help="seam blending")
    offline.add_argument(
        "--edge",
        choices=EDGE_NAMES,
        default="telea",
        help="classical fill at the photo's size near the hole's edge (default telea; none: generator only)",
    )
    offline.add_argument("--format", choices=tuple(MEDIA_TYPES), default="png", help="output encoding (default png)")
    offline.add_argument("--batch-size", type=_at_least(1, int), default=8, help="images searched together (default 8)")
    offline.set_defaults(handler=_complete)
    quality_cli.add_parser(commands)  # evaluate: the search against classical inpainting (app/quality)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
