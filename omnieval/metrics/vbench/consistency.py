"""VBench ``subject_consistency`` (DINO ViT-B/16) and ``background_consistency`` (CLIP ViT-B/32).

Conventions (``vbench/subject_consistency.py``, ``vbench/background_consistency.py``, VBench 0.1.5):

* every decoded frame is used (no frame sampling); frames are converted to **float32 in [0, 255] before
  resizing** (VBench's ``load_video`` returns ``torch.Tensor(frames)``), so the resize does not round to uint8;
* subject: short side resized to 224 (bilinear, ``antialias=False``, no crop), ``/255``, ImageNet mean/std;
  DINO's CLS feature after the final norm (positional embeddings interpolated like facebookresearch/dino,
  bicubic with the ``+0.1`` offset, for non-square inputs);
* background: short side resized to 224 (bicubic, ``antialias=False``) + center crop 224, ``/255``, CLIP
  mean/std; ``encode_image`` of openai-clip ViT-B/32;
* features are L2-normalised; for each frame ``i >= 1``:
  ``(max(0, cos(f_i, f_{i-1})) + max(0, cos(f_i, f_0))) / 2``;
* the dimension is **the mean over all frame pairs of all videos** (VBench's single-process ``sim / cnt``).
  Each video contributes ``(sum of its pair scores, number of pairs)`` and the value is
  ``sum of sums / sum of counts``, so it does not depend on how videos are split over processes (VBench's
  multi-GPU branch of subject_consistency averages per-video means instead, a different number).
  The per-video mean (VBench's ``video_results``) is kept in the contribution for sample logs.

A video needs at least 2 frames (VBench divides by ``T - 1``): fewer raises :class:`MediaError`.

This module also holds the pieces shared by the other network dimensions of this family: the
:class:`PooledDimensionMetric` (ratio of pooled sums), VBench's frame preprocessing and the openai-clip loader.
"""
from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from omnieval.errors import MediaError, OmniEvalError
from omnieval.media import Video
from omnieval.metrics.base import MetricInput
from omnieval.metrics.vbench.common import (
    VBenchDimensionMetric,
    as_video,
    load_state_dict,
    require_frames,
    skip_init,
)
from omnieval.registry import register_metric

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
#: frames per forward pass (does not move the number beyond float noise)
BATCH = 32


# ---------------------------------------------------------------------------------------------
# Pooled ratio metric: value = sum of numerators / sum of denominators over all items
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pooled:
    """One video's share of a pooled ratio: ``num`` (e.g. sum of frame scores) over ``den`` (e.g. #frames).

    ``per_video``: the video's own value, logged in the sample record (VBench's ``video_results``)."""

    num: float
    den: float
    per_video: float | None = None


class PooledDimensionMetric(VBenchDimensionMetric):
    """A VBench dimension whose value pools frames (or pairs) over all videos: ``sum(num) / sum(den)``.

    ``score_video`` returns a :class:`Pooled` (or :class:`Skip`).  The contribution carries
    ``<dim>_num`` / ``<dim>_den`` (summed by :meth:`fold`, so merging gives the same value for any number of
    processes) and ``<dim>`` = the per-video value, for sample logs only.
    """

    def result_entry(self, result: Pooled) -> dict[str, Any]:
        entry = {f"{self.dimension}_num": float(result.num), f"{self.dimension}_den": float(result.den)}
        if result.per_video is not None:
            entry[self.dimension] = float(result.per_video)
        return entry

    def compute(self) -> dict[str, float]:
        den = self.sums.get(f"{self.dimension}_den", 0.0)
        if den <= 0:
            return {}
        return {self.dimension: self.sums[f"{self.dimension}_num"] / den}


# ---------------------------------------------------------------------------------------------
# VBench's frame preprocessing
# ---------------------------------------------------------------------------------------------
def frames_tensor(frames: np.ndarray, *, quantized: bool = False):
    """``T x H x W x 3`` uint8 -> ``T x 3 x H x W`` torch tensor: float32 in [0, 255] (VBench's ``load_video``), or
    uint8 when ``quantized`` (VBench's ``read_frames_decord_by_fps``; the resize then rounds to uint8)."""
    import torch

    tensor = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    return tensor if quantized else tensor.float()


