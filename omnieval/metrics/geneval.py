"""GenEval (djghosh13/geneval): object-focused text-to-image evaluation with a detector and rules.

Per image, with the prompt's metadata line (``tag``, ``include``, optional ``exclude``, ``prompt``):

1. **detect** the 80 COCO classes (:mod:`omnieval.metrics.geneval_detector`);
2. **select** per class (:func:`select_detections`): keep scores strictly above ``threshold`` (0.3), or
   ``counting_threshold`` (0.9) when the tag is ``counting``; sort by score, descending; keep the first
   ``max_objects`` (16); greedy NMS with IoU < ``max_overlap`` (1.0 = off; IoU uses GenEval's +1 pixel
   box areas);
3. **rules** (:func:`evaluate_rules`): ``include`` clauses are ANDed: each needs ``count`` objects of its
   class, and only the top-``count`` are used.  A ``color`` needs the classifier
   (:mod:`omnieval.metrics.geneval_color`) to give that colour to all ``count`` of them.  A ``position``
   ``[relation, group]`` needs every found object to stand in ``relation`` to every object of the
   earlier include clause ``group`` (:func:`relative_position`; checked only if the colour matched).
   ``exclude`` clauses are ORed: ``count`` or more objects of the class make the image wrong, so
   "two clocks" = include 2 + exclude 3 is an exact count;
4. the record carries ``correct`` and the ``reason`` for failure, worded as GenEval's ``results.jsonl``
   (``"\\n"``-joined).  One deviation: when an object stands in several relations, they are listed in the
   fixed order left of, right of, above, below (GenEval joins a Python set, whose order varies by run).

Scores (:mod:`omnieval.aggregate.geneval`): accuracy per tag, ``overall`` = unweighted mean of the tag
accuracies, ``prompt_accuracy`` = share of prompts with at least one correct sample, ``image_accuracy``.
Images are RGB uint8 ``H x W x 3`` used at their own resolution.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from omnieval.aggregate.geneval import GENEVAL_TAGS, overall_score
from omnieval.errors import ConfigError
from omnieval.media import as_uint8_image
from omnieval.metrics import weights as W
from omnieval.metrics.base import Metric, MetricInput, dict_any_state, dict_sum_state
from omnieval.metrics.geneval_color import COLORS
from omnieval.metrics.geneval_detector import Detection, Detections, check_mask
from omnieval.registry import register_metric

RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")
_DEFAULT_DETECTOR_WEIGHTS = {"mask2former_hf": "mask2former_swin_small_coco_instance",
                             "mmdet": "geneval_mmdet_mask2former_swin_s"}
ColorFn = Callable[[str, list[Detection]], list[str]]


# ---------------------------------------------------------------------------------------------
# Rule engine (pure functions)
# ---------------------------------------------------------------------------------------------
def box_iou(box_a: Sequence[float], box_b: Sequence[float]) -> float:
    """IoU with GenEval's inclusive-pixel areas ``(x2 - x1 + 1) * (y2 - y1 + 1)``."""

    def area(b: Sequence[float]) -> float:
        return max(b[2] - b[0] + 1, 0) * max(b[3] - b[1] + 1, 0)

    inter = area([max(box_a[0], box_b[0]), max(box_a[1], box_b[1]), min(box_a[2], box_b[2]), min(box_a[3], box_b[3])])
    union = area(box_a) + area(box_b) - inter
    return float(inter / union) if union else 0.0


def select_detections(raw: Mapping[str, Sequence[Detection]], *, threshold: float, max_objects: int,
                      max_overlap: float) -> Detections:
    """GenEval's per-class selection: score > threshold, by score descending, first ``max_objects``, NMS."""
    selected: Detections = {}
    for name, dets in raw.items():
        scores = np.asarray([d.score for d in dets], dtype=np.float64)
        order = [i for i in np.argsort(scores, kind="stable")[::-1] if scores[i] > threshold][:max_objects]
        kept: list[Detection] = []
        while order:
            best = order.pop(0)
            kept.append(dets[best])
            if max_overlap != 1:
                order = [i for i in order if box_iou(dets[best].box, dets[i].box) < max_overlap]
        if kept:
            selected[name] = kept
    return selected


