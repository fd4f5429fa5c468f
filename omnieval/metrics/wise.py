"""WISE WiScore (Niu et al., 2025) as lmms-eval 0.7.3's ``WISE`` task computes it.

Per image, an OpenAI-compatible multimodal judge (default ``gpt-4o-2024-05-13``, temperature 0, ``max_tokens``
128 -- lmms-eval's call; the official ``gpt_eval.py`` allows 2000 tokens) gets lmms-eval's system message and
evaluation protocol (:data:`EVAL_PROMPT`, byte for byte, with the doc's ``Prompt`` and ``Explanation``; ``Hint`` is
not shown) and the image as a PNG data URL.  The reply is parsed as lmms-eval's ``_extract_scores``:

* every ``Consistency|Realism|Aesthetic Quality`` label (case-insensitive, optional ``**``, optional ASCII ``:``)
  followed by **one digit**; the last occurrence of a label wins (so "10" reads as 1, and 3-9 are taken as is);
* only if no label matched: three or more lines that are a single digit 0-2 give the three scores in order.

A reply without all three scores is asked again (the same request) up to 3 times; if none parses, the image
scores 0 in every component (``status: parse_failed``), as lmms-eval.  ``WiScore = (0.7 consistency + 0.2 realism
+ 0.1 aesthetic) / 2`` in [0, 1] (digits above 2 can push it higher, as in lmms-eval).

Categories come from ``prompt_id`` ranges (culture 1-400, time 401-567, space 568-700, biology 701-800, physics
801-900, chemistry 901-1000); another id is in no category.  Reported values:

* ``wiscore``: lmms-eval's ``WISE_overall_wiscore`` = sum of ``weight_c * mean_c`` over the categories present,
  divided by the sum of their weights (0.4, 0.167, 0.133, 0.1, 0.1, 0.1; with all 1,000 prompts this is the paper's
  formula, and equals the mean over prompts);
* ``wiscore_<category>``: the mean WiScore of the category's images (lmms-eval's ``WISE_<category>_score``;
  a category without images is not reported, where lmms-eval prints 0.0);
* ``consistency``, ``realism``, ``aesthetic_quality``: component means over all images; ``failed``: how many
  images had no parseable reply (scored 0, as lmms-eval).

A transport failure of the judge (no reply after the client's retries) is not scored as 0 here but marked for
retry (:data:`~omnieval.metrics.base.RETRY`): it is counted as a failure in this run and judged again by the next
(lmms-eval scores it 0, ``status: judge_failed``).
"""
from __future__ import annotations

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

CATEGORY_RANGES = {
    "culture": range(1, 401), "time": range(401, 568), "space": range(568, 701),
    "biology": range(701, 801), "physics": range(801, 901), "chemistry": range(901, 1001),
}
WEIGHTS = {"culture": 0.4, "time": 0.167, "space": 0.133, "biology": 0.1, "physics": 0.1, "chemistry": 0.1}
COMPONENT_WEIGHTS = {"consistency": 0.7, "realism": 0.2, "aesthetic_quality": 0.1}
MAX_PARSE_ATTEMPTS = 3

SYSTEM = ("You are a professional Vincennes image quality audit expert, please evaluate the image quality strictly "
          "according to the protocol.")
