"""How a device steps its slot table: padded batch sizes, how often plateaus are read, warm-up.

A step's batch is padded up to the next of a few fixed `sizes`, so a compiled or graph-captured
step sees a handful of shapes instead of one per slot count, and those shapes can be warmed up
before the service reports ready. Plateaus are found on the device every step but read by the
host only every `plateau_every` steps: reading them is a device-to-host wait, and a row that
has plateaued is frozen on the device meanwhile, so a later read gives the same answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.engine.kinds import Batch
    from app.engine.search import SearchResult

# 8: a plateaued row costs at most 7 frozen steps (under 2 % of the random start's 400 iterations,
# and of one restart's patience of 50) while the host waits for the device on one step in eight
PLATEAU_EVERY = 8


@dataclass(frozen=True)
class StepOptions:
    """`sizes`: padded batch sizes, ascending (empty: every step runs its exact slot count);
    `plateau_every`: steps between the host's reads of which rows plateaued; `warm`: run every size
    once when the runner is built, before it serves."""

    sizes: tuple[int, ...] = ()
    plateau_every: int = PLATEAU_EVERY
    warm: bool = False

    def __post_init__(self) -> None:
        if self.plateau_every < 1:
            raise ValueError(f"plateau_every must be 1 or more, got {self.plateau_every}")
        if any(size < 1 for size in self.sizes) or list(self.sizes) != sorted(set(self.sizes)):
            raise ValueError(f"sizes must be ascending positive whole numbers, got {self.sizes}")

    def padded(self, rows: int) -> int:
        """The batch size `rows` live slots run at: the smallest size that holds them, else `rows` itself."""
        return next((size for size in self.sizes if size >= rows), rows)


def powers_of_two(limit: int) -> tuple[int, ...]:
    """1, 2, 4, ... up to `limit`, and `limit` itself: at most twice the work of the exact batch."""
    sizes = [1 << power for power in range(limit.bit_length()) if 1 << power < limit]
    return (*sizes, limit)


def run_to_end(batch: Batch, jobs: Sequence[Any]) -> list[SearchResult]:
    """Every job through one table, stepped until none is live (one step for a one-pass kind); results in job
    order. What each kind's `Runner.run` is: the offline tools and tests run jobs without the pool this way."""
    keys = [batch.add(job) for job in jobs]
    while batch.live_slots:
        batch.step()
    return [batch.pop(key) for key in keys]
