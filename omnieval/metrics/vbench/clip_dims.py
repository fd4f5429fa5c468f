"""VBench ``aesthetic_quality`` (CLIP ViT-L/14 + LAION linear head) and ``appearance_style`` (CLIP ViT-B/32).

Conventions (``vbench/aesthetic_quality.py``, ``vbench/appearance_style.py``, VBench 0.1.5):

aesthetic_quality
    every frame; float32 [0, 255] frames, short side resized to 224 (bicubic, ``antialias=False``), center crop
    224, ``/255``, CLIP mean/std; ``encode_image`` (float32), L2-normalised, LAION linear head
    (``sa_0_4_vit_l_14_linear.pth``, ``Linear(768, 1)``), divided by 10.  Per video: the mean over frames;
    the dimension: **the mean over videos** (VBench's ``aesthetic_avg / num``).
appearance_style
    every frame, each converted to a PIL image and transformed with PIL's bicubic resize of the short side to
    224, center crop 224, ``ToTensor``, CLIP mean/std (VBench's ``clip_transform_Image``); the text is the
    prompt's ``auxiliary_info['appearance_style']['appearance_style']`` tokenized by openai-clip.  Per frame:
    ``logits_per_text / 100`` = ``exp(logit_scale) * cos(image, text) / 100`` (= cos for OpenAI weights).  The
    dimension: **the mean over all frames of all videos** (VBench's single-process ``sim / cnt``; its multi-GPU
    branch averages only the last frame of each video -- not reproduced).
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from omnieval.errors import MediaError, OmniEvalError
from omnieval.media import Video
from omnieval.metrics.base import MetricInput
from omnieval.metrics.vbench.common import VBenchDimensionMetric, as_video, auxiliary_info, load_state_dict
from omnieval.metrics.vbench.consistency import (
    CLIP_MEAN,
    CLIP_STD,
    Pooled,
    PooledDimensionMetric,
    _device_of,
    batched_over_videos,
    cached_clip,
    clip_input,
)
from omnieval.registry import register_metric


# ---------------------------------------------------------------------------------------------
# aesthetic_quality
# ---------------------------------------------------------------------------------------------
def load_aesthetic_head(path: str | os.PathLike, device: str = "cpu"):
    """The LAION aesthetic predictor head: ``Linear(768, 1)`` from a ``{weight, bias}`` state dict."""
    import torch.nn as nn

    state = load_state_dict(path)
    if "weight" not in state or state["weight"].ndim != 2:
        raise OmniEvalError(f"{path}: not a linear-head state dict (expected 'weight' and 'bias')")
    head = nn.Linear(state["weight"].shape[1], state["weight"].shape[0])
    head.load_state_dict(state)
    return head.eval().to(device)


def aesthetic_frame_scores_per_video(videos: list[np.ndarray], clip_model, head, *, size: int = 224, device: str = "cpu") -> list[np.ndarray]:
    """Per-frame aesthetic scores / 10 of each video (``T x H x W x 3`` uint8); frames share forward batches."""
    import torch.nn.functional as F

    def forward(batch):
        return head(F.normalize(clip_model.encode_image(batch).float(), dim=-1, p=2)).squeeze(-1) / 10

    scores = batched_over_videos(videos, lambda f: clip_input(f, size).to(device), forward)
    return [s.double().cpu().numpy() for s in scores]


def aesthetic_frame_scores(frames: np.ndarray, clip_model, head, *, size: int = 224, device: str = "cpu") -> np.ndarray:
    """Per-frame aesthetic scores / 10 of one video (``T x H x W x 3`` uint8)."""
    return aesthetic_frame_scores_per_video([frames], clip_model, head, size=size, device=device)[0]


def aesthetic_quality(videos: Iterable[Any], clip_model, head, *, size: int = 224, device: str = "cpu") -> float:
    """VBench aesthetic quality of ``videos``: mean over videos of the per-video mean frame score."""
    per_video = [float(aesthetic_frame_scores(as_video(v, f"aesthetic_quality: video {i}").frames, clip_model, head, size=size,
                                              device=device).mean()) for i, v in enumerate(videos)]
    if not per_video:
        raise MediaError("aesthetic_quality: no videos given")
    return float(np.mean(per_video))


@dataclass(frozen=True)
class AestheticOptions:
    """``clip_weight_id``: CLIP ViT-L/14; ``head_weight_id``: LAION ``sa_0_4_vit_l_14_linear.pth``; ``size``: resize+crop."""

    clip_weight_id: str = "vbench_clip_vit_l14"
    clip_path: str | None = None
    head_weight_id: str = "vbench_laion_aesthetic"
    head_path: str | None = None
    size: int = 224


@register_metric(
    "vbench_aesthetic_quality",
    description="VBench aesthetic quality: LAION aesthetic head on CLIP ViT-L/14 frame features, /10, mean per video",
    capability=("t2v", "long_video"),
)
class AestheticQuality(VBenchDimensionMetric):
    dimension = "aesthetic_quality"
    Options = AestheticOptions
    weights: ClassVar[tuple[str, ...]] = ("vbench_clip_vit_l14", "vbench_laion_aesthetic")

    def required_weights(self) -> list[str]:
        o = self.options
        return [wid for wid, path in ((o.clip_weight_id, o.clip_path), (o.head_weight_id, o.head_path)) if not path]

    def models(self):
        from omnieval.metrics.weights import resolve

        clip_model = cached_clip(self, self.options.clip_weight_id, self.options.clip_path)
        head = self.cached(
            "head", lambda: load_aesthetic_head(resolve(self.options.head_weight_id, self.options.head_path), _device_of(clip_model))
        )
        return clip_model, head

    def score_videos(self, videos: list[Video], items: list[MetricInput]) -> list[float]:
        clip_model, head = self.models()
        scores = aesthetic_frame_scores_per_video([v.frames for v in videos], clip_model, head, size=self.options.size,
                                                  device=_device_of(clip_model))
        return [float(s.mean()) for s in scores]


# ---------------------------------------------------------------------------------------------
# appearance_style
# ---------------------------------------------------------------------------------------------
def pil_clip_preprocess(frames: np.ndarray, size: int = 224):
    """VBench's ``clip_transform_Image``: per frame PIL bicubic resize of the short side, center crop, ToTensor, CLIP norm."""
    import torch
    import torchvision.transforms.functional as TF
    from PIL import Image
    from torchvision.transforms import InterpolationMode

    out = []
    for frame in frames:
        image = TF.resize(Image.fromarray(frame), size, interpolation=InterpolationMode.BICUBIC)
        out.append(TF.normalize(TF.to_tensor(TF.center_crop(image, size)), CLIP_MEAN, CLIP_STD))
    return torch.stack(out)


