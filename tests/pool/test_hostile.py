"""The hostile-load harness (app.bench.hostile; the long form is scripts/hostile_load.py, report in docs/overload) with
tiny numbers against a real server with a tiny model: it sees the answers the service gives, 401 for clients without
the token before their bodies are in, 200 for those with it, 503 + Retry-After past the pixel budget, and it measures
the bytes a process holds in a folder, deleted files included. No timing is asserted."""

from __future__ import annotations

import asyncio
import io
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from app.bench.hostile import burst, burst_summary, hostile_summary, spool_bytes, unauthorised_load
from app.bench.overload import Payload
from tests.app.conftest import serve_subprocess

TOKEN = "hostile-test-token"


def _payload(image: np.ndarray, data: dict[str, str]) -> Payload:
    hole = np.zeros(image.shape[:2], np.uint8)
    hole[16:48, 16:48] = 255
    files = {}
    for name, pixels in (("image", image), ("mask", hole)):
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        files[name] = (f"{name}.png", buffer.getvalue(), "image/png")
    return Payload(files=files, data=data)


def test_spool_bytes_counts_a_deleted_file_the_process_still_holds(tmp_path: Path) -> None:
    (tmp_path / "left.bin").write_bytes(b"x" * 50_000)
    with tempfile.TemporaryFile(dir=tmp_path) as spooled:  # unlinked at once, as a spooled upload is
        spooled.write(b"y" * 200_000)
        spooled.flush()
        held = spool_bytes(os.getpid(), tmp_path)
    assert held >= 250_000
    assert spool_bytes(os.getpid(), tmp_path) < held  # closed: only the named file is left


def test_clients_without_the_token_get_401_before_their_bodies_and_the_others_200(
    make_tiny_store: Callable[..., Path], faces: np.ndarray, tmp_path: Path
) -> None:
    payloads = [_payload(faces[index], {"iterations": "3"}) for index in range(4)]
    with serve_subprocess(make_tiny_store(("tiny",)), api_token=TOKEN) as (server, url):
        run = asyncio.run(
            unauthorised_load(
                url,
                payloads,
                TOKEN,
                pid=server.pid,
                spool=tmp_path,
                unauthorised=4,
                authorised=2,
                seconds=1.5,
                body_bytes=2_000_000,
                trickle_bytes_per_s=200_000,
                pause_s=0.2,
            )
        )
    figures = hostile_summary(run)
    assert run.attempts and {a.client for a in run.attempts} == {0, 1, 2, 3}
    assert {a.status for a in run.attempts} == {401}, run.attempts
    assert all(a.body_sent < run.body_bytes for a in run.attempts)  # answered before the body was in
    assert run.completions and {c.status for c in run.completions} == {200}, run.completions
    assert figures["attempts_401"] == len(run.attempts) and figures["completions_200"] == len(run.completions)
    assert run.samples and all(s.rss_mib > 0 for s in run.samples)


def test_a_burst_past_the_pixel_budget_is_answered_200_or_503_with_retry_after(
    make_tiny_store: Callable[..., Path],
) -> None:
    flat = np.full((64, 64, 3), 118, np.uint8)
    # each search lasts thousands of steps (no plateau stop), so the two admitted hold their pixels while the rest
    # arrive; the budget is two requests' image and mask
    payload = _payload(flat, {"iterations": "2000", "restarts": "1", "init": "random"})
    settings = {
        "api_token": TOKEN,
        "admission_pixels": str(2 * 2 * 64 * 64),
        "max_iterations": "2000",
        "max_restarts": "1",
        "search_patience": "100000",
        "request_timeout_s": "300",
    }
    with serve_subprocess(make_tiny_store(("tiny",)), **settings) as (server, url):
        run = asyncio.run(burst(url, payload, 10, TOKEN, pid=server.pid))
    figures = burst_summary(run)
    assert len(run.answers) == 10
    assert {a.status for a in run.answers} <= {200, 503}, run.answers
    assert {a.reason for a in run.answers} <= {"ok", "queue", "pixels"}, run.answers
    assert figures["ok_200"] >= 1 and figures["reason_pixels"] >= 1, run.answers
    assert figures["503_with_retry_after"] == figures["refused_503"]
    assert run.samples and run.peak_rss_mib >= max(s.rss_mib for s in run.samples) - 1
