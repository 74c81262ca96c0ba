"""The completion engine: latent search of Yeh et al. (CVPR 2017), masks and blending. Pure torch, no HTTP."""

from app.engine.batch import SearchBatch
from app.engine.compose import BLENDS, Prepared, finish, prepare
from app.engine.errors import EngineError, MaskError, ParamsError, PrecisionError
from app.engine.precision import PRECISIONS
from app.engine.runner import SearchRunner
from app.engine.search import SearchJob, SearchParams, SearchResult
from training.masks import MASK_KINDS, make_mask

__all__ = [
    "BLENDS",
    "MASK_KINDS",
    "PRECISIONS",
    "EngineError",
    "MaskError",
    "ParamsError",
    "PrecisionError",
    "Prepared",
    "SearchBatch",
    "SearchJob",
    "SearchParams",
    "SearchResult",
    "SearchRunner",
    "finish",
    "make_mask",
    "prepare",
]
