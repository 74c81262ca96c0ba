"""The one place that writes and reads `model_store/<name>/<version>/`.

Layout: `model.json` (self-description), one safetensors file per network
role, `samples.png`. Format 2 names the folder's `kind` and maps each role to
its file and sha256 (`weights`); format 1 folders (no `kind`, a flat `sha256`
map of the generator and discriminator) still load as the search kind.
Weights are safetensors only, so loading never executes code; each file's
sha256 is checked against `model.json` before it is read. Versions are
written atomically: a temporary folder is filled and renamed into place, so a
crash never leaves half a model, and a new component (an encoder) is a new
version beside the old one, never an edit of a served folder. What each
kind's roles, files and networks are comes from `training.kinds`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from training.framing_net import FramingConfig
from training.glcic import GlcicConfig
from training.kinds import DEFAULT_KIND, KINDS, SEARCH, ModelKind
from training.networks import ConfigError, Discriminator, Encoder, Generator, NetworkConfig

FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)


class CheckpointError(Exception):
    """A checkpoint that is missing, corrupt, tampered with or of an unknown format."""


@dataclass
class Checkpoint:
    """A loaded model version: its networks in eval mode, frozen, plus its card."""

    name: str
    version: str
    config: NetworkConfig
    generator: Generator
    discriminator: Discriminator
    encoder: Encoder | None = None
    card: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


@dataclass
class LoadedModel:
    """A loaded model version of any kind: its networks by role, in eval mode and frozen, plus its card."""

    kind: ModelKind
    name: str
    version: str
    config: NetworkConfig | GlcicConfig | FramingConfig
    networks: dict[str, torch.nn.Module]
    card: dict[str, Any]
    path: Path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _plain_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """CPU fp16 weights without DDP `module.` or torch.compile `_orig_mod.` prefixes."""
    state = {}
    for key, tensor in module.state_dict().items():
        key = key.replace("_orig_mod.", "").removeprefix("module.")
        tensor = tensor.detach().to("cpu")
        if tensor.is_floating_point():
            tensor = tensor.to(torch.float16)  # halves the files; fp32 is restored on load
        state[key] = tensor.contiguous()
    return state


def version_folder(root: Path, name: str, version: str, overwrite: bool = False) -> Path:
    """The folder a new version goes to; refuses an existing one unless `overwrite` (call before any work)."""
    target = Path(root) / name / str(version)
    if target.exists() and not overwrite:
        raise CheckpointError(f"{target} already exists: pick another --version or pass --overwrite")
    return target


def _write_version(
    target: Path,
    kind: ModelKind,
    modules: Mapping[str, torch.nn.Module],
    copies: Mapping[str, Path],
    card: dict[str, Any],
    pictures: Mapping[str, Path],
) -> Path:
    """Fill a staging folder (role files written or copied, pictures, model.json) and rename it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    staging.chmod(0o755)  # mkdtemp makes 0700; a non-root server must read the store
    try:
        weights = {}
        for role, module in modules.items():
            save_file(_plain_state(module), str(staging / kind.roles[role]))
        for role, source in copies.items():
            shutil.copyfile(source, staging / kind.roles[role])
        for role in (*modules, *copies):
            weights[role] = {"file": kind.roles[role], "sha256": sha256_of(staging / kind.roles[role])}
        for filename, source in pictures.items():
            shutil.copyfile(source, staging / filename)
        meta = {**card, "format_version": FORMAT_VERSION, "kind": kind.name, "weights": weights}
        (staging / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
        for written in staging.iterdir():
            written.chmod(0o644)
        if target.exists():
            retired = target.with_name(f".{target.name}-retired")
            shutil.rmtree(retired, ignore_errors=True)
            os.replace(target, retired)
            os.replace(staging, target)
            shutil.rmtree(retired)
        else:
            os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def save_checkpoint(
    root: Path,
    name: str,
    version: str,
    generator: torch.nn.Module,
    discriminator: torch.nn.Module,
    config: NetworkConfig,
    card: dict[str, Any],
    pictures: dict[str, Path] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a new G/D version atomically and return its folder.

    `pictures` maps file names in the version folder (e.g. `samples.png`) to files to copy there.
    """
    modules = {"generator": generator, "discriminator": discriminator}
    return save_model(root, name, version, SEARCH, modules, config, card, pictures, overwrite)


def save_model(
    root: Path,
    name: str,
    version: str,
    kind: ModelKind,
    modules: Mapping[str, torch.nn.Module],
    config: NetworkConfig | GlcicConfig | FramingConfig,
    card: dict[str, Any],
    pictures: dict[str, Path] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a new version of any kind: one file per role in `modules` (every required role of the kind)."""
    missing = [role for role in kind.required if role not in modules]
    unknown = [role for role in modules if role not in kind.roles]
    if missing or unknown:
        raise CheckpointError(f"a {kind.name} model needs roles {kind.required}; missing {missing}, unknown {unknown}")
    target = version_folder(root, name, version, overwrite)
    meta = {**card, "name": name, "version": str(version), "network": config.to_dict()}
    return _write_version(target, kind, modules, {}, meta, pictures or {})


def save_with_encoder(
    source: Path,
    version: str,
    encoder: Encoder,
    encoder_card: dict[str, Any],
    pictures: dict[str, Path] | None = None,
    overwrite: bool = False,
) -> Path:
    """A new version of `source`'s model: its G and D files byte for byte, plus `encoder`.

    The source's card (dataset, held-out split, G's training) carries over; `encoder_card`
    lands under `encoder` with the encoder's config.
    """
    card = read_card(source)
    target = version_folder(source.parent.parent, source.parent.name, version, overwrite)
    if target.resolve() == Path(source).resolve():
        raise CheckpointError(f"{target} is the source version: write the encoder into a new version")
    if card.get("kind", DEFAULT_KIND) != SEARCH.name:
        raise CheckpointError(f"{source} is a {card['kind']} model: an encoder is for a search model's generator")
    files = {role: source / entry["file"] for role, entry in _weight_entries(card, source).items()}
    meta = {k: v for k, v in card.items() if k not in ("sha256", "weights", "quality", "encoder")}
    meta |= {
        "version": str(version),
        "derived_from": f"{card['name']}:{card['version']}",
        "encoder": {**encoder_card, "config": encoder.config.to_dict()},
    }
    copies = {role: path for role, path in files.items() if role in SEARCH.required}
    return _write_version(target, SEARCH, {"encoder": encoder}, copies, meta, pictures or {})


def read_card(path: Path) -> dict[str, Any]:
    """Read and sanity-check `model.json` without touching the weights."""
    card_path = Path(path) / "model.json"
    if not card_path.is_file():
        raise CheckpointError(f"{path} is not a checkpoint: model.json is missing")
    try:
        card = json.loads(card_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{card_path} is not valid JSON ({exc.__class__.__name__}): re-export the model") from exc
    if not isinstance(card, dict) or card.get("format_version") not in READABLE_FORMATS:
        found = card.get("format_version") if isinstance(card, dict) else None
        readable = " or ".join(map(str, READABLE_FORMATS))
        raise CheckpointError(f"{card_path} has format_version {found!r}; this code reads {readable}")
    kind = card.get("kind", DEFAULT_KIND)
    if not isinstance(kind, str) or kind not in KINDS:
        raise CheckpointError(f"{card_path} is of kind {kind!r}; this code knows {', '.join(KINDS)}")
    fields = KINDS[kind].config_fields
    for key in ("name", "version", *fields, "sha256" if card["format_version"] == 1 else "weights"):
        if key not in card:
            raise CheckpointError(f"{card_path} lacks the field {key!r}: re-export the model")
    _weight_entries(card, Path(path))
    return card


def _weight_entries(card: dict[str, Any], path: Path) -> dict[str, dict[str, str]]:
    """role -> {file, sha256}, from either format, with every required role of the card's kind present."""
    kind = KINDS[card.get("kind", DEFAULT_KIND)]
    if card["format_version"] == 1:
        return {
            role: {"file": kind.roles[role], "sha256": card["sha256"].get(kind.roles[role], "")}
            for role in kind.required
        }
    weights = card["weights"]
    if not isinstance(weights, dict) or any(
        role not in kind.roles or not isinstance(entry, dict) or {"file", "sha256"} - set(entry)
        for role, entry in weights.items()
    ):
        roles = ", ".join(kind.roles)
        raise CheckpointError(
            f"{path}/model.json has a malformed 'weights' map (a {kind.name} model's roles are {roles}): "
            "re-export the model"
        )
    for role, entry in weights.items():
        if not _is_plain_name(entry["file"]):
            raise CheckpointError(
                f"{path}/model.json names {entry['file']!r} as its {role} weights: a weights file must be a plain "
                f"file name inside {path} (no folder, no '..', no absolute path): re-export the model"
            )
        if entry["file"] != kind.roles[role]:
            raise CheckpointError(
                f"{path}/model.json names {entry['file']!r} as its {role} weights: a {kind.name} model's {role} "
                f"weights are {kind.roles[role]}: re-export the model"
            )
    missing = [role for role in kind.required if role not in weights]
    if missing:
        raise CheckpointError(
            f"{path}/model.json names no weights for {', '.join(missing)}: a {kind.name} model needs "
            f"{', '.join(kind.required)}"
        )
    return weights


def _is_plain_name(name: object) -> bool:
    """A file name that, joined to the version folder, stays a file of that folder (no folder part, `..`, root)."""
    return (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and not any(separator in name for separator in ("/", "\\", "\0"))
    )


def has_encoder(card: dict[str, Any]) -> bool:
    return card.get("format_version") == 2 and "encoder" in card.get("weights", {})


def _load_weights(module: torch.nn.Module, path: Path, expected_sha: str | None) -> None:
    if not path.is_file():
        raise CheckpointError(f"{path} is missing")
    if not expected_sha or sha256_of(path) != expected_sha:
        raise CheckpointError(f"{path} does not match the sha256 in model.json: the file was altered or corrupted")
    try:
        state = load_file(str(path))
    except SafetensorError as exc:
        raise CheckpointError(f"{path} is not a readable safetensors file: {exc}") from exc
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"{path} does not fit the network described in model.json") from exc


def load_model(path: Path, device: str | torch.device = "cpu", roles: tuple[str, ...] | None = None) -> LoadedModel:
    """Rebuild a version of any kind from its folder alone: `roles` (default: every role it has) in eval mode."""
    path = Path(path)
    card = read_card(path)
    kind = KINDS[card.get("kind", DEFAULT_KIND)]
    entries = _weight_entries(card, path)
    wanted = tuple(entries) if roles is None else roles
    absent = [role for role in wanted if role not in entries]
    if absent:
        raise CheckpointError(f"{path} has no {', '.join(absent)} weights (it has {', '.join(entries)})")
    try:
        config = kind.network_config(card)
        networks = kind.build(card, wanted)
    except (ConfigError, TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{path}/model.json has an invalid network config: {exc!r}") from exc
    for role, module in networks.items():
        _load_weights(module, path / entries[role]["file"], entries[role].get("sha256"))
        module.eval().requires_grad_(False).to(device)
    return LoadedModel(kind, str(card["name"]), str(card["version"]), config, networks, card, path)


def load_checkpoint(path: Path, device: str | torch.device = "cpu") -> Checkpoint:
    """A search model's G, D and encoder (if it has one), in eval mode with frozen weights."""
    card = read_card(Path(path))
    if card.get("kind", DEFAULT_KIND) != SEARCH.name:
        raise CheckpointError(f"{path} is a {card['kind']} model, not a search model: load it with load_model")
    loaded = load_model(path, device)
    networks = loaded.networks
    assert isinstance(loaded.config, NetworkConfig)
    generator, discriminator, encoder = networks["generator"], networks["discriminator"], networks.get("encoder")
    assert isinstance(generator, Generator) and isinstance(discriminator, Discriminator)
    assert encoder is None or isinstance(encoder, Encoder)
    return Checkpoint(
        name=loaded.name,
        version=loaded.version,
        config=loaded.config,
        generator=generator,
        discriminator=discriminator,
        encoder=encoder,
        card=card,
        path=loaded.path,
    )
