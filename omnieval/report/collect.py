"""The report's data: every work item of a saved run with its output, scores and failures, paired across think modes.

Read only from the output folder: the plans (:func:`omnieval.planning.plan_run`, the saved ``run_config.json``), the
store's generation records and the score records of each metric's current options
(:func:`omnieval.scoring.stored_contributions`), and ``results.json`` for the aggregate values.  Nothing is
generated or scored.

**Per-item values.**  An item's value for a metric is what the metric reports for that item alone: a fresh
instance folds the item's stored contribution and computes (``MeanMetric`` family: the item's own scores; VBench-Long:
the item's clip mean; GenEval: 1/0 for its tag and ``overall``).  They carry the result names of the metric table
(:func:`omnieval.aggregate.summary.result_name`).  Distribution metrics (``bootstrap = False``: FID, KID, FVD) have
no per-item value; their items show their stored fields only.  Where a metric cannot be built here (its weights are
absent: the page says so), the numeric fields of the stored contribution stand in for its values.

**Pairs.**  Items are grouped by (doc, sample index): think off and on of the same doc use the same seed
(planning), so they sit side by side, with ``delta = on - off`` of every value both sides have.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from omnieval.aggregate.summary import result_name
from omnieval.config import MetricSpec, stable_hash
from omnieval.errors import OmniEvalError
from omnieval.metrics.base import Metric
from omnieval.planning import TaskPlan, WorkItem
from omnieval.report.failures import Failure, generation_failure, score_failures
from omnieval.results import MetricResult, Results, think_key
from omnieval.scoring import score_key, stored_contributions
from omnieval.store import Store

MetricFactory = Callable[[MetricSpec], Metric]


@dataclass
class MetricScores:
    """One metric's record of one item: its per-item values (result name -> value) and the stored fields."""

    label: str
    values: dict[str, float]
    fields: dict[str, Any]
    note: str = ""


@dataclass
class ItemView:
    item: WorkItem
    record: dict | None  # the generation record as stored
    present: bool  # its media file is present (checksums are verified by `omnieval run`/`score`, not re-read here)
    metrics: list[MetricScores] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)

    @property
    def info(self) -> dict:
        return (self.record or {}).get("info") or {}

    @property
    def rewritten_prompt(self) -> str | None:
        text = self.info.get("rewritten_prompt")
        return str(text) if text is not None else None

    @property
    def artifact(self) -> str | None:
        return (self.record or {}).get("artifact") if self.present else None

    @property
    def response(self) -> str | None:
        rec = self.record or {}
        return None if rec.get("artifact") or "response" not in rec else str(rec["response"])

    @property
    def values(self) -> dict[str, float]:
        return {k: v for m in self.metrics for k, v in m.values.items()}


@dataclass
class Pair:
    """One doc and sample index in every think mode that ran (``sides``: think -> item)."""

    anchor: str
    item: WorkItem  # the first side's item (doc, sample index, seed and prompt are shared)
    sides: dict[str, ItemView]

    @property
    def deltas(self) -> dict[str, float]:
        off, on = self.sides.get("off"), self.sides.get("on")
        if off is None or on is None:
            return {}
        a, b = off.values, on.values
        return {k: b[k] - a[k] for k in a if k in b}

    @property
    def failures(self) -> list[tuple[ItemView, Failure]]:
        return [(view, f) for view in self.sides.values() for f in view.failures]


@dataclass(frozen=True)
class ScoreName:
    name: str
    higher_is_better: bool


@dataclass
class TaskView:
    plan: TaskPlan
    modes: list[str]
    pairs: list[Pair]
    names: list[ScoreName]  # per-item value names, in metric order
    results: dict[str, dict[str, MetricResult]]  # think -> result name -> value (from results.json)
    ablations: dict[str, Any]
    notes: list[str]

    @property
    def task(self) -> str:
        return self.plan.cfg.task

    @property
    def failures(self) -> list[tuple[Pair, ItemView, Failure]]:
        return [(p, view, f) for p in self.pairs for view, f in p.failures]


def anchor(item: WorkItem) -> str:
    return "i-" + stable_hash([item.task, item.doc.id, item.sample_index], length=12)


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def display_fields(contribution: dict[str, Any]) -> dict[str, Any]:
    """The stored contribution for display: arrays summarised as ``array <dtype> <shape>``."""
    return {k: f"array {v.dtype} {tuple(v.shape)}" if isinstance(v, np.ndarray) else v for k, v in contribution.items()}