def preprocess(frames: np.ndarray, size: int, *, interpolation: str, crop: bool, mean, std, quantized: bool = False):
    """Resize the short side to ``size`` (``antialias=False``), optionally center-crop, ``/255``, normalise.

    ``interpolation``: ``'bilinear'`` (DINO) or ``'bicubic'`` (CLIP); this is torchvision's tensor resize,
    exactly as VBench's ``dino_transform`` / ``clip_transform``."""
    import torchvision.transforms.functional as TF
    from torchvision.transforms import InterpolationMode

    mode = InterpolationMode.BICUBIC if interpolation == "bicubic" else InterpolationMode.BILINEAR
    x = TF.resize(frames_tensor(frames, quantized=quantized), size, interpolation=mode, antialias=False)
    if crop:
        x = TF.center_crop(x, size)
    x = x.float() / 255.0
    return TF.normalize(x, mean, std)


def pair_consistency(features) -> tuple[float, int]:
    """``(sum over i >= 1 of (max(0, cos(f_i, f_{i-1})) + max(0, cos(f_i, f_0))) / 2, T - 1)`` for ``T x D`` features."""
    import torch.nn.functional as F

    f = F.normalize(features.float(), dim=-1, p=2)
    prev = (f[1:] * f[:-1]).sum(-1).double().clamp(min=0.0)
    first = (f[1:] * f[:1]).sum(-1).double().clamp(min=0.0)
    return float(((prev + first) / 2).sum()), int(f.shape[0] - 1)


def batched_over_videos(videos: Iterable[np.ndarray], prepare, forward, batch: int = BATCH) -> list:
    """``forward(prepare(frames))`` for each video's frames, with the frames of consecutive videos sharing forward
    batches of ``batch`` frames (one video is prepared at a time; at most one batch is held).  ``forward`` maps an
    ``N x ...`` tensor to ``N x ...`` outputs, row by row, so the rows of a video do not depend on its batch-mates
    (up to float32 rounding of the batch's matrix products).  Returns one tensor of outputs per video."""
    import torch

    outputs: list[list] = []
    pending: list = []  # (video index, rows)
    filled = 0

    def flush() -> None:
        nonlocal filled
        result = forward(torch.cat([rows for _, rows in pending]))
        for (index, _), part in zip(pending, torch.split(result, [len(rows) for _, rows in pending])):
            outputs[index].append(part)
        pending.clear()
        filled = 0

    with torch.inference_mode():
        for index, frames in enumerate(videos):
            outputs.append([])
            x = prepare(frames)
            start = 0
            while start < len(x):
                take = min(batch - filled, len(x) - start)
                pending.append((index, x[start : start + take]))
                filled += take
                start += take
                if filled == batch:
                    flush()
        if pending:
            flush()
        return [torch.cat(parts) for parts in outputs]


def _frames_of(video: Any, what: str) -> np.ndarray:
    frames = as_video(video, what).frames
    if len(frames) < 2:
        raise MediaError(f"{what}: needs at least 2 frames, the video has {len(frames)}")
    return frames


# ---------------------------------------------------------------------------------------------
# DINO ViT-B/16 (timm VisionTransformer with DINO's key layout)
# ---------------------------------------------------------------------------------------------
def dino_features(vit, x):
    """CLS feature of a timm ``VisionTransformer`` on ``x`` (``B x 3 x H x W``), computed like DINO's
    ``VisionTransformer.forward``: patch tokens, CLS, positional embeddings interpolated DINO's way, blocks,
    final norm, token 0."""
    import torch

    tokens = vit.patch_embed.proj(x).flatten(2).transpose(1, 2)
    cls = vit.cls_token.expand(tokens.shape[0], -1, -1)
    tokens = torch.cat([cls, tokens], dim=1)
    tokens = tokens + _dino_pos_embed(vit.pos_embed, x.shape[-2], x.shape[-1], vit.patch_embed.proj.kernel_size[0])
    tokens = vit.blocks(tokens)
    return vit.norm(tokens)[:, 0]


def _dino_pos_embed(pos_embed, height: int, width: int, patch: int):
    """facebookresearch/dino ``interpolate_pos_encoding``: bicubic, scale factor ``(grid + 0.1) / sqrt(N)``."""
    import torch
    import torch.nn.functional as F

    n = pos_embed.shape[1] - 1
    gh, gw = height // patch, width // patch
    if gh * gw == n and height == width:
        return pos_embed
    side = int(math.sqrt(n))
    grid = pos_embed[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, scale_factor=((gh + 0.1) / side, (gw + 0.1) / side), mode="bicubic")
    if grid.shape[-2:] != (gh, gw):  # pragma: no cover - DINO asserts the same
        raise OmniEvalError(f"DINO position interpolation gave {tuple(grid.shape[-2:])}, expected {(gh, gw)}")
    grid = grid.permute(0, 2, 3, 1).reshape(1, gh * gw, -1)
    return torch.cat([pos_embed[:, :1], grid], dim=1)


