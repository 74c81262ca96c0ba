"""The bench's one error: a request it cannot measure, said in one line instead of a traceback."""

from __future__ import annotations


class BenchError(Exception):
    """A bench option that does not fit the model it names."""
