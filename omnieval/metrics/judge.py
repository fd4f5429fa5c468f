"""LLM-as-judge scoring through an OpenAI-compatible chat endpoint (standard library only).

:class:`JudgeClient` POSTs ``{"model", "messages", "temperature", "max_tokens"}`` to
``<base_url>/chat/completions`` with ``urllib``; the API key is read from the environment variable the
settings name (never stored in options or results).  A failed call (connection error, timeout, HTTP 408/
409/425/429/5xx, malformed JSON, empty content) is retried up to ``max_attempts`` times in total with
exponential backoff (``backoff_s * backoff_factor**k``, capped at ``max_backoff_s``; a numeric
``Retry-After`` is honoured up to the cap); other HTTP errors (400, 401, 403, 404, ...) are not retried.
A call that still fails is returned as a failed :class:`JudgeReply` -- never as a score.

``judge_score`` (registered) is the ActivityNet-QA protocol of lmms-eval: the judge sees the question,
the correct answer and the predicted answer and returns a Python-dict string ``{'pred': 'yes'|'no',
'score': 0-5}``.  Parsing follows lmms-eval: the text between the first ``{`` and the next ``}`` is read
with :func:`ast.literal_eval`; ``score`` is ``int(...)`` (4.8 -> 4); ``pred`` is "yes" if it contains
"yes", else "no" if it contains "no", else kept as is (then it is in neither count of the yes-rate).
Reported values:

* ``judge_yes_rate``: yes / (yes + no) over judged items, in percent when ``percent``;
* ``judge_score``: mean score over judged items (0-5);
* ``judge_failed``: the number of items the judge failed on (transport failure or unparseable reply).
  Unlike lmms-eval, which scores a failure as ("no", 0), failures are left out of both means.

Each contribution keeps the raw judge output, the answering model, the attempt count, the error (if any)
and the sha256 of the prompt template, which is also part of :meth:`JudgeScore.options_dict`.
"""
from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

from omnieval.errors import ConfigError
from omnieval.metrics.base import MeanMetric, MetricInput
from omnieval.metrics.qa import response_text
from omnieval.registry import register_metric

__all__ = ["JudgeSettings", "JudgeReply", "JudgeClient", "PromptTemplate", "TEMPLATES", "parse_activitynet_review", "JudgeScore"]

_RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class JudgeSettings:
    """Where and how to call the judge.  ``api_key_env=""`` sends no Authorization header (local servers)."""

    base_url: str = "https://api.openai.com/v1"
    model: str = "gpt-4o-2024-11-20"
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = 0.0
    max_tokens: int = 64
    timeout_s: float = 60.0
    max_attempts: int = 5
    backoff_s: float = 5.0
    backoff_factor: float = 2.0
    max_backoff_s: float = 60.0

    @property
    def url(self) -> str:
        base = self.base_url.rstrip("/")
        return base if base.endswith("/chat/completions") else base + "/chat/completions"


@dataclass(frozen=True)
class JudgeReply:
    """One judge call: its text (``None`` when it failed), the model that answered, attempts made, error."""

    content: str | None
    model: str = ""
    attempts: int = 0
    error: str = ""

    @property
    def failed(self) -> bool:
        return self.content is None


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class _Permanent(Exception):
    """A failure that retrying will not fix (HTTP 4xx other than 408/409/425/429)."""


