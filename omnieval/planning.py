"""Planning: which work items a run has (task x doc x sample index x think mode), their prompts and keys.

A work item's key hashes everything that determines its output: the model identity (name, output-relevant
args, checkpoint fingerprint), the task's generation hash (dataset, fields, prompt template, generation
settings), the doc id and content, the sample index, the seed and the think mode.  Sample ``i`` of every
prompt uses seed ``base + i``; think-on items reuse the think-off seeds, so the two modes are paired.

:func:`plan_run` returns the run's :class:`TaskPlan` list; ``run``, ``score``, ``export`` and ``--log_samples``
work from it (they take plans, not a runner).
"""
from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Iterable

from omnieval.capabilities import Capability, capability
from omnieval.config import MetricSpec, RunConfig, TaskConfig, stable_hash
from omnieval.errors import CapabilityError, ConfigError, UnknownNameError
from omnieval.models.base import ModelIdentity
from omnieval.tasks import Doc, doc_choices, load_docs, resolve_tasks


@dataclass(frozen=True)
class WorkItem:
    """One thing to generate: a sample of a doc in one think mode."""

    task: str
    doc: Doc
    sample_index: int
    think: str
    seed: int
    prompt: str
    key: str

    @property
    def item_id(self) -> str:
        return f"{self.task}/{self.doc.id}/{self.sample_index}/{self.think}"


@dataclass(frozen=True)
class TaskPlan:
    """One task of a run: its config, capability record, docs (after --offset/--limit), items and metrics."""

    cfg: TaskConfig
    capability: Capability
    docs: tuple[Doc, ...]
    items: tuple[WorkItem, ...]
    metrics: tuple[MetricSpec, ...]

    def scored_items(self, spec: MetricSpec, items: Iterable[WorkItem] | None = None) -> list[WorkItem]:
        """The items ``spec`` scores (all, or those whose doc matches its ``where``)."""
        items = self.items if items is None else items
        return [it for it in items if spec.applies_to(it.doc.fields)] if spec.where else list(items)

    def scored_specs(self, item: WorkItem) -> list[MetricSpec]:
        """The metrics that score ``item``."""
        return [spec for spec in self.metrics if spec.applies_to(item.doc.fields)]


class _PromptFormatter(string.Formatter):
    """``str.format`` plus the conversion ``!t``: the value as text with surrounding whitespace stripped
    (``{question!t}``: NExT-QA's questions end with a space that lmms-eval strips)."""

    def convert_field(self, value, conversion):
        return str(value).strip() if conversion == "t" else super().convert_field(value, conversion)


def render_prompt(cfg: TaskConfig, doc: Doc) -> str:
    """``cfg.prompt_template`` filled with the doc's fields and the options (:func:`choice_fields`)."""
    fields = dict(doc.fields)
    if cfg.fields.prompt and cfg.fields.prompt in fields:
        fields.setdefault("prompt", fields[cfg.fields.prompt])
    choices = doc_choices(cfg, doc.fields)
    if choices is not None:
        for name, text in choice_fields(choices).items():
            fields.setdefault(name, text)
    try:
        return _PromptFormatter().vformat(cfg.prompt_template, (), fields)
    except KeyError as exc:
        raise ConfigError(f"task {cfg.task}: prompt_template uses field {exc.args[0]!r}, missing in doc {doc.id}") from exc


def choice_fields(choices) -> dict[str, str]:
    """The option lists a prompt template can use, from ``["x", "y"]`` or ``{"A": "x", "B": "y"}``:

    * ``{choices_text}``: ``"(A) x\\n(B) y"`` (MVBench style);
    * ``{choices_dotted}``: ``"A. x\\nB. y"`` (NExT-QA, PerceptionTest, LongVideoBench);
    * ``{choices_lines}``: the options as given, one per line (Video-MME and EgoSchema options carry their letter).
    """
    pairs = list(choices.items()) if isinstance(choices, dict) else [(chr(ord("A") + i), c) for i, c in enumerate(choices)]
    return {"choices_text": "\n".join(f"({k}) {v}" for k, v in pairs),
            "choices_dotted": "\n".join(f"{k}. {v}" for k, v in pairs),
            "choices_lines": "\n".join(str(v) for _, v in pairs)}


