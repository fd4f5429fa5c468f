"""Aggregation: stored per-item contributions -> a task's typed results.

For each metric and think mode the contributions are folded into a fresh metric (``compute``), and the
uncertainty comes from resampling docs (:func:`omnieval.aggregate.stats.cluster_bootstrap`); with ``group_by``
the same contributions give one value per group (no re-scoring).  Where both think modes ran, the paired items
give the ablation (:func:`omnieval.aggregate.stats.paired_comparison`).  Task-level aggregates (VBench
Total/Quality/Semantic) are computed from the values.  :func:`result_name` is the one place result names are made.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from omnieval.aggregate import stats, task_aggregate
from omnieval.config import MetricSpec, TaskConfig
from omnieval.metrics.base import Metric
from omnieval.planning import TaskPlan, WorkItem
from omnieval.results import Ablation, MetricResult, think_key

Pairs = list[tuple[WorkItem, dict]]


def result_name(spec: MetricSpec, name: str, n_metrics: int, group: tuple[str, Any] | None = None) -> str:
    """``name`` as reported by the metric, prefixed ``<label>/`` in multi-metric tasks (unless it already starts
    with the label) and suffixed ``[<field>=<value>]`` for a breakdown group."""
    label = spec.result_label
    full = name if n_metrics == 1 or name.startswith(label) else f"{label}/{name}"
    return full if group is None else f"{full}[{group[0]}={group[1]}]"


def group_values(value: Any) -> list[str]:
    """The groups a doc field value puts an item in: one per list element, none for a missing value."""
    if value is None:
        return []
    values = value if isinstance(value, (list, tuple)) else [value]
    return [str(v) for v in values]


def breakdown(cfg: TaskConfig, pairs: Pairs) -> list[tuple[tuple[str, str] | None, Pairs]]:
    """The overall set and one subset per ``group_by`` field value (groups in order of first appearance)."""
    out: list[tuple[tuple[str, str] | None, Pairs]] = [(None, pairs)]
    for name in cfg.group_by:
        groups: dict[str, Pairs] = {}
        for item, contribution in pairs:
            for value in group_values(item.doc.get(name)):
                groups.setdefault(value, []).append((item, contribution))
        out += [((name, value), subset) for value, subset in groups.items()]
    return out


@dataclass
class TaskSummary:
    results: dict[str, dict[str, MetricResult]] = field(default_factory=dict)
    ablations: dict[str, Ablation] = field(default_factory=dict)
    metric_options: dict[str, dict[str, Any]] = field(default_factory=dict)


def summarize(plan: TaskPlan, metrics: dict[str, Metric], contributions: dict[str, Pairs]) -> TaskSummary:
    """The task's results from ``contributions`` (metric label -> (item, contribution) pairs)."""
    summary = TaskSummary()
    n_metrics = len(plan.metrics)
    for spec in plan.metrics:
        label, metric = spec.result_label, metrics[spec.result_label]
        options: dict[str, Any] = {"name": spec.name, "options": metric.options_dict()}
        if spec.where:
            options["where"] = dict(spec.where)
        by_mode: dict[str, Pairs] = {}
        for item, contribution in contributions.get(label, []):
            by_mode.setdefault(item.think, []).append((item, contribution))
        for think, pairs in by_mode.items():
            out = summary.results.setdefault(think_key(plan.cfg.task, think), {})
            for group, subset in breakdown(plan.cfg, pairs):
                values, info = _values(metric, subset)
                if group is None and info:
                    options.setdefault("info", {})[think] = info
                intervals = stats.cluster_bootstrap(metric, [c for _, c in subset], [it.doc.id for it, _ in subset])
                for name, value in values.items():
                    iv = intervals.get(name)
                    out[result_name(spec, name, n_metrics, group)] = MetricResult(
                        value=value, stderr=iv.stderr if iv else None, ci_low=iv.ci_low if iv else None,
                        ci_high=iv.ci_high if iv else None, n=len(subset), n_clusters=len({it.doc.id for it, _ in subset}),
                        higher_is_better=metric.is_higher_better(name))
        if "off" in by_mode and "on" in by_mode:
            _ablate(plan.cfg, spec, metric, by_mode["off"], by_mode["on"], n_metrics, summary.ablations)
        summary.metric_options[label] = options
    if plan.cfg.aggregates:
        add_task_aggregates(plan.cfg, summary)
    return summary


def _values(metric: Metric, pairs: Pairs) -> tuple[dict[str, float], dict[str, Any]]:
    folded = metric.fresh()
    for _, contribution in pairs:
        folded.fold(contribution)
    values = folded.compute()
    return values, folded.result_info()


def _ablate(cfg: TaskConfig, spec: MetricSpec, metric: Metric, off: Pairs, on: Pairs, n_metrics: int,
            out: dict[str, Ablation]) -> None:
    on_by_key = {(it.doc.id, it.sample_index): (it, c) for it, c in on}
    paired = [(item, c, on_by_key[(item.doc.id, item.sample_index)][1]) for item, c in off
              if (item.doc.id, item.sample_index) in on_by_key]
    for group, subset in breakdown(cfg, [(item, (a, b)) for item, a, b in paired]):
        if not subset:
            continue
        tests = stats.paired_comparison(metric, [a for _, (a, _) in subset], [b for _, (_, b) in subset],
                                        [it.doc.id for it, _ in subset])
        for name, t in tests.items():
            out[result_name(spec, name, n_metrics, group)] = Ablation(
                off=t.off, on=t.on, delta=t.delta, stderr=t.stderr, ci_low=t.ci_low, ci_high=t.ci_high, p_value=t.p_value,
                n=t.n_pairs, n_clusters=t.n_clusters, higher_is_better=metric.is_higher_better(name))


def add_task_aggregates(cfg: TaskConfig, summary: TaskSummary) -> None:
    """Task-level aggregates (e.g. VBench Total/Quality/Semantic) per think mode, and their on-off deltas.
    They are functions of other values, so they carry no stderr of their own."""
    names = [k for name in cfg.aggregates for k in task_aggregate(name, {})]
    for out in summary.results.values():
        values = {name: r.value for name, r in out.items()}
        for name in cfg.aggregates:
            for key, entry in task_aggregate(name, values).items():
                out[key] = MetricResult(value=entry["value"], higher_is_better=entry.get("higher_is_better", True),
                                        missing=entry.get("missing"))
    off, on = summary.results.get(think_key(cfg.task, "off")), summary.results.get(think_key(cfg.task, "on"))
    if off and on:
        for key in _present(names, off, on):
            a, b = off[key].value, on[key].value
            if a is not None and b is not None:
                summary.ablations[key] = Ablation(off=a, on=b, delta=b - a, higher_is_better=off[key].higher_is_better)


def _present(names: Iterable[str], *tables: dict) -> list[str]:
    return [k for k in dict.fromkeys(names) if all(k in t for t in tables)]
