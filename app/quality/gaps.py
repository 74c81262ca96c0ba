"""Paired differences between methods on the same damaged photos: is a model ahead, behind, or tied?

Per-method intervals overlap even when one method beats another on nearly every
photo; differencing each photo's scores first removes the photo-to-photo spread,
so these intervals are the ones that decide a win.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from app.quality.baselines import BASELINES
from app.quality.stats import Interval, mean_interval

Record = dict[str, float | int | str]


@dataclass(frozen=True)
class FamilyGaps:
    """One mask family: the strongest classical method by hole PSNR and the search's paired lead over it."""

    kind: str
    best_classical: str
    psnr_vs_best: Interval  # ours - best classical, hole PSNR dB
    ssim_vs_telea: Interval  # ours - telea, whole-image SSIM
    blend_gain: Interval  # ours-no-edge - ours-no-blend, hole PSNR dB: what Poisson blending adds
    edge_gain: Interval  # ours - ours-no-edge, hole PSNR dB: what the classical fill near the edge adds
    psnr_ahead_share: float  # share of photos where ours has the higher hole PSNR: a mean can hide a long tail


def verdict(gap: Interval) -> str:
    """`win` or `loss` when the 95 % interval excludes zero, `tie` when it does not."""
    if gap.low > 0:
        return "win"
    if gap.high < 0:
        return "loss"
    return "tie"


class Photos:
    """One family's photos, each a map from method to its record: what every paired difference reads."""

    def __init__(self, rows: list[dict[str, Record]]) -> None:
        self.rows = rows
        self.best_classical = max(BASELINES, key=lambda method: sum(float(row[method]["psnr"]) for row in rows))

    def paired(self, a: str, b: str, metric: str) -> Interval:
        """Mean and 95 % interval of a - b over the photos."""
        return mean_interval([float(row[a][metric]) - float(row[b][metric]) for row in self.rows])

    def ahead(self, method: str) -> float:
        """Share of photos where `method` has the higher hole PSNR than the best classical method."""
        best = self.best_classical
        return sum(float(row[method]["psnr"]) > float(row[best]["psnr"]) for row in self.rows) / len(self.rows)


def by_family(records: Sequence[Record]) -> dict[str, Photos]:
    """Pair every (family, photo) across methods; families in the order the records came."""
    scores: dict[str, dict[int, dict[str, Record]]] = {}
    for record in records:
        photos = scores.setdefault(str(record["kind"]), {})
        photos.setdefault(int(record["index"]), {})[str(record["method"])] = record
    return {kind: Photos(list(photos.values())) for kind, photos in scores.items()}


def cell(gap: Interval | None, digits: int) -> str:
    """`mean [low, high] verdict`; `(reference)` for the model every other is paired with."""
    if gap is None:
        return "(reference)"
    return f"{gap.mean:+.{digits}f} [{gap.low:+.{digits}f}, {gap.high:+.{digits}f}] {verdict(gap)}"


def family_gaps(records: Sequence[Record]) -> list[FamilyGaps]:
    """One model's gaps per family (methods `ours`, `ours-no-edge`, `ours-no-blend` and the baselines)."""
    return [
        FamilyGaps(
            kind=kind,
            best_classical=photos.best_classical,
            psnr_vs_best=photos.paired("ours", photos.best_classical, "psnr"),
            ssim_vs_telea=photos.paired("ours", "telea", "ssim"),
            blend_gain=photos.paired("ours-no-edge", "ours-no-blend", "psnr"),
            edge_gain=photos.paired("ours", "ours-no-edge", "psnr"),
            psnr_ahead_share=photos.ahead("ours"),
        )
        for kind, photos in by_family(records).items()
    ]


def format_gaps(gaps: Sequence[FamilyGaps]) -> str:
    """Markdown table: each paired mean with its 95 % interval and a win/tie/loss verdict."""

    lines = [
        "| masks | best classical | ours - best classical, hole PSNR dB | photos ours ahead "
        "| ours - telea, SSIM | Poisson blend's gain, hole PSNR dB | edge fill's gain, hole PSNR dB |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for gap in gaps:
        lines.append(
            f"| {gap.kind} | {gap.best_classical} | {cell(gap.psnr_vs_best, 2)} | {gap.psnr_ahead_share:.0%} "
            f"| {cell(gap.ssim_vs_telea, 3)} | {cell(gap.blend_gain, 2)} | {cell(gap.edge_gain, 2)} |"
        )
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class ModelGaps:
    """One model on one family, beside other models: its paired lead over the best classical and the first model."""

    kind: str
    model: str
    best_classical: str
    psnr_vs_best: Interval  # model - best classical, hole PSNR dB
    ssim_vs_telea: Interval  # model - telea, whole-image SSIM
    psnr_vs_first: Interval | None  # model - the first model, hole PSNR dB (None for the first itself)
    psnr_ahead_share: float  # share of photos where the model beats the best classical


def model_gaps(records: Sequence[Record], models: Sequence[str]) -> list[ModelGaps]:
    """Every (family, model) of an evaluation of several models, families in the order the records came."""
    return [
        ModelGaps(
            kind=kind,
            model=model,
            best_classical=photos.best_classical,
            psnr_vs_best=photos.paired(model, photos.best_classical, "psnr"),
            ssim_vs_telea=photos.paired(model, "telea", "ssim"),
            psnr_vs_first=photos.paired(model, models[0], "psnr") if model != models[0] else None,
            psnr_ahead_share=photos.ahead(model),
        )
        for kind, photos in by_family(records).items()
        for model in models
    ]


def format_model_gaps(gaps: Sequence[ModelGaps]) -> str:
    """Markdown table: a row per (family, model), each paired mean with its 95 % interval and verdict."""

    first = gaps[0].model if gaps else ""
    lines = [
        "| masks | model | best classical | model - best classical, hole PSNR dB | photos ahead "
        f"| model - telea, SSIM | model - {first}, hole PSNR dB |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for gap in gaps:
        lines.append(
            f"| {gap.kind} | {gap.model} | {gap.best_classical} | {cell(gap.psnr_vs_best, 2)} "
            f"| {gap.psnr_ahead_share:.0%} | {cell(gap.ssim_vs_telea, 3)} | {cell(gap.psnr_vs_first, 2)} |"
        )
    return "\n".join(lines) + "\n"