def plan_items(cfg: TaskConfig, docs: Iterable[Doc], identity: ModelIdentity, think_modes: Iterable[str], seed: int | None,
               model_thinks: bool = True) -> list[WorkItem]:
    """Work items of one task.  Think-on items exist only where the task lists ``on``, the capability takes
    ``think`` and the model supports it."""
    base_seed = cfg.generation.seed if seed is None else seed
    modes = [t for t in think_modes if t in cfg.think]
    if not capability(cfg.capability).think or not model_thinks:
        modes = [t for t in modes if t == "off"]
    gen_hash = cfg.generation_hash()
    items = []
    for doc in docs:
        prompt = render_prompt(cfg, doc)
        for index in range(_num_samples(cfg, doc)):
            for think in modes:
                s = base_seed + index
                key = stable_hash({"model": identity.key(), "gen": gen_hash, "doc": doc.id, "doc_hash": doc.content_hash,
                                   "sample": index, "seed": s, "think": think}, length=32)
                items.append(WorkItem(cfg.task, doc, index, think, s, prompt, key))
    return items


def _num_samples(cfg: TaskConfig, doc: Doc) -> int:
    value = doc.get(cfg.fields.num_samples) if cfg.fields.num_samples else None
    if value is None:
        return cfg.generation.samples_per_prompt
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = 0
    if n < 1 or n != value and not (isinstance(value, str) and value.strip().isdigit()):
        raise ConfigError(f"task {cfg.task}: doc {doc.id} field {cfg.fields.num_samples!r} must be a positive integer, got {value!r}")
    return n


def plan_run(run: RunConfig, model_cls, identity: ModelIdentity) -> list[TaskPlan]:
    """The run's task plans.  Checks, before anything runs, that the model serves every task's capability and that
    every metric's options are valid.  (A :class:`~omnieval.runner.Runner` plans once and hands the plans to the
    other phases, ``export`` and ``--log_samples``.)"""
    from omnieval.registry import get_metric

    configs = resolve_tasks(run.tasks, run.include_path)
    for task in run.dataset_overrides:
        if task not in {c.task for c in configs}:
            raise UnknownNameError("task (in --dataset)", task, sorted(c.task for c in configs))
    plans = []
    for cfg in configs:
        cap = capability(cfg.capability)
        if cfg.capability not in model_cls.capabilities:
            raise CapabilityError(
                f"model {identity.name!r} cannot run task {cfg.task!r}: it needs capability {cfg.capability!r}, "
                f"the model has {', '.join(model_cls.capabilities) or 'none'}")
        docs = load_docs(cfg, run.dataset_overrides.get(cfg.task), fixture=run.fixtures)
        total = len(docs)
        docs = docs[run.offset:]
        if run.limit is not None:
            docs = docs[: run.limit]
        if not docs:
            raise ConfigError(f"task {cfg.task}: no docs to run (the dataset has {total}, --offset is {run.offset})")
        items = plan_items(cfg, docs, identity, run.think_modes(), run.seed, model_thinks=model_cls.supports_think)
        for spec in cfg.metrics:
            get_metric(spec.name).build_options(spec.options, f"task {cfg.task}: metric {spec.name}: options")
        _check_labels(cfg)
        plans.append(TaskPlan(cfg, cap, tuple(docs), tuple(items), tuple(cfg.metrics)))
    return plans


def _check_labels(cfg: TaskConfig) -> None:
    seen: dict[str, MetricSpec] = {}
    for spec in cfg.metrics:
        if spec.result_label in seen and seen[spec.result_label] != spec:
            raise ConfigError(f"task {cfg.task}: two metrics report as {spec.result_label!r}; give one a `label`")
        seen[spec.result_label] = spec