def style_text_feature(style: str, clip_model, device: str = "cpu"):
    """The L2-normalised openai-clip text feature of ``style`` (``1 x D``)."""
    import clip
    import torch
    import torch.nn.functional as F

    with torch.inference_mode():
        return F.normalize(clip_model.encode_text(clip.tokenize([style]).to(device)).float(), dim=-1)


def style_frame_scores_per_video(videos: list[np.ndarray], texts: list, clip_model, *, size: int = 224, device: str = "cpu") -> list[np.ndarray]:
    """Per frame of each video, ``exp(logit_scale) * cos(frame, text) / 100`` (VBench's ``logits_per_text / 100``)
    against that video's text feature (:func:`style_text_feature`); frames share forward batches."""
    import torch
    import torch.nn.functional as F

    features = batched_over_videos(videos, lambda f: pil_clip_preprocess(f, size).to(device),
                                   lambda b: F.normalize(clip_model.encode_image(b).float(), dim=-1))
    with torch.inference_mode():
        scale = clip_model.logit_scale.exp().float()
        return [(scale * (f @ t.T)[:, 0] / 100).double().cpu().numpy() for f, t in zip(features, texts)]


def style_frame_scores(frames: np.ndarray, style: str, clip_model, *, size: int = 224, device: str = "cpu") -> np.ndarray:
    """Per-frame ``exp(logit_scale) * cos(frame, style) / 100`` (VBench's ``logits_per_text / 100``)."""
    text = style_text_feature(style, clip_model, device)
    return style_frame_scores_per_video([frames], [text], clip_model, size=size, device=device)[0]


def appearance_style(videos: Iterable[Any], styles: Iterable[str], clip_model, *, size: int = 224, device: str = "cpu") -> float:
    """VBench appearance style of ``videos`` against their ``styles``: mean over all frames of all videos."""
    num = den = 0.0
    for i, (video, style) in enumerate(zip(videos, styles, strict=True)):
        scores = style_frame_scores(as_video(video, f"appearance_style: video {i}").frames, style, clip_model, size=size, device=device)
        num, den = num + float(scores.sum()), den + len(scores)
    if den == 0:
        raise MediaError("appearance_style: no videos given")
    return num / den


@dataclass(frozen=True)
class AppearanceStyleOptions:
    """``weight_id``: CLIP ViT-B/32; ``size``: PIL bicubic resize of the short side + center crop."""

    weight_id: str = "vbench_clip_vit_b32"
    ckpt_path: str | None = None
    size: int = 224


@register_metric(
    "vbench_appearance_style",
    description="VBench appearance style: CLIP ViT-B/32 frame-vs-style-text logit/100, mean over all frames",
    capability=("t2v", "long_video"),
)
class AppearanceStyle(PooledDimensionMetric):
    dimension = "appearance_style"
    Options = AppearanceStyleOptions
    weights: ClassVar[tuple[str, ...]] = ("vbench_clip_vit_b32",)
    needs: ClassVar[tuple[str, ...]] = ("output", "doc")

    def score_videos(self, videos: list[Video], items: list[MetricInput]) -> list[Pooled]:
        styles = [auxiliary_info(item, self.dimension)["appearance_style"] for item in items]
        model = cached_clip(self, self.options.weight_id, self.options.ckpt_path)
        device = _device_of(model)
        texts = self.__dict__.setdefault("_texts", {})  # style -> text feature (shared by fresh() clones)
        for style in styles:
            if style not in texts:
                texts[style] = style_text_feature(style, model, device)
        scores = style_frame_scores_per_video([v.frames for v in videos], [texts[s] for s in styles], model,
                                              size=self.options.size, device=device)
        return [Pooled(float(s.sum()), len(s), float(s.mean())) for s in scores]


__all__ = [
    "AestheticQuality",
    "AppearanceStyle",
    "aesthetic_frame_scores",
    "aesthetic_quality",
    "appearance_style",
    "load_aesthetic_head",
    "style_frame_scores",
]