def load_dino_vitb16(path: str | os.PathLike, device: str = "cpu"):
    """DINO ViT-B/16 (``dino_vitbase16_pretrain.pth``, a plain state dict) in a timm ``vit_base_patch16_224``."""
    import timm

    state = load_state_dict(path)
    with skip_init():  # every weight is loaded below (a missing one is an error)
        vit = timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=0, weight_init="skip")
    missing, unexpected = vit.load_state_dict(state, strict=False)
    if missing or [k for k in unexpected if not k.startswith("head")]:
        raise OmniEvalError(f"DINO weights {path}: missing keys {missing[:3]}, unexpected {unexpected[:3]}")
    return vit.eval().to(device)


def dino_input(frames: np.ndarray, size: int = 224):
    """VBench's ``dino_transform``: short side to ``size`` (bilinear, no antialias, no crop), ``/255``, ImageNet norm."""
    return preprocess(frames, size, interpolation="bilinear", crop=False, mean=IMAGENET_MEAN, std=IMAGENET_STD)


def clip_input(frames: np.ndarray, size: int = 224):
    """VBench's ``clip_transform``: short side to ``size`` (bicubic, no antialias), center crop, ``/255``, CLIP norm."""
    return preprocess(frames, size, interpolation="bicubic", crop=True, mean=CLIP_MEAN, std=CLIP_STD)


def subject_consistency_per_video(videos: list[np.ndarray], model, *, size: int = 224, device: str = "cpu") -> list[tuple[float, int]]:
    """Each video's ``(sum of pair scores, #pairs)`` with a DINO-style timm ViT ``model``; the frames of all videos
    share forward batches."""
    features = batched_over_videos(videos, lambda f: dino_input(f, size).to(device), lambda b: dino_features(model, b))
    return [pair_consistency(f) for f in features]


def background_consistency_per_video(videos: list[np.ndarray], clip_model, *, size: int = 224, device: str = "cpu") -> list[tuple[float, int]]:
    """Each video's ``(sum of pair scores, #pairs)`` with an openai-clip ``clip_model``; frames share forward batches."""
    features = batched_over_videos(videos, lambda f: clip_input(f, size).to(device), clip_model.encode_image)
    return [pair_consistency(f) for f in features]


def subject_consistency_sums(frames: np.ndarray, model, *, size: int = 224, device: str = "cpu") -> tuple[float, int]:
    """One video's ``(sum of pair scores, #pairs)`` with a DINO-style timm ViT ``model``."""
    return subject_consistency_per_video([frames], model, size=size, device=device)[0]


def background_consistency_sums(frames: np.ndarray, clip_model, *, size: int = 224, device: str = "cpu") -> tuple[float, int]:
    """One video's ``(sum of pair scores, #pairs)`` with an openai-clip ``clip_model``."""
    return background_consistency_per_video([frames], clip_model, size=size, device=device)[0]


def _pooled_mean(videos: Iterable[Any], one, what: str) -> float:
    num = den = 0.0
    for i, video in enumerate(videos):
        s, n = one(_frames_of(video, f"{what}: video {i}"))
        num, den = num + s, den + n
    if den == 0:
        raise MediaError(f"{what}: no videos given")
    return num / den


def subject_consistency(videos: Iterable[Any], model, *, size: int = 224, device: str = "cpu") -> float:
    """VBench subject consistency of ``videos`` (Video, uint8 array or file path): mean over all frame pairs."""
    return _pooled_mean(videos, lambda f: subject_consistency_sums(f, model, size=size, device=device), "subject_consistency")


def background_consistency(videos: Iterable[Any], clip_model, *, size: int = 224, device: str = "cpu") -> float:
    """VBench background consistency of ``videos``: mean over all frame pairs of all videos."""
    return _pooled_mean(
        videos, lambda f: background_consistency_sums(f, clip_model, size=size, device=device), "background_consistency"
    )


