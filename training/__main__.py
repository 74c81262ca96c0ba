"""`python -m training train|encoder|glcic|framing|bench`: train a DCGAN, its encoder, a GLCIC network or the
face-framing network; or time a step."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from training.checkpoint import CheckpointError
from training.data import DataError, load_images, to_signed
from training.encoder import EncoderSettings, train_encoder
from training.framing_net import FramingConfig
from training.framing_train import FramingSettings, train_framing
from training.gan import PRECISIONS, GanUpdate, Optim, resolve_precision
from training.glcic import GlcicConfig
from training.glcic_train import GlcicSettings, train_glcic
from training.glcic_update import RECONSTRUCTIONS, GlcicOptim
from training.masks import MaskKindError
from training.networks import SUPPORTED_RESOLUTIONS, ConfigError, EncoderConfig, NetworkConfig
from training.run import pick_device
from training.train import TrainSettings, train


def _network_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("network")
    group.add_argument(
        "--resolution", type=int, default=64, help=f"image side in pixels, one of {SUPPORTED_RESOLUTIONS}"
    )
    group.add_argument("--z-dim", type=int, default=100, help="latent size (default 100)")
    group.add_argument("--g-width", type=int, default=64, help="generator width at the last stage (ngf)")
    group.add_argument("--d-width", type=int, default=64, help="discriminator width at the first stage (ndf)")


def _common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="image folder, .zip of images, or .npz with 'images'")
    parser.add_argument("--batch-size", type=int, default=64, help="images per step and per process (default 64)")
    parser.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda or cuda:N")
    _network_args(parser)


def _loop_args(parser: argparse.ArgumentParser) -> None:
    """Flags every long generator training loop shares: precision, then `_cadence_args`."""
    parser.add_argument(
        "--precision", choices=("auto", *PRECISIONS), default="auto", help="auto: bf16 on CPU, AMP on CUDA"
    )
    _cadence_args(parser)


def _cadence_args(parser: argparse.ArgumentParser) -> None:
    """Flags every training loop shares: pictures and resume state, seed, destination, progress."""
    parser.add_argument("--sample-every", type=int, default=250, help="write a sample grid PNG every N steps")
    parser.add_argument("--state-every", type=int, default=250, help="write resume state every N steps")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--resume", action="store_true", help="continue from RUN_DIR/state.pt if it exists")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing version folder")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs, CI)")


def _destination_args(parser: argparse.ArgumentParser) -> None:
    """Where a run that names its own model writes: version, store, run folder."""
    parser.add_argument("--version", default="1", help="version folder to write (default 1)")
    parser.add_argument("--model-store", type=Path, default=Path("model_store"), help="where checkpoints go")
    parser.add_argument(
        "--run-dir", type=Path, help="sample grids, loss curve and resume state (default runs/NAME/VERSION)"
    )


def _card_args(parser: argparse.ArgumentParser) -> None:
    """What the model card says of the data set."""
    parser.add_argument("--dataset-name", help="dataset name for the model card (default: the data file's stem)")
    parser.add_argument("--licence", default="unknown", help="dataset licence for the model card")


def _generator_run_args(parser: argparse.ArgumentParser) -> None:
    """The flags both generator trainings end with: held-out share, flips, the card, then `_loop_args`."""
    parser.add_argument("--holdout-fraction", type=float, default=0.1, help="share of images kept out for evaluation")
    parser.add_argument("--no-flip", action="store_true", help="disable random horizontal flips")
    _card_args(parser)
    _loop_args(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training",
        description="Train DCGAN checkpoints for the completion service. "
        "Multi-GPU: torchrun --nproc-per-node N -m training train ...",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("train", help="train a model and write model_store/<name>/<version>/")
    _common_args(run)
    run.add_argument("--name", required=True, help="model name, e.g. faces (the service's `model` field)")
    _destination_args(run)
    run.add_argument("--steps", type=int, default=3000, help="total optimisation steps (default 3000)")
    run.add_argument("--lr", type=float, default=2e-4, help="Adam learning rate for G and D (default 2e-4)")
    run.add_argument("--beta1", type=float, default=0.5, help="Adam beta1 (default 0.5)")
    run.add_argument("--ema-decay", type=float, default=0.999, help="decay of the EMA generator that is shipped")
    _generator_run_args(run)

    enc = commands.add_parser(
        "encoder",
        help="train E(damaged image, hole) -> z for a trained model; writes a new version with G, D and E",
    )
    enc.add_argument("--model", required=True, help="name (latest version) or name:version of the generator")
    enc.add_argument(
        "--data", type=Path, required=True, help="the generator's training data (its held-out split is skipped)"
    )
    enc.add_argument("--model-store", type=Path, default=Path("model_store"), help="where checkpoints are")
    enc.add_argument("--version", help="version folder to write (default: one above the highest)")
    enc.add_argument(
        "--run-dir", type=Path, help="sample grids, loss curve and resume state (default runs/NAME-encoder/VERSION)"
    )
    enc.add_argument("--steps", type=int, default=4000, help="optimisation steps (default 4000)")
    enc.add_argument("--batch-size", type=int, default=64, help="generated and real images each per step (default 64)")
    enc.add_argument("--lr", type=float, default=5e-4, help="Adam learning rate, cosine-decayed (default 5e-4)")
    enc.add_argument("--width", type=int, default=64, help="encoder width at the first stage (default 64)")
    enc.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda or cuda:N")
    _loop_args(enc)

    glcic = commands.add_parser(
        "glcic",
        help="train a one-pass completion network (Iizuka et al. 2017) and write model_store/<name>/<version>/",
    )
    glcic.add_argument("--data", type=Path, required=True, help="image folder, .zip of images, or .npz with 'images'")
    glcic.add_argument("--name", required=True, help="model name, e.g. faces-glcic (the service's `model` field)")
    _destination_args(glcic)
    glcic.add_argument("--phase1-steps", type=int, default=4000, help="completion network on reconstruction only")
    glcic.add_argument("--phase2-steps", type=int, default=1000, help="discriminators only, C frozen")
    glcic.add_argument("--phase3-steps", type=int, default=8000, help="both, C on reconstruction + alpha * adversarial")
    glcic.add_argument("--alpha", type=float, default=0.0004, help="adversarial weight in phase 3 (paper: 0.0004)")
    glcic.add_argument(
        "--reconstruction", choices=RECONSTRUCTIONS, default="l2", help="hole loss: l2 (the paper's) or l1"
    )
    glcic.add_argument("--batch-size", type=int, default=32, help="images per step and per process (default 32)")
    glcic.add_argument("--lr", type=float, default=2e-4, help="Adam learning rate of both networks (default 2e-4)")
    glcic.add_argument("--beta1", type=float, default=0.5, help="Adam beta1 (default 0.5)")
    glcic.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda or cuda:N")
    glcic.add_argument(
        "--resolution", type=int, default=64, help=f"image side in pixels, one of {SUPPORTED_RESOLUTIONS}"
    )
    glcic.add_argument("--width", type=int, default=32, help="completion network's first-stage width (paper: 64)")
    glcic.add_argument("--d-width", type=int, default=32, help="discriminators' first-stage width (paper: 64)")
    glcic.add_argument("--features", type=int, default=256, help="each discriminator's feature size (paper: 1024)")
    _generator_run_args(glcic)

    framing = commands.add_parser(
        "framing",
        help="train the network that corrects a damaged face's framing (region=auto) and write it to the store",
    )
    framing.add_argument("--data", type=Path, required=True, help="the 200x200 face crops (.zip, folder or .npz)")
    framing.add_argument("--name", default="faces-framing", help="model name (default faces-framing)")
    _destination_args(framing)
    framing.add_argument("--steps", type=int, default=2000, help="optimisation steps (default 2000)")
    framing.add_argument("--batch-size", type=int, default=64, help="examples per step (default 64)")
    framing.add_argument("--lr", type=float, default=1e-3, help="AdamW peak learning rate, one-cycle (default 1e-3)")
    framing.add_argument("--width", type=int, default=32, help="first-stage width (default 32)")
    framing.add_argument("--holdout-fraction", type=float, default=0.1, help="the face models' held-out share")
    _card_args(framing)
    framing.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda or cuda:N")
    _cadence_args(framing)

    bench = commands.add_parser("bench", help="time training steps per precision and print img/s")
    _common_args(bench)
    bench.add_argument("--steps", type=int, default=20, help="timed steps per precision (default 20)")
    bench.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    return parser


def _loop_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings every long generator training loop takes from the flags `_loop_args` added."""
    return {"precision": args.precision, **_cadence_settings(args)}


