"""DCGAN generator and discriminator (Radford et al., 2016) and the search's encoder, sized from configs.

Every network is rebuilt from its config alone, so a checkpoint that stores
the config next to the weights describes itself.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

SUPPORTED_RESOLUTIONS = (32, 64, 128)


class ConfigError(ValueError):
    """A network config that no DCGAN here can be built from."""


@dataclass(frozen=True)
class NetworkConfig:
    """Shape of both networks; everything needed to rebuild them."""

    resolution: int = 64
    channels: int = 3
    z_dim: int = 100
    g_width: int = 64
    d_width: int = 64

    def __post_init__(self) -> None:
        if self.resolution not in SUPPORTED_RESOLUTIONS:
            raise ConfigError(
                f"resolution {self.resolution} is not supported: choose one of "
                f"{', '.join(map(str, SUPPORTED_RESOLUTIONS))}"
            )
        for name in ("channels", "z_dim", "g_width", "d_width"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)}")

    @property
    def stages(self) -> int:
        """Number of 2x resolution changes between 4x4 and the image."""
        return int(math.log2(self.resolution)) - 2

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetworkConfig:
        known = {k: int(data[k]) for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


def init_weights(module: nn.Module) -> None:
    """DCGAN initialisation: N(0, 0.02) convs, N(1, 0.02) norm scales (paper, section 4)."""
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d | nn.GroupNorm):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class Generator(nn.Module):
    """z (B, z_dim) -> image (B, C, R, R) in [-1, 1]."""

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        width = config.g_width * 2 ** (config.stages - 1)
        layers: list[nn.Module] = [
            # (B, z_dim, 1, 1) -> (B, width, 4, 4)
            nn.ConvTranspose2d(config.z_dim, width, 4, 1, 0, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        ]
        for _ in range(config.stages - 1):
            # (B, w, s, s) -> (B, w/2, 2s, 2s)
            layers += [
                nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(width // 2),
                nn.ReLU(inplace=True),
            ]
            width //= 2
        # (B, g_width, R/2, R/2) -> (B, C, R, R); tanh output as in the paper
        layers += [nn.ConvTranspose2d(width, config.channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(init_weights)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(z.shape[0], -1, 1, 1))


class Discriminator(nn.Module):
    """image (B, C, R, R) -> real/fake logit (B,)."""

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        width = config.d_width
        layers: list[nn.Module] = [
            # (B, C, R, R) -> (B, d_width, R/2, R/2); no norm on the input layer (paper)
            nn.Conv2d(config.channels, width, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        for _ in range(config.stages - 1):
            # (B, w, s, s) -> (B, 2w, s/2, s/2)
            layers += [
                nn.Conv2d(width, width * 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(width * 2),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            width *= 2
        # (B, w, 4, 4) -> (B, 1, 1, 1)
        layers.append(nn.Conv2d(width, 1, 4, 1, 0, bias=False))
        self.net = nn.Sequential(*layers)
        self.apply(init_weights)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image).flatten()


@dataclass(frozen=True)
class EncoderConfig:
    """Width of the encoder's first stage and its GroupNorm groups; the rest comes from the G it serves."""

    width: int = 64
    groups: int = 8

    def __post_init__(self) -> None:
        if self.width < 1 or self.groups < 1 or self.width % self.groups:
            raise ConfigError(f"encoder width {self.width} must be a positive multiple of groups {self.groups}")

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EncoderConfig:
        return cls(**{k: int(data[k]) for k in cls.__dataclass_fields__ if k in data})


class Encoder(nn.Module):
    """(damaged image (B, C, R, R) with the hole zeroed, hole (B, 1, R, R) in {0, 1}) -> z (B, z_dim).

    The search's starting point (Lahiri et al. 2019; Zhu et al. 2020, in-domain inversion):
    a guess of the z whose G(z) agrees with the known pixels. GroupNorm, not BatchNorm,
    so a row's z never depends on the other rows of its batch, in training or serving.
    """

    def __init__(self, network: NetworkConfig, config: EncoderConfig) -> None:
        super().__init__()
        self.network, self.config = network, config
        width = config.width
        layers: list[nn.Module] = [
            # (B, C+1, R, R) -> (B, width, R/2, R/2)
            nn.Conv2d(network.channels + 1, width, 4, 2, 1),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        for _ in range(network.stages - 1):
            # (B, w, s, s) -> (B, 2w, s/2, s/2)
            layers += [
                nn.Conv2d(width, width * 2, 4, 2, 1, bias=False),
                nn.GroupNorm(config.groups, width * 2),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            width *= 2
        self.features = nn.Sequential(*layers)
        # (B, w * 4 * 4) -> (B, z_dim): a linear head, so z is not squashed away from the prior's tails
        self.head = nn.Linear(width * 16, network.z_dim)
        self.apply(init_weights)

    def forward(self, damaged: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(torch.cat([damaged, hole], dim=1)).flatten(1))


@torch.no_grad()
def recompute_batchnorm_stats(generator: Generator, samples: int = 4096, batch_size: int = 256, seed: int = 0) -> None:
    """Replace running BN statistics with an exact average over fresh samples.

    The search runs G in eval mode; running statistics gathered with momentum
    during training (and never by the EMA copy) differ from batch statistics,
    so eval-mode output degrades unless they are recomputed as a cumulative mean.
    """
    device = next(generator.parameters()).device
    norms = [m for m in generator.modules() if isinstance(m, nn.BatchNorm2d)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative moving average
    rng = torch.Generator(device="cpu").manual_seed(seed)
    generator.train()
    for start in range(0, samples, batch_size):
        count = min(batch_size, samples - start)
        generator(torch.randn(count, generator.config.z_dim, generator=rng).to(device))
    for norm in norms:
        norm.momentum = 0.1
    generator.eval()
