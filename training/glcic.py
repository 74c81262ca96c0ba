"""The one-pass completion kind (Iizuka et al. 2017, "Globally and Locally Consistent Image Completion").

A completion network C(damaged image, hole) -> image whose known pixels are
the input's own, and a discriminator with two branches: a global one on the
whole image and a local one on a crop around the hole, their feature vectors
joined in one real/fake head. The paper's widths are for 256x256; here every
width is a config field so the same networks fit the search kind's 64x64 and
train on a CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from training.networks import SUPPORTED_RESOLUTIONS, ConfigError

DILATIONS = (2, 4, 8, 16)


@dataclass(frozen=True)
class GlcicConfig:
    """Shape of the completion network and both discriminator branches; everything needed to rebuild them."""

    resolution: int = 64
    channels: int = 3
    width: int = 32  # completion network's first stage (the paper's 64)
    d_width: int = 32  # discriminators' first stage (the paper's 64)
    features: int = 256  # each branch's feature vector before the joint head (the paper's 1024)
    dilations: tuple[int, ...] = field(default=DILATIONS)

    def __post_init__(self) -> None:
        if self.resolution not in SUPPORTED_RESOLUTIONS:
            raise ConfigError(
                f"resolution {self.resolution} is not supported: choose one of "
                f"{', '.join(map(str, SUPPORTED_RESOLUTIONS))}"
            )
        for name in ("channels", "width", "d_width", "features"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.width % 2 or not self.dilations or any(d < 1 for d in self.dilations):
            raise ConfigError(f"width must be even and dilations positive, got {self.width} and {self.dilations}")

    @property
    def crop(self) -> int:
        """Side of the local discriminator's crop: half the image, as the paper's 128 of 256."""
        return self.resolution // 2

    def to_dict(self) -> dict[str, Any]:
        return {
            "resolution": self.resolution,
            "channels": self.channels,
            "width": self.width,
            "d_width": self.d_width,
            "features": self.features,
            "dilations": list(self.dilations),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GlcicConfig:
        known: dict[str, Any] = {k: int(data[k]) for k in ("resolution", "channels", "width", "d_width", "features")}
        known = {k: v for k, v in known.items() if k in data}
        if "dilations" in data:
            known["dilations"] = tuple(int(d) for d in data["dilations"])
        return cls(**known)


def _conv(c_in: int, c_out: int, kernel: int, stride: int = 1, dilation: int = 1) -> list[nn.Module]:
    padding = dilation * (kernel - 1) // 2
    return [
        nn.Conv2d(c_in, c_out, kernel, stride, padding, dilation=dilation, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    ]


def composite(damaged: torch.Tensor, generated: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """hole * G + (1 - hole) * x: the known pixels are the input's, exactly."""
    return torch.where(hole.bool(), generated, damaged)


class CompletionNetwork(nn.Module):
    """(damaged (B, C, R, R) with the hole zeroed, hole (B, 1, R, R)) -> completed image in [-1, 1].

    Encoder with two stride-2 stages, dilated middle (the paper's 2, 4, 8, 16: a
    wide field of view without losing resolution), decoder back to R x R.
    """

    def __init__(self, config: GlcicConfig) -> None:
        super().__init__()
        self.config = config
        w = config.width
        layers: list[nn.Module] = [
            *_conv(config.channels + 1, w, 5),
            *_conv(w, 2 * w, 3, stride=2),
            *_conv(2 * w, 2 * w, 3),
            *_conv(2 * w, 4 * w, 3, stride=2),
            *_conv(4 * w, 4 * w, 3),
            *_conv(4 * w, 4 * w, 3),
        ]
        for dilation in config.dilations:
            layers += _conv(4 * w, 4 * w, 3, dilation=dilation)
        layers += [
            *_conv(4 * w, 4 * w, 3),
            *_conv(4 * w, 4 * w, 3),
            nn.ConvTranspose2d(4 * w, 2 * w, 4, 2, 1, bias=False),
            nn.BatchNorm2d(2 * w),
            nn.ReLU(inplace=True),
            *_conv(2 * w, 2 * w, 3),
            nn.ConvTranspose2d(2 * w, w, 4, 2, 1, bias=False),
            nn.BatchNorm2d(w),
            nn.ReLU(inplace=True),
            *_conv(w, w // 2, 3),
            nn.Conv2d(w // 2, config.channels, 3, 1, 1),
            nn.Tanh(),
        ]
        self.net = nn.Sequential(*layers)

    def forward(self, damaged: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        hole = hole.to(damaged.dtype)
        zeroed = damaged * (1 - hole)  # the network never sees what was under the hole
        generated = self.net(torch.cat([zeroed, hole], dim=1))
        return composite(damaged, generated.to(damaged.dtype), hole)


class _Branch(nn.Module):
    """5x5 stride-2 convolutions down to 4x4, then a fully connected layer: one feature vector per image."""

    def __init__(self, config: GlcicConfig, side: int) -> None:
        super().__init__()
        stages = int(math.log2(side)) - 2
        layers: list[nn.Module] = []
        c_in, c_out = config.channels, config.d_width
        for index in range(stages):
            layers.append(nn.Conv2d(c_in, c_out, 5, 2, 2, bias=index == 0))
            if index > 0:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            c_in, c_out = c_out, c_out * 2
        self.convs = nn.Sequential(*layers)
        self.fc = nn.Linear(c_in * 16, config.features)
        self.side = side

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.fc(self.convs(image).flatten(1)))


class GlobalDiscriminator(_Branch):
    """The whole image -> features; it also holds the joint head, the layer that sees both branches."""

    def __init__(self, config: GlcicConfig) -> None:
        super().__init__(config, config.resolution)
        self.head = nn.Linear(2 * config.features, 1)


class LocalDiscriminator(_Branch):
    """The crop around the hole (half the image's side) -> features."""

    def __init__(self, config: GlcicConfig) -> None:
        super().__init__(config, config.crop)


class ContextDiscriminator(nn.Module):
    """(image, crop) -> one real/fake logit from both branches' features joined."""

    def __init__(self, config: GlcicConfig) -> None:
        super().__init__()
        self.config = config
        self.global_branch = GlobalDiscriminator(config)
        self.local_branch = LocalDiscriminator(config)

    def forward(self, image: torch.Tensor, crop: torch.Tensor) -> torch.Tensor:
        joined = torch.cat([self.global_branch(image), self.local_branch(crop)], dim=1)
        return self.global_branch.head(joined).squeeze(1)


def crop_corners(hole: torch.Tensor, size: int) -> torch.Tensor:
    """(B, 1, R, R) holes -> (B, 2) top-left (row, col) of a size x size crop centred on each hole's bounding box.

    The crop is clamped inside the image; an empty hole gets the centred crop.
    """
    side = hole.shape[-1]
    present = hole.reshape(hole.shape[0], side, side).bool()
    rows, cols = present.any(dim=2), present.any(dim=1)
    index = torch.arange(side, device=hole.device)
    corners = []
    for line in (rows, cols):
        first = torch.where(line, index, side).amin(dim=1)
        last = torch.where(line, index, -1).amax(dim=1)
        centre = torch.where(line.any(dim=1), (first + last + 1) // 2, torch.full_like(first, side // 2))
        corners.append((centre - size // 2).clamp(0, side - size))
    return torch.stack(corners, dim=1)


def local_crops(images: torch.Tensor, corners: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, R, R) -> (B, C, size, size), each image cut at its own corner."""
    return torch.stack(
        [
            image[:, top : top + size, left : left + size]
            for image, (top, left) in zip(images, corners.tolist(), strict=True)
        ]
    )
