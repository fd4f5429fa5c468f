"""The model-call adapter: work items -> typed :class:`~omnieval.models.base.Request` batches -> checked outputs
in the store.

Requests of one task are batched by think mode (``generation.batch_size`` per call).  A chained item (multi-turn
editing, ``fields.chain``) takes the stored output of the item it continues as its input, so items are generated
in waves: an item is ready once its predecessor's output is in the store (which also makes resume exact).  Input media (``understand``
and edit tasks) are read from the doc's media field and checked against the capability's input kinds; outputs
are checked against its output kind before anything is written, so a wrong or non-finite output never becomes a
scored artifact.
"""
from __future__ import annotations

import time
from typing import Any, Callable

from omnieval.capabilities import Capability
from omnieval.config import TaskConfig
from omnieval.errors import MediaError, OmniEvalError
from omnieval.frames import is_task_sampled, take_frames
from omnieval.loaders.records import resolve_media_path
from omnieval.media import Video, as_uint8_image, read_media
from omnieval.models.base import Generation, Model, Request
from omnieval.planning import TaskPlan, WorkItem
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
                            f"the output of doc {item.doc.get(plan.cfg.fields.chain)}, which is not generated yet")
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


def missing_items(store: Store, items: list[WorkItem]) -> list[WorkItem]:
    return [it for it in items if store.generation(it.task, it.key) is None]


def require_generated(plan: TaskPlan, items: list[WorkItem], store: Store) -> None:
    """``omnieval score`` never generates: every item must have its output in the store."""
    missing = missing_items(store, items)
    if missing:
        first = missing[0]
        raise OmniEvalError(
            f"task {plan.cfg.task}: {len(missing)} of {len(items)} work items have no generated output in "
            f"{store.root} (first: doc {first.doc.id}, sample {first.sample_index}, think {first.think}); "
            f"run `omnieval run` with the same settings first")


def generate(plan: TaskPlan, items: list[WorkItem], get_model: Callable[[], Model], store: Store, *,
             model_name: str, on_batch: Callable[[int, float], None], progress) -> None:
    """Generate every item of ``items`` that is not in the store yet.  ``get_model`` is called only if there
    is work; ``on_batch(n, seconds)`` is told about each model call."""
    todo = missing_items(store, items)
    if not todo:
        return
    model = get_model()
    while todo:
        ready = [it for it in todo if it.after is None or store.generation(it.task, it.after) is not None]
        if not ready:
            first = todo[0]
            raise OmniEvalError(f"task {plan.cfg.task}: doc {first.doc.id} (think {first.think}) waits for an output that "
                                f"this process does not generate (item {first.after}); run the whole chain in one process")
        _generate_ready(plan, ready, model, store, model_name=model_name, on_batch=on_batch, progress=progress)
        done = {it.key for it in ready}
        todo = [it for it in todo if it.key not in done]


def _generate_ready(plan: TaskPlan, todo: list[WorkItem], model: Model, store: Store, *, model_name: str,
                    on_batch: Callable[[int, float], None], progress) -> None:
    """Generate items whose inputs exist (one wave: later turns of a chain come in later waves)."""
    batch_size = max(1, plan.cfg.generation.batch_size)
    for think in ("off", "on"):
        mode_items = [it for it in todo if it.think == think]
        for start in range(0, len(mode_items), batch_size):
            batch = mode_items[start : start + batch_size]
            requests = [make_request(plan, it, store) for it in batch]
            t0 = time.perf_counter()
            outputs = _call(model, plan, requests, model_name)
            elapsed = time.perf_counter() - t0
            on_batch(len(batch), elapsed)
            for item, request, out in zip(batch, requests, outputs):
                gen = out if isinstance(out, Generation) else Generation(out)
                output = check_output(plan.capability, gen.output, item)
                record = {
                    "key": item.key, "task": item.task, "doc_id": item.doc.id, "sample_index": item.sample_index,
                    "think": item.think, "seed": item.seed, "prompt": item.prompt, "info": gen.info,
                    "seconds": elapsed / len(batch),
                }
                if is_task_sampled(request.media):  # the frames the task's frames: spec took
                    record["frames"] = request.media.record()
                store.save_generation(item.task, record, output)
            progress.update(len(batch))


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
