"""Model versions onto devices: a runner of the version's kind per device worker, at start-up and on reload."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from app.config import Precision
from app.engine.kinds import Runner
from app.engine.precision import resolve as resolve_precision
from app.engine.stepping import StepOptions
from app.store import ModelEntry
from training.checkpoint import LoadedModel


def load_runners(
    entries: Sequence[ModelEntry],
    devices: Sequence[str],
    precision: Precision,
    verified: Mapping[str, LoadedModel] | None = None,
    options: Sequence[StepOptions] = (),
) -> list[dict[str, Runner]]:
    """Per device (in order), each entry's networks loaded onto it; raises CheckpointError naming the file.

    The runner comes from the version's kind (`app.engine.kinds`). The checkpoint reader verifies
    every file's sha256 and shape, so a broken version fails here, before anything serves it. A version
    in `verified` (what `ModelEntry.verify` returned, by key) is copied from there, its files not read again.
    `options`: per device (in order), how its searches step; a runner that warms up does so here, before it serves.
    """
    verified = verified or {}
    per_device = []
    for index, device in enumerate(devices):
        dtype = resolve_precision(precision, torch.device(device))
        step = options[index] if options else None
        runners = {}
        for entry in entries:
            model = entry.load_served(torch.device(device), verified.get(entry.key))
            runners[entry.key] = entry.served.runner(model, torch.device(device), dtype, step)
        per_device.append(runners)
    return per_device
