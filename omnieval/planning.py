"""Planning: the work items of a task (task x doc x sample index x think mode) and their rendered prompts.

A work item's key hashes everything that determines its output: the model identity (name, output-relevant
args, checkpoint fingerprint), the task's generation hash (dataset, fields, prompt template, generation
settings), the doc id and content, the sample index, the seed and the think mode.  Sample ``i`` of every
prompt uses seed ``base + i``; think-on items reuse the think-off seeds, so the two modes are paired.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from omnieval.config import TaskConfig, stable_hash
from omnieval.errors import ConfigError
from omnieval.models.base import THINKING_CAPABILITIES, ModelIdentity
from omnieval.tasks import Doc


@dataclass(frozen=True)
class WorkItem:
    task: str
    doc: Doc
    sample_index: int
    think: str
    seed: int
    prompt: str
    key: str


def render_prompt(cfg: TaskConfig, doc: Doc) -> str:
    fields = dict(doc.fields)
    if cfg.fields.prompt and cfg.fields.prompt in fields:
        fields.setdefault("prompt", fields[cfg.fields.prompt])
    choices = doc.get(cfg.fields.choices)
    if choices is not None:
        fields.setdefault("choices_text", format_choices(choices))
        fields.setdefault("choices_lines", "\n".join(map(str, choices.values() if isinstance(choices, dict) else choices)))
    try:
        return cfg.prompt_template.format_map(fields)
    except KeyError as exc:
        raise ConfigError(f"task {cfg.task}: prompt_template uses field {exc.args[0]!r}, missing in doc {doc.id}") from exc


def format_choices(choices) -> str:
    """``["x", "y"]`` or ``{"A": "x", "B": "y"}`` -> ``"(A) x\\n(B) y"`` (MVBench-style option list; the template
    field ``{choices_text}``).  ``{choices_lines}`` is the options as given, one per line (Video-MME style)."""
    if isinstance(choices, dict):
        pairs = list(choices.items())
    else:
        pairs = [(chr(ord("A") + i), c) for i, c in enumerate(choices)]
    return "\n".join(f"({k}) {v}" for k, v in pairs)


def plan_items(cfg: TaskConfig, docs: list[Doc], identity: ModelIdentity, think_modes: Iterable[str], seed: int | None,
               model_thinks: bool = True) -> list[WorkItem]:
    """Work items of one task.  Think-on items exist only where the task lists ``on``, the capability takes
    ``think`` and the model supports it."""
    base_seed = cfg.generation.seed if seed is None else seed
    modes = [t for t in think_modes if t in cfg.think]
    if cfg.capability not in THINKING_CAPABILITIES or not model_thinks:
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
    if n < 1:
        raise ConfigError(f"task {cfg.task}: doc {doc.id} field {cfg.fields.num_samples!r} must be a positive integer, got {value!r}")
    return n
