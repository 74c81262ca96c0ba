"""The checkpoint format: round trip, integrity, atomic versions, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from training.checkpoint import (
    CheckpointError,
    load_checkpoint,
    read_card,
    save_checkpoint,
    save_with_encoder,
    sha256_of,
)
from training.networks import Discriminator, Encoder, EncoderConfig, Generator, NetworkConfig

TINY_ENCODER = EncoderConfig(width=8, groups=4)


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
    assert (card["name"], card["version"], card["kind"], card["format_version"]) == ("m", "1", "search", 2)
    assert {role: entry["file"] for role, entry in card["weights"].items()} == {
        "generator": "generator.safetensors",
        "discriminator": "discriminator.safetensors",
    }
    assert loaded.encoder is None


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


def _with_encoder(tmp_path: Path, config: NetworkConfig) -> tuple[Path, Path, Encoder]:
    torch.manual_seed(0)
    source, _ = _save(tmp_path, config)
    encoder = Encoder(config, TINY_ENCODER).eval()
    return source, save_with_encoder(source, "2", encoder, {"training": {"steps": 1}}), encoder


def test_encoder_version_round_trip(tmp_path: Path, tiny_config: NetworkConfig) -> None:
    source, path, encoder = _with_encoder(tmp_path, tiny_config)
    for name in ("generator.safetensors", "discriminator.safetensors"):  # G and D carried over byte for byte
        assert (path / name).read_bytes() == (source / name).read_bytes()
    card = read_card(path)
    assert card["weights"]["encoder"]["sha256"] == sha256_of(path / "encoder.safetensors")
    assert card["derived_from"] == "m:1" and card["encoder"]["config"] == {"width": 8, "groups": 4}
    assert card["version"] == "2" and read_card(source)["version"] == "1"
    loaded = load_checkpoint(path)
    assert loaded.encoder is not None and not any(p.requires_grad for p in loaded.encoder.parameters())
    encoder.load_state_dict({k: v.half().float() for k, v in encoder.state_dict().items()})
    damaged, hole = torch.randn(2, 3, 32, 32), torch.zeros(2, 1, 32, 32)
    with torch.no_grad():
        guess = loaded.encoder(damaged, hole)
        torch.testing.assert_close(guess, encoder(damaged, hole), rtol=0, atol=0)
    assert guess.shape == (2, tiny_config.z_dim)


def test_encoder_version_never_replaces_an_existing_one(tmp_path: Path, tiny_config: NetworkConfig) -> None:
    source, path, encoder = _with_encoder(tmp_path, tiny_config)
    with pytest.raises(CheckpointError, match="already exists"):
        save_with_encoder(source, "2", encoder, {})
    with pytest.raises(CheckpointError, match="already exists"):
        save_with_encoder(source, "1", encoder, {})
    assert read_card(source).get("weights", {}).get("encoder") is None


@pytest.mark.parametrize("damage", ["missing", "truncated", "tampered", "wrong-shape"])
def test_a_bad_encoder_file_is_refused_by_name(tmp_path: Path, tiny_config: NetworkConfig, damage: str) -> None:
    from safetensors.torch import save_file

    _, path, _ = _with_encoder(tmp_path, tiny_config)
    weights = path / "encoder.safetensors"
    message = "does not match the sha256"
    if damage == "missing":
        weights.unlink()
        message = "encoder.safetensors is missing"
    elif damage == "truncated":
        weights.write_bytes(weights.read_bytes()[:100])
    elif damage == "tampered":
        data = bytearray(weights.read_bytes())
        data[-1] ^= 0xFF
        weights.write_bytes(bytes(data))
    else:  # a valid file of another shape whose sha256 the card was made to agree with
        save_file({"head.weight": torch.zeros(3, 3)}, str(weights))
        card = json.loads((path / "model.json").read_text())
        card["weights"]["encoder"]["sha256"] = sha256_of(weights)
        (path / "model.json").write_text(json.dumps(card))
        message = "does not fit the network"
    with pytest.raises(CheckpointError, match=message) as caught:
        load_checkpoint(path)
    assert "encoder.safetensors" in str(caught.value) and "\n" not in str(caught.value)


def test_format_1_folders_still_load(tmp_path: Path, tiny_config: NetworkConfig) -> None:
    path, _ = _save(tmp_path, tiny_config)
    card = json.loads((path / "model.json").read_text())
    weights = card.pop("weights")
    del card["kind"]
    card["format_version"] = 1
    card["sha256"] = {entry["file"]: entry["sha256"] for entry in weights.values()}
    (path / "model.json").write_text(json.dumps(card))
    loaded = load_checkpoint(path)
    assert loaded.encoder is None and loaded.version == "1"


def _elsewhere(tmp_path: Path) -> dict[str, str]:
    """Weights files that are not files of the version folder `tmp_path/store/m/1`, as a card could name them."""
    other, _ = _save(tmp_path / "other", NetworkConfig(resolution=32, z_dim=16, g_width=8, d_width=8))
    loose = tmp_path / "loose.safetensors"
    loose.write_bytes((other / "generator.safetensors").read_bytes())
    return {
        "absolute": str(loose.resolve()),
        "parent": "../../../other/m/1/generator.safetensors",
        "through-a-subfolder": "weights/../../../../other/m/1/generator.safetensors",
        "subfolder": "weights/generator.safetensors",
    }


@pytest.mark.parametrize("where", ["absolute", "parent", "through-a-subfolder", "subfolder"])
def test_a_card_cannot_name_weights_outside_its_folder(tmp_path: Path, tiny_config: NetworkConfig, where: str) -> None:
    path, _ = _save(tmp_path / "store", tiny_config)
    named = _elsewhere(tmp_path)[where]
    (path / "weights").mkdir()  # a folder inside the version, holding a good copy of the generator
    (path / "weights" / "generator.safetensors").write_bytes((path / "generator.safetensors").read_bytes())
    target = path / named
    card = json.loads((path / "model.json").read_text())
    card["weights"]["generator"] = {"file": named, "sha256": sha256_of(target)}  # the checksum agrees
    (path / "model.json").write_text(json.dumps(card))

    for read in (read_card, load_checkpoint):
        with pytest.raises(CheckpointError, match="must be a plain file name inside") as caught:
            read(path)
        assert str(path) in str(caught.value) and repr(named) in str(caught.value)


@pytest.mark.parametrize("role", ["generator", "discriminator"])
def test_a_weights_file_has_the_name_its_kind_gives_the_role(
    tmp_path: Path, tiny_config: NetworkConfig, role: str
) -> None:
    path, _ = _save(tmp_path, tiny_config)
    renamed = path / "weights.safetensors"
    (path / f"{role}.safetensors").rename(renamed)
    card = json.loads((path / "model.json").read_text())
    card["weights"][role]["file"] = renamed.name  # the checksum still agrees: only the name is wrong
    (path / "model.json").write_text(json.dumps(card))

    for read in (read_card, load_checkpoint):
        with pytest.raises(CheckpointError, match=f"a search model's {role} weights are {role}.safetensors") as caught:
            read(path)
        assert str(path) in str(caught.value) and "'weights.safetensors'" in str(caught.value)
