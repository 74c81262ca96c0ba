"""One device's serving process under `serve`'s supervisor: `python -m app.child FD PARENT_PID`.

The supervisor bound the listening socket (inherited as file descriptor FD), set `IMGCOMP_DEVICES` to this
child's one device and `PROMETHEUS_MULTIPROC_DIR` to the folder every child writes its metrics to; the
supervisor serves that folder on the metrics port, so the child serves no metrics port of its own. A model
reload reaches every child through the supervisor (app.relay).
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence

from pydantic import ValidationError

from app.config import Settings, describe_errors
from app.main import create_app
from app.relay import ReloadRelay, reload_on_hangup
from app.serving import STARTUP_FAILED, STARTUP_FAILED_LINE, configure_logging, serve_app
from app.store import ModelStore, UnknownModelError
from training.checkpoint import CheckpointError

PARENT_CHECK_S = 1.0


def _follow_parent(parent: int) -> None:
    """Drain and exit once the supervisor is gone (SIGKILL, the OOM killer): no child serves on without it."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_S)
    os.kill(os.getpid(), signal.SIGTERM)


def main(argv: Sequence[str]) -> int:
    """Serve this child's device on the inherited socket until SIGTERM; 2 after one line if it cannot start."""
    listener = socket.socket(fileno=int(argv[0]))
    try:
        settings = Settings()
    except ValidationError as error:
        sys.stderr.writelines(f"invalid setting: {line}\n" for line in describe_errors(error))
        return 2
    try:
        verified = ModelStore.discover(settings.model_store, settings.default_model).verify()
    except (CheckpointError, UnknownModelError) as error:
        sys.stderr.write(f"cannot serve {settings.model_store}: {error}\n")
        return 2
    configure_logging(settings, prefix=f"[{settings.devices[0]}] ")
    parent = int(argv[1])
    threading.Thread(target=_follow_parent, args=(parent,), name="imgcomp-follow-parent", daemon=True).start()
    app = create_app(settings, verified, metrics_server=False)
    del verified  # the lifespan holds the only reference now
    reload_on_hangup(app)
    app.add_middleware(ReloadRelay, supervisor=parent)
    if not serve_app(listener, app, settings):
        sys.stderr.write(STARTUP_FAILED_LINE + "\n")
        return STARTUP_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
