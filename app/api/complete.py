"""`POST /complete`: an upload and its mask in, the restored image out.

The route only awaits futures: decoding and preparing run in the app's thread
pool, the search on a device worker, blending and encoding back in the pool.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
import logging
import time
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Annotated, Any, Literal

import numpy as np
import torch
from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel

from app.api.auth import require_token
from app.api.deps import BackendDep, ExecutorDep, FramerDep, LocatorDep, MetricsDep, SettingsDep, StoreDep
from app.api.faces import (
    FaceReport,
    Planned,
    Region,
    complete_faces,
    face_models,
    frame_faces,
    parse_faces,
    plan,
)
from app.api.png import Band, compress_known
from app.api.problems import UPLOAD_PROBLEMS, Problem, problem_example
from app.api.uploads import (
    MEDIA_TYPES,
    OutputFormat,
    Upload,
    begin_restoration,
    declared_pixels,
    decode_upload,
    encode_image,
    in_upload_space,
    restored_file,
)
from app.config import Settings
from app.engine.depth import EdgeFill, edge_fill
from app.engine.errors import EngineError, ParamsError
from app.engine.kinds import Job, Params, Report, RequestParameter, request_parameters
from app.engine.restore import Restoration
from app.engine.search import Init, SearchResult
from app.faces.locate import Located
from app.faces.paste import FaceFill, paste_faces
from app.faces.plan import Sized
from app.scheduler import DeadlineExceeded, QueueFullError, ShuttingDownError
from app.store import ModelEntry

log = logging.getLogger(__name__)
EdgeName = Literal["telea", "ns", "none"]  # app.engine.depth.EDGE_NAMES

# past its deadline the pool answers within a step; waiting this much longer only catches a step that hangs
_STUCK_STEP_SLACK_S = 2.0
# a decoded upload this small has its known rows compressed and its finish planned on the event loop (about
# 0.5 ms at 64x64): less than the hops to the thread pool, where the two ran beside the search contending with
# the pool's thread for the interpreter lock. Decoding and finishing stay off the loop at every size
_INLINE_PIXELS = 128 * 128


class Timings(BaseModel):
    """Seconds spent in each stage of one request."""

    decode_s: float
    locate_s: float  # finding the faces (region=auto with a face model; 0 otherwise)
    queue_s: float
    search_s: float
    encode_s: float
    total_s: float


class Completion(BaseModel):
    """The JSON answer (`Accept: application/json`), for programmatic clients."""

    image: str
    format: OutputFormat
    model: str
    init: Init | Literal["none"]  # none: a one-pass model, which has no start
    iterations: int
    loss: float | None  # None: a model that optimises no loss per request (a one-pass model)
    timings: Timings
    request_id: str | None = None
    region: Region = "whole"
    faces: list[FaceReport] = []  # region=auto: every face found or given, and what became of it
    # region=auto: `whole` when no face was restored (the whole-photo answer); `classical` for the hole's
    # pixels outside every restored face; None with region=whole
    fallback: Literal["whole", "classical"] | None = None


_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "model": Completion,
        "description": "The restored image at the upload's size (PNG unless `format` says otherwise), "
        "or JSON with the image in base64 when the request sends `Accept: application/json`.",
        "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
    },
    **UPLOAD_PROBLEMS,
    503: problem_example("queue-full", "all 64 queue places are taken: retry after the Retry-After seconds"),
    504: problem_example("timeout", "the search did not finish within 120 s: retry with fewer iterations"),
}


def _params(settings: Settings, entry: ModelEntry, sent: dict[str, Any]) -> Params:
    """The model's kind makes its parameters from the request's; one it does not take, or a budget over the
    server's maxima, is a 422 saying what to change, never a silent change."""
    try:
        return entry.served.params(sent, entry.facts, settings.limits())
    except ParamsError as error:
        raise Problem("invalid-parameter", str(error)) from None


