"""The malformed-upload corpus against one real uvicorn with a tiny model: no 5xx, every refusal its
documented problem, every 200 the right picture, memory bounded, and a valid request served after each."""

from __future__ import annotations

import io
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.app.conftest import good_request, serve_subprocess
from tests.corpus import uploads
from tests.corpus.uploads import Case


def _rss_kib(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


def _judge(case: Case, response: httpx.Response) -> str | None:
    """None when the answer is one the case allows and is well formed, else what is wrong."""
    if response.status_code == 200:
        if (200, None) not in case.allowed:
            return f"200, expected one of {sorted(case.allowed, key=str)}"
        image = np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))
        shape = case.upright.shape[:2] if case.upright is not None else case.shape
        if shape is not None and image.shape[:2] != tuple(shape):
            return f"200 of {image.shape[:2]}, expected {shape}"
        if case.upright is not None and case.hole is not None:
            known = ~case.hole
            if not np.array_equal(image[known], case.upright[known]):
                return "200 but known pixels changed"
        return None
    if response.headers.get("content-type") != "application/problem+json":
        return f"{response.status_code} with {response.headers.get('content-type')}: {response.text[:200]}"
    body = response.json()
    reason = body["type"].removeprefix("urn:imgcomp:problem:")
    if (response.status_code, reason) not in case.allowed:
        return f"{response.status_code} {reason} ({body['detail']}), expected one of {sorted(case.allowed, key=str)}"
    if len(body["detail"]) < 20 or body["status"] != response.status_code:
        return f"an unhelpful problem: {body}"
    return None


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_every_case_gets_its_documented_answer_and_the_server_keeps_serving(
    make_tiny_store: Callable[..., Path], faces: np.ndarray
) -> None:
    cases = uploads.build(faces[300])
    assert len(cases) >= 200
    settings = {
        "max_upload_bytes": str(uploads.MAX_UPLOAD_BYTES),
        "max_image_pixels": str(uploads.MAX_IMAGE_PIXELS),
        "max_iterations": str(uploads.MAX_ITERATIONS),
        "max_restarts": str(uploads.MAX_RESTARTS),
        "request_timeout_s": str(uploads.REQUEST_TIMEOUT_S),
        "default_iterations": "2",
        "default_restarts": "1",
    }
    failures: list[str] = []
    outcomes: dict[str, Counter[str]] = defaultdict(Counter)
    with serve_subprocess(make_tiny_store(("tiny",)), **settings) as (server, url):
        with httpx.Client(base_url=url, timeout=60) as http:
            assert good_request(http, faces[301]).status_code == 200
            start = _rss_kib(server.pid)
            for case in cases:
                response = case.send(http)
                problem = _judge(case, response)
                reason = response.json()["type"].rsplit(":", 1)[1] if response.status_code != 200 else "ok"
                outcomes[case.kind][f"{response.status_code} {reason}"] += 1
                if problem is not None:
                    failures.append(f"[{case.kind}] {case.name}: {problem}")
                after = good_request(http, faces[302])
                if after.status_code != 200:
                    failures.append(f"[{case.kind}] {case.name}: the next valid request got {after.status_code}")
            end = _rss_kib(server.pid)
    print(
        f"\n{len(cases)} cases; server RSS {start['VmRSS'] / 1024:.0f} -> {end['VmRSS'] / 1024:.0f} MiB, "
        f"peak {end['VmHWM'] / 1024:.0f} MiB"
    )
    for kind, counts in outcomes.items():
        print(f"  {kind:16s} " + ", ".join(f"{count} x {outcome}" for outcome, count in sorted(counts.items())))
    assert not failures, "\n".join(failures)
    # the largest image the limits admit is 4 Mpx: its decode, hole and blend fit well inside 1.5 GiB
    assert end["VmHWM"] < 1.5 * 1024 * 1024, end
