"""Tiny one-pass (`glcic`) versions for the service tests: built by the kinds registry, saved by save_model."""

from __future__ import annotations

from pathlib import Path

import torch

from training.checkpoint import save_model
from training.glcic import GlcicConfig
from training.kinds import GLCIC

TINY_GLCIC = GlcicConfig(resolution=32, width=8, d_width=8, features=16)  # the tiny search model's resolution


def save_tiny_glcic(root: Path, name: str = "tiny-glcic", version: str = "1", seed: int = 0) -> Path:
    """An untrained (0 steps) but whole glcic version: completion network and both discriminators."""
    torch.manual_seed(seed)
    card = {"network": TINY_GLCIC.to_dict(), "dataset": {"name": "none (test)"}, "training": {"steps": 0}}
    networks = GLCIC.build(card, tuple(GLCIC.roles))
    for network in networks.values():
        network.eval()
    return save_model(root, name, version, GLCIC, networks, TINY_GLCIC, card)
