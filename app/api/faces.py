"""`region=auto`: the faces of a photo completed one by one in the framing their model was trained on.

The route orders the stages; each is a function on arrays in `app.faces`. Locating runs
in the thread pool; each face is framed by the landmarks its damage left alone, corrected
by the framing network (`app.faces.refine`) where the store has one, checked
by the encoder's one-step guess (a box whose guess cannot explain its known pixels is no
face), and searched, all through the pool, which batches them with everyone else's
searches. The answer waits for all.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
import torch
from pydantic import BaseModel

from app.api.problems import Problem
from app.config import Settings
from app.engine.kinds import Job
from app.engine.search import SearchJob, SearchResult, params_for
from app.faces.align import Aligned, Framing, from_landmarks, warp_in
from app.faces.locate import Box, Face
from app.faces.paste import FaceFill
from app.faces.plan import Sized, known_error, landmarks_plausible, pick_model, surviving, touched
from app.faces.refine import FaceFramer
from app.store import ModelEntry, ModelStore

Region = Literal["auto", "whole"]
Status = Literal["restored", "too-small", "not-a-face", "untouched", "over-the-cap", "no-context", "fills-the-photo"]
OUTCOMES: tuple[Status, ...] = get_args(Status)
# a face whose crop square is this share of the photo's short side or more is the photo: an aligned crop is
# already framed as the model was trained, so it takes the whole-photo answer, as fast as before
FILLS_THE_PHOTO = 0.75
_BOX = re.compile(r"^\s*(-?\d+)\s*,\s*(-?\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*$")
# the encoder's one-pass guess: how well a framing's guess explains the known pixels scores the framing
_GUESS = params_for(True, "encoder", iterations=0, restarts=1)

Submit = Callable[[str, object], Awaitable[SearchResult]]


class FaceReport(BaseModel):
    """One face the service found or was given, and what it did with it."""

    box: list[int]  # x, y, width, height in photo pixels
    source: Literal["detected", "given"]
    status: Status
    model: str | None = None  # the model version that completed it, when restored
    side: float  # the face's crop square side in photo pixels (the size its model saw)
    known_error: float | None = None  # the chosen framing's guess on the known pixels (mean |diff|, [-1, 1] units)


def parse_faces(value: str | None, shape: tuple[int, int], cap: int) -> list[Box] | None:
    """`x,y,w,h;x,y,w,h` in photo pixels; a box of no size, outside the photo, or more boxes than `cap` is a 422."""
    if value is None or not value.strip():
        return None
    height, width = shape
    boxes = []
    for part in filter(str.strip, value.split(";")):
        match = _BOX.match(part)
        if match is None:
            raise Problem("invalid-parameter", f"faces: {part.strip()!r} is not x,y,w,h in whole pixels")
        x, y, w, h = map(int, match.groups())
        if w == 0 or h == 0:
            raise Problem("invalid-parameter", f"faces: the box {x},{y},{w},{h} has no size: give a width and height")
        if x >= width or y >= height or x + w <= 0 or y + h <= 0:
            raise Problem(
                "invalid-parameter",
                f"faces: the box {x},{y},{w},{h} lies outside the {width}x{height} photo: give boxes on the photo",
            )
        boxes.append(Box(x, y, w, h))
    if len(boxes) > cap:
        raise Problem("invalid-parameter", f"faces: {len(boxes)} boxes, over the server's {cap}: send at most {cap}")
    return boxes


def face_models(settings: Settings, store: ModelStore, spec: str | None, entry: ModelEntry) -> list[Sized] | None:
    """The models a face may be completed with: the named version alone, or, for a bare face model's name (or
    none), the latest version of each face model of the same kind; None when the model knows no faces."""
    name, _, version = (spec or store.default_model).partition(":")
    if name not in settings.face_models:
        return None
    if version:
        return [Sized(entry.key, entry.resolution, entry.has_encoder)]
    latest = [store.resolve(other) for other in settings.face_models if other in store.names()]
    return [Sized(model.key, model.resolution, model.has_encoder) for model in latest if model.kind == entry.kind]


@dataclass
class Planned:
    """A face on its way: its report, and for one to restore its model, framing and aligned crop."""

    face: Face
    report: FaceReport
    framing: Framing  # the landmarks' (or the caller's box's) framing
    model: Sized | None = None
    aligned: Aligned | None = None  # the face in its framing, once framed


def plan(settings: Settings, faces: list[Face], hole: np.ndarray, models: list[Sized]) -> list[Planned]:
    """Each face's fate before any search: too small, implausible, untouched by the hole, over the cap, or to do."""
    planned = []
    chosen = 0
    for face in faces:
        plausible = landmarks_plausible(face)
        framing = (
            from_landmarks(face.landmarks, surviving(face, hole))
            if plausible or face.source == "detected"
            else _box_framing(face.box)
        )
        report = FaceReport(box=face.box.as_list(), source=face.source, status="restored", side=round(framing.side, 1))
        item = Planned(face, report, framing)
        planned.append(item)
        least = max(4, math.ceil((framing.side / 64) ** 2))  # one pixel of the 64x64 model
        if framing.side < settings.min_face_px:
            report.status = "too-small"
        elif framing.side >= FILLS_THE_PHOTO * min(hole.shape):
            report.status = "fills-the-photo"
        elif not face.confirmed or (not plausible and face.source == "detected"):
            report.status = "not-a-face"
        elif not touched(framing, hole, least):
            report.status = "untouched"
        elif chosen >= settings.max_faces:
            report.status = "over-the-cap"
        else:
            chosen += 1
            item.model = pick_model(framing.side, models)
    return planned


