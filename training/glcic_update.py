"""One GLCIC update in one of the paper's three phases, independent of the loop around it.

Phase `completion`: the completion network alone, on reconstruction loss in the
hole. Phase `discriminator`: the joint discriminator alone, real photos against
completions it cannot change. Phase `joint`: both, the completion network on
reconstruction plus `alpha` times the adversarial loss (Iizuka et al. 2017,
section 3.3, alpha = 0.0004).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from training.gan import autocast
from training.glcic import CompletionNetwork, ContextDiscriminator, GlcicConfig, crop_corners, local_crops

PHASES = ("completion", "discriminator", "joint")
RECONSTRUCTIONS = ("l2", "l1")


@dataclass(frozen=True)
class GlcicOptim:
    """Adam for both networks; the paper's adversarial weight and its squared-error reconstruction."""

    lr: float = 2e-4
    beta1: float = 0.5
    alpha: float = 0.0004
    reconstruction: str = "l2"

    def __post_init__(self) -> None:
        if self.reconstruction not in RECONSTRUCTIONS:
            raise ValueError(f"unknown reconstruction loss {self.reconstruction!r}: use l2 or l1")
        if self.alpha < 0:
            raise ValueError(f"--alpha must be at least 0, got {self.alpha}")


def hole_loss(completed: torch.Tensor, real: torch.Tensor, hole: torch.Tensor, kind: str) -> torch.Tensor:
    """Mean error over the hole's pixels only: outside it the composite is the photo, exactly."""
    error = (completed - real).abs()
    if kind == "l2":
        error = error.square()
    weight = hole.expand_as(error)
    return (error * weight).sum() / weight.sum().clamp_min(1.0)


class GlcicUpdate:
    """Owns C, the joint D and their optimizers; `step(phase, real, hole)` is one iteration.

    `wrap` lets the caller put DDP around the networks without this class knowing.
    """

    def __init__(
        self,
        config: GlcicConfig,
        device: torch.device,
        precision: str,
        optim: GlcicOptim,
        wrap: type[nn.Module] | None = None,
        wrap_kwargs: Mapping[str, object] | None = None,
    ) -> None:
        self.config, self.device, self.precision, self.optim = config, device, precision, optim
        self.completion = CompletionNetwork(config).to(device)
        self.discriminator = ContextDiscriminator(config).to(device)
        betas = (optim.beta1, 0.999)
        self.opt_c = torch.optim.Adam(self.completion.parameters(), lr=optim.lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=optim.lr, betas=betas)
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
        if wrap is not None:
            self.c_train: nn.Module = wrap(self.completion, **(wrap_kwargs or {}))
            self.d_train: nn.Module = wrap(self.discriminator, **(wrap_kwargs or {}))
        else:
            self.c_train, self.d_train = self.completion, self.discriminator

    def step(self, phase: str, real: torch.Tensor, hole: torch.Tensor) -> dict[str, float]:
        """One update of the networks `phase` trains; returns the losses it computed."""
        if phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}: one of {', '.join(PHASES)}")
        corners = crop_corners(hole, self.config.crop)
        if phase == "discriminator":
            with torch.no_grad(), autocast(self.device, self.precision):
                completed = self.c_train(real, hole).float()
            return {"discriminator": self._update_d(real, completed, corners)}
        with autocast(self.device, self.precision):
            completed = self.c_train(real, hole).float()
        losses: dict[str, float] = {}
        if phase == "joint":
            losses["discriminator"] = self._update_d(real, completed.detach(), corners)
        loss = recon = hole_loss(completed, real, hole, self.optim.reconstruction)
        if phase == "joint":
            # D is only a critic here: frozen, so the C update leaves no gradients in it
            self.discriminator.requires_grad_(False)
            with autocast(self.device, self.precision):
                judged = self.discriminator(completed, local_crops(completed, corners, self.config.crop)).float()
            adversarial = F.binary_cross_entropy_with_logits(judged, torch.ones_like(judged))
            loss = recon + self.optim.alpha * adversarial
            losses["adversarial"] = float(adversarial.detach())
        self.opt_c.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt_c)
        self.scaler.update()
        self.discriminator.requires_grad_(True)
        losses["reconstruction"] = float(recon.detach())
        return losses

    def _update_d(self, real: torch.Tensor, completed: torch.Tensor, corners: torch.Tensor) -> float:
        size = self.config.crop
        with autocast(self.device, self.precision):
            # real and completed in separate batches: each BatchNorm sees one distribution
            on_real = self.d_train(real, local_crops(real, corners, size)).float()
            on_fake = self.d_train(completed, local_crops(completed, corners, size)).float()
            loss = F.binary_cross_entropy_with_logits(
                on_real, torch.ones_like(on_real)
            ) + F.binary_cross_entropy_with_logits(on_fake, torch.zeros_like(on_fake))
        self.opt_d.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt_d)
        self.scaler.update()
        return float(loss.detach())

    @torch.no_grad()
    def complete(self, damaged: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """C in eval mode, as it will serve: for the sample grids."""
        self.completion.eval()
        out = self.completion(damaged, hole)
        self.completion.train()
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            "completion": self.completion.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "opt_c": self.opt_c.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "scaler": self.scaler.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.completion.load_state_dict(state["completion"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.opt_c.load_state_dict(state["opt_c"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.scaler.load_state_dict(state["scaler"])