def relative_position(box_a: Sequence[float], box_b: Sequence[float], position_threshold: float = 0.1) -> tuple[str, ...]:
    """Relations of box A to box B (xyxy).

    The centre offset A - B is shrunk towards 0 by ``position_threshold * (size_a + size_b)`` per axis
    and divided by the length of the *unshrunk* offset; a component < -0.5 / > 0.5 gives left of /
    right of (x) or above / below (y).  No relation when both shrunk components are below 1e-3.
    """
    a, b = np.asarray(box_a[:4], np.float64), np.asarray(box_b[:4], np.float64)
    offset = (a[:2] + a[2:]) / 2 - (b[:2] + b[2:]) / 2
    size_sum = np.abs(a[2:] - a[:2]) + np.abs(b[2:] - b[:2])
    shrunk = np.maximum(np.abs(offset) - position_threshold * size_sum, 0) * np.sign(offset)
    if np.all(np.abs(shrunk) < 1e-3):
        return ()
    dx, dy = shrunk / np.linalg.norm(offset)
    found = {"left of": dx < -0.5, "right of": dx > 0.5, "above": dy < -0.5, "below": dy > 0.5}
    return tuple(r for r in RELATIONS if found[r])


def evaluate_rules(objects: Mapping[str, Sequence[Detection]], metadata: Mapping[str, Any], *,
                   classify_colors: ColorFn | None = None, position_threshold: float = 0.1,
                   colors: Sequence[str] = COLORS) -> tuple[bool, str]:
    """``(correct, reason)`` of selected detections against one GenEval metadata line."""
    correct = True
    reasons: list[str] = []
    groups: list[list[Detection] | None] = []
    for req in metadata.get("include", []):
        name, count = req["class"], req["count"]
        found = list(objects.get(name, []))[:count]
        matched = len(found) >= count
        if not matched:
            reasons.append(f"expected {name}>={count}, found {len(found)}")
        if matched and "color" in req:
            if classify_colors is None:
                raise ConfigError(f"geneval: prompt {metadata.get('prompt')!r} needs a colour classifier")
            got = classify_colors(name, found)
            n_ok = got.count(req["color"])
            if n_ok < count:
                matched = False
                seen = ", ".join(f"{got.count(c)} {c}" for c in colors if c in got)
                reasons.append(f"expected {req['color']} {name}>={count}, found {n_ok} {req['color']}; and {seen}")
        if matched and "position" in req:
            matched, why = _check_position(name, found, req["position"], groups, position_threshold)
            reasons.extend(why)
        correct = correct and matched
        groups.append(found if matched else None)
    for req in metadata.get("exclude", []):
        n_found = len(objects.get(req["class"], []))
        if n_found >= req["count"]:
            correct = False
            reasons.append(f"expected {req['class']}<{req['count']}, found {n_found}")
    return correct, "\n".join(reasons)


def _check_position(name: str, found: list[Detection], position: Sequence, groups: list, threshold: float):
    relation, group = position
    if not 0 <= group < len(groups):
        raise ConfigError(f"geneval: position target {group} of {name!r} refers to no earlier include clause")
    if groups[group] is None:
        return False, [f"no target for {name} to be {relation}"]
    for obj in found:
        for target in groups[group]:
            rels = relative_position(obj.box, target.box, threshold)
            if relation not in rels:
                return False, [f"expected {name} {relation} target, found {' and '.join(rels)} target"]
    return True, []


def validate_metadata(doc: Mapping[str, Any], what: str) -> dict[str, Any]:
    """The GenEval fields of ``doc`` (tag, include, exclude, prompt), or a :class:`ConfigError` naming the item."""
    if not isinstance(doc.get("tag"), str) or not isinstance(doc.get("include"), list) or not doc["include"]:
        raise ConfigError(f"{what}: GenEval metadata needs 'tag' and a non-empty 'include' list, got keys {sorted(doc)}")
    for req in doc["include"] + list(doc.get("exclude", [])):
        if not isinstance(req, Mapping) or "class" not in req or not isinstance(req.get("count"), int):
            raise ConfigError(f"{what}: bad GenEval clause {req!r} (needs 'class' and integer 'count')")
    return {k: doc[k] for k in ("tag", "include", "exclude", "prompt") if k in doc}


