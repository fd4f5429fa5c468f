"""The reference conventions of video multiple-choice benchmarks: how each one's released scoring code reads an
answer and which questions it counts.

``mcq_accuracy`` (:mod:`omnieval.metrics.qa`) reports the **strict** number (omnieval's :func:`extract_choice`, every
question counts, an unparsed answer is wrong) and, with ``reference: <name>``, the **reference** number computed the
way the benchmark's reference code computes it, side by side, with the count of questions where the two disagree.
These are re-implementations of the reference behaviour (checked against lmms-eval 0.7.3's own task functions in
``tests/test_mcq_parity.py``), quirks included:

====================  =====================================================================================  ==============
name                  answer reading (reference)                                                             denominator
====================  =====================================================================================  ==============
lmms_videomme         lmms-eval ``extract_mcq_answer`` over A-D (any-occurrence fallback: "Dog" -> D)         all
videomme_official     Video-MME / VILA ``extract_characters_regex``: answer prefixes removed, > 10 words     unparsed
                      without A-D -> none, else the first A-D anywhere                                       dropped
lmms_mvbench          lmms-eval ``mcq_acc``: "X. text", else VQA punctuation processing and the first        empty answers
                      ``\\b[A-E]\\b`` ignoring case ("a dog" -> A)                                           dropped
lmms_nextqa           lmms-eval NExT-QA MMMU parser: ``(X)``, else ``X``+space, else ``X.``, else option     all; none ->
                      texts when > 5 words; the **last** candidate; case-sensitive                           random letter
lmms_egoschema        lmms-eval EgoSchema MMMU parser: all ``(X)``/``X``+space/``X.`` forms, the **first**   all; none ->
                      (lowest last-position); option texts when > 5 words                                    random letter
lmms_perceptiontest   lmms-eval PerceptionTest: the first ``\\b[A-D]\\b`` (case-sensitive; "A man" -> A)       all
lmms_tempcompass      lmms-eval TempCompass rules: the option line, ``X``, ``X.``..., ``X)``...; anything     all; judge
                      else goes to an LLM judge (``judge`` option; without one it counts wrong)               failure wrong
lmms_longvideobench   lmms-eval LongVideoBench: answer prefixes removed, > 10 words without A-E -> none,      all; none ->
                      else the first A-E anywhere                                                            random letter
lmms_mlvu             lmms-eval ``extract_mcq_answer`` over A-D (as Video-MME)                               all (macro over
                                                                                                             7 fixed types)
====================  =====================================================================================  ==============

Every reference reads the response after lmms-eval's ``str.strip()`` (its ``Task.process_results``).
**Random fallback** (lmms-eval draws ``random.choice`` from the option letters, unseeded): here the letter is drawn by
``random.Random(<sha256 of convention, doc id, sample index>).choice(letters)``, so the same item always gets the same
letter, on every run and process.  The reference number of such an item is as good as lmms-eval's (a guess); the
strict number counts it wrong, and the item is one of the disagreements.
"""
from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from omnieval.config import stable_hash

__all__ = ["CONVENTIONS", "JUDGE", "Convention", "lmms_mcq_extract", "random_letter"]

#: a parser's answer meaning "the reference asks its LLM judge" (TempCompass)
JUDGE = "__judge__"


@dataclass(frozen=True)
class Context:
    """What a reference parser may look at besides the response."""

    letters: tuple[str, ...]
    """The option letters, in order (``A``, ``B``, ...)."""
    options: dict[str, str]
    """``{letter: option text}`` as the doc gives it."""
    target_text: str = ""
    """The doc's answer as given (TempCompass compares the whole option line)."""


@dataclass(frozen=True)
class Convention:
    """A reference's answer reading and counting.  ``parse(response, ctx)`` gets the stripped response and returns a
    letter, ``None`` (not read) or :data:`JUDGE`; ``unparsed``: what ``None`` means (``wrong``, ``drop`` from the
    denominator, or a ``random`` letter); ``drop_empty``: an empty response is left out of the denominator; ``judged``:
    the parser may send a response to the reference's LLM judge."""

    name: str
    parse: Callable[[str, Context], str | None]
    unparsed: str = "wrong"
    drop_empty: bool = False
    #: whether ``parse`` may answer :data:`JUDGE`
    judged: bool = False
    source: str = ""


def random_letter(convention: str, doc_id: str, sample_index: int, letters) -> str:
    """The deterministic stand-in for the reference's ``random.choice(letters)`` (see the module docstring)."""
    return random.Random(stable_hash([convention, str(doc_id), int(sample_index)], length=64)).choice(list(letters))


