"""The metric protocol.

Every metric comes in two forms, in torchmetrics' spirit:

* a **functional** form in its module (arrays in, floats out), e.g. ``clip_score(images, texts, model=...)``;
* a **stateful** :class:`Metric` with ``update(inputs)`` / ``compute()`` / ``merge(other)``, whose state is
  a handful of running sums, so it merges across processes and does not grow with the number of samples.

The stateful form is split into two steps so the runner can cache and resume scoring:

``contributions(inputs) -> list[dict]``
    the expensive, per-item part (run a network, extract features, parse an answer).  Each dict is that
    item's contribution: scalars, strings (e.g. a failure reason) and numpy arrays (features).  The runner
    stores it per item, keyed by the item and the metric's options, and never recomputes it.
``fold(contribution)``
    the cheap part: add one contribution to the running state.

``update(inputs)`` is simply ``contributions`` followed by ``fold``.  ``compute()`` returns
``{name: value}``; one metric may report several names (e.g. GenEval per tag and ``overall``).

Options are a dataclass (``Options``): every convention that moves the number (model id, value range,
resize, frame sampling, clamping, averaging) is a field, so it is validated, hashed into the task hash and
written into results.
"""
from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from omnieval.errors import ConfigError, MediaError


@dataclass
class MetricInput:
    """One item to score.

    ``output``: what the model produced -- an image (uint8 ``H x W x 3``), a :class:`~omnieval.media.Video`
    or a text response.  ``prompt``: the text the output should match.  ``reference``: the target answer
    (text) or reference media.  ``source``: the input media of an edit.  ``doc``: the full dataset record
    (choices, GenEval metadata, VBench auxiliary info, ...).
    """

    item_id: str
    output: Any
    prompt: str | None = None
    reference: Any = None
    source: Any = None
    doc: dict = field(default_factory=dict)


@dataclass(frozen=True)
class NoOptions:
    pass


class Metric(ABC):
    """Stateful metric.  Subclasses define ``Options``, ``contributions``, ``reset``, ``fold``, ``merge``, ``compute``."""

    Options: ClassVar[type] = NoOptions
    higher_is_better: ClassVar[bool | dict[str, bool]] = True
    #: fields of :class:`MetricInput` that must be present
    needs: ClassVar[tuple[str, ...]] = ("output",)
    #: whether ``stderr`` may be estimated by resampling contributions (off for FVD/FID: one sqrtm each)
    bootstrap: ClassVar[bool] = True

    def __init__(self, **options: Any):
        self.options = make_options(self.Options, options, owner=getattr(self, "registry_name", type(self).__name__))
        self.reset()

    # -- the two halves of update -------------------------------------------------------------
    @abstractmethod
    def contributions(self, inputs: list[MetricInput]) -> list[dict[str, Any]]:
        """Per-item partial state (the expensive part).  Must not touch ``self``'s running state."""

    @abstractmethod
    def fold(self, contribution: dict[str, Any]) -> None:
        """Add one item's contribution to the running state."""

    @abstractmethod
    def reset(self) -> None:
        """Empty the running state."""

    @abstractmethod
    def merge(self, other: "Metric") -> None:
        """Add another instance's state (e.g. from another process) into this one."""

    @abstractmethod
    def compute(self) -> dict[str, float]:
        """Final values, ``{name: value}``."""

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


def make_options(cls: type, values: dict[str, Any], owner: str):
    """Build an options dataclass, turning unknown keys into a :class:`ConfigError` naming them."""
    allowed = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise ConfigError(f"metric {owner}: unknown option(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed)) or '(none)'}")
    return cls(**values)


class MeanMetric(Metric):
    """A metric whose value is the mean of per-item scores (one or several named scores per item).

    Subclasses implement ``score(inputs) -> list[dict[str, float]]``; non-float entries (e.g. a parsed
    answer or a failure reason) are kept in the contribution for the sample record but not averaged.
    A NaN score is an error naming the item, never silently averaged.
    """

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

    def reset(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def fold(self, contribution: dict[str, Any]) -> None:
        for key, value in contribution.items():
            if isinstance(value, (bool, int, float, np.floating, np.integer)) and not isinstance(value, str):
                self.sums[key] = self.sums.get(key, 0.0) + float(value)
                self.counts[key] = self.counts.get(key, 0) + 1

    def merge(self, other: "MeanMetric") -> None:
        for key, value in other.sums.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
            self.counts[key] = self.counts.get(key, 0) + other.counts[key]

    def compute(self) -> dict[str, float]:
        return {key: self.sums[key] / self.counts[key] for key in self.sums if self.counts[key]}
