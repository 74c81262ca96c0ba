"""Where a search step's time goes: G forward, D forward and the backward to z, per batch size and precision;
for a one-pass model, its forward in each memory layout.

Each variant of the step (with or without the prior's D pass, channels_last
memory layout, torch.compile) is timed on the same frozen networks in one
process, so the table says which of them pays on this machine.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

import torch

from app.engine.precision import autocast_dtype
from training.glcic import CompletionNetwork
from training.networks import Discriminator, Generator

Net = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Timing:
    """Median milliseconds of each part of one step at one batch size."""

    g_forward: float
    d_forward: float
    backward: float
    step_with_d: float
    step_without_d: float


def _median_ms(run: Callable[[], object], repeats: int) -> float:
    run()  # first call picks kernels (and compiles, where asked)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return 1000 * sorted(times)[len(times) // 2]


def time_step(
    generator: Net,
    discriminator: Net,
    z_dim: int,
    batch: int,
    precision: str,
    device: torch.device,
    repeats: int,
) -> Timing:
    """The step as `SearchBatch.step` runs it, and its parts alone."""
    dtype = autocast_dtype(precision, device)
    z = torch.randn(batch, z_dim, device=device)

    def context() -> contextlib.AbstractContextManager[object]:
        return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def g_forward() -> None:
        with torch.no_grad(), context():
            generator(z)
        sync()

    with torch.no_grad(), context():
        image = generator(z)

    def d_forward() -> None:
        with torch.no_grad(), context():
            discriminator(image)
        sync()

    def step(with_d: bool) -> Callable[[], None]:
        def run() -> None:
            leaf = z.detach().requires_grad_(True)
            with context():
                out = generator(leaf)
                loss = out.float().abs().flatten(1).sum(1)
                if with_d:
                    loss = loss + torch.nn.functional.softplus(-discriminator(out).float())
            torch.autograd.grad(loss.sum(), leaf)
            sync()

        return run

    g_ms, d_ms = _median_ms(g_forward, repeats), _median_ms(d_forward, repeats)
    with_d, without_d = _median_ms(step(True), repeats), _median_ms(step(False), repeats)
    return Timing(g_ms, d_ms, max(0.0, with_d - g_ms - d_ms), with_d, without_d)


def profile(
    generator: Generator,
    discriminator: Discriminator,
    device: torch.device,
    batches: list[int],
    precisions: list[str],
    out: TextIO,
    repeats: int = 20,
    compile_step: bool = False,
) -> None:
    """Print the table: each variant's ms per step and image-iterations/s, per batch and precision."""
    variants: dict[str, Callable[[], tuple[Net, Net]]] = {"plain": lambda: (generator, discriminator)}
    if compile_step:
        variants["torch.compile"] = lambda: (
            torch.compile(generator),
            torch.compile(discriminator),
        )
    variants["channels_last"] = lambda: (
        generator.to(memory_format=torch.channels_last),  # type: ignore[call-overload]
        discriminator.to(memory_format=torch.channels_last),  # type: ignore[call-overload]
    )
    out.write(
        f"{'variant':<14}{'prec':>5}{'batch':>6}{'G fwd ms':>10}{'D fwd ms':>10}{'bwd ms':>9}"
        f"{'step ms':>9}{'no-D ms':>9}{'img-it/s':>10}{'no-D img-it/s':>15}{'D share':>9}\n"
    )
    for name, build in variants.items():
        g, d = build()
        for precision in precisions:
            for batch in batches:
                t = time_step(g, d, generator.config.z_dim, batch, precision, device, repeats)
                out.write(
                    f"{name:<14}{precision:>5}{batch:>6}{t.g_forward:>10.2f}{t.d_forward:>10.2f}{t.backward:>9.2f}"
                    f"{t.step_with_d:>9.2f}{t.step_without_d:>9.2f}{1000 * batch / t.step_with_d:>10.0f}"
                    f"{1000 * batch / t.step_without_d:>15.0f}{1 - t.step_without_d / t.step_with_d:>9.0%}\n"
                )
                out.flush()
    generator.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    discriminator.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]


def _forward_ms(
    network: CompletionNetwork,
    batch: int,
    precision: str,
    layout: torch.memory_format,
    device: torch.device,
    repeats: int,
) -> float:
    """Median ms of one forward as the runner calls it: a centre hole zeroed, inputs in the network's layout."""
    side, channels = network.config.resolution, network.config.channels
    images = (torch.rand(batch, channels, side, side, device=device) * 2 - 1).contiguous(memory_format=layout)
    hole = torch.zeros(batch, 1, side, side, device=device)
    hole[:, :, side // 4 : side - side // 4, side // 4 : side - side // 4] = 1.0
    hole = hole.contiguous(memory_format=layout)
    dtype = autocast_dtype(precision, device)

    def forward() -> None:
        context = torch.autocast(device.type, dtype) if dtype is not None else contextlib.nullcontext()
        with torch.no_grad(), context:
            network(images.masked_fill(hole.bool(), 0.0), hole)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return _median_ms(forward, repeats)


def profile_one_pass(
    network: CompletionNetwork,
    device: torch.device,
    batches: list[int],
    precisions: list[str],
    out: TextIO,
    repeats: int = 20,
) -> None:
    """Print a one-pass network's forward per layout, precision and batch: ms and images/s."""
    out.write(f"{'layout':<14}{'prec':>5}{'batch':>6}{'forward ms':>12}{'images/s':>10}\n")
    for name, layout in (("plain", torch.contiguous_format), ("channels_last", torch.channels_last)):
        network.to(memory_format=layout)  # type: ignore[call-overload]
        for precision in precisions:
            for batch in batches:
                ms = _forward_ms(network, batch, precision, layout, device, repeats)
                out.write(f"{name:<14}{precision:>5}{batch:>6}{ms:>12.2f}{1000 * batch / ms:>10.0f}\n")
                out.flush()
    network.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
