"""VBench ``imaging_quality`` (MUSIQ trained on SPAQ, via pyiqa).

Conventions (``vbench/imaging_quality.py``, VBench 0.1.5):

* every frame, float32 in [0, 255]; preprocessing mode ``'longer'`` (VBench's default): if the long side exceeds
  512, resize to ``(int(s * H), int(s * W))`` with ``s = 512 / max(H, W)`` (bilinear, ``antialias=False``);
  ``'shorter'`` / ``'shorter_centercrop'`` use the short side (and a 512 center crop); ``'None'`` no resize;
  then ``/255`` (value range [0, 1]);
* MUSIQ scores each frame separately (batch of one); per video: the mean frame score **divided by 100** (VBench
  divides only the aggregate, so its per-video values are 0-100: Vchitect/VBench#28); the dimension: the mean
  over videos (identical to VBench's aggregate).

Network: ``pyiqa``'s ``MUSIQ`` (``pyiqa.archs.musiq_arch``) in VBench's configuration (``num_class=1``, the
defaults: patch 32, hidden 384, 14 layers, scales 224 and 384 plus the original resolution; MUSIQ normalises to
[-1, 1] and cuts the multi-scale patches itself in eval mode; VBench only sets ``model.training = False``, which
equals ``eval()`` because every MUSIQ dropout / drop-path rate is 0). ``pip install --no-deps pyiqa`` (0.1.16 works
with torch 2.14 / numpy 2 / transformers 5; its arch code is the same as in 0.1.10). Unlike VBench (pyiqa's
``load_pretrained_network`` unpickles with ``weights_only=False``), the checkpoint is read with
``weights_only=True`` (``module.`` prefixes stripped, strict load). Without pyiqa the metric fails when created,
naming the package. A ``scorer`` callable (``1 x 3 x H x W`` tensor in [0, 1] -> score 0-100) may be given instead.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from omnieval.errors import ConfigError, OmniEvalError
from omnieval.media import Video
from omnieval.metrics.base import MetricInput
from omnieval.metrics.vbench.common import VBenchDimensionMetric, default_device, load_state_dict
from omnieval.metrics.vbench.consistency import frames_tensor
from omnieval.metrics.vbench.semantic_dims import _NetworkMixin
from omnieval.registry import register_metric

MODES = ("longer", "shorter", "shorter_centercrop", "None")
Scorer = Callable[[Any], float]


def musiq_input(frames: np.ndarray, mode: str = "longer"):
    """VBench's ``transform``: ``T x 3 x H' x W'`` float tensor in [0, 1] (see the module docstring)."""
    import torchvision.transforms.functional as TF

    if mode not in MODES:
        raise ConfigError(f"imaging_quality: unknown preprocessing mode {mode!r}; allowed: {', '.join(MODES)}")
    x = frames_tensor(frames)
    h, w = x.shape[-2:]
    side = max(h, w) if mode == "longer" else min(h, w)
    if mode != "None" and side > 512:
        scale = 512.0 / side
        x = TF.resize(x, [int(scale * h), int(scale * w)], antialias=False)
        if mode == "shorter_centercrop":
            x = TF.center_crop(x, 512)
    return x / 255.0


def imaging_quality_video(frames: np.ndarray, scorer: Scorer, mode: str = "longer") -> float:
    """One video's imaging quality: mean over frames of the MUSIQ score, / 100."""
    import torch

    x = musiq_input(frames, mode)
    with torch.no_grad():
        scores = [float(scorer(x[i : i + 1])) for i in range(len(x))]
    return float(np.mean(scores)) / 100.0


def musiq_network(path: str | os.PathLike):
    """pyiqa's MUSIQ as VBench builds it (``MUSIQ(pretrained_model_path=...)``, i.e. one output), in eval mode,
    with the weights of ``path`` loaded safely (see the module docstring)."""
    from pyiqa.archs.musiq_arch import MUSIQ

    state = load_state_dict(path)
    model = MUSIQ(pretrained=False, num_class=1)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise OmniEvalError(f"weights {path} do not fit pyiqa's MUSIQ (num_class=1): {first}") from exc
    return model.eval()


def musiq_scorer(path: str | os.PathLike, device: str = "cpu") -> Scorer:
    """:func:`musiq_network` on ``device`` as a :data:`Scorer`."""
    model = musiq_network(path).to(device)
    return lambda x: model(x.to(device))


@dataclass(frozen=True)
class ImagingQualityOptions:
    """``weight_id``: MUSIQ-SPAQ checkpoint; ``mode``: VBench's ``imaging_quality_preprocessing_mode``."""

    weight_id: str = "vbench_musiq_spaq"
    ckpt_path: str | None = None
    mode: str = "longer"


@register_metric(
    "vbench_imaging_quality",
    description="VBench imaging quality: MUSIQ-SPAQ per frame (long side <= 512), /100, mean per video",
    capability=("t2v", "long_video"),
)
class ImagingQuality(_NetworkMixin, VBenchDimensionMetric):
    dimension = "imaging_quality"
    Options = ImagingQualityOptions
    weights: ClassVar[tuple[str, ...]] = ("vbench_musiq_spaq",)
    network_kw = "scorer"
    package = ("pyiqa", "MUSIQ network: pip install --no-deps pyiqa")

    def __init__(self, scorer: Scorer | None = None, **options: Any):
        super().__init__(**options)
        if self.options.mode not in MODES:
            raise ConfigError(f"vbench_imaging_quality: unknown mode {self.options.mode!r}; allowed: {', '.join(MODES)}")
        self._init_network(scorer)

    def build(self, path) -> Scorer:
        return musiq_scorer(path, default_device())

    def score_video(self, video: Video, item: MetricInput) -> float:
        return imaging_quality_video(video.frames, self.network(), self.options.mode)
