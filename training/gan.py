"""One DCGAN update (D then G) with AMP and an EMA generator, independent of the loop around it."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from training.networks import Discriminator, Generator, NetworkConfig

PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class Optim:
    """Adam settings of the DCGAN paper (lr 2e-4, beta1 0.5)."""

    lr: float = 2e-4
    beta1: float = 0.5
    ema_decay: float = 0.999


@dataclass
class StepLosses:
    d: float
    g: float


def autocast(device: torch.device, precision: str) -> AbstractContextManager[object]:
    """Mixed precision for the forward passes; fp32 runs plain."""
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def resolve_precision(requested: str, device: torch.device) -> str:
    """'auto' is bf16 where the hardware has it, fp32 otherwise."""
    if requested != "auto":
        if requested == "fp16" and device.type != "cuda":
            raise ValueError("fp16 needs a CUDA device: use --precision bf16 or fp32 on the CPU")
        return requested
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16"


class GanUpdate:
    """Owns G, D, the EMA copy of G and both optimizers; `step` is one training iteration.

    `wrap` lets the caller put DDP around the networks without this class knowing.
    """

    def __init__(
        self,
        config: NetworkConfig,
        device: torch.device,
        precision: str,
        optim: Optim,
        wrap: type[nn.Module] | None = None,
        wrap_kwargs: Mapping[str, object] | None = None,
    ) -> None:
        self.config, self.device, self.precision, self.optim = config, device, precision, optim
        self.generator = Generator(config).to(device)
        self.discriminator = Discriminator(config).to(device)
        self.ema = copy.deepcopy(self.generator).requires_grad_(False)
        betas = (optim.beta1, 0.999)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=optim.lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=optim.lr, betas=betas)
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
        self.updates = 0
        if wrap is not None:
            self.g_train: nn.Module = wrap(self.generator, **(wrap_kwargs or {}))
            self.d_train: nn.Module = wrap(self.discriminator, **(wrap_kwargs or {}))
        else:
            self.g_train, self.d_train = self.generator, self.discriminator

    def step(self, real: torch.Tensor) -> StepLosses:
        """One D update on real vs fake, one G update through D, then the EMA."""
        batch = real.shape[0]
        z = torch.randn(batch, self.config.z_dim, device=self.device)
        ones = torch.ones(batch, device=self.device)
        zeros = torch.zeros(batch, device=self.device)
        with autocast(self.device, self.precision):
            fake = self.g_train(z)
            # real and fake in separate batches: each BatchNorm sees one distribution (DCGAN paper)
            d_real = self.d_train(real).float()
            d_fake = self.d_train(fake.detach()).float()
            loss_d = F.binary_cross_entropy_with_logits(d_real, ones) + F.binary_cross_entropy_with_logits(
                d_fake, zeros
            )
        self.opt_d.zero_grad(set_to_none=True)
        self.scaler.scale(loss_d).backward()
        self.scaler.step(self.opt_d)

        # D is only a critic here: freeze it so the G update leaves no gradients in D
        self.discriminator.requires_grad_(False)
        with autocast(self.device, self.precision):
            # fake labels are real for the generator cost (non-saturating loss)
            loss_g = F.binary_cross_entropy_with_logits(self.discriminator(fake).float(), ones)
        self.opt_g.zero_grad(set_to_none=True)
        self.scaler.scale(loss_g).backward()
        self.scaler.step(self.opt_g)
        self.scaler.update()
        self.discriminator.requires_grad_(True)
        self.update_ema()
        return StepLosses(d=float(loss_d.detach()), g=float(loss_g.detach()))

    @torch.no_grad()
    def update_ema(self) -> None:
        """EMA with warm-up: early on the average would otherwise stay near the random init."""
        self.updates += 1
        decay = min(self.optim.ema_decay, (1 + self.updates) / (10 + self.updates))
        for ema_p, p in zip(self.ema.parameters(), self.generator.parameters(), strict=True):
            ema_p.lerp_(p.detach(), 1.0 - decay)
        for ema_b, b in zip(self.ema.buffers(), self.generator.buffers(), strict=True):
            ema_b.copy_(b)

    def state_dict(self) -> dict[str, Any]:
        return {
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "ema": self.ema.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "scaler": self.scaler.state_dict(),
            "updates": self.updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.ema.load_state_dict(state["ema"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.scaler.load_state_dict(state["scaler"])
        self.updates = int(state.get("updates", 0))
