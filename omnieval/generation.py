"""The model-call adapter: work items -> typed :class:`~omnieval.models.base.Request` batches -> checked outputs
in the store.

Requests of one task are batched inside fixed blocks of items (:mod:`omnieval.shards`; ``generation.batch_size``
per call, one think mode per block).  A chained item (multi-turn editing, ``fields.chain``) takes the stored output
of the item it continues as its input, so a block is generated in waves (:func:`omnieval.shards.waves`: wave ``k``
holds the ``k``-th edits of its chains, ready once wave ``k - 1`` is in the store; a chain never leaves its block,
which also makes resume exact).  Input media (``understand`` and edit tasks) are read from the doc's media field
and checked against the capability's input kinds; outputs are checked against its output kind before anything is
written, so a wrong or non-finite output never becomes a scored artifact.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from omnieval import shards
from omnieval.capabilities import Capability
from omnieval.config import TaskConfig
from omnieval.errors import MediaError, OmniEvalError
from omnieval.failures import FailureTracker, failure_record, is_fatal
from omnieval.frames import is_task_sampled, take_frames
from omnieval.loaders.records import resolve_media_path
from omnieval.media import Video, as_uint8_image, read_media
from omnieval.models.base import Generation, Model, Request
from omnieval.planning import TaskPlan, WorkItem
from omnieval.shards import Block
from omnieval.store import Store
from omnieval.tasks import Doc


def input_media(cfg: TaskConfig, cap: Capability, doc: Doc):
    """The doc's input image or video (its ``fields.media`` value resolved against the media folder)."""
    value = doc.get(cfg.fields.media)
    if value is None:
        raise MediaError(f"task {cfg.task}: doc {doc.id} has no media field {cfg.fields.media!r}")
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise MediaError(f"task {cfg.task}: doc {doc.id} media field {cfg.fields.media!r} must be a file name, got {value!r}")
    path = resolve_media_path(doc, str(value), cfg.dataset.media_template, cfg.dataset.media_alternatives)
    try:
        media = read_media(path)
    except MediaError as exc:
        hint = f"; {cfg.dataset.download}" if cfg.dataset.download and not path.exists() else ""
        raise MediaError(f"task {cfg.task}: doc {doc.id}: {exc}{hint}") from exc
    kind = "video" if isinstance(media, Video) else "image"
    if cap.inputs and kind not in cap.inputs:
        raise MediaError(f"task {cfg.task}: doc {doc.id}: {cap.name} needs an input {' or '.join(cap.inputs)}, got {path}")
    return media


def request_media(plan: TaskPlan, item: WorkItem, store: Store | None):
    """The item's input media: the doc's media, or -- for a chained item (``fields.chain``) -- the stored output
    of the item it continues (same sample and think mode), exactly as written to the store (PNG is lossless)."""
    if item.after is None:
        return input_media(plan.cfg, plan.capability, item.doc)
    record = store.generation(item.task, item.after) if store is not None else None
    if record is None:
        raise OmniEvalError(f"task {item.task}: doc {item.doc.id} sample {item.sample_index} think {item.think} edits "
                            f"the output of doc {item.doc.get(plan.cfg.fields.chain)}, which has none (not generated yet, or its "
                            f"generation failed)")
    return store.load_output(record)


def make_request(plan: TaskPlan, item: WorkItem, store: Store | None = None) -> Request:
    """The item's request.  With a task ``frames:`` spec an input video (the doc's, or a chained item's stored
    output) becomes the sampled frames (:func:`omnieval.frames.take_frames`, decoding only those), the same for
    every model; :func:`generate` records them with the output."""
    media = request_media(plan, item, store) if plan.capability.takes_media else None
    if plan.cfg.frames is not None and isinstance(media, Video):
        media = take_frames(media, plan.cfg.frames, item.doc.fields, what=f"task {item.task} doc {item.doc.id}")
    return Request(capability=plan.capability.name, prompt=item.prompt, seed=item.seed, think=item.think == "on",
                   media=media, settings=plan.cfg.generation, task=item.task, doc_id=item.doc.id,
                   sample_index=item.sample_index)


def check_output(cap: Capability, output: Any, item: WorkItem):
    """The output in its canonical form (text, uint8 image, :class:`Video`), or a MediaError naming the item."""
    what = f"task {item.task} doc {item.doc.id} sample {item.sample_index} think {item.think}"
    if cap.output == "text":
        if not isinstance(output, str):
            raise MediaError(f"{what}: {cap.method}() must return text, got {type(output).__name__}")
        return output
    if cap.output == "video":
        if not isinstance(output, Video):
            raise MediaError(f"{what}: {cap.method}() must return a Video, got {type(output).__name__}")
        return output
    return as_uint8_image(output, what=what)


def needs_output(store: Store, item: WorkItem, retry_failed: bool = False) -> bool:
    """No output in the store, and no recorded generation failure (unless retrying failures)."""
    if store.generation(item.task, item.key) is not None:
        return False
    failed = store.failure(item.task, item.key)
    return failed is None or retry_failed or failed.get("stage") != "generate"


