"""`python -m training framing`: train the framing network on the training crops and write it to the store.

Examples are made on the fly (`training.framing_data`) from the crops outside the held-out split
(by the same name hash as the face models, so their held-out faces stay unseen); a thread makes the
next batch while the network learns from this one. The validation error, in crop pixels of 200 per
hole family, goes on the card beside the error of the framing it started from.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw
from tqdm import tqdm

from training.checkpoint import save_model, version_folder
from training.data import load_images, split
from training.framing_data import HOLE_FAMILIES, Examples, make_examples
from training.framing_net import CROP, TEMPLATE, FramingConfig, FramingNet, network_input
from training.kinds import FRAMING
from training.run import NamedRunSettings, atomic_torch_save, dataset_card, pick_device, resumed_state
from training.visuals import save_loss_curve

VALIDATION_PER_FAMILY = 64


@dataclass(kw_only=True)
class FramingSettings(NamedRunSettings):
    """One framing-network run; built by the CLI or by tests."""

    name: str = "faces-framing"
    network: FramingConfig = field(default_factory=FramingConfig)
    steps: int = 2000
    lr: float = 1e-3


def point_error(predicted: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """(B,): mean distance of the three points, in crop pixels of 200 (the framing evaluation's error)."""
    return (predicted - truth).norm(dim=-1).mean(dim=-1)


def _validation(faces: np.ndarray, resolution: int) -> dict[str, Examples]:
    """A fixed set per hole family, the same every run."""
    sets = {}
    for index, family in enumerate(HOLE_FAMILIES):
        rng = np.random.default_rng([777, index])
        sets[family] = make_examples(faces, VALIDATION_PER_FAMILY, resolution, rng, family)
    return sets


@torch.no_grad()
def validate(net: FramingNet, sets: dict[str, Examples], device: torch.device) -> dict[str, dict[str, float]]:
    """Per family: the median error of the framing the examples start from and of the network's correction."""
    net.eval()
    report = {}
    for family, examples in sets.items():
        predicted = net(network_input(examples.crops, examples.known).to(device)).cpu()
        template = torch.tensor(TEMPLATE, dtype=torch.float32).expand_as(examples.points)
        report[family] = {
            "start_px": round(float(point_error(template, examples.points).median()), 2),
            "network_px": round(float(point_error(predicted, examples.points).median()), 2),
        }
    net.train()
    return report


def _sample_grid(net: FramingNet, examples: Examples, device: torch.device, path: Path) -> Path:
    """Each crop as framed, enlarged, with the true points (green) and the network's (red)."""
    with torch.no_grad():
        net.eval()
        predicted = net(network_input(examples.crops, examples.known).to(device)).cpu()
        net.train()
    side, pad = 128, 2
    columns = 8
    rows = -(-len(examples.crops) // columns)
    canvas = Image.new("RGB", (columns * (side + pad) + pad, rows * (side + pad) + pad), "white")
    shown = examples.crops.add(1).mul(127.5).clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
    grey = np.array([128, 128, 128], dtype=np.uint8)
    for index, (pixels, known) in enumerate(zip(shown, examples.known.numpy(), strict=True)):
        tile = Image.fromarray(np.where(known[..., None], pixels, grey)).resize((side, side), Image.Resampling.NEAREST)
        draw = ImageDraw.Draw(tile)
        for points, colour in ((examples.points[index], (0, 220, 0)), (predicted[index], (255, 40, 40))):
            for x, y in (points.numpy() * side / 200.0).tolist():
                draw.ellipse((x - 3, y - 3, x + 3, y + 3), outline=colour, width=2)
        row, col = divmod(index, columns)
        canvas.paste(tile, (pad + col * (side + pad), pad + row * (side + pad)))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


class _Batches:
    """Makes the next batch on a thread while the caller trains on this one (OpenCV releases the GIL)."""

    def __init__(self, faces: np.ndarray, settings: FramingSettings, start: int) -> None:
        self._queue: queue.Queue[Examples] = queue.Queue(maxsize=2)
        self._args = (faces, settings.batch_size, settings.network.resolution)
        self._rng = np.random.default_rng([settings.seed, start])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="framing-examples")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            batch = make_examples(*self._args, self._rng)
            while not self._stop.is_set():
                try:
                    self._queue.put(batch, timeout=0.5)
                    break
                except queue.Full:
                    continue

    def next(self) -> Examples:
        return self._queue.get()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def train_framing(settings: FramingSettings) -> Path:
    """Train, validate and write `<name>/<version>/` with the framer's weights, pictures and card."""
    target = version_folder(settings.model_store, settings.name, settings.version, settings.overwrite)
    device = pick_device(settings.device, 0)
    data = load_images(settings.data, int(CROP))
    train_set, held = split(data, settings.holdout_fraction)
    train_faces = train_set.images.permute(0, 2, 3, 1).numpy()
    held_faces = (held if len(held) else train_set).images.permute(0, 2, 3, 1).numpy()
    torch.manual_seed(settings.seed)
    net = FramingNet(settings.network).to(device)
    optimizer = torch.optim.AdamW(net.parameters(), lr=settings.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, settings.lr, total_steps=settings.steps)
    runs = settings.runs
    losses: list[float] = []
    start, elapsed = 0, 0.0
    state = resumed_state(settings, device)
    if state is not None:
        net.load_state_dict(state["net"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        start, losses, elapsed = int(state["step"]), list(state["losses"]), float(state["elapsed"])
    checks = _validation(held_faces, settings.network.resolution)
    shown = make_examples(held_faces, 16, settings.network.resolution, np.random.default_rng(4321))
    batches = _Batches(train_faces, settings, start)
    bar = tqdm(total=settings.steps, initial=start, disable=not settings.show_progress, desc=f"framing {target}")
    started = time.perf_counter()
    try:
        for step in range(start + 1, settings.steps + 1):
            batch = batches.next()
            predicted = net(network_input(batch.crops, batch.known).to(device))
            loss = point_error(predicted, batch.points.to(device)).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(float(loss.detach()))
            bar.update(1)
            bar.set_postfix(error_px=f"{losses[-1]:.2f}")
            if step % settings.sample_every == 0 or step == settings.steps:
                _sample_grid(net, shown, device, runs / f"samples_{step:06d}.png")
                save_loss_curve({"point error": losses}, runs / "loss_curve.png", ylabel="crop pixels of 200")
            if step % settings.state_every == 0 and step < settings.steps:
                total = elapsed + time.perf_counter() - started
                state = {
                    "net": net.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "schedule": schedule.state_dict(),
                    "step": step,
                    "losses": losses,
                    "elapsed": total,
                }
                atomic_torch_save(state, settings.state_path)
    finally:
        batches.close()
        bar.close()
    card: dict[str, Any] = {
        "dataset": dataset_card(
            data, train_set, held, settings.holdout_fraction, settings.dataset_name, settings.licence
        ),
        "training": {
            "steps": settings.steps,
            "batch_size": settings.batch_size,
            "lr": settings.lr,
            "seconds": round(elapsed + time.perf_counter() - started, 1),
            "device": str(device),
        },
        "validation": validate(net, checks, device),
    }
    pictures = {
        "samples.png": _sample_grid(net, shown, device, runs / "samples_final.png"),
        "loss_curve.png": save_loss_curve({"point error": losses}, runs / "loss_curve.png", ylabel="crop pixels"),
    }
    return save_model(
        settings.model_store,
        settings.name,
        settings.version,
        FRAMING,
        {"framer": net},
        settings.network,
        card,
        pictures,
        settings.overwrite,
    )
