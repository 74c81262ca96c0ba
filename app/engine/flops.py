"""What one step of a kind costs, counted from its networks' layer shapes: the bench's %-of-peak column asks here."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from training.glcic import CompletionNetwork

_COUNTED = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)


def _forward_flops(nets: Sequence[nn.Module], run: Callable[[], object]) -> float:
    """Multiply-adds x 2 of every convolution and linear layer of `nets` while `run()` makes one forward.

    Only convolutions and linear layers count: norms and activations are a few percent and memory-bound.
    """
    forward = 0.0

    def count(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal forward
        if isinstance(module, nn.ConvTranspose2d):  # every input pixel meets every kernel tap
            c_in, h, w = inputs[0].shape[1:]
            forward += 2.0 * c_in * h * w * module.out_channels * math.prod(module.kernel_size) / module.groups
        elif isinstance(module, nn.Conv2d):  # every output pixel meets every kernel tap
            c_out, h, w = output.shape[1:]
            forward += 2.0 * c_out * h * w * module.in_channels * math.prod(module.kernel_size) / module.groups
        elif isinstance(module, nn.Linear):
            forward += 2.0 * module.in_features * module.out_features

    layers = [m for net in nets for m in net.modules() if isinstance(m, _COUNTED)]
    handles = [layer.register_forward_hook(count) for layer in layers]
    try:
        with torch.no_grad():
            run()
    finally:
        for handle in handles:
            handle.remove()
    return forward


def flops_per_image_iteration(generator: nn.Module, discriminator: nn.Module | None, z_dim: int) -> float:
    """FLOPs of one slot's search step: G and D forward plus the backward to z, counted from the layer shapes.

    `discriminator=None` counts a step without the prior term (G only), as searches with no prior weight run.
    G and D are frozen, so the backward computes input gradients only: each layer's input gradient is
    the transposed operation, the same multiply-adds as its forward.
    """
    device = next(generator.parameters()).device

    def step() -> None:
        image = generator(torch.zeros(1, z_dim, device=device))
        if discriminator is not None:
            discriminator(image)

    nets = [generator] if discriminator is None else [generator, discriminator]
    return 2.0 * _forward_flops(nets, step)


def flops_per_completion(network: CompletionNetwork) -> float:
    """FLOPs of one one-pass completion: the completion network's forward alone (no backward, no search)."""
    config = network.config
    device = next(network.parameters()).device
    damaged = torch.zeros(1, config.channels, config.resolution, config.resolution, device=device)
    hole = torch.zeros(1, 1, config.resolution, config.resolution, device=device)
    return _forward_flops([network], lambda: network(damaged, hole))
