"""CLIP-based metrics: CLIPScore, CLIP-T, CLIP-I, CLIP direction, frame consistency.

Features come from a :mod:`~omnieval.metrics.clip_backbones` backbone (L2-normalised; preprocessing stated
there).  Images are uint8 ``H x W x 3``; videos are :class:`~omnieval.media.Video` (or ``T x H x W x 3``
arrays) whose frames are chosen by ``frames`` / ``num_frames`` (:func:`omnieval.media.sample_frame_indices`,
default: all frames).  Conventions, with their sources:

* ``clip_score`` (torchmetrics ``CLIPScore``): per image ``100 * cos(image, text)``; the result is
  ``max(mean, 0)`` -- the clamp is applied to the **mean**, not per pair.  A video contributes the mean over
  its frames.
* ``clip_t`` (LOVEU-TGVE CLIP-T / V2VBench ``clip_text_alignment``): per video, the mean over frames of
  ``logit_scale * cos(frame, text)`` (``logits_per_image``; ``scale`` overrides ``logit_scale``), no clamp.
* ``clip_i``: ``cos(output, reference)`` (MagicBrush CLIP-I); frames are paired by index, or a reference
  image is compared with every frame.
* ``clip_direction`` (InstructPix2Pix / Emu Edit CLIPdir): ``cos(E_I(edit) - E_I(source),
  E_T(target caption) - E_T(source caption))`` with all four features L2-normalised first.
* ``frame_consistency``: ``all_pairs`` (LOVEU-TGVE) = mean cosine of projected image features over all
  ordered pairs ``i != j`` (``sum(F F^T) - n`` over ``n(n-1)``); ``consecutive`` (V2VBench
  ``clip_consistency``) = mean over ``t`` of ``max(0, cos(f_t, f_{t-1}))`` with ``f`` the vision tower's
  ``pooler_output`` **before** the projection.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from omnieval.errors import ConfigError, MediaError
from omnieval.media import Video, frame_count, sample_frame_indices, sample_frames
from omnieval.metrics.base import MeanMetric, MetricInput
from omnieval.metrics.clip_backbones import ClipBackbone, backbone_weights, load_backbone
from omnieval.metrics.paired import PairedSizes, with_sizes
from omnieval.registry import register_metric

if TYPE_CHECKING:
    import torch

#: torchmetrics ``CLIPScore``'s default model
DEFAULT_BACKBONE = "openai/clip-vit-large-patch14"
FRAME_CONSISTENCY_VARIANTS = ("all_pairs", "consecutive")


# ---------------------------------------------------------------------------------------------
# Helpers: media -> frames -> features
# ---------------------------------------------------------------------------------------------
def media_frames(media: Any, frames: str = "all", num_frames: int | None = None, what: str = "media") -> np.ndarray:
    """The selected frames of an image (one frame), a :class:`Video` or a ``T x H x W x 3`` array."""
    if media is None:
        raise MediaError(f"{what}: missing")
    if isinstance(media, np.ndarray) and media.ndim == 4:
        media = Video(media)
    try:  # a file-backed video decodes only the selected frames
        return sample_frames(media, sample_frame_indices(frame_count(media), num_frames, frames))  # type: ignore[arg-type]
    except MediaError as exc:
        raise MediaError(f"{what}: {exc}") from exc


def encode_groups(backbone: ClipBackbone, groups: Sequence[np.ndarray], projected: bool = True) -> list["torch.Tensor"]:
    """Features of several frame stacks in one batched pass, split back per stack."""
    if len({g.shape[1:] for g in groups}) == 1:
        flat: np.ndarray | list[np.ndarray] = np.concatenate(groups)  # one validated array, no per-frame checks
    else:
        flat = [frame for group in groups for frame in group]
    feats = backbone.encode_images(flat, projected=projected)
    return list(feats.split([len(g) for g in groups]))


def encode_unique_texts(backbone: ClipBackbone, texts: Sequence[str]) -> list["torch.Tensor"]:
    """Features of ``texts``, each distinct string encoded once."""
    unique = list(dict.fromkeys(texts))
    feats = backbone.encode_texts(unique)
    index = {t: i for i, t in enumerate(unique)}
    return [feats[index[t]] for t in texts]


def check_choice(owner: str, name: str, value: Any, choices: Sequence[Any]) -> None:
    """Raise a :class:`ConfigError` unless option ``name`` of ``owner`` is one of ``choices``."""
    if value not in choices:
        raise ConfigError(f"{owner}: {name} must be one of {', '.join(map(repr, choices))}, got {value!r}")


def _check_same_length(*seqs: Sequence, names: str) -> None:
    if len({len(s) for s in seqs}) != 1:
        raise MediaError(f"{names}: expected the same number of items, got {[len(s) for s in seqs]}")


def _items(media: Any) -> list:
    """A batch of media: a 4-D uint8 array of images, or a list of images/videos."""
    if isinstance(media, np.ndarray) and media.ndim == 3:
        return [media]
    return list(media)


# ---------------------------------------------------------------------------------------------
# Per-item scores (shared by the functional forms and the metrics)
# ---------------------------------------------------------------------------------------------
def text_similarities(backbone: ClipBackbone, groups: Sequence[np.ndarray], texts: Sequence[str], scale: float) -> list[float]:
    """Per item: mean over its frames of ``scale * cos(frame, text)``."""
    _check_same_length(groups, texts, names="media and texts")
    image_feats = encode_groups(backbone, groups)
    text_feats = encode_unique_texts(backbone, texts)
    return [float(scale * (f @ t).mean()) for f, t in zip(image_feats, text_feats)]


def image_similarities(backbone: ClipBackbone, groups_a: Sequence[np.ndarray], groups_b: Sequence[np.ndarray]) -> list[float]:
    """Per item: mean cosine of frames paired by index (a one-frame side is compared with every frame)."""
    _check_same_length(groups_a, groups_b, names="outputs and references")
    feats = encode_groups(backbone, list(groups_a) + list(groups_b))
    n = len(groups_a)
    out = []
    for i, (fa, fb) in enumerate(zip(feats[:n], feats[n:])):
        if len(fa) != len(fb) and 1 not in (len(fa), len(fb)):
            raise MediaError(f"item {i}: cannot pair {len(fa)} frames with {len(fb)} reference frames")
        out.append(float((fa * fb).sum(-1).mean()))
    return out


def direction_similarities(
    backbone: ClipBackbone,
    sources: Sequence[np.ndarray],
    edits: Sequence[np.ndarray],
    source_texts: Sequence[str],
    target_texts: Sequence[str],
) -> list[float]:
    """Per item: ``cos(E_I(edit) - E_I(source), E_T(target) - E_T(source))`` (normalised features), frame-paired."""
    import torch

    _check_same_length(sources, edits, source_texts, target_texts, names="sources, edits and captions")
    feats = encode_groups(backbone, list(sources) + list(edits))
    texts = encode_unique_texts(backbone, list(source_texts) + list(target_texts))
    n = len(sources)
    out = []
    for i in range(n):
        d_img = feats[n + i] - feats[i]
        d_txt = (texts[n + i] - texts[i])[None]
        if len(feats[n + i]) != len(feats[i]) and 1 not in (len(feats[i]), len(feats[n + i])):
            raise MediaError(f"item {i}: cannot pair {len(feats[i])} source frames with {len(feats[n + i])} edited frames")
        out.append(float(torch.nn.functional.cosine_similarity(d_img, d_txt, dim=-1).mean()))
    return out


def consistency_scores(backbone: ClipBackbone, groups: Sequence[np.ndarray], variant: str = "all_pairs") -> list[float]:
    """Per video: ``all_pairs`` (LOVEU-TGVE) or ``consecutive`` (V2VBench) frame consistency (module docstring)."""
    check_choice("frame consistency", "variant", variant, FRAME_CONSISTENCY_VARIANTS)
    for i, g in enumerate(groups):
        if len(g) < 2:
            raise MediaError(f"item {i}: frame consistency needs at least 2 frames, got {len(g)}")
    feats = encode_groups(backbone, groups, projected=variant == "all_pairs")
    return [_all_pairs(f) if variant == "all_pairs" else _consecutive(f) for f in feats]


def _all_pairs(f: "torch.Tensor") -> float:
    n = len(f)
    sim = f @ f.T
    return float((sim.sum() - sim.diagonal().sum()) / (n * (n - 1)))


def _consecutive(f: "torch.Tensor") -> float:
    return float((f[1:] * f[:-1]).sum(-1).clamp(min=0).mean())


# ---------------------------------------------------------------------------------------------
# Functional forms (arrays in, floats out)
# ---------------------------------------------------------------------------------------------
def clip_score(images, texts: Sequence[str], model: "str | ClipBackbone" = DEFAULT_BACKBONE, *, path: str | None = None,
               scale: float = 100.0, clamp: bool = True) -> float:
    """torchmetrics CLIPScore: ``max(mean_i scale * cos(E_I(image_i), E_T(text_i)), 0)``.

    ``images``: uint8 ``N x H x W x 3`` (or a list of images / videos; a video counts as the mean over its
    frames).  ``model``: a backbone id or :class:`ClipBackbone`; ``path`` overrides the weight location.
    """
    backbone = load_backbone(model, path)
    groups = [media_frames(m, what=f"image {i}") for i, m in enumerate(_items(images))]
    mean = float(np.mean(text_similarities(backbone, groups, list(texts), scale)))
    return max(mean, 0.0) if clamp else mean


def clip_t(videos, texts: Sequence[str], model: "str | ClipBackbone" = DEFAULT_BACKBONE, *, path: str | None = None,
           scale: float | None = None, frames: str = "all", num_frames: int | None = None) -> float:
    """Mean over videos of the mean over frames of ``logit_scale * cos(frame, text)`` (LOVEU CLIP-T); no clamp."""
    backbone = load_backbone(model, path)
    groups = [media_frames(v, frames, num_frames, what=f"video {i}") for i, v in enumerate(_items(videos))]
    factor = backbone.logit_scale if scale is None else scale
    return float(np.mean(text_similarities(backbone, groups, list(texts), factor)))


def clip_i(images, references, model: "str | ClipBackbone" = DEFAULT_BACKBONE, *, path: str | None = None,
           frames: str = "all", num_frames: int | None = None) -> float:
    """Mean image-image cosine (MagicBrush CLIP-I), frames paired by index."""
    backbone = load_backbone(model, path)
    a = [media_frames(m, frames, num_frames, what=f"output {i}") for i, m in enumerate(_items(images))]
    b = [media_frames(m, frames, num_frames, what=f"reference {i}") for i, m in enumerate(_items(references))]
    return float(np.mean(image_similarities(backbone, a, b)))


def clip_direction(sources, edits, source_texts: Sequence[str], target_texts: Sequence[str],
                   model: "str | ClipBackbone" = DEFAULT_BACKBONE, *, path: str | None = None) -> float:
    """Mean CLIP direction similarity (InstructPix2Pix / Emu Edit CLIPdir), see the module docstring."""
    backbone = load_backbone(model, path)
    src = [media_frames(m, what=f"source {i}") for i, m in enumerate(_items(sources))]
    out = [media_frames(m, what=f"edit {i}") for i, m in enumerate(_items(edits))]
    return float(np.mean(direction_similarities(backbone, src, out, list(source_texts), list(target_texts))))


def frame_consistency(videos, model: "str | ClipBackbone" = DEFAULT_BACKBONE, *, variant: str = "all_pairs",
                      path: str | None = None, frames: str = "all", num_frames: int | None = None) -> float:
    """Mean over videos of the ``all_pairs`` or ``consecutive`` CLIP frame consistency."""
    backbone = load_backbone(model, path)
    groups = [media_frames(v, frames, num_frames, what=f"video {i}") for i, v in enumerate(_items(videos))]
    return float(np.mean(consistency_scores(backbone, groups, variant)))


# ---------------------------------------------------------------------------------------------
# Stateful metrics
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClipOptions:
    """``backbone``: id (:data:`~omnieval.metrics.clip_backbones.BACKBONES`); ``backbone_path``: local weights
    overriding the manifest; ``frames``/``num_frames``: frame sampling of videos (default all frames)."""

    backbone: str = DEFAULT_BACKBONE
    backbone_path: str | None = None
    device: str | None = None
    frames: str = "all"
    num_frames: int | None = None
    #: ``default`` (the checkpoint's processor; transformers 5: torchvision backend) or ``pil`` (PIL backend = the
    #: transformers 4.x processor the LOVEU-TGVE / V2VBench / FiVE scripts used)
    preprocess: str = "default"
    #: ``[width, height]``: every frame is first resized to this size with PIL bicubic, ignoring its aspect
    #: (LOVEU-TGVE's ``run_eval.py`` does ``frame.resize((480, 480))`` before the processor); None: no resize
    pre_resize: tuple[int, ...] | None = None

    def __post_init__(self):
        check_choice("CLIP metric", "preprocess", self.preprocess, ("default", "pil"))
        if self.pre_resize is not None and (len(self.pre_resize) != 2 or min(self.pre_resize) < 1):
            raise ConfigError(f"CLIP metric: pre_resize must be [width, height], got {list(self.pre_resize)}")


class ClipMetric(MeanMetric):
    """Base of the CLIP metrics: lazy backbone, weights declaration, frame selection."""

    Options: ClassVar[type] = ClipOptions
    #: the score name reported by :meth:`compute`
    key: ClassVar[str] = "score"

    def required_weights(self) -> list[str]:
        """Manifest ids of the chosen backbone (none with ``backbone_path`` or the built-in tiny model)."""
        if self.options.backbone_path:
            return []
        return backbone_weights(self.options.backbone)

    @property
    def backbone(self) -> ClipBackbone:
        return load_backbone(self.options.backbone, self.options.backbone_path, self.options.device, self.options.preprocess)

    def frames_of(self, item: MetricInput, field: str = "output") -> np.ndarray:
        what = f"item {item.item_id} {field}"
        frames = media_frames(getattr(item, field), self.options.frames, self.options.num_frames, what=what)
        if self.options.pre_resize is None:
            return frames
        from PIL import Image

        size = tuple(self.options.pre_resize)
        return np.stack([np.asarray(Image.fromarray(f).resize(size, Image.BICUBIC)) for f in frames])

    def prompts(self, inputs: list[MetricInput]) -> list[str]:
        for item in inputs:
            if not isinstance(item.prompt, str):
                raise MediaError(f"item {item.item_id}: {type(self).__name__} needs a text prompt")
        return [item.prompt for item in inputs]  # type: ignore[misc]

    def wrap(self, values: list[float]) -> list[dict[str, Any]]:
        return [{self.key: v} for v in values]


@dataclass(frozen=True)
class ClipScoreOptions(ClipOptions):
    """``scale``: factor on the cosine (100); ``clamp``: report ``max(mean, 0)`` (torchmetrics)."""

    scale: float = 100.0
    clamp: bool = True


@register_metric("clip_score", description="CLIPScore (torchmetrics): max(mean 100*cos(image, prompt), 0)", capability=("t2i", "t2v"))
class ClipScore(ClipMetric):
    Options = ClipScoreOptions
    needs = ("output", "prompt")
    key = "clip_score"

    def score(self, inputs):
        groups = [self.frames_of(item) for item in inputs]
        return self.wrap(text_similarities(self.backbone, groups, self.prompts(inputs), self.options.scale))

    def compute(self):
        values = super().compute()
        return {k: max(v, 0.0) for k, v in values.items()} if self.options.clamp else values


@dataclass(frozen=True)
class ClipTOptions(ClipOptions):
    """``scale``: factor on the cosine; ``None`` uses the model's ``logit_scale`` (LOVEU ``logits_per_image``).
    ``caption_field``: the ``doc`` field holding the text (MagicBrush ``caption`` = its local description, Emu Edit
    ``output_caption``); ``None`` uses the item's prompt.  ``image``: score the ``output`` or the ground-truth
    ``reference`` image (MagicBrush's "oracle" CLIP-T of the GT image against the same caption)."""

    scale: float | None = None
    caption_field: str | None = None
    image: str = "output"

    def __post_init__(self):
        super().__post_init__()
        check_choice("clip_t", "image", self.image, ("output", "reference"))


@register_metric("clip_t", description="CLIP-T (LOVEU-TGVE): mean over frames of logit_scale*cos(frame, prompt)",
                 capability=("t2v", "edit_video", "t2i", "edit_image"))
class ClipT(ClipMetric):
    Options = ClipTOptions
    needs = ("output", "prompt")
    key = "clip_t"

    def required_inputs(self) -> tuple[str, ...]:
        return ("output", "prompt", "reference") if self.options.image == "reference" else self.needs

    def score(self, inputs):
        backbone = self.backbone
        factor = backbone.logit_scale if self.options.scale is None else self.options.scale
        groups = [self.frames_of(item, self.options.image) for item in inputs]
        field = self.options.caption_field
        texts = [doc_text(item, field, type(self).__name__) for item in inputs] if field else self.prompts(inputs)
        return self.wrap(text_similarities(backbone, groups, texts, factor))


def doc_text(item: MetricInput, field: str, metric: str) -> str:
    """The string ``item.doc[field]`` (a caption), or an error naming the item."""
    text = item.doc.get(field)
    if not isinstance(text, str):
        raise MediaError(f"item {item.item_id}: {metric} needs the caption doc[{field!r}], got {text!r:.60}")
    return text


@dataclass(frozen=True)
class ClipIOptions(ClipOptions):
    """``against``: compare the output with the ``reference`` (ground truth) or the ``source`` (input)."""

    against: str = "reference"

    def __post_init__(self):
        super().__post_init__()
        check_choice("clip_i", "against", self.against, ("reference", "source"))


@register_metric("clip_i", description="CLIP-I: cosine of CLIP image features, output vs reference image", capability=("edit_image", "edit_video", "t2i"))
class ClipI(PairedSizes, ClipMetric):
    """Each side goes through the backbone's own preprocessing separately (resize short side + center crop, see
    :mod:`~omnieval.metrics.clip_backbones`); neither is resized to the other's size first."""

    Options = ClipIOptions
    needs = ("output", "reference")
    key = "clip_i"
    convention = "each image separately: backbone preprocessing (resize short side, center crop); no resize to the other side"

    def score(self, inputs):
        a = [self.frames_of(item) for item in inputs]
        b = [self.frames_of(item, self.options.against) for item in inputs]
        pairs = [(item.output, getattr(item, self.options.against)) for item in inputs]
        return with_sizes(self.wrap(image_similarities(self.backbone, a, b)), pairs)


@dataclass(frozen=True)
class ClipDirectionOptions(ClipOptions):
    """``source_caption_field``: the ``doc`` field holding the source caption (Emu Edit: ``input_caption``);
    ``target_caption_field``: the ``doc`` field holding the target caption (Emu Edit: ``output_caption``), or
    None to use the item's ``prompt`` (when the task's prompt already is the target caption)."""

    source_caption_field: str = "input_caption"
    target_caption_field: str | None = None


@register_metric("clip_direction", description="CLIP direction: cos(dImage, dText) between source and edit", capability=("edit_image", "edit_video"))
class ClipDirection(PairedSizes, ClipMetric):
    Options = ClipDirectionOptions
    convention = "source and edit each through the backbone preprocessing (resize short side, center crop); no resize"
    needs = ("output", "source", "prompt")
    key = "clip_direction"

    def score(self, inputs):
        src_texts = [self.caption(item, self.options.source_caption_field) for item in inputs]
        field = self.options.target_caption_field
        tgt_texts = [self.caption(item, field) for item in inputs] if field else self.prompts(inputs)
        src = [self.frames_of(item, "source") for item in inputs]
        out = [self.frames_of(item) for item in inputs]
        scores = self.wrap(direction_similarities(self.backbone, src, out, src_texts, tgt_texts))
        return with_sizes(scores, [(item.output, item.source) for item in inputs])

    @staticmethod
    def caption(item: MetricInput, field: str) -> str:
        return doc_text(item, field, "clip_direction")


@dataclass(frozen=True)
class FrameConsistencyOptions(ClipOptions):
    """``variant``: ``all_pairs`` (LOVEU-TGVE, projected features) or ``consecutive`` (V2VBench, pooler output
    before projection, clamped at 0)."""

    variant: str = "all_pairs"

    def __post_init__(self):
        super().__post_init__()
        check_choice("clip_frame_consistency", "variant", self.variant, FRAME_CONSISTENCY_VARIANTS)


@register_metric("clip_frame_consistency", description="CLIP frame consistency of a video (all_pairs | consecutive)",
                 capability=("t2v", "edit_video", "long_video"))
class ClipFrameConsistency(ClipMetric):
    Options = FrameConsistencyOptions
    key = "clip_frame_consistency"

    def score(self, inputs):
        groups = [self.frames_of(item) for item in inputs]
        return self.wrap(consistency_scores(self.backbone, groups, self.options.variant))
