"""Uploads in, uploads out: bring a photo to the model's resolution and put the fill back.

Runs on plain arrays (NumPy, PIL, OpenCV, SciPy), off the device's worker thread.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
import torch

from app.engine.depth import EDGE_FILL, EdgeFill, generator_weight, model_pixel
from app.engine.errors import EngineError, MaskError, ParamsError
from app.engine.inpaint import INPAINT_RADIUS, INPAINTS
from app.engine.poisson import PoissonSystem, poisson_solve, poisson_system
from app.engine.resize import area_resize, box_resize_rgb
from app.engine.search import check_hole_coverage
from app.engine.separable import Separable, separable, touched
from app.engine.window import Window, model_view, model_window
from training.data import to_pixels, to_signed

BLENDS = ("poisson", "none")
WHOLE = (slice(None), slice(None))
# the Poisson blend's largest side: its correction is smooth, so solving it finer buys nothing
MAX_BLEND_SIDE = 256
# the edge fill's largest working size (about 1 megapixel): beyond it, it is filled smaller and scaled up
MAX_EDGE_PIXELS = 1 << 20
# the largest part of the model's window the finish makes from matrices; past it, OpenCV's whole-window resize is faster
MAX_PART = 0.125
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
    check_hole_coverage(int(np.count_nonzero(hole)), hole.size)  # a tenth of sum() on bools


def prepare(image: np.ndarray, hole: np.ndarray, resolution: int) -> Prepared:
    """Bring the upload's square (see `app.engine.window`) to (R, R): the model knows whole faces, not fragments.

    The box filter gives each model pixel exactly the source pixels under its
    footprint, so marking a model pixel as hole when any of those is a hole
    makes every known model pixel an average of known source pixels only; a
    wider filter (Lanczos, bicubic) would leak the damage into the context.
    """
    _check(image, hole)
    found, small_hole = model_view(hole, resolution)
    window = found or WHOLE
    if small_hole.all():
        raise MaskError(
            f"at the model's {resolution}x{resolution} resolution every pixel touches the hole "
            "(e.g. a fine scattered mask on a large photo): leave larger areas of the photo known"
        )
    target = to_signed(torch.from_numpy(box_resize_rgb(image[window], resolution))).clamp(-1.0, 1.0)
    small = torch.from_numpy(small_hole)
    return Prepared(target=target.masked_fill(small, 0.0), hole=small, window=window)


def _working_size(shape: tuple[int, int], scale: float) -> tuple[int, int]:
    height, width = shape
    return max(1, round(width * scale)), max(1, round(height * scale))


@dataclass(frozen=True)
class BlendBase:
    """The photo's side of a Poisson blend, which the fill does not change: made before the fill exists."""

    shape: tuple[int, int]  # the photo's (H, W)
    size: tuple[int, int] | None  # the working (width, height) when solved smaller; None: at the photo's size
    image: np.ndarray  # (h, w, 3) float64 at the working size
    system: PoissonSystem | None  # over the working size's hole (any missing photo pixel under a pixel);
    # None: every working pixel is hole, and the fill stays as it is


def blend_base(image: np.ndarray, hole: np.ndarray, max_side: int) -> BlendBase:
    """The photo and hole a blend solves on: at most `max_side` pixels a side."""
    if max(hole.shape) <= max_side:
        return BlendBase(hole.shape, None, image.astype(np.float64), poisson_system(hole))
    size = _working_size(hole.shape, max_side / max(hole.shape))
    small_hole = touched(hole, size)
    system = None if small_hole.all() else poisson_system(small_hole)
    return BlendBase(hole.shape, size, area_resize(image, size).astype(np.float64), system)


def blend_with(base: BlendBase, fill: np.ndarray, region: Window = WHOLE) -> np.ndarray:
    """Poisson-blend `fill` (float32, the photo's size) into `base`'s photo; `region`: only this part of the
    answer is wanted (the finish's box), so the correction is added there alone."""
    if base.system is None:
        return fill[region]
    if base.size is None:
        return poisson_solve(base.system, base.image, fill.astype(np.float64)).astype(np.float32)[region]
    correction = _correction(base, area_resize(fill, base.size))
    return fill[region] + area_resize(correction, (base.shape[1], base.shape[0]))[region]


def _correction(base: BlendBase, small_fill: np.ndarray) -> np.ndarray:
    """(h, w, 3) float32 at the blend's working size: what the blend adds to `small_fill` (the fill at that size),
    the known pixels minus the fill outside the hole and harmonic inside."""
    assert base.system is not None
    small_fill = small_fill.astype(np.float64)
    return (poisson_solve(base.system, base.image, small_fill) - small_fill).astype(np.float32)


