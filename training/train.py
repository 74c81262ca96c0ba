"""The DCGAN training loop: steps, sample grids, losses, checkpoint; start-up and resume are `training.run`."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from training.checkpoint import save_checkpoint
from training.data import ImageSet
from training.gan import GanUpdate, Optim
from training.networks import NetworkConfig, recompute_batchnorm_stats
from training.run import (
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
class TrainSettings(RunSettings):
    """One DCGAN run; built by the CLI or by tests."""

    network: NetworkConfig = field(default_factory=NetworkConfig)
    optim: Optim = field(default_factory=Optim)
    steps: int = 3000


def _card(
    settings: TrainSettings, data: ImageSet, train: ImageSet, held: ImageSet, training: dict[str, Any]
) -> dict[str, Any]:
    dataset = dataset_card(data, train, held, settings.holdout_fraction, settings.dataset_name, settings.licence)
    return {"dataset": dataset, "training": training}


def train(settings: TrainSettings) -> Path | None:
    """Train to `settings.steps` and write the checkpoint; returns its folder on rank 0."""
    run = start_run(settings, settings.network.resolution)
    world, device, precision, train_set = run.world, run.device, run.precision, run.train_set
    gan = GanUpdate(settings.network, device, precision, settings.optim, wrap=run.wrap, wrap_kwargs=run.ddp_kwargs)
    runs = settings.runs
    start_step, d_losses, g_losses, elapsed = 0, [], [], 0.0
    state = resumed_state(settings, device)
    if state is not None:
        gan.load_state_dict(state["gan"])
        start_step, d_losses, g_losses = int(state["step"]), list(state["d_losses"]), list(state["g_losses"])
        elapsed = float(state["elapsed"])
    rng = torch.Generator().manual_seed(settings.seed * 1000 + world.rank + start_step)
    fixed_z = torch.randn(64, settings.network.z_dim, generator=torch.Generator().manual_seed(settings.seed)).to(device)

    def write_state(step: int) -> None:
        total = elapsed + time.perf_counter() - started
        state = {"gan": gan.state_dict(), "step": step, "d_losses": d_losses, "g_losses": g_losses, "elapsed": total}
        atomic_torch_save(state, settings.state_path)

    bar = progress_bar(settings, world, settings.steps, start_step, f"{settings.name}/{settings.version}")
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
        **machine_card(world, device, precision),
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
        _card(settings, run.data, train_set, run.held, training),
        pictures={"samples.png": samples, "loss_curve.png": curve},
        overwrite=settings.overwrite,
    )
