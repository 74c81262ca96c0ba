"""Model kinds: one table picks roles, files and networks; bad folders are refused in one line naming them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from training.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_model,
    read_card,
    save_checkpoint,
    save_model,
    sha256_of,
)
from training.glcic import CompletionNetwork, ContextDiscriminator, GlcicConfig
from training.kinds import GLCIC, KINDS, SEARCH, kind_of
from training.networks import Discriminator, Generator, NetworkConfig

TINY_GLCIC = GlcicConfig(resolution=32, width=8, d_width=8, features=16)


def _save_glcic(root: Path) -> tuple[Path, CompletionNetwork]:
    torch.manual_seed(0)
    completion, joint = CompletionNetwork(TINY_GLCIC).eval(), ContextDiscriminator(TINY_GLCIC).eval()
    modules = {"completion": completion, "global": joint.global_branch, "local": joint.local_branch}
    path = save_model(root, "g", "1", GLCIC, modules, TINY_GLCIC, {"training": {"steps": 0}})
    return path, completion


def _save_search(root: Path, config: NetworkConfig) -> Path:
    return save_checkpoint(root, "s", "1", Generator(config), Discriminator(config), config, {})


def _edit_card(path: Path, **changes: object) -> dict[str, object]:
    card = json.loads((path / "model.json").read_text())
    card.update(changes)
    (path / "model.json").write_text(json.dumps(card))
    return card


def test_every_kind_names_a_file_for_each_role_and_serves_required_ones() -> None:
    assert set(KINDS) == {"search", "glcic", "framing"}
    for kind in KINDS.values():
        assert set(kind.required) <= set(kind.roles) and set(kind.served) <= set(kind.roles)
        assert len(set(kind.roles.values())) == len(kind.roles)
    assert kind_of({}) is SEARCH and kind_of({"kind": "glcic"}) is GLCIC


def test_glcic_round_trip_by_kind(tmp_path: Path) -> None:
    path, completion = _save_glcic(tmp_path)
    card = read_card(path)
    assert card["kind"] == "glcic" and card["network"] == TINY_GLCIC.to_dict()
    assert {role: entry["file"] for role, entry in card["weights"].items()} == GLCIC.roles
    for entry in card["weights"].values():
        assert entry["sha256"] == sha256_of(path / entry["file"])
    loaded = load_model(path)
    assert loaded.kind is GLCIC and loaded.config == TINY_GLCIC and set(loaded.networks) == set(GLCIC.roles)
    served = load_model(path, roles=GLCIC.served)
    assert list(served.networks) == ["completion"]
    net = served.networks["completion"]
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    completion.load_state_dict(
        {k: v.half().float() if v.is_floating_point() else v for k, v in completion.state_dict().items()}
    )
    image, hole = torch.rand(2, 3, 32, 32) * 2 - 1, torch.zeros(2, 1, 32, 32)
    hole[:, :, 8:20, 10:22] = 1
    with torch.no_grad():
        torch.testing.assert_close(net(image, hole), completion(image, hole), rtol=0, atol=0)


def test_a_search_folder_is_loaded_by_kind_and_a_glcic_one_is_not_a_search(
    tmp_path: Path, tiny_config: NetworkConfig
) -> None:
    loaded = load_model(_save_search(tmp_path, tiny_config))
    assert loaded.kind is SEARCH and set(loaded.networks) == {"generator", "discriminator"}
    path, _ = _save_glcic(tmp_path)
    with pytest.raises(CheckpointError, match="is a glcic model, not a search model"):
        load_checkpoint(path)


def test_a_format_2_folder_without_kind_loads_as_search(tmp_path: Path, tiny_config: NetworkConfig) -> None:
    path = _save_search(tmp_path, tiny_config)
    card = json.loads((path / "model.json").read_text())
    del card["kind"]
    (path / "model.json").write_text(json.dumps(card))
    assert load_model(path).kind is SEARCH and load_checkpoint(path).encoder is None


def _one_line(caught: pytest.ExceptionInfo[CheckpointError], path: Path) -> str:
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    return message


def test_an_unknown_kind_is_refused(tmp_path: Path) -> None:
    path, _ = _save_glcic(tmp_path)
    _edit_card(path, kind="diffusion")
    with pytest.raises(CheckpointError) as caught:
        load_model(path)
    assert "kind 'diffusion'" in _one_line(caught, path)


def test_a_missing_weight_file_is_refused(tmp_path: Path) -> None:
    path, _ = _save_glcic(tmp_path)
    (path / "local_discriminator.safetensors").unlink()
    with pytest.raises(CheckpointError) as caught:
        load_model(path)
    assert "local_discriminator.safetensors is missing" in _one_line(caught, path)


def test_a_required_role_absent_from_the_card_is_refused(tmp_path: Path) -> None:
    path, _ = _save_glcic(tmp_path)
    card = read_card(path)
    del card["weights"]["completion"]
    _edit_card(path, weights=card["weights"])
    with pytest.raises(CheckpointError) as caught:
        load_model(path, roles=("global",))
    assert "names no weights for completion" in _one_line(caught, path)


def test_a_search_role_in_a_glcic_card_is_refused(tmp_path: Path) -> None:
    path, _ = _save_glcic(tmp_path)
    card = read_card(path)
    _edit_card(path, weights={**card["weights"], "generator": card["weights"]["completion"]})
    with pytest.raises(CheckpointError) as caught:
        load_model(path)
    assert "malformed 'weights' map (a glcic model's roles are completion, global, local)" in _one_line(caught, path)


def test_weights_of_the_wrong_shape_are_refused(tmp_path: Path) -> None:
    path, _ = _save_glcic(tmp_path)
    weights = path / "completion.safetensors"
    # a wider network's completion weights, with the sha256 the card was made to agree with
    save_file(
        {k: v.contiguous() for k, v in CompletionNetwork(GlcicConfig(resolution=32, width=16)).state_dict().items()},
        str(weights),
    )
    card = read_card(path)
    card["weights"]["completion"]["sha256"] = sha256_of(weights)
    _edit_card(path, weights=card["weights"])
    with pytest.raises(CheckpointError) as caught:
        load_model(path)
    assert "completion.safetensors does not fit the network" in _one_line(caught, path)


def test_an_invalid_glcic_config_is_refused(tmp_path: Path) -> None:
    path, _ = _save_glcic(tmp_path)
    _edit_card(path, network={**TINY_GLCIC.to_dict(), "resolution": 48})
    with pytest.raises(CheckpointError) as caught:
        load_model(path)
    assert "invalid network config" in _one_line(caught, path)


def test_save_model_refuses_an_incomplete_set_of_roles(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="missing \\['global', 'local'\\]"):
        save_model(tmp_path, "g", "1", GLCIC, {"completion": CompletionNetwork(TINY_GLCIC)}, TINY_GLCIC, {})
    assert not (tmp_path / "g").exists()


def test_a_card_without_its_kinds_config_field_is_refused(tmp_path: Path) -> None:
    path, _ = _save_glcic(tmp_path)
    card = read_card(path)
    del card["network"]
    (path / "model.json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError) as caught:
        load_model(path)
    assert "lacks the field 'network'" in _one_line(caught, path)
