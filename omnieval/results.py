"""``results.json``: the typed, versioned record of a run (schema version 2), environment capture, atomic writes.

Every field is a dataclass attribute documented where it is declared.  A task's results are keyed by
``task_key``: the task name for think mode *off*, ``<task>@think`` for think mode *on*.  A metric's result name
is the name its ``compute`` reports, prefixed ``<label>/`` when a task has several metrics (unless the name
already starts with the label), and suffixed ``[<field>=<value>]`` for a ``group_by`` breakdown.

Version history: **1** had ``value``, ``stderr`` (bootstrap over items), ``n``, ``higher_is_better`` and
ablations with a normal-approximation p-value; **2** resamples docs (clusters), adds ``ci_low``/``ci_high``,
``n_clusters``, exact sign-flip p-values, ``statistics`` (how each is computed) and breakdowns.  Readers
(:func:`read_results`) accept both.  The file is strict JSON (non-finite numbers are written as ``null``).
"""
from __future__ import annotations

import dataclasses
import json
import math
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from omnieval.errors import OmniEvalError
from omnieval.store import atomic_write_text

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
TRACKED_PACKAGES = (
    "omnieval", "torch", "torchvision", "transformers", "diffusers", "accelerate", "open-clip-torch", "torchmetrics",
    "torch-fidelity", "numpy", "scipy", "datasets", "pandas", "av", "vbench", "cd-fvd", "opencv-python-headless",
)


def think_key(task: str, think: str) -> str:
    return task if think == "off" else f"{task}@think"


@dataclass
class MetricResult:
    """One reported value of one task in one think mode."""

    value: float | None
    """The metric over all scored items, in the metric's own units (see its docstring)."""
    stderr: float | None = None
    """Standard error: std (ddof 1) of the value over bootstrap resamples of docs (all samples of a doc together);
    null with fewer than 2 docs or for values that are not resampled (task aggregates such as VBench Total)."""
    ci_low: float | None = None
    """Lower end of the 95% bootstrap confidence interval (method in ``Results.statistics``)."""
    ci_high: float | None = None
    """Upper end of the 95% bootstrap confidence interval."""
    n: int | None = None
    """Scored items (samples) that entered the value."""
    n_clusters: int | None = None
    """Docs (prompts, questions) those items belong to: the resampling unit."""
    higher_is_better: bool = True
    """Direction of the metric."""
    missing: list[str] | None = None
    """For a task aggregate: the inputs that were missing (the aggregate is then null, never computed as 0)."""


@dataclass
class Ablation:
    """Think mode on vs off for one result name of one task, over the items present in both modes."""

    off: float | None
    """The value with think off (over the paired items)."""
    on: float | None
    """The value with think on (over the paired items)."""
    delta: float | None
    """``on - off``."""
    stderr: float | None = None
    """Standard error of ``delta`` from a paired bootstrap over docs (on and off items of a doc drawn together)."""
    ci_low: float | None = None
    """Lower end of the 95% paired bootstrap interval of ``delta``."""
    ci_high: float | None = None
    """Upper end of that interval."""
    p_value: float | None = None
    """Two-sided p-value of an exact paired sign-flip (permutation) test over docs (random flips beyond 16 docs)."""
    n: int | None = None
    """Paired items (doc, sample) present in both modes."""
    n_clusters: int | None = None
    """Docs those pairs belong to (the unit whose labels the test flips)."""
    higher_is_better: bool = True
    """Direction of the metric (a positive delta is an improvement when true)."""


@dataclass
class TaskHashes:
    """Fingerprints that say whether two results of a task are comparable."""

    config: str
    """Hash of the whole resolved task config (generation and scoring)."""
    generation: str
    """Hash of what the model is asked (dataset, fields, prompt template, generation settings)."""
    docs: str
    """Hash of the docs' contents (after --offset/--limit)."""
    scores: str = ""
    """Hash of the score keys that entered the results (items x metric options)."""
    contributions: str = ""
    """Hash of the stored contributions that entered the results, with the code revision that aggregated them:
    when it and ``results`` still match, a re-run reuses the entries instead of resampling again."""
    results: str = ""
    """Hash of the task's entries as written (results and ablations): a hand-edited value no longer matches, so
    the next ``run`` or ``score`` aggregates the task again from the store."""


@dataclass
class TaskMissing:
    """Work of an incomplete task that is not done yet (a shard still running, or dead): the task then has no
    values until a later ``run`` or ``score`` finds everything."""

    items: int
    """Work items without a generated output (and no recorded failure)."""
    scores: int
    """(item, metric) scores not computed yet, of items that have an output."""
    total_items: int
    """Work items of the task."""
    first: list[str] = field(default_factory=list)
    """The first few ids (``task/doc/sample/think``) of items missing an output or a score."""


