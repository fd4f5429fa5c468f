"""Run a plan: generate what is missing, score what is missing, aggregate, write results.

Work items and their keys come from :mod:`omnieval.planning`.  A score key hashes the item key with the
metric name and options.  So:

* re-running the same command finds every item and score in the store and calls neither model nor metric;
* changing a generation setting re-does exactly the items of that task; changing a metric option re-scores
  exactly that metric;
* results never depend on how many processes computed them: contributions are folded in key order.
"""
from __future__ import annotations

import functools
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omnieval.config import RunConfig, TaskConfig, build, stable_hash
from omnieval.errors import CapabilityError, ConfigError, MediaError, OmniEvalError, UnknownNameError
from omnieval.media import Video, as_uint8_image, read_media
from omnieval.metrics.base import Metric, MetricInput
from omnieval.models.base import CAPABILITY_METHODS, Generation, Model
from omnieval.registry import get_metric, get_model
from omnieval.results import ResultsFile, environment, think_key
from omnieval.store import Store
from omnieval.planning import WorkItem, plan_items
from omnieval.tasks import Doc, load_docs, resolve_media_path, resolve_tasks


@dataclass
class Counters:
    generation_calls: int = 0
    generated_items: int = 0
    scoring_calls: int = 0
    scored_items: int = 0


@dataclass
class Timing:
    load_s: float = 0.0
    generate_s: float = 0.0
    score_s: float = 0.0
    total_s: float = 0.0


@dataclass
class TaskPlan:
    cfg: TaskConfig
    docs: list[Doc]
    items: list[WorkItem]
    metrics: list[tuple[str, Any]] = field(default_factory=list)  # (label, metric spec)