def _cadence_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings every training loop takes from the flags `_cadence_args` added."""
    return {
        "sample_every": args.sample_every,
        "state_every": args.state_every,
        "seed": args.seed,
        "resume": args.resume,
        "overwrite": args.overwrite,
        "show_progress": not args.no_progress,
    }


def _named_run_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings of `training.run.NamedRunSettings` but the batch: data, where they write, the card, the cadence."""
    return {
        "data": args.data,
        "name": args.name,
        "version": args.version,
        "model_store": args.model_store,
        "run_dir": args.run_dir,
        "device": args.device,
        "holdout_fraction": args.holdout_fraction,
        "dataset_name": args.dataset_name,
        "licence": args.licence,
        **_cadence_settings(args),
    }


def _run_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings both generator trainings take: a named run's, plus precision and flips."""
    return {**_named_run_settings(args), "precision": args.precision, "flip": not args.no_flip}


def _network(args: argparse.Namespace) -> NetworkConfig:
    return NetworkConfig(resolution=args.resolution, z_dim=args.z_dim, g_width=args.g_width, d_width=args.d_width)


def _run_train(args: argparse.Namespace) -> None:
    settings = TrainSettings(
        network=_network(args),
        optim=Optim(lr=args.lr, beta1=args.beta1, ema_decay=args.ema_decay),
        steps=args.steps,
        batch_size=args.batch_size,
        **_run_settings(args),
    )
    path = train(settings)
    if path is not None:
        print(f"wrote {path}")


