"""Per-row transcendental functions give a row the same bits alone and among others (`app.engine.lanes`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from app.engine.adam import adam_step
from app.engine.lanes import per_row
from app.engine.losses import prior_loss


def _value_and_grad(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    values = values.clone().requires_grad_(True)
    loss = prior_loss(values)
    (grad,) = torch.autograd.grad(loss.sum(), values)
    return loss.detach(), grad


def test_the_prior_loss_and_its_gradient_do_not_depend_on_the_batch() -> None:
    logits = torch.randn(200, generator=torch.Generator().manual_seed(0)) * 4
    batch_loss, batch_grad = _value_and_grad(logits[:65])
    for row in range(65):
        alone_loss, alone_grad = _value_and_grad(logits[row : row + 1])
        assert torch.equal(alone_loss[0], batch_loss[row]) and torch.equal(alone_grad[0], batch_grad[row]), row


def test_adams_bias_correction_does_not_depend_on_the_batch() -> None:
    rows = 40
    generator = torch.Generator().manual_seed(1)
    params, grad = torch.randn(rows, 100, generator=generator), torch.randn(rows, 100, generator=generator)
    m, v = torch.randn(rows, 100, generator=generator) * 0.1, torch.rand(rows, 100, generator=generator) * 0.01
    steps = torch.arange(rows, dtype=torch.int64) * 7
    lr = torch.full((rows,), 0.01)
    together = adam_step(params, grad, m.clone(), v.clone(), steps.clone(), lr)
    for row in range(rows):
        part = slice(row, row + 1)
        alone = adam_step(params[part], grad[part], m[part].clone(), v[part].clone(), steps[part].clone(), lr[part])
        assert torch.equal(alone[0], together[row]), row


def test_per_row_is_the_function_itself() -> None:
    values = torch.linspace(-20, 20, 101)
    torch.testing.assert_close(per_row(lambda x: F.softplus(-x), values), F.softplus(-values))
    assert per_row(torch.exp, torch.zeros(3, 1)).shape == (3, 1)