# lmms-eval 0.7.3 tasks/WISE/utils.py, _build_evaluation_messages: the judge's scores depend on every character of
# it, so it is data that must match, not code.  {prompt} and {explanation} are filled in one pass.
EVAL_PROMPT = (
    'Please evaluate strictly and return ONLY the three scores as requested.\n'
    '\n'
    '# Text-to-Image Quality Evaluation Protocol\n'
    '\n'
    '## System Instruction\n'
    'You are an AI quality auditor for text-to-image generation. Apply these rules with ABSOLUTE RUTHLESSNESS. Only images meeting the HIGHEST standards should receive top scores.\n'
    '\n'
    '**Input Parameters**\n'
    "- PROMPT: [User's original prompt to]\n"
    '- EXPLANATION: [Further explanation of the original prompt]\n'
    '---\n'
    '\n'
    '## Scoring Criteria\n'
    '\n'
    '**Consistency (0-2):**  How accurately and completely the image reflects the PROMPT.\n'
    '* **0 (Rejected):**  Fails to capture key elements of the prompt, or contradicts the prompt.\n'
    "* **1 (Conditional):** Partially captures the prompt. Some elements are present, but not all, or not accurately.  Noticeable deviations from the prompt's intent.\n"
    '* **2 (Exemplary):**  Perfectly and completely aligns with the PROMPT.  Every single element and nuance of the prompt is flawlessly represented in the image. The image is an ideal, unambiguous visual realization of the given prompt.\n'
    '\n'
    '**Realism (0-2):**  How realistically the image is rendered.\n'
    '* **0 (Rejected):**  Physically implausible and clearly artificial. Breaks fundamental laws of physics or visual realism.\n'
    '* **1 (Conditional):** Contains minor inconsistencies or unrealistic elements.  While somewhat believable, noticeable flaws detract from realism.\n'
    '* **2 (Exemplary):**  Achieves photorealistic quality, indistinguishable from a real photograph.  Flawless adherence to physical laws, accurate material representation, and coherent spatial relationships. No visual cues betraying AI generation.\n'
    '\n'
    '**Aesthetic Quality (0-2):**  The overall artistic appeal and visual quality of the image.\n'
    '* **0 (Rejected):**  Poor aesthetic composition, visually unappealing, and lacks artistic merit.\n'
    '* **1 (Conditional):**  Demonstrates basic visual appeal, acceptable composition, and color harmony, but lacks distinction or artistic flair.\n'
    '* **2 (Exemplary):**  Possesses exceptional aesthetic quality, comparable to a masterpiece.  Strikingly beautiful, with perfect composition, a harmonious color palette, and a captivating artistic style. Demonstrates a high degree of artistic vision and execution.\n'
    '\n'
    '---\n'
    '\n'
    '## Output Format\n'
    '\n'
    '**Do not include any other text, explanations, or labels.** You must return only three lines of text, each containing a metric and the corresponding score, for example:\n'
    '\n'
    '**Example Output:**\n'
    'Consistency: 2\n'
    'Realism: 1\n'
    'Aesthetic Quality: 0\n'
    '\n'
    '---\n'
    '\n'
    '**IMPORTANT Enforcement:**\n'
    '\n'
    "Be EXTREMELY strict in your evaluation. A score of '2' should be exceedingly rare and reserved only for images that truly excel and meet the highest possible standards in each metric. If there is any doubt, downgrade the score.\n"
    '\n'
    "For **Consistency**, a score of '2' requires complete and flawless adherence to every aspect of the prompt, leaving no room for misinterpretation or omission.\n"
    '\n'
    "For **Realism**, a score of '2' means the image is virtually indistinguishable from a real photograph in terms of detail, lighting, physics, and material properties.\n"
    '\n'
    "For **Aesthetic Quality**, a score of '2' demands exceptional artistic merit, not just pleasant visuals.\n"
    '\n'
    '---\n'
    'Here are the Prompt and EXPLANATION for this evaluation:\n'
    'PROMPT: "{prompt}"\n'
    'EXPLANATION: "{explanation}"\n'
    'Please strictly adhere to the scoring criteria and follow the template format when providing your results.'
)

_FIELDS = re.compile(r"\{(prompt|explanation)\}")
_LABELLED = re.compile(r"\*{0,2}(Consistency|Realism|Aesthetic Quality)\*{0,2}\s*[:]?\s*(\d)", re.IGNORECASE)
_BARE = re.compile(r"(?m)^\s*([0-2])\s*$")


def category(prompt_id: Any) -> str | None:
    """The WISE category of a prompt id (lmms-eval's ranges), or None."""
    try:
        pid = int(prompt_id)
    except (TypeError, ValueError):
        return None
    return next((name for name, ids in CATEGORY_RANGES.items() if pid in ids), None)


def judge_messages(doc: dict, png: bytes) -> list[dict[str, Any]]:
    """The judge request for one image: lmms-eval's system message and protocol with the doc's prompt and explanation."""
    prompt = str(doc.get("Prompt") or doc.get("prompt") or "")
    explanation = str(doc.get("Explanation") or doc.get("explanation") or "")
    text = _FIELDS.sub(lambda m: prompt if m.group(1) == "prompt" else explanation, EVAL_PROMPT)
    return [{"role": "system", "content": [text_part(SYSTEM)]},
            {"role": "user", "content": [text_part(text), image_part(png)]}]


