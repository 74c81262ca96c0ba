"""Uploads in, uploads out: bring a photo to the model's resolution and put the fill back.

Runs on plain arrays (NumPy, PIL, OpenCV, SciPy), off the device's worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from PIL import Image

from app.engine.errors import EngineError, MaskError, ParamsError
from app.engine.poisson import poisson_fill
from app.engine.search import check_hole_coverage

BLENDS = ("poisson", "none")


@dataclass
class Prepared:
    """The search's view of an upload: the whole picture at model resolution and its hole."""

    target: torch.Tensor  # (C, R, R) float [-1, 1], zero in the hole
    hole: torch.Tensor  # (R, R) bool, True = missing


def _check(image: np.ndarray, hole: np.ndarray) -> None:
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3):
        shape = getattr(image, "shape", None)
        raise EngineError(f"image must be an (H, W, 3) uint8 RGB array, got {getattr(image, 'dtype', None)} {shape}")
    if not (isinstance(hole, np.ndarray) and hole.dtype == np.bool_):
        raise MaskError(f"the hole must be a bool array (True = fill), got {getattr(hole, 'dtype', type(hole))}")
    if hole.shape != image.shape[:2]:
        raise MaskError(
            f"the mask is {hole.shape[1]}x{hole.shape[0]} but the image is {image.shape[1]}x{image.shape[0]}: "
            "send a mask of the same width and height as the image"
        )
    check_hole_coverage(int(hole.sum()), hole.size)


def _box_resize(plane: np.ndarray, resolution: int) -> np.ndarray:
    """Area-average one float plane to (R, R): each output pixel sees exactly the source pixels under it."""
    return np.asarray(Image.fromarray(plane.astype(np.float32)).resize((resolution, resolution), Image.Resampling.BOX))


def prepare(image: np.ndarray, hole: np.ndarray, resolution: int) -> Prepared:
    """Bring the WHOLE upload to (R, R) (the model knows whole faces, not fragments).

    The box filter gives each model pixel exactly the source pixels under its
    footprint, so marking a model pixel as hole when any of those is a hole
    makes every known model pixel an average of known source pixels only; a
    wider filter (Lanczos, bicubic) would leak the damage into the context.
    A non-square upload is stretched to the square; `finish` stretches back.
    """
    _check(image, hole)
    small_hole = _box_resize(hole.astype(np.float32), resolution) > 0
    if small_hole.all():
        raise MaskError(
            f"at the model's {resolution}x{resolution} resolution every pixel touches the hole "
            "(e.g. a fine scattered mask on a large photo): leave larger areas of the photo known"
        )
    planes = [_box_resize(image[..., c], resolution) for c in range(3)]
    target = torch.from_numpy(np.stack(planes)).div(127.5).sub(1.0).clamp(-1.0, 1.0)
    small = torch.from_numpy(small_hole)
    return Prepared(target=target.masked_fill(small, 0.0), hole=small)


def finish(image: np.ndarray, hole: np.ndarray, generated: torch.Tensor, blend: str = "poisson") -> np.ndarray:
    """(H, W, 3) uint8 upload with its hole filled from `generated` (C, R, R) in [-1, 1].

    Only hole pixels are written: every known pixel comes back byte-identical.
    """
    if blend not in BLENDS:
        raise ParamsError(f"blend must be one of {', '.join(BLENDS)}, got {blend!r}")
    _check(image, hole)
    assert generated.dim() == 3 and generated.shape[0] in (1, 3), tuple(generated.shape)
    fill = generated.detach().float().cpu().clamp(-1, 1).add(1).mul(127.5).permute(1, 2, 0).numpy()
    fill = np.ascontiguousarray(np.broadcast_to(fill, (*fill.shape[:2], 3)))
    height, width = hole.shape
    shrink = height < fill.shape[0] or width < fill.shape[1]
    fill = cv2.resize(fill, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    if blend == "poisson":
        fill = poisson_fill(image.astype(np.float64), fill.astype(np.float64), hole)
    out = image.copy()
    out[hole] = np.clip(np.rint(fill[hole]), 0, 255).astype(np.uint8)
    return out