def _run_encoder(args: argparse.Namespace) -> None:
    settings = EncoderSettings(
        model=args.model,
        data=args.data,
        model_store=args.model_store,
        version=args.version,
        run_dir=args.run_dir,
        encoder=EncoderConfig(width=args.width),
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        device=args.device,
        **_loop_settings(args),
    )
    print(f"wrote {train_encoder(settings)}")


def _run_glcic(args: argparse.Namespace) -> None:
    settings = GlcicSettings(
        network=GlcicConfig(resolution=args.resolution, width=args.width, d_width=args.d_width, features=args.features),
        optim=GlcicOptim(lr=args.lr, beta1=args.beta1, alpha=args.alpha, reconstruction=args.reconstruction),
        phase_steps=(args.phase1_steps, args.phase2_steps, args.phase3_steps),
        batch_size=args.batch_size,
        **_run_settings(args),
    )
    path = train_glcic(settings)
    if path is not None:
        print(f"wrote {path}")


def _run_framing(args: argparse.Namespace) -> None:
    settings = FramingSettings(
        network=FramingConfig(width=args.width),
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        **_named_run_settings(args),
    )
    print(f"wrote {train_framing(settings)}")


def _run_bench(args: argparse.Namespace) -> None:
    """Same data, same networks, one precision after another: img/s side by side."""
    network = _network(args)
    device = pick_device(args.device, 0)
    images = to_signed(load_images(args.data, network.resolution).images)
    precisions = ["fp32", "bf16"] + (["fp16"] if device.type == "cuda" else [])
    print(f"device={device} batch={args.batch_size} steps={args.steps} threads={torch.get_num_threads()}")
    print(f"{'precision':>9} | {'s/step':>7} | {'img/s':>7}")
    for precision in precisions:
        gan = GanUpdate(network, device, resolve_precision(precision, device), Optim())
        for step in range(args.warmup + args.steps):
            if step == args.warmup:
                if device.type == "cuda":
                    torch.cuda.synchronize()
                started = time.perf_counter()
            index = torch.randint(len(images), (args.batch_size,))
            gan.step(images[index].to(device))
        if device.type == "cuda":
            torch.cuda.synchronize()
        per_step = (time.perf_counter() - started) / args.steps
        print(f"{precision:>9} | {per_step:7.3f} | {args.batch_size / per_step:7.1f}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        commands = {
            "train": _run_train,
            "encoder": _run_encoder,
            "glcic": _run_glcic,
            "framing": _run_framing,
            "bench": _run_bench,
        }
        commands[args.command](args)
    except (DataError, ConfigError, CheckpointError, MaskKindError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