def evaluate_detections(image: np.ndarray, raw: Mapping[str, Sequence[Detection]], metadata: Mapping[str, Any], *,
                        color_classifier=None, threshold: float = 0.3, counting_threshold: float = 0.9,
                        max_objects: int = 16, max_overlap: float = 1.0, position_threshold: float = 0.1,
                        what: str = "image") -> dict[str, Any]:
    """One GenEval record (``tag, prompt, correct, reason, metadata, details``) from raw detections."""
    for dets in raw.values():
        for det in dets:
            check_mask(det.mask, image.shape[:2], what)
    conf = counting_threshold if metadata["tag"] == "counting" else threshold
    objects = select_detections(raw, threshold=conf, max_objects=max_objects, max_overlap=max_overlap)
    classify = None if color_classifier is None else (lambda name, objs: color_classifier.classify(image, objs, name))
    correct, reason = evaluate_rules(objects, metadata, classify_colors=classify, position_threshold=position_threshold)
    details = {name: [[*map(float, d.box[:4]), d.score] for d in dets] for name, dets in objects.items()}
    return {"tag": metadata["tag"], "prompt": metadata.get("prompt", ""), "correct": bool(correct), "reason": reason,
            "metadata": json.dumps(dict(metadata)), "details": json.dumps(details)}


# ---------------------------------------------------------------------------------------------
# The registered metric
# ---------------------------------------------------------------------------------------------
@register_metric("geneval", description="GenEval object/count/colour/position accuracy per tag and overall (macro)",
                 capability="t2i")