# -- lmms-eval's extract_mcq_answer (Video-MME, MLVU) -------------------------------------------------
_PHRASES = (
    "the answer is", "answer is", "the correct answer is", "correct answer is", "the best answer is", "best answer is",
    "the correct option is", "correct option is", "the best option is", "best option is", "the choice is", "choice is",
    "the correct choice is", "correct choice is", "i choose", "i select", "i pick", "my answer is", "my choice is",
    "옵션", "정답은", "답은", "답:", "答案是", "答案为", "选", "答えは",
)
#: delimiter forms in the order lmms-eval collects them, with their priority
_FORMS = (("({})", 6), ("{}.", 5), ("{}:", 4), ("{})", 3), ("{} ", 2))


def lmms_mcq_extract(response: str, letters) -> str | None:
    """lmms-eval 0.7.3 ``extract_mcq_answer``: the letter of the best (priority, then later position) candidate.

    Candidates: ``(X)`` 6, ``X.`` 5, ``X:`` 4, ``X)`` 3, ``X`` + space 2 (each at its last occurrence); X anywhere
    after the first occurrence of an answer phrase 7; the text starting with X not followed by a letter 10, ending
    with X not preceded by one 9; only if none of these, any occurrence of X 0 (its last).  The text is stripped of
    ``,.!?;:'"`` at both ends and padded with spaces first.  Ties keep collection order (a stable sort).
    """
    if not response or not response.strip():
        return None
    text = response.strip()
    for ch in ",.!?;:'\"":
        text = text.strip(ch)
    text = f" {text} "
    found: list[tuple[int, int, str]] = []  # (priority, position, letter) in collection order
    for form, priority in _FORMS:
        found += [(priority, text.rfind(form.format(c)), c) for c in letters if form.format(c) in text]
    lower = text.lower()
    for phrase in _PHRASES:
        at = lower.find(phrase)
        if at >= 0:
            found += [(7, text.find(c, at + len(phrase)), c) for c in letters if text.find(c, at + len(phrase)) >= 0]
    core = text.strip()
    found += [(10, 0, c) for c in letters if core.startswith(c) and (len(core) == 1 or not core[1].isalpha())]
    found += [(9, len(text) - 1, c) for c in letters if core.endswith(c) and (len(core) == 1 or not core[-2].isalpha())]
    if not found:
        found = [(0, text.rfind(c), c) for c in letters if c in text]
    if not found:
        return None
    return max(found, key=lambda f: (f[0], f[1]))[2]  # the first of equals, as lmms-eval's stable sort


def _videomme_lmms(response: str, ctx: Context) -> str | None:
    return lmms_mcq_extract(response, ("A", "B", "C", "D"))


# -- "first letter after the answer prefixes" (official Video-MME / VILA, LongVideoBench) --------------------
#: Video-MME's list: two pairs are fused by missing commas ("The best option isThe correct option is")
_VIDEOMME_PREFIXES = ("The best answer is", "The correct answer is", "The answer is", "The answer",
                      "The best option isThe correct option is", "Best answer:Best option:")
_LVB_PREFIXES = ("The best answer is", "The correct answer is", "The answer is", "The answer", "The best option is",
                 "The correct option is", "Best answer:", "Best option:")


def _first_letter(response: str, prefixes: tuple[str, ...], letters: str) -> str | None:
    """Every prefix removed (all occurrences, in order); more than 10 words and no letter -> None; else the first of
    ``letters`` anywhere (upper case only)."""
    s = response.strip()
    for prefix in prefixes:
        s = s.replace(prefix, "")
    m = re.search(f"[{letters}]", s)
    return m.group(0) if m else None


def _videomme_official(response: str, ctx: Context) -> str | None:
    return _first_letter(response, _VIDEOMME_PREFIXES, "ABCD")


def _longvideobench(response: str, ctx: Context) -> str | None:
    return _first_letter(response, _LVB_PREFIXES, "ABCDE")


# -- lmms-eval MVBench mcq_acc ------------------------------------------------------------------------------
_MVB_OPTION = re.compile(r"^([A-E])\.\s*(.+)$", re.IGNORECASE)
_MVB_PUNCT = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!")
_MVB_DIGIT_COMMA = re.compile(r"\d,\d")
#: a period not followed by a digit; lmms-eval passes ``re.UNICODE`` (32) as ``sub``'s *count*, so at most 32 go
_MVB_PERIOD = re.compile(r"\.(?!\d)")
_MVB_LETTER = re.compile(r"\b([A-E])\b", re.IGNORECASE)


def _mvbench(response: str, ctx: Context) -> str | None:
    """``"X. text"`` -> X; else the VQA punctuation rule (a mark next to a space, or any mark when the text has a
    digit-comma-digit, is removed, otherwise replaced by a space; then up to 32 periods not followed by a digit go),
    quotes and brackets stripped, lower case, and the first standalone a-e."""
    m = _MVB_OPTION.match(response.strip())
    if m:
        return m.group(1).upper()
    s = response.replace("\n", " ").replace("\t", " ").strip()
    out = s
    for p in _MVB_PUNCT:
        glue = (p + " " in s or " " + p in s) or _MVB_DIGIT_COMMA.search(s) is not None
        out = out.replace(p, "" if glue else " ")
    out = _MVB_PERIOD.sub("", out, count=32)
    out = out.strip("'").strip('"').strip(")").strip("(").strip().lower()
    m = _MVB_LETTER.search(out)
    return m.group(1).upper() if m else None


