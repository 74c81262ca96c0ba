"""`python -m app serve` with several devices: one child process per device on one port, one scrape for all,
a reload that reaches every child, a killed child started again, SIGTERM passed on, a device whose
children keep dying stops it non-zero, and children that outlive a killed supervisor stop on their own.

Two CPU "devices" (IMGCOMP_DEVICES=cpu,cpu) stand in for two GPUs. Which child answers a connection is
the kernel's choice, so a test picks one by stopping the other (SIGSTOP): a stopped process accepts nothing.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import app.serving as serving
import app.supervisor as supervisor
from app.__main__ import main
from tests.app.conftest import center_hole, encode, free_port, mask_png, serve_env
from tests.conftest import REPO, TINY
from training.checkpoint import save_checkpoint
from training.networks import Discriminator, Generator

DEADLINE_S = 120.0  # a child imports torch and loads the tiny model: seconds, on a busy 2-core machine
REQUESTS = 'imgcomp_requests_total{model="tiny",status="200"}'
TOKEN = "supervisor-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def store(make_tiny_store: Callable[..., Path]) -> Path:
    return make_tiny_store(("tiny",))


def _children(parent: int) -> set[int]:
    """The processes whose parent is `parent` (Linux /proc)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # exited while the folder was read
        if int(fields[1]) == parent:
            found.add(int(stat.parent.name))
    return found


def _until(condition: Callable[[], Any], what: str) -> Any:
    """Poll `condition` until it gives something truthy; fail after DEADLINE_S."""
    deadline = time.monotonic() + DEADLINE_S
    while not (result := condition()):
        assert time.monotonic() < deadline, f"{what} within {DEADLINE_S:.0f} s"
        time.sleep(0.1)
    return result


@contextmanager
def _serve(store: Path, **settings: str) -> Iterator[tuple[subprocess.Popen[bytes], str, str]]:
    """`python -m app serve` on two CPU devices; yields it, its URL and its metrics URL; kills what is left."""
    port, metrics_port = free_port(), free_port()
    env = serve_env(
        store, port, devices="cpu,cpu", metrics_port=str(metrics_port), drain_notice_s="0", api_token=TOKEN, **settings
    )
    # the metrics folder in the test's own temporary folder: a supervisor killed outright leaves it behind
    env["TMPDIR"] = str(store.parent)
    server = subprocess.Popen([sys.executable, "-m", "app", "serve"], cwd=REPO, env=env)
    try:
        yield server, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}"
    finally:
        for pid in _children(server.pid):
            os.kill(pid, signal.SIGKILL)
        if server.poll() is None:
            server.kill()
        server.wait()


@contextmanager
def _only(child: int, others: set[int]) -> Iterator[None]:
    """Every other child stopped, so that `child` takes every new connection."""
    for pid in others - {child}:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in others - {child}:
            os.kill(pid, signal.SIGCONT)


def _complete(url: str) -> None:
    """One completion on a fresh connection (a kept-alive one would stay with the child that accepted it)."""
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    hole = center_hole(32, 32)
    files = {"image": ("i.png", encode(image), "image/png"), "mask": ("m.png", mask_png(hole), "image/png")}
    answer = httpx.post(f"{url}/complete", files=files, data={"iterations": "3"}, headers=AUTH, timeout=DEADLINE_S)
    assert answer.status_code == 200, answer.text


def _ready(url: str) -> None:
    """Until readyz answers 200: refused until a child listens, then queued until one accepts."""

    def answered() -> bool:
        try:
            return httpx.get(f"{url}/readyz", timeout=DEADLINE_S).status_code == 200
        except httpx.TransportError:
            return False

    _until(answered, "readyz answered 200")


def _serves(url: str, key: str) -> bool:
    models = httpx.get(f"{url}/v1/models", timeout=DEADLINE_S).json()["models"]
    return key in [model["key"] for model in models]


def _scrape(metrics_url: str, sample: str) -> float:
    for line in httpx.get(f"{metrics_url}/metrics", timeout=10).text.splitlines():
        name, _, value = line.rpartition(" ")
        if name == sample:
            return float(value)
    raise AssertionError(f"{sample} is not exported")