@dataclass
class TaskFailures:
    """Work of a task that raised (see :mod:`omnieval.failures`); failed items are left out of every value."""

    count: int = 0
    """Failed work units: generations plus (item, metric) scores."""
    generation: int = 0
    """Items whose generation failed (not scored by any metric)."""
    scoring: dict[str, int] = field(default_factory=dict)
    """Metric label -> items that metric failed on."""
    first: list[dict[str, Any]] = field(default_factory=list)
    """The first few failures: item, stage, metric, error, digest."""


@dataclass
class ModelInfo:
    """The model identity (outputs with equal identities are interchangeable)."""

    name: str
    """Registered model name."""
    args: dict[str, Any]
    """Output-relevant ``--model_args`` (resolved defaults included)."""
    fingerprint: str
    """Fingerprint of the weights (name, size, head and tail of every checkpoint file)."""
    frames: str | None = None
    """How the model picks the frames of an input video when a task has no ``frames:`` spec (``None``: not recorded)."""


@dataclass
class Timing:
    """Seconds spent in this invocation."""

    load_s: float = 0.0
    """Loading the model, metric networks and metric modules."""
    generate_s: float = 0.0
    """Model calls."""
    score_s: float = 0.0
    """Metric ``contributions`` calls."""
    aggregate_s: float = 0.0
    """Values, bootstrap intervals and sign-flip tests computed from the stored contributions."""
    total_s: float = 0.0
    """Wall time of the whole command."""


@dataclass
class Counters:
    """Work done in this invocation (0 and 0 on a fully resumed re-run)."""

    generation_calls: int = 0
    """Model method calls."""
    generated_items: int = 0
    """Work items generated."""
    scoring_calls: int = 0
    """Metric ``contributions`` calls."""
    scored_items: int = 0
    """(item, metric) contributions computed."""


@dataclass
class Results:
    """The whole ``results.json``."""

    schema_version: int = SCHEMA_VERSION
    """Version of this schema (see the module docstring)."""
    results: dict[str, dict[str, MetricResult]] = field(default_factory=dict)
    """``task_key`` -> result name -> value with its uncertainty."""
    ablations: dict[str, dict[str, Ablation]] = field(default_factory=dict)
    """task -> result name -> think on vs off, where both modes ran."""
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    """task -> the resolved task config."""
    task_hashes: dict[str, TaskHashes] = field(default_factory=dict)
    """task -> fingerprints of its config, generation settings, docs and scores."""
    metric_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    """task -> metric label -> {name, options (resolved, defaults included), where, info per think mode}."""
    missing: dict[str, TaskMissing] = field(default_factory=dict)
    """task -> work not done yet, for incomplete tasks only (those have no ``results`` entry)."""
    failures: dict[str, TaskFailures] = field(default_factory=dict)
    """task -> work that failed (count 0 when none).  (``missing`` and ``failures`` were added to version 2 as
    optional sections: a file without them has neither.)"""
    statistics: dict[str, str] = field(default_factory=dict)
    """How ``stderr``, ``ci_low``/``ci_high`` and ``p_value`` are computed (text per quantity)."""
    model: ModelInfo | None = None
    """The model that produced the outputs."""
    environment: dict[str, Any] | None = None
    """Package versions, python, platform, git revision, world size."""
    timing: Timing = field(default_factory=Timing)
    """Seconds spent by this invocation (under a launcher: by the process that wrote the file last)."""
    counters: Counters = field(default_factory=Counters)
    """Calls made by this invocation (under a launcher: by the process that wrote the file last)."""

    def to_dict(self) -> dict[str, Any]:
        return _finite(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "results.json") -> "Results":
        """Read a v1 or v2 results mapping; a wrong shape is an :class:`~omnieval.errors.OmniEvalError` naming it."""
        if not isinstance(data, dict):
            raise OmniEvalError(f"{where}: expected a JSON object, got {type(data).__name__}")
        version = data.get("schema_version")
        if version not in READABLE_VERSIONS:
            raise OmniEvalError(f"{where}: schema_version {version!r} is not one of {READABLE_VERSIONS}")
        try:
            out = cls(
                results={t: {m: _build(MetricResult, r) for m, r in metrics.items()} for t, metrics in _mapping(data, "results").items()},
                ablations={t: {m: _build(Ablation, r) for m, r in metrics.items()} for t, metrics in _mapping(data, "ablations").items()},
                configs=dict(_mapping(data, "configs")),
                task_hashes={t: _build(TaskHashes, h) for t, h in _mapping(data, "task_hashes").items()},
                metric_options=dict(_mapping(data, "metric_options")),
                missing={t: _build(TaskMissing, m) for t, m in _mapping(data, "missing").items()},
                failures={t: _build(TaskFailures, f) for t, f in _mapping(data, "failures").items()},
                statistics={str(k): str(v) for k, v in (data.get("statistics") or {}).items()},
                model=_build(ModelInfo, data["model"]) if data.get("model") else None,
                environment=data.get("environment"),
                timing=_build(Timing, data.get("timing") or {}),
                counters=_build(Counters, data.get("counters") or {}),
            )
        except (TypeError, AttributeError, ValueError) as exc:
            raise OmniEvalError(f"{where}: not an omnieval results file ({exc})") from exc
        out.schema_version = SCHEMA_VERSION  # upgraded in memory; written back as the current version
        return out


