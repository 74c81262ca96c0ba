"""`GET /v1/models`: what this server can complete with, and each model's sample grid."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel

from app.api.deps import StoreDep
from app.api.problems import MEDIA_TYPE, Problem, problem_body

router = APIRouter(prefix="/v1/models", tags=["models"])


class ModelInfo(BaseModel):
    """One model version as clients see it."""

    name: str
    version: str
    key: str
    latest: bool
    kind: str
    resolution: int
    encoder: bool
    dataset: str
    samples_url: str | None


class ModelList(BaseModel):
    default: str
    models: list[ModelInfo]


@router.get("", response_model=ModelList, summary="List the model versions this server holds")
async def list_models(request: Request, store: StoreDep) -> ModelList:
    models = []
    for entry in store.entries():
        url = None
        if entry.samples is not None:
            url = str(request.url_for("model_samples", name=entry.name, version=entry.version))
        latest = store.resolve(entry.name) == entry
        models.append(
            ModelInfo(
                name=entry.name,
                version=entry.version,
                key=entry.key,
                latest=latest,
                kind=entry.kind,
                resolution=entry.resolution,
                encoder=entry.has_encoder,
                dataset=entry.dataset,
                samples_url=url,
            )
        )
    return ModelList(default=store.resolve(None).key, models=models)


@router.get(
    "/{name}/{version}/samples.png",
    response_class=FileResponse,
    name="model_samples",
    summary="A grid of images the model generates",
    responses={
        200: {"content": {"image/png": {}}},
        404: {
            "description": "No such model version, or it has no samples",
            "content": {MEDIA_TYPE: {"example": problem_body("not-found", "no samples for model faces:9")}},
        },
    },
)
async def model_samples(name: str, version: str, store: StoreDep) -> FileResponse:
    entry = next((e for e in store.entries() if e.name == name and e.version == version), None)
    if entry is None or entry.samples is None:
        raise Problem("not-found", f"no samples for model {name}:{version}: GET /v1/models lists what exists")
    return FileResponse(entry.samples, media_type="image/png")
