"""Uploads in, uploads out: bring a photo to the model's resolution and put the fill back.

Runs on plain arrays (NumPy, PIL, OpenCV, SciPy), off the device's worker thread.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from app.engine.depth import EDGE_FILL, EdgeFill, generator_weight, model_pixel
from app.engine.errors import EngineError, MaskError, ParamsError
from app.engine.inpaint import INPAINT_RADIUS, INPAINTS
from app.engine.poisson import poisson_fill
from app.engine.search import check_hole_coverage
from app.engine.window import Window, box_resize, model_window

BLENDS = ("poisson", "none")
WHOLE = (slice(None), slice(None))
# the Poisson blend's largest side: its correction is smooth, so solving it finer buys nothing
MAX_BLEND_SIDE = 256
# the edge fill's largest working size (about 1 megapixel): beyond it, it is filled smaller and scaled up
MAX_EDGE_PIXELS = 1 << 20
# known pixels around the hole the edge fill reads: the nearest known ones and OpenCV's inpainting radius
EDGE_MARGIN = INPAINT_RADIUS + 1


@dataclass
class Prepared:
    """The search's view of an upload: the whole picture at model resolution and its hole."""

    target: torch.Tensor  # (C, R, R) float [-1, 1], zero in the hole
    hole: torch.Tensor  # (R, R) bool, True = missing
    window: Window = WHOLE  # the upload's square the model sees: `finish` puts the answer back there


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


def prepare(image: np.ndarray, hole: np.ndarray, resolution: int) -> Prepared:
    """Bring the upload's square (see `app.engine.window`) to (R, R): the model knows whole faces, not fragments.

    The box filter gives each model pixel exactly the source pixels under its
    footprint, so marking a model pixel as hole when any of those is a hole
    makes every known model pixel an average of known source pixels only; a
    wider filter (Lanczos, bicubic) would leak the damage into the context.
    """
    _check(image, hole)
    window = model_window(hole, resolution) or WHOLE
    image, hole = image[window], hole[window]
    small_hole = box_resize(hole.astype(np.float32), resolution) > 0
    if small_hole.all():
        raise MaskError(
            f"at the model's {resolution}x{resolution} resolution every pixel touches the hole "
            "(e.g. a fine scattered mask on a large photo): leave larger areas of the photo known"
        )
    planes = [box_resize(image[..., c], resolution) for c in range(3)]
    target = torch.from_numpy(np.stack(planes)).div(127.5).sub(1.0).clamp(-1.0, 1.0)
    small = torch.from_numpy(small_hole)
    return Prepared(target=target.masked_fill(small, 0.0), hole=small, window=window)


