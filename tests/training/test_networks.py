"""Network shapes per resolution, config validation, eval-mode BatchNorm statistics."""

from __future__ import annotations

import pytest
import torch

from training.networks import ConfigError, Discriminator, Generator, NetworkConfig, recompute_batchnorm_stats


@pytest.mark.parametrize("resolution", [32, 64, 128])
def test_shapes_for_each_resolution(resolution: int) -> None:
    config = NetworkConfig(resolution=resolution, z_dim=8, g_width=4, d_width=4)
    generator, discriminator = Generator(config), Discriminator(config)
    images = generator(torch.randn(3, 8))
    assert images.shape == (3, 3, resolution, resolution)
    assert images.abs().max() <= 1.0
    assert discriminator(images).shape == (3,)


@pytest.mark.parametrize("resolution", [16, 48, 256])
def test_unsupported_resolution_is_refused(resolution: int) -> None:
    with pytest.raises(ConfigError, match="resolution .* is not supported"):
        NetworkConfig(resolution=resolution)


def test_config_round_trips_through_a_dict() -> None:
    config = NetworkConfig(resolution=32, z_dim=12, g_width=6, d_width=5)
    assert NetworkConfig.from_dict(config.to_dict()) == config


def test_recomputed_statistics_make_eval_mode_match_batch_statistics() -> None:
    torch.manual_seed(0)
    generator = Generator(NetworkConfig(resolution=32, z_dim=8, g_width=4, d_width=4))
    z = torch.randn(512, 8)
    with torch.no_grad():
        batch_mode = generator.train()(z)
        stale_eval = generator.eval()(z)
        recompute_batchnorm_stats(generator, samples=4096, batch_size=512)
        fresh_eval = generator(z)
    assert not generator.training
    stale_gap = (stale_eval - batch_mode).abs().mean()
    fresh_gap = (fresh_eval - batch_mode).abs().mean()
    assert fresh_gap < stale_gap / 4
