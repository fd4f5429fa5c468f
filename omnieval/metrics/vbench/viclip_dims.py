"""VBench ``temporal_style`` and ``overall_consistency`` (ViCLIP-L/14, InternVid-10M-FLT).

Conventions (``vbench/temporal_style.py``, ``vbench/overall_consistency.py``, VBench 0.1.5; the two differ only in
which prompts they are run on):

* 8 frames, VBench's ``'middle'`` rule (:func:`vbench_middle_indices`: split ``[0, T)`` into 8 integer
  intervals ``[a, b)`` and take ``(a + b - 1) // 2``; a video shorter than 8 frames repeats its last index);
* frames stay **uint8** through the resize (decord's torch bridge): short side resized to 224 (bicubic,
  ``antialias=False``, rounded to uint8), center crop 224, ``/255``, CLIP mean/std;
* the text is the whole prompt, tokenized by ViCLIP's CLIP BPE tokenizer with context length 32;
* per video: the raw cosine ``<f_video, f_text>`` of L2-normalised ViCLIP features (no logit scale, no clamp);
  the dimension: the mean over videos.

The network is vbench's own ``ViCLIP`` class, with the checkpoint loaded from the weight manifest
(``torch.load(weights_only=True)``).  vbench's ViCLIP tokenizer reads ``bpe_simple_vocab_16e6.txt.gz`` from
``$VBENCH_CACHE_DIR/ViCLIP/`` (and would ``wget`` it at import): :func:`ensure_viclip_bpe` puts the identical file
shipped with openai-clip there first, so nothing is downloaded.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from omnieval.errors import MediaError
from omnieval.media import Video
from omnieval.metrics.base import MetricInput
from omnieval.metrics.vbench.common import VBenchDimensionMetric, as_video, import_vbench, load_state_dict, skip_init
from omnieval.metrics.vbench.consistency import CLIP_MEAN, CLIP_STD, _device_of, preprocess
from omnieval.registry import register_metric


def vbench_middle_indices(num_frames: int, length: int) -> list[int]:
    """VBench's ``get_frame_indices(num, vlen, sample='middle')``: integer intervals, middle of each, last repeated."""
    if length <= 0:
        raise MediaError("cannot sample frames from an empty video")
    n = min(num_frames, length)
    edges = np.linspace(0, length, n + 1).astype(int)
    indices = [int((a + b - 1) // 2) for a, b in zip(edges[:-1], edges[1:])]
    return indices + [indices[-1]] * (num_frames - len(indices))


def ensure_viclip_bpe() -> Path:
    """Make sure vbench's ViCLIP tokenizer file exists (copied from openai-clip's identical BPE vocabulary)."""
    vbench_utils = import_vbench("vbench.utils")
    target = Path(vbench_utils.CACHE_DIR) / "ViCLIP" / "bpe_simple_vocab_16e6.txt.gz"
    if not target.is_file():
        import clip.simple_tokenizer

        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(clip.simple_tokenizer.default_bpe(), target)
    return target


def load_viclip(path: str | os.PathLike, device: str = "cpu"):
    """vbench's ViCLIP-L/14 with the checkpoint at ``path`` (``{'model': state_dict}``)."""
    bpe = ensure_viclip_bpe()
    viclip = import_vbench("vbench.third_party.ViCLIP.viclip")
    tokenizer = import_vbench("vbench.third_party.ViCLIP.simple_tokenizer").SimpleTokenizer(str(bpe))
    state = load_state_dict(path, key="model")
    with skip_init():  # every weight is loaded strictly below
        model = viclip.ViCLIP(tokenizer=tokenizer, pretrain=None)
    model.load_state_dict(state)
    return model.eval().to(device)


def viclip_video_feature(frames: np.ndarray, model, *, num_frames: int = 8, size: int = 224, device: str = "cpu"):
    """The L2-normalised ViCLIP feature (``1 x D``) of one video's ``num_frames`` 'middle' frames."""
    import torch
    import torch.nn.functional as F

    picked = frames[vbench_middle_indices(num_frames, len(frames))]
    x = preprocess(picked, size, interpolation="bicubic", crop=True, mean=CLIP_MEAN, std=CLIP_STD, quantized=True)
    with torch.inference_mode():
        return F.normalize(model.encode_vision(x.unsqueeze(0).to(device), test=True).float(), dim=-1)


def viclip_text_feature(text: str, model):
    """The L2-normalised ViCLIP feature (``1 x D``) of ``text`` (ViCLIP's tokenizer, context length 32)."""
    import torch
    import torch.nn.functional as F

    with torch.inference_mode():
        return F.normalize(model.encode_text(text).float(), dim=-1)


def viclip_similarity(frames: np.ndarray, text: str, model, *, num_frames: int = 8, size: int = 224, device: str = "cpu") -> float:
    """``cos(ViCLIP video feature, ViCLIP text feature)`` of one video (``T x H x W x 3`` uint8) and ``text``."""
    video_feat = viclip_video_feature(frames, model, num_frames=num_frames, size=size, device=device)
    return float((video_feat @ viclip_text_feature(text, model).T)[0, 0])


def viclip_score(videos: Iterable[Any], prompts: Iterable[str], model, *, num_frames: int = 8, size: int = 224, device: str = "cpu") -> float:
    """Mean over videos of :func:`viclip_similarity` (VBench temporal_style / overall_consistency)."""
    scores = [
        viclip_similarity(as_video(v, f"viclip: video {i}").frames, p, model, num_frames=num_frames, size=size, device=device)
        for i, (v, p) in enumerate(zip(videos, prompts, strict=True))
    ]
    if not scores:
        raise MediaError("viclip score: no videos given")
    return float(np.mean(scores))


temporal_style = viclip_score
overall_consistency = viclip_score


@dataclass(frozen=True)
class ViCLIPOptions:
    """``weight_id``/``ckpt_path``: ViCLIP checkpoint; ``num_frames``: VBench 'middle' frames; ``size``: resize+crop."""

    weight_id: str = "vbench_viclip"
    ckpt_path: str | None = None
    num_frames: int = 8
    size: int = 224


class _ViCLIPDimension(VBenchDimensionMetric):
    Options = ViCLIPOptions
    weights: ClassVar[tuple[str, ...]] = ("vbench_viclip",)
    needs: ClassVar[tuple[str, ...]] = ("output", "prompt")

    def model(self):
        return self.load_shared("viclip", load_viclip, self.options.weight_id, self.options.ckpt_path)

    def score_video(self, video: Video, item: MetricInput) -> float:
        if not item.prompt:
            raise MediaError(f"item {item.item_id}: {self.dimension} needs the prompt")
        model = self.model()
        o = self.options
        texts = self.__dict__.setdefault("_texts", {})  # prompt -> text feature (a prompt has several samples)
        if item.prompt not in texts:
            texts[item.prompt] = viclip_text_feature(item.prompt, model)
        video_feat = viclip_video_feature(video.frames, model, num_frames=o.num_frames, size=o.size, device=_device_of(model))
        return float((video_feat @ texts[item.prompt].T)[0, 0])


@register_metric(
    "vbench_temporal_style",
    description="VBench temporal style: ViCLIP cosine of 8 'middle' frames vs the prompt, mean over videos",
    capability=("t2v", "long_video"),
)
class TemporalStyle(_ViCLIPDimension):
    dimension = "temporal_style"


@register_metric(
    "vbench_overall_consistency",
    description="VBench overall consistency: ViCLIP cosine of 8 'middle' frames vs the prompt, mean over videos",
    capability=("t2v", "long_video"),
)
class OverallConsistency(_ViCLIPDimension):
    dimension = "overall_consistency"
