"""The training loop: data, progress, sample grids, resume, DDP under torchrun, final checkpoint."""

from __future__ import annotations

import datetime as dt
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from training.checkpoint import save_checkpoint, version_folder
from training.data import ImageSet, load_images, split, to_signed
from training.gan import GanUpdate, Optim, resolve_precision
from training.networks import NetworkConfig, recompute_batchnorm_stats
from training.visuals import save_grid, save_loss_curve


@dataclass(kw_only=True)
class RunSettings:
    """What every generator training run shares: data, where it writes, the loop's cadence, the card."""

    data: Path
    name: str
    version: str = "1"
    model_store: Path = Path("model_store")
    run_dir: Path | None = None
    batch_size: int = 64
    precision: str = "auto"
    device: str = "auto"
    sample_every: int = 250
    state_every: int = 250
    holdout_fraction: float = 0.1
    flip: bool = True
    seed: int = 0
    resume: bool = False
    overwrite: bool = False
    dataset_name: str | None = None
    licence: str = "unknown"
    show_progress: bool = True

    @property
    def runs(self) -> Path:
        return self.run_dir or Path("runs") / self.name / self.version


@dataclass(kw_only=True)
class TrainSettings(RunSettings):
    """One DCGAN run; built by the CLI or by tests."""

    network: NetworkConfig = field(default_factory=NetworkConfig)
    optim: Optim = field(default_factory=Optim)
    steps: int = 3000


@dataclass
class Distributed:
    """This process's place in a torchrun job (world of 1 without torchrun)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> Distributed:
        return cls(
            rank=int(os.environ.get("RANK", 0)),
            local_rank=int(os.environ.get("LOCAL_RANK", 0)),
            world_size=int(os.environ.get("WORLD_SIZE", 1)),
        )


def join_group(world: Distributed, device: torch.device) -> dict[str, Any]:
    """Joins torchrun's process group when there is one; the DistributedDataParallel arguments for `device`."""
    if world.world_size > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda":
            torch.cuda.set_device(device)
    return {"device_ids": [device.index]} if device.type == "cuda" else {}


def leave_group(world: Distributed) -> bool:
    """Waits for every rank after the last step and leaves the group; True on the rank that writes the model."""
    if world.world_size > 1:
        dist.barrier()
        dist.destroy_process_group()
    return world.is_main


def load_split(data_path: Path, resolution: int, holdout_fraction: float) -> tuple[ImageSet, ImageSet, ImageSet]:
    """The images at `resolution`, then (all, train, held out) split by file name; an empty train set is refused."""
    data = load_images(data_path, resolution)
    train_set, held = split(data, holdout_fraction)
    if len(train_set) == 0:
        raise ValueError(f"{data_path}: every image fell into the held-out split; lower --holdout-fraction")
    return data, train_set, held


def pick_device(requested: str, local_rank: int) -> torch.device:
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"--device {requested} asked for CUDA but no CUDA device is visible: use --device cpu")
        return torch.device("cuda", local_rank) if requested == "cuda" else torch.device(requested)
    if requested != "cpu":
        raise ValueError(f"unknown --device {requested!r}: use auto, cpu, cuda or cuda:N")
    return torch.device("cpu")


def sample_batch(images: torch.Tensor, batch: int, flip: bool, rng: torch.Generator) -> torch.Tensor:
    index = torch.randint(len(images), (batch,), generator=rng)
    real = to_signed(images[index])
    if flip:
        flips = torch.rand(batch, generator=rng) < 0.5
        real[flips] = real[flips].flip(-1)
    return real