class Runner:
    """Runs (or re-scores) one output folder.  See the module docstring."""

    def __init__(self, run: RunConfig, *, progress: bool = True):
        self.run = run
        self.progress = progress and sys.stderr.isatty()
        self.counters = Counters()
        self.timing = Timing()
        self.store = Store(run.output_path, rank=run.rank, world_size=run.world_size)
        self.model_cls: type[Model] = get_model(run.model)
        self.model_cls.check_args(run.model_args)
        self.identity = self.model_cls.identity_from_args(**run.model_args)
        self._model: Model | None = None
        self._metrics: dict[str, Metric] = {}

    # -- set-up ---------------------------------------------------------------------------------
    def plan(self) -> list[TaskPlan]:
        plans = []
        configs = resolve_tasks(self.run.tasks, self.run.include_path)
        for task in self.run.dataset_overrides:
            if task not in {c.task for c in configs}:
                raise UnknownNameError("task (in --dataset)", task, sorted(c.task for c in configs))
        for cfg in configs:
            caps = getattr(self.model_cls, "capabilities", ())
            if cfg.capability not in caps:
                raise CapabilityError(
                    f"model {self.run.model!r} cannot run task {cfg.task!r}: it needs capability {cfg.capability!r}, "
                    f"the model has {', '.join(caps) or 'none'}")
            docs = load_docs(cfg, self.run.dataset_overrides.get(cfg.task))
            total = len(docs)
            docs = docs[self.run.offset:]
            if self.run.limit is not None:
                docs = docs[: self.run.limit]
            if not docs:
                raise ConfigError(f"task {cfg.task}: no docs to run (the dataset has {total}, --offset is {self.run.offset})")
            items = plan_items(cfg, docs, self.identity, self.run.think_modes(), self.run.seed,
                               model_thinks=getattr(self.model_cls, "supports_think", True))
            metrics = []
            for spec in cfg.metrics:
                t0 = time.perf_counter()
                cls = get_metric(spec.name)  # imports the metric's module: counted as loading, like the networks
                self.timing.load_s += time.perf_counter() - t0
                build(cls.Options, spec.options, f"task {cfg.task}: metric {spec.name}: options")  # names and types
                metrics.append((spec.label or spec.name, spec))
            plans.append(TaskPlan(cfg, docs, items, metrics))
        return plans

    def check_weights(self, plans: list[TaskPlan]) -> None:
        """Build every metric (cheap: networks load lazily) and fail before any generation if a metric network's
        weights or packages are missing, listing every missing file at once."""
        from omnieval.metrics import weights

        if self.run.predict_only:
            return
        needed: list[str] = []
        for plan in plans:
            for _, spec in plan.metrics:
                metric = self.metric(spec)
                method = getattr(metric, "required_weights", None)
                needed += list(method() if method else getattr(metric, "weights", ()) or ())
        weights.require(needed)

    @property
    def model(self) -> Model:
        if self._model is None:
            t0 = time.perf_counter()
            self._model = self.model_cls.from_args(**self.run.model_args)
            self.timing.load_s += time.perf_counter() - t0
        return self._model

    def metric(self, spec) -> Metric:
        key = spec.options_hash()
        if key not in self._metrics:
            t0 = time.perf_counter()
            self._metrics[key] = get_metric(spec.name)(**spec.options)
            self.timing.load_s += time.perf_counter() - t0
        return self._metrics[key]

    # -- main loop ------------------------------------------------------------------------------
    def execute(self, *, generate: bool = True) -> dict[str, Any]:
        t_start = time.perf_counter()
        plans = self.plan()
        self.check_weights(plans)
        results = ResultsFile(Path(self.run.output_path) / "results.json")
        for plan in plans:
            mine = plan.items[self.run.rank :: self.run.world_size]
            if generate:
                self.generate(plan, mine)
            else:
                self.require_generated(plan, mine)
            if self.run.predict_only:
                continue
            self.score(plan, mine)
            if self.run.rank != 0:
                continue  # rank 0 aggregates once every shard is scored
            if self.run.world_size > 1:
                self._wait_for_shards(plan)
            self.aggregate(plan, results)
            self.timing.total_s = time.perf_counter() - t_start
            self._write(results)
        self.timing.total_s = time.perf_counter() - t_start
        self._write(results)
        if self._model is not None:
            self._model.close()
        return results.data

    def _write(self, results: ResultsFile) -> None:
        if self.run.rank != 0 and self.run.world_size > 1:
            return
        results.write(
            model={"name": self.identity.name, "args": self.identity.args, "fingerprint": self.identity.fingerprint},
            environment=self.environment,
            timing=vars(self.timing).copy(),
            counters=vars(self.counters).copy(),
        )

    @functools.cached_property
    def environment(self) -> dict[str, Any]:
        return environment(self.run.world_size)

    # -- generation -----------------------------------------------------------------------------
    def require_generated(self, plan: TaskPlan, items: list[WorkItem]) -> None:
        missing = [it for it in items if self.store.generation(it.task, it.key) is None]
        if missing:
            raise OmniEvalError(
                f"task {plan.cfg.task}: {len(missing)} of {len(items)} work items have no generated output in "
                f"{self.run.output_path} (first: doc {missing[0].doc.id}, sample {missing[0].sample_index}, think "
                f"{missing[0].think}); run `omnieval run` with the same settings first")

    def generate(self, plan: TaskPlan, items: list[WorkItem]) -> None:
        todo = [it for it in items if self.store.generation(it.task, it.key) is None]
        if not todo:
            return
        cfg = plan.cfg
        batch_size = max(1, cfg.generation.batch_size)
        bar = _progress(len(todo), f"generate {cfg.task}", self.progress)
        model = self.model
        method = getattr(model, CAPABILITY_METHODS[cfg.capability])
        gen_kwargs = cfg.generation.model_kwargs()
        for think in ("off", "on"):
            batch_items = [it for it in todo if it.think == think]
            for start in range(0, len(batch_items), batch_size):
                batch = batch_items[start : start + batch_size]
                t0 = time.perf_counter()
                outputs = self._call_model(cfg, method, batch, gen_kwargs)
                elapsed = time.perf_counter() - t0
                self.timing.generate_s += elapsed
                self.counters.generation_calls += 1
                for item, out in zip(batch, outputs):
                    gen = out if isinstance(out, Generation) else Generation(out)
                    output = _check_output(cfg.capability, gen.output, item)
                    record = {
                        "key": item.key, "task": item.task, "doc_id": item.doc.id, "sample_index": item.sample_index,
                        "think": item.think, "seed": item.seed, "prompt": item.prompt, "info": gen.info,
                        "seconds": elapsed / len(batch),
                    }
                    self.store.save_generation(item.task, record, output)
                    self.counters.generated_items += 1
                bar.update(len(batch))
        bar.close()

    def _call_model(self, cfg: TaskConfig, method, batch: list[WorkItem], gen_kwargs: dict) -> list:
        meta = dict(gen_kwargs, seeds=[it.seed for it in batch], doc_ids=[it.doc.id for it in batch],
                    sample_indices=[it.sample_index for it in batch], task=cfg.task)
        prompts = [it.prompt for it in batch]
        think = batch[0].think == "on"
        media = [self.input_media(cfg, it.doc) for it in batch] if cfg.capability in ("understand", "edit_image", "edit_video") else None
        try:
            if cfg.capability == "understand":
                outputs = method(media, prompts, **meta)
            elif media is not None:
                outputs = method(media, prompts, think=think, **meta)
            else:
                outputs = method(prompts, think=think, **meta)
            outputs = list(outputs)
        except MediaError as exc:  # e.g. a NaN Video built inside the model, or an unreadable prediction file
            ids = list(dict.fromkeys(it.doc.id for it in batch))
            ids = ", ".join(ids[:3]) + (", ..." if len(ids) > 3 else "")
            raise MediaError(f"model {self.run.model}, task {cfg.task} doc(s) {ids} think {batch[0].think}: {exc}") from exc
        if len(outputs) != len(batch):
            raise OmniEvalError(f"model {self.run.model} returned {len(outputs)} outputs for {len(batch)} requests (task {cfg.task})")
        return outputs

    def input_media(self, cfg: TaskConfig, doc: Doc):
        value = doc.get(cfg.fields.media)
        if value is None:
            raise MediaError(f"task {cfg.task}: doc {doc.id} has no media field {cfg.fields.media!r}")
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            raise MediaError(f"task {cfg.task}: doc {doc.id} media field {cfg.fields.media!r} must be a file name, got {value!r}")
        path = resolve_media_path(doc, str(value), cfg.dataset.media_template)
        try:
            media = read_media(path)
        except MediaError as exc:
            raise MediaError(f"task {cfg.task}: doc {doc.id}: {exc}") from exc
        want = {"edit_image": False, "edit_video": True}.get(cfg.capability)
        if want is not None and isinstance(media, Video) != want:
            raise MediaError(f"task {cfg.task}: doc {doc.id}: {cfg.capability} needs an input {'video' if want else 'image'}, "
                             f"got {path}")
        return media

    # -- scoring --------------------------------------------------------------------------------
    def score_key(self, item: WorkItem, spec) -> str:
        return stable_hash({"item": item.key, "metric": spec.options_hash()}, length=32)

    def score(self, plan: TaskPlan, items: list[WorkItem]) -> None:
        cfg = plan.cfg
        for label, spec in plan.metrics:
            todo = [it for it in scored_items(items, spec) if self.store.score(cfg.task, self.score_key(it, spec)) is None]
            if not todo:
                continue
            metric = self.metric(spec)
            bar = _progress(len(todo), f"score {cfg.task}:{label}", self.progress)
            batch_size = int(getattr(metric, "batch_size", 8) or 8)
            for start in range(0, len(todo), batch_size):
                batch = todo[start : start + batch_size]
                inputs = [self.metric_input(cfg, it) for it in batch]
                t0 = time.perf_counter()
                contributions = metric.contributions(inputs)
                self.timing.score_s += time.perf_counter() - t0
                self.counters.scoring_calls += 1
                for item, contribution in zip(batch, contributions):
                    self.store.save_score(cfg.task, self.score_key(item, spec), item.key, spec.name, contribution)
                    self.counters.scored_items += 1
                bar.update(len(batch))
            bar.close()

    def metric_input(self, cfg: TaskConfig, item: WorkItem) -> MetricInput:
        record = self.store.generation(item.task, item.key)
        output = self.store.load_output(record)
        reference = item.doc.get(cfg.fields.reference)
        if isinstance(reference, str) and cfg.capability != "understand" and _is_media_name(reference):
            reference = read_media(resolve_media_path(item.doc, reference))
        source = self.input_media(cfg, item.doc) if cfg.fields.media and cfg.capability != "understand" else None
        prompt = item.doc.get(cfg.fields.prompt, item.prompt)
        doc = dict(item.doc.fields)
        if cfg.fields.choices:
            doc.setdefault("choices", item.doc.get(cfg.fields.choices))
        return MetricInput(item_id=f"{item.task}/{item.doc.id}/{item.sample_index}/{item.think}", output=output,
                           prompt=prompt, reference=reference, source=source, doc=doc)

    def _wait_for_shards(self, plan: TaskPlan, timeout_s: float = 7200.0, poll_s: float = 5.0) -> None:
        """Rank 0 waits until the other ranks' score records of this task are all on disk."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.store.reload()
            missing = sum(self.store.score(plan.cfg.task, self.score_key(it, spec)) is None
                          for _, spec in plan.metrics for it in scored_items(plan.items, spec))
            if not missing:
                return
            if time.monotonic() > deadline:
                raise OmniEvalError(f"task {plan.cfg.task}: {missing} scores from other ranks never arrived; "
                                    f"run `omnieval score --output_path {self.run.output_path}` when they finish")
            time.sleep(poll_s)

    # -- aggregation ----------------------------------------------------------------------------
    def aggregate(self, plan: TaskPlan, results: ResultsFile) -> None:
        from omnieval.aggregate import stats

        cfg = plan.cfg
        scores_hash = stable_hash(sorted(self.score_key(it, spec) for _, spec in plan.metrics for it in scored_items(plan.items, spec)))
        previous = results.data["task_hashes"].get(cfg.task, {})
        if previous.get("scores") == scores_hash and cfg.task in results.data["configs"]:
            return  # the same scores were aggregated before: bootstrap again would only cost time
        task_results: dict[str, dict] = {}
        ablations: dict[str, dict] = {}
        metric_options: dict[str, dict] = {}
        for label, spec in plan.metrics:
            metric = self.metric(spec)
            metric_options[label] = {"name": spec.name, "options": metric.options_dict()}
            if spec.where:
                metric_options[label]["where"] = dict(spec.where)
            by_mode: dict[str, list[tuple[WorkItem, dict]]] = {}
            for it in sorted(scored_items(plan.items, spec), key=lambda i: i.key):
                rec = self.store.score(cfg.task, self.score_key(it, spec))
                by_mode.setdefault(it.think, []).append((it, self.store.load_contribution(rec)))
            for think, pairs in by_mode.items():
                contribs = [c for _, c in pairs]
                folded = metric.fresh()
                for c in contribs:
                    folded.fold(c)
                values = folded.compute()
                if hasattr(folded, "result_info"):  # e.g. the FVD protocol and sample counts
                    metric_options[label].setdefault("info", {})[think] = folded.result_info()
                errors = stats.bootstrap_stderr(metric, contribs)
                out = task_results.setdefault(think_key(cfg.task, think), {})
                for name, value in values.items():
                    full = name if len(plan.metrics) == 1 or name.startswith(label) else f"{label}/{name}"
                    out[full] = {"value": value, "stderr": errors.get(name), "n": len(contribs),
                                 "higher_is_better": metric.is_higher_better(name)}
            if "off" in by_mode and "on" in by_mode:
                off = {(i.doc.id, i.sample_index): c for i, c in by_mode["off"]}
                on = {(i.doc.id, i.sample_index): c for i, c in by_mode["on"]}
                common = sorted(set(off) & set(on))
                diff = stats.paired_difference(metric, [off[k] for k in common], [on[k] for k in common])
                for name, d in diff.items():
                    full = name if len(plan.metrics) == 1 or name.startswith(label) else f"{label}/{name}"
                    ablations[full] = dict(d, n=len(common), higher_is_better=metric.is_higher_better(name))
        if cfg.aggregates:
            add_task_aggregates(cfg, task_results, ablations)
        hashes = {"config": cfg.config_hash(), "generation": cfg.generation_hash(),
                  "docs": stable_hash([d.content_hash for d in plan.docs]), "scores": scores_hash}
        results.set_task(cfg.task, results=task_results, ablations=ablations, config=_config_for_results(cfg),
                         hashes=hashes, metric_options=metric_options)



def add_task_aggregates(cfg: TaskConfig, task_results: dict[str, dict], ablations: dict[str, dict]) -> None:
    """Task-level aggregates (e.g. VBench Total/Quality/Semantic) per think mode, and their on-off deltas."""
    from omnieval.aggregate import task_aggregate

    for out in task_results.values():
        values = {name: r["value"] for name, r in out.items()}
        for name in cfg.aggregates:
            for key, entry in task_aggregate(name, values).items():
                out[key] = dict(entry, n=None, stderr=None)
    off, on = task_results.get(think_key(cfg.task, "off")), task_results.get(think_key(cfg.task, "on"))
    if off and on:
        for key in {k for name in cfg.aggregates for k in task_aggregate(name, {}).keys() if k in off and k in on}:
            a, b = off[key]["value"], on[key]["value"]
            if a is not None and b is not None:
                ablations[key] = {"off": a, "on": b, "delta": b - a, "n": None, "higher_is_better": off[key]["higher_is_better"]}


def scored_items(items: list[WorkItem], spec) -> list[WorkItem]:
    """The items a metric scores (all, or those whose doc matches the spec's ``where``)."""
    return [it for it in items if spec.applies_to(it.doc.fields)] if spec.where else items


def _config_for_results(cfg: TaskConfig) -> dict:
    d = cfg.to_dict()
    d.pop("source_file", None)
    return d


def _is_media_name(text: str) -> bool:
    from omnieval.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES

    return text.lower().endswith(VIDEO_SUFFIXES + IMAGE_SUFFIXES)


def _check_output(capability: str, output: Any, item: WorkItem):
    what = f"task {item.task} doc {item.doc.id} sample {item.sample_index} think {item.think}"
    if capability == "understand":
        if not isinstance(output, str):
            raise MediaError(f"{what}: understand() must return text, got {type(output).__name__}")
        return output
    if capability in ("t2v", "long_video", "edit_video"):
        if not isinstance(output, Video):
            raise MediaError(f"{what}: expected a Video, got {type(output).__name__}")
        return output
    return as_uint8_image(output, what=what)


class _NullBar:
    def update(self, n: int) -> None: ...
    def close(self) -> None: ...


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return _NullBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="item", leave=False)
