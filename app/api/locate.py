"""`POST /v1/faces`: where the faces of a photo are, so a client (the restore page) can show and edit the boxes.

The same decoding as `POST /complete` and the same locator as its `region=auto`; nothing is
searched, so it needs no queue place. A photo without a mask (or transparency) is located as it
is; with one, the locator also looks at the hole's Telea pre-fill, as `/complete` does.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, File, Request, UploadFile
from pydantic import BaseModel, Field

from app.api.auth import require_token
from app.api.deps import ExecutorDep, LocatorDep, MetricsDep, SettingsDep, StoreDep
from app.api.problems import UPLOAD_PROBLEMS, problem_example
from app.api.uploads import declared_pixels, decode_upload
from app.faces.locate import Face, FaceLocator

router = APIRouter(prefix="/v1/faces", tags=["faces"])


class FoundFace(BaseModel):
    """One face the locator found."""

    box: list[int] = Field(description="x, y, width, height in photo pixels (the photo as shown upright)")
    score: float = Field(description="the detector's confidence (higher is surer; about 0 to 3)")


class FaceList(BaseModel):
    faces: list[FoundFace] = Field(description="one box per face, surest first; empty when none was found")
    face_models: list[str] = Field(
        description="the model names on this server that restore faces (region=auto and faces= apply to them)"
    )
    seconds: float = Field(description="time spent locating (decoding excluded)")


_EXAMPLE = {"faces": [{"box": [306, 104, 109, 108], "score": 1.72}], "face_models": ["faces"], "seconds": 0.08}


_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The faces found", "content": {"application/json": {"example": _EXAMPLE}}},
    **UPLOAD_PROBLEMS,
    503: problem_example("queue-full", "all 70 places of the post-processing queue are taken: retry after Retry-After"),
}


def _locate(locator: FaceLocator, image: np.ndarray, hole: np.ndarray) -> tuple[list[Face], float]:
    started = time.perf_counter()
    faces = locator.detect(image, hole)
    return faces, time.perf_counter() - started


@router.post(
    "",
    response_model=FaceList,
    responses=_RESPONSES,
    summary="Find the faces in a photo",
    description="The boxes `POST /complete` would restore with `region=auto`, for a client to show, correct and "
    "send back as `faces=x,y,w,h;...`. The mask is optional: without one the photo is searched as it is.",
    dependencies=[Depends(require_token)],
)
async def find_faces(
    request: Request,
    settings: SettingsDep,
    store: StoreDep,
    executor: ExecutorDep,
    locator: LocatorDep,
    metrics: MetricsDep,
    image: Annotated[UploadFile, File(description="The photo: PNG, JPEG or WebP.")],
    mask: Annotated[
        UploadFile | None,
        File(description="Optional, same size as the image; white = damaged. Faces are also sought under it."),
    ] = None,
) -> FaceList:
    image_data = await image.read()
    mask_data = await mask.read() if mask is not None else None
    admission = request.state.admission
    admission.release()  # no search is queued: the queue place goes back; the bytes and pixels stay claimed
    admission.claim_pixels(declared_pixels(image_data) + declared_pixels(mask_data))  # 503 past the budget
    upload = await asyncio.wrap_future(
        executor.submit(decode_upload, image_data, mask_data, settings.max_image_pixels, hole_required=False)
    )
    faces, seconds = await asyncio.wrap_future(executor.submit(_locate, locator, upload.model_image, upload.hole))
    metrics.face_locate.observe(seconds)
    names = store.names()
    return FaceList(
        faces=[FoundFace(box=face.box.as_list(), score=round(face.score, 3)) for face in faces],
        face_models=[name for name in settings.face_models if name in names],
        seconds=round(seconds, 4),
    )