def _check_timeout(settings: Settings, timeout: float | None) -> float:
    """The caller's deadline, or the server's; a longer one than the server allows is a 422, not a clamp."""
    if timeout is None:
        return settings.request_timeout_s
    if timeout > settings.request_timeout_s:
        raise Problem("invalid-parameter", f"timeout must be at most {settings.request_timeout_s:g} s, got {timeout:g}")
    return timeout


async def _client_gone(request: Request) -> None:
    """Returns when the client disconnects: once the body is read, the next ASGI message is the disconnect."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _await_search(request: Request, future: asyncio.Future[SearchResult], timeout: float) -> SearchResult:
    """The search's result; a client that leaves (or a wait past `timeout`) cancels it, freeing its slots.

    The pool answers DeadlineExceeded at the deadline itself; `timeout` is only the backstop for a
    step that never returns.
    """
    gone = asyncio.ensure_future(_client_gone(request))
    either: set[asyncio.Future[Any]] = {future, gone}
    try:
        await asyncio.wait(either, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if future.done():
        return future.result()
    future.cancel()
    if gone.done() and not gone.cancelled():
        raise Problem("client-gone", "the client closed the connection before the search finished")
    raise TimeoutError


def _settle(future: asyncio.Future[None]) -> None:
    """Mark `future` done, once (a search requeued after running out of memory is admitted again)."""
    if not future.done():
        future.set_result(None)


def _inline(fn: Any, *args: Any) -> asyncio.Future[Any]:
    """`fn(*args)` now, on the event loop, as a finished future: `run`'s stand-in for work smaller than a hop."""
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    try:
        future.set_result(fn(*args))
    except Exception as error:
        future.set_exception(error)
    return future


def _finish_faces(
    upload: Upload,
    faces: list[FaceFill],
    blend: Literal["poisson", "none"],
    edge: EdgeFill | None,
    output_format: OutputFormat,
    known: list[Band] | None,
    prefilled: np.ndarray,
) -> bytes:
    """`prefilled`: the locator's Telea pre-fill of the photo it saw, the classical fill where that photo is the
    upload's own pixels (not an sRGB copy of them)."""
    in_space = [FaceFill(in_upload_space(upload, face.generated), face.framing) for face in faces]
    method = edge.method if edge is not None else "telea"
    classical = prefilled if upload.srgb is None else None
    restored = paste_faces(upload.image, upload.hole, in_space, method, edge, blend, classical)
    return encode_image(restored, output_format, upload.icc_profile, known)


def _headers(entry: ModelEntry, report: Report, result: SearchResult, timings: Timings) -> dict[str, str]:
    stages = ", ".join(f"{stage.removesuffix('_s')};dur={seconds * 1000:.1f}" for stage, seconds in timings)
    return {
        "X-Model": entry.key,
        "X-Init": report.start,
        "X-Iterations": str(report.iterations),
        "X-Search-Seconds": f"{result.seconds:.4f}",
        "X-Batch-Slots": str(result.batch_slots),
        "X-Total-Seconds": f"{timings.total_s:.4f}",
        "Server-Timing": stages,
    }


def _face_headers(planned: list[Planned]) -> dict[str, str]:
    restored = [item for item in planned if item.report.status == "restored"]
    return {
        "X-Faces-Found": str(len(planned)),
        "X-Faces": str(len(restored)),
        "X-Face-Models": ",".join(item.report.model or "" for item in restored),
    }


