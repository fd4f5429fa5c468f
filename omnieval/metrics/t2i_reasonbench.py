"""T2I-ReasonBench scoring as its released ``evaluation/Qwen2.5-VL/eval_<dimension>.py`` computes it.

Per image (the doc's question/criterion dicts come from the release, :mod:`omnieval.loaders.t2i_reasonbench`):

1. the judge describes the image: one user message ``[image, "Describe this image."]``;
2. for each criteria group of the dimension (idiom, textual_image: ``reason_evaluation`` then
   ``quality_evaluation``; entity: ``entity_evaluation``, ``other_details_evaluation``, ``quality_evaluation``;
   scientific: ``scientific_evaluation``, ``other_details_evaluation``, ``quality_evaluation``) a fresh
   three-message conversation: the first message, the description as the assistant's turn, and the user question
   :func:`group_question` (the release's text, the criteria dict inserted as Python's ``str(dict)``);
3. each group reply is parsed as the release does: the first ``{`` to the first ``}`` (non-greedy, across lines),
   ``json.loads``, its ``score`` list, every entry ``float``-ed; the group score is the list's mean;
4. ``accuracy = mean(reason)`` (idiom, textual_image) or ``0.7 mean(entity|scientific) + 0.3 mean(other_details)``;
   ``quality = mean(quality)``.

Per dimension the release reports ``round(mean * 100, 2)`` over images; here the unrounded mean x 100 is reported
as ``accuracy_<dimension>`` / ``quality_<dimension>``, and ``accuracy`` / ``quality`` are the unweighted means of
the dimensions present (the paper's Overall; no released script computes it).  ``failed`` counts images whose
reply had no JSON, invalid JSON, no ``score`` list, an empty list or a non-numeric score: the release crashes on
those; here they are left out of every mean and counted.  A judge transport failure is marked for retry
(:data:`~omnieval.metrics.base.RETRY`).

The release runs Qwen2.5-VL-72B-Instruct through transformers (``max_new_tokens=1000``, the checkpoint's generation
config); here the judge is any OpenAI-compatible endpoint (e.g. vLLM serving that model), images sent as PNG data
URLs, so sampling and image resizing are the server's.  Known release bug: ``eval_entity.py`` stores the entity
scores in ``score_scientific`` and then reads ``score_entity`` (UnboundLocalError on the first image); the formula
above is the one its summary applies (``0.7 entity + 0.3 detail``).
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from omnieval.errors import ConfigError
from omnieval.judge import (
    InvalidReply,
    image_part,
    text_part,
)
from omnieval.metrics.base import RETRY, MetricInput
from omnieval.metrics.visual_judge import ImageJudgeMetric, png_bytes, sha256_text
from omnieval.registry import register_metric

DESCRIBE = "Describe this image."
# the release's question (eval_<dimension>.py, the q2/q3/q4 f-strings), verbatim: the judge's scores depend on it
QUESTION = (
    "Based on the image and your previous description, answer the following questions: q1, q2, ...\n"
    "For each question, assign a score of 1, 0.5 or 0 according to the corresponding scoring criteria: c1, c2, ...\n"
    "Here are the questions and criteria: {criteria}\n"
    "Carefully consider the image and each question before responding, then provide your answer in json format:\n"
    '{{"reason": [your detailed reasoning], "score": [s1,s2, ...]"}}'
)
#: dimension -> accuracy groups (criteria key, weight), then the quality group
GROUPS: dict[str, tuple[tuple[tuple[str, float], ...], str]] = {
    "idiom": ((("reason_evaluation", 1.0),), "quality_evaluation"),
    "textual_image": ((("reason_evaluation", 1.0),), "quality_evaluation"),
    "entity": ((("entity_evaluation", 0.7), ("other_details_evaluation", 0.3)), "quality_evaluation"),
    "scientific": ((("scientific_evaluation", 0.7), ("other_details_evaluation", 0.3)), "quality_evaluation"),
}
_FIRST_OBJECT = re.compile(r"\{.*?\}", re.DOTALL)


def group_question(criteria: dict) -> str:
    """The question for one criteria group: the release's text with ``str(criteria)`` (Python repr, file order)."""
    return QUESTION.format(criteria=str(criteria))


def describe_messages(png: bytes) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [image_part(png), text_part(DESCRIBE)]}]


def group_messages(png: bytes, description: str, criteria: dict) -> list[dict[str, Any]]:
    return describe_messages(png) + [{"role": "assistant", "content": description},
                                     {"role": "user", "content": [text_part(group_question(criteria))]}]


