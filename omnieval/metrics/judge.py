"""LLM-as-judge metrics for open-ended answers (the Video-ChatGPT family of judge prompts).

The judge is any OpenAI-compatible chat endpoint (:mod:`omnieval.judge`); its settings are the metric's options
(``base_url``, ``model``, ``api_key_env``, ``temperature``, ``max_tokens``, ``timeout_s``, retries, ``workers``),
together with the prompt ``template`` (its sha256 is recorded in the options and in every contribution), how the
reply is read (``extract``: ``brace`` | ``whole``, see :mod:`omnieval.judge.reviews`) and ``score_range``.
Option strings may use ``${VAR}`` / ``${VAR:-default}`` (expanded when the task file is read, so the hash and the
results hold the judge actually used).  Judge replies are cached under the run's output folder
(``judge_cache/``): re-scoring with changed options, or after a crash, never pays for a reply twice.

Registered metrics:

``judge_score`` -- yes/no + 0-5 score per item (ActivityNet-QA / MSVD-QA / MSRVTT-QA / TGIF-QA, template
    ``activitynet_qa``).  Values: ``judge_yes_rate`` = yes / (yes + no) over judged items (percent when
    ``percent``), ``judge_score`` = mean score over judged items, ``judge_failed`` = items without a valid reply.
``judge_rating`` -- one 0-5 score per item (Video-ChatGPT correctness / detail / context / temporal, templates
    ``vcg_*``).  Values: ``judge_score``, ``judge_failed``.
``judge_consistency`` -- one 0-5 score per *pair* of answers to two phrasings of a question (Video-ChatGPT
    consistency, template ``vcg_consistency``): scored on sample 0 of a doc whose ``fields.prompts`` lists the two
    question fields; sample 1's answer comes in as a sibling output.

Inputs: the question is ``doc[question_key]`` (the raw dataset question, as both references send it, not the
rendered prompt), the correct answer is the item's ``reference`` (``str()``-ed) and the prediction is the model's
response **stripped** of surrounding whitespace (lmms-eval strips every response before scoring).

Failures (no reply after the retries, an unparseable reply, a score out of range, a missing key) are never scores:
the contribution has ``judge_failed = 1``, the reason and the raw reply, and is marked
:data:`~omnieval.metrics.base.RETRY`, so the next run asks the judge again.  The means are over judged items only.
The references differ here: lmms-eval's ActivityNet-QA **crashes** on an unparseable reply (``parse_score``
returns ``None``, which ``activitynetqa_process_results`` then indexes outside its ``try``: ``TypeError``; its
``("no", 0)`` fallback runs only if ``get_eval`` raises, which it never does), lmms-eval's Video-ChatGPT scores it
0 (counted in the mean), and the VILA scripts drop the item (``eval_video_qa.py``) or ask forever
(``eval_benchmark_*.py``).  See :mod:`omnieval.judge.reviews` for the per-key differences.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from omnieval.errors import ConfigError, MediaError
from omnieval.judge import (
    JudgeCache,
    JudgeClient,
    JudgeReply,
    JudgeSettings,
    PromptTemplate,
    get_template,
)

# kept for code that imported these from here before omnieval.judge existed
from omnieval.judge.client import InvalidReply
from omnieval.judge.reviews import EXTRACTORS, Review, parse_review
from omnieval.judge.templates import templates as _templates
from omnieval.metrics.base import RETRY, MeanMetric, MetricInput
from omnieval.metrics.qa import response_text
from omnieval.registry import register_metric

__all__ = [
    "ACTIVITYNET_QA",
    "TEMPLATES",
    "JudgeClient",
    "JudgeConsistency",
    "JudgeRating",
    "JudgeReply",
    "JudgeScore",
    "JudgeSettings",
    "PromptTemplate",
    "parse_activitynet_review",
]

TEMPLATES: dict[str, PromptTemplate] = _templates()
ACTIVITYNET_QA = TEMPLATES["activitynet_qa"]


def parse_activitynet_review(review: str) -> tuple[str, int] | None:
    """lmms-eval ActivityNet-QA's reading of a reply as ``(pred, score)``; ``None`` where lmms-eval's ``parse_score``
    returns ``None`` (no range check: this is the reference reading, used by the parity tests)."""
    try:
        r = parse_review(review, extract="brace", score_range=(-float("inf"), float("inf")))
    except InvalidReply:
        return None
    return r.pred or "", r.score


class _Judged(MeanMetric):
    """Shared machinery: build each item's conversation, call the judge for a batch, read the replies."""

    @dataclass(frozen=True)
    class Options(JudgeSettings):
        template: str = "activitynet_qa"
        extract: str = "brace"
        score_range: tuple[float, ...] = (0.0, 5.0)
        question_key: str = "question"
        cache: bool = True

    needs: ClassVar[tuple[str, ...]] = ("output", "reference")
    weights: ClassVar[tuple[str, ...]] = ()
    bootstrap: ClassVar[bool] = True
    #: whether the reply carries a yes/no ``pred``
    with_pred: ClassVar[bool] = False
    #: values reported by ``compute`` (besides ``judge_failed``)
    reported: ClassVar[tuple[str, ...]] = ("judge_score",)

    def __init__(self, *, sleep: Callable[[float], None] = time.sleep, **options: Any):
        super().__init__(**options)
        o = self.options
        name = getattr(type(self), "registry_name", type(self).__name__)
        if o.extract not in EXTRACTORS:
            raise ConfigError(f"{name}: extract must be one of {', '.join(EXTRACTORS)}, got {o.extract!r}")
        if len(o.score_range) != 2 or not o.score_range[0] <= o.score_range[1]:
            raise ConfigError(f"{name}: score_range must be [low, high], got {list(o.score_range)}")
        try:
            self.template = get_template(o.template)
        except KeyError as exc:
            raise ConfigError(f"{name}: {exc}") from None
        o.check(name)
        self.client = JudgeClient(o, sleep=sleep)
        self.batch_size = max(8, 4 * o.workers)  # one batch is judged concurrently

    def attach_run_dir(self, path: Path) -> None:
        if self.options.cache:
            self.client.cache = JudgeCache(Path(path) / "judge_cache")

    def options_dict(self) -> dict[str, Any]:
        return {**super().options_dict(), "prompt_sha256": self.template.sha256}

    # -- what the judge sees -------------------------------------------------------------------
    def _question(self, item: MetricInput, key: str) -> str:
        question = item.doc.get(key)
        if not isinstance(question, str):
            raise ConfigError(f"item {item.item_id}: no question text in doc[{key!r}] for the judge")
        return question

    def _answer(self, item: MetricInput) -> str:
        if item.reference is None:
            raise ConfigError(f"item {item.item_id}: no reference answer for the judge (set fields.reference)")
        return str(item.reference)

    def fields(self, item: MetricInput) -> dict[str, str]:
        """The template's field values for ``item`` (raises a one-line error naming the item)."""
        return {"question": self._question(item, self.options.question_key), "answer": self._answer(item),
                "pred": response_text(item).strip()}

    def _accept(self, content: str) -> Review:
        return parse_review(content, extract=self.options.extract, with_pred=self.with_pred,
                            score_range=tuple(self.options.score_range))

    # -- scoring --------------------------------------------------------------------------------
    def score(self, inputs: list[MetricInput]) -> list[dict[str, Any]]:
        conversations = [self.template.messages(**self.fields(item)) for item in inputs]  # all checked before any call
        replies = self.client.chat_many(conversations, accept=self._accept)
        return [self._contribution(reply) for reply in replies]

    def _contribution(self, reply: JudgeReply) -> dict[str, Any]:
        out: dict[str, Any] = {"judge_raw": reply.content or "", "judge_model": reply.model, "judge_error": reply.error,
                               "judge_attempts": reply.attempts, "judge_cached": reply.cached,
                               "judge_prompt_sha256": self.template.sha256}
        if reply.failed:
            out.update(judge_failed=1.0, **{RETRY: reply.error})
            return out
        review: Review = reply.parsed
        out.update(judge_failed=0.0, judge_score=float(review.score))
        if self.with_pred:
            out["judge_pred"] = review.pred
            if review.pred in ("yes", "no"):
                out["judge_yes_rate"] = float(review.pred == "yes")
        return out

    def compute(self) -> dict[str, float]:
        values = super().compute()
        out = {key: values[key] for key in self.reported if key in values}
        out["judge_failed"] = self.sums.get("judge_failed", 0.0)
        return out


