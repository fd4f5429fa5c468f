"""TempCompass's LLM judge: the reference (lmms-eval 0.7.3 ``tasks/tempcompass``) sends a multiple-choice response its
rules cannot read to a chat model and takes "Correct" / "Incorrect" as the verdict.

The request is the reference's: system "You are an AI assistant for question answering.", the user message below
(the question as the dataset gives it, the ground-truth option line, the prediction), ``model gpt-3.5-turbo-1106,
temperature 1.0, top_p 1, presence_penalty 1, max_tokens 128`` (each overridable through the metric's ``judge``
option, e.g. ``{base_url: http://127.0.0.1:8000/v1, model: ..., api_key_env: ""}`` for a local server).  The verdict
follows the reference: a reply starting with "Correct" is right, starting with "Incorrect" wrong, else containing
"Correct" but not "Incorrect" right, containing "Incorrect" wrong; a reply with neither (or a failed call) is a
failure, which lmms-eval scores 0 after its retries.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omnieval.judge import JudgeClient, JudgeSettings

#: the reference's judge settings (JudgeSettings defaults are ActivityNet-QA's)
TEMPCOMPASS_DEFAULTS = {"model": "gpt-3.5-turbo-1106", "temperature": 1.0, "max_tokens": 128}
TEMPCOMPASS_SYSTEM = "You are an AI assistant for question answering."
# lmms-eval builds this from an indented triple-quoted string with backslash line continuations: the leading newline,
# the 8-space indents and the joined lines are part of the text the judge sees
_INDENT = " " * 8
TEMPCOMPASS_BASE_PROMPT = (
    f"\n{_INDENT}You will receive a multi-choice question, the ground-truth answer and the prediction from a question "
    f"answering (QA) model. {_INDENT}Your task is to determine whether QA model prediction is correct, based on the "
    f"question and ground-truth answer. {_INDENT}If the prediction is correct, respond \"Correct\". If the prediction "
    f"is incorrect, respond \"Incorrect\".\n{_INDENT}"
)


class _TempCompassClient(JudgeClient):
    """The reference's request adds ``top_p`` and ``presence_penalty`` to the usual payload."""

    def payload(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        return {**super().payload(messages), "top_p": 1, "presence_penalty": 1}


def tempcompass_client(options: dict[str, Any]) -> JudgeClient:
    return _TempCompassClient(JudgeSettings(**{**TEMPCOMPASS_DEFAULTS, **options}))


def tempcompass_messages(question: str, answer: str, prediction: str) -> list[dict[str, str]]:
    user = f"{TEMPCOMPASS_BASE_PROMPT}\nMulti-Choice Question:\n{question}\nGround-Truth Answer: {answer}\nModel Prediction: {prediction}"
    return [{"role": "system", "content": TEMPCOMPASS_SYSTEM}, {"role": "user", "content": user}]


@dataclass(frozen=True)
class Verdict:
    correct: bool | None
    output: str | None
    error: str = ""


def rating(output: str) -> bool | None:
    """The reference's reading of a judge reply (``None``: neither word, a failure)."""
    if "Correct" not in output and "Incorrect" not in output:
        return None
    if output.startswith("Correct"):
        return True
    if output.startswith("Incorrect"):
        return False
    return "Incorrect" not in output


def tempcompass_verdict(client: JudgeClient, *, question: str, answer: str, prediction: str) -> Verdict:
    reply = client.chat(tempcompass_messages(question, answer, prediction))
    if reply.failed:
        return Verdict(None, None, reply.error)
    correct = rating(reply.content)
    return Verdict(correct, reply.content, "" if correct is not None else "reply has neither Correct nor Incorrect")