def test_each_device_gets_a_process_on_one_port_one_scrape_counts_them_all_and_a_dead_one_comes_back(
    store: Path,
) -> None:
    with _serve(store) as (server, url, metrics_url):
        children = _until(lambda: len(found := _children(server.pid)) == 2 and found, "two children started")
        first, second = sorted(children)
        for child in (first, second):
            with _only(child, children):
                _ready(url)  # waits in the listener's queue until this child has loaded its model
                _complete(url)
        # one scrape of the supervisor's metrics port holds both children's counts
        assert _scrape(metrics_url, REQUESTS) == 2
        assert _scrape(metrics_url, 'imgcomp_live_slots{device="cpu"}') == 0

        os.kill(first, signal.SIGKILL)
        replacement = _until(lambda: (_children(server.pid) - children) or None, "a killed child started again")
        (third,) = replacement
        assert _children(server.pid) == {second, third}
        with _only(third, {second, third}):
            _ready(url)
            _complete(url)
        assert _scrape(metrics_url, REQUESTS) == 3  # the dead child's count stays in the sum

        # a new version, and a reload request that one child answers: the supervisor passes it on to the other
        save_checkpoint(store, "tiny", "2", Generator(TINY), Discriminator(TINY).eval(), TINY, {"training": {}})
        answer = httpx.post(f"{url}/v1/models/reload", headers=AUTH, timeout=DEADLINE_S)
        assert answer.status_code == 200 and answer.json()["loaded"] == ["tiny:2"], answer.text
        for child in (second, third):
            with _only(child, {second, third}):
                _until(lambda: _serves(url, "tiny:2"), f"process {child} serving tiny:2")

        server.send_signal(signal.SIGTERM)  # passed on: each child drains and exits 0
        assert server.wait(timeout=DEADLINE_S) == 0
        assert not _children(server.pid)


def test_a_device_whose_children_keep_dying_stops_the_supervisor_non_zero(store: Path) -> None:
    with _serve(store) as (server, _, _):
        seen = _until(lambda: len(found := _children(server.pid)) == 2 and found, "two children started")
        target = min(seen)
        for failure in range(1, supervisor.FAILURE_LIMIT + 1):
            os.kill(target, signal.SIGKILL)
            if failure < supervisor.FAILURE_LIMIT:
                (target,) = _until(lambda: (_children(server.pid) - seen) or None, f"restart {failure}")
                seen.add(target)
        assert server.wait(timeout=DEADLINE_S) == 1  # the other device's child was stopped too
        assert not _children(server.pid)


def test_one_device_is_one_process_and_several_in_one_process_warn(
    store: Path, clean_env: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    served: list[tuple[str, ...]] = []
    supervised: list[tuple[str, ...]] = []

    def serve_app(listener: Any, app: Any, settings: Any) -> bool:
        listener.close()
        served.append(settings.devices)
        return True

    def supervise(listener: Any, settings: Any) -> int:
        listener.close()
        supervised.append(settings.devices)
        return 0

    monkeypatch.setattr(serving, "serve_app", serve_app)
    monkeypatch.setattr(supervisor, "supervise", supervise)
    for name, value in {"MODEL_STORE": str(store), "DEFAULT_MODEL": "tiny", "METRICS_PORT": "public"}.items():
        monkeypatch.setenv(f"IMGCOMP_{name}", value)
    with caplog.at_level(logging.WARNING):
        for devices, several in (("cpu", "false"), ("cpu,cpu", "false"), ("cpu,cpu", "true")):
            monkeypatch.setenv("IMGCOMP_DEVICES", devices)
            monkeypatch.setenv("IMGCOMP_SEVERAL_DEVICES", several)
            assert main(["serve", "--port", str(free_port())]) == 0
    assert served == [("cpu",), ("cpu", "cpu")] and supervised == [("cpu", "cpu")]
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1 and "IMGCOMP_SEVERAL_DEVICES=true: one process steps cpu,cpu" in warnings[0]


def _running(pid: int) -> bool:
    """Whether `pid` is a process that has not exited (a zombie waiting for its parent counts as exited)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def test_children_stop_when_the_supervisor_is_killed(store: Path) -> None:
    with _serve(store) as (server, _, _):
        children = _until(lambda: len(found := _children(server.pid)) == 2 and found, "two children started")
        server.kill()
        server.wait()
        _until(lambda: not any(_running(pid) for pid in children), "both children gone after their supervisor")