def _mapping(data: dict, key: str) -> dict:
    value = data.get(key) or {}
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise TypeError(f"{key!r} must map names to objects")
    return value


def _build(cls, raw: Any):
    if not isinstance(raw, dict):
        raise TypeError(f"{cls.__name__} must be an object, got {type(raw).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in raw.items() if k in names})


def _finite(obj: Any) -> Any:
    """Non-finite floats -> None, so the file stays strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def read_results(path: Path) -> Results:
    """``results.json`` (or the one in a run folder), v1 or v2; unreadable files are one-line errors."""
    file = path / "results.json" if path.is_dir() else path
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise OmniEvalError(f"results file not found: {file}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise OmniEvalError(f"{file}: not valid JSON ({exc})") from exc
    return Results.from_dict(data, str(file))


def environment(world_size: int = 1) -> dict[str, Any]:
    packages = {}
    for name in TRACKED_PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "packages": packages,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "git_revision": git_revision(),
        "world_size": world_size,
    }


def git_revision() -> str | None:
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=5)
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


class ResultsFile:
    """``results.json`` of an output folder, merged task by task and replaced atomically.

    Tasks of earlier invocations on the same folder are kept; a task written again replaces its previous entry.
    An unreadable existing file is replaced (with a warning): every value in it can be re-aggregated from the
    store by re-running the command that made it.
    """

    def __init__(self, path: Path):
        self.path = path
        self.data = Results()
        if path.exists():
            try:
                old = read_results(path)
            except OmniEvalError as exc:
                print(f"omnieval: warning: {exc}; it will be replaced", file=sys.stderr)
            else:
                self.data.results, self.data.ablations = old.results, old.ablations
                self.data.configs, self.data.task_hashes = old.configs, old.task_hashes
                self.data.metric_options = old.metric_options
                self.data.missing, self.data.failures = old.missing, old.failures

    def entries_digest(self, task: str) -> str:
        """Hash of the task's results (both think modes) and ablations as they stand in the file."""
        from omnieval.config import stable_hash

        entries = {k: {m: dataclasses.asdict(r) for m, r in v.items()} for k, v in self.data.results.items()
                   if k == task or k.startswith(task + "@")}
        ablations = {m: dataclasses.asdict(a) for m, a in self.data.ablations.get(task, {}).items()}
        return stable_hash(_finite({"results": entries, "ablations": ablations}), length=32)

    def set_task(self, task: str, *, results: dict[str, dict[str, MetricResult]], ablations: dict[str, Ablation],
                 config: dict, hashes: TaskHashes, metric_options: dict, failures: TaskFailures | None = None,
                 missing: TaskMissing | None = None) -> None:
        """Replace the task's entries.  An incomplete task (``missing``) gets no values: pass empty ``results``."""
        for key in [k for k in self.data.results if k == task or k.startswith(task + "@")]:
            del self.data.results[key]
        self.data.results.update(results)
        if ablations:
            self.data.ablations[task] = ablations
        else:
            self.data.ablations.pop(task, None)
        self.data.configs[task] = config
        self.data.task_hashes[task] = hashes
        self.data.metric_options[task] = metric_options
        self.data.failures[task] = failures or TaskFailures()
        if missing is None:
            self.data.missing.pop(task, None)
        else:
            self.data.missing[task] = missing

    def write(self, **top: Any) -> None:
        for key, value in top.items():
            setattr(self.data, key, value)
        text = json.dumps(self.data.to_dict(), indent=2, allow_nan=False, default=str) + "\n"
        atomic_write_text(self.path, text)