def generate(plan: TaskPlan, blocks: list[Block], get_model: Callable[[], Model], store: Store, *, model_name: str,
             on_batch: Callable[[int, float], None], progress, failures: FailureTracker, retry_failed: bool = False) -> None:
    """Generate every item of ``blocks`` that still needs an output.  Batches are ``generation.batch_size`` items
    cut from the start of each wave of each block (:mod:`omnieval.shards`), run whole when any of their items needs
    work (only those are stored).  An item that raises is recorded as failed (:mod:`omnieval.failures`); when a
    batch call raises, its items are run one by one to find which.  A chained item whose predecessor has no output
    (its generation failed) fails too.  ``get_model`` is called only if there is work; ``on_batch(n, seconds)`` is
    told about each model call."""
    batch_size = max(1, plan.cfg.generation.batch_size)
    model: Model | None = None
    for block in blocks:
        for wave in shards.waves(block):
            for batch in shards.batches(wave, batch_size):
                todo = {it.key for it in batch if needs_output(store, it, retry_failed)}
                if not todo:
                    continue
                model = model or get_model()
                _GenerationBatch(plan, model, store, model_name, on_batch, failures).run(batch, todo)
                progress.update(len(todo))


class _GenerationBatch:
    """One fixed batch: requests, the model call (one by one if the batch raises), checks, storing, failures."""

    def __init__(self, plan: TaskPlan, model: Model, store: Store, model_name: str,
                 on_batch: Callable[[int, float], None], failures: FailureTracker):
        self.plan, self.model, self.store, self.model_name = plan, model, store, model_name
        self.on_batch, self.failures = on_batch, failures

    def fail(self, item: WorkItem, exc: BaseException) -> None:
        if is_fatal(exc):
            raise exc
        self.failures.add(failure_record(item.key, stage="generate", item=item.item_id, exc=exc))

    def run(self, batch: list[WorkItem], todo: set[str]) -> None:
        requests: dict[str, Request] = {}
        for item in batch:
            try:
                requests[item.key] = make_request(self.plan, item, self.store)
            except Exception as exc:  # an unreadable input fails its item only (re-raised if fatal)
                if item.key in todo:
                    self.fail(item, exc)
                elif is_fatal(exc):
                    raise
        live = [it for it in batch if it.key in requests]
        if not any(it.key in todo for it in live):
            return
        try:
            outputs, seconds = self.call(live, requests)
        except Exception as exc:  # noqa: BLE001
            if is_fatal(exc) or len(live) == 1:
                for item in live:
                    if item.key in todo:
                        self.fail(item, exc)
                return
            for item in live:  # find the item(s) that raise
                if item.key in todo:
                    try:
                        out, sec = self.call([item], requests)
                    except Exception as single_exc:  # noqa: BLE001 -- recorded as this item's failure
                        self.fail(item, single_exc)
                    else:
                        self.save(item, out[0], sec, requests[item.key])
            return
        for item, out in zip(live, outputs):
            if item.key in todo:
                self.save(item, out, seconds / len(live), requests[item.key])

    def call(self, items: list[WorkItem], requests: dict[str, Request]) -> tuple[list, float]:
        t0 = time.perf_counter()
        outputs = _call(self.model, self.plan, [requests[it.key] for it in items], self.model_name)
        elapsed = time.perf_counter() - t0
        self.on_batch(len(items), elapsed)
        return outputs, elapsed

    def save(self, item: WorkItem, out: Any, seconds: float, request: Request) -> None:
        gen = out if isinstance(out, Generation) else Generation(out)
        try:
            output = check_output(self.plan.capability, gen.output, item)
        except Exception as exc:  # noqa: BLE001 -- a wrong or non-finite output fails its item
            self.fail(item, exc)
            return
        record = {
            "key": item.key, "task": item.task, "doc_id": item.doc.id, "sample_index": item.sample_index,
            "think": item.think, "seed": item.seed, "prompt": item.prompt, "info": gen.info, "seconds": seconds,
        }
        if is_task_sampled(request.media):  # the frames the task's frames: spec took
            record["frames"] = request.media.record()
        self.store.save_generation(item.task, record, output)
        self.failures.resolve(item.key)


def _call(model: Model, plan: TaskPlan, requests: list[Request], model_name: str) -> list:
    try:
        outputs = list(model.serve(plan.capability, requests))
    except MediaError as exc:  # e.g. a NaN Video built inside the model, or an unreadable prediction file
        ids = list(dict.fromkeys(r.doc_id for r in requests))
        ids_text = ", ".join(ids[:3]) + (", ..." if len(ids) > 3 else "")
        raise MediaError(f"model {model_name}, task {plan.cfg.task} doc(s) {ids_text} think "
                         f"{'on' if requests[0].think else 'off'}: {exc}") from exc
    if len(outputs) != len(requests):
        raise OmniEvalError(f"model {model_name} returned {len(outputs)} outputs for {len(requests)} requests (task {plan.cfg.task})")
    return outputs
