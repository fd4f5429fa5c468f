"""VBench semantic dimensions: ``object_class``, ``multiple_objects``, ``color``, ``spatial_relationship`` (GRiT),
``scene`` (Tag2Text captions) and ``human_action`` (UMT-L/16 Kinetics-400).

The scoring rules given detections / captions / class probabilities are pure logic, implemented here natively
and identical to VBench 0.1.5 (``vbench/<dimension>.py``):

object_class
    16 'middle' frames; a frame succeeds if the object name is among the frame's detected class names; the
    dimension is successful frames / all frames, pooled over videos.
multiple_objects
    as object_class, with ``"a and b"``: both names must be detected in the frame.
color
    16 frames of GRiT dense captions.  Quirk kept from VBench: each caption is paired with the class of the
    frame's **first** detection (``cap_det[2][0]``).  The object name is the prompt with ``'a '``, ``'an '``
    and the colour removed (plain ``str.replace``, also inside words) and stripped.  A frame *has the object*
    when a caption paired with the object contains any of 12 colour words; it *has the colour* when any caption
    paired with the object contains the target colour (substring tests).  Per video: colour frames / object
    frames; a video without object frames is not scored; the dimension: the mean over scored videos.
spatial_relationship
    per frame, boxes whose description (ObjectDet: the class name) is object_a or object_b (either, any order,
    including a-a pairs; VBench compares the description, not ``det_obj``); every pair
    is scored by :func:`position_score` (left/right: horizontal centre distance must exceed the vertical one;
    top/bottom: the reverse; 1 if IoU < 0.1, else 0.1 / IoU; the direction itself is not checked, as in
    VBench); frame score = max over pairs (0 without a pair); the dimension: the mean over all frames, pooled.
scene
    16 frames captioned by Tag2Text; a frame succeeds if every space-separated word of the scene is a
    **substring** of the caption; successful frames / all frames, pooled.
human_action
    16 frames, UMT-L/16: sigmoid of the 400 logits, top-5 rounded to 4 decimals, kept if >= 0.85; correct if the
    ground-truth label is among the kept class names.  The label is parsed like VBench parses the file name
    (``lower().split('-')[0].split('person is ')[-1].split('_')[0]``), here from the prompt; the dimension:
    the fraction of correct videos.

Frames before the detector: VBench's ``'middle'`` 16 frames; if the short side exceeds 768 it is resized to 720
(bilinear; torchvision for object_class / multiple_objects / spatial_relationship, cv2 for color).

Every network runs natively or on vbench's own code with current numpy / transformers.  A missing weight fails when
the metric is created, with one line naming the file: GRiT runs natively (:mod:`omnieval.metrics.vbench.grit`, same detections as vbench's detectron2
GRiT) and needs the ``vbench_grit`` checkpoint and the ``bert-base-uncased`` vocabulary; Tag2Text runs natively
(:mod:`omnieval.metrics.vbench.tag2text`, same captions as vbench's Tag2Text under transformers 4.33.2) and needs the
``vbench_tag2text`` checkpoint and the ``bert-base-uncased`` vocabulary; UMT needs ``vbench_umt_l16``.  Any of the
metrics accepts ``detector=`` / ``captioner=`` / ``classifier=`` (a callable, see :class:`Detection`) instead of the
network.
"""
from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from omnieval.errors import MediaError, MissingWeightsError, OmniEvalError
from omnieval.media import Video
from omnieval.metrics.base import MetricInput
from omnieval.metrics.vbench.common import (
    Skip,
    VBenchDimensionMetric,
    auxiliary_info,
    default_device,
    import_vbench,
    load_state_dict,
    skip_init,
)
from omnieval.metrics.vbench.consistency import Pooled, PooledDimensionMetric
from omnieval.metrics.vbench.detections import Detection
from omnieval.metrics.vbench.viclip_dims import vbench_middle_indices
from omnieval.registry import register_metric

