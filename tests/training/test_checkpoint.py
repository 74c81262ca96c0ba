"""The checkpoint format: round trip, integrity, atomic versions, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from training.checkpoint import CheckpointError, load_checkpoint, read_card, save_checkpoint
from training.networks import Discriminator, Generator, NetworkConfig


def _save(root: Path, config: NetworkConfig, overwrite: bool = False) -> tuple[Path, Generator]:
    generator, discriminator = Generator(config).eval(), Discriminator(config).eval()
    path = save_checkpoint(
        root, "m", "1", generator, discriminator, config, {"training": {"steps": 1}}, overwrite=overwrite
    )
    return path, generator


def test_round_trip_gives_identical_outputs(tmp_path: Path, tiny_config: NetworkConfig) -> None:
    torch.manual_seed(0)
    path, generator = _save(tmp_path, tiny_config)
    loaded = load_checkpoint(path)
    # weights are stored as fp16: compare with the fp16-rounded original
    generator.load_state_dict(
        {k: v.half().float() if v.is_floating_point() else v for k, v in generator.state_dict().items()}
    )
    z = torch.randn(4, tiny_config.z_dim)
    with torch.no_grad():
        torch.testing.assert_close(loaded.generator(z), generator(z), rtol=0, atol=0)
    assert loaded.config == tiny_config
    assert not loaded.generator.training and not any(p.requires_grad for p in loaded.generator.parameters())
    card = read_card(path)
    assert (
        card["name"] == "m"
        and card["version"] == "1"
        and set(card["sha256"])
        == {
            "generator.safetensors",
            "discriminator.safetensors",
        }
    )


def test_keys_have_no_wrapper_prefixes(tmp_path: Path, tiny_config: NetworkConfig) -> None:
    from safetensors.torch import load_file

    path, _ = _save(tmp_path, tiny_config)
    keys = load_file(str(path / "generator.safetensors")).keys()
    assert keys and all(not k.startswith(("module.", "_orig_mod.")) for k in keys)


def test_tampered_weights_are_refused(tmp_path: Path, tiny_config: NetworkConfig) -> None:
    path, _ = _save(tmp_path, tiny_config)
    weights = path / "generator.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match the sha256"):
        load_checkpoint(path)


def test_missing_and_corrupt_cards(tmp_path: Path, tiny_config: NetworkConfig) -> None:
    with pytest.raises(CheckpointError, match="model.json is missing"):
        load_checkpoint(tmp_path / "nothing")
    path, _ = _save(tmp_path, tiny_config)
    (path / "model.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(path)


def test_unknown_format_version(tmp_path: Path, tiny_config: NetworkConfig) -> None:
    path, _ = _save(tmp_path, tiny_config)
    card = json.loads((path / "model.json").read_text())
    card["format_version"] = 99
    (path / "model.json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="format_version 99"):
        load_checkpoint(path)


def test_existing_version_is_kept_unless_overwrite(tmp_path: Path, tiny_config: NetworkConfig) -> None:
    path, _ = _save(tmp_path, tiny_config)
    before = (path / "generator.safetensors").read_bytes()
    with pytest.raises(CheckpointError, match="already exists"):
        _save(tmp_path, tiny_config)
    assert (path / "generator.safetensors").read_bytes() == before
    torch.manual_seed(1)
    _save(tmp_path, tiny_config, overwrite=True)
    assert (path / "generator.safetensors").read_bytes() != before
    assert sorted(p.name for p in path.parent.iterdir()) == ["1"]  # no staging folders left behind
