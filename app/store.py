"""Discovery of `model_store/<name>/<version>/` and the choice of a version for a request.

Like a Triton model repository: a folder per model, a sub-folder per version,
the highest version served when a request names only the model. Discovery
reads only the `model.json` cards; weights are loaded per device by the caller.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from app.engine.kinds import ModelFacts, ServedKind, served_kind
from training.checkpoint import Checkpoint, LoadedModel, has_encoder, load_checkpoint, load_model, read_card
from training.kinds import kind_of


class UnknownModelError(LookupError):
    """A request named a model or version that the store does not hold."""


@dataclass(frozen=True)
class ModelEntry:
    """One model version on disk, described by its card."""

    name: str
    version: str
    path: Path
    card: dict[str, Any]

    @property
    def key(self) -> str:
        return f"{self.name}:{self.version}"

    @property
    def resolution(self) -> int:
        return int(self.card["network"]["resolution"])

    @property
    def dataset(self) -> str:
        dataset = self.card.get("dataset", {})
        return str(dataset.get("name", "unknown")) if isinstance(dataset, dict) else str(dataset)

    @property
    def kind(self) -> str:
        """The folder's kind (`search` for a folder written before kinds)."""
        return kind_of(self.card).name

    @property
    def served(self) -> ServedKind:
        """What its kind takes, runs and answers (`app.engine.kinds`): asked instead of the kind's name."""
        return served_kind(self.kind)

    @property
    def facts(self) -> ModelFacts:
        """What its kind's parameters depend on."""
        return ModelFacts(self.key, self.has_encoder)

    @property
    def has_encoder(self) -> bool:
        """Whether searches of this version may start from its encoder's guess (`init=encoder`)."""
        return has_encoder(self.card)

    @property
    def samples(self) -> Path | None:
        path = self.path / "samples.png"
        return path if path.is_file() else None

    def load(self, device: torch.device) -> Checkpoint:
        """A search version's networks on `device`, eval mode, frozen, for the search-only tools (CheckpointError
        for another kind)."""
        return load_checkpoint(self.path, device)

    def load_served(self, device: torch.device, verified: LoadedModel | None = None) -> LoadedModel:
        """The networks this version's kind serves (not the discriminators a one-pass model keeps for
        training), on `device`, eval mode, frozen; checksums and shapes verified by the checkpoint reader.

        `verified` is what `verify` returned for this version: its networks are copied onto `device` instead
        of the files being read again (the reader builds on the CPU and moves to the device the same way)."""
        served = tuple(role for role in kind_of(self.card).served if role in self._roles())
        if verified is None:
            return load_model(self.path, device, served)
        return replace(verified, networks={role: copy.deepcopy(verified.networks[role]).to(device) for role in served})

    def verify(self) -> LoadedModel:
        """Load every role once on the CPU (checksums, shapes, configs), the discriminators a one-pass model does
        not serve included: what `serve` checks before it starts and a reload before it changes anything.
        Returns what it loaded, for `load_served` to put on the devices without reading the files again.
        Raises CheckpointError naming the folder."""
        return load_model(self.path, torch.device("cpu"))

    def _roles(self) -> set[str]:
        if "weights" in self.card:
            return set(self.card["weights"])
        return set(kind_of(self.card).required)


def version_order(version: str) -> tuple[int, int, str]:
    """Numeric versions compare as numbers (10 after 9); other names after them, alphabetically."""
    return (0, int(version), "") if version.isdigit() else (1, 0, version)


class ModelStore:
    """The model versions found under one folder, and how a request's `model` field picks one."""

    def __init__(self, entries: list[ModelEntry], default_model: str) -> None:
        self._versions: dict[str, list[ModelEntry]] = {}
        for entry in sorted(entries, key=lambda e: (e.name, version_order(e.version))):
            self._versions.setdefault(entry.name, []).append(entry)
        self.default_model = default_model
        self.resolve(default_model)

    @classmethod
    def discover(cls, root: Path, default_model: str) -> ModelStore:
        """Read every `<name>/<version>/model.json` below `root`; hidden folders (staging, retired) and helper
        networks' folders are skipped."""
        entries = []
        for card_path in sorted(Path(root).glob("*/*/model.json")):
            folder = card_path.parent
            if folder.name.startswith(".") or folder.parent.name.startswith("."):
                continue
            card = read_card(folder)
            if not kind_of(card).completes:  # a helper network (the face framer) is no model to complete with
                continue
            entries.append(ModelEntry(name=folder.parent.name, version=folder.name, path=folder, card=card))
        return cls(entries, default_model)

    def verify(self) -> dict[str, LoadedModel]:
        """`ModelEntry.verify` for every version: a folder is whole or refused. Raises CheckpointError naming
        the folder. Returns what it loaded by version key (see `load_served`)."""
        return {entry.key: entry.verify() for entry in self.entries()}

    def names(self) -> list[str]:
        """Every model name, sorted."""
        return list(self._versions)

    def entries(self) -> list[ModelEntry]:
        """Every version of every model, by name then version."""
        return [entry for versions in self._versions.values() for entry in versions]

    def resolve(self, spec: str | None) -> ModelEntry:
        """`None` -> the default model; `name` -> its latest version; `name:version` -> exactly that one."""
        name, _, version = (spec or self.default_model).partition(":")
        versions = self._versions.get(name)
        if not versions:
            known = ", ".join(sorted(self._versions)) or "none"
            raise UnknownModelError(f"there is no model {name!r}: use one of {known} (GET /v1/models lists them)")
        if not version:
            return versions[-1]
        for entry in versions:
            if entry.version == version:
                return entry
        known = ", ".join(entry.version for entry in versions)
        raise UnknownModelError(f"model {name!r} has no version {version!r}: use one of {known}, or omit the version")