def _resize(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Area average down, bilinear up: (H, W[, C]) float to `size` = (width, height)."""
    shrink = size[0] < array.shape[1] or size[1] < array.shape[0]
    return cv2.resize(array, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _working_size(shape: tuple[int, int], scale: float) -> tuple[int, int]:
    height, width = shape
    return max(1, round(width * scale)), max(1, round(height * scale))


def blend_into(image: np.ndarray, hole: np.ndarray, fill: np.ndarray, max_side: int) -> np.ndarray:
    """Poisson-blend `fill` into the photo, solved on at most `max_side` pixels a side.

    The blend adds a harmonic correction (smooth by construction) to the fill;
    above `max_side` it is solved on the photo brought down to that size and
    scaled back up, so a 25-megapixel upload costs what a 256x256 one does.
    """
    if max(hole.shape) <= max_side:
        return poisson_fill(image.astype(np.float64), fill.astype(np.float64), hole).astype(np.float32)
    size = _working_size(hole.shape, max_side / max(hole.shape))
    small_hole = _resize(hole.astype(np.float32), size) > 0  # any missing photo pixel under it
    if small_hole.all():
        return fill
    small_fill = _resize(fill, size).astype(np.float64)
    small_image = _resize(image, size).astype(np.float64)
    blended = poisson_fill(small_image, small_fill, small_hole)
    correction = (blended - small_fill).astype(np.float32)  # known - fill outside the hole, harmonic inside
    fill += _resize(correction, (hole.shape[1], hole.shape[0]))
    return fill


def hole_box(hole: np.ndarray) -> tuple[slice, slice]:
    """The hole's bounding box grown by EDGE_MARGIN: all the edge fill and the composition need to see."""
    rows, cols = np.flatnonzero(hole.any(axis=1)), np.flatnonzero(hole.any(axis=0))
    height, width = hole.shape
    return (
        slice(max(0, rows[0] - EDGE_MARGIN), min(height, rows[-1] + 1 + EDGE_MARGIN)),
        slice(max(0, cols[0] - EDGE_MARGIN), min(width, cols[-1] + 1 + EDGE_MARGIN)),
    )


def _with_deep(image: np.ndarray, inner: np.ndarray, deep: np.ndarray) -> np.ndarray:
    """The photo with the generator's pixels where `inner` is set: the known side of the band, seen from inside."""
    source = image.copy()
    np.copyto(source, np.clip(np.rint(deep), 0, 255).astype(np.uint8), where=inner[..., None])
    return source


def _edge_fill(image: np.ndarray, hole: np.ndarray, band: np.ndarray, deep: np.ndarray, edge: EdgeFill) -> np.ndarray:
    """The classical fill of `band` (the hole's pixels near its edge), the generator's `deep` pixels taken as known.

    Above MAX_EDGE_PIXELS the photo is filled at that many pixels and scaled back.
    """
    inpaint = INPAINTS[edge.method]
    if hole.size <= MAX_EDGE_PIXELS:
        return inpaint(_with_deep(image, hole & ~band, deep), band)
    size = _working_size(hole.shape, math.sqrt(MAX_EDGE_PIXELS / hole.size))
    small_band = _resize(band.astype(np.float32), size) > 0
    small_inner = (_resize(hole.astype(np.float32), size) > 0) & ~small_band
    small = inpaint(_with_deep(_resize(image, size), small_inner, _resize(deep, size)), small_band)
    return _resize(small, (hole.shape[1], hole.shape[0]))


def model_pixels(generated: torch.Tensor) -> np.ndarray:
    """(R, R, 3) float32 in 0..255: a generator's (C, R, R) answer in [-1, 1] as photo pixels (grey as RGB)."""
    small = generated.detach().float().cpu().clamp(-1, 1).add(1).mul(127.5).permute(1, 2, 0).numpy()
    return np.ascontiguousarray(np.broadcast_to(small, (*small.shape[:2], 3)), dtype=np.float32)


def inpaint_bounded(image: np.ndarray, hole: np.ndarray, method: str) -> np.ndarray:
    """(H, W, 3) uint8: the classical fill `method` of the whole hole, made at most MAX_EDGE_PIXELS large."""
    inpaint = INPAINTS[method]
    if hole.size <= MAX_EDGE_PIXELS:
        return inpaint(image, hole)
    size = _working_size(hole.shape, math.sqrt(MAX_EDGE_PIXELS / hole.size))
    small_hole = _resize(hole.astype(np.float32), size) > 0
    small = inpaint(_resize(image, size), small_hole).astype(np.float32)
    out = image.copy()
    np.copyto(
        out,
        np.clip(np.rint(_resize(small, (hole.shape[1], hole.shape[0]))), 0, 255).astype(np.uint8),
        where=hole[..., None],
    )
    return out


def _window_fill(
    image: np.ndarray, hole: np.ndarray, generated: torch.Tensor, blend: str, max_blend_side: int, window: Window
) -> np.ndarray:
    """(h, w, 3) float32 over `window`: the generator's (C, R, R) answer in [-1, 1] scaled to it, Poisson-blended."""
    if blend not in BLENDS:
        raise ParamsError(f"blend must be one of {', '.join(BLENDS)}, got {blend!r}")
    assert generated.dim() == 3 and generated.shape[0] in (1, 3), tuple(generated.shape)
    small = model_pixels(generated)
    crop_image, crop_hole = image[window], hole[window]
    height, width = crop_hole.shape
    shrink = height < small.shape[0] or width < small.shape[1]
    crop = cv2.resize(small, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    if blend == "poisson":
        crop = blend_into(crop_image, crop_hole, crop, max_blend_side)
    return crop


def blended_fill(
    image: np.ndarray,
    hole: np.ndarray,
    generated: torch.Tensor,
    blend: str = "poisson",
    max_blend_side: int = MAX_BLEND_SIDE,
) -> np.ndarray:
    """(H, W, 3) float: the generator's (C, R, R) answer in [-1, 1] scaled to the model's window, Poisson-blended."""
    _check(image, hole)
    window = model_window(hole, generated.shape[-1]) or WHOLE
    crop = _window_fill(image, hole, generated, blend, max_blend_side, window)
    if window is WHOLE:
        return crop
    fill = np.zeros((*hole.shape, 3), dtype=np.float32)  # outside the window: the classical fill's, see compose
    fill[window] = crop
    return fill


def _overlap(window: Window, box: Window, shape: tuple[int, int]) -> tuple[Window, Window]:
    """Where `window` and `box` meet, as (slices into the window, slices into the box)."""
    in_window, in_box = [], []
    for outer, inner, size in zip(window, box, shape, strict=True):
        w_start, w_stop, _ = outer.indices(size)
        b_start, b_stop, _ = inner.indices(size)
        start, stop = max(w_start, b_start), max(min(w_stop, b_stop), max(w_start, b_start))
        in_window.append(slice(start - w_start, stop - w_start))
        in_box.append(slice(start - b_start, stop - b_start))
    return (in_window[0], in_window[1]), (in_box[0], in_box[1])


def _seen(hole: np.ndarray, window: Window, box: Window) -> np.ndarray:
    """The box's hole pixels inside the model's window: those the generator's answer covers."""
    _, in_box = _overlap(window, box, hole.shape)
    hole_in_box = hole[box]
    seen = np.zeros(hole_in_box.shape, dtype=bool)
    seen[in_box] = hole_in_box[in_box]
    return seen


def _compose_box(
    image: np.ndarray,
    hole: np.ndarray,
    box: Window,
    fill_box: np.ndarray,
    seen_box: np.ndarray,
    pixel: float,
    edge: EdgeFill | None,
) -> np.ndarray:
    """The upload with the hole's pixels rewritten from `fill_box` (float, over `box`), near the edge classically."""
    image_box, hole_in_box = image[box], hole[box]
    if edge is None:
        weight = seen_box.astype(np.float32)
    else:  # the window's border counts as an edge too, so the classical fill outside it joins without a seam
        weight = generator_weight(seen_box, pixel, edge)
    band = hole_in_box & (weight < 1.0)
    if band.any():
        classical = _edge_fill(image_box, hole_in_box, band, fill_box, edge or EDGE_FILL)
        ys, xs = np.nonzero(band)
        share = weight[ys, xs][:, None]
        fill_box[ys, xs] = share * fill_box[ys, xs] + (1.0 - share) * classical[ys, xs]
    out = image.copy()
    np.rint(fill_box, out=fill_box)
    np.clip(fill_box, 0, 255, out=fill_box)
    np.copyto(out[box], fill_box.astype(np.uint8), where=hole_in_box[..., None])
    return out


def compose(
    image: np.ndarray, hole: np.ndarray, fill: np.ndarray, resolution: int, edge: EdgeFill | None
) -> np.ndarray:
    """The upload with its hole rewritten: `fill` deep inside, with `edge`, a classical fill near the edge.

    Hole pixels outside the model's window always take the classical fill.
    Only hole pixels are written: every known pixel comes back byte-identical.
    """
    window = model_window(hole, resolution) or WHOLE
    box = hole_box(hole)  # every hole pixel, its nearest known pixels and the inpainting radius around it
    pixel = model_pixel(hole[window].shape, resolution)
    return _compose_box(image, hole, box, fill[box].copy(), _seen(hole, window, box), pixel, edge)


def finish(
    image: np.ndarray,
    hole: np.ndarray,
    generated: torch.Tensor,
    blend: str = "poisson",
    edge: EdgeFill | None = EDGE_FILL,
    max_blend_side: int = MAX_BLEND_SIDE,
    window: Window | None = None,
) -> np.ndarray:
    """(H, W, 3) uint8 upload with its hole filled from `generated` (C, R, R) in [-1, 1].

    The generator's fill is scaled to the photo and Poisson-blended; with `edge`,
    the hole's pixels near its edge (in model pixels) take a classical fill made
    at the photo's own size instead (see `app.engine.depth`). Every known pixel
    comes back byte-identical, and the cost is bounded by `max_blend_side` and
    MAX_EDGE_PIXELS whatever the upload's size. `window`: `prepare`'s, where the
    caller kept it (else found again); past the blend, only the hole's box is touched.
    """
    _check(image, hole)
    resolution = generated.shape[-1]
    window = (model_window(hole, resolution) or WHOLE) if window is None else window
    crop = _window_fill(image, hole, generated, blend, max_blend_side, window)
    box = hole_box(hole)  # every hole pixel, its nearest known pixels and the inpainting radius around it
    in_window, in_box = _overlap(window, box, hole.shape)
    fill_box = np.zeros((*hole[box].shape, 3), dtype=np.float32)  # outside the window: the classical fill's
    fill_box[in_box] = crop[in_window]
    pixel = model_pixel(hole[window].shape, resolution)
    return _compose_box(image, hole, box, fill_box, _seen(hole, window, box), pixel, edge)
