"""GLCIC networks and one update per phase: shapes, the composite, the local crop, who learns in which phase."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.data import to_signed
from training.glcic import (
    CompletionNetwork,
    ContextDiscriminator,
    GlcicConfig,
    composite,
    crop_corners,
    local_crops,
)
from training.glcic_update import PHASES, GlcicOptim, GlcicUpdate, hole_loss
from training.masks import MASK_KINDS, make_mask
from training.networks import ConfigError

TINY = GlcicConfig(resolution=32, width=8, d_width=8, features=16)


def _holes(count: int, size: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    masks = [make_mask(MASK_KINDS[i % len(MASK_KINDS)], size, rng) for i in range(count)]
    return torch.from_numpy(np.stack(masks)).unsqueeze(1).float()


@pytest.fixture
def photos(faces: np.ndarray) -> torch.Tensor:
    """Six real faces at 32x32 (every other pixel of the 64x64 crops), in [-1, 1]."""
    return to_signed(torch.from_numpy(faces[:6, ::2, ::2].copy()).permute(0, 3, 1, 2))


@pytest.mark.parametrize("resolution", [32, 64])
def test_shapes(resolution: int) -> None:
    config = GlcicConfig(resolution=resolution, width=8, d_width=8, features=16)
    image, hole = torch.rand(3, 3, resolution, resolution) * 2 - 1, _holes(3, resolution)
    out = CompletionNetwork(config)(image, hole)
    assert out.shape == image.shape and out.min() >= -1 and out.max() <= 1
    crops = local_crops(out, crop_corners(hole, config.crop), config.crop)
    assert crops.shape == (3, 3, resolution // 2, resolution // 2)
    assert ContextDiscriminator(config)(out, crops).shape == (3,)


def test_the_default_sizes_suit_a_cpu() -> None:
    config = GlcicConfig()
    assert config.resolution == 64 and config.dilations == (2, 4, 8, 16) and config.crop == 32
    completion = sum(p.numel() for p in CompletionNetwork(config).parameters())
    assert completion < 3_000_000


def test_the_composite_keeps_every_known_pixel(photos: torch.Tensor) -> None:
    torch.manual_seed(0)
    hole = _holes(len(photos), 32)
    with torch.no_grad():
        out = CompletionNetwork(TINY).eval()(photos, hole)
    known = ~hole.bool().expand_as(photos)
    assert torch.equal(out[known], photos[known])
    assert not torch.equal(out[~known], photos[~known])  # the hole is the network's


def test_the_network_never_sees_the_hidden_pixels(photos: torch.Tensor) -> None:
    torch.manual_seed(0)
    hole = _holes(len(photos), 32)
    scrambled = torch.where(hole.bool(), torch.rand_like(photos) * 2 - 1, photos)
    net = CompletionNetwork(TINY).eval()
    with torch.no_grad():
        assert torch.equal(net(photos, hole), net(scrambled, hole))
    assert torch.equal(composite(photos, scrambled, hole), scrambled)


def test_the_local_crop_is_inside_the_image_and_covers_the_hole_centre() -> None:
    size, crop = 32, 16
    hole = _holes(40, size, seed=3)
    corners = crop_corners(hole, crop)
    for mask, (top, left) in zip(hole[:, 0].bool(), corners.tolist(), strict=True):
        assert 0 <= top <= size - crop and 0 <= left <= size - crop
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        centre_row, centre_col = (rows[0] + rows[-1]) // 2, (cols[0] + cols[-1]) // 2
        assert top <= centre_row < top + crop and left <= centre_col < left + crop
    corner_hole = torch.zeros(1, 1, size, size)
    corner_hole[..., 28:, 29:] = 1  # at the bottom-right edge: the crop is clamped, not shifted outside
    assert crop_corners(corner_hole, crop).tolist() == [[16, 16]]


def test_config_round_trip_and_bad_configs() -> None:
    assert GlcicConfig.from_dict(TINY.to_dict()) == TINY
    with pytest.raises(ConfigError, match="resolution 48"):
        GlcicConfig(resolution=48)
    with pytest.raises(ConfigError, match="width must be even"):
        GlcicConfig(width=7)


def test_hole_loss_counts_only_the_hole() -> None:
    real, hole = torch.zeros(1, 3, 4, 4), torch.zeros(1, 1, 4, 4)
    hole[..., :2, :] = 1
    completed = real.clone()
    completed[..., 2:, :] = 5.0  # wrong only outside the hole: no loss
    assert hole_loss(completed, real, hole, "l2") == 0
    completed[..., :2, :] = 0.5
    assert hole_loss(completed, real, hole, "l2").item() == pytest.approx(0.25)
    assert hole_loss(completed, real, hole, "l1").item() == pytest.approx(0.5)


def _snapshot(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _changed(before: list[torch.Tensor], module: torch.nn.Module) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True))


@pytest.mark.parametrize(
    ("phase", "c_learns", "d_learns"), [(PHASES[0], True, False), (PHASES[1], False, True), (PHASES[2], True, True)]
)
def test_each_phase_trains_its_networks_only(photos: torch.Tensor, phase: str, c_learns: bool, d_learns: bool) -> None:
    torch.manual_seed(0)
    update = GlcicUpdate(TINY, torch.device("cpu"), "fp32", GlcicOptim())
    c_before, d_before = _snapshot(update.completion), _snapshot(update.discriminator)
    losses = update.step(phase, photos, _holes(len(photos), 32))
    assert _changed(c_before, update.completion) is c_learns
    assert _changed(d_before, update.discriminator) is d_learns
    expected = {"completion": {"reconstruction"}, "discriminator": {"discriminator"}}.get(
        phase, {"reconstruction", "discriminator", "adversarial"}
    )
    assert set(losses) == expected and all(np.isfinite(v) for v in losses.values())


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_runs_every_phase(photos: torch.Tensor, precision: str) -> None:
    """bf16 autocast (the CPU default); fp16 with the grad scaler, the CUDA path, here through CPU autocast."""
    torch.manual_seed(0)
    update = GlcicUpdate(TINY, torch.device("cpu"), precision, GlcicOptim())
    assert update.scaler.is_enabled() is (precision == "fp16")
    for phase in PHASES:
        losses = update.step(phase, photos, _holes(len(photos), 32))
        assert all(np.isfinite(v) for v in losses.values())
    assert all(p.dtype == torch.float32 and p.isfinite().all() for p in update.completion.parameters())


def test_bad_optim_settings() -> None:
    with pytest.raises(ValueError, match="unknown reconstruction"):
        GlcicOptim(reconstruction="l3")
    with pytest.raises(ValueError, match="alpha"):
        GlcicOptim(alpha=-1)
