"""Run one output folder: plan, generate what is missing, score what is missing, aggregate, write results.

The phases live in their own modules -- :mod:`omnieval.planning` (work items and keys),
:mod:`omnieval.generation` (typed requests to the model, checked outputs into the store),
:mod:`omnieval.scoring` (per-item contributions, each item decoded once) and :mod:`omnieval.aggregate.summary`
(values, clustered uncertainty, breakdowns, ablations) -- and :class:`Runner` only orders them.  So:

* re-running the same command finds every item and score in the store and calls neither model nor metric;
* changing a generation setting re-does exactly the items of that task; changing a metric option re-scores
  exactly that metric;
* results are re-aggregated from the stored contributions on every invocation (cheap), so they always follow
  the store, and never depend on how many processes computed them (contributions are folded in key order);
* under a launcher (:mod:`omnieval.launch`) each process takes its fixed blocks of items (:mod:`omnieval.shards`:
  batches never depend on the split, so values are identical to one process), holds a lock on its shard of the
  folder (:mod:`omnieval.locks`) and publishes each task when it has done its part; the last one to finish writes
  the complete results, and nobody waits (incomplete tasks list what is ``missing``, :mod:`omnieval.status`);
* an item that raises is recorded as failed and left out of the values (:mod:`omnieval.failures`).
"""
from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

