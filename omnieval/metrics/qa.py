"""Question-answering scores: multiple-choice accuracy, open-ended exact match, LLM-judge score.

Functional forms
----------------
* :func:`extract_choice` -- the option letter a free-form response picks (or ``None``).
* :func:`normalize_answer` / :func:`exact_match` -- SQuAD-style normalised string equality.
* :func:`option_map` -- choices given as a list of texts (letters A, B, ... implied) or ``{letter: text}``.

Metrics (registered)
--------------------
* ``mcq_accuracy`` -- percent of questions whose extracted letter is the target, over **all** questions
  (an empty or unparseable answer counts as wrong, never a smaller denominator); also ``unparsed_rate``
  (a fraction).  The contribution keeps the parsed letter (``""`` when unparsed) and the target letter.
* ``exact_match`` -- percent of responses equal to one of the acceptable targets after normalisation
  (torchmetrics / SQuAD ``exact_match``).
* ``judge_score`` -- ActivityNet-QA LLM judge (see :mod:`omnieval.metrics.judge`).

Choice extraction rules
-----------------------
Preprocessing: ``<think>...</think>`` blocks are removed (an unclosed ``<think>`` means the answer was never
given: everything from it on is dropped); full-width brackets/colons/stops become ASCII; markdown ``*`` and
backticks are removed; surrounding whitespace is stripped.  Then, best first:

1. the whole response is a letter, in either case, optionally decorated: ``b``, ``(b)``, ``B.``,
   ``Answer: b``, ``Option B``;
2. the whole response equals one option's text (after :func:`normalize_answer`);
3. letter candidates, ranked as in lmms-eval's ``mcq_extract``: at the start (10) > at the end (9) >
   after an answer phrase such as "the answer is", "Answer:", "I choose", "答案是" (7) > ``(A)`` (6) >
   ``A.`` (5) > ``A:`` (4) > ``A)`` (3) > ``A`` followed by whitespace (2); the **last** occurrence of the
   best-ranked format wins.  Differences from lmms-eval, all towards fewer false reads:

   * a letter must stand alone: not inside a word ("DNA.", "I'm") -- ASCII letters/digits around it;
   * "A" and "I" followed by a space and a word are the English article/pronoun ("A photo of",
     "I think"), unless the word is a verb/connective such as "is", "because", "or" ("A is correct");
   * lower-case letters count only in rules 1 and 3's phrase, ``(b)`` and start-with-delimiter
     (``b.``, ``b)``, ``b:``) forms;
   * lines that enumerate two or more options with the same delimiter ("A. cat\\nB. dog") are an echo of
     the options, not an answer;
   * no "any occurrence" fallback (lmms-eval would read "Dog" as D);
   * ambiguity: letters in a list of different letters ("A or B", "A and C", "A/B", "A, B") are not
     answers; if no other letter is read the answer is ``None`` (no option-text fallback either).
4. if no letter is found: the option texts that occur (as whole words, normalised) in the response; if,
   after dropping options contained in a longer matched option, exactly one remains, its letter.
"""
from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from omnieval.errors import ConfigError, MediaError
from omnieval.metrics.base import MeanMetric, MetricInput
from omnieval.registry import register_metric

__all__ = [
    "extract_choice",
    "option_map",
    "normalize_answer",
    "exact_match",
    "MCQAccuracy",
    "ExactMatch",
]

_LETTERS = string.ascii_uppercase
_DEFAULT_LETTERS = "ABCDEFGH"  # when no choices are given (lmms-eval's default)

# -- normalisation ------------------------------------------------------------------------------
_ASCII_PUNCT = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.IGNORECASE)


def normalize_answer(text: str, *, lowercase: bool = True, strip_punctuation: bool = True, strip_articles: bool = True) -> str:
    """SQuAD normalisation: lowercase, drop ASCII punctuation, drop the articles a/an/the, collapse whitespace.

    The steps run in that order (as in the SQuAD script and torchmetrics), so "U.S." becomes "us" and
    "the-end" becomes "theend".  Only :data:`string.punctuation` is removed (not Unicode punctuation).
    """
    if lowercase:
        text = text.lower()
    if strip_punctuation:
        text = "".join(ch for ch in text if ch not in _ASCII_PUNCT)
    if strip_articles:
        text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, targets: str | Sequence[str], **normalization: bool) -> bool:
    """Whether ``prediction`` equals one of ``targets`` after :func:`normalize_answer` (same options)."""
    pred = normalize_answer(prediction, **normalization)
    options = [targets] if isinstance(targets, str) else list(targets)
    return any(pred == normalize_answer(t, **normalization) for t in options)