def parse_scores(text: str) -> dict[str, float]:
    """Scores found in a judge reply (possibly fewer than three; see the module docstring)."""
    out = {key.lower().replace(" ", "_"): float(value) for key, value in _LABELLED.findall(text)}
    if out:
        return out
    bare = _BARE.findall(text)
    if len(bare) >= 3:
        return dict(zip(COMPONENT_WEIGHTS, map(float, bare[:3])))
    return {}


def _all_scores(text: str) -> dict[str, float]:
    """The three scores of a reply, or InvalidReply (asked again, never cached)."""
    scores = parse_scores(text)
    if not set(COMPONENT_WEIGHTS) <= set(scores):
        raise InvalidReply("no Consistency / Realism / Aesthetic Quality scores")
    return scores


def wiscore(scores: dict[str, float]) -> float:
    return sum(w * scores[k] for k, w in COMPONENT_WEIGHTS.items()) / 2


def overall(category_means: dict[str, float]) -> float | None:
    """Weighted mean of the categories present (renormalised by their weights), as lmms-eval."""
    used = {c: WEIGHTS[c] for c in WEIGHTS if c in category_means}
    total = sum(used.values())
    return sum(w * category_means[c] for c, w in used.items()) / total if total > 0 else None


@register_metric("wise", description="WISE WiScore (lmms-eval 0.7.3): VLM judge consistency/realism/aesthetic, weighted per category",
                 capability="t2i")
class Wise(ImageJudgeMetric):
    """See the module docstring.  Options: the judge's endpoint and model (:class:`JudgeSettings`; defaults are
    lmms-eval's; ``workers``: concurrent images, results do not depend on it), ``cache``: keep accepted replies
    under the run folder."""

    @dataclass(frozen=True)
    class Options(ImageJudgeMetric.Options):
        model: str = "gpt-4o-2024-05-13"
        max_tokens: int = 128
        max_parse_attempts: int = MAX_PARSE_ATTEMPTS

    def __init__(self, **options: Any):
        super().__init__(**options)
        if self.options.max_parse_attempts < 1:
            raise ConfigError("wise: max_parse_attempts must be >= 1")

    def options_dict(self) -> dict[str, Any]:
        return {**super().options_dict(), "prompt_sha256": sha256_text({"system": SYSTEM, "user": EVAL_PROMPT})}

    def judge(self, item: MetricInput) -> dict[str, Any]:
        cat = category(item.doc.get("prompt_id", item.doc.get("id")))
        messages = judge_messages(item.doc, png_bytes(item.output, what=f"item {item.item_id} output"))
        out: dict[str, Any] = {"category": cat or "unknown", "judge_model": "", "judge_attempts": 0,
                               "judge_prompt_sha256": sha256_text({"system": SYSTEM, "user": EVAL_PROMPT})}
        scores: dict[str, float] = {}
        raw = ""
        for _ in range(self.options.max_parse_attempts):  # the same request again, as lmms-eval
            reply = self.client.chat(messages, accept=_all_scores)
            out["judge_attempts"] += reply.attempts
            if reply.content is None:  # no reply at all: transient, judged again by the next run
                return {**out, RETRY: reply.error or "judge call failed", "judge_error": reply.error, "failed": 1.0}
            raw, out["judge_model"], out["judge_cached"] = reply.content, reply.model, reply.cached
            if not reply.failed:
                scores = reply.parsed
                break
        ok = set(COMPONENT_WEIGHTS) <= set(scores)
        values = {k: scores[k] if ok else 0.0 for k in COMPONENT_WEIGHTS}
        score = wiscore(values)
        out.update(values, judge_raw=raw, status="ok" if ok else "parse_failed", wiscore_item=score, failed=0.0 if ok else 1.0)
        if cat is not None:
            out[f"wiscore_{cat}"] = score
        return out

    def compute(self) -> dict[str, float]:
        means = super().compute()
        per_category = {c: means[f"wiscore_{c}"] for c in WEIGHTS if f"wiscore_{c}" in means}
        out: dict[str, float] = {}
        value = overall(per_category)
        if value is not None:
            out["wiscore"] = value
        out.update({f"wiscore_{c}": v for c, v in per_category.items()})
        out.update({k: means[k] for k in COMPONENT_WEIGHTS if k in means})
        out["failed"] = self.sums.get("failed", 0.0)
        return out
