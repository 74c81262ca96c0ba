"""Pictures of training: sample grids and the loss curve."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from PIL import Image

from training.data import to_uint8


def grid_image(images: torch.Tensor, columns: int | None = None, pad: int = 2) -> Image.Image:
    """(N, 3, H, W) in [-1, 1] -> one PIL image, a white-padded grid."""
    pixels = to_uint8(images.cpu()).permute(0, 2, 3, 1).numpy()
    count, height, width, _ = pixels.shape
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    canvas = Image.new("RGB", (columns * (width + pad) + pad, rows * (height + pad) + pad), "white")
    for index, tile in enumerate(pixels):
        row, col = divmod(index, columns)
        canvas.paste(Image.fromarray(tile), (pad + col * (width + pad), pad + row * (height + pad)))
    return canvas


def save_grid(images: torch.Tensor, path: Path, columns: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    grid_image(images, columns).save(path)
    return path


def _broken(x: list[int], y: list[float]) -> tuple[list[float], list[float]]:
    """A NaN wherever steps jump, so a series that skips steps (a phase without it) is drawn with a gap."""
    xs: list[float] = []
    ys: list[float] = []
    for index, (step, value) in enumerate(zip(x, y, strict=True)):
        if index and step - x[index - 1] > 1:
            xs.append(float("nan"))
            ys.append(float("nan"))
        xs.append(step)
        ys.append(value)
    return xs, ys


def save_loss_curve(
    series: dict[str, list[float]],
    path: Path,
    ylabel: str = "BCE loss",
    steps: dict[str, list[int]] | None = None,
) -> Path:
    """Raw and smoothed losses per step, one line per named series; `steps` places a series that skips steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4), dpi=100)
    for (label, values), colour in zip(
        series.items(), ("tab:blue", "tab:orange", "tab:green", "tab:red"), strict=False
    ):
        if not values:
            continue
        window = max(1, len(values) // 50)
        x = (steps or {}).get(label) or list(range(1, len(values) + 1))
        ax.plot(*_broken(x, values), color=colour, alpha=0.25, linewidth=0.8)
        kernel = torch.ones(window) / window
        smooth = torch.nn.functional.conv1d(torch.tensor(values).view(1, 1, -1), kernel.view(1, 1, -1))
        ax.plot(*_broken(x[window - 1 :], smooth.flatten().tolist()), color=colour, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