class JudgeClient:
    """Minimal OpenAI-compatible chat client with bounded retries (``sleep`` is injectable for tests)."""

    def __init__(self, settings: JudgeSettings, *, sleep: Callable[[float], None] = time.sleep):
        if settings.max_attempts < 1:
            raise ConfigError(f"judge: max_attempts must be >= 1, got {settings.max_attempts}")
        if settings.api_key_env and not os.environ.get(settings.api_key_env):
            raise ConfigError(
                f"judge: environment variable {settings.api_key_env} (the API key) is not set; "
                "set it, or pass api_key_env='' for a server without authentication"
            )
        self.settings = settings
        self._sleep = sleep

    def payload(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        s = self.settings
        return {"model": s.model, "messages": messages, "temperature": s.temperature, "max_tokens": s.max_tokens}

    def chat(self, messages: list[dict[str, str]]) -> JudgeReply:
        """Send one chat request; retry transient failures; never raise for a failed call."""
        s = self.settings
        error = ""
        for attempt in range(1, s.max_attempts + 1):
            try:
                content, model = self._post(self.payload(messages))
                return JudgeReply(content, model, attempt)
            except _Retryable as exc:
                error = str(exc)
                if attempt < s.max_attempts:
                    delay = min(s.max_backoff_s, s.backoff_s * s.backoff_factor ** (attempt - 1))
                    if exc.retry_after is not None:
                        delay = min(s.max_backoff_s, max(delay, exc.retry_after))
                    self._sleep(delay)
            except _Permanent as exc:
                return JudgeReply(None, "", attempt, str(exc))
        return JudgeReply(None, "", s.max_attempts, error)

    def _post(self, payload: dict[str, Any]) -> tuple[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.settings.api_key_env:
            headers["Authorization"] = f"Bearer {os.environ.get(self.settings.api_key_env, '')}"
        request = urllib.request.Request(self.settings.url, data=json.dumps(payload).encode(), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.settings.timeout_s) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            message = f"HTTP {exc.code} {exc.reason}"
            if exc.code in _RETRY_STATUS:
                raise _Retryable(message, _retry_after(exc.headers.get("Retry-After") if exc.headers else None)) from None
            raise _Permanent(message) from None
        except (urllib.error.URLError, OSError) as exc:  # refused, DNS, timeout (socket.timeout is an OSError)
            raise _Retryable(f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}") from None
        try:
            data = json.loads(body)
            content = data["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise _Retryable(f"malformed response: {body[:200]!r}") from None
        if not isinstance(content, str) or not content.strip():
            raise _Retryable("empty content")
        return content.strip(), str(data.get("model", ""))


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


# -- prompts ------------------------------------------------------------------------------------
_FIELD = re.compile(r"\{(question|answer|pred)\}")


@dataclass(frozen=True)
class PromptTemplate:
    """A system message and a user message with ``{question}``, ``{answer}``, ``{pred}`` fields."""

    name: str
    system: str
    user: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(json.dumps({"system": self.system, "user": self.user}, sort_keys=True).encode()).hexdigest()

    def messages(self, **fields: str) -> list[dict[str, str]]:
        """Fill the fields in one pass (a value containing ``{pred}`` is not substituted again)."""
        user = _FIELD.sub(lambda m: str(fields[m.group(1)]), self.user)
        return [{"role": "system", "content": self.system}, {"role": "user", "content": user}]


# The ActivityNet-QA judge prompt used by lmms-eval (tasks/activitynetqa/utils.py), verbatim: the judge's
# scores depend on every character of it, so it is data that must match, not code.
ACTIVITYNET_QA = PromptTemplate(
    name="activitynet_qa",
    system=(
        "You are an intelligent chatbot designed for evaluating the correctness of generative outputs for question-answer pairs. "
        "Your task is to compare the predicted answer with the correct answer and determine if they match meaningfully. Here's how you can accomplish the task:"
        "------"
        "##INSTRUCTIONS: "
        "- Focus on the meaningful match between the predicted answer and the correct answer.\n"
        "- Consider synonyms or paraphrases as valid matches.\n"
        "- Evaluate the correctness of the prediction compared to the answer."
    ),
    user=(
        "Please evaluate the following video-based question-answer pair:\n\n"
        "Question: {question}\n"
        "Correct Answer: {answer}\n"
        "Predicted Answer: {pred}\n\n"
        "Provide your evaluation only as a yes/no and score where the score is an integer value between 0 and 5, with 5 indicating the highest meaningful match. "
        "Please generate the response in the form of a Python dictionary string with keys 'pred' and 'score', where value of 'pred' is  a string of 'yes' or 'no' and value of 'score' is in INTEGER, not STRING."
        "DO NOT PROVIDE ANY OTHER OUTPUT TEXT OR EXPLANATION. Only provide the Python dictionary string. "
        "For example, your response should look like this: {'pred': 'yes', 'score': 4.8}."
    ),
)
TEMPLATES: dict[str, PromptTemplate] = {ACTIVITYNET_QA.name: ACTIVITYNET_QA}


def parse_activitynet_review(review: str) -> tuple[str, int] | None:
    """``(pred, score)`` from a judge reply such as ``"{'pred': 'yes', 'score': 4}"``; ``None`` if unparseable.

    Reads the text between the first ``{`` and the following ``}`` (stopping at a second ``{``), as lmms-eval.
    """
    if "{" not in review:
        return None
    literal = "{" + review.split("{")[1].split("}")[0] + "}"
    try:
        parsed = ast.literal_eval(literal)
        score = int(parsed["score"])
        pred = parsed["pred"]
        lowered = pred.lower()
    except Exception:  # noqa: BLE001 - any malformed reply (syntax, types, overflow, missing keys) is unparseable
        return None
    return ("yes" if "yes" in lowered else "no" if "no" in lowered else pred), score


# -- metric -------------------------------------------------------------------------------------
@register_metric(
    "judge_score",
    description="ActivityNet-QA LLM judge via an OpenAI-compatible endpoint: yes-rate (percent) and mean 0-5 score; failures counted apart",
    capability="understand",
)
class JudgeScore(MeanMetric):
    """Open-ended QA judged by an LLM (lmms-eval ActivityNet-QA protocol; see the module docstring).

    Input: ``output`` = response text, ``reference`` = correct answer, question = ``doc[question_key]``
    (else ``prompt``).  ``workers`` judge calls run concurrently (threads); results do not depend on it.
    """

    @dataclass(frozen=True)
    class Options(JudgeSettings):
        template: str = "activitynet_qa"
        question_key: str = "question"
        workers: int = 1
        percent: bool = True

    needs: ClassVar[tuple[str, ...]] = ("output", "reference")
    higher_is_better: ClassVar[dict[str, bool]] = {"judge_yes_rate": True, "judge_score": True, "judge_failed": False}
    weights: ClassVar[tuple[str, ...]] = ()
    bootstrap: ClassVar[bool] = True

    def __init__(self, *, sleep: Callable[[float], None] = time.sleep, **options: Any):
        super().__init__(**options)
        o = self.options
        if o.template not in TEMPLATES:
            raise ConfigError(f"judge_score: unknown template {o.template!r}; known: {', '.join(TEMPLATES)}")
        if o.workers < 1:
            raise ConfigError(f"judge_score: workers must be >= 1, got {o.workers}")
        self.template = TEMPLATES[o.template]
        self.client = JudgeClient(o, sleep=sleep)

    def options_dict(self) -> dict[str, Any]:
        return {**super().options_dict(), "prompt_sha256": self.template.sha256}

    def _question(self, item: MetricInput) -> str:
        question = item.doc.get(self.options.question_key, item.prompt)
        if not isinstance(question, str):
            raise ConfigError(f"item {item.item_id}: no question (doc[{self.options.question_key!r}] or prompt)")
        return question

    def _judge(self, item: MetricInput) -> dict[str, Any]:
        messages = self.template.messages(
            question=self._question(item), answer=str(item.reference), pred=response_text(item)
        )
        reply = self.client.chat(messages)
        out: dict[str, Any] = {
            "judge_raw": reply.content or "",
            "judge_model": reply.model,
            "judge_error": reply.error,
            "judge_attempts": reply.attempts,
            "judge_prompt_sha256": self.template.sha256,
        }
        parsed = None if reply.failed else parse_activitynet_review(reply.content or "")
        if parsed is None:
            out["judge_error"] = reply.error or "unparseable judge output"
            out["judge_failed"] = 1.0
            return out
        pred, score = parsed
        out.update(judge_failed=0.0, judge_pred=pred, judge_score=float(score))
        if pred in ("yes", "no"):
            out["judge_yes_rate"] = float(pred == "yes")
        return out

    def score(self, inputs: list[MetricInput]) -> list[dict[str, Any]]:
        for item in inputs:  # validate every item before spending judge calls
            self._question(item)
            response_text(item)
            if item.reference is None:
                raise ConfigError(f"item {item.item_id}: no reference answer for the judge")
        if self.options.workers == 1 or len(inputs) < 2:
            return [self._judge(item) for item in inputs]
        with ThreadPoolExecutor(max_workers=min(self.options.workers, len(inputs))) as pool:
            return list(pool.map(self._judge, inputs))

    def compute(self) -> dict[str, float]:
        values = super().compute()
        out = {key: values[key] for key in ("judge_yes_rate", "judge_score") if key in values}
        if self.options.percent and "judge_yes_rate" in out:
            out["judge_yes_rate"] *= 100.0
        out["judge_failed"] = self.sums.get("judge_failed", 0.0)
        return out