#: colour words VBench's color dimension looks for (``vbench/color.py``)
COLOR_WORDS = ("white", "red", "pink", "blue", "silver", "purple", "orange", "green", "gray", "yellow", "black", "grey")
ACTION_THRESHOLD = 0.85


Detector = Callable[[np.ndarray], list[Detection]]  # one RGB frame -> detections
Captioner = Callable[[np.ndarray], list[str]]  # T frames -> one caption per frame
Classifier = Callable[[np.ndarray], tuple[list[float], list[str]]]  # 16 frames -> top-5 probabilities, class names


# ---------------------------------------------------------------------------------------------
# Rules (pure logic)
# ---------------------------------------------------------------------------------------------
def frame_labels(frames: Sequence[Sequence[Detection]]) -> list[set[str]]:
    """Detected class names per frame."""
    return [{d.label for d in dets} for dets in frames]


def object_class_hits(labels: Sequence[set[str]], obj: str) -> int:
    """Frames whose detected classes include ``obj``."""
    return sum(obj in frame for frame in labels)


def multiple_objects_hits(labels: Sequence[set[str]], objects: str) -> int:
    """Frames with both objects of ``"a and b"`` detected."""
    a, b = (part.strip() for part in objects.split(" and "))
    return sum(a in frame and b in frame for frame in labels)


def color_object(prompt: str, color: str) -> str:
    """VBench's object name for the color dimension: ``'a '``, ``'an '`` and the colour removed, stripped."""
    return prompt.replace("a ", "").replace("an ", "").replace(color, "").strip()


def color_counts(frames: Sequence[Sequence[Detection]], color: str, obj: str) -> tuple[int, int]:
    """``(frames with the object in some colour, frames with the object in ``color``)``."""
    with_object = with_color = 0
    for dets in frames:
        label = dets[0].label if dets else ""
        paired = [d.caption for d in dets] if label == obj else []
        with_object += any(word in caption for caption in paired for word in COLOR_WORDS)
        with_color += any(color in caption for caption in paired)
    return with_object, with_color


