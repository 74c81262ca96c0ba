"""The two terms of Yeh et al.'s objective, one value per slot.

Every reduction is per row (never over the batch), so a slot's gradient is
the gradient of its own loss alone and does not depend on its neighbours.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from app.engine.lanes import per_row


def importance_weights(hole: torch.Tensor, window: int = 7) -> torch.Tensor:
    """(R, R) bool hole on the CPU -> (R, R) float weights W = M * (share of hole pixels in a window).

    Yeh et al., eq. 4: a known pixel counts as much as it is surrounded by
    missing ones, so the context next to the hole drives the search and
    distant pixels (which say little about the hole) do not. Outside the image
    counts as neither: the share is over in-image pixels only.

    Whole counts from one OpenCV box sum, divided once: the same bits as `avg_pool2d` with
    `count_include_pad=False`, without its OpenMP region, which on a busy 2-core host waited for
    its second thread on every admitted job.
    """
    assert hole.dim() == 2 and hole.dtype == torch.bool, (hole.shape, hole.dtype)
    assert window % 2 == 1, "the window must be centred on its pixel"
    missing = np.ascontiguousarray(hole.numpy())
    share = _box_sum(missing.view(np.uint8), window) / _in_image(*missing.shape, window)
    share[missing] = 0.0
    return torch.from_numpy(share)


def _box_sum(plane: np.ndarray, window: int) -> np.ndarray:
    """(H, W) float32: the sum of each pixel's window of an (H, W) uint8 plane, zero outside it (whole counts)."""
    return cv2.boxFilter(plane, cv2.CV_32F, (window, window), normalize=False, borderType=cv2.BORDER_CONSTANT)


@functools.lru_cache(maxsize=8)
def _in_image(rows: int, cols: int, window: int) -> np.ndarray:
    """(rows, cols) float32: how many pixels of each pixel's window lie inside the image."""
    counts = _box_sum(np.ones((rows, cols), dtype=np.uint8), window)
    counts.flags.writeable = False
    return counts


def contextual_loss(generated: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """|W * (G(z) - y)|_1 per slot: (S, C, R, R), (S, C, R, R), (S, 1, R, R) -> (S,)."""
    return (weights * (generated - target)).abs().flatten(1).sum(1)


def prior_loss(logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating form of log(1 - D(G(z))): -log D(G(z)) = softplus(-logit), per slot.

    Both push G(z) towards what D calls real; this one keeps a useful gradient
    where D is sure the image is fake, which is where the push matters. One value per row: computed on
    whole SIMD vectors (`per_row`), so a row's loss and gradient do not depend on how many share its batch.
    """
    return per_row(lambda values: F.softplus(-values), logits)
