"""VBench motion dimensions on vbench's own networks: RAFT static filter, ``dynamic_degree``, ``motion_smoothness``.

The networks are vbench 0.1.5's classes (``vbench.third_party.RAFT`` and ``vbench.third_party.amt``), built
here and loaded from files resolved by the weight manifest (``vbench_raft_things``, ``vbench_amt_s``) with
``torch.load(weights_only=True)``; vbench's own init code (which calls ``wget``) is never run.

Conventions (frames are RGB uint8 as decoded by cv2; float 0..255 into RAFT, 0..1 into AMT):

* **RAFT** (``raft-things``; small=False, mixed_precision=False, alternate_corr=False), 20 iterations,
  ``test_mode``; both frames replicate-padded to a multiple of 8, split evenly (``InputPadder``, 'sintel' mode);
  the flow is scored on the *padded* grid.  RAFT's 4-level correlation pyramid needs frames of at least 128 px: per pair, the mean of the top ``fraction`` of flow magnitudes ``sqrt(u^2 + v^2)``.
* **Static filter** (``VBench/static_filter.py``): all frames; pairs ``(t, t+1)`` plus ``(first, last)`` and
  ``(last, first)``; top 2 %; ``thres = 3.0 * min(H, W) / 256``, ``count = round(2 * T / 16)``.  Static iff at
  most ``count`` consecutive pairs exceed ``thres`` and neither first/last pair exceeds ``thres * count * 2``.
* **dynamic_degree** (``vbench/dynamic_degree.py``): frames subsampled with ``interval = max(1, round(fps/8))``;
  top 5 %; ``thres = 6.0 * min(H, W) / 256``, ``count = round(4 * T' / 16)`` (``T'`` after subsampling); a
  video is dynamic (1.0) iff at least ``count`` pairs exceed ``thres``.  The dimension is the fraction of
  dynamic videos.
* **motion_smoothness** (``vbench/motion_smoothness.py``): AMT-S interpolates the middle frame between frames
  ``0, 2, 4, ...`` (padded to a multiple of 16, ``embt = 0.5``, ``scale_factor = 1``: VBench's CPU path; its GPU
  path only rescales when a frame exceeds the VRAM budget); per video ``(255 - mean_k MAE(frame_{2k+1},
  interp_k)) / 255`` on uint8 images.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from omnieval.errors import MediaError
from omnieval.media import Video
from omnieval.metrics.base import MetricInput
from omnieval.metrics.vbench.common import (
    Skip,
    VBenchDimensionMetric,
    as_video,
    default_device,
    import_vbench,
    load_state_dict,
    require_frames,
)
from omnieval.metrics.weights import resolve
from omnieval.registry import register_metric

RAFT_ITERS = 20


# ---------------------------------------------------------------------------------------------
# Networks
# ---------------------------------------------------------------------------------------------
def load_raft(path: str | None = None, device: str | None = None):
    """vbench's RAFT (things), weights from ``path`` or the manifest id ``vbench_raft_things``; eval mode."""
    ckpt = resolve("vbench_raft_things", path)  # before importing vbench: a missing file fails fast
    raft_mod = import_vbench("vbench.third_party.RAFT.core.raft")
    from easydict import EasyDict

    model = raft_mod.RAFT(EasyDict(small=False, mixed_precision=False, alternate_corr=False))
    model.load_state_dict(load_state_dict(ckpt))
    return model.to(device or default_device()).eval()


def amt_config_path() -> str:
    """vbench's bundled ``third_party/amt/cfgs/AMT-S.yaml``."""
    from pathlib import Path

    vbench = import_vbench("vbench")
    return str(Path(vbench.__file__).parent / "third_party" / "amt" / "cfgs" / "AMT-S.yaml")


def build_amt():
    """AMT-S with random weights, built from vbench's config (no checkpoint)."""
    from omegaconf import OmegaConf

    build_utils = import_vbench("vbench.third_party.amt.utils.build_utils")
    return build_utils.build_from_cfg(OmegaConf.load(amt_config_path()).network)