def position_score(relation: str, box1: Sequence[float], box2: Sequence[float], iou_threshold: float = 0.1) -> float:
    """VBench's pairwise score: the dominant axis must match the relation; 1 if IoU < threshold else threshold/IoU.

    A degenerate pair (union 0) has IoU 0 here (VBench would divide by zero)."""
    (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = box1, box2
    dx = (bx0 + bx1) / 2 - (ax0 + ax1) / 2
    dy = (by0 + by1) / 2 - (ay0 + ay1) / 2
    inter = max(0, min(ax1, bx1) - max(ax0, bx0)) * max(0, min(ay1, by1) - max(ay0, by0))
    union = (ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter
    iou = inter / union if union else 0.0
    if relation in "on the right of" or relation in "on the left of":
        dominant = abs(dx) > abs(dy)
    elif relation in "on the bottom of" or relation in "on the top of":
        dominant = abs(dy) > abs(dx)
    else:
        return 0.0
    if not dominant:
        return 0.0
    return 1.0 if iou < iou_threshold else iou_threshold / iou


def spatial_frame_scores(frames: Sequence[Sequence[Detection]], info: dict, iou_threshold: float = 0.1) -> list[float]:
    """Per frame: max of :func:`position_score` over pairs of boxes whose description is object_a or object_b (0
    without a pair)."""
    a, b, relation = info["object_a"], info["object_b"], info["relationship"]
    scores = []
    for dets in frames:
        boxes = [d.box for d in dets if d.caption in (a, b)]  # vbench matches the description (ObjectDet: the class)
        pairs = [position_score(relation, boxes[i], boxes[j], iou_threshold) for i in range(len(boxes)) for j in range(i + 1, len(boxes))]
        scores.append(max([0.0, *pairs]))
    return scores


def scene_hits(captions: Sequence[str], scene: str) -> int:
    """Captions containing every space-separated word of ``scene`` (substring test)."""
    words = scene.split(" ")
    return sum(all(w in caption for w in words) for caption in captions)


def action_label(prompt: str) -> str:
    """The Kinetics label VBench parses from ``'A person is <action>'`` (its file-name rule, on the prompt)."""
    return prompt.lower().split("-")[0].split("person is ")[-1].split("_")[0]


def action_correct(top_probs: Sequence[float], top_names: Sequence[str], label: str, threshold: float = ACTION_THRESHOLD) -> bool:
    """VBench's rule: top-5 sigmoid probabilities rounded to 4 decimals, kept if >= threshold; label among them."""
    return any(round(float(p), 4) >= threshold and name == label for p, name in zip(top_probs, top_names))


# ---------------------------------------------------------------------------------------------
# Frames as VBench feeds them to the networks
# ---------------------------------------------------------------------------------------------
def detector_frames(frames: np.ndarray, *, num_frames: int = 16, resize: str = "torchvision") -> np.ndarray:
    """16 'middle' frames; short side > 768 -> scaled to 720 (``resize``: ``'torchvision'`` bilinear on float
    frames, as object_class / multiple_objects / spatial_relationship; ``'cv2'`` INTER_LINEAR on uint8, as color)."""
    picked = frames[vbench_middle_indices(num_frames, len(frames))]
    t, h, w, _ = picked.shape
    if min(h, w) <= 768:
        return picked if resize == "cv2" else picked.astype(np.float32)
    scale = 720.0 / min(h, w)
    size = (int(scale * h), int(scale * w))
    if resize == "cv2":
        import cv2

        return np.stack([cv2.resize(f, (size[1], size[0]), interpolation=cv2.INTER_LINEAR) for f in picked])
    import torch
    import torchvision.transforms.functional as TF

    x = TF.resize(torch.from_numpy(picked).float().permute(0, 3, 1, 2), list(size))
    return x.permute(0, 2, 3, 1).numpy()


def umt_clip(frames: np.ndarray, *, num_frames: int = 16):
    """UMT input ``1 x 3 x 16 x 224 x 224``: cv2 bilinear short side -> 256, center crop 224 (Python ``round``),
    ``/255``, ImageNet mean/std (vbench human_action's ``data_transform``)."""
    import cv2
    import torch

    picked = frames[vbench_middle_indices(num_frames, len(frames))]
    h, w = picked.shape[1:3]
    if min(h, w) != 256:
        oh, ow = (int(256 * h / w), 256) if w < h else (256, int(256 * w / h))
        picked = np.stack([cv2.resize(f, (ow, oh), interpolation=cv2.INTER_LINEAR) for f in picked])
    h, w = picked.shape[1:3]
    if h < 224 or w < 224:
        raise MediaError(f"human_action: frames of {h}x{w} are smaller than the 224 crop")
    y, x = int(round((h - 224) / 2.0)), int(round((w - 224) / 2.0))
    clip = torch.from_numpy(picked[:, y : y + 224, x : x + 224].astype(np.float64) / 255.0).permute(3, 0, 1, 2).float()
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None, None]
    return ((clip - mean) / std).unsqueeze(0)


def scene_frames(video: Video, num_frames: int = 16, size: int = 384) -> np.ndarray:
    """Tag2Text's frames as VBench's scene reads them: ``load_video(num_frames=16, width=384, height=384)``, i.e.
    decord scaling each 'middle' frame to ``size x size`` *while decoding* (FFmpeg's scaler on the decoded
    picture).  When the video came from a file (``video.path``) and decord is installed, the file is decoded that
    way, giving VBench's exact pixels; otherwise the decoded frames are returned and the captioner resizes them with
    PIL bilinear (at most 1 grey level from decord's scaler; a caption can then differ)."""
    if video.path and importlib.util.find_spec("decord") is not None:
        import decord

        decord.bridge.set_bridge("native")
        try:
            reader = decord.VideoReader(video.path, width=size, height=size, num_threads=1)
        except (RuntimeError, decord.DECORDError):
            reader = None
        if reader is not None and len(reader) == len(video):
            return reader.get_batch(list(vbench_middle_indices(num_frames, len(reader)))).asnumpy()
    return video.sample(vbench_middle_indices(num_frames, len(video)))


# ---------------------------------------------------------------------------------------------
# Networks
# ---------------------------------------------------------------------------------------------
def _require_package(package: str, metric: str, why: str) -> None:
    if importlib.util.find_spec(package) is None:
        raise OmniEvalError(f"{metric} needs the `{package}` package ({why}), which is not installed")


def grit_detector(path: str | os.PathLike, task: str, device: str = "cpu", *, vocab: str | os.PathLike | None = None) -> Detector:
    """GRiT-B (``DenseCap`` for color, ``ObjectDet`` otherwise) as a :data:`Detector`: omnieval's native port
    (:class:`omnieval.metrics.vbench.grit.GRiT`, no detectron2) with vbench's GRiT detections (boxes, descriptions,
    ``det_obj`` labels) on the same frame and weight file.  The checkpoint (``grit_b_densecap_objectdet.pth``) is
    loaded without executing code; ``vocab``: the bert-base-uncased vocabulary directory (else the manifest entry)."""
    from omnieval.metrics.vbench.grit import GRiT, GRiTConfig
    from omnieval.metrics.weights import resolve

    model = GRiT.from_checkpoint(path, resolve("bert-base-uncased", vocab), config=GRiTConfig.vbench(task), device=device)
    return model.detect


#: vbench human_action's model arguments (timm's create_model drops None-valued ones, so none are passed here)
UMT_KWARGS = dict(num_classes=400, all_frames=16, tubelet_size=1, use_learnable_pos_emb=False, fc_drop_rate=0.0,
                  drop_rate=0.0, drop_path_rate=0.2, attn_drop_rate=0.0, use_checkpoint=False, checkpoint_num=16,
                  use_mean_pooling=True, init_scale=0.001)


def load_umt(path: str | os.PathLike, device: str = "cpu"):
    """vbench's UMT-L/16 (Kinetics-400 head, vbench's ``create_model`` arguments) with the weights of ``path``.

    Its attention layers compute ``softmax(q k^T * scale) v`` with torch's fused ``scaled_dot_product_attention``
    instead of materialising the 16 x 196 = 3136-token attention matrix (:func:`fused_umt_attention`): the same
    projections and the same function, 2-3x faster on a CPU; logits agree to ~3e-6, sigmoid probabilities to ~2e-7."""
    finetune = import_vbench("vbench.third_party.umt.models.modeling_finetune")
    state = load_state_dict(path)
    with skip_init((finetune, "trunc_normal_")):  # a weight the checkpoint lacks is an error below
        model = finetune.vit_large_patch16_224(pretrained=False, **UMT_KWARGS)
    # vbench loads with strict=False; a checkpoint that leaves weights random must not pass silently
    missing = model.load_state_dict(state, strict=False).missing_keys
    if missing:
        raise MissingWeightsError(f"{path}: not a UMT-L/16 Kinetics-400 checkpoint ({len(missing)} weights missing, "
                                  f"e.g. {missing[0]})")
    fused = fused_umt_attention(finetune.Attention)
    for module in model.modules():
        if type(module) is finetune.Attention:
            module.__class__ = fused
    return model.eval().to(device)


@functools.cache
def fused_umt_attention(attention: type) -> type:
    """A subclass of vbench UMT's ``Attention`` whose forward is the original's (qkv projection with the q/v biases,
    ``q * scale``, softmax over keys, weighted sum of values, output projection) with the middle three steps done by
    ``torch.nn.functional.scaled_dot_product_attention`` (no dropout: eval only)."""
    import torch
    import torch.nn.functional as F

    class FusedAttention(attention):
        def forward(self, x):
            b, n, _ = x.shape
            bias = None
            if self.q_bias is not None:
                bias = torch.cat((self.q_bias, torch.zeros_like(self.v_bias), self.v_bias))
            qkv = F.linear(x, self.qkv.weight, bias).reshape(b, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
            out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], scale=self.scale)
            return self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, n, -1)))

    FusedAttention.__name__ = FusedAttention.__qualname__ = f"Fused{attention.__name__}"
    return FusedAttention


