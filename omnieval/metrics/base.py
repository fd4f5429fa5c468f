"""The metric protocol, declared once on :class:`Metric`.

Every metric comes in two forms, in torchmetrics' spirit:

* a **functional** form in its module (arrays in, floats out), e.g. ``clip_score(images, texts, model=...)``;
* a **stateful** :class:`Metric` with ``update(inputs)`` / ``compute()`` / ``merge(other)``, whose running state
  is declared (:attr:`Metric.state`, like torchmetrics' ``add_state``): its empty value and how two processes'
  values combine.  ``reset`` and ``merge`` are derived from the declaration, so a metric only says how one
  item's contribution is added (``fold``) and how the value is computed.

The stateful form is split into two steps so the runner can cache and resume scoring:

``contributions(inputs) -> list[dict]``
    the expensive, per-item part (run a network, extract features, parse an answer).  Each dict is that
    item's contribution: scalars, strings (e.g. a failure reason) and numpy arrays (features).  The runner
    stores it per item, keyed by the item and the metric's options, and never recomputes it.
``fold(contribution)``
    the cheap part: add one contribution to the running state.

``update(inputs)`` is ``contributions`` followed by ``fold``.  ``compute()`` returns ``{name: value}``; one
metric may report several names (e.g. GenEval per tag and ``overall``).

The rest of the contract, with defaults the runner honours: :attr:`Metric.needs` (the :class:`MetricInput`
fields that must be present; only those are loaded, and a missing one is an error naming the item),
:meth:`Metric.required_weights` (manifest ids checked before anything is generated; default
:attr:`Metric.weights`), :meth:`Metric.check_ready` (data other than weights, checked before generation),
:meth:`Metric.result_info` (what to record next to the value, e.g. the FVD protocol),
:attr:`Metric.batch_size` (items per ``contributions`` call), :attr:`Metric.bootstrap` /
:attr:`Metric.bootstrap_iters` / :attr:`Metric.cluster_fields` (how the doc-level bootstrap may resample it), and
an optional vectorised form for resampling, ``additive_state() -> {key: float}`` (the state as numbers that add
across docs) with ``compute_additive({key: array}) -> {name: array}`` (checked against ``compute`` before use).

Options are a dataclass (``Options``), built by :meth:`Metric.build_options` with the same type checks as task
YAML: every convention that moves the number (model id, value range, resize, frame sampling, clamping,
averaging) is a field, so it is validated, hashed into the task hash and written into results.
"""
from __future__ import annotations

import copy
import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from omnieval.errors import MediaError

#: a contribution holding this key (its value: the reason) is folded like any other -- the failure is counted, never
#: scored as 0 -- but the item is scored again by the next run (a transient failure, e.g. a judge outage)
RETRY = "__retry__"
#: fields of :class:`MetricInput` a metric may need
INPUT_FIELDS = ("output", "prompt", "reference", "source", "doc", "siblings")


@dataclass
class MetricInput:
    """One item to score.

    ``output``: what the model produced -- an image (uint8 ``H x W x 3``), a :class:`~omnieval.media.Video`
    or a text response; shared by every metric of the item (decoded once), so metrics must not modify it.
    ``prompt``: the text the output should match (the doc's raw prompt field).  ``reference``: the target
    answer (text) or reference media.  ``source``: the input media of an edit.  ``doc``: the full dataset
    record (choices, GenEval metadata, VBench auxiliary info, ...).  ``doc_id`` / ``sample_index``: which doc
    and which of its samples (metrics whose protocol selects samples per doc use them).  ``siblings``: the outputs
    of the doc's other samples in the same think mode, by sample index (loaded only for metrics that need them,
    e.g. a judge of the consistency of two answers).
    """

    item_id: str
    output: Any
    prompt: str | None = None
    reference: Any = None
    source: Any = None
    doc: dict = field(default_factory=dict)
    doc_id: str = ""
    sample_index: int = 0
    siblings: dict | None = None


