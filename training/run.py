"""What every generator training run does the same way: its settings, its start-up, torchrun's group, resume, the card.

The DCGAN loop (`training.train`) and the GLCIC loop (`training.glcic_train`)
differ in their networks and steps, not in how a run checks its destination,
picks its device, splits its data, joins torchrun's group, resumes or reports
its progress: that is written once here. The settings' bases serve the encoder
(`LoopSettings`) and framing (`NamedRunSettings`) loops as well.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from training.checkpoint import version_folder
from training.data import ImageSet, load_images, split, to_signed
from training.gan import resolve_precision


@dataclass(kw_only=True)
class LoopSettings:
    """What every training loop shares: where it writes, its batch and device, the cadence of pictures and state."""

    model_store: Path = Path("model_store")
    run_dir: Path | None = None
    batch_size: int = 64
    device: str = "auto"
    sample_every: int = 250
    state_every: int = 250
    seed: int = 0
    resume: bool = False
    overwrite: bool = False
    show_progress: bool = True


@dataclass(kw_only=True)
class NamedRunSettings(LoopSettings):
    """A loop that trains a model of its own name on a data set: the data, its held-out share, name, version, card."""

    data: Path
    name: str
    version: str = "1"
    holdout_fraction: float = 0.1
    dataset_name: str | None = None
    licence: str = "unknown"

    @property
    def runs(self) -> Path:
        return self.run_dir or Path("runs") / self.name / self.version

    @property
    def state_path(self) -> Path:
        """Where the loop keeps what a resumed run continues from."""
        return self.runs / "state.pt"


@dataclass(kw_only=True)
class RunSettings(NamedRunSettings):
    """What every generator training run shares: a named run's settings, plus precision and flips."""

    precision: str = "auto"
    flip: bool = True


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


@dataclass(frozen=True)
class RunStart:
    """A run after its start-up: this process's place, its device and precision, and the data split by name."""

    world: Distributed
    device: torch.device
    precision: str
    data: ImageSet
    train_set: ImageSet
    held: ImageSet
    ddp_kwargs: dict[str, Any]  # DistributedDataParallel's arguments for `device`

    @property
    def wrap(self) -> type[DistributedDataParallel] | None:
        """What wraps the trained modules: DistributedDataParallel under torchrun, nothing alone."""
        return DistributedDataParallel if self.world.world_size > 1 else None


def start_run(settings: RunSettings, resolution: int) -> RunStart:
    """Everything before the networks are built, in the order both loops need it."""
    world = Distributed.from_env()
    # every check of the destination before the first step: a taken version is refused in a second, not an hour
    version_folder(settings.model_store, settings.name, settings.version, settings.overwrite)
    device = pick_device(settings.device, world.local_rank)
    precision = resolve_precision(settings.precision, device)
    data, train_set, held = load_split(settings.data, resolution, settings.holdout_fraction)
    ddp_kwargs = join_group(world, device)
    torch.manual_seed(settings.seed)  # identical initial weights on every rank
    return RunStart(world, device, precision, data, train_set, held, ddp_kwargs)


def resumed_state(settings: NamedRunSettings, device: torch.device) -> dict[str, Any] | None:
    """The state an interrupted run left, when asked to resume and there is one; None starts afresh."""
    if not (settings.resume and settings.state_path.exists()):
        return None
    # weights_only: resuming never executes code from the file
    state: dict[str, Any] = torch.load(settings.state_path, map_location=device, weights_only=True)
    return state


def machine_card(world: Distributed, device: torch.device, precision: str) -> dict[str, Any]:
    """The training card's account of where it ran: ranks, the device's name and the precision."""
    return {
        "world_size": world.world_size,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "precision": precision,
    }


def progress_bar(settings: RunSettings, world: Distributed, total: int, initial: int, desc: str) -> tqdm[Any]:
    """Steps done of `total`, shown on the rank that writes the model and only when the settings ask."""
    return tqdm(
        total=total,
        initial=initial,
        disable=not (world.is_main and settings.show_progress),
        desc=desc,
        unit="step",
    )
