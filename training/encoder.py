"""Train an encoder E(damaged image, hole) -> z for a trained generator, and ship it as a new model version.

The search then starts at E's guess instead of a random z (Lahiri et al. 2019;
Zhu et al. 2020): fewer iterations for the same hole. G and D stay frozen and
are copied byte for byte into the new version, so the old version keeps
answering exactly as before.

Each step trains on two halves: G's own samples, whose z is known (latent
MSE plus image L1), and real training photos through G (image L1 against the
whole photo, hole included, which is what a completion is scored on). Every
sample gets a hole from a random family of `training.masks`.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from dataclasses import KW_ONLY, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm

from training.checkpoint import (
    CheckpointError,
    load_checkpoint,
    read_card,
    save_with_encoder,
    version_folder,
)
from training.data import DataError, ImageSet, load_images, native_resolution, to_signed
from training.gan import autocast, resolve_precision
from training.masks import MASK_KINDS, make_mask
from training.networks import Encoder, EncoderConfig, Generator
from training.run import LoopSettings, atomic_torch_save, pick_device
from training.visuals import save_grid, save_loss_curve

Z_BOUND = 3.0  # the search clamps z to |z_i| <= 3; E learns to answer inside that box


@dataclass
class EncoderSettings(LoopSettings):
    """One encoder training run; built by the CLI or by tests. Its batch_size counts generated and real images each."""

    model: str  # name or name:version of the generator to invert
    data: Path
    _: KW_ONLY
    version: str | None = None  # new version to write; default: one above the highest
    encoder: EncoderConfig = EncoderConfig()
    steps: int = 4000
    lr: float = 5e-4
    latent_weight: float = 1.0
    precision: str = "auto"


def _versions(folder: Path) -> list[str]:
    found = [p.name for p in folder.iterdir() if (p / "model.json").is_file() and not p.name.startswith(".")]
    return sorted(found, key=lambda v: (0, int(v), "") if v.isdigit() else (1, 0, v))


def resolve_source(store: Path, spec: str) -> Path:
    """`name` -> its highest version's folder, `name:version` -> that one; one clear error otherwise."""
    name, _, version = spec.partition(":")
    folder = Path(store) / name
    if not folder.is_dir() or not _versions(folder):
        raise CheckpointError(f"there is no model {name!r} in {store}: train it first (python -m training train)")
    if not version:
        version = _versions(folder)[-1]
    if not (folder / version / "model.json").is_file():
        raise CheckpointError(f"model {name!r} has no version {version!r} in {store}: use one of {_versions(folder)}")
    return folder / version


def next_version(source: Path) -> str:
    numeric = [int(v) for v in _versions(source.parent) if v.isdigit()]
    return str(max(numeric, default=0) + 1)


def damage(images: torch.Tensor, holes: torch.Tensor) -> torch.Tensor:
    """What the search sees: the photo with its hole zeroed (SearchBatch's target)."""
    return images.masked_fill(holes.bool(), 0.0)


def draw_holes(count: int, resolution: int, rng: np.random.Generator) -> torch.Tensor:
    """(count, 1, R, R) float {0, 1}, each from a random family."""
    kinds = rng.integers(len(MASK_KINDS), size=count)
    holes = [make_mask(MASK_KINDS[k], resolution, rng) for k in kinds]
    return torch.from_numpy(np.stack(holes)).unsqueeze(1).float()


class EncoderTrainer:
    """E, its optimizer and the frozen G; `step` is one update on a generated and a real half."""

    def __init__(self, generator: Generator, settings: EncoderSettings, device: torch.device, precision: str) -> None:
        self.generator = generator.to(device).eval().requires_grad_(False)
        self.encoder = Encoder(generator.config, settings.encoder).to(device)
        self.optimizer = torch.optim.Adam(self.encoder.parameters(), lr=settings.lr)
        # cosine to 5 % of the rate: big steps early, settled weights at the end
        self.schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(s / settings.steps, 1.0)))
        )
        self.device, self.precision, self.settings = device, precision, settings

    def step(self, real: torch.Tensor, holes: torch.Tensor, z_rng: torch.Generator) -> dict[str, float]:
        count = real.shape[0]
        z = torch.randn(count, self.generator.config.z_dim, generator=z_rng).clamp(-Z_BOUND, Z_BOUND).to(self.device)
        with torch.no_grad(), autocast(self.device, self.precision):
            fake = self.generator(z).float()
        images = torch.cat([fake, real])
        with autocast(self.device, self.precision):
            guess = self.encoder(damage(images, holes), holes)
            rebuilt = self.generator(guess.float())
        guess, rebuilt = guess.float(), rebuilt.float()
        latent = F.mse_loss(guess[:count], z)
        pixels = (rebuilt - images).abs().flatten(1).mean(1)
        fake_l1, real_l1 = pixels[:count].mean(), pixels[count:].mean()
        loss = self.settings.latent_weight * latent + fake_l1 + real_l1
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.schedule.step()
        return {"latent": latent.item(), "fake_l1": fake_l1.item(), "real_l1": real_l1.item()}

    @torch.no_grad()
    def guesses(self, images: torch.Tensor, holes: torch.Tensor) -> torch.Tensor:
        """G(E(x)) in eval mode, for the sample grid."""
        self.encoder.eval()
        z = self.encoder(damage(images, holes), holes).clamp(-Z_BOUND, Z_BOUND)
        out = self.generator(z)
        self.encoder.train()
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            "encoder": self.encoder.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.encoder.load_state_dict(state["encoder"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])


