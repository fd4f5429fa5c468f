"""Run one output folder: plan, generate what is missing, score what is missing, aggregate, write results.

The phases live in their own modules -- :mod:`omnieval.planning` (work items and keys),
:mod:`omnieval.generation` (typed requests to the model, checked outputs into the store),
:mod:`omnieval.scoring` (per-item contributions, each item decoded once) and :mod:`omnieval.aggregate.summary`
(values, clustered uncertainty, breakdowns, ablations) -- and :class:`Runner` only orders them.  So:

* re-running the same command finds every item and score in the store and calls neither model nor metric;
* changing a generation setting re-does exactly the items of that task; changing a metric option re-scores
  exactly that metric;
* results are re-aggregated from the stored contributions on every invocation (cheap), so they always follow
  the store, and never depend on how many processes computed them (contributions are folded in key order).
"""
from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

from omnieval import generation, scoring
from omnieval.aggregate import stats
from omnieval.aggregate.summary import summarize
from omnieval.config import MetricSpec, RunConfig, stable_hash
from omnieval.errors import OmniEvalError
from omnieval.metrics.base import RETRY, Metric
from omnieval.models.base import Model
from omnieval.planning import TaskPlan, plan_run
from omnieval.progress import progress as progress_bar
from omnieval.registry import get_metric, get_model
from omnieval.results import Counters, ModelInfo, ResultsFile, TaskHashes, Timing, environment
from omnieval.store import Store