def umt_classifier(path: str | os.PathLike, device: str = "cpu") -> Classifier:
    """vbench's UMT-L/16 (Kinetics-400 head) as a :data:`Classifier` returning the top-5 sigmoid probabilities."""
    import torch

    model = load_umt(path, device)
    names = kinetics_400_names()

    def classify(frames: np.ndarray) -> tuple[list[float], list[str]]:
        with torch.no_grad():
            probs, idx = torch.topk(torch.sigmoid(model(umt_clip(frames).to(device))), 5, dim=1)
        return probs[0].tolist(), [names[i] for i in idx[0].tolist()]

    return classify


def kinetics_400_names() -> list[str]:
    """Kinetics-400 class names (lower case) by index, from vbench's ``kinetics_400_categories.txt``."""
    from pathlib import Path

    root = Path(import_vbench("vbench").__file__).parent
    names: dict[int, str] = {}
    for line in (root / "third_party" / "umt" / "kinetics_400_categories.txt").read_text().splitlines():
        if line.strip():
            name, number = line.strip().split("\t")
            names[int(number)] = name.lower()
    return [names[i] for i in range(len(names))]


def tag2text_captioner(path: str | os.PathLike, device: str = "cpu", *, vocab: str | os.PathLike | None = None,
                       vbench_beam_quirk: bool = True) -> Captioner:
    """Tag2Text Swin-B (384) as a :data:`Captioner`, natively (:class:`~omnieval.metrics.vbench.tag2text.Tag2TextCaptioner`):
    the same captions as vbench 0.1.5's Tag2Text under transformers 4.33.2, including its beam-expansion quirk
    (caption ``i`` conditioned on frame ``i // 3``) unless ``vbench_beam_quirk=False``.  Weights: ``path``
    (``tag2text_swin_14m.pth``, loaded without executing code) and the ``bert-base-uncased`` vocabulary
    (``vocab``, else the manifest entry).  Frames not already 384x384 (see :func:`scene_frames`) are resized with
    PIL bilinear (VBench's ``tag2text_transform``); all frames of a video are captioned as one batch, as VBench
    does."""
    from omnieval.metrics.vbench.tag2text import Tag2TextCaptioner, Tag2TextConfig
    from omnieval.metrics.weights import resolve

    config = Tag2TextConfig(vbench_beam_quirk=vbench_beam_quirk)
    model = Tag2TextCaptioner.from_checkpoint(path, resolve("bert-base-uncased", vocab), config, device=device)
    return model.caption_frames


