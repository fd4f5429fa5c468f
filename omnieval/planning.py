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
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from omnieval.capabilities import Capability, capability
from omnieval.config import MetricSpec, RunConfig, TaskConfig, stable_hash
from omnieval.errors import CapabilityError, ConfigError, UnknownNameError
from omnieval.loaders.records import doc_choices
from omnieval.models.base import ModelIdentity
from omnieval.tasks import Doc, load_docs, resolve_tasks


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
    #: key of the item whose generated output is this item's input (``fields.chain``: multi-turn editing), else None
    after: str | None = None

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
        """The items ``spec`` scores (all, or those whose doc matches its ``where`` and whose sample index is in its
        ``samples``)."""
        items = self.items if items is None else items
        return [it for it in items if _scores(spec, it)] if spec.where or spec.samples else list(items)

    def scored_specs(self, item: WorkItem) -> list[MetricSpec]:
        """The metrics that score ``item``."""
        return [spec for spec in self.metrics if _scores(spec, item)]

    def siblings(self, item: WorkItem) -> list[WorkItem]:
        """The other samples of ``item``'s doc in the same think mode (``fields.prompts``: the other questions)."""
        return [it for it in self._by_doc().get((item.doc.id, item.think), ()) if it.key != item.key]

    def _by_doc(self) -> dict[tuple[str, str], list[WorkItem]]:
        index = self.__dict__.get("_doc_index")
        if index is None:
            index = {}
            for it in self.items:
                index.setdefault((it.doc.id, it.think), []).append(it)
            object.__setattr__(self, "_doc_index", index)
        return index

    def together(self) -> Callable[[WorkItem], str] | None:
        """What must stay in one process, for :func:`omnieval.shards.blocks`: a chain (items linked by ``after``)
        under its first item, so each process generates its chains in order without waiting for another, and the
        samples of one doc asked several questions (``fields.prompts``), so a metric comparing them (``siblings``)
        finds them all.  ``None`` when every item stands alone."""
        by_doc = bool(self.cfg.fields.prompts)
        if not by_doc and not any(it.after for it in self.items):
            return None
        root: dict[str, str] = {}
        for it in self.items:
            own = f"doc:{it.doc.id}" if by_doc else it.key
            root[it.key] = root.get(it.after, it.after) if it.after else own
        return lambda item: root[item.key]


def _scores(spec: MetricSpec, item: WorkItem) -> bool:
    return spec.applies_to(item.doc.fields) and (not spec.samples or item.sample_index in spec.samples)


class _PromptFormatter(string.Formatter):
    """``str.format`` with two text transforms for prompt templates:

    * the conversion ``!t``: the value as text with surrounding whitespace stripped (``{question!t}``: NExT-QA's
      questions end with a space that lmms-eval strips);
    * a str method as format spec, on a text value: ``{question:capitalize}`` (lmms-eval's ActivityNet-QA
      upper-cases the first letter and lower-cases the rest), ``:strip``, ``:lower``, ``:upper``, ``:lstrip``,
      ``:rstrip``, ``:title``.  Any other spec is an ordinary format spec.
    """

    METHODS = ("capitalize", "lower", "upper", "strip", "lstrip", "rstrip", "title")

    def convert_field(self, value, conversion):
        return str(value).strip() if conversion == "t" else super().convert_field(value, conversion)

    def format_field(self, value, format_spec):
        if isinstance(value, str) and format_spec in self.METHODS:
            return getattr(value, format_spec)()
        return super().format_field(value, format_spec)