class Runner:
    """Runs (or re-scores) one output folder.  See the module docstring."""

    def __init__(self, run: RunConfig, *, progress: bool = True):
        self.run = run
        self.progress = progress
        self.counters = Counters()
        self.timing = Timing()
        self.store = Store(run.output_path, rank=run.rank, world_size=run.world_size)
        self.model_cls: type[Model] = get_model(run.model)
        self.model_cls.check_args(run.model_args)
        self.identity = self.model_cls.identity_from_args(**run.model_args)
        self._model: Model | None = None
        self._metrics: dict[str, Metric] = {}
        self._plans: list[TaskPlan] | None = None
        #: one line per metric whose every stored contribution is a transient failure (e.g. the judge was down)
        self.all_failed: list[str] = []

    # -- set-up ---------------------------------------------------------------------------------
    def plan(self) -> list[TaskPlan]:
        """The run's plans, made once per runner."""
        if self._plans is None:
            t0 = time.perf_counter()
            self._plans = plan_run(self.run, self.model_cls, self.identity)  # imports metric modules: counted as loading
            self.timing.load_s += time.perf_counter() - t0
        return self._plans

    def metrics_of(self, plan: TaskPlan) -> dict[str, Metric]:
        """The plan's metric instances by result label (built once per options; networks load lazily)."""
        return {spec.result_label: self.metric(spec) for spec in plan.metrics}

    def metric(self, spec: MetricSpec) -> Metric:
        key = spec.options_hash()
        if key not in self._metrics:
            t0 = time.perf_counter()
            self._metrics[key] = get_metric(spec.name)(**spec.options)
            self._metrics[key].attach_run_dir(Path(self.run.output_path))
            self.timing.load_s += time.perf_counter() - t0
        return self._metrics[key]

    def check_weights(self, plans: list[TaskPlan]) -> None:
        """Fail before any generation if a metric network's weights are missing, listing every missing file."""
        from omnieval.metrics import weights

        if self.run.predict_only:
            return
        files = [f for plan in plans for metric in self.metrics_of(plan).values() for f in weights.option_files(metric)]
        weights.require(weights.required_for_tasks([p.cfg for p in plans], build=self.metric), files=files)
        for plan in plans:  # other data a metric needs (e.g. FVD reference statistics), also before generating
            for spec in plan.metrics:
                self.metric(spec).check_ready(plan.cfg.task)

    def _load_model(self) -> Model:
        if self._model is None:
            t0 = time.perf_counter()
            self._model = self.model_cls.from_args(**self.run.model_args)
            self.timing.load_s += time.perf_counter() - t0
        return self._model

    # -- main loop ------------------------------------------------------------------------------
    def execute(self, *, generate: bool = True) -> dict[str, Any]:
        t_start = time.perf_counter()
        plans = self.plan()
        self.check_weights(plans)
        results = ResultsFile(Path(self.run.output_path) / "results.json")
        for plan in plans:
            mine = plan.shard(self.run.rank, self.run.world_size)
            if generate:
                self._generate(plan, mine)
            else:
                generation.require_generated(plan, mine, self.store)
            if self.run.predict_only:
                continue
            self._score(plan, mine)
            if self.run.rank != 0:
                continue  # rank 0 aggregates once every shard is scored
            if self.run.world_size > 1:
                self._wait_for_shards(plan)
            self._aggregate(plan, results)
            self.timing.total_s = time.perf_counter() - t_start
            self._write(results)
        self.timing.total_s = time.perf_counter() - t_start
        self._write(results)
        if self._model is not None:
            self._model.close()
        return results.data.to_dict()

    def _generate(self, plan: TaskPlan, items) -> None:
        todo = len(generation.missing_items(self.store, items))
        bar = progress_bar(todo, f"generate {plan.cfg.task}", enabled=self.progress and todo > 0)
        generation.generate(plan, items, self._load_model, self.store, model_name=self.run.model,
                            on_batch=self._count_generation, progress=bar)
        bar.close()

    def _count_generation(self, n: int, seconds: float) -> None:
        self.counters.generation_calls += 1
        self.counters.generated_items += n
        self.timing.generate_s += seconds

    def _score(self, plan: TaskPlan, items) -> None:
        scored = sum(1 for it in items if plan.scored_specs(it))  # (a metric may score only some samples)
        bar = progress_bar(scored, f"score {plan.cfg.task}", enabled=self.progress)
        scoring.score(plan, items, self.metrics_of(plan), self.store, on_batch=self._count_scoring, progress=bar)
        bar.close()

    def _count_scoring(self, n: int, seconds: float) -> None:
        self.counters.scoring_calls += 1
        self.counters.scored_items += n
        self.timing.score_s += seconds

    def _wait_for_shards(self, plan: TaskPlan, timeout_s: float = 7200.0, poll_s: float = 5.0) -> None:
        """Rank 0 waits until the other ranks' score records of this task are all on disk."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.store.reload()
            missing = sum(len(scoring.stored_contributions(plan, spec, self.store)[1]) for spec in plan.metrics)
            if not missing:
                return
            if time.monotonic() > deadline:
                raise OmniEvalError(f"task {plan.cfg.task}: {missing} scores from other ranks never arrived; "
                                    f"run `omnieval score --output_path {self.run.output_path}` when they finish")
            time.sleep(poll_s)

    def _aggregate(self, plan: TaskPlan, results: ResultsFile) -> None:
        cfg = plan.cfg
        contributions, score_keys = {}, []
        for spec in plan.metrics:
            found, missing = scoring.stored_contributions(plan, spec, self.store)
            if missing:
                first = missing[0]
                raise OmniEvalError(f"task {cfg.task}: metric {spec.result_label} has no score for {len(missing)} items "
                                    f"(first: {first.item_id})")
            contributions[spec.result_label] = found
            retry = [c[RETRY] for _, c in found if RETRY in c]
            if found and len(retry) == len(found):
                self.all_failed.append(f"task {cfg.task}: metric {spec.result_label} failed on all {len(found)} items "
                                       f"(first: {retry[0]}); they are scored again by the next run")
            score_keys += [scoring.score_key(it, spec) for it, _ in found]
        summary = summarize(plan, self.metrics_of(plan), contributions)
        hashes = TaskHashes(config=cfg.config_hash(), generation=cfg.generation_hash(),
                            docs=stable_hash([d.content_hash for d in plan.docs]), scores=stable_hash(sorted(score_keys)))
        config = cfg.to_dict()
        config.pop("source_file", None)
        results.set_task(cfg.task, results=summary.results, ablations=summary.ablations, config=config, hashes=hashes,
                         metric_options=summary.metric_options)

    def _write(self, results: ResultsFile) -> None:
        if self.run.rank != 0 and self.run.world_size > 1:
            return
        results.write(model=ModelInfo(self.identity.name, self.identity.args, self.identity.fingerprint, self.identity.frames or None),
                      environment=self.environment, statistics=stats.describe_methods(),
                      timing=Timing(**vars(self.timing)), counters=Counters(**vars(self.counters)))

    @functools.cached_property
    def environment(self) -> dict[str, Any]:
        return environment(self.run.world_size)
