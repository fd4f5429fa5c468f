"""Typed, validated configuration: task definitions (YAML) and run settings (CLI).

Task YAML is read with a safe YAML loader only (plain data, never objects).  Every key is checked: an unknown or misspelled key is a
:class:`~omnieval.errors.ConfigError` naming the file, the key and the allowed keys.  Every setting that can
move a number (dataset revision, prompt template, resolution, frames, steps, guidance, seeds, samples per
prompt, metric options) lives here, is hashed (:meth:`TaskConfig.generation_hash`,
:meth:`MetricSpec.options_hash`) and is written into ``results.json``.

Example (``tasks/smoke/smoke_t2v.yaml``)::

    task: smoke_t2v
    group: [smoke]
    capability: t2v
    dataset: {path: prompts.jsonl}
    fields: {id: id, prompt: prompt}
    generation: {height: 32, width: 32, num_frames: 9, fps: 8, num_inference_steps: 2, seed: 42}
    think: [off, on]
    metrics:
      - name: vbench_temporal_flickering
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from omnieval.capabilities import CAPABILITIES
from omnieval.errors import ConfigError

#: libyaml's safe loader when available (5-10x faster), else the pure-Python one; both build plain data only
SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

THINK_MODES = ("off", "on")


def stable_hash(obj: Any, length: int = 16) -> str:
    """sha256 of the canonical JSON of ``obj`` (sorted keys), truncated."""
    payload = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:length]


@dataclass(frozen=True)
class DatasetSpec:
    """Where the docs come from.

    ``path``: a local ``.jsonl``/``.json``/``.csv``/``.parquet`` file or a folder (relative to the task file), or a
    Hugging Face ``datasets`` path (then ``name``, ``revision`` and ``split`` apply).  ``media_root``: folder that
    relative media paths in the docs are resolved against (default: the data file's folder).  ``media_template``:
    turns the media field's value into a file name, e.g. ``"{}.mp4"`` for Video-MME's ``videoID``; ``{}`` is the
    value and ``{field}`` any doc field (MVBench: ``"{media_dir}/{}"``).  ``media_alternatives``: more templates
    tried in order when the first names no file (``"{}.MP4"``).  ``path`` and ``media_root`` may name environment
    variables (``${MAGICBRUSH_DIR}``).
    ``loader``: a named reader of an official layout (:func:`omnieval.loaders.loaders`, e.g. ``magicbrush``,
    ``loveu_tgve``, ``v2vbench``, ``five``, or ``hub``/``file`` to force one of the default readers), with its
    ``options`` (``hub``/``file``: several configs, :mod:`omnieval.loaders.configs`); ``None`` picks a local
    file/folder if ``path`` exists, else a hub dataset.  ``where``: a record filter (field -> required value), e.g.
    one language of a bilingual benchmark.
    ``fixture``: a bundled tiny copy in the same layout (relative to the task file; ``omnieval run --fixtures`` reads
    it with the same loader, and every ``${VAR}`` of ``media_root`` then means its folder).  ``download``: what to
    download and where to put it -- the one line shown when the media are missing.  Neither is hashed (they say
    where a copy is, not what the model is asked).
    """

    path: str
    loader: str | None = None
    options: dict = field(default_factory=dict)
    #: keep only the records whose field equals the value (e.g. ``{instruction_language: en}``), before ids are read
    where: dict = field(default_factory=dict)
    name: str | None = None
    revision: str | None = None
    split: str = "test"
    media_root: str | None = None
    media_template: str = "{}"
    media_alternatives: tuple[str, ...] = ()
    fixture: str | None = None
    download: str = ""


@dataclass(frozen=True)
class FieldMap:
    """Which doc field plays which role.  ``None`` means the task has no such field.

    ``id`` may be a format template of several fields (``"{video}_{qid}"``).  ``choices``: the field holding the
    options (a list of texts or a ``{letter: text}`` mapping), or a list of fields holding one option each (NExT-QA's
    ``a0``..``a4``); ``choices_skip`` drops option texts that mark an absent option (LongVideoBench's ``"N/A"``),
    ``choices_strip`` strips each text.  ``choices_in_prompt``: the options are lines ``A. text`` / ``(A) text`` of the
    prompt field itself (TempCompass, MLVU).
    """

    id: str | None = "id"
    prompt: str | None = "prompt"
    media: str | None = None        # input image/video of understanding and editing tasks
    reference: str | None = None    # target answer, or reference media
    choices: str | tuple[str, ...] | None = None  # multiple-choice options
    num_samples: str | None = None  # per-doc samples per prompt (VBench: 25 for temporal flickering prompts)
    choices_skip: tuple[str, ...] = ()
    choices_strip: bool = False
    choices_in_prompt: bool = False
    #: several questions per doc, each answered as its own sample: sample ``i`` is asked ``doc[prompts[i]]`` (as
    #: ``{prompt}`` of the template), e.g. ``[Q1, Q2]`` for Video-ChatGPT consistency; metrics see the other
    #: answers as ``MetricInput.siblings``
    prompts: tuple[str, ...] = ()
    chain: str | None = None        # id of the doc whose *generated output* is this doc's input (multi-turn editing)

    def __post_init__(self):
        if isinstance(self.choices, list):
            object.__setattr__(self, "choices", tuple(self.choices))
        if self.choices is not None and not (isinstance(self.choices, str) or all(isinstance(c, str) for c in self.choices)):
            raise ValueError(f"choices: expected a field name or a list of field names, got {self.choices!r}")
        if self.choices_in_prompt and self.choices is not None:
            raise ValueError("give either choices (fields) or choices_in_prompt, not both")


#: frame sampling rules (implemented in :mod:`omnieval.frames`, which documents them)
FRAME_RULES = ("uniform_floor", "uniform_round", "fps", "mvbench_segments", "lvb_step", "all")


@dataclass(frozen=True)
class FrameSpec:
    """A task's frame sampling: the harness applies it to the input video before the model sees it
    (:mod:`omnieval.frames` documents the rules).  ``num``: frames (``uniform_*``, ``mvbench_segments``, ``lvb_step``'s
    maximum); ``fps``/``max``: the ``fps`` rule's target rate and cap; ``bound_fields``: ``[start, end]`` doc fields in
    seconds (``mvbench_segments``); ``duration_field``: the doc field with the duration in seconds (``lvb_step``)."""

    rule: str = "uniform_floor"
    num: int | None = 8
    fps: float | None = None
    max: int | None = None
    bound_fields: tuple[str, ...] = ()
    duration_field: str | None = None

    def __post_init__(self):
        if self.rule not in FRAME_RULES:
            raise ValueError(f"rule {self.rule!r} is not one of {', '.join(FRAME_RULES)}")
        if self.rule not in ("all", "fps") and (self.num is None or self.num < 1):
            raise ValueError(f"rule {self.rule} needs num >= 1, got {self.num!r}")
        if self.rule == "fps" and not (self.fps and self.fps > 0 and math.isfinite(self.fps)):
            raise ValueError(f"rule fps needs a target rate fps > 0, got {self.fps!r}")
        if self.max is not None and self.max < 1:
            raise ValueError(f"max must be >= 1, got {self.max}")
        if self.bound_fields and len(self.bound_fields) != 2:
            raise ValueError(f"bound_fields: give the [start, end] doc fields, got {list(self.bound_fields)}")

    def describe(self) -> str:
        """``"uniform_floor num=8"``: the rule and its numbers (recorded with every sampled video)."""
        numbers = {"num": None if self.rule in ("all", "fps") else self.num, "fps": self.fps, "max": self.max}
        return " ".join([self.rule] + [f"{k}={v}" for k, v in numbers.items() if v is not None])


@dataclass(frozen=True)
class GenerationSettings:
    """Settings passed to the model.  ``seed`` is the base seed; sample ``i`` uses ``seed + i`` for every
    prompt (GenEval re-applies its seed per prompt), and think-on uses the same seeds as think-off so the
    two are paired.  ``extra`` is passed through to the model verbatim (and hashed)."""

    height: int | None = None
    width: int | None = None
    num_frames: int | None = None
    fps: float | None = None
    num_inference_steps: int | None = None
    guidance_scale: float | None = None
    negative_prompt: str | None = None
    max_new_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int = 0
    samples_per_prompt: int = 1
    batch_size: int = 1
    extra: dict = field(default_factory=dict)

    def model_kwargs(self) -> dict[str, Any]:
        skip = {"seed", "samples_per_prompt", "batch_size", "extra"}
        out = {k: v for k, v in dataclasses.asdict(self).items() if k not in skip and v is not None}
        out.update(self.extra)
        return out


@dataclass(frozen=True)
class MetricSpec:
    """One metric of a task: registry name, options (conventions), an optional label in results, and
    ``where``: score only the docs whose field equals (or, for a list field, contains) the given value, e.g.
    ``where: {dimension: subject_consistency}`` for VBench's per-dimension prompt subsets."""

    name: str
    options: dict = field(default_factory=dict)
    label: str | None = None
    where: dict = field(default_factory=dict)
    #: score only these sample indexes (default: all), e.g. ``[0]`` for a metric that judges a doc's pair of answers
    #: once, on its first sample
    samples: tuple[int, ...] = ()

    @property
    def result_label(self) -> str:
        """The name results use for this metric: ``label`` if given, else the registry name."""
        return self.label or self.name

    def options_hash(self) -> str:
        return stable_hash({"name": self.name, "options": self.options})

    def applies_to(self, doc_fields: dict) -> bool:
        for key, want in self.where.items():
            have = doc_fields.get(key)
            if not (have == want or (isinstance(have, (list, tuple)) and want in have)):
                return False
        return True


@dataclass(frozen=True)
class TaskConfig:
    task: str
    capability: str
    dataset: DatasetSpec
    group: tuple[str, ...] = ()
    description: str = ""
    fields: FieldMap = FieldMap()
    prompt_template: str = "{prompt}"
    generation: GenerationSettings = GenerationSettings()
    think: tuple[str, ...] = ("off",)
    metrics: tuple[MetricSpec, ...] = ()
    #: task-level aggregations over the metric values (names in :data:`omnieval.aggregate.AGGREGATORS`)
    aggregates: tuple[str, ...] = ()
    #: doc fields to break every metric down by (one value per field value, from the same per-item scores)
    group_by: tuple[str, ...] = ()
    #: frame sampling the harness applies to input videos (``None``: the model gets the whole video and samples itself)
    frames: FrameSpec | None = None
    source_file: str | None = None

    def generation_hash(self) -> str:
        """Hash of everything that determines what the model is asked (not how outputs are scored), including the
        frame sampling."""
        d = _hash_view(self.to_dict())
        keep = ("task", "capability", "dataset", "fields", "prompt_template", "generation", "frames")
        return stable_hash({k: d[k] for k in keep if k in d})

    def config_hash(self) -> str:
        d = _hash_view(self.to_dict())
        d.pop("source_file", None)
        d.pop("description", None)
        return stable_hash(d)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def base_dir(self) -> Path:
        return Path(self.source_file).parent if self.source_file else Path.cwd()


#: keys added after results were first stored: hashed only when set (not at their default), so that adding them
#: changed no existing task's hashes (nor any stored work item's key)
_LATE_KEYS: dict[str | None, tuple[str, ...]] = {
    "dataset": ("media_alternatives",),
    "fields": ("choices_skip", "choices_strip", "choices_in_prompt"),
    None: ("frames",),
}
#: dataset keys never hashed: where a bundled copy is and how to download the data (not what the model is asked)
_UNHASHED_DATASET_KEYS = ("fixture", "download")


def _late_defaults() -> dict[str | None, dict[str, Any]]:
    parts = {"dataset": DatasetSpec, "fields": FieldMap, None: TaskConfig}
    out: dict[str | None, dict[str, Any]] = {}
    for part, keys in _LATE_KEYS.items():
        by_name = {f.name: f for f in dataclasses.fields(parts[part])}
        out[part] = {k: by_name[k].default_factory() if by_name[k].default_factory is not dataclasses.MISSING
                     else by_name[k].default for k in keys}
    return out


def _hash_view(d: dict) -> dict:
    """``d`` (a :meth:`TaskConfig.to_dict`) without the late keys that are at their default and without the
    unhashed dataset keys."""
    out = dict(d)
    out["dataset"] = {k: v for k, v in out["dataset"].items() if k not in _UNHASHED_DATASET_KEYS}
    for part, defaults in _late_defaults().items():
        target = out if part is None else dict(out[part])
        for key, default in defaults.items():
            if key in target and target[key] == default:
                del target[key]
        if part is not None:
            out[part] = target
    return out


# ---------------------------------------------------------------------------------------------
# Building dataclasses from YAML with key checking
# ---------------------------------------------------------------------------------------------
def build(cls: type, data: Any, where: str):
    """Build dataclass ``cls`` from a mapping; unknown keys and wrong types raise ConfigError naming ``where``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping for {cls.__name__}, got {type(data).__name__}")
    fields_ = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields_))
    if unknown:
        close = {k: _close(k, list(fields_)) for k in unknown}
        hints = "; ".join(f"{k!r}" + (f" (did you mean {close[k]!r}?)" if close[k] else "") for k in unknown)
        raise ConfigError(f"{where}: unknown key(s) {hints}; allowed keys: {', '.join(fields_)}")
    hints_ = _type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        kwargs[key] = _coerce(hints_[key], value, f"{where}.{key}")
    missing = [n for n, f in fields_.items() if n not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{where}: missing required key(s) {', '.join(missing)}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def _close(key: str, allowed: list[str]) -> str | None:
    import difflib

    m = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    return m[0] if m else None


def _coerce(hint: Any, value: Any, where: str):
    if dataclasses.is_dataclass(hint):
        return build(hint, value, where)
    origin = getattr(hint, "__origin__", None)
    if origin is tuple:
        inner = hint.__args__[0]
        if isinstance(value, (str, dict)) or not isinstance(value, (list, tuple)):
            value = [value]
        return tuple(_coerce(inner, v, where) for v in value)
    if hint is dict or origin is dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return value
    base = _plain_type(hint)
    if base is None or value is None:
        return value
    if dataclasses.is_dataclass(base):  # an optional nested mapping (frames:)
        return build(base, value, where)
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if base is str and isinstance(value, bool):  # YAML reads off/on as booleans
        return "on" if value else "off"
    if not isinstance(value, base) or (base is int and isinstance(value, bool)):
        raise ConfigError(f"{where}: expected {base.__name__}, got {value!r}")
    return value


def _plain_type(hint: Any):
    args = getattr(hint, "__args__", None)
    if args:  # Optional[X] / X | None
        real = [a for a in args if a is not type(None)]
        return real[0] if len(real) == 1 and isinstance(real[0], type) else None
    return hint if isinstance(hint, type) else None


def _read_yaml(path: Path):
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        pos = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{pos} malformed YAML: {getattr(exc, 'problem', exc)}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: task file is not UTF-8 text") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read task file: {exc.strerror}") from exc


def deep_merge(base: dict, override: dict) -> dict:
    """``override`` on top of ``base``; nested mappings merge key by key, anything else is replaced."""
    out = dict(base)
    for key, value in override.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def resolve_includes(doc: Any, path: Path, chain: tuple[Path, ...] = ()) -> Any:
    """Expand ``include:`` (a file name, or a list of them, relative to the including file).

    Included files are merged in order, then the including file's own keys on top (:func:`deep_merge`: a task
    can override one generation setting without repeating the others).  Files whose name starts with ``_``
    hold shared parts only and are not tasks themselves.  Include cycles are an error.
    """
    if not isinstance(doc, dict) or "include" not in doc:
        return doc
    names = doc["include"]
    names = names if isinstance(names, list) else [names]
    merged: dict = {}
    for name in names:
        if not isinstance(name, str):
            raise ConfigError(f"{path}: include: expected file names, got {name!r}")
        target = (path.parent / name).resolve()
        if target in chain or target == path.resolve():
            raise ConfigError(f"{path}: include cycle through {name}")
        if not target.is_file():
            raise ConfigError(f"{path}: included file not found: {name} (looked in {path.parent})")
        included = resolve_includes(_read_yaml(target), target, chain + (path.resolve(),))
        if not isinstance(included, dict):
            raise ConfigError(f"{target}: an included file must be a mapping, got {type(included).__name__}")
        merged = deep_merge(merged, included)
    return deep_merge(merged, {k: v for k, v in doc.items() if k != "include"})


def load_task_file(path: str | Path) -> list[TaskConfig]:
    """Parse one task YAML file (a mapping, or a list of mappings) into validated TaskConfigs."""
    path = Path(path)
    raw = _read_yaml(path)
    docs = raw if isinstance(raw, list) else [raw]
    out = []
    for i, doc in enumerate(docs):
        where = f"{path}" + (f"[{i}]" if isinstance(raw, list) else "")
        doc = resolve_includes(doc, path)
        if isinstance(doc, dict):
            doc = dict(doc, source_file=str(path))
            metrics = doc.get("metrics") or []
            metrics = metrics if isinstance(metrics, list) else [metrics]  # one metric may be given bare
            doc["metrics"] = [m if isinstance(m, dict) else {"name": m} for m in metrics]
            for m in doc["metrics"]:
                if isinstance(m.get("options"), dict):
                    m["options"] = expand_env(m["options"])
        cfg = build(TaskConfig, doc, where)
        _validate(cfg, where)
        out.append(cfg)
    return out


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(value: Any) -> Any:
    """``${VAR}`` and ``${VAR:-default}`` in strings (recursively in lists and mappings) replaced by the environment's
    value (``default`` when ``VAR`` is unset or empty).  Metric options are expanded when the task file is read, so
    the hashes and results hold the values used (e.g. the judge model); an unset ``${VAR}`` without a default is
    left as written, for the metric to report when it is built."""
    if isinstance(value, str):
        return _ENV_REF.sub(lambda m: os.environ.get(m.group(1)) or (m.group(2) if m.group(2) is not None else m.group(0)), value)
    if isinstance(value, list):
        return [expand_env(v) for v in value]
    if isinstance(value, dict):
        return {k: expand_env(v) for k, v in value.items()}
    return value


def _validate(cfg: TaskConfig, where: str) -> None:
    if cfg.capability not in CAPABILITIES:
        raise ConfigError(f"{where}.capability: {cfg.capability!r} is not one of {', '.join(CAPABILITIES)}")
    bad = [t for t in cfg.think if t not in THINK_MODES]
    if bad:
        raise ConfigError(f"{where}.think: {bad} not in {THINK_MODES}")
    _validate_generation(cfg.generation, f"{where}.generation")
    _check_template(cfg.prompt_template, f"{where}.prompt_template")
    if cfg.fields.prompts and (cfg.generation.samples_per_prompt != 1 or cfg.fields.num_samples):
        raise ConfigError(f"{where}.fields.prompts: one sample per listed question; it cannot be combined with "
                          f"generation.samples_per_prompt or fields.num_samples")
    bad_samples = [(m.result_label, i) for m in cfg.metrics for i in m.samples if not isinstance(i, int) or i < 0]
    if bad_samples:
        raise ConfigError(f"{where}.metrics: samples of {bad_samples[0][0]} must be sample indexes >= 0, got {bad_samples[0][1]!r}")
    if not cfg.task.replace("_", "").replace("-", "").isalnum():
        raise ConfigError(f"{where}.task: {cfg.task!r} must be letters, digits, '_' or '-'")


def _at_least_one(value) -> bool:
    return value >= 1


def _finite_positive(value) -> bool:
    return math.isfinite(value) and value > 0


def _finite_non_negative(value) -> bool:
    return math.isfinite(value) and value >= 0


def _probability(value) -> bool:
    return math.isfinite(value) and 0 < value <= 1


#: checks of generation settings at load time (``None`` = unset, not checked): key -> (test, what it needs).
#: Non-finite values would reach the model (a NaN guidance scale decodes to NaN frames) or the writer (a NaN
#: or zero fps cannot be encoded; ``fps: 0`` was silently replaced by the model's default).
GENERATION_CHECKS = {
    "height": (_at_least_one, "must be >= 1"),
    "width": (_at_least_one, "must be >= 1"),
    "num_frames": (_at_least_one, "must be >= 1"),
    "num_inference_steps": (_at_least_one, "must be >= 1"),
    "max_new_tokens": (_at_least_one, "must be >= 1"),
    "samples_per_prompt": (_at_least_one, "must be >= 1"),
    "batch_size": (_at_least_one, "must be >= 1"),
    "fps": (_finite_positive, "must be a finite number > 0"),
    "guidance_scale": (math.isfinite, "must be a finite number"),
    "temperature": (_finite_non_negative, "must be a finite number >= 0"),
    "top_p": (_probability, "must be a finite number in (0, 1]"),
}


def _validate_generation(gen: GenerationSettings, where: str) -> None:
    for key, (ok, need) in GENERATION_CHECKS.items():
        value = getattr(gen, key)
        if value is not None and not ok(value):
            raise ConfigError(f"{where}.{key} {need}, got {value!r}")
    _check_finite(gen.extra, f"{where}.extra")


def _check_finite(value: Any, where: str) -> None:
    """Every float inside ``extra`` (passed to the model verbatim) must be finite."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where} must be finite, got {value!r}")
    if isinstance(value, dict):
        for key, inner in value.items():
            _check_finite(inner, f"{where}.{key}")
    elif isinstance(value, (list, tuple)):
        for i, inner in enumerate(value):
            _check_finite(inner, f"{where}[{i}]")


