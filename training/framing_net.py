"""The framing network: where a face's eyes and nose truly lie in a damaged, roughly framed crop.

The face models learned UTKFace's aligned crops, whose eyes and nose base sit at `TEMPLATE`
(measured with dlib's 5-point landmarks on 581 of the 200x200 crops). A photo's face is framed
from landmarks, and damage moves them: dlib's points inside a hole are guesses (4.8 crop pixels
off with the eyes blocked, 15 with half the face gone). This network looks at the crop a framing
gives, hole and all, and answers where the template's three points are in it; the similarity that
takes them onto the template corrects the framing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from training.networks import ConfigError

CROP = 200.0  # the side the template is measured at
TEMPLATE = np.array([[59.0, 61.0], [137.0, 61.0], [98.0, 118.0]])  # left eye, right eye, nose base
# the network answers offsets from the template in crop pixels, divided by this: outputs near unit size
OFFSET_SCALE = 20.0


@dataclass(frozen=True)
class FramingConfig:
    """The network's input side and width; everything needed to rebuild it."""

    resolution: int = 64
    width: int = 32

    def __post_init__(self) -> None:
        if self.resolution not in (32, 64, 128):
            raise ConfigError(f"framing resolution {self.resolution} is not supported: choose 32, 64 or 128")
        if self.width < 1:
            raise ConfigError(f"width must be a positive integer, got {self.width}")

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FramingConfig:
        return cls(**{k: int(data[k]) for k in cls.__dataclass_fields__ if k in data})


def _stage(inputs: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inputs, outputs, 3, padding=1, bias=False),
        nn.BatchNorm2d(outputs),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(outputs, outputs, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(outputs),
        nn.LeakyReLU(0.2, inplace=True),
    )


class FramingNet(nn.Module):
    """(B, 4, R, R) crop in [-1, 1] with its hole zeroed, plus the known-pixel plane -> (B, 3, 2) crop pixels of
    200: where the left eye, right eye and nose base of the template lie in this crop."""

    def __init__(self, config: FramingConfig) -> None:
        super().__init__()
        self.config = config
        widths = [4, config.width, config.width * 2, config.width * 4, config.width * 8]
        self.features = nn.Sequential(*(_stage(a, b) for a, b in zip(widths, widths[1:], strict=False)))
        side = config.resolution // 16
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(widths[-1] * side * side, 256),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(256, 6),
        )
        self.register_buffer("template", torch.tensor(TEMPLATE, dtype=torch.float32), persistent=False)

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        offsets = self.head(self.features(crops)).view(-1, 3, 2)
        return self.template + OFFSET_SCALE * offsets


def network_input(pixels: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """(B, 3, R, R) pixels in [-1, 1] and (B, R, R) bool known -> the network's (B, 4, R, R): holes zeroed."""
    mask = known.unsqueeze(1).to(pixels.dtype)
    return torch.cat([pixels * mask, mask * 2 - 1], dim=1)