# ---------------------------------------------------------------------------------------------
# Registered metrics
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GRiTOptions:
    """``weight_id``/``ckpt_path``: GRiT-B densecap+objectdet; ``vocab_path``: BERT vocabulary directory (default:
    the ``bert-base-uncased`` manifest entry); ``num_frames``: 'middle' frames per video; ``iou_threshold``:
    spatial_relationship's overlap threshold."""

    weight_id: str = "vbench_grit"
    ckpt_path: str | None = None
    vocab_path: str | None = None
    num_frames: int = 16
    iou_threshold: float = 0.1


class _NetworkMixin:
    """Resolve the network at construction (start-up failure), or take an injected callable."""

    network_kw: ClassVar[str] = "detector"
    package: ClassVar[tuple[str, str] | None] = None  # (package, why)

    def _init_network(self, network: Callable | None) -> None:
        self._network = network
        if network is None:
            if self.package is not None:
                _require_package(self.package[0], f"vbench_{self.dimension}", self.package[1])
            from omnieval.metrics.weights import resolve

            resolve(self.options.weight_id, self.options.ckpt_path)

    def network(self) -> Callable:
        if self._network is None:
            from omnieval.metrics.weights import resolve

            path = resolve(self.options.weight_id, self.options.ckpt_path)
            self._network = self.cached(self.network_kw, lambda: self.build(path), share=self.network_key(path))
        return self._network

    def network_key(self, path) -> tuple:
        """What makes the network (see :func:`~omnieval.metrics.vbench.common.shared_network`): the builder, the
        weight file, the options and the device; metrics with equal keys share one network."""
        from pathlib import Path

        builder = type(self).build
        return (f"{builder.__module__}.{builder.__qualname__}", str(Path(path).resolve()), repr(self.options), default_device())

    def required_weights(self) -> list[str]:
        return [] if self._network is not None or self.options.ckpt_path else [self.options.weight_id]


