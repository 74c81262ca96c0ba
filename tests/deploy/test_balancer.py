"""The balancer (deploy/balancer/haproxy.cfg): HAProxy's own check, then the real HAProxy in front of a real server.

The live runs rewrite only the addresses (a loopback port instead of compose's DNS name `app`); every
balancing, checking and retry rule is the file's own. `scripts/test-tools.sh` (run by `make test`)
installs Debian's haproxy where it is missing.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.app.conftest import center_hole, damaged, encode, free_port, mask_png, serve_subprocess

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "deploy" / "balancer" / "haproxy.cfg"


def _haproxy() -> str:
    path = shutil.which("haproxy") or next((p for p in ("/usr/sbin/haproxy",) if Path(p).is_file()), None)
    if path is None:
        pytest.skip("haproxy is not installed (scripts/test-tools.sh installs Debian's package as root)")
    return path


def _directives(section: str) -> list[str]:
    """The lines of one `backend`/`frontend`/`defaults` section of the file, without comments."""
    text = CONFIG.read_text()
    match = re.search(rf"^{section}\n(.*?)(?=^\S|\Z)", text, re.M | re.S)
    assert match is not None, section
    return [line.split("#", 1)[0].strip() for line in match.group(1).splitlines() if line.split("#", 1)[0].strip()]


def test_the_balancer_config_passes_haproxy_check() -> None:
    result = subprocess.run([_haproxy(), "-c", "-f", CONFIG], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Configuration file is valid" in result.stdout + result.stderr
    assert "WARNING" not in result.stdout + result.stderr


def test_the_balancer_spreads_by_least_connections_and_checks_readiness() -> None:
    backend = _directives("backend replicas")
    assert "balance leastconn" in backend
    assert "http-check send meth GET uri /readyz" in backend and "http-check expect status 200" in backend
    default_server = next(line for line in backend if line.startswith("default-server"))
    # passive checks: connection errors on live traffic take a replica out before its next check
    assert "observe layer4" in default_server and "on-error mark-down" in default_server
    # replicas are found by compose's DNS name, so `--scale app=N` needs no edit
    assert any(re.fullmatch(r"server-template app \d+ app:8000", line) for line in backend)
    defaults = _directives("defaults")
    assert "retry-on conn-failure empty-response 503" in defaults and "option redispatch 1" in defaults
    # no upload limit of its own: the service's IMGCOMP_MAX_UPLOAD_BYTES decides (413 problem+json)
    assert not re.search(r"req\.body_size|content-length|maxlen", CONFIG.read_text(), re.I)


def _local_config(tmp_path: Path, server_port: int) -> tuple[Path, int, int]:
    """The repo's config with loopback addresses: one server on `server_port`, free ports for the balancer."""
    lb_port, stats_port = free_port(), free_port()
    text = CONFIG.read_text()
    text = re.sub(r"^resolvers docker\n.*?(?=^\S)", "", text, flags=re.M | re.S)
    text = text.replace(" resolvers docker resolve-prefer ipv4 init-addr none", "")
    text = re.sub(r"server-template app \d+ app:8000", f"server app1 127.0.0.1:{server_port}", text)
    text = text.replace("bind :8080", f"bind 127.0.0.1:{lb_port}").replace("bind :8404", f"bind 127.0.0.1:{stats_port}")
    path = tmp_path / "haproxy.cfg"
    path.write_text(text)
    return path, lb_port, stats_port


@contextmanager
def _balancer(tmp_path: Path, server_port: int) -> Iterator[str]:
    config, lb_port, _ = _local_config(tmp_path, server_port)
    process = subprocess.Popen([_haproxy(), "-db", "-f", str(config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{lb_port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, process.communicate()[0].decode()
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the balancer did not reach the server within 20 s"
            time.sleep(0.1)
        yield url
    finally:
        process.kill()
        process.wait()


def _upload(face: np.ndarray, padding: int = 0) -> dict[str, tuple[str, bytes]]:
    hole = center_hole(*face.shape[:2])
    # a PNG may carry any amount of ancillary data after its image: a big but valid upload
    image = encode(damaged(face, hole)) + b"\0" * padding
    return {"image": ("face.png", image), "mask": ("m.png", mask_png(hole))}


@pytest.fixture
def store(make_tiny_store: Callable[..., Path]) -> Path:
    return make_tiny_store(("tiny",))


def test_through_the_real_balancer(store: Path, tmp_path: Path, faces: np.ndarray) -> None:
    """Completions pass, bodies up to the service's limit pass, its 413 and its drain's Retry-After come back."""
    limit = 3_000_000
    with (
        serve_subprocess(store, max_upload_bytes=str(limit), drain_notice_s="8", default_iterations="2") as (
            server,
            url,
        ),
        _balancer(tmp_path, int(url.rsplit(":", 1)[1])) as lb,
        httpx.Client(base_url=lb, timeout=60) as http,
    ):
        answer = http.post("/complete", files=_upload(faces[0]))
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
        assert answer.headers["X-Model"] == "tiny:1"

        near_limit = http.post("/complete", files=_upload(faces[1], padding=limit - 100_000))
        assert near_limit.status_code == 200, near_limit.text
        over = http.post("/complete", files=_upload(faces[1], padding=limit + 100_000))
        assert over.status_code == 413 and over.headers["content-type"] == "application/problem+json"
        assert over.json()["type"] == "urn:imgcomp:problem:upload-too-large"

        # SIGTERM: the replica answers 503 with Retry-After for its drain notice; the balancer passes
        # it on (or, once its readiness check has taken the only replica out, answers its own)
        server.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        draining = http.post("/complete", files=_upload(faces[2]))
        assert draining.status_code == 503, draining.text
        assert draining.headers["content-type"] == "application/problem+json"
        assert int(draining.headers["Retry-After"]) >= 1
        server.wait(30)
        gone = http.post("/complete", files=_upload(faces[3]))
        assert gone.status_code == 503 and gone.headers["Retry-After"] == "2"
        assert gone.json()["type"] == "urn:imgcomp:problem:not-ready"
