"""New model versions without a restart: rescan the store, load what is new, retire what is gone.

An operator publishes a version by putting a complete folder at `model_store/<name>/<version>/`
(copied into a hidden folder such as `model_store/.staging/` first, then renamed into place: a
rename is atomic, so a rescan never sees half a version) and asks for a reload. There is no file
watch on purpose: a watcher fires on half-copied folders, and an explicit request gives the
operator an answer (what was loaded, or why it was refused).

A reload is all or nothing, and it accepts exactly what a restart would. Every version in the
store is verified as `serve` verifies it before it starts (`ModelEntry.verify`: every role, the
discriminators a one-pass model does not serve included, sha256, shapes, configs), and every new
version is loaded onto every device, before anything changes; one broken version refuses the
whole reload and the versions already loaded keep serving. Versions whose folder is gone are
unloaded: new requests cannot name them any more, searches already accepted finish on them, and
the pool frees their networks once none is left. A version never changes once published, so a
loaded version is not loaded again (its files are still verified: a restart would read them).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from app.config import Settings
from app.engine.kinds import Runner
from app.loading import load_runners
from app.metrics import Metrics, multiprocess
from app.store import ModelEntry, ModelStore, UnknownModelError
from training.checkpoint import CheckpointError

log = logging.getLogger(__name__)

OUTCOMES = ("changed", "unchanged", "refused")


class ReloadRefusedError(Exception):
    """The rescan found something that cannot be served; nothing was changed."""


@dataclass(frozen=True)
class PreparedReload:
    """A rescan's result, loaded off the event loop and applied on it in one step."""

    store: ModelStore  # what requests resolve against once applied
    added: tuple[ModelEntry, ...]
    removed: tuple[ModelEntry, ...]
    runners: list[dict[str, Runner]]  # per device worker, the added versions on its device

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed)


def prepare_reload(settings: Settings, current: ModelStore, served: Collection[str]) -> PreparedReload:
    """Blocking (seconds per version): rescan, verify every version as `serve` does, and load every version not
    in `served` onto every device.

    Raises ReloadRefusedError with a message that names the version and what is wrong with it.
    """
    try:
        store = ModelStore.discover(settings.model_store, settings.default_model)
    except (CheckpointError, UnknownModelError, OSError) as exc:
        raise ReloadRefusedError(f"the model store cannot be read: {exc}") from exc
    verified = {}  # the added versions as verified, put on the devices from there, not read again
    for entry in store.entries():  # what `serve` verifies, so a reload never serves what a restart refuses
        try:
            model = entry.verify()
        except CheckpointError as exc:
            raise ReloadRefusedError(f"version {entry.key} cannot be served: {exc}") from exc
        if entry.key not in served:
            verified[entry.key] = model
    added = tuple(entry for entry in store.entries() if entry.key not in served)
    keys = {entry.key for entry in store.entries()}
    removed = tuple(entry for entry in current.entries() if entry.key not in keys)
    runners: list[dict[str, Runner]] = [{} for _ in settings.devices]
    for entry in added:
        try:
            options = [settings.step_options(device) for device in settings.devices]
            loaded = load_runners([entry], settings.devices, settings.precision, verified, options)
        except CheckpointError as exc:
            raise ReloadRefusedError(f"version {entry.key} cannot be served: {exc}") from exc
        for worker, runner in zip(runners, loaded, strict=True):
            worker.update(runner)
    return PreparedReload(store, added, removed, runners)


def publish_model_info(metrics: Metrics, added: Sequence[ModelEntry], removed: Sequence[ModelEntry]) -> None:
    """`imgcomp_model_info` carries one series per servable version (value 1).

    Under the supervisor a series cannot leave the shared folder, so a removed version's reads 0 instead.
    """
    for entry in added:
        metrics.model_info.labels(*_info_labels(entry)).set(1)
    for entry in removed:
        if multiprocess():
            metrics.model_info.labels(*_info_labels(entry)).set(0)
        else:
            metrics.model_info.remove(*_info_labels(entry))


def _info_labels(entry: ModelEntry) -> tuple[str, str, str, str]:
    return entry.name, entry.version, str(entry.resolution), entry.dataset