class _WithBertVocab(_NetworkMixin):
    """A network whose text side tokenizes with the BERT uncased vocabulary (``vocab_path`` option, else the
    ``bert-base-uncased`` manifest entry): required, and resolved at creation, next to the checkpoint."""

    def _init_network(self, network: Callable | None) -> None:
        super()._init_network(network)
        if network is None:
            from omnieval.metrics.weights import resolve

            resolve("bert-base-uncased", self.options.vocab_path)  # fail at creation, not at the first video

    def required_weights(self) -> list[str]:
        if self._network is not None:
            return []
        return super().required_weights() + ([] if self.options.vocab_path else ["bert-base-uncased"])


class _GRiTNetwork(_WithBertVocab):
    """GRiT on VBench's detector frames; combined with the metric class that pools the dimension's way."""

    Options = GRiTOptions
    weights: ClassVar[tuple[str, ...]] = ("vbench_grit", "bert-base-uncased")
    needs: ClassVar[tuple[str, ...]] = ("output", "doc")
    grit_task: ClassVar[str] = "ObjectDet"
    resize: ClassVar[str] = "torchvision"

    def __init__(self, detector: Detector | None = None, **options: Any):
        super().__init__(**options)
        self._init_network(detector)

    def build(self, path) -> Detector:
        return grit_detector(path, self.grit_task, default_device(), vocab=self.options.vocab_path)

    def network_key(self, path) -> tuple:
        return super().network_key(path) + (self.grit_task,)  # object_class, multiple_objects, spatial_relationship share one

    def detections(self, video: Video) -> list[list[Detection]]:
        frames = detector_frames(video.frames, num_frames=self.options.num_frames, resize=self.resize)
        detect = self.network()
        return [list(detect(frame)) for frame in frames]


@register_metric("vbench_object_class", description="VBench object class: GRiT detects the prompt's object, frame success rate",
                 capability=("t2v", "long_video"))
class ObjectClass(_GRiTNetwork, PooledDimensionMetric):
    dimension = "object_class"

    def score_video(self, video: Video, item: MetricInput) -> Pooled:
        labels = frame_labels(self.detections(video))
        hits = object_class_hits(labels, auxiliary_info(item, self.dimension)["object"])
        return Pooled(hits, len(labels), hits / len(labels))


@register_metric("vbench_multiple_objects", description="VBench multiple objects: GRiT detects both objects, frame success rate",
                 capability=("t2v", "long_video"))
class MultipleObjects(_GRiTNetwork, PooledDimensionMetric):
    dimension = "multiple_objects"

    def score_video(self, video: Video, item: MetricInput) -> Pooled:
        labels = frame_labels(self.detections(video))
        hits = multiple_objects_hits(labels, auxiliary_info(item, self.dimension)["object"])
        return Pooled(hits, len(labels), hits / len(labels))


@register_metric("vbench_spatial_relationship",
                 description="VBench spatial relationship: GRiT boxes, left/right/top/bottom rule with IoU 0.1, mean over frames",
                 capability=("t2v", "long_video"))
class SpatialRelationship(_GRiTNetwork, PooledDimensionMetric):
    dimension = "spatial_relationship"

    def score_video(self, video: Video, item: MetricInput) -> Pooled:
        info = auxiliary_info(item, self.dimension)["spatial_relationship"]
        scores = spatial_frame_scores(self.detections(video), info, self.options.iou_threshold)
        return Pooled(sum(scores), len(scores), float(np.mean(scores)))