def _box_framing(box: Box) -> Framing:
    """A caller's box taken as the training crop's square, for a box where the landmarks make no face."""
    scale = 200.0 / max(box.w, box.h)
    return Framing(np.array([[scale, 0.0, -scale * box.x], [0.0, scale, -scale * box.y]]))


Run = Callable[..., Awaitable[Any]]


async def check_framings(
    planned: list[Planned], image: np.ndarray, hole: np.ndarray, run: Run, submit: Submit, error_limit: float
) -> None:
    """Each face's encoder guess in its framing, one one-step job per face: a box whose guess explains its known
    pixels worse than `error_limit` is refused as no face, and one with no known pixel has no context.

    Measured on the held-out scenes: scoring shifted and scaled framings by this guess moved the framing
    away from the face's own more often than towards it (eyes block: hole PSNR 0.6 dB below the landmarks'
    framing), so the landmarks' framing is kept and the guess only checks it."""
    todo = [(item, item.model) for item in planned if item.model is not None]
    aligned = await run(_warp_all, image, hole, [(item.framing, model.resolution) for item, model in todo])
    guesses = await asyncio.gather(
        *(submit(model.key, SearchJob(a.target, a.hole, _GUESS)) for (_, model), a in zip(todo, aligned, strict=True))
    )
    for (item, _), face, guess in zip(todo, aligned, guesses, strict=True):
        item.aligned = face
        error = known_error(guess.generated, face.target, face.hole)  # inf where no pixel is known
        item.report.known_error = round(error, 4) if math.isfinite(error) else None
        if not math.isfinite(error):
            item.report.status, item.model = "no-context", None
        elif error > error_limit:
            item.report.status, item.model = "not-a-face", None


async def frame_faces(
    planned: list[Planned],
    image: np.ndarray,
    hole: np.ndarray,
    run: Run,
    submit: Submit,
    error_limit: float,
    framer: FaceFramer | None,
) -> None:
    """Each face to restore in its framing: the landmarks' corrected by the framing network where the server has
    one, then checked by its model's encoder where it has one."""
    todo = [item for item in planned if item.model is not None]
    if framer is not None and todo:
        refined = await run(framer.refine, image, hole, [item.framing for item in todo])
        for item, framing in zip(todo, refined, strict=True):
            item.framing = framing
            item.report.side = round(framing.side, 1)
    scored = [item for item in todo if item.model is not None and item.model.has_encoder]
    plain = [item for item in todo if item not in scored]
    if scored:
        await check_framings(scored, image, hole, run, submit, error_limit)
    if plain:
        await run(align_landmarks, image, hole, plain)


def _warp_all(image: np.ndarray, hole: np.ndarray, faces: list[tuple[Framing, int]]) -> list[Aligned]:
    return [warp_in(image, hole, framing, resolution) for framing, resolution in faces]


def align_landmarks(image: np.ndarray, hole: np.ndarray, planned: list[Planned]) -> None:
    """Each face at its landmarks' framing, for models without an encoder to score framings with."""
    for item in planned:
        if item.model is None:
            continue
        item.aligned = warp_in(image, hole, item.framing, item.model.resolution)
        if bool(item.aligned.hole.all()):
            item.report.status, item.model = "no-context", None


async def complete_faces(
    planned: list[Planned], submit: Submit, job: Callable[[Sized, torch.Tensor, torch.Tensor], Job]
) -> tuple[list[FaceFill], list[SearchResult]]:
    """The search of every face still to restore, all submitted at once."""
    todo = [(item, item.model, item.aligned) for item in planned if item.model is not None and item.aligned is not None]
    results = await asyncio.gather(*(submit(model.key, job(model, face.target, face.hole)) for _, model, face in todo))
    fills = []
    for (item, model, _), result in zip(todo, results, strict=True):
        item.report.model = model.key
        fills.append(FaceFill(result.generated, item.framing))
    return fills, list(results)