@register_metric(
    "judge_score",
    description="LLM judge, yes/no + 0-5 score (ActivityNet/MSVD/MSRVTT/TGIF-QA): yes-rate (percent) and mean score; failures counted apart and retried",
    capability="understand",
)
class JudgeScore(_Judged):
    """Open-ended QA judged yes/no with a 0-5 score (template ``activitynet_qa``; see the module docstring)."""

    @dataclass(frozen=True)
    class Options(_Judged.Options):
        percent: bool = True

    with_pred: ClassVar[bool] = True
    reported: ClassVar[tuple[str, ...]] = ("judge_yes_rate", "judge_score")
    higher_is_better: ClassVar[dict[str, bool]] = {"judge_yes_rate": True, "judge_score": True, "judge_failed": False}

    def compute(self) -> dict[str, float]:
        out = super().compute()
        if self.options.percent and "judge_yes_rate" in out:
            out["judge_yes_rate"] *= 100.0
        return out


@register_metric(
    "judge_rating",
    description="LLM judge, one 0-5 score per answer (Video-ChatGPT correctness/detail/context/temporal); failures counted apart and retried",
    capability="understand",
)
class JudgeRating(_Judged):
    """A 0-5 rating of one answer (templates ``vcg_correctness``, ``vcg_detail``, ``vcg_context``, ``vcg_temporal``)."""

    @dataclass(frozen=True)
    class Options(_Judged.Options):
        template: str = "vcg_correctness"
        extract: str = "whole"

    higher_is_better: ClassVar[dict[str, bool]] = {"judge_score": True, "judge_failed": False}