def _sample_grid(trainer: EncoderTrainer, photos: torch.Tensor, holes: torch.Tensor, path: Path) -> Path:
    """Rows of held-out photos: original | damaged (hole grey) | G(E(x)) | G(E(x)) pasted into the hole."""
    guess = trainer.guesses(photos, holes)
    shown_damage = photos.masked_fill(holes.bool(), 0.0)
    pasted = torch.where(holes.bool(), guess, photos)
    tiles = torch.stack([photos, shown_damage, guess, pasted], dim=1).flatten(0, 1)
    return save_grid(tiles.cpu(), path, columns=4)


def _training_split(data: ImageSet, card: dict[str, Any]) -> tuple[ImageSet, ImageSet]:
    """The generator's own split: E never sees the photos the evaluation holds out."""
    held_names = set(card.get("dataset", {}).get("held_out") or [])
    held = [i for i, name in enumerate(data.names) if name in held_names]
    held_set = set(held)
    train = [i for i in range(len(data)) if i not in held_set]
    if not train:
        raise DataError(f"{data.source}: every photo is in the model's held-out split; pass its training data")
    return data.subset(train), data.subset(held)


def train_encoder(settings: EncoderSettings) -> Path:
    """Train E for the source generator and write `<name>/<version>/` with G, D and E; returns the folder."""
    source = resolve_source(settings.model_store, settings.model)
    version = settings.version or next_version(source)
    target = version_folder(settings.model_store, source.parent.name, version, settings.overwrite)
    if target.resolve() == source.resolve():
        raise CheckpointError(f"{target} is the source version: write the encoder into a new version")
    card = read_card(source)
    resolution = int(card["network"]["resolution"])
    stored = native_resolution(settings.data)
    if stored is not None and stored != resolution:
        raise DataError(
            f"{settings.data} holds {stored}x{stored} images but {source.parent.name}:{source.name} is a "
            f"{resolution}x{resolution} model: pass data at that size (or a folder or zip, which is resized)"
        )
    device = pick_device(settings.device, 0)
    precision = resolve_precision(settings.precision, device)
    data = load_images(settings.data, resolution)
    train_set, held = _training_split(data, card)
    checkpoint = load_checkpoint(source, device)
    torch.manual_seed(settings.seed)
    trainer = EncoderTrainer(checkpoint.generator, settings, device, precision)

    runs = settings.run_dir or Path("runs") / f"{source.parent.name}-encoder" / version
    state_path = runs / "state.pt"
    losses: dict[str, list[float]] = {"latent": [], "fake_l1": [], "real_l1": []}
    start, elapsed = 0, 0.0
    if settings.resume and state_path.exists():
        state = torch.load(state_path, map_location=device, weights_only=True)
        trainer.load_state_dict(state["trainer"])
        start, losses, elapsed = int(state["step"]), {k: list(v) for k, v in state["losses"].items()}, state["elapsed"]
    rng = np.random.default_rng([settings.seed, start])
    z_rng = torch.Generator().manual_seed(settings.seed * 1000 + start)
    shown = held if len(held) else train_set
    grid_photos = to_signed(shown.images[:8]).to(device)
    grid_holes = draw_holes(len(grid_photos), resolution, np.random.default_rng(12345)).to(device)

    def write_state(step: int) -> None:
        total = elapsed + time.perf_counter() - started
        atomic_torch_save(
            {"trainer": trainer.state_dict(), "step": step, "losses": losses, "elapsed": total}, state_path
        )

    bar = tqdm(total=settings.steps, initial=start, disable=not settings.show_progress, desc=f"encoder {target}")
    started = time.perf_counter()
    for step in range(start + 1, settings.steps + 1):
        index = torch.from_numpy(rng.integers(len(train_set), size=settings.batch_size))
        real = to_signed(train_set.images[index])
        flips = torch.from_numpy(rng.random(settings.batch_size) < 0.5)
        real[flips] = real[flips].flip(-1)
        holes = draw_holes(2 * settings.batch_size, resolution, rng).to(device)
        values = trainer.step(real.to(device), holes, z_rng)
        for key, value in values.items():
            losses[key].append(value)
        bar.update(1)
        bar.set_postfix({key: f"{value:.3f}" for key, value in values.items()})
        if step % settings.sample_every == 0 or step == settings.steps:
            _sample_grid(trainer, grid_photos, grid_holes, runs / "samples" / f"step_{step:06d}.png")
        if step % settings.state_every == 0:
            write_state(step)
    bar.close()
    run_seconds = time.perf_counter() - started
    write_state(settings.steps)
    elapsed += run_seconds
    samples = _sample_grid(trainer, grid_photos, grid_holes, runs / "encoder_samples.png")
    curve = save_loss_curve(
        {"latent MSE (generated)": losses["latent"], "L1 generated": losses["fake_l1"], "L1 real": losses["real_l1"]},
        runs / "encoder_loss_curve.png",
        ylabel="loss",
    )
    pictures = {"encoder_samples.png": samples, "encoder_loss_curve.png": curve}
    pictures |= {name: source / name for name in ("samples.png", "loss_curve.png") if (source / name).is_file()}
    steps_run = settings.steps - start
    encoder_card = {
        "training": {
            "steps": settings.steps,
            "batch_size": settings.batch_size,
            "data": str(settings.data),
            "train_size": len(train_set),
            "masks": list(MASK_KINDS),
            "lr": settings.lr,
            "latent_weight": settings.latent_weight,
            "precision": precision,
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "seed": settings.seed,
            "wall_time_s": round(elapsed, 1),
            "images_per_s": round(2 * settings.batch_size * steps_run / run_seconds, 1) if run_seconds > 0 else None,
            "final_losses": {key: round(float(np.mean(v[-50:])), 4) for key, v in losses.items() if v},
            "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        },
    }
    return save_with_encoder(source, version, trainer.encoder.eval(), encoder_card, pictures, settings.overwrite)