# -- choices ------------------------------------------------------------------------------------
def option_map(choices: Sequence[str] | Mapping[str, str] | None) -> dict[str, str]:
    """``{letter: option text}`` from a list of texts (letters A, B, ... implied) or a ``{letter: text}`` dict.

    ``None`` means letters A-H with unknown texts.  Option texts may carry their own letter prefix
    ("A. a cat", "(A) a cat"); it is kept here and ignored when texts are matched.
    """
    if choices is None:
        return {letter: "" for letter in _DEFAULT_LETTERS}
    if isinstance(choices, Mapping):
        out: dict[str, str] = {}
        for key, text in choices.items():
            letter = str(key).strip().upper()
            if len(letter) != 1 or letter not in _LETTERS:
                raise ConfigError(f"choice key {key!r} is not a single letter A-Z")
            out[letter] = "" if text is None else str(text)
        return out
    if isinstance(choices, (str, bytes)) or not isinstance(choices, Sequence):
        raise ConfigError(f"choices must be a list of option texts or a {{letter: text}} dict, got {type(choices).__name__}")
    if len(choices) > len(_LETTERS):
        raise ConfigError(f"{len(choices)} choices; at most {len(_LETTERS)} are supported")
    return {_LETTERS[i]: "" if text is None else str(text) for i, text in enumerate(choices)}


# -- extraction ---------------------------------------------------------------------------------
_FULLWIDTH = str.maketrans({"（": "(", "）": ")", "［": "[", "］": "]", "：": ":", "。": ".", "．": ".", "，": ","})
_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_THINK_OPEN = re.compile(r"<think>.*", re.DOTALL | re.IGNORECASE)
_MARKDOWN = re.compile(r"[*`]")

_BARE = re.compile(
    r"(?:(?:the\s+)?(?:final\s+|correct\s+|best\s+)?(?:answer|option|choice)\s*(?:is)?\s*:?\s*)?"
    r"[(\[]?\s*([A-Za-z])\s*[)\]]?\s*[.:)]?",
    re.IGNORECASE,
)
_PHRASE = re.compile(
    r"(?:\b(?:answer|option|choice)\s+(?:is|would\s+be|should\s+be|will\s+be)\b"
    r"|\banswer\s*[:=]"
    r"|\bi\s+(?:would\s+)?(?:choose|select|pick|go\s+with)\b"
    r"|答案(?:是|为|:)?|选(?:择|项)?(?:是|为|:)?)"
    r"\s*(?:(?:option|choice|letter)\b)?\s*:?\s*[(\[]?\s*",
    re.IGNORECASE,
)
# words after "A"/"I" + space that show the letter is an option, not the article/pronoun
_LETTER_VERBS = frozenset(
    "is was seems appears looks would should could must fits matches describes best because since as and or "
    "correctly accurately".split()
)
_LIST_SEPARATOR = re.compile(r"[)\].]*\s*(?:,|/|&|\bor\b|\band\b)\s*(?:(?:option|choice)\s+)?[(\[]?", re.IGNORECASE)
_LIST_END = re.compile(r"[)\].]*\s*(?:$|,|/|&|\bor\b|\band\b)", re.IGNORECASE)
_OWN_PREFIX = re.compile(r"^\s*[(\[]?([A-Za-z])[)\].:]\s+")

PRIORITY: dict[str, int] = {
    "start": 10,
    "end": 9,
    "phrase": 7,
    "parentheses": 6,
    "period": 5,
    "colon": 4,
    "right_paren": 3,
    "space": 2,
}


