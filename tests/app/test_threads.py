"""app.threads: the process's thread pools sized together where a service starts."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np  # noqa: F401  (NumPy's OpenBLAS)
import pytest
import scipy.sparse.linalg  # noqa: F401  (SciPy's own OpenBLAS, loaded as the finish loads it)
import torch
from threadpoolctl import threadpool_info, threadpool_limits

from app.threads import size_thread_pools


@pytest.fixture
def restored() -> Iterator[None]:
    """Whatever this test sets, the rest of the session gets the pools as they were."""
    torch_threads = torch.get_num_threads()
    with threadpool_limits(limits=None):
        yield
    torch.set_num_threads(torch_threads)


def test_blas_runs_one_thread_in_each_post_processing_thread(restored: None) -> None:
    threadpool_limits(2, user_api="blas")  # as a fresh process on a 2-core machine starts
    size_thread_pools(None)
    blas = [pool for pool in threadpool_info() if pool["user_api"] == "blas"]
    assert blas, "NumPy's OpenBLAS is loaded"
    assert all(pool["num_threads"] == 1 for pool in blas), blas


def test_torch_threads_are_the_setting_s(restored: None) -> None:
    size_thread_pools(1)
    assert torch.get_num_threads() == 1
