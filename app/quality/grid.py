"""A comparison grid per mask family, so a person sees what the figures mean."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from app.quality.baselines import BASELINES
from app.quality.evaluate import LONE, Case

COLUMNS = ("original", "damaged", "telea", "ns", "ours-no-edge", "ours")  # one model's grid
HEADER = 14  # pixels of label row above the tiles


def grid_columns(methods: Sequence[str]) -> tuple[str, ...]:
    """One model: its answer with and without the edge fill; several: each model's answer."""
    if LONE in methods:
        return COLUMNS
    return (*COLUMNS[:4], *(method for method in methods if method not in BASELINES))


def comparison_grid(cases: Sequence[Case], columns: Sequence[str] = COLUMNS, gap: int = 2) -> Image.Image:
    """Rows of cases; columns original | damaged input | Telea | NS | then each model's columns.

    Small tiles are enlarged to at least 128 pixels with nearest-neighbour so no
    resampling hides a seam; photos evaluated at their own size are shown at it.
    The damaged column shows exactly what every method was given.
    """
    assert cases, "no cases to draw"
    scale = max(1, 128 // cases[0].truth.shape[0])
    side = cases[0].truth.shape[0] * scale
    width = len(columns) * (side + gap) + gap
    height = HEADER + len(cases) * (side + gap) + gap
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for column, label in enumerate(columns):
        draw.text((gap + column * (side + gap) + 2, 2), label, fill=(0, 0, 0))
    for row, case in enumerate(cases):
        tiles = [case.truth, case.damaged, *(case.outputs[name] for name in columns[2:])]
        for column, tile in enumerate(tiles):
            big = np.repeat(np.repeat(tile, scale, axis=0), scale, axis=1)
            canvas.paste(Image.fromarray(big), (gap + column * (side + gap), HEADER + gap + row * (side + gap)))
    return canvas
