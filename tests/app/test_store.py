"""Model store discovery: latest version by default, name:version, clear errors for unknown ones."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from app.store import ModelStore, UnknownModelError


@pytest.fixture
def store_root(make_tiny_store: Callable[..., Path]) -> Path:
    root = make_tiny_store(("faces", "fruit"))
    for version in ("2", "10"):
        shutil.copytree(root / "faces" / "1", root / "faces" / version)
    shutil.copytree(root / "faces" / "1", root / "faces" / ".11-staging")  # a half-written save
    return root


def test_latest_version_is_numeric(store_root: Path) -> None:
    store = ModelStore.discover(store_root, "faces")
    assert [e.key for e in store.entries()] == ["faces:1", "faces:2", "faces:10", "fruit:1"]
    assert store.resolve(None).key == "faces:10"
    assert store.resolve("faces").key == "faces:10"
    assert store.resolve("faces:2").key == "faces:2"
    assert store.resolve("fruit").resolution == 32


def test_unknown_names_say_what_exists(store_root: Path) -> None:
    store = ModelStore.discover(store_root, "faces")
    with pytest.raises(UnknownModelError, match="use one of faces, fruit"):
        store.resolve("cats")
    with pytest.raises(UnknownModelError, match="use one of 1, 2, 10"):
        store.resolve("faces:3")


def test_default_model_must_exist(store_root: Path) -> None:
    with pytest.raises(UnknownModelError):
        ModelStore.discover(store_root, "cats")


def test_entry_loads_frozen_networks(store_root: Path) -> None:
    checkpoint = ModelStore.discover(store_root, "faces").resolve("fruit").load(torch.device("cpu"))
    assert not checkpoint.generator.training
    assert not any(p.requires_grad for p in checkpoint.generator.parameters())
