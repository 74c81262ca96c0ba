"""`serve` with several devices: one process per device on one listening socket, restarted if it dies.

One process stepping several GPUs runs every device's worker, the event loop and the post-processing pool
under one interpreter lock, so the host work of one device's answers holds up the others'. Here each device
gets its own process (`app.child`, `IMGCOMP_DEVICES` set to that one device) that inherits the socket this
process bound: the kernel hands each connection to one of the processes accepting on it, so the host still
has one port, one container and one balancer entry, whatever its number of GPUs.

Metrics: every child writes its values to one folder (prometheus_client's multiprocess mode) and this process
serves the sum of them on the metrics port. SIGTERM and SIGINT are passed on to every child, which drains as
a lone `serve` does, and SIGHUP too, on which every child reloads the model store (app.relay); a child that
dies otherwise is started again, unless its device's children keep dying.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from prometheus_client import start_http_server
from prometheus_client.multiprocess import mark_process_dead

from app.config import Settings
from app.metrics import MULTIPROC_DIR, aggregate

log = logging.getLogger(__name__)

# a device whose child died this many times in a row, each within STABLE_S of its start, stops the supervisor
FAILURE_LIMIT = 3
# a child that served this long before it died starts its device's count of failures again
STABLE_S = 300.0
# how often the supervisor looks for a child that exited
POLL_S = 0.2
# a child's exit status for settings or a model store it cannot serve: no restart would help
UNSERVABLE = 2


@dataclass
class Child:
    """One device's serving process, and how many of that device's children died quickly before it."""

    device: str
    process: subprocess.Popen[bytes]
    started: float
    failures: int


def supervise(listener: socket.socket, settings: Settings) -> int:
    """Serve every device of `settings` in a child of its own until a signal stops them (0) or they keep failing.

    Returns 0 when every child exited cleanly after SIGTERM or SIGINT, 2 when a child could not start on its
    settings or store, 1 when a device's child kept dying or a child did not stop cleanly.
    """
    folder = Path(tempfile.mkdtemp(prefix="imgcomp-metrics-"))
    exporter = None
    try:
        if settings.metrics_port is not None:
            exporter, _ = start_http_server(settings.metrics_port, addr=settings.host, registry=aggregate(folder))
            log.info("metrics of every device's process on http://%s:%d/metrics", settings.host, settings.metrics_port)
        return Supervisor(listener, settings, folder).run()
    finally:
        if exporter is not None:
            exporter.shutdown()
            exporter.server_close()
        listener.close()
        shutil.rmtree(folder, ignore_errors=True)


class Supervisor:
    """Starts, watches and restarts one child per device; passes stop signals on to them."""

    def __init__(self, listener: socket.socket, settings: Settings, folder: Path) -> None:
        self.listener = listener
        self.settings = settings
        self.folder = folder
        self.children: list[Child] = []
        self.stopping = False
        # signals received and not yet passed on: the handler only notes them, so that a child started while
        # one arrives is not missed
        self.pending: list[int] = []
        self.forwarded: set[int] = set()
        self.outcome = 0

    def run(self) -> int:
        """Until every child has exited: restart the ones that die unasked, then say how it ended."""
        for handled in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(handled, self._forward)
        log.info("one process per device: %s", ", ".join(self.settings.devices))
        self.children = [self._start(device, failures=0) for device in self.settings.devices]
        while self.children:
            while self.pending:
                received = self.pending.pop(0)
                if received == signal.SIGHUP:
                    self._pass_on(received)
                else:
                    self._stop(received)
            for child in [child for child in self.children if child.process.poll() is not None]:
                self.children.remove(child)
                self._exited(child)
            time.sleep(POLL_S)
        return self.outcome

    def _start(self, device: str, failures: int) -> Child:
        fd = self.listener.fileno()
        env = os.environ | {
            "IMGCOMP_DEVICES": device,
            "IMGCOMP_HOST": self.settings.host,
            "IMGCOMP_PORT": str(self.settings.port),
            MULTIPROC_DIR: str(self.folder),
        }
        # its own session: a terminal's Ctrl-C reaches this process only, which passes it on once
        process = subprocess.Popen(
            [sys.executable, "-m", "app.child", str(fd), str(os.getpid())],
            env=env,
            pass_fds=(fd,),
            start_new_session=True,
        )
        log.info("%s is served by process %d", device, process.pid)
        return Child(device, process, time.monotonic(), failures)

    def _exited(self, child: Child) -> None:
        """A child is gone: forget its live gauges, then restart it, or stop the others if that cannot help."""
        code = child.process.returncode
        mark_process_dead(child.process.pid, str(self.folder))
        if self.stopping:
            # uvicorn, once drained, raises the signal it caught again: dying of it is a clean stop
            if code not in (0, *(-sig for sig in self.forwarded)) and self.outcome == 0:
                self.outcome = 1
            return
        lived = time.monotonic() - child.started
        failures = 0 if lived >= STABLE_S else child.failures + 1
        if code == UNSERVABLE or failures >= FAILURE_LIMIT:
            why = "cannot serve" if code == UNSERVABLE else f"died {failures} times in a row"
            log.error(
                "%s: process %d exited with %s and %s: stopping every device",
                child.device,
                child.process.pid,
                code,
                why,
            )
            self.outcome = UNSERVABLE if code == UNSERVABLE else 1
            self._stop(signal.SIGTERM)
            return
        log.warning(
            "%s: process %d exited with %s after %.0f s: starting another", child.device, child.process.pid, code, lived
        )
        self.children.append(self._start(child.device, failures))

    def _forward(self, sig: int, frame: FrameType | None) -> None:
        """SIGTERM or SIGINT: every child drains as a lone `serve` does (a second one stops them at once).

        SIGHUP (from a child that answered a reload, or an operator): every child rescans the model store.
        """
        if sig != signal.SIGHUP:
            self.stopping = True
        self.pending.append(sig)

    def _stop(self, sig: int) -> None:
        self.stopping = True
        self.forwarded.add(sig)
        self._pass_on(sig)

    def _pass_on(self, sig: int) -> None:
        log.info("signal %d to every device's process", sig)
        for child in self.children:
            child.process.send_signal(sig)
