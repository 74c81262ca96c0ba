"""Discovery of `model_store/<name>/<version>/` and the choice of a version for a request.

Like a Triton model repository: a folder per model, a sub-folder per version,
the highest version served when a request names only the model. Discovery
reads only the `model.json` cards; weights are loaded per device by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from training.checkpoint import Checkpoint, has_encoder, load_checkpoint, read_card


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
        return str(self.card.get("kind", "search"))

    @property
    def has_encoder(self) -> bool:
        """Whether searches of this version may start from its encoder's guess (`init=encoder`)."""
        return has_encoder(self.card)

    @property
    def samples(self) -> Path | None:
        path = self.path / "samples.png"
        return path if path.is_file() else None

    def load(self, device: torch.device) -> Checkpoint:
        """Every network on `device`, eval mode, frozen (checksums verified by the checkpoint reader)."""
        return load_checkpoint(self.path, device)


def _version_order(version: str) -> tuple[int, int, str]:
    """Numeric versions compare as numbers (10 after 9); other names after them, alphabetically."""
    return (0, int(version), "") if version.isdigit() else (1, 0, version)


class ModelStore:
    """The model versions found under one folder, and how a request's `model` field picks one."""

    def __init__(self, entries: list[ModelEntry], default_model: str) -> None:
        self._versions: dict[str, list[ModelEntry]] = {}
        for entry in sorted(entries, key=lambda e: (e.name, _version_order(e.version))):
            self._versions.setdefault(entry.name, []).append(entry)
        self.default_model = default_model
        self.resolve(default_model)

    @classmethod
    def discover(cls, root: Path, default_model: str) -> ModelStore:
        """Read every `<name>/<version>/model.json` below `root`; hidden folders (staging, retired) are skipped."""
        entries = []
        for card_path in sorted(Path(root).glob("*/*/model.json")):
            folder = card_path.parent
            if folder.name.startswith(".") or folder.parent.name.startswith("."):
                continue
            entries.append(
                ModelEntry(name=folder.parent.name, version=folder.name, path=folder, card=read_card(folder))
            )
        return cls(entries, default_model)

    def verify(self) -> None:
        """Load every version once on the CPU (checksums, shapes, configs) and drop it; raises CheckpointError."""
        for entry in self.entries():
            entry.load(torch.device("cpu"))

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