@register_metric("vbench_color", description="VBench color: GRiT dense captions name the target colour, per-video rate over frames with the object",
                 capability=("t2v", "long_video"))
class Color(_GRiTNetwork, VBenchDimensionMetric):
    """Per-video rates averaged over scored videos (not pooled over frames)."""

    dimension = "color"
    grit_task = "DenseCap"
    resize = "cv2"
    needs: ClassVar[tuple[str, ...]] = ("output", "prompt", "doc")

    def score_video(self, video: Video, item: MetricInput) -> float | Skip:
        color = auxiliary_info(item, self.dimension)["color"]
        with_object, with_color = color_counts(self.detections(video), color, color_object(item.prompt or "", color))
        if with_object == 0:
            return Skip("object not detected with any colour")
        return with_color / with_object


@dataclass(frozen=True)
class SceneOptions:
    """``weight_id``/``ckpt_path``: Tag2Text Swin-B 14M; ``vocab_path``: BERT vocabulary directory (default: the
    ``bert-base-uncased`` manifest entry); ``num_frames``: 'middle' frames per video; ``vbench_beam_quirk``: keep
    VBench's caption-i-from-frame-i//3 conditioning (see :mod:`omnieval.metrics.vbench.tag2text.model`)."""

    weight_id: str = "vbench_tag2text"
    ckpt_path: str | None = None
    vocab_path: str | None = None
    num_frames: int = 16
    vbench_beam_quirk: bool = True


@register_metric("vbench_scene", description="VBench scene: Tag2Text frame captions contain every word of the scene, frame success rate",
                 capability=("t2v", "long_video"))
class Scene(_WithBertVocab, PooledDimensionMetric):
    dimension = "scene"
    Options = SceneOptions
    weights: ClassVar[tuple[str, ...]] = ("vbench_tag2text", "bert-base-uncased")
    needs: ClassVar[tuple[str, ...]] = ("output", "doc")
    network_kw = "captioner"

    def __init__(self, captioner: Captioner | None = None, **options: Any):
        super().__init__(**options)
        self._init_network(captioner)

    def build(self, path) -> Captioner:
        return tag2text_captioner(path, default_device(), vocab=self.options.vocab_path,
                                  vbench_beam_quirk=self.options.vbench_beam_quirk)

    def score_video(self, video: Video, item: MetricInput) -> Pooled:
        captions = self.network()(scene_frames(video, self.options.num_frames))
        hits = scene_hits(captions, auxiliary_info(item, self.dimension)["scene"]["scene"])
        return Pooled(hits, len(captions), hits / len(captions))


@dataclass(frozen=True)
class HumanActionOptions:
    """``weight_id``: UMT-L/16 Kinetics-400; ``threshold``: minimum top-5 probability."""

    weight_id: str = "vbench_umt_l16"
    ckpt_path: str | None = None
    threshold: float = ACTION_THRESHOLD


@register_metric("vbench_human_action", description="VBench human action: UMT-L/16 Kinetics-400 top-5 (p >= 0.85) contains the prompt's action",
                 capability=("t2v", "long_video"))
class HumanAction(_NetworkMixin, VBenchDimensionMetric):
    dimension = "human_action"
    Options = HumanActionOptions
    weights: ClassVar[tuple[str, ...]] = ("vbench_umt_l16",)
    needs: ClassVar[tuple[str, ...]] = ("output", "prompt")
    network_kw = "classifier"

    def __init__(self, classifier: Classifier | None = None, **options: Any):
        super().__init__(**options)
        self._init_network(classifier)

    def build(self, path) -> Classifier:
        return umt_classifier(path, default_device())

    def score_video(self, video: Video, item: MetricInput) -> float:
        if not item.prompt:
            raise MediaError(f"item {item.item_id}: human_action needs the prompt (it names the action)")
        probs, names = self.network()(video.frames)
        return float(action_correct(probs, names, action_label(item.prompt), self.options.threshold))