def render_prompt(cfg: TaskConfig, doc: Doc, prompt_field: str | None = None) -> str:
    """The doc's prompt: ``prompt_template`` filled with the doc's fields, plus ``{prompt}`` (the ``fields.prompt``
    value, or ``prompt_field``'s for one of several questions) and the options (:func:`choice_fields`), through
    :class:`_PromptFormatter` (``{question!t}``, ``{question:capitalize}``)."""
    fields = dict(doc.fields)
    if prompt_field:
        if prompt_field not in fields:
            raise ConfigError(f"task {cfg.task}: doc {doc.id} has no field {prompt_field!r} (fields.prompts)")
        fields["prompt"] = fields[prompt_field]
    elif cfg.fields.prompt and cfg.fields.prompt in fields:
        fields.setdefault("prompt", fields[cfg.fields.prompt])
    choices = doc_choices(cfg, doc.fields)
    if choices is not None:
        for name, text in choice_fields(choices).items():
            fields.setdefault(name, text)
    try:
        return _PromptFormatter().vformat(cfg.prompt_template, (), fields)
    except KeyError as exc:
        raise ConfigError(f"task {cfg.task}: prompt_template uses field {exc.args[0]!r}, missing in doc {doc.id}") from exc
    except (ValueError, IndexError) as exc:  # a format spec the value does not take, a positional field
        raise ConfigError(f"task {cfg.task}: prompt_template cannot format doc {doc.id}: {exc}") from exc


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
    items: list[WorkItem] = []
    by_address: dict[tuple[str, int, str], WorkItem] = {}
    for doc in docs:
        prompts = [render_prompt(cfg, doc, f) for f in cfg.fields.prompts] if cfg.fields.prompts else None
        prompt = render_prompt(cfg, doc) if prompts is None else ""
        for index in range(_num_samples(cfg, doc)):
            if prompts is not None:
                prompt = prompts[index]
            for think in modes:
                s = base_seed + index
                address = {"model": identity.key(), "gen": gen_hash, "doc": doc.id, "doc_hash": doc.content_hash,
                           "sample": index, "seed": s, "think": think}
                prev = _chain_predecessor(cfg, doc, index, think, by_address)
                if prev is not None:
                    address["after"] = prev.key  # the input is that item's output: its key is part of this address
                key = stable_hash(address, length=32)
                item = WorkItem(cfg.task, doc, index, think, s, prompt, key, prev.key if prev else None)
                by_address[(doc.id, index, think)] = item
                items.append(item)
    return items


def _chain_predecessor(cfg: TaskConfig, doc: Doc, index: int, think: str,
                       planned: dict[tuple[str, int, str], WorkItem]) -> WorkItem | None:
    """The item whose output ``doc``'s item (``index``, ``think``) edits further (same sample and think mode)."""
    prev_id = doc.get(cfg.fields.chain) if cfg.fields.chain else None
    if prev_id in (None, ""):
        return None
    prev = planned.get((str(prev_id), index, think))
    if prev is None:
        raise ConfigError(f"task {cfg.task}: doc {doc.id} continues doc {prev_id!r} (field {cfg.fields.chain!r}), which "
                          f"is not planned before it with sample {index} think {think}")
    return prev


def with_chain_predecessors(cfg: TaskConfig, all_docs: list[Doc], chosen: list[Doc]) -> list[Doc]:
    """``chosen`` plus every doc a chosen doc continues (``fields.chain``), in dataset order: ``--limit`` and
    ``--offset`` never cut a chain in the middle (its first turns are generated too)."""
    if not cfg.fields.chain:
        return chosen
    by_id = {d.id: d for d in all_docs}
    keep = {d.id for d in chosen}
    for doc in chosen:
        prev = doc.get(cfg.fields.chain)
        while prev not in (None, "") and str(prev) in by_id and str(prev) not in keep:
            keep.add(str(prev))
            prev = by_id[str(prev)].get(cfg.fields.chain)
    return [d for d in all_docs if d.id in keep]


def _num_samples(cfg: TaskConfig, doc: Doc) -> int:
    if cfg.fields.prompts:
        return len(cfg.fields.prompts)
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
        all_docs = load_docs(cfg, run.dataset_overrides.get(cfg.task), fixture=run.fixtures)
        total = len(all_docs)
        docs = all_docs[run.offset:]
        if run.limit is not None:
            docs = docs[: run.limit]
        docs = with_chain_predecessors(cfg, all_docs, docs)
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