class GenEval(Metric):
    """GenEval accuracy.  Input: ``output`` = generated image, ``doc`` = the prompt's metadata line.

    Contributions per image: ``tag``, ``correct``, ``reason``, ``prompt_id`` (``doc["prompt_id"]`` if
    given, else the canonical JSON of the metadata, as GenEval groups by its metadata string) and
    ``details`` (kept boxes).  State: counts per tag and one flag per prompt (bounded by the prompt
    count, not the sample count).  ``compute`` gives each tag's accuracy, ``overall`` (macro mean of the
    tags present), ``prompt_accuracy`` and ``image_accuracy``, all in [0, 1].
    """

    @dataclass(frozen=True)
    class Options:
        threshold: float = 0.3
        counting_threshold: float = 0.9
        max_objects: int = 16
        max_overlap: float = 1.0
        position_threshold: float = 0.1
        #: "mask2former_hf" (transformers; not the official checkpoint) or "mmdet" (official, needs mmdet 2.x)
        detector: str = "mask2former_hf"
        #: manifest id of the detector; None = mask2former_swin_small_coco_instance (hf) or
        #: geneval_mmdet_mask2former_swin_s (mmdet)
        detector_weights: str | None = None
        detector_path: str | None = None
        mmdet_config: str = "geneval_mmdet_mask2former_swin_s_config"
        mmdet_config_path: str | None = None
        #: transformers resize; mmdet's test resize is shortest 800 / longest 1333 (None: checkpoint default)
        detector_size: tuple[int, int] | None = (800, 1333)
        max_per_image: int = 100
        clip_arch: str = "ViT-L-14"
        clip_weights: str = "open_clip-vit-l-14-openai"
        clip_path: str | None = None
        bgcolor: str = "#999"
        crop: bool = True
        device: str | None = None  # None: omnieval.launch.default_device()

        def __post_init__(self):
            if self.detector not in _DEFAULT_DETECTOR_WEIGHTS:
                raise ConfigError(f"metric geneval: detector must be mask2former_hf or mmdet, got {self.detector!r}")
            if self.detector_weights is None:  # record the detector's manifest id in the options
                object.__setattr__(self, "detector_weights", _DEFAULT_DETECTOR_WEIGHTS[self.detector])

    needs: ClassVar[tuple[str, ...]] = ("output", "doc")
    weights: ClassVar[tuple[str, ...]] = ("mask2former_swin_small_coco_instance", "open_clip-vit-l-14-openai")
    detector: Any = None
    color_classifier: Any = None

    def required_weights(self) -> list[str]:
        o = self.options
        det = [o.detector_weights] if o.detector == "mask2former_hf" else [o.mmdet_config, o.detector_weights]
        return det + [o.clip_weights]

    # -- networks (loaded on first use; tests may assign ``detector`` / ``color_classifier``) ----
    def _device(self) -> str:
        from omnieval.launch import resolve_device

        return resolve_device(self.options.device)

    def _detector(self):
        if self.detector is None:
            from omnieval.metrics import geneval_detector as D

            o = self.options
            weights_path = W.resolve(o.detector_weights, o.detector_path)
            if o.detector == "mmdet":
                config_path = W.resolve(o.mmdet_config, o.mmdet_config_path)
                self.detector = D.MMDetDetector(config_path, weights_path, device=self._device(),
                                                detector_id=f"mmdet:{o.detector_weights}")
            else:
                size = None if o.detector_size is None else dict(zip(("shortest_edge", "longest_edge"), o.detector_size))
                self.detector = D.Mask2FormerDetector.from_pretrained(
                    weights_path, max_per_image=o.max_per_image, size=size, device=self._device(),
                    detector_id=f"hf:{o.detector_weights}")
        return self.detector

    def _colors(self):
        if self.color_classifier is None:
            from omnieval.metrics.geneval_color import load_color_classifier

            o = self.options
            self.color_classifier = load_color_classifier(W.resolve(o.clip_weights, o.clip_path), arch=o.clip_arch,
                                                          bgcolor=o.bgcolor, crop=o.crop, device=self._device())
        return self.color_classifier

    # -- Metric protocol ------------------------------------------------------------------------
    def contributions(self, inputs: list[MetricInput]) -> list[dict[str, Any]]:
        out = []
        o = self.options
        for item in inputs:
            metadata = validate_metadata(item.doc or {}, f"geneval item {item.item_id}")
            image = as_uint8_image(item.output, what=f"geneval item {item.item_id}")
            colors = self._colors() if any("color" in req for req in metadata["include"]) else None
            record = evaluate_detections(
                image, self._detector().detect(image), metadata, color_classifier=colors,
                threshold=o.threshold, counting_threshold=o.counting_threshold, max_objects=o.max_objects,
                max_overlap=o.max_overlap, position_threshold=o.position_threshold, what=f"geneval item {item.item_id}")
            prompt_id = item.doc.get("prompt_id")
            record["prompt_id"] = str(prompt_id) if prompt_id is not None else json.dumps(metadata, sort_keys=True)
            out.append({k: record[k] for k in ("tag", "correct", "reason", "prompt_id", "details")})
        return out

    #: tag -> [images, correct images]; prompt -> any image correct
    state = {"tag_counts": dict_sum_state(), "prompt_correct": dict_any_state()}
    cluster_fields: ClassVar[tuple[str, ...]] = ("prompt_id",)

    def fold(self, contribution: dict[str, Any]) -> None:
        tag = contribution["tag"]
        self.tag_counts[tag] = self.tag_counts.get(tag, np.zeros(2, np.int64)) + np.array([1, int(bool(contribution["correct"]))])
        key = contribution["prompt_id"]
        self.prompt_correct[key] = self.prompt_correct.get(key, False) or bool(contribution["correct"])

    def compute(self) -> dict[str, float]:
        if not self.tag_counts:
            return {}
        scores = {tag: float(k / n) for tag, (n, k) in _tag_order(self.tag_counts).items()}
        n_all = int(sum(n for n, _ in self.tag_counts.values()))
        return {**scores, "overall": overall_score(scores),
                "prompt_accuracy": sum(self.prompt_correct.values()) / len(self.prompt_correct),
                "image_accuracy": float(sum(k for _, k in self.tag_counts.values()) / n_all)}


    # -- vectorised form for resampling (omnieval.aggregate.stats; checked against compute) --------
    def additive_state(self) -> dict[str, float]:
        """The state as numbers that add across docs: prompts, prompts with a correct image, per-tag counts."""
        state = {"prompts": float(len(self.prompt_correct)), "prompts_correct": float(sum(self.prompt_correct.values()))}
        for tag, (n, k) in self.tag_counts.items():
            state[f"n:{tag}"], state[f"k:{tag}"] = float(n), float(k)
        return state

    def compute_additive(self, s: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """:meth:`compute` on arrays of summed states (one entry per resample; NaN where a tag is absent)."""
        tags = list(_tag_order({key[2:]: [0, 0] for key in s if key.startswith("n:")}))
        with np.errstate(all="ignore"):
            acc = {t: np.where(s[f"n:{t}"] > 0, s[f"k:{t}"] / s[f"n:{t}"], np.nan) for t in tags}
            overall = np.nanmean(np.array(list(acc.values())), axis=0)
        n_all = sum(s[f"n:{t}"] for t in tags)
        return {**acc, "overall": overall, "prompt_accuracy": s["prompts_correct"] / s["prompts"],
                "image_accuracy": sum(s[f"k:{t}"] for t in tags) / n_all}


def _tag_order(counts: dict[str, list[int]]) -> dict[str, list[int]]:
    """GenEval's six tags first, in the published column order, then any other tag."""
    known = [t for t in GENEVAL_TAGS if t in counts]
    return {t: counts[t] for t in known + sorted(set(counts) - set(known))}
