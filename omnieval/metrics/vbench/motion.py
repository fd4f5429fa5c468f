"""VBench motion dimensions on vbench's own networks: RAFT static filter, ``dynamic_degree``, ``motion_smoothness``.

The networks are vbench 0.1.5's classes (``vbench.third_party.RAFT`` and ``vbench.third_party.amt``), built
here and loaded from files resolved by the weight manifest (``vbench_raft_things``, ``vbench_amt_s``) with
``torch.load(weights_only=True)``; vbench's own init code (which calls ``wget``) is never run.

Conventions (frames are RGB uint8 as decoded by cv2; float 0..255 into RAFT, 0..1 into AMT):

* **RAFT** (``raft-things``; small=False, mixed_precision=False, alternate_corr=False), 20 iterations,
  ``test_mode``; both frames replicate-padded to a multiple of 8, split evenly (``InputPadder``, 'sintel' mode);
  the flow is scored on the *padded* grid.  RAFT's 4-level correlation pyramid needs frames of at least 128 px:
  per pair, the mean of the top ``fraction`` of flow magnitudes ``sqrt(u^2 + v^2)``.
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

from collections.abc import Callable
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
#: AMT-S frame pairs per call (speed only; 2 is the fastest on a 2-core CPU for 256 px frames)
AMT_BATCH = 2


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
    return pad_frames(a, multiple), pad_frames(b, multiple)


def pad_frames(x, multiple: int = 8):
    """Replicate-pad one ``N x 3 x H x W`` batch as :func:`pad_to_multiple` does (per frame)."""
    import torch.nn.functional as F

    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    return F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2], mode="replicate")


def top_flow_magnitudes(raft, first: np.ndarray, second: np.ndarray, fraction: float, batch_size: int = 4) -> np.ndarray:
    """Per pair ``(first[i], second[i])`` (uint8 ``N x H x W x 3``), the mean of the top ``fraction`` of RAFT flow
    magnitudes on the padded grid (``int(h * w * fraction)`` values, as VBench)."""
    frames = np.concatenate([first, second]) if len(first) else first
    pairs = [(i, len(first) + i) for i in range(len(first))]
    return pair_flow_scores(raft, frames, pairs, fraction, batch_size)


class _FrameFeatures:
    """RAFT's per-frame inputs of one video, each computed once: the padded frame scaled to [-1, 1], the feature
    map ``fnet`` (instance norm: per frame, so a frame's features do not depend on the pair it is in) and the
    context ``cnet`` split into (tanh hidden state, relu input).  A frame is dropped after its last pair."""

    def __init__(self, raft, frames: np.ndarray, pairs: list[tuple[int, int]]):
        self.raft, self.frames = raft, frames
        self.device = next(raft.parameters()).device
        self.last_use = {}
        for n, pair in enumerate(pairs):
            for index in pair:
                self.last_use[index] = n
        self.fmap: dict[int, Any] = {}
        self.context: dict[int, Any] = {}

    def _images(self, indices: list[int]):
        import torch

        x = torch.from_numpy(np.ascontiguousarray(self.frames[indices])).permute(0, 3, 1, 2).float().to(self.device)
        return 2 * (pad_frames(x) / 255.0) - 1.0  # RAFT.forward's normalisation

    def features(self, indices: list[int]):
        import torch

        todo = [i for i in dict.fromkeys(indices) if i not in self.fmap]
        if todo:
            for i, f in zip(todo, self.raft.fnet(self._images(todo)).float()):
                self.fmap[i] = f
        return torch.stack([self.fmap[i] for i in indices])

    def contexts(self, indices: list[int]):
        import torch

        todo = [i for i in dict.fromkeys(indices) if i not in self.context]
        if todo:
            hdim, cdim = self.raft.hidden_dim, self.raft.context_dim
            net, inp = torch.split(self.raft.cnet(self._images(todo)), [hdim, cdim], dim=1)
            for i, h, c in zip(todo, torch.tanh(net), torch.relu(inp)):
                self.context[i] = (h, c)
        return torch.stack([self.context[i][0] for i in indices]), torch.stack([self.context[i][1] for i in indices])

    def release(self, done: int) -> None:
        for cache in (self.fmap, self.context):
            for i in [i for i in cache if self.last_use[i] <= done]:
                del cache[i]


def raft_flows(raft, fmap1, fmap2, net, inp, iters: int = RAFT_ITERS):
    """The upsampled flow that vbench's ``RAFT.forward(image1, image2, iters, test_mode=True)`` returns, from the
    pair's feature maps and context.  The same operations in the same order, except that the convex-upsampling mask
    and the upsampled flow are computed for the last iteration only (test mode discards the others; neither feeds
    back into the iterations)."""
    import torch

    corr_mod = import_vbench("vbench.third_party.RAFT.core.corr")
    utils_core = import_vbench("vbench.third_party.RAFT.core.utils_core.utils")
    n, _, h, w = fmap1.shape
    corr_fn = corr_mod.CorrBlock(fmap1, fmap2, radius=raft.args.corr_radius)
    coords0 = utils_core.coords_grid(n, h, w, device=fmap1.device)
    coords1 = utils_core.coords_grid(n, h, w, device=fmap1.device)
    block = raft.update_block
    for _ in range(iters):
        corr = corr_fn(coords1)
        flow = coords1 - coords0
        motion_features = block.encoder(flow, corr)
        net = block.gru(net, torch.cat([inp, motion_features], dim=1))
        coords1 = coords1 + block.flow_head(net)
    return raft.upsample_flow(coords1 - coords0, 0.25 * block.mask(net))


def pair_flow_scores(raft, frames: np.ndarray, pairs: list[tuple[int, int]], fraction: float, batch_size: int = 4,
                     stop: Callable[[np.ndarray], bool] | None = None) -> np.ndarray:
    """For each ``(i, j)`` of ``pairs``, in order: the mean of the top ``fraction`` of the magnitudes of RAFT's flow
    from ``frames[i]`` to ``frames[j]`` (uint8 ``T x H x W x 3``, replicate-padded to a multiple of 8, the flow
    scored on the padded grid; ``int(h * w * fraction)`` values, as VBench).  Pairs run ``batch_size`` at a time,
    each frame's feature map and context computed once.  ``stop(scores so far)`` returning True ends the run early
    (the rule's decision is known): the returned array is then shorter than ``pairs``."""
    import torch

    if not pairs:
        return np.zeros(0)
    flows = _pair_flows(raft, frames, pairs) if hasattr(raft, "fnet") else _pair_flows_any(raft, frames, pairs)
    out: list[np.ndarray] = []
    with torch.inference_mode():
        for start in range(0, len(pairs), batch_size):
            flow = flows(start, start + batch_size)
            magnitude = torch.sqrt(flow[:, 0] ** 2 + flow[:, 1] ** 2).flatten(1)
            k = int(magnitude.shape[1] * fraction)
            out.append(torch.topk(magnitude, k, dim=1).values.mean(dim=1).double().cpu().numpy())
            if stop is not None and stop(np.concatenate(out)):
                break
    return np.concatenate(out)


def _pair_flows(raft, frames: np.ndarray, pairs: list[tuple[int, int]]):
    """``flows(start, stop)``: vbench's RAFT flows of ``pairs[start:stop]`` (see :func:`raft_flows`)."""
    cache = _FrameFeatures(raft, frames, pairs)

    def flows(start: int, stop: int):
        chunk = pairs[start:stop]
        firsts, seconds = [i for i, _ in chunk], [j for _, j in chunk]
        fmap1, fmap2 = cache.features(firsts), cache.features(seconds)
        net, inp = cache.contexts(firsts)
        cache.release(start + len(chunk) - 1)
        return raft_flows(raft, fmap1, fmap2, net, inp)

    return flows


def _pair_flows_any(flow_net, frames: np.ndarray, pairs: list[tuple[int, int]]):
    """The same for any module called like RAFT, ``flow_net(image1, image2, iters=, test_mode=True) -> (_, flow)``."""
    import torch

    device = next(flow_net.parameters()).device

    def flows(start: int, stop: int):
        chunk = pairs[start:stop]
        a = torch.from_numpy(np.ascontiguousarray(frames[[i for i, _ in chunk]])).permute(0, 3, 1, 2).float()
        b = torch.from_numpy(np.ascontiguousarray(frames[[j for _, j in chunk]])).permute(0, 3, 1, 2).float()
        a, b = pad_to_multiple(a.to(device), b.to(device))
        return flow_net(a, b, iters=RAFT_ITERS, test_mode=True)[1]

    return flows


def is_static(video: Video, raft, batch_size: int = 4) -> bool:
    """VBench's static filter (``static_filter.py``) on one video.

    Non-static iff more than ``count`` consecutive pairs exceed ``thres``, or the (first, last) or (last, first)
    pair exceeds ``thres * count * 2`` -- a decision that does not depend on the order the pairs are scored in, so
    the two first/last pairs run first and scoring stops as soon as the video is known to move."""
    frames = video.frames
    t, h, w, _ = frames.shape
    if t < 2:
        raise MediaError(f"static filter needs at least 2 frames, the video has {t}")
    thres = 3.0 * min(h, w) / 256.0
    count_num = round(2 * (t / 16.0))
    pairs = [(0, t - 1), (t - 1, 0)] + [(i, i + 1) for i in range(t - 1)]

    def moves(scores: np.ndarray) -> bool:
        return bool((scores[:2] > thres * count_num * 2).any()) or int((scores[2:] > thres).sum()) > count_num

    return not moves(pair_flow_scores(raft, frames, pairs, 0.02, batch_size, stop=moves))


def static_filter(videos: list[Any], raft_path: str | None = None) -> list[bool]:
    """Which of ``videos`` (Video / array / path) VBench's static filter keeps."""
    raft = load_raft(raft_path)
    return [is_static(as_video(v), raft) for v in videos]


def dynamic_interval(fps: float) -> int:
    return max(1, round(fps / 8))


def is_dynamic(video: Video, raft, batch_size: int = 4) -> bool:
    """VBench's dynamic_degree decision for one video (see :func:`dynamic_decision`)."""
    return dynamic_decision(video, raft, batch_size)[0]


def dynamic_decision(video: Video, raft, batch_size: int = 4) -> tuple[bool, int]:
    """VBench's dynamic_degree decision for one video, and how many frame pairs were scored to reach it.

    Dynamic iff at least ``count`` consecutive pairs (frames subsampled by :func:`dynamic_interval`) exceed
    ``thres``.  Scoring stops as soon as the decision is known (``count`` pairs above, or too few pairs left to
    reach it); the decision is the one over all pairs."""
    frames = video.frames[:: dynamic_interval(video.fps)]
    t, h, w, _ = frames.shape
    if t < 2:
        raise MediaError(f"dynamic_degree needs at least 2 frames after subsampling, the video has {t}")
    thres = 6.0 * min(h, w) / 256.0
    count_num = round(4 * (t / 16.0))
    pairs = [(i, i + 1) for i in range(t - 1)]
    if count_num <= 0:
        return True, 0  # VBench's check_move returns at its first pair: count >= 0

    def decided(scores: np.ndarray) -> bool:
        above = int((scores > thres).sum())
        return above >= count_num or above + len(pairs) - len(scores) < count_num

    scores = pair_flow_scores(raft, frames, pairs, 0.05, batch_size, stop=decided)
    return int((scores > thres).sum()) >= count_num, len(scores)


def smoothness_score(video: Video, amt, batch_size: int = AMT_BATCH) -> float:
    """VBench's motion smoothness of one video with an AMT-S network (``batch_size`` frame pairs per call)."""
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
    pairs = len(kept) - 1
    diffs: list[np.ndarray] = []
    with torch.inference_mode():
        for start in range(0, pairs, batch_size):
            stop = min(start + batch_size, pairs)
            embt = torch.full((stop - start, 1, 1, 1), 0.5, dtype=torch.float32, device=device)
            pred = amt(inputs[start:stop], inputs[start + 1 : stop + 1], embt, scale_factor=1.0, eval=True)["imgt_pred"]
            if not torch.isfinite(pred).all():  # VBench would silently cast NaN to uint8
                raise MediaError("motion_smoothness: AMT-S produced non-finite frames (bad weights or a frame under 128 px?)")
            images = (padder.unpad(pred) * 255.0).permute(0, 2, 3, 1).cpu().numpy().clip(0, 255).astype(np.uint8)
            real = frames[2 * start + 1 : 2 * stop : 2]
            diffs.append(np.abs(real.astype(np.int16) - images.astype(np.int16)).mean(axis=(1, 2, 3)))
    return float((255.0 - np.mean(np.concatenate(diffs))) / 255.0)


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
        raft = self.load_shared("raft", load_raft, "vbench_raft_things", self.options.raft_path)
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
        amt = self.load_shared("amt", load_amt, "vbench_amt_s", self.options.amt_path)
        return smoothness_score(video, amt)
