"""One photo through one model: prepared at the model's resolution, then finished at the photo's size.

The route, `python -m app complete` and `evaluate` all restore a photo the same way; this is that way,
written once. Finishing needs only the photo until the model's answer exists, so its plan can be made
while the job runs (`plan`), and one answer can be finished several ways (the evaluation's ablations).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from app.engine.compose import MAX_BLEND_SIDE, FinishPlan, Prepared, finish_planned, plan_finish, prepare
from app.engine.depth import EDGE_FILL, EdgeFill
from app.engine.kinds import Job, Params, ServedKind


@dataclass(frozen=True)
class Restoration:
    """A photo, its hole, and the model's view of them: what a job is made from and its answer finished into."""

    image: np.ndarray  # (H, W, 3) uint8: what the known pixels come back as
    hole: np.ndarray  # (H, W) bool, True = missing
    prepared: Prepared  # the model's square of `seen` (the image, or its sRGB copy) at model resolution

    @classmethod
    def begin(cls, image: np.ndarray, hole: np.ndarray, resolution: int, seen: np.ndarray | None = None) -> Restoration:
        """`image` brought to `resolution`; `seen`: what the model sees instead, where it differs (sRGB)."""
        return cls(image, hole, prepare(image if seen is None else seen, hole, resolution))

    @property
    def resolution(self) -> int:
        return int(self.prepared.hole.shape[-1])

    def job(self, kind: ServedKind, params: Params) -> Job:
        """The model's view as a job of `kind`."""
        return kind.job(self.prepared.target, self.prepared.hole, params)

    def plan(self, blend: str = "poisson", edge: EdgeFill | None = EDGE_FILL) -> FinishPlan:
        """All of finishing that the model's answer does not change: made while the job runs."""
        return plan_finish(self.image, self.hole, self.resolution, blend, edge, MAX_BLEND_SIDE, self.prepared.window)

    def finish(self, generated: torch.Tensor, plan: FinishPlan | None = None) -> np.ndarray:
        """(H, W, 3) uint8: the photo with its hole filled from the answer (C, R, R) in [-1, 1]; every known pixel
        byte-identical. `plan`: one made beforehand (default: poisson blend and the edge fill)."""
        return finish_planned(self.image, self.hole, generated, plan if plan is not None else self.plan())