def blend_into(image: np.ndarray, hole: np.ndarray, fill: np.ndarray, max_side: int) -> np.ndarray:
    """Poisson-blend `fill` into the photo, solved on at most `max_side` pixels a side.

    The blend adds a harmonic correction (smooth by construction) to the fill;
    above `max_side` it is solved on the photo brought down to that size and
    scaled back up, so a 25-megapixel upload costs what a 256x256 one does.
    """
    return blend_with(blend_base(image, hole, max_side), fill)


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
    small_band = touched(band, size)
    small_inner = touched(hole, size) & ~small_band
    small = inpaint(_with_deep(area_resize(image, size), small_inner, area_resize(deep, size)), small_band)
    return area_resize(small, (hole.shape[1], hole.shape[0]))


def model_pixels(generated: torch.Tensor) -> np.ndarray:
    """(R, R, 3) float32 in 0..255: a generator's (C, R, R) answer in [-1, 1] as photo pixels (grey as RGB)."""
    small = to_pixels(generated.detach().cpu()).permute(1, 2, 0).numpy()
    return np.ascontiguousarray(np.broadcast_to(small, (*small.shape[:2], 3)), dtype=np.float32)


def inpaint_bounded(
    image: np.ndarray, hole: np.ndarray, method: str, telea_made: np.ndarray | None = None
) -> np.ndarray:
    """(H, W, 3) uint8: the classical fill `method` of the whole hole, made at most MAX_EDGE_PIXELS large.

    `telea_made`: Telea's fill of this hole made beforehand at the photo's size on a picture around this one,
    cut to it (the face locator's pre-fill), taken where this would make the same: Telea at the photo's size,
    which reads only the hole and the pixels within its radius."""
    inpaint = INPAINTS[method]
    if hole.size <= MAX_EDGE_PIXELS:
        return telea_made if telea_made is not None and method == "telea" else inpaint(image, hole)
    size = _working_size(hole.shape, math.sqrt(MAX_EDGE_PIXELS / hole.size))
    small_hole = touched(hole, size)
    small = inpaint(area_resize(image, size), small_hole).astype(np.float32)
    out = image.copy()
    np.copyto(
        out,
        np.clip(np.rint(area_resize(small, (hole.shape[1], hole.shape[0]))), 0, 255).astype(np.uint8),
        where=hole[..., None],
    )
    return out


def _check_blend(blend: str) -> None:
    if blend not in BLENDS:
        raise ParamsError(f"blend must be one of {', '.join(BLENDS)}, got {blend!r}")


def _window_fill(
    generated: torch.Tensor, shape: tuple[int, int], base: BlendBase | None, region: Window = WHOLE
) -> np.ndarray:
    """(h, w, 3) float32: the generator's (C, R, R) answer in [-1, 1] scaled to the window's `shape`, blended
    into `base` (None: no blend); `region`: the part of the window returned."""
    assert generated.dim() == 3 and generated.shape[0] in (1, 3), tuple(generated.shape)
    small = model_pixels(generated)
    height, width = shape
    solving = base if base is not None and base.system is not None else None
    resizes = None
    if _area(region, shape) <= MAX_PART * height * width and (solving is None or solving.size is not None):
        resizes = _fill_resizes(small.shape[0], shape, None if solving is None else solving.size)
    if resizes is None:
        crop = area_resize(small, (width, height), cv2.INTER_CUBIC)
        return crop[region] if base is None else blend_with(base, crop, region)
    fill = resizes.up[region](small)
    if solving is None or resizes.blend is None:
        return fill
    down, back = resizes.blend
    return fill + back[region](_correction(solving, down(small)))


def _area(region: Window, shape: tuple[int, int]) -> int:
    return math.prod(len(range(*part.indices(size))) for part, size in zip(region, shape, strict=True))


@dataclass(frozen=True)
class _FillResizes:
    """The generator's answer to the window as matrices, which make only the part of the window asked for."""

    up: Separable  # the (R, R) answer to the window's size
    blend: tuple[Separable, Separable] | None  # the answer to the blend's working size, the correction back up


@lru_cache(maxsize=16)
def _fill_resizes(resolution: int, shape: tuple[int, int], blend_size: tuple[int, int] | None) -> _FillResizes | None:
    """None where OpenCV does not separate a resize: the window's answer is then made whole."""
    height, width = shape
    up = separable((resolution, resolution), (width, height), cv2.INTER_CUBIC)
    if up is None:
        return None
    if blend_size is None:
        return _FillResizes(up, None)
    down, back = separable(shape, blend_size), separable((blend_size[1], blend_size[0]), (width, height))
    return None if down is None or back is None else _FillResizes(up, (down.after(up), back))


