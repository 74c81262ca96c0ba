"""Named engine errors; the service maps them to 4xx answers, so messages say what to fix."""

from __future__ import annotations


class EngineError(Exception):
    """Any request the engine cannot serve as given."""


class MaskError(EngineError):
    """A hole mask that cannot be searched: empty, all-hole, or of another shape than its image."""


class ParamsError(EngineError, ValueError):
    """Search parameters outside the range the search is defined for."""


class PrecisionError(EngineError, ValueError):
    """A precision this device cannot run (e.g. fp16 on a CPU)."""
