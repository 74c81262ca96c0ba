"""The service's one settings object, read from `IMGCOMP_*` environment variables.

Validators reject unsafe or impossible values at start-up, so a misconfigured
container fails in its first second with a message naming the variable, not on
its first request.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import torch
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.engine.kinds import Limits
from app.engine.stepping import PLATEAU_EVERY, StepOptions, powers_of_two

_DEVICE = re.compile(r"^(cpu|cuda:(\d+))$")
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?$")

METRICS_PORT = 9464
# IMGCOMP_METRICS_PORT's value for /metrics on the service's own port
PUBLIC = "public"

Precision = Literal["auto", "fp32", "bf16", "fp16"]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]
Switch = Literal["auto", "on", "off"]


def _resolve_devices(value: str) -> tuple[str, ...]:
    """`auto` means every visible CUDA device, else the CPU; otherwise a comma list checked one by one."""
    if value.strip().lower() == "auto":
        count = torch.cuda.device_count()
        return tuple(f"cuda:{index}" for index in range(count)) if count else ("cpu",)
    devices = tuple(part.strip().lower() for part in value.split(",") if part.strip())
    if not devices:
        raise ValueError("no device given: use auto, cpu, or a comma list such as cuda:0,cuda:1")
    visible = torch.cuda.device_count()
    for device in devices:
        match = _DEVICE.match(device)
        if match is None:
            raise ValueError(f"unknown device {device!r}: use auto, cpu, or cuda:N (e.g. cuda:0,cuda:1)")
        if match.group(2) is not None and int(match.group(2)) >= visible:
            raise ValueError(f"{device} is not visible: this machine has {visible} CUDA device(s)")
    return devices


class Settings(BaseSettings):
    """Everything the service reads from its environment; defaults suit a laptop."""

    model_config = SettingsConfigDict(env_prefix="IMGCOMP_", frozen=True)

    model_store: Path = Path("model_store")
    devices: Annotated[tuple[str, ...], NoDecode] = ("auto",)
    default_model: str = "faces"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # auto: bf16 where the device computes it natively (CUDA compute capability 8.0+, a CPU with
    # AVX512-bf16 or AMX), fp32 elsewhere; resolved per device when the models load
    precision: Precision = "auto"
    # the whole request body, image and mask together
    max_upload_bytes: int = Field(default=20_000_000, ge=1024)
    # the whole request body must arrive within this many seconds of the request's start, else 408: a
    # completion holds a queue place from its first byte, so a trickled upload must not hold it for long
    upload_timeout_s: float = Field(default=60.0, gt=0)
    # width x height above which a decode is refused, read from the header before decoding
    max_image_pixels: int = Field(default=25_000_000, ge=64 * 64)
    # searches waiting for a device; beyond it requests get 503 with Retry-After
    queue_size: int = Field(default=64, ge=1)
    # request bodies (by Content-Length; one without counts as max_upload_bytes) of the completions admitted at
    # once; past it 503 + Retry-After before the body is read (half the Kubernetes manifest's 1 GiB /tmp)
    admission_bytes: int = Field(default=512_000_000, ge=1)
    # pixels of the uploads (image and mask, read from their headers before decoding) of the completions admitted
    # at once; past it 503 + Retry-After before decoding: three maximum-size uploads with their masks (450 MB
    # as 8-bit RGB; the working copies of decoding and blending, not yet measured, are several times that). A
    # request alone is always admitted, so one over a budget waits for an idle server instead of never running
    admission_pixels: int = Field(default=150_000_000, ge=1)
    # decode, queue wait and search together, after which a request gets 504; a request's own
    # `timeout` may be shorter, never longer
    request_timeout_s: float = Field(default=120.0, gt=0)
    # search slots (one per restart) a device steps together: its largest batch
    slots_per_device: int = Field(default=64, ge=1)
    # on shutdown, accepted searches may run this long before they are answered 503
    shutdown_grace_s: float = Field(default=30.0, ge=0)
    # on SIGTERM, readyz and new completions answer 503 for this long before the listener closes,
    # so a load balancer sees the replica leave before its connections are refused
    drain_notice_s: float = Field(default=2.0, ge=0)
    retry_after_s: int = Field(default=2, ge=1)
    # connections plus requests uvicorn serves at once; past it uvicorn itself answers a plain-text 503
    # before the app runs (the app's own door answers problem+json 503s well before this in normal overload)
    limit_concurrency: int = Field(default=512, ge=1)
    # unset: the measured defaults of the search's start (app.engine.search.DEFAULTS): from the
    # encoder's guess where the model has one, from a random z otherwise
    default_iterations: int | None = Field(default=None, ge=0)
    max_iterations: int = Field(default=2000, ge=1)
    default_restarts: int | None = Field(default=None, ge=1)
    max_restarts: int = Field(default=8, ge=1)
    # iterations without a `tolerance` share of improvement after which a restart stops early (the plateau);
    # unset: the search's own default (app.engine.search.SearchParams.patience)
    search_patience: int | None = Field(default=None, ge=1, le=100_000)
    # padded batch sizes of a step, a search's or a one-pass forward (comma list, ascending), so a compiled or
    # graph-captured step meets a few shapes; auto: 1, 2, 4, ... up to slots_per_device on CUDA, none on the CPU
    # (where padding only costs); none: every step at its exact slot count
    step_sizes: Annotated[tuple[int, ...] | None, NoDecode] = None
    # steps between the host's reads of which restarts plateaued (a device-to-host wait); a plateaued restart is
    # frozen on the device meanwhile, so the answer is the same for every value (app.engine.stepping)
    plateau_every: int = Field(default=PLATEAU_EVERY, ge=1, le=1000)
    # run every padded step size once before /readyz turns ready and before a reloaded version serves;
    # auto: on CUDA devices only
    warmup: Switch = "auto"
    # CUDA only: deterministic cuDNN algorithms and no TF32, so the same request in the same batch gives the
    # same bits; off: TF32 and cuDNN's fastest algorithm per shape (faster, last bits may vary run to run)
    deterministic: bool = False
    # several devices in this one process (one worker thread each, sharing one interpreter lock and one
    # post-processing pool; `serve` warns); off: `serve` runs one process per device (app.supervisor)
    several_devices: bool = False
    # PyTorch intra-op threads (unset: one per core). On a CPU shared with other busy processes,
    # OpenMP's spinning threads can make 2 threads ~100x slower than 1: measure and set it there.
    torch_threads: int | None = Field(default=None, ge=1)
    # threads that decode, resize, blend and encode, off the event loop and the device threads
    postprocess_threads: int = Field(default=2, ge=1)
    log_level: LogLevel = "info"
    # set: `POST /complete` and the admin routes need `Authorization: Bearer <token>`; unset: open
    # (fine on loopback or behind a gateway that authenticates)
    api_token: SecretStr | None = None
    # browser origins allowed to call the API (comma list, e.g. https://app.example.com); empty: no CORS
    # headers at all, so no web page can make its visitors' browsers submit jobs. `*` (any page) is refused
    # unless `cors_allow_any` says it is meant
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()
    cors_allow_any: bool = False
    # /metrics is served on this port of the same host address, not on the public one (9464: the port
    # Prometheus exporters conventionally use); `public`: on the service's own port, beside the API
    metrics_port: int | None = Field(default=METRICS_PORT, ge=1, le=65535)
    # true: /docs, /redoc and /openapi.json on the public port (off by default: a deployment shows no schema)
    docs_enabled: bool = False

    # models trained on aligned face crops: with `region=auto` (their default) a photo's faces are found,
    # framed as in training and completed one by one; a bare `faces` (or no model) picks among those of the
    # same kind by each face's size
    face_models: Annotated[tuple[str, ...], NoDecode] = ("faces", "faces-128", "faces-glcic")
    # faces restored per request at most (the rest get the classical fill and are reported)
    max_faces: int = Field(default=8, ge=1, le=64)
    # a face's crop square smaller than this (photo pixels) is left to the classical fill
    min_face_px: int = Field(default=32, ge=8)
    # the encoder's best guess must explain a face's known pixels this well (mean |difference| in [-1, 1]
    # units) for the box to count as a face; measured in docs/evaluation/faces-in-photos
    face_error_limit: float = Field(default=0.3, gt=0)
    # the store's framing network (`python -m training framing`), which corrects a damaged face's landmark
    # framing; empty: the landmarks' framing alone (measured in docs/evaluation/faces-framing)
    face_framer: str = "faces-framing"

    @field_validator("devices", mode="before")
    @classmethod
    def _parse_devices(cls, value: object) -> tuple[str, ...]:
        text = ",".join(value) if isinstance(value, list | tuple) else str(value)
        return _resolve_devices(text)

    @field_validator("step_sizes", mode="before")
    @classmethod
    def _parse_step_sizes(cls, value: object) -> tuple[int, ...] | None:
        if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
            return None
        if isinstance(value, str) and value.strip().lower() in ("", "none"):
            return ()
        parts = value if isinstance(value, list | tuple) else str(value).split(",")
        try:
            sizes = tuple(int(str(part).strip()) for part in parts if str(part).strip())
        except ValueError:
            raise ValueError(f"{value!r} is not a list of sizes: use auto, none, or e.g. 1,2,4,8,16,32,64") from None
        if any(size < 1 for size in sizes) or list(sizes) != sorted(set(sizes)):
            raise ValueError(f"{value!r}: sizes must be positive and ascending, e.g. 1,2,4,8,16,32,64")
        return sizes

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _parse_origins(cls, value: object) -> tuple[str, ...]:
        parts = value if isinstance(value, list | tuple) else str(value).split(",")
        origins = tuple(str(part).strip().rstrip("/") for part in parts if str(part).strip())
        for origin in origins:
            if origin != "*" and not _ORIGIN.match(origin):
                raise ValueError(
                    f"{origin!r} is not an origin: use scheme://host[:port] without a path, e.g. https://app.example.com"
                )
        return origins

    @field_validator("metrics_port", mode="before")
    @classmethod
    def _parse_metrics_port(cls, value: object) -> object:
        return None if isinstance(value, str) and value.strip().lower() == PUBLIC else value

    @field_validator("face_models", mode="before")
    @classmethod
    def _parse_face_models(cls, value: object) -> tuple[str, ...]:
        parts = value if isinstance(value, list | tuple) else str(value).split(",")
        return tuple(str(part).strip() for part in parts if str(part).strip())

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_log_level(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("model_store")
    @classmethod
    def _store_has_models(cls, value: Path) -> Path:
        if not value.is_dir():
            raise ValueError(f"{value} is not a folder: point IMGCOMP_MODEL_STORE at model_store/<name>/<version>/")
        if not any(value.glob("*/*/model.json")):
            raise ValueError(f"{value} holds no model (no <name>/<version>/model.json): train one or copy one in")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.precision == "fp16" and not all(device.startswith("cuda") for device in self.devices):
            raise ValueError("precision fp16 needs CUDA devices: use fp32 or bf16 on the CPU")
        if self.default_iterations is not None and self.default_iterations > self.max_iterations:
            raise ValueError(
                f"default_iterations {self.default_iterations} exceeds max_iterations {self.max_iterations}"
            )
        if self.default_restarts is not None and self.default_restarts > self.max_restarts:
            raise ValueError(f"default_restarts {self.default_restarts} exceeds max_restarts {self.max_restarts}")
        if self.metrics_port is not None and self.metrics_port == self.port:
            raise ValueError(
                f"metrics_port {self.metrics_port} is the service's own port: pick another, or set it to "
                f"{PUBLIC} to serve /metrics beside the API"
            )
        if "*" in self.cors_origins and not self.cors_allow_any:
            raise ValueError(
                "IMGCOMP_CORS_ORIGINS=* lets every web page make its visitors' browsers call this API: list the "
                "origins that may (https://app.example.com,...), or set IMGCOMP_CORS_ALLOW_ANY=true if any is meant"
            )
        if self.max_restarts > self.slots_per_device:
            raise ValueError(
                f"max_restarts {self.max_restarts} exceeds slots_per_device {self.slots_per_device}: "
                "a search with that many restarts could never be admitted"
            )
        if self.step_sizes and self.step_sizes[-1] > self.slots_per_device:
            raise ValueError(
                f"IMGCOMP_STEP_SIZES pads a step to {self.step_sizes[-1]} slots, above IMGCOMP_SLOTS_PER_DEVICE "
                f"{self.slots_per_device}: no size may exceed the slots a device holds"
            )
        if not (self.model_store / self.default_model).is_dir():
            raise ValueError(
                f"default model {self.default_model!r} is not in {self.model_store}: "
                "set IMGCOMP_DEFAULT_MODEL to one of its folders"
            )
        return self

    def process_per_device(self) -> bool:
        """Whether `serve` runs one process per device (its supervisor): several devices and no override.

        One process stepping several devices shares one interpreter lock and one post-processing pool among them.
        """
        return len(self.devices) > 1 and not self.several_devices

    def limits(self) -> Limits:
        """The budget a request's parameters are held to: the kinds read it (`app.engine.kinds`)."""
        return Limits(
            self.default_iterations, self.default_restarts, self.max_iterations, self.max_restarts, self.search_patience
        )

    def step_options(self, device: str) -> StepOptions:
        """How `device` steps its searches: the padded sizes and warm-up that `auto` gives it, the plateau reads."""
        cuda = device.startswith("cuda")
        sizes = (
            self.step_sizes if self.step_sizes is not None else (powers_of_two(self.slots_per_device) if cuda else ())
        )
        warm = self.warmup == "on" or (self.warmup == "auto" and cuda)
        return StepOptions(sizes=sizes, plateau_every=self.plateau_every, warm=warm)


def describe_errors(error: ValidationError) -> list[str]:
    """One line per invalid setting, named as the environment variable a person would fix."""
    lines = []
    for item in error.errors():
        field = "_".join(str(part) for part in item["loc"]).upper()
        name = f"IMGCOMP_{field}: " if field else ""
        lines.append(f"{name}{item['msg'].removeprefix('Value error, ')}")
    return lines
