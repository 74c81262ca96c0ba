"""`GET /v1/models`: what this server can complete with, each model's sample grid, and reloading them."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel

from app.api.auth import require_admin_token
from app.api.deps import BackendDep, ServicesDep, StoreDep
from app.api.problems import MEDIA_TYPE, Problem, problem_body
from app.reload import ReloadRefusedError, prepare_reload, publish_model_info

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/models", tags=["models"])


class ModelInfo(BaseModel):
    """One model version as clients see it."""

    name: str
    version: str
    key: str
    latest: bool
    kind: str  # search (the latent search) or glcic (one pass)
    parameters: list[str]  # the request parameters its kind takes (`ServedKind.request`; 422 for the others)
    resolution: int
    encoder: bool
    dataset: str
    samples_url: str | None


class ModelList(BaseModel):
    default: str
    models: list[ModelInfo]
    draining: list[str]  # unloaded by a reload, still finishing searches accepted before it


@router.get("", response_model=ModelList, summary="List the model versions this server holds")
async def list_models(request: Request, store: StoreDep, backend: BackendDep) -> ModelList:
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
                parameters=[parameter.name for parameter in entry.served.request],
                resolution=entry.resolution,
                encoder=entry.has_encoder,
                dataset=entry.dataset,
                samples_url=url,
            )
        )
    draining = sorted(backend.loaded - backend.models)
    return ModelList(default=store.resolve(None).key, models=models, draining=draining)


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


class ReloadAnswer(BaseModel):
    """What a reload changed and what is served after it."""

    changed: bool
    loaded: list[str]
    unloaded: list[str]
    serving: list[str]
    default: str


@router.post(
    "/reload",
    response_model=ReloadAnswer,
    summary="Rescan the model store: serve new versions, unload removed ones, without a restart",
    dependencies=[Depends(require_admin_token)],
    responses={
        403: {
            "description": "The server has no API token (IMGCOMP_API_TOKEN): reloading is turned off",
            "content": {
                MEDIA_TYPE: {
                    "example": problem_body(
                        "forbidden",
                        "POST /v1/models/reload is refused while the server has no API token: set "
                        "IMGCOMP_API_TOKEN on the server and send it as `Authorization: Bearer <token>`",
                    )
                }
            },
        },
        409: {
            "content": {
                MEDIA_TYPE: {
                    "example": problem_body(
                        "model-refused",
                        "version faces:3 cannot be served: model_store/faces/3/generator.safetensors does not "
                        "match the sha256 in model.json: the file was altered or corrupted; still serving "
                        "faces:1, faces:2",
                    )
                }
            }
        },
    },
)
async def reload_models(services: ServicesDep) -> ReloadAnswer:
    """A name resolves to its newest version from the answer on; searches already accepted finish on theirs.

    Needs the API token; refused (403) while the server has none, so a deployment is closed by default."""
    async with services.reloading:
        current, backend, metrics = services.store, services.backend, services.metrics
        serving = ", ".join(entry.key for entry in current.entries())
        try:
            prepared = await asyncio.to_thread(prepare_reload, services.settings, current, backend.models)
        except ReloadRefusedError as exc:
            metrics.model_reloads.labels(outcome="refused").inc()
            log.error("model reload refused, nothing changed: %s; still serving %s", exc, serving)
            raise Problem(
                "model-refused", f"{exc}; still serving {serving}", extra={"serving": serving.split(", ")}
            ) from None
        # no await from here on: requests see the old set or the new one, never a mix
        backend.add_models(prepared.runners)
        services.store = prepared.store
        backend.retire_models([entry.key for entry in prepared.removed])
        publish_model_info(metrics, prepared.added, prepared.removed)
        metrics.model_reloads.labels(outcome="changed" if prepared.changed else "unchanged").inc()
    answer = ReloadAnswer(
        changed=prepared.changed,
        loaded=[entry.key for entry in prepared.added],
        unloaded=[entry.key for entry in prepared.removed],
        serving=[entry.key for entry in prepared.store.entries()],
        default=prepared.store.resolve(None).key,
    )
    log.info(
        "model reload: loaded %s, unloaded %s; %s is the default, latest: %s",
        ", ".join(answer.loaded) or "nothing",
        ", ".join(answer.unloaded) or "nothing",
        answer.default,
        ", ".join(prepared.store.resolve(name).key for name in prepared.store.names()),
    )
    return answer
