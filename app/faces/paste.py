"""The faces' fills back into the photo: each through its inverse framing, blended, the rest classical.

Hole pixels inside a restored face's square take the generator's fill (Poisson-blended
to the photo's colours, with the service's edge fill near the hole's border, measured in
that face's model pixels); hole pixels outside every restored face take the classical
fill, so a wall or a hand never gets a face. Only hole pixels are written: every known
pixel comes back byte-identical.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from app.engine.compose import MAX_BLEND_SIDE, blend_into, hole_box, inpaint_bounded, model_pixels
from app.engine.depth import EdgeFill, generator_weight
from app.faces.align import Framing, region_of, warp_out


@dataclass(frozen=True)
class FaceFill:
    """One restored face: the model's (C, R, R) answer in [-1, 1] and the framing it was made in."""

    generated: torch.Tensor
    framing: Framing


def paste_faces(
    image: np.ndarray,
    hole: np.ndarray,
    faces: list[FaceFill],
    method: str,
    edge: EdgeFill | None,
    blend: str,
    prefilled: np.ndarray | None = None,
) -> np.ndarray:
    """(H, W, 3) uint8: `image` with its hole filled, faces from their models and the rest by `method`.

    `prefilled`: Telea's fill of the whole hole made beforehand on `image` at its size (the locator's pre-fill),
    the classical fill where `inpaint_bounded` would make the same."""
    box = hole_box(hole)
    image_box, hole_box_ = image[box], hole[box]
    made = prefilled[box] if prefilled is not None else None
    fill = inpaint_bounded(image_box, hole_box_, method, made).astype(np.float32)
    top, left = box[0].start, box[1].start
    for face in faces:
        region = region_of(face.framing, hole.shape)
        if region is None:
            continue
        rows = slice(max(region[0].start, box[0].start), min(region[0].stop, box[0].stop))
        cols = slice(max(region[1].start, box[1].start), min(region[1].stop, box[1].stop))
        if rows.stop <= rows.start or cols.stop <= cols.start:
            continue
        generated, coverage = warp_out(model_pixels(face.generated), face.framing, (rows, cols))
        local = (slice(rows.start - top, rows.stop - top), slice(cols.start - left, cols.stop - left))
        local_hole = hole_box_[local]
        if blend == "poisson" and local_hole.any() and not local_hole.all():
            generated = blend_into(image_box[local], local_hole, generated, MAX_BLEND_SIDE)
        pixel = face.framing.side / face.generated.shape[-1]  # photo pixels per model pixel
        depth = generator_weight(local_hole, pixel, edge) if edge is not None else local_hole.astype(np.float32)
        weight = (coverage * depth)[..., None]
        fill[local] = weight * generated + (1.0 - weight) * fill[local]
    out = image.copy()
    np.rint(fill, out=fill)
    np.clip(fill, 0, 255, out=fill)
    np.copyto(out[box], fill.astype(np.uint8), where=hole_box_[..., None])
    return out