def _json_answer(body: bytes, fields: dict[str, Any]) -> bytes:
    """The JSON answer's bytes, as JSONResponse renders them: run in the thread pool, off the event loop."""
    answer = Completion(image=base64.b64encode(body).decode("ascii"), **fields)
    return json.dumps(
        answer.model_dump(), ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode("utf-8")


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


async def complete(
    request: Request,
    settings: SettingsDep,
    store: StoreDep,
    backend: BackendDep,
    executor: ExecutorDep,
    locator: LocatorDep,
    framer: FramerDep,
    metrics: MetricsDep,
    image: Annotated[
        UploadFile,
        File(description="The photo: PNG, JPEG or WebP. Transparent pixels mark the hole when no `mask` is sent."),
    ],
    mask: Annotated[UploadFile | None, File(description="Same size as the image; white = fill, black = keep.")] = None,
    model: Annotated[
        str | None,
        Form(
            description="`name` (latest version) or `name:version`; default: the server's default model. "
            "Each model's kind takes its own parameters (`GET /v1/models` lists them; 422 for the others): "
            "a one-pass model (kind `glcic`, e.g. `faces-glcic`) completes in one forward pass and takes none.",
            examples=["faces", "faces:1", "faces-glcic"],
        ),
    ] = None,
    *,
    kind_parameters: dict[str, Any],  # the kinds' own form fields (see `router`), None where not sent
    seed: Annotated[int, Form(ge=0, le=2**63 - 1, description="Same seed, same upload: same result.")] = 0,
    blend: Annotated[Literal["poisson", "none"], Form(description="Poisson seam blending, or none.")] = "poisson",
    edge: Annotated[
        EdgeName,
        Form(
            description="Near the hole's edge (within 2 model pixels), a classical fill made at the photo's own "
            "size (`telea` or `ns`) blended into the generator's by depth, so thin scratches keep the photo's "
            "detail; `none`: the generator's fill everywhere."
        ),
    ] = "telea",
    output_format: Annotated[
        OutputFormat,
        Form(
            alias="format",
            description="Encoding of the answer: `png` (the default) and `webp` are lossless, so every known pixel "
            "comes back byte-identical to the upload; `jpeg` (quality 95) is lossy and smaller: known pixels then "
            "come back close to the upload's, not byte-identical.",
        ),
    ] = "png",
    timeout: Annotated[
        float | None,
        Form(gt=0, description="Seconds after which the search is abandoned with 504 (at most the server's limit)."),
    ] = None,
    region: Annotated[
        Region | None,
        Form(
            description="`auto` (the default for face models): find each face the hole touches, complete it in the "
            "framing the model was trained on (a bare `faces`, or no model, picks `faces` or `faces-128` by the "
            "face's size) and fill the rest of the hole classically; with no face found, the whole-photo answer. "
            "`whole`: the whole photo brought to the model's resolution. Other models: `whole` only."
        ),
    ] = None,
    faces: Annotated[
        str | None,
        Form(
            description="Face boxes `x,y,w,h;x,y,w,h` in photo pixels, for faces the locator misses "
            "(region=auto; replaces the locator's boxes).",
            examples=["120,80,96,96"],
        ),
    ] = None,
) -> Response:
    started = time.perf_counter()
    entry: ModelEntry = store.resolve(model)
    request.state.model = entry.name
    sent = kind_parameters | {"seed": seed}
    params = _params(settings, entry, sent)
    limit = _check_timeout(settings, timeout)
    family = face_models(settings, store, model, entry) if region != "whole" else None
    if region == "auto" and family is None:
        raise Problem(
            "invalid-parameter",
            f"region=auto needs a face model ({', '.join(settings.face_models)}); {entry.key} completes "
            "whole photos: leave region out or send region=whole",
        )
    if faces is not None and family is None:
        raise Problem("invalid-parameter", "faces= needs region=auto and a face model: leave it out, or pick one")
    image_data = await image.read()
    mask_data = await mask.read() if mask is not None else None
    # a body over 1 MB was spooled to /tmp: give the disk back now, not when the (long) search has answered
    for part in (image, mask):
        if part is not None:
            await part.close()
    # what decoding will hold, from the headers: past the server's pixel budget a 503 before any pixel is decoded
    request.state.admission.claim_pixels(declared_pixels(image_data) + declared_pixels(mask_data))

    def run(fn: Any, *args: Any) -> asyncio.Future[Any]:
        """`fn(*args)` in the app's thread pool, off the event loop."""
        return asyncio.wrap_future(executor.submit(fn, *args))

    upload: Upload = await run(decode_upload, image_data, mask_data, settings.max_image_pixels)
    decoded = time.perf_counter()
    del image_data, mask_data  # the encoded files are not needed again: only the decoded pixels wait for the search
    nearby = _inline if upload.hole.size <= _INLINE_PIXELS else run
    # without faces to look for, the whole photo goes to the model: on a large upload, brought to its resolution
    # in one pool thread while the rows the hole does not touch (which the answer shares with the upload) are
    # compressed in the other; the compression then runs on through the search
    beginning = nearby(begin_restoration, upload, entry.resolution) if family is None else None
    compressing = nearby(compress_known, upload.image, upload.hole) if output_format == "png" else None
    try:
        restoration: Restoration | None = await beginning if beginning is not None else None
    except BaseException:
        if compressing is not None:
            compressing.cancel()  # nobody will wait for it
        raise
    planned: list[Planned] = []
    found: Located | None = None
    if family is not None:
        given = parse_faces(faces, upload.hole.shape, settings.max_faces)
        found = await run(locator.locate, upload.model_image, upload.hole, given)
        planned = plan(settings, found.faces, upload.hole, family)
        metrics.face_locate.observe(time.perf_counter() - decoded)
    located = time.perf_counter() if family is not None else decoded  # preparing counts in queue_s, as before

    # a photo's faces send many one-step framing jobs: at most a quarter of the queue at a time, so one
    # request's faces never fill the queue on their own
    share = asyncio.Semaphore(max(1, settings.queue_size // 4))

    def submit(key: str, job: Any, on_admit: Callable[[], None] | None = None) -> Coroutine[Any, Any, SearchResult]:
        """Hands `job` to the pool now; what it returns waits for the result."""
        remaining = max(limit - (time.perf_counter() - started), 0.0)
        future = backend.submit(key, job, timeout=remaining, on_admit=on_admit)
        request.state.admission.release()  # its queue place is now the pool's to count
        return _await_search(request, future, remaining + _STUCK_STEP_SLACK_S)

    async def search(key: str, job: Any) -> SearchResult:
        async with share:
            return await submit(key, job)

    def face_job(sized: Sized, target: torch.Tensor, hole: torch.Tensor) -> Job:
        face_entry = store.resolve(sized.key)
        return face_entry.served.job(target, hole, _params(settings, face_entry, sent))

    edge_setting = edge_fill(edge)
    try:
        await frame_faces(planned, upload.model_image, upload.hole, run, search, settings.face_error_limit, framer)
        fills, results = await complete_faces(planned, search, face_job)
        if fills:
            searched = time.perf_counter()
            known = await compressing if compressing is not None else None
            assert found is not None  # faces were restored, so they were located
            finishing = run(_finish_faces, upload, fills, blend, edge_setting, output_format, known, found.prefilled)
            # one figure for the headers and the JSON answer: the faces' searches ran side by side
            result = SearchResult(
                generated=results[0].generated,
                loss=float(np.mean([r.loss for r in results])),
                iterations=max(r.iterations for r in results),
                seconds=max(r.seconds for r in results),
            )
        else:
            if restoration is None:
                restoration = await nearby(begin_restoration, upload, entry.resolution)
            # what finishing needs from the upload alone is made while the search runs (on a small upload, on
            # the event loop while the pool's thread steps), from the moment it holds its slots: made beside the
            # admission, the two took turns for the interpreter lock (1 ms at 64x64). A search that will queue
            # behind others has it made during its wait.
            admitted = asyncio.get_running_loop().create_future()
            queued = backend.waiting > 0
            waiting = asyncio.ensure_future(
                submit(entry.key, restoration.job(entry.served, params), partial(_settle, admitted))
            )
            try:
                if not queued:
                    await asyncio.wait((admitted, waiting), return_when=asyncio.FIRST_COMPLETED)
                planning = nearby(restoration.plan, blend, edge_setting)  # raises only when awaited, after the search
                result = await waiting
            finally:
                waiting.cancel()  # a no-op once it has answered; otherwise nobody waits for it any more
            searched = time.perf_counter()
            known = await compressing if compressing is not None else None
            finishing = run(restored_file, upload, restoration, result.generated, await planning, output_format, known)
    except (DeadlineExceeded, TimeoutError):
        raise Problem(
            "timeout", f"the search did not finish within {limit:g} s: retry later or with fewer iterations"
        ) from None
    except (Problem, EngineError, QueueFullError, ShuttingDownError):
        raise
    except Exception as error:  # the device failed this search's batch: a 500 that keeps the connection open
        log.error("the search of request %s failed on its device", request.state.request_id, exc_info=error)
        raise Problem(
            "internal-error", "the search failed on its device: retry, and report the request_id if it persists"
        ) from None
    for item in planned:
        metrics.faces.labels(outcome=item.report.status).inc()
    # blending and encoding answer within the same deadline; a thread cannot be stopped, so one past it
    # finishes in the background while the client already has its 504
    try:
        body = await asyncio.wait_for(finishing, max(limit - (searched - started), 0.0))
    except TimeoutError:
        raise Problem(
            "timeout", f"blending and encoding did not finish within the {limit:g} s deadline: send a smaller image"
        ) from None
    done = time.perf_counter()

    timings = Timings(
        decode_s=decoded - started,
        locate_s=located - decoded,
        queue_s=max(0.0, searched - located - result.seconds),
        search_s=result.seconds,
        encode_s=done - searched,
        total_s=done - started,
    )
    report = entry.served.report(params, result)
    headers = _headers(entry, report, result, timings)
    if family is not None:
        headers.update(_face_headers(planned))
    if _wants_json(request):
        fields = {
            "format": output_format,
            "model": entry.key,
            "init": report.start,
            "iterations": report.iterations,
            "loss": report.loss,
            "timings": timings,
            "request_id": getattr(request.state, "request_id", None),
            "region": "auto" if family is not None else "whole",
            "faces": [item.report for item in planned],
            "fallback": None if family is None else ("classical" if fills else "whole"),
        }
        # base64 and JSON of the whole image take tens of milliseconds for a large one: not on the event loop
        return Response(await run(_json_answer, body, fields), media_type="application/json", headers=headers)
    return Response(body, media_type=MEDIA_TYPES[output_format], headers=headers)


def _form_field(parameter: RequestParameter, kinds: list[str]) -> inspect.Parameter:
    """The form field of one kind parameter: its type, least value and description, and which kinds take it."""
    description = f"{parameter.description} Models of kind {', '.join(kinds)} take it (422 from the others)."
    examples = None if parameter.example is None else [parameter.example]
    field = Form(ge=parameter.minimum, description=description, examples=examples)
    annotation = Annotated[parameter.annotation | None, field]  # type: ignore[name-defined]
    return inspect.Parameter(parameter.name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)


def _kind_form() -> Callable[..., Coroutine[Any, Any, dict[str, Any]]]:
    """A dependency that reads every registered kind's request parameters from the form, None where not sent."""

    async def sent(**values: Any) -> dict[str, Any]:  # a coroutine: run on the event loop, not in a thread
        return values

    fields = [_form_field(parameter, kinds) for parameter, kinds in request_parameters().values()]
    sent.__signature__ = inspect.Signature(fields)  # type: ignore[attr-defined]
    return sent


def router() -> APIRouter:
    """`POST /complete`, with a form field for each request parameter of the kinds registered now.

    The kinds own their parameters (`app.engine.kinds.RequestParameter`): a new kind with its own
    parameter gets its field, its validation and its OpenAPI entry here without an edit.
    """
    signature = inspect.signature(complete)
    kind_form = Annotated[dict[str, Any], Depends(_kind_form())]
    fields = [
        field.replace(annotation=kind_form) if field.name == "kind_parameters" else field
        for field in signature.parameters.values()
    ]

    async def endpoint(**arguments: Any) -> Response:
        return await complete(**arguments)

    endpoint.__signature__ = signature.replace(parameters=fields)  # type: ignore[attr-defined]
    routes = APIRouter(tags=["completion"])
    routes.add_api_route(
        "/complete",
        endpoint,
        methods=["POST"],
        name="complete",
        response_class=Response,
        responses=_RESPONSES,
        summary="Restore the masked part of a photo",
        dependencies=[Depends(require_token)],
    )
    return routes