@dataclass(frozen=True)
class NoOptions:
    pass


# ---------------------------------------------------------------------------------------------
# Declared state
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class State:
    """One piece of declared running state: ``empty()`` makes its initial value, ``combine(a, b)`` merges two
    processes' values (it may update ``a`` in place and must return the result; it never keeps a reference
    to a mutable part of ``b``)."""

    empty: Callable[[], Any]
    combine: Callable[[Any, Any], Any]


def sum_state(zero: Any = 0.0) -> State:
    """A number (or array) summed across processes."""
    return State(lambda: copy.copy(zero), lambda a, b: a + b)


def list_state() -> State:
    """A list concatenated across processes (in process order; use only when ``compute`` is order-free)."""
    return State(list, lambda a, b: a + b)


def _sum_dicts(a: dict, b: dict) -> dict:
    for key, value in b.items():
        a[key] = a[key] + value if key in a else copy.copy(value)
    return a


def dict_sum_state() -> State:
    """A mapping of sums (numbers or arrays) added key by key across processes."""
    return State(dict, _sum_dicts)


def dict_any_state() -> State:
    """A mapping of flags or-ed key by key across processes."""
    return State(dict, lambda a, b: {**a, **{k: a.get(k, False) or v for k, v in b.items()}})


def mergeable_state(factory: Callable[[], Any]) -> State:
    """An object with its own ``merge(other)`` (e.g. :class:`~omnieval.metrics.frechet.FeatureStats`)."""

    def combine(a, b):
        a.merge(b)
        return a

    return State(factory, combine)


