"""Reading a judge's reply: the Python-dict answers of the Video-ChatGPT family of judge prompts.

Two ways of finding the dict, as the references do:

* ``brace`` (lmms-eval ``tasks/activitynetqa`` ``parse_score``): the text between the first ``{`` and the next
  ``}`` (a second ``{`` ends it too), so text around the dict is ignored;
* ``whole`` (lmms-eval ``tasks/videochatgpt`` ``parse_score``; VILA / Video-ChatGPT ``eval_video_qa.py`` and
  ``eval_benchmark_*.py``): the whole (stripped) reply must be the dict.

Both read it with :func:`ast.literal_eval`.  The score is ``int(value)`` as in the references (4.8 -> 4, "3" -> 3).
``pred`` (yes/no protocols) becomes "yes" if it contains "yes", else "no" if it contains "no", else it is kept as
given ("partially"), as lmms-eval does; such an item has a score but is in neither count of the yes-rate.

Stricter than the references (omnieval's convention; each case raises :class:`InvalidReply`, so the item is a
failure that is asked again next run, never a score):

* a score outside the protocol's range (e.g. 99 or -7 on 0-5; checked on the value before truncation, so 5.5 is
  out of range) -- the references average it;
* a missing ``score`` key -- lmms-eval Video-ChatGPT scores it 0, VILA ``eval_benchmark_2`` scores it 3 and VILA
  ``eval_video_qa`` counts it with 0;
* a reply that is not a dict, or a non-string ``pred`` -- lmms-eval ActivityNet-QA **crashes** on such replies
  (``parse_score`` returns ``None`` and ``activitynetqa_process_results`` indexes it outside its ``try``:
  ``TypeError``), lmms-eval Video-ChatGPT scores 0, VILA drops the item.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass

from omnieval.judge.client import InvalidReply

__all__ = ["EXTRACTORS", "Review", "extract_dict", "normalise_pred", "parse_review"]


@dataclass(frozen=True)
class Review:
    """A parsed reply: the integer score and, for yes/no protocols, the normalised ``pred``."""

    score: int
    pred: str | None = None


def _brace(reply: str) -> str:
    if "{" not in reply:
        raise InvalidReply("no '{' in the reply")
    return "{" + reply.split("{")[1].split("}")[0] + "}"


def _whole(reply: str) -> str:
    return reply.strip()


#: how the dict is cut out of the reply
EXTRACTORS = {"brace": _brace, "whole": _whole}


def extract_dict(reply: str, extract: str) -> dict:
    try:
        cut = EXTRACTORS[extract]
    except KeyError:
        raise ValueError(f"unknown extractor {extract!r}; known: {', '.join(EXTRACTORS)}") from None
    try:
        value = ast.literal_eval(cut(reply))
    except InvalidReply:
        raise
    except Exception as exc:  # noqa: BLE001 - literal_eval raises SyntaxError, ValueError, MemoryError, RecursionError...
        raise InvalidReply(f"not a Python literal ({type(exc).__name__})") from None
    if not isinstance(value, dict):
        raise InvalidReply(f"not a dict but a {type(value).__name__}")
    return value


def normalise_pred(pred: object) -> str:
    if not isinstance(pred, str):
        raise InvalidReply(f"'pred' is not a string: {pred!r}"[:120])
    lowered = pred.lower()
    return "yes" if "yes" in lowered else "no" if "no" in lowered else pred


def _score(value: object, score_range: tuple[float, float]) -> int:
    lo, hi = score_range
    try:
        numeric = value if isinstance(value, (int, float)) else int(value)  # type: ignore[arg-type]
        score = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        raise InvalidReply(f"score {value!r} is not a number"[:120]) from None
    if not lo <= numeric <= hi:
        raise InvalidReply(f"score {value!r} outside the protocol's range [{lo:g}, {hi:g}]"[:120])
    return score


def parse_review(reply: str, *, extract: str = "brace", with_pred: bool = True,
                 score_range: tuple[float, float] = (0, 5)) -> Review:
    """The :class:`Review` in ``reply``, or :class:`InvalidReply` saying why there is none."""
    d = extract_dict(reply, extract)
    if "score" not in d:
        raise InvalidReply("no 'score' key")
    score = _score(d["score"], score_range)
    if not with_pred:
        return Review(score)
    if "pred" not in d:
        raise InvalidReply("no 'pred' key")
    return Review(score, normalise_pred(d["pred"]))
