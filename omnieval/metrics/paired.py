"""Paired-data bookkeeping for metrics that compare an output with a source or ground truth (editing).

Each such metric states its size convention (``convention``: how the two sides are resized/cropped before
comparing, as the reference code does) and records, per item, the sizes it compared (``sizes``: ``"HxW"`` when
output and the other side agree, ``"HxW->HxW"`` (output -> other) when they differ).  The number of items whose
sizes differed goes into the results next to the convention (``metric_options.<label>.info``).
"""
from __future__ import annotations

from typing import Any, ClassVar

from omnieval.media import as_frames
from omnieval.metrics.base import MeanMetric, sum_state


def size_of(media: Any) -> str:
    frames = as_frames(media)
    return f"{frames.shape[1]}x{frames.shape[2]}"


def sizes_note(output: Any, other: Any) -> str:
    """``"HxW"`` if both sides have that size, else ``"HxW->HxW"`` (output -> the side it is compared with)."""
    a, b = size_of(output), size_of(other)
    return a if a == b else f"{a}->{b}"


class PairedSizes(MeanMetric):
    """Mixin (list it before the metric's base class): counts items whose output size differs from the other side."""

    state = {**MeanMetric.state, "n_resized": sum_state(0)}
    #: how the two sides are brought to comparable tensors (states the reference's resize / crop)
    convention: ClassVar[str] = ""

    def fold(self, contribution: dict[str, Any]) -> None:
        super().fold(contribution)
        if "->" in str(contribution.get("sizes", "")):
            self.n_resized += 1

    def result_info(self) -> dict[str, Any]:
        info = dict(super().result_info())
        info.update(convention=self.convention, items_with_other_size=int(self.n_resized))
        return info


def with_sizes(scores: list[dict[str, Any]], pairs: list[tuple[Any, Any]]) -> list[dict[str, Any]]:
    """Add each item's ``sizes`` note to its score dict."""
    return [dict(s, sizes=sizes_note(a, b)) for s, (a, b) in zip(scores, pairs)]

