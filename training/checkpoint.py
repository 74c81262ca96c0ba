"""The one place that writes and reads `model_store/<name>/<version>/`.

Layout: `model.json` (self-description), `generator.safetensors`,
`discriminator.safetensors`, `samples.png`. Weights are safetensors only, so
loading never executes code; each file's sha256 is checked against
`model.json` before it is read. Versions are written atomically: a temporary
folder is filled and renamed into place, so a crash never leaves half a model.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from training.networks import ConfigError, Discriminator, Generator, NetworkConfig

FORMAT_VERSION = 1
WEIGHT_FILES = ("generator.safetensors", "discriminator.safetensors")


class CheckpointError(Exception):
    """A checkpoint that is missing, corrupt, tampered with or of an unknown format."""


@dataclass
class Checkpoint:
    """A loaded model version: both networks in eval mode plus its card."""

    name: str
    version: str
    config: NetworkConfig
    generator: Generator
    discriminator: Discriminator
    card: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def _sha256(path: Path) -> str:
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
    """Write a model version atomically and return its folder.

    `pictures` maps file names in the version folder (e.g. `samples.png`) to files to copy there.
    """
    target = Path(root) / name / str(version)
    if target.exists() and not overwrite:
        raise CheckpointError(f"{target} already exists: pick another --version or pass --overwrite")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=target.parent))
    staging.chmod(0o755)  # mkdtemp makes 0700; a non-root server must read the store
    try:
        hashes = {}
        for filename, module in zip(WEIGHT_FILES, (generator, discriminator), strict=True):
            save_file(_plain_state(module), str(staging / filename))
            hashes[filename] = _sha256(staging / filename)
        for filename, source in (pictures or {}).items():
            shutil.copyfile(source, staging / filename)
        meta = {
            **card,
            "format_version": FORMAT_VERSION,
            "name": name,
            "version": str(version),
            "network": config.to_dict(),
            "sha256": hashes,
        }
        (staging / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
        for written in staging.iterdir():
            written.chmod(0o644)
        if target.exists():
            retired = target.with_name(f".{version}-retired")
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


def read_card(path: Path) -> dict[str, Any]:
    """Read and sanity-check `model.json` without touching the weights."""
    card_path = Path(path) / "model.json"
    if not card_path.is_file():
        raise CheckpointError(f"{path} is not a checkpoint: model.json is missing")
    try:
        card = json.loads(card_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{card_path} is not valid JSON ({exc.__class__.__name__}): re-export the model") from exc
    if not isinstance(card, dict) or card.get("format_version") != FORMAT_VERSION:
        found = card.get("format_version") if isinstance(card, dict) else None
        raise CheckpointError(f"{card_path} has format_version {found!r}; this code reads {FORMAT_VERSION}")
    for key in ("name", "version", "network", "sha256"):
        if key not in card:
            raise CheckpointError(f"{card_path} lacks the field {key!r}: re-export the model")
    return card


def _load_weights(module: torch.nn.Module, path: Path, expected_sha: str | None) -> None:
    if not path.is_file():
        raise CheckpointError(f"{path} is missing")
    if expected_sha is None or _sha256(path) != expected_sha:
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


def load_checkpoint(path: Path, device: str | torch.device = "cpu") -> Checkpoint:
    """Rebuild both networks from a version folder alone, in eval mode with frozen weights."""
    path = Path(path)
    card = read_card(path)
    try:
        config = NetworkConfig.from_dict(card["network"])
    except (ConfigError, TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{path}/model.json has an invalid network config: {exc}") from exc
    generator, discriminator = Generator(config), Discriminator(config)
    for filename, module in zip(WEIGHT_FILES, (generator, discriminator), strict=True):
        _load_weights(module, path / filename, card["sha256"].get(filename))
    for module in (generator, discriminator):
        module.eval().requires_grad_(False).to(device)
    return Checkpoint(
        name=str(card["name"]),
        version=str(card["version"]),
        config=config,
        generator=generator,
        discriminator=discriminator,
        card=card,
        path=path,
    )
