"""Adam with one state row per search slot.

`torch.optim.Adam` keeps one step count per parameter tensor; the slots of a
batch start and stop at different times, so bias correction needs a step
count per row or a search's trajectory would depend on its neighbours.
"""

from __future__ import annotations

import torch

from app.engine.lanes import per_row

BETA1 = 0.9  # Kingma & Ba defaults, as in Yeh et al.'s code
BETA2 = 0.999
EPS = 1e-8


def adam_step(
    params: torch.Tensor,
    grad: torch.Tensor,
    m: torch.Tensor,
    v: torch.Tensor,
    steps: torch.Tensor,
    lr: torch.Tensor,
) -> torch.Tensor:
    """One Adam update of each row of `params` (S, D); returns the new params.

    Updates the moments `m`, `v` (S, D) and the per-row step counts `steps` (S,) in place;
    `lr` (S,) is one learning rate per row.
    """
    assert params.shape == grad.shape == m.shape == v.shape, (params.shape, grad.shape, m.shape)
    steps += 1
    m.mul_(BETA1).add_(grad, alpha=1 - BETA1)
    v.mul_(BETA2).addcmul_(grad, grad, value=1 - BETA2)
    t = steps.to(params.dtype).unsqueeze(1)
    # pow is transcendental: on whole SIMD vectors, so a row's bias correction does not depend on its batch
    m_hat = m / per_row(lambda k: 1 - BETA1**k, t)
    v_hat = v / per_row(lambda k: 1 - BETA2**k, t)
    return params - lr.unsqueeze(1) * m_hat / (v_hat.sqrt() + EPS)