@register_metric(
    "judge_consistency",
    description="LLM judge, 0-5 consistency of the answers to two phrasings of one question (Video-ChatGPT); scored on sample 0 of each pair",
    capability="understand",
)
class JudgeConsistency(JudgeRating):
    """Video-ChatGPT consistency: the judge sees both questions (``doc[question_keys[i]]``), the common answer and
    the two predictions (sample 0's response and its sibling sample 1's).  The task asks each question as its own
    sample (``fields.prompts: [Q1, Q2]``) and restricts this metric to sample 0 (``samples: [0]``)."""

    @dataclass(frozen=True)
    class Options(JudgeRating.Options):
        template: str = "vcg_consistency"
        question_keys: tuple[str, ...] = ("Q1", "Q2")

    needs: ClassVar[tuple[str, ...]] = ("output", "reference", "siblings")

    def __init__(self, **options: Any):
        super().__init__(**options)
        if len(self.options.question_keys) != 2:
            raise ConfigError(f"judge_consistency: question_keys must name two doc fields, got {list(self.options.question_keys)}")

    def fields(self, item: MetricInput) -> dict[str, str]:
        if item.sample_index != 0:
            raise ConfigError(f"item {item.item_id}: judge_consistency scores each pair once, on sample 0; restrict it "
                              f"with `samples: [0]` in the task's metric entry")
        siblings = item.siblings or {}
        if 1 not in siblings:
            raise MediaError(f"item {item.item_id}: judge_consistency needs the answer to the second question (sample 1), "
                             f"which is missing; set fields.prompts to the two question fields")
        q1, q2 = (self._question(item, key) for key in self.options.question_keys)
        second = MetricInput(item_id=f"{item.item_id} (sample 1)", output=siblings[1])
        return {"question1": q1, "question2": q2, "answer": self._answer(item),
                "pred1": response_text(item).strip(), "pred2": response_text(second).strip()}