from omnieval import __version__, generation, locks, scoring, shards
from omnieval.aggregate import stats
from omnieval.aggregate.summary import TaskSummary, summarize
from omnieval.config import MetricSpec, RunConfig, stable_hash
from omnieval.failures import FailureLimit, FailureTracker, TooManyFailures
from omnieval.locks import FolderLock
from omnieval.metrics.base import RETRY, Metric
from omnieval.models.base import Model
from omnieval.planning import TaskPlan, plan_run
from omnieval.progress import progress as progress_bar
from omnieval.registry import get_metric, get_model
from omnieval.results import (
    Counters,
    ModelInfo,
    ResultsFile,
    TaskHashes,
    Timing,
    environment,
)
from omnieval.status import TaskStatus, task_status
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
        self._lock: FolderLock | None = None
        #: task -> where it stood when this process last published it
        self.statuses: dict[str, TaskStatus] = {}
        #: task -> one line per metric whose every stored contribution is a transient failure (RETRY: e.g. the
        #: judge was down), as of this process's last publication of the task
        self._retry_only: dict[str, list[str]] = {}

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
    def lock(self, command: str = "run") -> FolderLock:
        """The rank lock of this process on the output folder (held by :meth:`execute`; the CLI holds it around
        its own writes too)."""
        if self._lock is None:
            self._lock = FolderLock(self.run.output_path, self.run.rank, self.run.world_size, command)
        return self._lock

    def execute(self, *, generate: bool = True) -> dict[str, Any]:
        """Generate and score this process's blocks of every task, then publish each task (see :meth:`publish`)."""
        with self.lock("run" if generate else "score"):
            return self._execute(generate)

    def _execute(self, generate: bool) -> dict[str, Any]:
        t_start = time.perf_counter()
        plans = self.plan()
        self.check_weights(plans)
        limit = FailureLimit.parse(self.run.max_failures)
        self.statuses, self._retry_only = {}, {}
        try:
            for plan in plans:
                metrics = self.metrics_of(plan)
                size = shards.block_size(plan, metrics.values())
                mine = shards.shard(shards.blocks(plan, size, together=plan.together()), self.run.rank,
                                    self.run.world_size)
                failures = self._tracker(plan, mine, limit)
                try:
                    if generate:
                        self._generate(plan, mine, failures)
                    if not self.run.predict_only:
                        self._score(plan, mine, failures)
                except TooManyFailures:
                    self.publish(plan)  # results.json says what failed
                    raise
                if not self.run.predict_only:
                    self.timing.total_s = time.perf_counter() - t_start
                    self.publish(plan)
        finally:
            if self._model is not None:
                self._model.close()
                self._model = None
        self.timing.total_s = time.perf_counter() - t_start
        with locks.results_lock(self.run.output_path):
            results = ResultsFile(self.results_path)
            self._write(results)
        return results.data.to_dict()

    @property
    def results_path(self) -> Path:
        return Path(self.run.output_path) / "results.json"

    @property
    def all_failed(self) -> list[str]:
        """One line per metric of a task this process published complete whose every stored contribution is a
        transient failure (RETRY, e.g. the judge endpoint was down: not a failure record, so the next run scores
        those items again without ``--retry-failed``); ``run`` / ``score`` then exit with status 3."""
        return [line for lines in self._retry_only.values() for line in lines]

    def _tracker(self, plan: TaskPlan, blocks: list[shards.Block], limit: FailureLimit) -> FailureTracker:
        """This process's failure count of the task: the failures of earlier runs still standing, plus new ones."""
        task, units = plan.cfg.task, 0
        tracker = FailureTracker(task, limit, 0, save=lambda rec: self.store.save_failure(task, rec))
        for block in blocks:
            for item in block:
                specs = [] if self.run.predict_only else plan.scored_specs(item)
                units += 1 + len(specs)
                for key in [item.key, *(scoring.score_key(item, spec) for spec in specs)]:
                    rec = self.store.failure(task, key)
                    if rec is not None:
                        tracker.note(rec)
        tracker.units = units
        for key in [k for k, rec in tracker.open.items() if self._resolved(task, k, rec)]:
            tracker.resolve(key)
        return tracker

    def _resolved(self, task: str, key: str, record: dict) -> bool:
        found = self.store.find("samples" if record.get("stage") == "generate" else "scores", task, key)
        return found is not None

    def _generate(self, plan: TaskPlan, blocks: list[shards.Block], failures: FailureTracker) -> None:
        todo = sum(generation.needs_output(self.store, it, self.run.retry_failed) for block in blocks for it in block)
        bar = progress_bar(todo, f"generate {plan.cfg.task}", enabled=self.progress and todo > 0)
        generation.generate(plan, blocks, self._load_model, self.store, model_name=self.run.model,
                            on_batch=self._count_generation, progress=bar, failures=failures,
                            retry_failed=self.run.retry_failed)
        bar.close()

    def _count_generation(self, n: int, seconds: float) -> None:
        self.counters.generation_calls += 1
        self.counters.generated_items += n
        self.timing.generate_s += seconds

    def _score(self, plan: TaskPlan, blocks: list[shards.Block], failures: FailureTracker) -> None:
        scored = sum(1 for block in blocks for it in block if plan.scored_specs(it))  # (a metric may score only some samples)
        bar = progress_bar(scored, f"score {plan.cfg.task}", enabled=self.progress)
        scoring.score(plan, blocks, self.metrics_of(plan), self.store, on_batch=self._count_scoring, progress=bar,
                      failures=failures, retry_failed=self.run.retry_failed)
        bar.close()

    def _count_scoring(self, n: int, seconds: float) -> None:
        self.counters.scoring_calls += 1
        self.counters.scored_items += n
        self.timing.score_s += seconds

    # -- results --------------------------------------------------------------------------------
    def publish(self, plan: TaskPlan) -> TaskStatus:
        """Write the task into ``results.json`` from everything in the store (all ranks' records), under the
        folder's results lock: values if nothing is missing, else the ``missing`` section.  Every process does this
        when it finishes a task, so the last one to finish writes the complete results; nobody waits for anyone."""
        with locks.results_lock(self.run.output_path):
            self.store.reload(plan.cfg.task)
            status = task_status(plan, self.store)
            results = ResultsFile(self.results_path)
            self._aggregate(plan, results, status)
            self._write(results)
            if self.run.log_samples and status.complete:
                from omnieval.samples import write_scored_samples

                write_scored_samples([plan], self.store)
        self.statuses[plan.cfg.task] = status
        return status

    def _aggregate(self, plan: TaskPlan, results: ResultsFile, status: TaskStatus) -> None:
        """The task's entries from the stored contributions.  When neither the contributions (nor the code that
        aggregates them) nor the written entries changed since the last write, the entries are kept as they are
        (resampling again would give the same numbers; a hand-edited entry no longer matches its hash)."""
        cfg = plan.cfg
        score_keys, retry_only = [], []
        for spec in plan.metrics if status.complete else ():
            found, _ = scoring.stored_records(plan, spec, self.store)  # failed items are left out
            score_keys += [scoring.score_key(it, spec) for it, _ in found]
            retry = [r["contribution"][RETRY] for _, r in found if RETRY in r["contribution"]]
            if found and len(retry) == len(found):
                retry_only.append(f"task {cfg.task}: metric {spec.result_label} failed on all {len(found)} items "
                                  f"(first: {retry[0]}); they are scored again by the next run")
        self._retry_only[cfg.task] = retry_only
        hashes = TaskHashes(config=cfg.config_hash(), generation=cfg.generation_hash(),
                            docs=stable_hash([d.content_hash for d in plan.docs]), scores=stable_hash(sorted(score_keys)))
        if status.complete:
            hashes.contributions = stable_hash({"records": scoring.records_digest(plan, self.store), "config": hashes.config,
                                                "code": [__version__, self.environment.get("git_revision")]})
            previous = results.data.task_hashes.get(cfg.task)
            if (previous is not None and previous.contributions == hashes.contributions and previous.results
                    and previous.results == results.entries_digest(cfg.task) and cfg.task in results.data.metric_options):
                hashes.results = previous.results
                results.data.task_hashes[cfg.task] = hashes
                return
            contributions = {spec.result_label: scoring.stored_contributions(plan, spec, self.store)[0] for spec in plan.metrics}
            self._import_statistics()
            t0 = time.perf_counter()
            summary = summarize(plan, self.metrics_of(plan), contributions)
            self.timing.aggregate_s += time.perf_counter() - t0
        else:
            summary = TaskSummary()
        config = cfg.to_dict()
        config.pop("source_file", None)
        results.set_task(cfg.task, results=summary.results, ablations=summary.ablations, config=config, hashes=hashes,
                         metric_options=summary.metric_options, failures=status.failures(), missing=status.missing())
        if status.complete:
            hashes.results = results.entries_digest(cfg.task)

    def _import_statistics(self) -> None:
        """Import scipy.stats once, counted as loading like the metric modules (it is 0.3-0.6 s)."""
        t0 = time.perf_counter()
        stats._scipy_stats()
        self.timing.load_s += time.perf_counter() - t0

    def _write(self, results: ResultsFile) -> None:
        results.write(model=ModelInfo(self.identity.name, self.identity.args, self.identity.fingerprint, self.identity.frames or None),
                      environment=self.environment, statistics=stats.describe_methods(),
                      timing=Timing(**vars(self.timing)), counters=Counters(**vars(self.counters)))

    @functools.cached_property
    def environment(self) -> dict[str, Any]:
        return environment(self.run.world_size)