# ---------------------------------------------------------------------------------------------
# The metric
# ---------------------------------------------------------------------------------------------
class Metric(ABC):
    """Stateful metric.  Subclasses define ``Options``, ``state``, ``contributions``, ``fold`` and ``compute``."""

    Options: ClassVar[type] = NoOptions
    higher_is_better: ClassVar[bool | dict[str, bool]] = True
    #: the running state, name -> :class:`State`; ``reset`` and ``merge`` follow from it
    state: ClassVar[dict[str, State]] = {}
    #: fields of :class:`MetricInput` that must be present (the runner loads only these; see :data:`INPUT_FIELDS`)
    needs: ClassVar[tuple[str, ...]] = ("output",)
    #: manifest ids of the weight files the metric loads (see :meth:`required_weights`)
    weights: ClassVar[tuple[str, ...]] = ()
    #: items per ``contributions`` call
    batch_size: ClassVar[int] = 8
    #: whether ``compute`` is cheap enough to resample freely (False for FID/KID/FVD: a matrix square root each)
    bootstrap: ClassVar[bool] = True
    #: cap on bootstrap resamples and random sign flips (None: the default, or a small cap when not ``bootstrap``;
    #: 0: no resampling).  See :func:`omnieval.aggregate.stats.resample_budget`.
    bootstrap_iters: ClassVar[int | None] = None
    #: contribution fields holding the item's doc identity, for metrics whose ``compute`` groups by doc (VBench's
    #: per-prompt static filter, GenEval's prompt accuracy); the bootstrap gives each copy of a doc drawn twice
    #: its own identity, so duplicates count twice as they should
    cluster_fields: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **options: Any):
        self.options = self.build_options(options)
        self.reset()

    @classmethod
    def build_options(cls, values: dict[str, Any], where: str | None = None):
        """The ``Options`` dataclass from a mapping, with the type checks of task YAML (unknown keys, wrong
        types and invalid values are a one-line :class:`~omnieval.errors.ConfigError` naming ``where``)."""
        from omnieval.config import build

        name = getattr(cls, "registry_name", cls.__name__)
        return build(cls.Options, dict(values), where or f"metric {name}: options")

    # -- the two halves of update -------------------------------------------------------------
    @abstractmethod
    def contributions(self, inputs: list[MetricInput]) -> list[dict[str, Any]]:
        """Per-item partial state (the expensive part).  Must not touch ``self``'s running state."""

    @abstractmethod
    def fold(self, contribution: dict[str, Any]) -> None:
        """Add one item's contribution to the running state."""

    @abstractmethod
    def compute(self) -> dict[str, float]:
        """Final values, ``{name: value}``."""

    # -- derived from the declared state --------------------------------------------------------
    def reset(self) -> None:
        """Empty the running state."""
        for name, spec in self.state.items():
            setattr(self, name, spec.empty())

    def merge(self, other: "Metric") -> None:
        """Add another instance's state (e.g. from another process) into this one."""
        for name, spec in self.state.items():
            setattr(self, name, spec.combine(getattr(self, name), getattr(other, name)))

    # -- the rest of the contract (defaults) ------------------------------------------------------
    def required_inputs(self) -> tuple[str, ...]:
        """The :class:`MetricInput` fields this instance needs: :attr:`needs`, where an ``against`` option
        (``reference`` or ``source``: what the output is compared with) replaces ``reference``."""
        against = getattr(self.options, "against", None)
        if against in INPUT_FIELDS:
            return tuple(dict.fromkeys(against if f == "reference" else f for f in self.needs))
        return self.needs

    def required_weights(self) -> list[str]:
        """Manifest ids of the weights this instance will load (default :attr:`weights`)."""
        return list(self.weights)

    def result_info(self) -> dict[str, Any]:
        """What to record next to the computed value (protocol, counts); called after :meth:`compute`.  A
        ``comparable_as`` string says which values of this metric may be compared (leaderboards never put values
        with different strings side by side, e.g. FVDs of different protocols or reference sets)."""
        return {}

    def check_ready(self, task: str = "") -> None:
        """Called by the runner before anything is generated (``task``: the task it scores, for messages): raise a
        one-line error for data the metric will need and cannot find (e.g. FVD reference statistics).  Default:
        nothing to check."""

    def attach_run_dir(self, path) -> None:
        """Called by the runner with the run's output folder before scoring; a metric that keeps a cache (e.g. judge
        replies) puts it under that folder.  Default: nothing."""

    # -- conveniences -------------------------------------------------------------------------
    def update(self, inputs: list[MetricInput]) -> None:
        for contribution in self.contributions(inputs):
            self.fold(contribution)

    def fresh(self) -> "Metric":
        """A new instance with the same options and loaded models (shares heavy members)."""
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.reset()
        return clone

    def is_higher_better(self, name: str) -> bool:
        hib = self.higher_is_better
        return hib.get(name, True) if isinstance(hib, dict) else bool(hib)

    def options_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.options)


class MeanMetric(Metric):
    """A metric whose value is the mean of per-item scores (one or several named scores per item).

    Subclasses implement ``score(inputs) -> list[dict[str, float]]``; non-float entries (e.g. a parsed
    answer or a failure reason) are kept in the contribution for the sample record but not averaged.
    A NaN score is an error naming the item, never silently averaged.
    """

    state = {"sums": dict_sum_state(), "counts": dict_sum_state()}

    def contributions(self, inputs: list[MetricInput]) -> list[dict[str, Any]]:
        scores = self.score(inputs)
        for item, score in zip(inputs, scores):
            for key, value in score.items():
                if isinstance(value, float) and math.isnan(value):
                    raise MediaError(f"{type(self).__name__}: score {key!r} of item {item.item_id} is NaN")
        return scores

    @abstractmethod
    def score(self, inputs: list[MetricInput]) -> list[dict[str, Any]]:
        """Per-item scores."""

    def fold(self, contribution: dict[str, Any]) -> None:
        for key, value in contribution.items():
            if isinstance(value, (bool, int, float, np.floating, np.integer)) and not isinstance(value, str):
                self.sums[key] = self.sums.get(key, 0.0) + float(value)
                self.counts[key] = self.counts.get(key, 0) + 1

    def compute(self) -> dict[str, float]:
        return {key: self.sums[key] / self.counts[key] for key in self.sums if self.counts[key]}