def _is_ascii_alnum(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


def _preprocess(response: str) -> str:
    text = _THINK_BLOCK.sub(" ", response)
    text = _THINK_OPEN.sub(" ", text)
    text = text.translate(_FULLWIDTH)
    return _MARKDOWN.sub("", text).strip()


def _standalone(text: str, i: int) -> bool:
    """Whether the character at ``i`` is a letter on its own (not part of a word, "I'm", "A's")."""
    if i > 0 and _is_ascii_alnum(text[i - 1]):
        return False
    after = text[i + 1 : i + 3]
    if after[:1] and _is_ascii_alnum(after[0]):
        return False
    return not (after[:1] in ("'", "’") and len(after) == 2 and after[1].isalpha())


def _is_word_usage(text: str, i: int) -> bool:
    """"A photo", "I think": the letter is an English word (only A/I, followed by space + word)."""
    if text[i].upper() not in "AI":
        return False
    m = re.match(r"[ \t]+([A-Za-z]+)", text[i + 1 :])
    return bool(m) and m.group(1).lower() not in _LETTER_VERBS


def _tokens(text: str, letters: Mapping[str, str]) -> list[int]:
    """Positions of standalone letters (either case) that name an option."""
    return [i for i, ch in enumerate(text) if ch.upper() in letters and ch.isascii() and _standalone(text, i)]


def _enumeration_positions(text: str, tokens: list[int]) -> set[int]:
    """Line-start letters that enumerate >= 2 different options with the same delimiter (echoed options)."""
    by_delim: dict[str, list[int]] = {}
    for i in tokens:
        line_start = text.rfind("\n", 0, i) + 1
        if any(ch.isalnum() for ch in text[line_start:i]):
            continue
        delim = text[i + 1 : i + 2]
        if delim in (".", ")", ":", "]"):
            by_delim.setdefault(delim, []).append(i)
    out: set[int] = set()
    for positions in by_delim.values():
        if len({text[i].upper() for i in positions}) >= 2:
            out.update(positions)
    return out


def _list_positions(text: str, tokens: list[int]) -> set[int]:
    """Letters that are part of a list of different letters: "A or B", "(A)/(C)", "A and C", "A, B."

    A comma joins two letters only when the second one ends the phrase ("A, B", "A, B or C"), so that
    "B, C is wrong" is not a list.
    """
    out: set[int] = set()
    for i, j in zip(tokens, tokens[1:]):
        sep = _LIST_SEPARATOR.fullmatch(text, i + 1, j)
        if not sep or text[i].upper() == text[j].upper():
            continue
        if "," in sep.group(0) and not _LIST_END.match(text, j + 1):
            continue
        out.update((i, j))
    return out


def _formats(text: str, i: int) -> list[str]:
    """The delimiter formats the standalone letter at ``i`` is written in (upper- or lower-case rules)."""
    prev, nxt = text[i - 1 : i], text[i + 1 : i + 2]
    after2 = text[i + 2 : i + 3]
    upper = text[i].isupper()
    at_start = not any(ch.isalnum() for ch in text[:i])
    found: list[str] = []
    if at_start and not _is_word_usage(text, i) and (upper or nxt in (".", ")", ":", "]")):
        found.append("start")
    if not upper:
        if prev in "([" and prev and nxt in (")", "]") and nxt:
            found.append("parentheses")
        return found
    if not any(ch.isalnum() for ch in text[i + 1 :]):
        found.append("end")
    if prev in ("(", "[") and nxt in (")", "]"):
        found.append("parentheses")
    if nxt == "." and (not after2 or after2.isspace() or after2 in ")]\"'"):
        found.append("period")
    if nxt == ":":
        found.append("colon")
    if nxt == ")" and prev != "(":
        found.append("right_paren")
    if nxt.isspace() and nxt and not _is_word_usage(text, i):
        found.append("space")
    return found


def _letter_candidates(text: str, letters: Mapping[str, str]) -> tuple[list[tuple[int, int, str]], list[int]]:
    """``(priority, position, letter)`` for every letter read, and all token positions.

    Ties in priority go to the later position (``max``), i.e. the last occurrence of the best format.
    """
    tokens = _tokens(text, letters)
    echoed = _enumeration_positions(text, tokens)
    candidates = [
        (PRIORITY[fmt], i, text[i].upper()) for i in tokens if i not in echoed for fmt in _formats(text, i)
    ]
    token_set = set(tokens)
    for m in _PHRASE.finditer(text):
        i = m.end()
        if i in token_set and not _is_word_usage(text, i):
            candidates.append((PRIORITY["phrase"], i, text[i].upper()))
    return candidates, tokens


def _option_texts(letters: Mapping[str, str]) -> dict[str, str]:
    """Normalised option texts, without a leading "(A)"/"A." naming the option's own letter."""
    out = {}
    for letter, text in letters.items():
        m = _OWN_PREFIX.match(text)
        if m and m.group(1).upper() == letter:
            text = text[m.end() :]
        norm = normalize_answer(text)
        if norm:
            out[letter] = norm
    return out


def _match_text(text: str, letters: Mapping[str, str]) -> str | None:
    """The one option whose text occurs in ``text`` (ignoring options inside a longer matched one)."""
    options = _option_texts(letters)
    padded = f" {normalize_answer(text)} "
    found = {letter: norm for letter, norm in options.items() if f" {norm} " in padded}
    longest = {
        letter for letter, norm in found.items()
        if not any(norm != other and f" {norm} " in f" {other} " for other in found.values())
    }
    return next(iter(longest)) if len(longest) == 1 else None


def extract_choice(response: str | None, choices: Sequence[str] | Mapping[str, str] | None) -> str | None:
    """The option letter (upper case) that ``response`` picks among ``choices``, or ``None``.

    ``choices``: a list of option texts (letters A, B, ... implied), a ``{letter: text}`` dict, or ``None``
    (letters A-H, no texts).  See the module docstring for the rules; ``None`` means empty, unparseable or
    ambiguous.
    """
    if response is None:
        return None
    letters = option_map(choices)
    text = _preprocess(str(response))
    if not text:
        return None
    bare = _BARE.fullmatch(text)
    if bare and bare.group(1).upper() in letters:
        return bare.group(1).upper()
    options = _option_texts(letters)
    norm = normalize_answer(text)
    exact = [letter for letter, opt in options.items() if opt == norm]
    if len(exact) == 1:
        return exact[0]
    candidates, tokens = _letter_candidates(text, letters)
    listed = _list_positions(text, tokens)
    candidates = [c for c in candidates if c[1] not in listed]
    if candidates:
        return max(candidates)[2]
    return None if listed else _match_text(text, letters)


# -- metrics ------------------------------------------------------------------------------------
def response_text(item: MetricInput) -> str:
    """The model's response as text; ``None`` (no answer) is the empty string, non-text is an error."""
    if item.output is None:
        return ""
    if not isinstance(item.output, str):
        raise MediaError(f"item {item.item_id}: expected a text response, got {type(item.output).__name__}")
    return item.output


def percent_of(values: dict[str, float], key: str, percent: bool) -> dict[str, float]:
    """``values`` with ``values[key]`` (a mean of 0/1 contributions) times 100 when ``percent``."""
    if percent and key in values:
        values = {**values, key: 100.0 * values[key]}
    return values


_TARGET_MODES = ("auto", "letter", "index", "text")


def resolve_target(reference: Any, letters: Mapping[str, str], item_id: str, mode: str = "auto") -> str:
    """The target letter.  ``auto``: a letter ("B", "(B)"), an option index (int), the exact or normalised option
    text, or an option line naming its letter ("B. fast", TempCompass); ``letter`` / ``index`` (an int or a string of
    digits, EgoSchema) / ``text``: only that form."""
    keys = list(letters)
    if mode in ("auto", "index"):
        index = reference if isinstance(reference, int) and not isinstance(reference, bool) else None
        if mode == "index" and isinstance(reference, str) and reference.strip().isdigit():
            index = int(reference.strip())
        if index is not None and 0 <= index < len(keys):
            return keys[index]
    if isinstance(reference, str) and mode in ("auto", "letter"):
        stripped = reference.strip().strip("().[]:").strip()
        if len(stripped) == 1 and stripped.upper() in letters:
            return stripped.upper()
    if isinstance(reference, str) and mode in ("auto", "text"):
        for match in (lambda t: t == reference, lambda t: normalize_answer(t) == normalize_answer(reference)):
            hits = [letter for letter, text in letters.items() if text and match(text)]
            if len(hits) == 1:
                return hits[0]
    if isinstance(reference, str) and mode == "auto":
        m = _OWN_PREFIX.match(reference)
        if m and m.group(1).upper() in letters:
            return m.group(1).upper()
    raise ConfigError(f"item {item_id}: target {reference!r} is not one of the choices {', '.join(keys)}"
                      + ("" if mode == "auto" else f" (target: {mode})"))


@register_metric(
    "mcq_accuracy",
    description="Multiple-choice accuracy (percent, every question counts) with robust letter extraction; with "
                "reference: the benchmark's own convention side by side, and the disagreements",
    capability="understand",
)
class MCQAccuracy(MeanMetric):
    """Multiple-choice accuracy, strict and (optionally) as the benchmark's reference code computes it.

    Input: ``output`` = response text, ``reference`` = the target (see ``target``), ``doc[choices_key]`` = list of
    option texts or ``{letter: text}``.

    **Strict** (``mcq_accuracy``): :func:`extract_choice`, every question counts in the denominator, an empty,
    unparseable or ambiguous answer is wrong; ``unparsed_rate`` is the fraction of those.

    **Reference** (``reference: <convention>``, :data:`omnieval.metrics.mcq_reference.CONVENTIONS`):
    ``mcq_accuracy_ref`` reads the answer with the reference's parser and counts what the reference counts (MVBench
    drops empty answers, the official Video-MME drops unparsed ones, NExT-QA / EgoSchema / LongVideoBench draw a
    deterministic stand-in for their random letter, TempCompass asks its judge).  ``mcq_disagree`` is the number of
    questions the two score differently (a different verdict, or left out of the reference's denominator);
    ``ref_dropped`` / ``ref_random`` / ``ref_judged`` / ``ref_judge_needed`` count questions the reference dropped,
    guessed, judged, or would have judged (no ``judge`` configured: counted wrong, as lmms-eval does when its judge
    fails).

    **Macro** (``macro_over: <doc field>``): ``mcq_accuracy`` and ``mcq_accuracy_ref`` are means over that field's
    groups (MVBench's average of its 20 sub-tasks, MLVU's of its task types), ``mcq_accuracy_micro`` the plain mean;
    the strict one averages the groups present, the reference one the fixed ``reference_groups`` when given (an absent
    group counts 0: MLVU's seven types) -- on a breakdown subset that is what the reference would print for the
    subset alone.  Accuracies are percent when ``percent`` (counts are counts, ``unparsed_rate`` a fraction).
    """

    @dataclass(frozen=True)
    class Options:
        choices_key: str = "choices"
        percent: bool = True
        #: fall back to matching option texts when no letter is found (rules 2 and 4 of extract_choice)
        match_option_text: bool = True
        #: the benchmark's own convention, reported next to the strict number (None: strict only)
        reference: str | None = None
        #: how the target is given: auto, letter, index (0-based; an int or digits) or text
        target: str = "auto"
        #: macro average over this doc field's groups
        macro_over: str | None = None
        #: the reference's fixed macro groups (an absent group counts 0)
        reference_groups: tuple[str, ...] = ()
        #: the LLM judge the reference consults (TempCompass): JudgeSettings fields; empty: no judge
        judge: dict = field(default_factory=dict)

        def __post_init__(self):
            from omnieval.metrics.mcq_reference import CONVENTIONS

            if self.reference is not None and self.reference not in CONVENTIONS:
                raise ValueError(f"reference {self.reference!r} is not one of {', '.join(CONVENTIONS)}")
            if self.target not in _TARGET_MODES:
                raise ValueError(f"target {self.target!r} is not one of {', '.join(_TARGET_MODES)}")
            if self.reference_groups and not self.macro_over:
                raise ValueError("reference_groups needs macro_over (the doc field of the groups)")
            if self.judge:
                from omnieval.judge import JudgeSettings

                unknown = sorted(set(self.judge) - {f.name for f in fields(JudgeSettings)})
                if unknown:
                    raise ValueError(f"judge: unknown key(s) {unknown}")

    needs: ClassVar[tuple[str, ...]] = ("output", "reference")
    higher_is_better: ClassVar[dict[str, bool]] = {
        "mcq_accuracy": True, "mcq_accuracy_ref": True, "mcq_accuracy_micro": True, "unparsed_rate": False,
        "mcq_disagree": False, "ref_dropped": False, "ref_random": False, "ref_judged": False, "ref_judge_needed": False,
    }
    weights: ClassVar[tuple[str, ...]] = ()
    _COUNTS: ClassVar[tuple[str, ...]] = ("mcq_disagree", "ref_dropped", "ref_random", "ref_judged", "ref_judge_needed")

    def score(self, inputs: list[MetricInput]) -> list[dict[str, Any]]:
        out = []
        for item in inputs:
            if self.options.choices_key not in item.doc or item.doc[self.options.choices_key] is None:
                raise ConfigError(f"item {item.item_id}: doc has no {self.options.choices_key!r} (the options)")
            letters = option_map(item.doc[self.options.choices_key])
            target = resolve_target(item.reference, letters, item.item_id, self.options.target)
            choices = letters if self.options.match_option_text else {k: "" for k in letters}
            parsed = extract_choice(response_text(item), choices)
            c: dict[str, Any] = {"mcq_accuracy": float(parsed == target), "unparsed_rate": float(parsed is None),
                                 "parsed": parsed or "", "target": target}
            if self.options.reference:
                c.update(self._reference(item, letters, target, c["mcq_accuracy"]))
            if self.options.macro_over:
                self._add_group(item, c)
            out.append(c)
        return out

    def _reference(self, item: MetricInput, letters: dict[str, str], target: str, strict: float) -> dict[str, Any]:
        """The reference convention's reading of one item (see the class docstring)."""
        from omnieval.metrics.mcq_reference import (
            CONVENTIONS,
            JUDGE,
            Context,
            random_letter,
        )

        conv = CONVENTIONS[self.options.reference]
        response = response_text(item).strip()  # lmms-eval's Task.process_results strips every response
        ctx = Context(tuple(letters), dict(letters), str(item.reference) if isinstance(item.reference, str) else "")
        letter = conv.parse(response, ctx) if response or not conv.drop_empty else None
        c: dict[str, Any] = {"ref_dropped": 0.0, "ref_random": 0.0, "ref_judged": 0.0, "ref_judge_needed": 0.0}
        how = "parsed"
        if conv.drop_empty and not response:
            how = "empty"
        elif letter == JUDGE:
            letter, how = self._judge(item, response, target, c)
        elif letter is None and conv.unparsed == "random":
            letter, how = random_letter(conv.name, item.doc_id, item.sample_index, letters), "random"
            c["ref_random"] = 1.0
        elif letter is None:
            how = "unparsed"
        dropped = how == "empty" or (how == "unparsed" and conv.unparsed == "drop")
        c.update(ref_parsed=letter or "", ref_how=how, ref_dropped=float(dropped))
        if not dropped:
            c["mcq_accuracy_ref"] = float(letter == target)
        c["mcq_disagree"] = float(dropped or c["mcq_accuracy_ref"] != strict)
        return c

    def _judge(self, item: MetricInput, response: str, target: str, c: dict[str, Any]) -> tuple[str | None, str]:
        """TempCompass: the reference's LLM judge decides; without a judge the item counts wrong (flagged)."""
        if not self.options.judge:
            c["ref_judge_needed"] = 1.0
            return None, "judge_needed"
        from omnieval.metrics.base import RETRY
        from omnieval.metrics.mcq_judge import tempcompass_verdict

        verdict = tempcompass_verdict(self._judge_client(), question=str(item.prompt or ""), answer=str(item.reference),
                                      prediction=response)
        c["ref_judged"] = 1.0
        c["judge_output"] = verdict.output or ""
        if verdict.correct is None:  # lmms-eval scores a failed judge 0; we count it so, and score it again next run
            c[RETRY] = verdict.error or "judge failed"
            return None, "judge_failed"
        return (target if verdict.correct else None), "judged"

    def _judge_client(self):
        if getattr(self, "_client", None) is None:
            from omnieval.metrics.mcq_judge import tempcompass_client

            self._client = tempcompass_client(self.options.judge)
        return self._client

    def _add_group(self, item: MetricInput, c: dict[str, Any]) -> None:
        group = item.doc.get(self.options.macro_over)
        if group is None:
            raise ConfigError(f"item {item.item_id}: doc has no {self.options.macro_over!r} (macro_over)")
        for key in ("mcq_accuracy", "mcq_accuracy_ref"):
            if key in c:
                c[f"{key}@{group}"] = c[key]
        c[f"items@{group}"] = 1.0

    def compute(self) -> dict[str, float]:
        means = super().compute()
        scale = 100.0 if self.options.percent else 1.0
        out: dict[str, float] = {}
        groups = [k.split("@", 1)[1] for k in means if k.startswith("items@")]
        if self.options.macro_over:
            out["mcq_accuracy"] = scale * _macro(means, "mcq_accuracy", groups)
            out["mcq_accuracy_micro"] = scale * means["mcq_accuracy"]
        else:
            out["mcq_accuracy"] = scale * means["mcq_accuracy"]
        out["unparsed_rate"] = means["unparsed_rate"]
        if self.options.reference:
            ref_groups = list(self.options.reference_groups) or groups
            if self.options.macro_over:
                out["mcq_accuracy_ref"] = scale * _macro(means, "mcq_accuracy_ref", ref_groups)
            else:
                out["mcq_accuracy_ref"] = scale * means.get("mcq_accuracy_ref", 0.0)  # nothing counted: 0, as lmms-eval
            out.update({key: float(self.sums.get(key, 0.0)) for key in self._counts()})
        return out

    def _counts(self) -> tuple[str, ...]:
        """The counts the reference convention can make non-zero (a judge, a random letter, a smaller denominator)."""
        from omnieval.metrics.mcq_reference import CONVENTIONS

        conv = CONVENTIONS[self.options.reference]
        can = {"mcq_disagree": True, "ref_dropped": conv.drop_empty or conv.unparsed == "drop",
               "ref_random": conv.unparsed == "random", "ref_judged": conv.judged, "ref_judge_needed": conv.judged}
        return tuple(key for key in self._COUNTS if can[key])


def _macro(means: dict[str, float], key: str, groups: list[str]) -> float:
    """Mean over ``groups`` of each group's mean of ``key`` (a group with nothing counted: 0, as the references)."""
    return sum(means.get(f"{key}@{g}", 0.0) for g in groups) / len(groups) if groups else 0.0


@register_metric(
    "exact_match",
    description="Open-ended QA exact match (percent) after SQuAD normalisation; target may list acceptable answers",
    capability="understand",
)
class ExactMatch(MeanMetric):
    """SQuAD / torchmetrics ``exact_match``: 100 x fraction of responses equal to any acceptable target.

    Normalisation (each step an option): lowercase, remove ASCII punctuation, remove a/an/the, collapse
    whitespace.  ``reference`` is a string or a list of acceptable strings; a target that normalises to the
    empty string is a configuration error (it would match an empty response).
    """

    @dataclass(frozen=True)
    class Options:
        lowercase: bool = True
        strip_punctuation: bool = True
        strip_articles: bool = True
        percent: bool = True

    needs: ClassVar[tuple[str, ...]] = ("output", "reference")
    weights: ClassVar[tuple[str, ...]] = ()

    def _norm(self, text: str) -> str:
        o = self.options
        return normalize_answer(text, lowercase=o.lowercase, strip_punctuation=o.strip_punctuation, strip_articles=o.strip_articles)

    def score(self, inputs: list[MetricInput]) -> list[dict[str, Any]]:
        out = []
        for item in inputs:
            ref = item.reference
            targets = [ref] if isinstance(ref, str) else list(ref) if isinstance(ref, Sequence) else []
            if not targets or not all(isinstance(t, str) and self._norm(t) for t in targets):
                raise ConfigError(f"item {item.item_id}: target {ref!r} must be a non-empty string or list of strings")
            pred = self._norm(response_text(item))
            out.append({"exact_match": float(any(pred == self._norm(t) for t in targets)), "normalized": pred})
        return out

    def compute(self) -> dict[str, float]:
        return percent_of(super().compute(), "exact_match", self.options.percent)

