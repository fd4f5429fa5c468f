"""Macro means: the mean per group of items (a doc field, e.g. FiVE-Bench's edit type), then the unweighted mean of
the group means -- how benchmarks that report per-category tables average them (FiVE's
``final_averaged_results.csv`` is the mean of its six per-type averages).

A :class:`MacroMean` contribution carries its group under :data:`GROUP` (a string, so it is not averaged).  Per
value key, a group whose items all lack that key (e.g. a metric undefined on every frame of every item of the group)
is left out of the mean over groups, as the reference skips an ``N/A`` column.  With ``macro_over: null`` the value
is the plain (micro) mean over items.  ``group_by`` breakdowns of the same field give the per-group values (a
subset holding one group: its macro mean is that group's mean).
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, ClassVar

from omnieval.metrics.base import MeanMetric, MetricInput, State, dict_sum_state

#: contribution field holding the item's group
GROUP = "macro_group"


@dataclass(frozen=True)
class MacroOptions:
    """``macro_over``: the doc field whose values are the groups (None: plain mean over items)."""

    macro_over: str | None = None


class MacroMean(MeanMetric):
    """A :class:`MeanMetric` whose reported values are macro means over ``options.macro_over`` groups.

    Keys in :attr:`counted` are totals (sums over items, e.g. failure counts), not means."""

    state: ClassVar[dict[str, State]] = {**MeanMetric.state, "group_sums": dict_sum_state(), "group_counts": dict_sum_state()}
    #: contribution keys reported as sums over items instead of means
    counted: ClassVar[tuple[str, ...]] = ()

    def group_of(self, item: MetricInput) -> dict[str, str]:
        """``{GROUP: <the item's group>}`` to merge into its contribution (empty without ``macro_over``)."""
        field = self.options.macro_over
        return {GROUP: str(item.doc.get(field))} if field else {}

    def fold(self, contribution: dict[str, Any]) -> None:
        super().fold(contribution)
        group = contribution.get(GROUP)
        if group is None:
            return
        for key, value in contribution.items():
            if isinstance(value, numbers.Real) and key not in self.counted:
                self.group_sums[(group, key)] = self.group_sums.get((group, key), 0.0) + float(value)
                self.group_counts[(group, key)] = self.group_counts.get((group, key), 0) + 1

    def compute(self) -> dict[str, float]:
        out = {key: self.sums.get(key, 0.0) for key in self.counted}
        if not self.group_counts:  # no groups: plain means
            out.update({k: v for k, v in super().compute().items() if k not in self.counted})
            return out
        means: dict[str, list[float]] = {}
        for (group, key), n in sorted(self.group_counts.items()):
            if n:
                means.setdefault(key, []).append(self.group_sums[(group, key)] / n)
        out.update({key: sum(v) / len(v) for key, v in means.items()})
        return out