def blended_fill(
    image: np.ndarray,
    hole: np.ndarray,
    generated: torch.Tensor,
    blend: str = "poisson",
    max_blend_side: int = MAX_BLEND_SIDE,
) -> np.ndarray:
    """(H, W, 3) float: the generator's (C, R, R) answer in [-1, 1] scaled to the model's window, Poisson-blended."""
    _check_blend(blend)
    _check(image, hole)
    window = model_window(hole, generated.shape[-1]) or WHOLE
    base = blend_base(image[window], hole[window], max_blend_side) if blend == "poisson" else None
    crop = _window_fill(generated, hole[window].shape, base)
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


def _depth(seen: np.ndarray, hole: np.ndarray, pixel: float, edge: EdgeFill | None) -> tuple[np.ndarray, np.ndarray]:
    """(the generator's share of each pixel, the band of hole pixels that take some classical fill)."""
    if edge is None:
        weight = seen.astype(np.float32)
    else:  # the window's border counts as an edge too, so the classical fill outside it joins without a seam
        weight = generator_weight(seen, pixel, edge)
    return weight, hole & (weight < 1.0)


def _compose_box(
    image: np.ndarray,
    hole: np.ndarray,
    box: Window,
    fill_box: np.ndarray,
    depth: tuple[np.ndarray, np.ndarray],
    edge: EdgeFill | None,
) -> np.ndarray:
    """The upload with the hole's pixels rewritten from `fill_box` (float, over `box`), near the edge classically."""
    image_box, hole_in_box = image[box], hole[box]
    weight, band = depth
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
    depth = _depth(_seen(hole, window, box), hole[box], model_pixel(hole[window].shape, resolution), edge)
    return _compose_box(image, hole, box, fill[box].copy(), depth, edge)


@dataclass(frozen=True)
class FinishPlan:
    """What finishing an upload needs that the generator's answer does not change: made while the search runs."""

    resolution: int
    window: Window
    box: Window  # hole_box: all that is touched past the blend
    overlap: tuple[Window, Window]  # where the window and the box meet, in each one's coordinates
    depth: tuple[np.ndarray, np.ndarray]  # over the box: the generator's share, and the band it does not fill alone
    base: BlendBase | None  # the window's photo side of the Poisson blend; None: no blend
    edge: EdgeFill | None


def plan_finish(
    image: np.ndarray,
    hole: np.ndarray,
    resolution: int,
    blend: str = "poisson",
    edge: EdgeFill | None = EDGE_FILL,
    max_blend_side: int = MAX_BLEND_SIDE,
    window: Window | None = None,
) -> FinishPlan:
    """Everything of `finish` but the generator's answer; `window`: `prepare`'s, where the caller kept it."""
    _check_blend(blend)
    _check(image, hole)
    window = (model_window(hole, resolution) or WHOLE) if window is None else window
    box = hole_box(hole)  # every hole pixel, its nearest known pixels and the inpainting radius around it
    depth = _depth(_seen(hole, window, box), hole[box], model_pixel(hole[window].shape, resolution), edge)
    base = blend_base(image[window], hole[window], max_blend_side) if blend == "poisson" else None
    return FinishPlan(resolution, window, box, _overlap(window, box, hole.shape), depth, base, edge)


def finish_planned(image: np.ndarray, hole: np.ndarray, generated: torch.Tensor, plan: FinishPlan) -> np.ndarray:
    """`finish` with its plan made beforehand: the fill scaled, blended, edge-filled and written into the hole."""
    assert generated.shape[-1] == plan.resolution, (tuple(generated.shape), plan.resolution)
    in_window, in_box = plan.overlap
    fill_box = np.zeros((*hole[plan.box].shape, 3), dtype=np.float32)  # outside the window: the classical fill's
    fill_box[in_box] = _window_fill(generated, hole[plan.window].shape, plan.base, in_window)
    return _compose_box(image, hole, plan.box, fill_box, plan.depth, plan.edge)


def finish(
    image: np.ndarray,
    hole: np.ndarray,
    generated: torch.Tensor,
    blend: str = "poisson",
    edge: EdgeFill | None = EDGE_FILL,
    max_blend_side: int = MAX_BLEND_SIDE,
) -> np.ndarray:
    """(H, W, 3) uint8 upload with its hole filled from `generated` (C, R, R) in [-1, 1].

    The generator's fill is scaled to the photo and Poisson-blended; with `edge`,
    the hole's pixels near its edge (in model pixels) take a classical fill made
    at the photo's own size instead (see `app.engine.depth`). Every known pixel
    comes back byte-identical, and the cost is bounded by `max_blend_side` and
    MAX_EDGE_PIXELS whatever the upload's size; past the blend, only the hole's box is touched.
    """
    plan = plan_finish(image, hole, generated.shape[-1], blend, edge, max_blend_side)
    return finish_planned(image, hole, generated, plan)