class _PerItem:
    """Per-item values of one metric (see the module docstring)."""

    def __init__(self, spec: MetricSpec, n_metrics: int, factory: MetricFactory, notes: list[str]):
        self.spec, self.n_metrics = spec, n_metrics
        self.metric: Metric | None = None
        self.directions: dict[str, bool] = {}  # result name -> higher is better
        self.note = ""
        try:
            self.metric = factory(spec)
        except (OmniEvalError, ImportError) as exc:
            self.note = "stored numeric fields (the metric cannot be built here)"
            notes.append(f"metric {spec.result_label}: per-item values are its stored numeric fields: {exc}")
        if self.metric is not None and not self.metric.bootstrap:
            self.note = "distribution metric: no per-item value"

    def name(self, key: str) -> str:
        return result_name(self.spec, key, self.n_metrics)

    def values(self, contribution: dict[str, Any]) -> tuple[dict[str, float], str]:
        if self.metric is None:
            raw = {self.name(k): _finite(v) for k, v in contribution.items()}
            return {k: v for k, v in raw.items() if v is not None}, self.note
        if not self.metric.bootstrap:
            return {}, self.note
        one = self.metric.fresh()
        try:
            one.fold(contribution)
            computed = one.compute()
        except Exception as exc:  # noqa: BLE001 -- display only: a metric whose compute needs more than one item
            return {}, f"no per-item value ({type(exc).__name__}: {exc})"
        out = {}
        for key, value in computed.items():
            name = self.name(key)
            self.directions.setdefault(name, self.metric.is_higher_better(key))
            if _finite(value) is not None:
                out[name] = _finite(value)
        return out, ""


def collect_task(plan: TaskPlan, store: Store, results: Results | None, factory: MetricFactory) -> TaskView:
    task = plan.cfg.task
    notes: list[str] = []
    n_metrics = len(plan.metrics)
    views: dict[str, ItemView] = {}
    for item in plan.items:
        record = store.find("samples", task, item.key)
        present = record is not None and (not record.get("artifact") or (store.root / record["artifact"]).is_file())
        view = ItemView(item, record, present)
        failed = store.failure(task, item.key) if record is None else None  # the generation raised (failures/)
        failure = generation_failure(record if failed is None else failed, present)
        if failure:
            view.failures.append(failure)
        views[item.key] = view

    names: dict[str, bool] = {}
    table = {think: (results.results.get(think_key(task, think)) or {}) if results else {} for think in ("off", "on")}
    for spec in plan.metrics:
        per_item = _PerItem(spec, n_metrics, factory, notes)
        found, missing = stored_contributions(plan, spec, store)
        for item, contribution in found:
            values, note = per_item.values(contribution)
            view = views[item.key]
            view.metrics.append(MetricScores(spec.result_label, values, display_fields(contribution), note))
            view.failures += score_failures(spec.result_label, contribution)
            for key in values:
                if key not in names:
                    stored = table[item.think].get(key)
                    names[key] = stored.higher_is_better if stored else per_item.directions.get(key, True)
        for item in missing:
            if views[item.key].present:  # an item without output is already listed as such
                failed = store.failure(task, score_key(item, spec))
                views[item.key].failures += score_failures(spec.result_label, None, failed)

    pairs: dict[tuple[str, int], Pair] = {}
    for item in plan.items:
        pair = pairs.setdefault((item.doc.id, item.sample_index), Pair(anchor(item), item, {}))
        pair.sides[item.think] = views[item.key]
    modes = [m for m in ("off", "on") if any(it.think == m for it in plan.items)]
    if results is not None and task in results.task_hashes and results.task_hashes[task].config != plan.cfg.config_hash():
        notes.append(f"results.json was written with another config of {task} (config hash "
                     f"{results.task_hashes[task].config}, now {plan.cfg.config_hash()}); run `omnieval score` to update it")
    return TaskView(plan=plan, modes=modes, pairs=list(pairs.values()), names=[ScoreName(k, v) for k, v in names.items()],
                    results={t: v for t, v in table.items() if v}, ablations=(results.ablations.get(task) or {}) if results else {},
                    notes=notes)
