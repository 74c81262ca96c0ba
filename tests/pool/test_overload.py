"""Overload, short form (marker `load`; CI runs it): open-loop arrivals at twice the measured capacity for a few
seconds against a real server with a tiny model. The long form is scripts/overload.py (report in docs/overload)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from app.bench.overload import Payload, capacity, open_loop, summary, table
from tests.app.conftest import scrape, serve_subprocess
from training.masks import make_mask


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _payloads(faces: np.ndarray) -> list[Payload]:
    out = []
    for index in range(8):
        hole = make_mask("center", 64, np.random.default_rng(index)).astype(bool)
        face = faces[900 + index].copy()
        face[hole] = 128
        files = {"image": ("f.png", _png(face), "image/png"), "mask": ("m.png", _png(hole.astype(np.uint8) * 255), "")}
        out.append(Payload(files=files, data={"iterations": "150", "restarts": "1", "init": "random"}))
    return out


@pytest.mark.load
def test_twice_the_capacity_is_shed_at_the_door_and_the_rest_served_once(
    make_tiny_store: Callable[..., Path], faces: np.ndarray
) -> None:
    settings = {"queue_size": "4", "slots_per_device": "4", "max_restarts": "1", "max_iterations": "200"}
    with serve_subprocess(make_tiny_store(("tiny",)), **settings) as (server, url):
        payloads = _payloads(faces)
        measured = asyncio.run(capacity(url, payloads, clients=4, seconds=4))
        with httpx.Client(base_url=url, timeout=30) as http:
            served_before = scrape(http, 'imgcomp_requests_total{model="tiny",status="200"}')
            refused_before = scrape(http, 'imgcomp_rejections_total{reason="queue-full"}')
        run = asyncio.run(open_loop(url, payloads, rate=2 * measured, seconds=8, pid=server.pid))
        figures = summary(run)
        print(f"\n{table(figures, measured)}")
        with httpx.Client(base_url=url, timeout=30) as http:
            served = scrape(http, 'imgcomp_requests_total{model="tiny",status="200"}') - served_before
            refused = scrape(http, 'imgcomp_rejections_total{reason="queue-full"}') - refused_before
            assert scrape(http, 'imgcomp_live_slots{device="cpu"}') == 0 and scrape(http, "imgcomp_queue_depth") == 0
    assert figures["other"] == 0, [a for a in run.answers if a.status not in (200, 503)]
    assert figures["refused_503"] > 0 and figures["accepted_200"] > 0  # it was overloaded, and kept serving
    assert figures["503_with_retry_after"] == figures["refused_503"]
    # each accepted request answered exactly once: the server counts exactly what the clients received
    assert served == figures["accepted_200"] and refused == figures["refused_503"]
    # refused at the door, before any decode or search: faster than the typical accepted request
    assert figures["refused_p99_s"] < figures["accepted_p50_s"]