def load_amt(path: str | None = None, device: str | None = None):
    """AMT-S with the weights of ``path`` or the manifest id ``vbench_amt_s`` (``{'state_dict': ...}``)."""
    ckpt = resolve("vbench_amt_s", path)  # before building: a missing file fails fast
    model = build_amt()
    model.load_state_dict(load_state_dict(ckpt, key="state_dict", strip_prefix=""))
    return model.to(device or default_device()).eval()


# ---------------------------------------------------------------------------------------------
# Flow statistics
# ---------------------------------------------------------------------------------------------
def pad_to_multiple(a, b, multiple: int = 8):
    """Replicate-pad two ``N x 3 x H x W`` batches so H and W are multiples of ``multiple``, split evenly (RAFT's
    ``InputPadder`` in 'sintel' mode)."""
    import torch.nn.functional as F

    h, w = a.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    pad = [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2]
    return F.pad(a, pad, mode="replicate"), F.pad(b, pad, mode="replicate")


def top_flow_magnitudes(raft, first: np.ndarray, second: np.ndarray, fraction: float, batch_size: int = 4) -> np.ndarray:
    """Per pair ``(first[i], second[i])`` (uint8 ``N x H x W x 3``), the mean of the top ``fraction`` of RAFT flow
    magnitudes on the padded grid (``int(h * w * fraction)`` values, as VBench)."""
    import torch

    device = next(raft.parameters()).device
    out = []
    with torch.no_grad():
        for start in range(0, len(first), batch_size):
            a = torch.from_numpy(np.ascontiguousarray(first[start : start + batch_size])).permute(0, 3, 1, 2).float()
            b = torch.from_numpy(np.ascontiguousarray(second[start : start + batch_size])).permute(0, 3, 1, 2).float()
            a, b = pad_to_multiple(a.to(device), b.to(device))
            _, flow = raft(a, b, iters=RAFT_ITERS, test_mode=True)
            magnitude = torch.sqrt(flow[:, 0] ** 2 + flow[:, 1] ** 2).flatten(1)
            k = int(magnitude.shape[1] * fraction)
            out.append(torch.topk(magnitude, k, dim=1).values.mean(dim=1).double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def is_static(video: Video, raft, batch_size: int = 4) -> bool:
    """VBench's static filter (``static_filter.py``) on one video."""
    frames = video.frames
    t, h, w, _ = frames.shape
    if t < 2:
        raise MediaError(f"static filter needs at least 2 frames, the video has {t}")
    first = np.concatenate([frames[:-1], frames[[0, -1]]])
    second = np.concatenate([frames[1:], frames[[-1, 0]]])
    scores = top_flow_magnitudes(raft, first, second, 0.02, batch_size)
    thres = 3.0 * min(h, w) / 256.0
    count_num = round(2 * (t / 16.0))
    # VBench returns early once the running count exceeds count_num: same as comparing the total
    if int((scores[:-2] > thres).sum()) > count_num:
        return False
    return not bool((scores[-2:] > thres * count_num * 2).any())


def static_filter(videos: list[Any], raft_path: str | None = None) -> list[bool]:
    """Which of ``videos`` (Video / array / path) VBench's static filter keeps."""
    raft = load_raft(raft_path)
    return [is_static(as_video(v), raft) for v in videos]


def dynamic_interval(fps: float) -> int:
    return max(1, round(fps / 8))


def is_dynamic(video: Video, raft, batch_size: int = 4) -> bool:
    """VBench's dynamic_degree decision for one video."""
    frames = video.frames[:: dynamic_interval(video.fps)]
    t, h, w, _ = frames.shape
    if t < 2:
        raise MediaError(f"dynamic_degree needs at least 2 frames after subsampling, the video has {t}")
    scores = top_flow_magnitudes(raft, frames[:-1], frames[1:], 0.05, batch_size)
    thres = 6.0 * min(h, w) / 256.0
    count_num = round(4 * (t / 16.0))
    return int((scores > thres).sum()) >= count_num


def smoothness_score(video: Video, amt) -> float:
    """VBench's motion smoothness of one video with an AMT-S network."""
    import torch

    amt_utils = import_vbench("vbench.third_party.amt.utils.utils")
    frames = video.frames
    kept = frames[0::2]
    if len(kept) < 2:
        raise MediaError(f"motion_smoothness needs at least 3 frames, the video has {len(frames)}")
    device = next(amt.parameters()).device
    inputs = torch.from_numpy(np.ascontiguousarray(kept)).permute(0, 3, 1, 2).float().div(255.0)
    padder = amt_utils.InputPadder(inputs.shape, 16)
    inputs = padder.pad(inputs.to(device))
    embt = torch.tensor(0.5, dtype=torch.float32, device=device).view(1, 1, 1, 1)
    diffs = []
    with torch.no_grad():
        for k in range(len(kept) - 1):
            pred = amt(inputs[k : k + 1], inputs[k + 1 : k + 2], embt, scale_factor=1.0, eval=True)["imgt_pred"]
            if not torch.isfinite(pred).all():  # VBench would silently cast NaN to uint8
                raise MediaError("motion_smoothness: AMT-S produced non-finite frames (bad weights or a frame under 128 px?)")
            image = (padder.unpad(pred) * 255.0)[0].permute(1, 2, 0).cpu().numpy().clip(0, 255).astype(np.uint8)
            real = frames[2 * k + 1]
            diffs.append(np.mean(np.abs(real.astype(np.int16) - image.astype(np.int16))))
    return float((255.0 - np.mean(diffs)) / 255.0)


def dynamic_degree(videos: list[Any], raft_path: str | None = None) -> float:
    """Fraction of ``videos`` that VBench's RAFT rule calls dynamic."""
    raft = load_raft(raft_path)
    return float(np.mean([is_dynamic(as_video(v), raft) for v in videos]))


def motion_smoothness(videos: list[Any], amt_path: str | None = None) -> float:
    """Mean over ``videos`` of VBench's AMT-S motion smoothness."""
    amt = load_amt(amt_path)
    return float(np.mean([smoothness_score(as_video(v), amt) for v in videos]))


# ---------------------------------------------------------------------------------------------
# Registered metrics
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DynamicOptions:
    """``raft_path``: explicit RAFT checkpoint (else manifest ``vbench_raft_things``); ``batch_size``: frame pairs
    per RAFT call (speed only)."""

    raft_path: str | None = None
    batch_size: int = 4


@register_metric(
    "vbench_dynamic_degree",
    description="VBench dynamic degree: fraction of videos whose RAFT flow exceeds the motion threshold",
    capability=("t2v", "long_video"),
)
class DynamicDegree(VBenchDimensionMetric):
    dimension: ClassVar[str] = "dynamic_degree"
    Options = DynamicOptions
    weights: ClassVar[tuple[str, ...]] = ("vbench_raft_things",)
    path_option: ClassVar[str | None] = "raft_path"

    def score_video(self, video: Video, item: MetricInput) -> float | Skip:
        require_frames(video, 2, item.item_id, self.dimension)
        raft = self.cached("raft", lambda: load_raft(self.options.raft_path))
        return float(is_dynamic(video, raft, self.options.batch_size))


@dataclass(frozen=True)
class SmoothnessOptions:
    """``amt_path``: explicit AMT-S checkpoint (else manifest ``vbench_amt_s``)."""

    amt_path: str | None = None


@register_metric(
    "vbench_motion_smoothness",
    description="VBench motion smoothness: (255 - MAE between AMT-S interpolated and real odd frames)/255",
    capability=("t2v", "long_video"),
)
class MotionSmoothness(VBenchDimensionMetric):
    dimension: ClassVar[str] = "motion_smoothness"
    Options = SmoothnessOptions
    weights: ClassVar[tuple[str, ...]] = ("vbench_amt_s",)
    path_option: ClassVar[str | None] = "amt_path"

    def score_video(self, video: Video, item: MetricInput) -> float | Skip:
        require_frames(video, 3, item.item_id, self.dimension)
        amt = self.cached("amt", lambda: load_amt(self.options.amt_path))
        return smoothness_score(video, amt)
