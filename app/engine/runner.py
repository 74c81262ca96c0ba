"""Run whole batches of searches to the end: the simple worker's entry point."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from app.engine.batch import SearchBatch
from app.engine.precision import autocast_dtype
from app.engine.search import Init, SearchJob, SearchParams, SearchResult
from app.engine.stepping import StepOptions, run_to_end
from training.networks import Discriminator, Encoder, Generator

# a search's restarts at most (SearchParams' limit): a warm-up size above it takes several jobs
_MOST_RESTARTS = 64


class SearchRunner:
    """Owns one model's frozen networks on one device; every search runs through a `SearchBatch`."""

    def __init__(
        self,
        generator: Generator,
        discriminator: Discriminator,
        device: torch.device,
        precision: str = "fp32",
        encoder: Encoder | None = None,
        options: StepOptions | None = None,
    ) -> None:
        self.device = torch.device(device)
        autocast_dtype(precision, self.device)  # reject a bad precision now, not on the first request
        self.precision = precision
        self.options = options or StepOptions()
        # eval mode: train-mode BatchNorm would mix the slots of a batch; frozen: only z is optimised
        self.generator = generator.to(self.device).eval().requires_grad_(False)
        self.discriminator = discriminator.to(self.device).eval().requires_grad_(False)
        if precision == "bf16":
            # channels_last: 1.5-1.7x a bf16 step on this CPU (`python -m app bench --profile`, docs/bench);
            # fp32 keeps the contiguous layout, so its answers stay bit-identical to the previous release
            for network in (self.generator, self.discriminator):
                network.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.encoder = encoder.to(self.device).eval().requires_grad_(False) if encoder is not None else None

    @property
    def has_encoder(self) -> bool:
        return self.encoder is not None

    def batch(self) -> SearchBatch:
        """An empty slot table on this runner's networks, for callers that admit and step themselves."""
        return SearchBatch(self.generator, self.discriminator, self.device, self.precision, self.encoder, self.options)

    def run(self, jobs: Sequence[SearchJob]) -> list[SearchResult]:
        """Every restart of every job in one batch, stepped until all have ended; results in job order."""
        return run_to_end(self.batch(), jobs)

    def warm(self) -> None:
        """Two steps at every padded size, before the runner serves: the first request at a size then finds
        its kernels chosen (cuDNN's benchmark) and its memory cached, instead of paying for both itself.

        The discriminator's prior and, where there is one, the encoder's start are warmed too.
        """
        side = self.generator.config.resolution
        hole = torch.zeros(side, side, dtype=torch.bool)
        hole[side // 4 : side - side // 4, side // 4 : side - side // 4] = True
        target = torch.zeros(self.generator.config.channels, side, side)
        init: Init = "encoder" if self.encoder is not None else "random"
        for size in self.options.sizes:
            counts = [_MOST_RESTARTS] * (size // _MOST_RESTARTS) + (
                [size % _MOST_RESTARTS] if size % _MOST_RESTARTS else []
            )
            params = [SearchParams(iterations=2, restarts=count, init=init) for count in counts]
            self.run([SearchJob(target, hole, p) for p in params])
