"""Prometheus collectors for the service, on a registry owned by one app.

A per-app `CollectorRegistry` (not the process-global one) lets tests and the
bench build many apps in one process without duplicate-metric errors. Names
are a contract with the Grafana dashboard: base units, `_total` counters,
labels of low cardinality only (model, device, status, reason).

Under `serve`'s supervisor (one process per device) every process writes its
values to `PROMETHEUS_MULTIPROC_DIR` and a scrape reads them all back
(`aggregate`): counters and histograms add up, and each gauge says how its
processes' values combine.
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector

CONTENT_TYPE = CONTENT_TYPE_LATEST

# A search takes from tens of milliseconds (tiny model, few iterations) to minutes (CPU, large budget).
_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 60, 120, 300)
_STEP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)
_SLOT_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
_ITERATION_BUCKETS = (0, 1, 10, 25, 50, 100, 200, 400, 600, 800, 1000, 1500, 2000, 5000)

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess() -> bool:
    """Whether this process's values live in the supervisor's shared folder (prometheus_client reads it at import)."""
    return MULTIPROC_DIR in os.environ


def aggregate(folder: Path) -> CollectorRegistry:
    """A registry that, scraped, reads every process's values in `folder` (live ones' gauges, everyone's counts)."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(folder))
    return registry


class Metrics:
    """Every collector the service exports, registered on its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "imgcomp_requests", "Completion requests by model and HTTP status.", ["model", "status"], registry=r
        )
        self.request_duration = Histogram(
            "imgcomp_request_duration_seconds",
            "Completion request latency from the first byte read to the response, by model.",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_wait = Histogram(
            "imgcomp_queue_wait_seconds",
            "Time a search waited for a device before its first step.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "imgcomp_queue_depth", "Searches waiting for a device.", registry=r, multiprocess_mode="livesum"
        )
        self.live_slots = Gauge(
            "imgcomp_live_slots",
            "Searches (restarts included) running on a device now.",
            ["device"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.slots_per_step = Histogram(
            "imgcomp_slots_per_step",
            "Search slots stepped together in one forward/backward (the batch size).",
            buckets=_SLOT_BUCKETS,
            registry=r,
        )
        self.step_duration = Histogram(
            "imgcomp_step_duration_seconds",
            "Wall time of one search step on a device.",
            ["device"],
            buckets=_STEP_BUCKETS,
            registry=r,
        )
        self.iterations_per_request = Histogram(
            "imgcomp_iterations_per_request",
            "Search iterations a request actually ran (early stop makes it less than its budget), "
            "by where it started (encoder guess or random z; 0 = the encoder's one-pass answer; "
            "none = a one-pass model, always 0).",
            ["init"],
            buckets=_ITERATION_BUCKETS,
            registry=r,
        )
        self.step_failures = Counter(
            "imgcomp_step_failures", "Search steps that raised (their batch failed), by device.", ["device"], registry=r
        )
        self.out_of_memory = Counter(
            "imgcomp_out_of_memory_steps",
            "Search steps that ran out of device memory: their searches went back to the queue and the model's "
            "slot cap on that device was lowered, by device and model.",
            ["device", "model"],
            registry=r,
        )
        self.slot_cap = Gauge(
            "imgcomp_slot_cap",
            "The most slots a model may hold on a device, after its steps ran out of memory there (exported once "
            "lowered; otherwise the device's slot budget applies).",
            ["device", "model"],
            registry=r,
            multiprocess_mode="livemin",
        )
        self.worker_restarts = Counter(
            "imgcomp_worker_restarts",
            "Device worker loops restarted after an unexpected error.",
            ["device"],
            registry=r,
        )
        self.rejections = Counter(
            "imgcomp_rejections", "Requests refused before or during a search, by reason.", ["reason"], registry=r
        )
        self.model_info = Gauge(
            "imgcomp_model_info",
            "Model versions loaded and servable (value 1; a reload adds and removes series).",
            ["model", "version", "resolution", "dataset"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.model_reloads = Counter(
            "imgcomp_model_reloads",
            "Model store rescans (POST /v1/models/reload) by outcome: changed, unchanged, refused.",
            ["outcome"],
            registry=r,
        )
        self.face_locate = Histogram(
            "imgcomp_face_locate_seconds",
            "Time to find the faces of one photo (detector on the upload and its pre-fill, landmarks).",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=r,
        )
        self.faces = Counter(
            "imgcomp_faces",
            "Faces found in photos with region=auto, by outcome: restored, or why not (too-small, not-a-face, "
            "untouched, over-the-cap).",
            ["outcome"],
            registry=r,
        )
        self.device_info = Gauge(
            "imgcomp_device_info",
            "Devices with a worker (value 1).",
            ["device", "name"],
            registry=r,
            multiprocess_mode="livemax",
        )
        # what a scrape reads: every process's values under the supervisor, else this registry's
        self.exposed = aggregate(Path(os.environ[MULTIPROC_DIR])) if multiprocess() else r

    def render(self) -> bytes:
        """The exposed registry in Prometheus text exposition format."""
        return generate_latest(self.exposed)