def _check_template(template: str, where: str) -> None:
    """Only named fields (``{question}``, ``{choices_text}``) with valid ``str.format`` syntax."""
    import string

    try:
        names = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise ConfigError(f"{where}: invalid format string {template!r}: {exc}") from exc
    bad = [f for f in names if not f.isidentifier()]
    if bad:
        raise ConfigError(f"{where}: field {{{bad[0]}}} is not a doc field name (use e.g. {{prompt}}; write {{{{ }}}} "
                          f"for literal braces)")


@dataclass
class RunConfig:
    """Settings of one ``omnieval run`` invocation."""

    output_path: str
    model: str = "omnivideo-tiny"
    model_args: dict = field(default_factory=dict)
    tasks: tuple[str, ...] = ("smoke",)
    limit: int | None = None
    offset: int = 0
    think: str = "off"
    seed: int | None = None
    log_samples: bool = False
    predict_only: bool = False
    include_path: tuple[str, ...] = ()
    dataset_overrides: dict = field(default_factory=dict)
    #: read every task's bundled fixture (``dataset.fixture``) instead of its dataset
    fixtures: bool = False
    rank: int = 0
    world_size: int = 1
    retry_failed: bool = False
    max_failures: str = "0.01"  # omnieval.failures.DEFAULT_MAX_FAILURES

    def think_modes(self) -> tuple[str, ...]:
        return THINK_MODES if self.think == "both" else (self.think,)


def parse_kv(text: str | None, where: str = "--model_args") -> dict[str, Any]:
    """``k=v,k2=v2`` -> dict; values parsed as YAML scalars (numbers, booleans, null)."""
    out: dict[str, Any] = {}
    if not text:
        return out
    for part in text.split(","):
        if not part.strip():
            continue
        if "=" not in part:
            raise ConfigError(f"{where}: expected key=value, got {part!r}")
        key, value = (x.strip() for x in part.split("=", 1))
        if not key or not value:
            raise ConfigError(f"{where}: expected key=value, got {part!r}")
        if key in out:
            raise ConfigError(f"{where}: {key!r} is given twice")
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            parsed = value
        out[key] = value if isinstance(parsed, (dict, list)) else parsed
    return out
