"""Scoring: per-item metric contributions, computed once and stored.

Decode once: the items that still miss a score are taken in chunks; for each item of a chunk the
:class:`~omnieval.metrics.base.MetricInput` is built **once** -- its output decoded, and its source and reference
media read only if one of the pending metrics needs them (:meth:`Metric.required_inputs`) -- and the same
object goes to every metric of that item.  The chunk's decoded media are dropped before the next chunk, so
memory is bounded by the chunk size (the largest ``batch_size`` of the pending metrics), not the run size.
Metrics that must decode a file their own way (e.g. VBench's scene dimension, which lets decord resize while
decoding) read ``Video.path`` and say so in their docstring.

A score key hashes the item key with the metric name and options, so changing a metric option re-scores exactly
that metric.  A contribution marked :data:`~omnieval.metrics.base.RETRY` (a transient failure such as a judge
outage) is aggregated as a failure and scored again by the next run.
"""
from __future__ import annotations

import time
from typing import Callable

from omnieval.config import MetricSpec, stable_hash
from omnieval.errors import MediaError
from omnieval.generation import request_media
from omnieval.loaders.records import doc_choices, resolve_media_path
from omnieval.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES, read_media
from omnieval.metrics.base import RETRY, Metric, MetricInput
from omnieval.planning import TaskPlan, WorkItem
from omnieval.store import Store


def score_key(item: WorkItem, spec: MetricSpec) -> str:
    return stable_hash({"item": item.key, "metric": spec.options_hash()}, length=32)


def metric_input(plan: TaskPlan, item: WorkItem, store: Store, fields: set[str]) -> MetricInput:
    """The item's metric input with the ``fields`` some metric needs (``output`` and ``doc`` always)."""
    cfg, cap = plan.cfg, plan.capability
    record = store.generation(item.task, item.key)
    if record is None:
        raise MediaError(f"item {item.item_id}: no generated output to score")
    doc = dict(item.doc.fields)
    if cfg.fields.choices or cfg.fields.choices_in_prompt:
        doc.setdefault("choices", doc_choices(cfg, item.doc.fields))
    inp = MetricInput(item_id=item.item_id, output=store.load_output(record), prompt=item.doc.get(cfg.fields.prompt, item.prompt),
                      doc=doc, doc_id=item.doc.id, sample_index=item.sample_index)
    if "reference" in fields:
        reference = item.doc.get(cfg.fields.reference)
        if isinstance(reference, str) and cap.output != "text" and reference.lower().endswith(VIDEO_SUFFIXES + IMAGE_SUFFIXES):
            reference = read_media(resolve_media_path(item.doc, reference))
        inp.reference = reference
    if "source" in fields and cfg.fields.media and cap.takes_media and cap.output != "text":
        inp.source = request_media(plan, item, store)  # what the model edited (a chained item: the previous output)
    if "siblings" in fields:
        inp.siblings = {}
        for other in plan.siblings(item):
            rec = store.generation(other.task, other.key)
            if rec is None:
                raise MediaError(f"item {item.item_id}: sample {other.sample_index} of the same doc has no generated output")
            inp.siblings[other.sample_index] = store.load_output(rec)
    return inp


def _needs_scoring(record: dict | None) -> bool:
    """No score yet, or a score marked for retry (:data:`~omnieval.metrics.base.RETRY`)."""
    return record is None or RETRY in record["contribution"]


_FIELD_OF = {"source": "media", "siblings": "prompts"}  # the task field that provides an input


def _check_inputs(metric: Metric, spec: MetricSpec, inp: MetricInput) -> None:
    for name in metric.required_inputs():
        if getattr(inp, name) is None:
            raise MediaError(f"item {inp.item_id}: metric {spec.result_label} needs the item's {name}, which the task does "
                             f"not provide (set `fields.{_FIELD_OF.get(name, name)}` in the task YAML)")


def score(plan: TaskPlan, items: list[WorkItem], metrics: dict[str, Metric], store: Store, *,
          on_batch: Callable[[int, float], None], progress) -> None:
    """Compute and store the missing contributions of ``items`` for every metric of the plan (``metrics`` maps
    each spec's ``result_label`` to its instance)."""
    task = plan.cfg.task
    pending: list[tuple[MetricSpec, Metric, set[str]]] = []
    for spec in plan.metrics:
        keys = {it.key for it in plan.scored_items(spec, items) if _needs_scoring(store.score(task, score_key(it, spec)))}
        if keys:
            pending.append((spec, metrics[spec.result_label], keys))
    if not pending:
        return
    todo = [it for it in items if any(it.key in keys for _, _, keys in pending)]
    chunk_size = max(metric.batch_size for _, metric, _ in pending)
    for start in range(0, len(todo), chunk_size):
        chunk = todo[start : start + chunk_size]
        inputs = {}
        for item in chunk:
            fields = {f for _, metric, keys in pending if item.key in keys for f in metric.required_inputs()}
            inputs[item.key] = metric_input(plan, item, store, fields)
        for spec, metric, keys in pending:
            mine = [it for it in chunk if it.key in keys]
            for b in range(0, len(mine), metric.batch_size):
                batch = mine[b : b + metric.batch_size]
                batch_inputs = [inputs[it.key] for it in batch]
                for inp in batch_inputs:
                    _check_inputs(metric, spec, inp)
                t0 = time.perf_counter()
                contributions = metric.contributions(batch_inputs)
                on_batch(len(batch), time.perf_counter() - t0)
                for item, contribution in zip(batch, contributions):
                    store.save_score(task, score_key(item, spec), item.key, spec.name, contribution, replace=True)
        progress.update(len(chunk))
        del inputs


def stored_contributions(plan: TaskPlan, spec: MetricSpec, store: Store, items: list[WorkItem] | None = None
                         ) -> tuple[list[tuple[WorkItem, dict]], list[WorkItem]]:
    """The stored contributions of ``spec`` in item-key order, and the items that have none (yet)."""
    found, missing = [], []
    for item in sorted(plan.scored_items(spec, items), key=lambda it: it.key):
        record = store.score(plan.cfg.task, score_key(item, spec))
        if record is None:
            missing.append(item)
        else:
            found.append((item, store.load_contribution(record)))
    return found, missing
