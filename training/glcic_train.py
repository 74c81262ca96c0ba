"""The GLCIC training loop: three phases in one run, progress, grids, resume, DDP under torchrun, checkpoint.

Steps are numbered across the phases (phase 1 is steps 1..p1, phase 2 the
next p2, phase 3 the rest), so a resumed run continues in the phase it
stopped in. Every batch gets holes from every family of `training.masks`.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.checkpoint import save_model
from training.data import to_signed
from training.encoder import damage, draw_holes
from training.glcic import GlcicConfig
from training.glcic_update import PHASES, GlcicOptim, GlcicUpdate
from training.kinds import GLCIC
from training.masks import MASK_KINDS, make_mask
from training.run import (
    Distributed,
    RunSettings,
    atomic_torch_save,
    dataset_card,
    leave_group,
    machine_card,
    progress_bar,
    resumed_state,
    sample_batch,
    start_run,
)
from training.visuals import save_grid, save_loss_curve


@dataclass(kw_only=True)
class GlcicSettings(RunSettings):
    """One GLCIC run; built by the CLI or by tests."""

    network: GlcicConfig = field(default_factory=GlcicConfig)
    optim: GlcicOptim = field(default_factory=GlcicOptim)
    phase_steps: tuple[int, int, int] = (4000, 1000, 8000)
    batch_size: int = 32

    @property
    def steps(self) -> int:
        return sum(self.phase_steps)


def phase_at(step: int, phase_steps: tuple[int, int, int]) -> str:
    """The phase that step (1-based, counted across phases) belongs to."""
    bound = 0
    for phase, length in zip(PHASES, phase_steps, strict=True):
        bound += length
        if step <= bound:
            return phase
    raise ValueError(f"step {step} is past the last phase ({bound} steps)")


def grid_masks(count: int, resolution: int) -> torch.Tensor:
    """(count, 1, R, R): the families in turn, seeded, so every grid shows every family on the same holes."""
    rng = np.random.default_rng(12345)
    holes = [make_mask(MASK_KINDS[i % len(MASK_KINDS)], resolution, rng) for i in range(count)]
    return torch.from_numpy(np.stack(holes)).unsqueeze(1).float()


def _sample_grid(update: GlcicUpdate, photos: torch.Tensor, holes: torch.Tensor, path: Path) -> Path:
    """Rows of held-out photos: original | damaged (hole grey) | completed."""
    completed = update.complete(photos, holes)
    tiles = torch.stack([photos, damage(photos, holes), completed], dim=1).flatten(0, 1)
    return save_grid(tiles.cpu(), path, columns=3)


def train_glcic(settings: GlcicSettings) -> Path | None:
    """Run the three phases and write `<name>/<version>/` of kind glcic; returns its folder on rank 0."""
    if any(n < 0 for n in settings.phase_steps) or settings.steps < 1:
        raise ValueError(f"phase lengths must be >= 0 with at least one step in all, got {settings.phase_steps}")
    resolution = settings.network.resolution
    run = start_run(settings, resolution)
    world, device, precision, train_set, held = run.world, run.device, run.precision, run.train_set, run.held
    update = GlcicUpdate(settings.network, device, precision, settings.optim, wrap=run.wrap, wrap_kwargs=run.ddp_kwargs)
    runs = settings.runs
    start, elapsed = 0, 0.0
    losses: dict[str, list[float]] = {"reconstruction": [], "discriminator": [], "adversarial": []}
    loss_steps: dict[str, list[int]] = {key: [] for key in losses}
    phase_time = {phase: {"steps": 0, "images": 0, "seconds": 0.0} for phase in PHASES}
    state = resumed_state(settings, device)
    if state is not None:
        update.load_state_dict(state["update"])
        start, elapsed = int(state["step"]), float(state["elapsed"])
        losses, loss_steps, phase_time = state["losses"], state["loss_steps"], state["phase_time"]
    rng = np.random.default_rng([settings.seed, world.rank, start])
    batch_rng = torch.Generator().manual_seed(settings.seed * 1000 + world.rank + start)
    shown = held if len(held) else train_set
    grid_photos = to_signed(shown.images[: 2 * len(MASK_KINDS)]).to(device)
    grid_holes = grid_masks(len(grid_photos), resolution).to(device)

    def write_state(step: int) -> None:
        total = elapsed + time.perf_counter() - started
        state = {
            "update": update.state_dict(),
            "step": step,
            "elapsed": total,
            "losses": losses,
            "loss_steps": loss_steps,
            "phase_time": phase_time,
        }
        atomic_torch_save(state, settings.state_path)

    bar = progress_bar(settings, world, settings.steps, start, f"glcic {settings.name}/{settings.version}")
    started = time.perf_counter()
    for step in range(start + 1, settings.steps + 1):
        tick = time.perf_counter()
        phase = phase_at(step, settings.phase_steps)
        real = sample_batch(train_set.images, settings.batch_size, settings.flip, batch_rng).to(device)
        holes = draw_holes(settings.batch_size, resolution, rng).to(device)
        values = update.step(phase, real, holes)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        spent = phase_time[phase]
        spent["steps"] += 1
        spent["images"] += settings.batch_size * world.world_size
        spent["seconds"] += time.perf_counter() - tick
        for key, value in values.items():
            losses[key].append(value)
            loss_steps[key].append(step)
        bar.update(1)
        rate = spent["images"] / max(spent["seconds"], 1e-9)
        bar.set_postfix({"phase": phase, **{k: f"{v:.4f}" for k, v in values.items()}, "img_s": f"{rate:.0f}"})
        if world.is_main and (step % settings.sample_every == 0 or step == settings.steps):
            _sample_grid(update, grid_photos, grid_holes, runs / "samples" / f"step_{step:06d}.png")
        if world.is_main and step % settings.state_every == 0:
            write_state(step)
    bar.close()
    if not leave_group(world):
        return None
    write_state(settings.steps)
    elapsed += time.perf_counter() - started
    curve = save_loss_curve(
        {
            "reconstruction (hole)": losses["reconstruction"],
            "D BCE": losses["discriminator"],
            "C adversarial BCE": losses["adversarial"],
        },
        runs / "loss_curve.png",
        ylabel="loss",
        steps={
            "reconstruction (hole)": loss_steps["reconstruction"],
            "D BCE": loss_steps["discriminator"],
            "C adversarial BCE": loss_steps["adversarial"],
        },
    )
    samples = _sample_grid(update, grid_photos, grid_holes, runs / "samples" / "final.png")
    card = {
        "dataset": dataset_card(
            run.data, train_set, held, settings.holdout_fraction, settings.dataset_name, settings.licence
        ),
        "training": _training_card(settings, world, device, precision, elapsed, phase_time, losses),
    }
    modules = {
        "completion": update.completion,
        "global": update.discriminator.global_branch,
        "local": update.discriminator.local_branch,
    }
    return save_model(
        settings.model_store,
        settings.name,
        settings.version,
        GLCIC,
        modules,
        settings.network,
        card,
        pictures={"samples.png": samples, "loss_curve.png": curve},
        overwrite=settings.overwrite,
    )


def _training_card(
    settings: GlcicSettings,
    world: Distributed,
    device: torch.device,
    precision: str,
    elapsed: float,
    phase_time: dict[str, dict[str, Any]],
    losses: dict[str, list[float]],
) -> dict[str, Any]:
    """Settings, wall time and img/s of each phase, as measured (this run and any it resumed)."""
    phases = {
        phase: {
            "steps": length,
            "wall_time_s": round(phase_time[phase]["seconds"], 1),
            "images_per_s": round(phase_time[phase]["images"] / phase_time[phase]["seconds"], 1)
            if phase_time[phase]["seconds"] > 0
            else None,
        }
        for phase, length in zip(PHASES, settings.phase_steps, strict=True)
    }
    images = sum(int(t["images"]) for t in phase_time.values())
    seconds = sum(float(t["seconds"]) for t in phase_time.values())
    return {
        "steps": settings.steps,
        "phases": phases,
        "batch_size": settings.batch_size,
        **machine_card(world, device, precision),
        "lr": settings.optim.lr,
        "beta1": settings.optim.beta1,
        "alpha": settings.optim.alpha,
        "reconstruction": settings.optim.reconstruction,
        "masks": list(MASK_KINDS),
        "flip": settings.flip,
        "seed": settings.seed,
        "wall_time_s": round(elapsed, 1),
        "images_per_s": round(images / seconds, 1) if seconds > 0 else None,
        "final_losses": {key: round(float(np.mean(v[-50:])), 5) for key, v in losses.items() if v},
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