# -- MMMU-style parsers (NExT-QA, EgoSchema) ------------------------------------------------------------------
def _mmmu_text(response: str) -> str:
    for ch in ",.!?;:'":
        response = response.strip(ch)
    return f" {response} "


def _by_content(text: str, ctx: Context) -> list[str]:
    """Options whose text occurs in a response of more than 5 words (lower case)."""
    if len(text.split()) <= 5:
        return []
    low = text.lower()
    return [c for c in ctx.letters if ctx.options.get(c, "").strip().lower() in low]


def _nextqa(response: str, ctx: Context) -> str | None:
    """``(X)`` forms, else ``X``+space, else ``X.``, else option texts; several: the one whose form occurs last
    (``rfind`` of ``(X)``, of `` X `` for the other two forms, of the text); the first on a tie."""
    text = _mmmu_text(response)
    bracket = [c for c in ctx.letters if f"({c})" in text]
    plain = [] if bracket else [c for c in ctx.letters if f"{c} " in text]
    dotted = [] if bracket or plain else [c for c in ctx.letters if f"{c}." in text]
    letters = bracket or plain or dotted
    if letters:
        where = [text.rfind(f"({c})") if bracket else text.rfind(f" {c} ") for c in letters]
    else:
        letters = _by_content(text, ctx)
        where = [text.lower().rfind(ctx.options[c].strip().lower()) for c in letters]
    if not letters:
        return None
    return letters[max(range(len(letters)), key=lambda i: (where[i], -i))]


def _egoschema(response: str, ctx: Context) -> str | None:
    """Every ``(X)``, ``X``+space and ``X.`` form found (in that order), else option texts; several: the one with the
    smallest last position (the first on a tie)."""
    text = _mmmu_text(response)
    forms = [f"({c})" for c in ctx.letters if f"({c})" in text] + [f"{c} " for c in ctx.letters if f"{c} " in text] \
        + [f"{c}." for c in ctx.letters if f"{c}." in text]
    if forms:
        best = min(range(len(forms)), key=lambda i: (text.rfind(forms[i]), i))
        return forms[best].replace("(", "").replace(")", "").replace(".", "").strip()
    letters = _by_content(text, ctx)
    if not letters:
        return None
    where = [text.lower().rfind(ctx.options[c].strip().lower()) for c in letters]
    return letters[min(range(len(letters)), key=lambda i: (where[i], i))]


# -- PerceptionTest, TempCompass --------------------------------------------------------------------------------
_PT_LETTER = re.compile(r"\b([A-D])\b")


def _perceptiontest(response: str, ctx: Context) -> str | None:
    m = _PT_LETTER.search(response.strip())
    return m.group(1) if m else None


def _tempcompass(response: str, ctx: Context) -> str | None:
    """The whole option line -> its letter; ``A``-``D``; a response starting ``X.`` or ``X)`` -> X; else the judge."""
    if response == ctx.target_text:
        return ctx.target_text[:1]
    if response in ("A", "B", "C", "D"):
        return response
    for close in (".", ")"):
        if any(response.startswith(f"{c}{close}") for c in "ABCD"):
            return response.split(close)[0]
    return JUDGE


CONVENTIONS: dict[str, Convention] = {c.name: c for c in (
    Convention("lmms_videomme", _videomme_lmms, source="lmms-eval 0.7.3 tasks/videomme (extract_mcq_answer)"),
    Convention("videomme_official", _videomme_official, unparsed="drop",
               source="Video-MME eval_your_results / VILA eval_video_videomme.py (extract_characters_regex)"),
    Convention("lmms_mvbench", _mvbench, drop_empty=True, source="lmms-eval 0.7.3 tasks/mvbench (mcq_acc)"),
    Convention("lmms_nextqa", _nextqa, unparsed="random", source="lmms-eval 0.7.3 tasks/nextqa (parse_multi_choice_response)"),
    Convention("lmms_egoschema", _egoschema, unparsed="random",
               source="lmms-eval 0.7.3 tasks/egoschema (parse_multi_choice_response)"),
    Convention("lmms_perceptiontest", _perceptiontest,
               source="lmms-eval 0.7.3 tasks/perceptiontest/val (process_results_mc)"),
    Convention("lmms_tempcompass", _tempcompass, judged=True,
               source="lmms-eval 0.7.3 tasks/tempcompass (process_results_multi_choice; LLM judge for the rest)"),
    Convention("lmms_longvideobench", _longvideobench, unparsed="random",
               source="lmms-eval 0.7.3 tasks/longvideobench (parse_multi_choice_response)"),
    Convention("lmms_mlvu", _videomme_lmms, source="lmms-eval 0.7.3 tasks/mlvu (extract_mcq_answer over A-D)"),
)}
