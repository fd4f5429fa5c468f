"""Scoring: per-item metric contributions, computed once and stored.

Decode once: the items are taken block by block (:mod:`omnieval.shards`); for each item of a block that some
pending batch needs, the :class:`~omnieval.metrics.base.MetricInput` is built **once** -- its output decoded, and
its source and reference media read only if one of the pending metrics needs them (:meth:`Metric.required_inputs`)
-- and the same object goes to every metric of that item.  The block's decoded media are dropped before the next
block, so memory is bounded by the block size (the largest batch size of the task), not the run size.
Metrics that must decode a file their own way (e.g. VBench's scene dimension, which lets decord resize while
decoding) read ``Video.path`` and say so in their docstring.

A score key hashes the item key with the metric name and options, so changing a metric option re-scores exactly
that metric.  A contribution marked :data:`~omnieval.metrics.base.RETRY` (a transient failure such as a judge
outage) is aggregated as a failure and scored again by the next run.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from omnieval import shards
from omnieval.config import MetricSpec, stable_hash
from omnieval.errors import MediaError, OmniEvalError
from omnieval.failures import FailureTracker, failure_record, is_fatal
from omnieval.generation import request_media
from omnieval.loaders.records import doc_choices, resolve_media_path
from omnieval.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES, read_media
from omnieval.metrics.base import RETRY, Metric, MetricInput
from omnieval.planning import TaskPlan, WorkItem
from omnieval.shards import Block
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


def needs_score(store: Store, task: str, key: str, retry_failed: bool = False) -> bool:
    """No score yet (and no recorded failure, unless retrying failures), or a score marked for retry
    (:data:`~omnieval.metrics.base.RETRY`)."""
    record = store.score(task, key)
    if record is not None:
        return RETRY in record["contribution"]
    failed = store.failure(task, key)
    return failed is None or retry_failed or failed.get("stage") != "score"


_FIELD_OF = {"source": "media", "siblings": "prompts"}  # the task field that provides an input


def _check_inputs(metric: Metric, spec: MetricSpec, inp: MetricInput) -> None:
    for name in metric.required_inputs():
        if getattr(inp, name) is None:
            raise MediaError(f"item {inp.item_id}: metric {spec.result_label} needs the item's {name}, which the task does "
                             f"not provide (set `fields.{_FIELD_OF.get(name, name)}` in the task YAML)")


@dataclass
class _Batch:
    """One fixed batch of one metric: its items (in block order) and the keys of those still to score."""

    spec: MetricSpec
    metric: Metric
    items: list[WorkItem]
    todo: set[str]


def score(plan: TaskPlan, blocks: list[Block], metrics: dict[str, Metric], store: Store, *,
          on_batch: Callable[[int, float], None], progress, failures: FailureTracker, retry_failed: bool = False) -> None:
    """Compute and store the missing contributions of the items of ``blocks`` (those with an output) for every metric
    of the plan (``metrics`` maps each spec's ``result_label`` to its instance).

    Each metric's batches are cut from the start of each block (:mod:`omnieval.shards`) and run whole when any of
    their items needs a score, so an item's contribution never depends on sharding or resuming.  An item without an
    output (its generation failed) sits its batch out; the other batches keep their members.  An item whose input
    cannot be built, or on which a metric raises, is recorded as failed for that metric (a raising batch is re-run
    one item at a time to find which).  Each score records the members of the batch it was computed in: when a batch
    runs with other members than a stored score of it saw (a failed item retried), that score is stored again, so
    the values equal a run that never failed."""
    task = plan.cfg.task
    for block in blocks:
        have = {it.key for it in block if store.generation(task, it.key) is not None}
        pending = []
        for spec in plan.metrics:
            metric = metrics[spec.result_label]
            for batch in shards.batches(plan.scored_items(spec, block), metric.batch_size):
                batch = [it for it in batch if it.key in have]
                todo = {it.key for it in batch if needs_score(store, task, score_key(it, spec), retry_failed)}
                if todo:
                    pending.append(_Batch(spec, metric, batch, todo))
        if pending:
            _score_block(plan, block, pending, store, on_batch, failures)
        progress.update(sum(1 for it in block if plan.scored_specs(it)))  # (a metric may score only some samples)


def _score_block(plan: TaskPlan, block, pending: list[_Batch], store: Store, on_batch, failures: FailureTracker) -> None:
    """Build each needed item's input once (decode once), then run the pending batches."""
    task = plan.cfg.task

    def fail(item: WorkItem, spec: MetricSpec, exc: BaseException) -> None:
        if is_fatal(exc):
            raise exc
        failures.add(failure_record(score_key(item, spec), stage="score", item=item.item_id, exc=exc,
                                    metric=spec.result_label))

    fields: dict[str, set[str]] = {}
    for b in pending:
        for item in b.items:
            fields.setdefault(item.key, set()).update(b.metric.required_inputs())
    inputs: dict[str, MetricInput] = {}
    for item in block:
        if item.key not in fields:
            continue
        try:
            inputs[item.key] = metric_input(plan, item, store, fields[item.key])
        except Exception as exc:  # an unreadable input fails its item only (re-raised if fatal)
            for b in pending:
                if item.key in b.todo:
                    fail(item, b.spec, exc)
            if is_fatal(exc):
                raise
    for b in pending:
        ready = []
        for item in b.items:
            if item.key not in inputs:
                continue
            try:
                _check_inputs(b.metric, b.spec, inputs[item.key])
                ready.append(item)
            except Exception as exc:  # noqa: BLE001
                if item.key in b.todo:
                    fail(item, b.spec, exc)
        if not any(it.key in b.todo for it in ready):
            continue
        alone = False
        try:
            results = _contribute(b.metric, [inputs[it.key] for it in ready], on_batch)
        except Exception as exc:  # noqa: BLE001
            if is_fatal(exc) or len(ready) == 1:
                for item in ready:
                    if item.key in b.todo:
                        fail(item, b.spec, exc)
                continue
            results, alone = {}, True
            for item in ready:  # find the item(s) that raise
                if item.key in b.todo:
                    try:
                        results[item.key] = _contribute(b.metric, [inputs[item.key]], on_batch)[0]
                    except Exception as single_exc:  # noqa: BLE001 -- recorded as this item's failure
                        fail(item, b.spec, single_exc)
            results = [results.get(it.key) for it in ready]
        members = batch_members(ready)
        for item, contribution in zip(ready, results):
            if contribution is None:
                continue
            key, seen = score_key(item, b.spec), batch_members([item]) if alone else members
            stored = None if item.key in b.todo else store.score(task, key)
            if item.key in b.todo or (stored is not None and stored.get("batch") not in (None, seen)):
                store.save_score(task, key, item.key, b.spec.name, contribution, replace=True, batch=seen)
                failures.resolve(key)


def batch_members(items: list[WorkItem]) -> str:
    """A short hash of the keys of the items a metric was called on together (stored with each score)."""
    return stable_hash([it.key for it in items], length=16)


def _contribute(metric: Metric, inputs: list[MetricInput], on_batch) -> list[dict]:
    t0 = time.perf_counter()
    contributions = list(metric.contributions(inputs))
    on_batch(len(inputs), time.perf_counter() - t0)
    if len(contributions) != len(inputs):
        raise OmniEvalError(f"metric {type(metric).__name__} returned {len(contributions)} contributions for "
                            f"{len(inputs)} items")
    return contributions


def stored_records(plan: TaskPlan, spec: MetricSpec, store: Store, items: list[WorkItem] | None = None
                   ) -> tuple[list[tuple[WorkItem, dict]], list[WorkItem]]:
    """The stored score records of ``spec`` in item-key order, and the items that have none (yet)."""
    found, missing = [], []
    for item in sorted(plan.scored_items(spec, items), key=lambda it: it.key):
        record = store.score(plan.cfg.task, score_key(item, spec))
        if record is None:
            missing.append(item)
        else:
            found.append((item, record))
    return found, missing


def stored_contributions(plan: TaskPlan, spec: MetricSpec, store: Store, items: list[WorkItem] | None = None
                         ) -> tuple[list[tuple[WorkItem, dict]], list[WorkItem]]:
    """The stored contributions of ``spec`` in item-key order, and the items that have none (yet)."""
    found, missing = stored_records(plan, spec, store, items)
    return [(item, store.load_contribution(record)) for item, record in found], missing


def records_digest(plan: TaskPlan, store: Store) -> str:
    """A hash of every stored score record of the plan's metrics (array parts by file size and modification time,
    since a re-score rewrites them in place): equal digests mean equal contributions."""
    import os

    parts = []
    for spec in plan.metrics:
        for _, record in stored_records(plan, spec, store)[0]:
            arrays = record.get("arrays")
            stat = os.stat(store.root / arrays) if arrays else None
            parts.append([record, [stat.st_size, stat.st_mtime_ns] if stat else None])
    return stable_hash(parts, length=32)