def atomic_torch_save(state: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    torch.save(state, partial)
    os.replace(partial, path)


def dataset_card(
    data: ImageSet, train: ImageSet, held: ImageSet, holdout_fraction: float, name: str | None, licence: str
) -> dict[str, Any]:
    """The model card's `dataset`: where the photos came from and which names were held out."""
    return {
        "name": name or Path(data.source).stem,
        "source": data.source,
        "licence": licence,
        "size": len(data),
        "train_size": len(train),
        "held_out_size": len(held),
        "holdout_fraction": holdout_fraction,
        "held_out": held.names,
    }


def _card(
    settings: TrainSettings, data: ImageSet, train: ImageSet, held: ImageSet, training: dict[str, Any]
) -> dict[str, Any]:
    dataset = dataset_card(data, train, held, settings.holdout_fraction, settings.dataset_name, settings.licence)
    return {"dataset": dataset, "training": training}


def train(settings: TrainSettings) -> Path | None:
    """Train to `settings.steps` and write the checkpoint; returns its folder on rank 0."""
    world = Distributed.from_env()
    # every check of the destination before the first step: a taken version is refused in a second, not an hour
    version_folder(settings.model_store, settings.name, settings.version, settings.overwrite)
    device = pick_device(settings.device, world.local_rank)
    precision = resolve_precision(settings.precision, device)
    data, train_set, held = load_split(settings.data, settings.network.resolution, settings.holdout_fraction)
    ddp_kwargs = join_group(world, device)
    torch.manual_seed(settings.seed)  # identical initial weights on every rank
    gan = GanUpdate(
        settings.network,
        device,
        precision,
        settings.optim,
        wrap=DistributedDataParallel if world.world_size > 1 else None,
        wrap_kwargs=ddp_kwargs,
    )
    runs = settings.runs
    state_path = runs / "state.pt"
    start_step, d_losses, g_losses, elapsed = 0, [], [], 0.0
    if settings.resume and state_path.exists():
        # weights_only: resuming never executes code from the file
        state = torch.load(state_path, map_location=device, weights_only=True)
        gan.load_state_dict(state["gan"])
        start_step, d_losses, g_losses = int(state["step"]), list(state["d_losses"]), list(state["g_losses"])
        elapsed = float(state["elapsed"])
    rng = torch.Generator().manual_seed(settings.seed * 1000 + world.rank + start_step)
    fixed_z = torch.randn(64, settings.network.z_dim, generator=torch.Generator().manual_seed(settings.seed)).to(device)

    def write_state(step: int) -> None:
        total = elapsed + time.perf_counter() - started
        state = {"gan": gan.state_dict(), "step": step, "d_losses": d_losses, "g_losses": g_losses, "elapsed": total}
        atomic_torch_save(state, state_path)

    bar = tqdm(
        total=settings.steps,
        initial=start_step,
        disable=not (world.is_main and settings.show_progress),
        desc=f"{settings.name}/{settings.version}",
        unit="step",
    )
    images_seen = 0
    started = time.perf_counter()
    for step in range(start_step + 1, settings.steps + 1):
        real = sample_batch(train_set.images, settings.batch_size, settings.flip, rng).to(device, non_blocking=True)
        losses = gan.step(real)
        d_losses.append(losses.d)
        g_losses.append(losses.g)
        images_seen += settings.batch_size * world.world_size
        rate = images_seen / (time.perf_counter() - started)
        bar.update(1)
        bar.set_postfix(loss_d=f"{losses.d:.3f}", loss_g=f"{losses.g:.3f}", img_s=f"{rate:.0f}")
        if world.is_main and (step % settings.sample_every == 0 or step == settings.steps):
            with torch.no_grad():
                save_grid(gan.ema.train()(fixed_z), runs / "samples" / f"step_{step:06d}.png")
        if world.is_main and step % settings.state_every == 0:
            write_state(step)
    bar.close()
    if not leave_group(world):
        return None
    write_state(settings.steps)
    run_seconds = time.perf_counter() - started
    elapsed += run_seconds
    curve = save_loss_curve({"D loss": d_losses, "G loss": g_losses}, runs / "loss_curve.png")
    recompute_batchnorm_stats(gan.ema, seed=settings.seed)
    with torch.no_grad():
        samples = save_grid(gan.ema(fixed_z), runs / "samples" / "final_eval_mode.png")
    training = {
        "steps": settings.steps,
        "batch_size": settings.batch_size,
        "world_size": world.world_size,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "precision": precision,
        "lr": settings.optim.lr,
        "beta1": settings.optim.beta1,
        "ema_decay": settings.optim.ema_decay,
        "flip": settings.flip,
        "seed": settings.seed,
        "wall_time_s": round(elapsed, 1),
        "images_per_s": round(images_seen / run_seconds, 1) if run_seconds > 0 else None,
        "generator": "EMA of G, BatchNorm statistics recomputed over 4096 samples",
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    return save_checkpoint(
        settings.model_store,
        settings.name,
        settings.version,
        gan.ema,
        gan.discriminator,
        settings.network,
        _card(settings, data, train_set, held, training),
        pictures={"samples.png": samples, "loss_curve.png": curve},
        overwrite=settings.overwrite,
    )