def parse_group(reply: str) -> float | None:
    """Mean of the ``score`` list of the reply's first ``{...}`` (the release's ``extract_json``); None if unusable."""
    match = _FIRST_OBJECT.search(reply)
    if match is None:
        return None
    try:
        scores = [float(x) for x in json.loads(match.group(0))["score"]]
    except (ValueError, KeyError, TypeError):
        return None
    if not scores or not all(math.isfinite(x) for x in scores):
        return None
    return sum(scores) / len(scores)


def _group_mean(reply: str) -> float:
    mean = parse_group(reply)
    if mean is None:
        raise InvalidReply("no JSON object with a non-empty numeric score list")
    return mean


def image_scores(dimension: str, group_means: dict[str, float]) -> tuple[float, float]:
    """``(accuracy, quality)`` of one image from its group means, per the dimension's rule."""
    accuracy_groups, quality_group = GROUPS[dimension]  # 0 + 1.0 * x == x and 0 + 0.7 e + 0.3 d: the release's floats
    return sum(w * group_means[key] for key, w in accuracy_groups), group_means[quality_group]


@register_metric("t2i_reasonbench", description="T2I-ReasonBench: VLM judge on question-criterion pairs; accuracy and quality per dimension (x100)",
                 capability="t2i")
class T2IReasonBench(ImageJudgeMetric):
    """See the module docstring.  Options: the judge (:class:`JudgeSettings`; default a local OpenAI-compatible
    server with the release's judge model and ``max_tokens`` 1000; ``workers``: concurrent images), ``cache``: keep
    accepted replies under the run folder."""

    @dataclass(frozen=True)
    class Options(ImageJudgeMetric.Options):
        base_url: str = "http://127.0.0.1:8000/v1"
        model: str = "Qwen/Qwen2.5-VL-72B-Instruct"
        api_key_env: str = ""
        max_tokens: int = 1000

    def options_dict(self) -> dict[str, Any]:
        return {**super().options_dict(), "prompt_sha256": sha256_text({"describe": DESCRIBE, "question": QUESTION})}

    @staticmethod
    def _dimension(item: MetricInput) -> str:
        dim = item.doc.get("dimension")
        if dim not in GROUPS:
            raise ConfigError(f"item {item.item_id}: doc field 'dimension' is {dim!r}, not one of {', '.join(GROUPS)}")
        accuracy_groups, quality_group = GROUPS[dim]
        missing = [k for k, _ in accuracy_groups if k not in item.doc] + ([quality_group] if quality_group not in item.doc else [])
        if missing:
            raise ConfigError(f"item {item.item_id}: the doc lacks the criteria {', '.join(missing)}")
        return dim

    def judge(self, item: MetricInput) -> dict[str, Any]:
        dim = self._dimension(item)
        png = png_bytes(item.output, what=f"item {item.item_id} output")
        out: dict[str, Any] = {"dimension": dim, "judge_model": "", "judge_attempts": 0, "replies": []}

        def ask(messages, accept=None):
            reply = self.client.chat(messages, accept=accept)
            out["judge_attempts"] += reply.attempts
            if reply.content is None:  # no reply at all: transient, judged again by the next run
                out.update({RETRY: reply.error or "judge call failed", "judge_error": reply.error, "failed": 1.0})
                return None
            out["judge_model"] = reply.model
            out["replies"].append(reply.content)
            return reply

        described = ask(describe_messages(png))
        if described is None:
            return out
        accuracy_groups, quality_group = GROUPS[dim]
        means: dict[str, float] = {}
        for key in [k for k, _ in accuracy_groups] + [quality_group]:
            reply = ask(group_messages(png, described.content, item.doc[key]), accept=_group_mean)
            if reply is None:
                return out
            if reply.failed:  # the release crashes here; recorded as a failure, left out of the means
                out.update(status=f"unparseable reply to {key}", failed=1.0)
                return out
            means[key] = reply.parsed
        accuracy, quality = image_scores(dim, means)
        out.update({f"group_{k}": v for k, v in means.items()})
        out.update({"status": "ok", "failed": 0.0, "image_accuracy": accuracy, "image_quality": quality,
                    f"accuracy_{dim}": accuracy, f"quality_{dim}": quality})
        return out

    def check_item(self, item: MetricInput) -> None:
        self._dimension(item)
        super().check_item(item)

    def fold(self, contribution: dict[str, Any]) -> None:
        super().fold({k: v for k, v in contribution.items() if not k.startswith(("group_", "image_"))})

    def compute(self) -> dict[str, float]:
        means = super().compute()
        out: dict[str, float] = {}
        for what in ("accuracy", "quality"):
            per_dim = {d: 100.0 * means[f"{what}_{d}"] for d in GROUPS if f"{what}_{d}" in means}
            if per_dim:
                out[what] = sum(per_dim.values()) / len(per_dim)
            out.update({f"{what}_{d}": v for d, v in per_dim.items()})
        out["failed"] = self.sums.get("failed", 0.0)
        return out