# ---------------------------------------------------------------------------------------------
# openai-clip models from a local state dict (no clip.load, no TorchScript)
# ---------------------------------------------------------------------------------------------
def load_openai_clip(path: str | os.PathLike, device: str = "cpu"):
    """A ``clip.model.CLIP`` built from a state dict in OpenAI's layout, in float32.

    Accepted files: ``.safetensors`` (e.g. ``open_clip_model.safetensors`` of the ``timm/*.openai`` hub repos) or
    a torch state dict loaded with ``weights_only=True`` (e.g. ``torch.jit.load('ViT-B-32.pt').state_dict()``
    saved once with ``torch.save``).  The original TorchScript archives are refused: loading them runs code.
    """
    from clip.model import build_model

    path = Path(path)
    if _is_torchscript(path):
        raise OmniEvalError(
            f"{path} is a TorchScript archive (loading it runs code); use a state dict instead: the OpenAI-layout "
            "open_clip_model.safetensors of huggingface.co/timm/vit_base_patch32_clip_224.openai (ViT-B/32) or "
            "timm/vit_large_patch14_clip_224.openai (ViT-L/14)"
        )
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = load_state_dict(path)
    if "visual.proj" not in state:
        raise OmniEvalError(f"{path}: not an OpenAI CLIP ViT state dict (no 'visual.proj'; TorchScript archives are refused)")
    with skip_init():  # build_model loads every weight strictly
        return build_model(state).float().eval().to(device)


def _is_torchscript(path: Path) -> bool:
    import zipfile

    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any("/code/" in name for name in archive.namelist())


# ---------------------------------------------------------------------------------------------
# Registered metrics
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SubjectConsistencyOptions:
    """``weight_id``/``ckpt_path``: DINO ViT-B/16 checkpoint; ``size``: short side after resize (bilinear, no crop)."""

    weight_id: str = "vbench_dino_vitb16"
    ckpt_path: str | None = None
    size: int = 224


@register_metric(
    "vbench_subject_consistency",
    description="VBench subject consistency: DINO ViT-B/16 CLS cosine to previous and first frame, mean over all frame pairs",
    capability=("t2v", "long_video"),
)
class SubjectConsistency(PooledDimensionMetric):
    dimension = "subject_consistency"
    Options = SubjectConsistencyOptions
    weights: ClassVar[tuple[str, ...]] = ("vbench_dino_vitb16",)

    def model(self):
        return self.load_shared("dino", load_dino_vitb16, self.options.weight_id, self.options.ckpt_path)

    def score_videos(self, videos: list[Video], items: list[MetricInput]) -> list[Pooled]:
        for video, item in zip(videos, items):
            require_frames(video, 2, item.item_id, self.dimension)
        model = self.model()
        sums = subject_consistency_per_video([v.frames for v in videos], model, size=self.options.size, device=_device_of(model))
        return [Pooled(s, n, s / n) for s, n in sums]


@dataclass(frozen=True)
class BackgroundConsistencyOptions:
    """``weight_id``/``ckpt_path``: CLIP ViT-B/32 state dict; ``size``: resize short side + center crop (bicubic)."""

    weight_id: str = "vbench_clip_vit_b32"
    ckpt_path: str | None = None
    size: int = 224


@register_metric(
    "vbench_background_consistency",
    description="VBench background consistency: CLIP ViT-B/32 cosine to previous and first frame, mean over all frame pairs",
    capability=("t2v", "long_video"),
)
class BackgroundConsistency(PooledDimensionMetric):
    dimension = "background_consistency"
    Options = BackgroundConsistencyOptions
    weights: ClassVar[tuple[str, ...]] = ("vbench_clip_vit_b32",)

    def model(self):
        return cached_clip(self, self.options.weight_id, self.options.ckpt_path)

    def score_videos(self, videos: list[Video], items: list[MetricInput]) -> list[Pooled]:
        for video, item in zip(videos, items):
            require_frames(video, 2, item.item_id, self.dimension)
        model = self.model()
        sums = background_consistency_per_video([v.frames for v in videos], model, size=self.options.size, device=_device_of(model))
        return [Pooled(s, n, s / n) for s, n in sums]


def cached_clip(metric: VBenchDimensionMetric, weight_id: str, ckpt_path: str | None):
    """The metric's openai-clip model, resolved from the weight manifest and built once."""

    return metric.load_shared("clip", load_openai_clip, weight_id, ckpt_path)


def _device_of(model) -> str:
    return str(next(model.parameters()).device)
