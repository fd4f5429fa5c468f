"""Fréchet Video Distance (FVD).

FVD = Fréchet distance between Gaussians fitted to I3D features (400-d Kinetics logits) of real and
generated videos.  Every setting that moves the number is a field of :class:`FVDProtocol`; named
presets reproduce the common implementations:

``cdfvd_i3d`` (default; ``cdfvd.fvd.cdfvd('i3d').compute_fvd`` on uint8 arrays)
    PyTorch InceptionI3d ``i3d_pretrained_400.pt``; the first 16 frames; every frame squashed to
    224 x 224 (bilinear, ``align_corners=False``, no antialias) on ``[0, 255]`` floats, then
    ``2 x / 255 - 1``; covariance ``1/N``; at most 2048 generated videos (the first ones; cd-fvd's
    ``n_fake``), all real videos (``n_real='full'``).  cd-fvd's array API uses every frame it is given,
    so it equals this preset on 16-frame clips (or set ``num_frames=None``).  No resampling: cd-fvd's
    loader-based ``compute_fake_stats`` re-draws clips until it has ``n_fake`` videos, this never does.
``styleganv_16f`` (stylegan-v ``fvd2048_16f``)
    TorchScript I3D ``i3d_torchscript.pt`` called with uint8-range input, ``rescale=True``,
    ``resize=True`` (it resizes and rescales itself); 16 consecutive frames, from frame 0 for generated
    videos, at a seeded random offset for real ones; covariance ``1/N``; 2048 + 2048 videos.
``styleganv_256`` (stylegan-v ``fvd2048_16f`` on its 256 px prepared datasets; Latte's UCF-101 protocol)
    ``styleganv_16f`` plus stylegan-v's dataset preparation as a shared pre-step: short side to 256 with
    Lanczos (PIL, via torchvision ``resize``: long side ``int(256 * long / short)``), centre crop 256 x 256
    (torchvision ``center_crop``: offsets rounded), applied to real **and** generated clips.  The 2048 real
    videos are a seeded random subset of the reference list (``real_subset='seeded'``); stylegan-v's code takes
    the first 2048 in sorted order, which on UCF-101 covers only ~16 of the 101 classes (``real_subset='first'``
    reproduces it).  Not reproduced: stylegan-v stores its real frames as JPEG (quality 95).
``tats_i3d`` (TATS ``tats/fvd/fvd.py`` with ``tats/data.py`` preprocessing)
    PyTorch I3D; a shared pre-step on both sides: short side to 128 (``F.interpolate`` bilinear,
    ``align_corners=False``, long side ``ceil``) on ``[0, 1]`` floats, centre crop 128 (offset floored), back
    to uint8 by truncation (TATS' ``(x * 255).astype(uint8)``); then squashed to 224 and ``2 x / 255 - 1``;
    covariance ``N - 1``; 2048 + 2048.  TATS draws its real clips as 2048 random 16-frame windows of the
    shuffled train split (length-weighted, unseeded); here: a seeded random subset of 2048 listed videos, one
    window each at a seeded random offset.
``jh_styleganv`` (JunyaoHu/common_metrics_on_video_quality ``fvd/styleganv``)
    the same TorchScript with ``rescale=False, resize=False``; all frames; short side bilinearly resized
    to 224 (other side ``ceil``), centre crop 224, ``[-1, 1]``; covariance ``N - 1`` (``np.cov``).

Real videos (``max_real``): ``real_subset='first'`` keeps the first ``max_real`` of the list,
``'seeded'`` a random subset drawn by ``numpy.random.default_rng(seed)`` (kept in list order).  The random
frame offset of a video given as a path is keyed by its file name, else by its position.

Frame policies: ``first`` (the first ``num_frames``), ``random`` (``num_frames`` consecutive frames at
an offset drawn from ``numpy.random.default_rng([seed, crc32(video key)])``, so it does not depend on
order or process count), ``uniform`` (``linspace(0, T - 1, num_frames)`` rounded).  A video with fewer
than ``max(num_frames, 10)`` frames is an error naming it (I3D needs at least
:data:`~omnieval.metrics.nets.i3d.MIN_FRAMES` = 10 frames).

The matrix square root defaults to the symmetric eigenvalue form (``sqrt_method='eigh'``), equal to the
references' ``scipy.linalg.sqrtm`` to ~1e-7 relative where sqrtm is accurate (see
:mod:`omnieval.metrics.frechet`); ``sqrt_method='sqrtm'`` reproduces them operation for operation.

Reference statistics are :class:`~omnieval.metrics.frechet.FeatureStats` saved as ``.npz`` with the
hash of the protocol fields that determine the real-side features (:meth:`FVDProtocol.reference_hash`) and
the reference set they were computed from (:mod:`omnieval.metrics.fvd_reference`); loading them under another
protocol, or for another set, is refused.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from omnieval.errors import ConfigError, MediaError
from omnieval.media import Video, as_uint8_frames, read_video, sample_frame_indices
from omnieval.metrics import fvd_reference as fvd_ref
from omnieval.metrics.base import Metric, MetricInput, mergeable_state
from omnieval.metrics.frechet import SQRT_METHODS, FeatureStats, frechet_distance
from omnieval.metrics.fvd_reference import (
    ReferenceSet,
    cache_path,
    files_digest,
    list_files,
)
from omnieval.registry import register_metric

__all__ = [
    "FVDProtocol", "PRESETS", "FeatureStats", "compute_fvd", "extract_features", "frechet_distance",
    "get_protocol", "load_detector", "reference_stats", "FVD",
]

DETECTOR_WEIGHTS = {"i3d": "i3d_pretrained_400", "i3d_torchscript": "i3d_torchscript"}
FRAME_POLICIES = ("first", "random", "uniform")
RESIZE_MODES = ("squash", "short_side_center_crop", "detector")
REAL_SUBSETS = ("first", "seeded")
PRE_FILTERS = ("bilinear", "lanczos")
VALUE_RANGES = ("minus1_1", "uint8")


def _choice(name: str, value: Any, allowed: Iterable[Any]) -> None:
    allowed = tuple(allowed)
    if value not in allowed:
        raise ConfigError(f"FVD protocol: {name}={value!r} is not one of {', '.join(map(repr, allowed))}")


@dataclass(frozen=True)
class FVDProtocol:
    """Every convention that changes an FVD value (see the module docstring for the presets)."""

    detector: str = "i3d"  # i3d (i3d_pretrained_400.pt) | i3d_torchscript (stylegan-v)
    num_frames: int | None = 16  # frames per clip; None = all frames
    frame_policy: str = "first"  # generated videos: first | random | uniform
    real_frame_policy: str = "first"  # real videos: first | random | uniform
    seed: int = 42  # for the random frame offset
    resize: str = "squash"  # squash (224x224) | short_side_center_crop | detector (TorchScript resizes)
    resolution: int = 224
    value_range: str = "minus1_1"  # minus1_1 (2x/255 - 1) | uint8 ([0, 255]; TorchScript rescale=True)
    ddof: int = 0  # covariance 1/(N - ddof)
    sqrt_method: str = "eigh"  # eigh | sqrtm
    max_videos: int | None = 2048  # generated videos used (the first ones); None = all
    max_real: int | None = None  # real videos used; None = all
    real_subset: str = "first"  # which max_real videos: first (in list order) | seeded (a seeded random subset)
    pre_resize: int | None = None  # shared pre-step on both sides: short side -> N, centre crop N x N, uint8
    pre_filter: str = "bilinear"  # bilinear (torch, TATS) | lanczos (PIL via torchvision, stylegan-v)
    pre_uint8: str = "truncate"  # bilinear pre-step back to uint8: truncate (TATS) | round

    def __post_init__(self):
        _choice("detector", self.detector, DETECTOR_WEIGHTS)
        _choice("real_subset", self.real_subset, REAL_SUBSETS)
        _choice("pre_filter", self.pre_filter, PRE_FILTERS)
        _choice("pre_uint8", self.pre_uint8, ("truncate", "round"))
        if self.pre_resize is not None and self.pre_resize < 16:
            raise ConfigError(f"FVD protocol: pre_resize={self.pre_resize} must be at least 16 (or None)")
        _choice("frame_policy", self.frame_policy, FRAME_POLICIES)
        _choice("real_frame_policy", self.real_frame_policy, FRAME_POLICIES)
        _choice("resize", self.resize, RESIZE_MODES)
        _choice("value_range", self.value_range, VALUE_RANGES)
        _choice("ddof", self.ddof, (0, 1))
        _choice("sqrt_method", self.sqrt_method, SQRT_METHODS)
        if self.resize == "detector" and self.detector != "i3d_torchscript":
            raise ConfigError("FVD protocol: resize='detector' needs detector='i3d_torchscript' (only it resizes itself)")
        if self.num_frames is not None and self.num_frames < 10:
            raise ConfigError(f"FVD protocol: num_frames={self.num_frames}, but I3D needs at least 10 frames")
        for name in ("max_videos", "max_real"):
            value = getattr(self, name)
            if value is not None and value < 2:
                raise ConfigError(f"FVD protocol: {name}={value} must be at least 2 (or None)")

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def hash(self) -> str:
        """Hash of every field (for results)."""
        return _digest(self.as_dict())

    def reference_hash(self) -> str:
        """Hash of the fields that determine real-side features (keys saved reference statistics)."""
        keys = ("detector", "num_frames", "real_frame_policy", "seed", "resize", "resolution", "value_range", "max_real",
                "real_subset", "pre_resize", "pre_filter", "pre_uint8")
        fields = {k: getattr(self, k) for k in keys}
        if self.real_frame_policy != "random" and not (self.real_subset == "seeded" and self.max_real is not None):
            fields.pop("seed")
        for key, default in (("real_subset", "first"), ("pre_filter", "bilinear"), ("pre_uint8", "truncate")):
            if fields[key] == default:  # hashes of statistics saved before these fields existed stay valid
                fields.pop(key)
        if fields["pre_resize"] is None:
            for key in ("pre_resize", "pre_filter", "pre_uint8"):
                fields.pop(key, None)
        return _digest(fields)

    @property
    def name(self) -> str:
        return next((name for name, preset in PRESETS.items() if preset == self), "custom")

    def describe(self) -> dict[str, Any]:
        """What to record next to an FVD value: preset name, every field and the hashes."""
        return {"preset": self.name, **self.as_dict(), "protocol_hash": self.hash(), "reference_hash": self.reference_hash()}


def _digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


PRESETS: dict[str, FVDProtocol] = {
    "cdfvd_i3d": FVDProtocol(),
    "styleganv_16f": FVDProtocol(
        detector="i3d_torchscript", num_frames=16, frame_policy="first", real_frame_policy="random", seed=0,
        resize="detector", value_range="uint8", ddof=0, max_videos=2048, max_real=2048,
    ),
    "styleganv_256": FVDProtocol(
        detector="i3d_torchscript", num_frames=16, frame_policy="first", real_frame_policy="random", seed=0,
        resize="detector", value_range="uint8", ddof=0, max_videos=2048, max_real=2048, real_subset="seeded",
        pre_resize=256, pre_filter="lanczos",
    ),
    "tats_i3d": FVDProtocol(
        detector="i3d", num_frames=16, frame_policy="first", real_frame_policy="random", seed=0, resize="squash",
        value_range="minus1_1", ddof=1, max_videos=2048, max_real=2048, real_subset="seeded", pre_resize=128,
        pre_filter="bilinear", pre_uint8="truncate",
    ),
    "jh_styleganv": FVDProtocol(
        detector="i3d_torchscript", num_frames=None, resize="short_side_center_crop", value_range="minus1_1",
        ddof=1, max_videos=None, max_real=None,
    ),
}


def get_protocol(preset: str | FVDProtocol | None = None, **overrides: Any) -> FVDProtocol:
    """A preset (by name; default ``cdfvd_i3d``) with ``overrides`` applied (unknown keys are errors)."""
    if isinstance(preset, FVDProtocol):
        base = preset
    else:
        name = preset or "cdfvd_i3d"
        if name not in PRESETS:
            raise ConfigError(f"unknown FVD preset {name!r}; choose one of {', '.join(PRESETS)}")
        base = PRESETS[name]
    allowed = {f.name for f in dataclasses.fields(FVDProtocol)}
    unknown = sorted(set(overrides) - allowed)
    if unknown:
        raise ConfigError(f"unknown FVD protocol field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    return dataclasses.replace(base, **overrides)


# ---------------------------------------------------------------------------------------------
# Detector
# ---------------------------------------------------------------------------------------------
def load_detector(detector: str, ckpt_path: str | os.PathLike | None = None):
    """The feature network for ``detector`` from the weight manifest (or ``ckpt_path``); never downloads."""
    from omnieval.metrics.weights import resolve

    _choice("detector", detector, DETECTOR_WEIGHTS)
    path = resolve(DETECTOR_WEIGHTS[detector], ckpt_path)
    stat = path.stat()
    return _load_detector_cached(detector, str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=2)
def _load_detector_cached(detector: str, path: str, mtime_ns: int, size: int):
    from omnieval.metrics.nets.i3d import InceptionI3d, TorchScriptI3D

    if detector == "i3d":
        return InceptionI3d.from_checkpoint(path)
    return TorchScriptI3D.from_file(path)


# ---------------------------------------------------------------------------------------------
# Frames -> network input -> features
# ---------------------------------------------------------------------------------------------
def select_frames(frames: "np.ndarray | Video", protocol: FVDProtocol, policy: str, key: str) -> np.ndarray:
    """The clip the protocol uses from one video (``T x H x W x 3`` uint8, or a :class:`Video`, of which only
    the clip's frames are decoded), or a MediaError naming it."""
    from omnieval.metrics.nets.i3d import MIN_FRAMES

    total = len(frames)
    need = max(protocol.num_frames or 0, MIN_FRAMES)
    if total < need:
        raise MediaError(f"FVD: video {key} has {total} frames; the protocol needs at least {need} (I3D minimum is {MIN_FRAMES})")
    n = protocol.num_frames
    if n is None:
        return frames.frames if isinstance(frames, Video) else frames
    if policy == "random":
        offset = int(np.random.default_rng([protocol.seed, zlib.crc32(str(key).encode())]).integers(0, total - n + 1))
        indices = np.arange(offset, offset + n)
    else:
        indices = sample_frame_indices(total, n, policy)
    return frames.sample(indices) if isinstance(frames, Video) else frames[indices]


def _center_crop_offsets(height: int, width: int, size: int, rounded: bool) -> tuple[int, int]:
    if rounded:  # torchvision center_crop
        return round((height - size) / 2.0), round((width - size) / 2.0)
    return (height - size) // 2, (width - size) // 2


def pre_step(clip: np.ndarray, protocol: FVDProtocol) -> np.ndarray:
    """The protocol's shared spatial pre-step (``pre_resize``; none by default) on one ``T x H x W x 3`` uint8
    clip: short side to ``pre_resize``, centre crop ``pre_resize x pre_resize``, uint8 (see the presets)."""
    size = protocol.pre_resize
    if size is None:
        return clip
    _, h, w, _ = clip.shape
    if protocol.pre_filter == "lanczos":  # torchvision.transforms.functional.resize on PIL images
        from PIL import Image

        short, long = (h, w) if h <= w else (w, h)
        new_long = int(size * long / short)
        target = (new_long, size) if h <= w else (size, new_long)  # PIL (width, height)
        frames = np.stack([np.asarray(Image.fromarray(f).resize(target, Image.LANCZOS)) for f in clip])
        top, left = _center_crop_offsets(frames.shape[1], frames.shape[2], size, rounded=True)
        return np.ascontiguousarray(frames[:, top:top + size, left:left + size])
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(clip).permute(0, 3, 1, 2).float() / 255.0
    scale = size / min(h, w)
    target = (size, int(np.ceil(w * scale))) if h < w else (int(np.ceil(h * scale)), size)
    x = F.interpolate(x, size=target, mode="bilinear", align_corners=False)
    top, left = _center_crop_offsets(x.shape[2], x.shape[3], size, rounded=False)
    x = x[:, :, top:top + size, left:left + size].permute(0, 2, 3, 1) * 255.0
    x = torch.round(x) if protocol.pre_uint8 == "round" else x
    return np.ascontiguousarray(x.clamp(0, 255).to(torch.uint8).numpy())


def preprocess(clips: np.ndarray, protocol: FVDProtocol):
    """``B x T x H x W x 3`` uint8 -> detector input ``B x 3 x T x H' x W'`` (resize, then value range)."""
    import torch
    import torch.nn.functional as F

    b, t, h, w, c = clips.shape
    if protocol.resize == "detector" and protocol.value_range == "uint8":
        return torch.from_numpy(clips).permute(0, 4, 1, 2, 3).contiguous()  # uint8, as stylegan-v feeds it
    x = torch.from_numpy(clips).float().flatten(0, 1).permute(0, 3, 1, 2).contiguous()  # (B T) x 3 x H x W
    size = protocol.resolution
    if protocol.resize == "squash":
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    elif protocol.resize == "short_side_center_crop":
        scale = size / min(h, w)
        target = (size, int(np.ceil(w * scale))) if h < w else (int(np.ceil(h * scale)), size)
        x = F.interpolate(x, size=target, mode="bilinear", align_corners=False)
        top, left = (x.shape[2] - size) // 2, (x.shape[3] - size) // 2
        x = x[:, :, top:top + size, left:left + size]
    x = x.reshape(b, t, c, x.shape[2], x.shape[3]).transpose(1, 2)
    if protocol.value_range == "minus1_1":
        x = 2.0 * x / 255.0 - 1.0
    return x.contiguous()


def run_detector(detector, batch, protocol: FVDProtocol) -> np.ndarray:
    """Features (``B x 400`` float32) of a preprocessed batch."""
    import torch

    from omnieval.metrics.nets.i3d import TorchScriptI3D

    with torch.inference_mode():
        if isinstance(detector, TorchScriptI3D):
            out = detector(batch, rescale=protocol.value_range == "uint8", resize=protocol.resize == "detector")
        else:
            out = detector(batch)
    return out.float().cpu().numpy()


def _frames_of(video: Any, key: str) -> "np.ndarray | Video":
    """A :class:`Video` (a path opens lazily) or a validated uint8 array."""
    if isinstance(video, Video):
        return video
    if isinstance(video, (str, os.PathLike)):
        return read_video(video)
    return as_uint8_frames(video, what=f"FVD video {key}")


def iter_features(videos: Iterable[tuple[str, Any]], detector, protocol: FVDProtocol, policy: str,
                  batch_size: int = 8) -> Iterator[np.ndarray]:
    """Features of ``(key, video)`` pairs, in order, in batches of up to ``batch_size`` equal-shaped clips.

    ``video``: uint8 ``T x H x W x 3`` (or float in [0, 1]), a :class:`~omnieval.media.Video` or a path.
    """
    pending: list[np.ndarray] = []

    def flush() -> np.ndarray:
        batch = preprocess(np.stack(pending), protocol)
        pending.clear()
        return run_detector(detector, batch, protocol)

    for key, video in videos:
        clip = pre_step(select_frames(_frames_of(video, key), protocol, policy, key), protocol)
        if pending and (clip.shape != pending[0].shape or len(pending) >= batch_size):
            yield flush()
        pending.append(clip)
    if pending:
        yield flush()


def subset(items: list, limit: int | None, how: str = "first", seed: int = 0) -> list:
    """``limit`` of ``items``: the first ones, or a seeded random subset kept in order (``real_subset``)."""
    if limit is None or len(items) <= limit:
        return list(items)
    if how == "first":
        return list(items[:limit])
    keep = np.sort(np.random.default_rng(seed).choice(len(items), size=limit, replace=False))
    return [items[i] for i in keep]


def _key(index: int, video: Any) -> str:
    """A video's key (it seeds the random frame offset): a path's file name, else its position."""
    if isinstance(video, (str, os.PathLike)):
        return Path(video).name
    if isinstance(video, Video) and video.path:
        return Path(video.path).name
    return str(index)


def _keyed(videos: Any, limit: int | None, how: str = "first", seed: int = 0) -> list[tuple[str, Any]]:
    """``(key, video)`` pairs from an ``N x T x H x W x 3`` array or a list (keys: :func:`_key`)."""
    if isinstance(videos, np.ndarray):
        if videos.ndim != 5 or videos.shape[-1] != 3:
            raise MediaError(f"FVD: expected videos of shape N x T x H x W x 3, got {videos.shape}")
    return subset([(_key(i, v), v) for i, v in enumerate(videos)], limit, how, seed)


def extract_features(videos: Any, detector: Any = "i3d", protocol: FVDProtocol | str | None = None, *,
                     side: str = "generated", ckpt_path: str | os.PathLike | None = None,
                     batch_size: int = 8) -> np.ndarray:
    """``N x 400`` float32 features of ``videos`` (array ``N x T x H x W x 3`` or list of videos/paths).

    ``detector``: a name (loaded from the manifest or ``ckpt_path``) or a loaded network.  ``side``
    ('generated' | 'real') picks the frame policy and the video cap of the protocol.
    """
    protocol = protocol if isinstance(protocol, FVDProtocol) else get_protocol(protocol)
    _choice("side", side, ("generated", "real"))
    if isinstance(detector, str):
        if detector != protocol.detector:
            protocol = dataclasses.replace(protocol, detector=detector)
        detector = load_detector(detector, ckpt_path)
    if side == "generated":
        items = _keyed(videos, protocol.max_videos)
        policy = protocol.frame_policy
    else:
        items = _keyed(videos, protocol.max_real, protocol.real_subset, protocol.seed)
        policy = protocol.real_frame_policy
    chunks = list(iter_features(items, detector, protocol, policy, batch_size))
    if not chunks:
        raise MediaError(f"FVD: no {side} videos given")
    return np.concatenate(chunks)


def _stats_of(features: Iterable[np.ndarray]) -> FeatureStats:
    stats = FeatureStats()
    for chunk in features:
        stats.update(chunk)
    return stats


def fvd_from_stats(real: FeatureStats, fake: FeatureStats, protocol: FVDProtocol) -> float:
    for side, stats in (("real", real), ("generated", fake)):
        if stats.n < 2:
            raise MediaError(f"FVD needs at least 2 {side} videos, got {stats.n}")
    return frechet_distance(*real.mean_cov(protocol.ddof), *fake.mean_cov(protocol.ddof), method=protocol.sqrt_method)


def compute_fvd(real: Any, fake: Any, detector: str | None = None, ckpt_path: str | os.PathLike | None = None, *,
                preset: str | FVDProtocol | None = None, batch_size: int = 8, **protocol: Any) -> float:
    """FVD between ``real`` and ``fake`` videos (uint8 ``N x T x H x W x 3`` arrays, or lists of
    :class:`~omnieval.media.Video` / arrays / paths).  ``real`` may also be precomputed statistics: a
    :class:`FeatureStats` or an ``.npz`` path (refused if made under another protocol).

    ``preset`` (default ``cdfvd_i3d``, or ``styleganv_16f`` when ``detector='i3d_torchscript'``) plus
    keyword overrides of :class:`FVDProtocol` fields select the protocol.
    """
    if preset is None and detector == "i3d_torchscript":
        preset = "styleganv_16f"
    if detector is not None:
        protocol["detector"] = detector
    proto = get_protocol(preset, **protocol)
    net = load_detector(proto.detector, ckpt_path)
    if isinstance(real, FeatureStats):
        real_stats = real
    elif isinstance(real, (str, os.PathLike)) and str(real).endswith(".npz"):
        real_stats = FeatureStats.load(real, proto.reference_hash())
    else:
        real_items = _keyed(real, proto.max_real, proto.real_subset, proto.seed)
        real_stats = _stats_of(iter_features(real_items, net, proto, proto.real_frame_policy, batch_size))
    fake_stats = _stats_of(iter_features(_keyed(fake, proto.max_videos), net, proto, proto.frame_policy, batch_size))
    return fvd_from_stats(real_stats, fake_stats, proto)


def reference_stats(folder: str | os.PathLike, protocol: FVDProtocol, detector=None, *,
                    reference: ReferenceSet | None = None, ckpt_path: str | os.PathLike | None = None,
                    cache_dir: str | os.PathLike | None = None, batch_size: int = 8) -> FeatureStats:
    """Statistics of the real videos of ``reference`` under ``folder`` (default: every video in it), computed
    once and cached (:mod:`~omnieval.metrics.fvd_reference`: file name, stored set id and files digest).

    The videos are the set's list (:func:`~omnieval.metrics.fvd_reference.list_files`), reduced to ``max_real``
    by ``real_subset``; each video's random frame offset is keyed by its file name, as in :func:`compute_fvd`.
    """
    ref = reference or ReferenceSet()
    files = subset(list_files(folder, ref), protocol.max_real, protocol.real_subset, protocol.seed)
    digest = files_digest(files)
    path = cache_path(fvd_ref.cache_dir(cache_dir), ref, protocol.reference_hash(), digest)
    if path.is_file():
        return FeatureStats.load(path, protocol.reference_hash())
    net = detector if detector is not None else load_detector(protocol.detector, ckpt_path)
    items = [(p.name, p) for _, p in files]  # keyed by the file name, as compute_fvd keys paths
    stats = _stats_of(iter_features(items, net, protocol, protocol.real_frame_policy, batch_size))
    stats.meta = {"reference_set": ref.id, "files_sha256": digest, "n_listed": str(len(files)),
                  "list_sha256": fvd_ref.file_sha256(Path(folder) / ref.list) if ref.list else "",
                  "protocol": protocol.name, "protocol_reference_hash": protocol.reference_hash()}
    stats.save(path, protocol_hash=protocol.reference_hash(), ddof=protocol.ddof)
    return stats


# ---------------------------------------------------------------------------------------------
# Stateful metric
# ---------------------------------------------------------------------------------------------
@register_metric("fvd", description="Frechet Video Distance: I3D features of generated vs reference videos (lower is better)",
                 capability=("t2v", "long_video", "edit_video"))
class FVD(Metric):
    """FVD of the generated videos against a reference set.

    Contribution of an item: its clip's feature vector (``{"features": float32[400]}``); the running
    state is a :class:`FeatureStats`.  The reference side, first found wins:

    * ``reference_stats``: an ``.npz`` written by :meth:`FeatureStats.save` under the same protocol (and, when
      ``reference`` names a set, of that set);
    * ``reference_dir``: a folder of real videos (holding ``reference.root`` and ``reference.list``); the
      statistics are computed once and cached in ``cache_dir``;
    * ``reference`` alone (a named set, e.g. ``{name: ucf101, split: trainlist01, ...}``): the statistics
      ``omnieval stats --task T --real DIR`` cached; missing, :meth:`check_ready` fails before any generation
      with one line naming what to download and the command to run.

    ``max_videos`` is not applied here: every folded item counts, so the value does not depend on the order
    or number of processes (the task plans exactly the protocol's number of videos).  After :meth:`compute`,
    :meth:`result_info` gives the protocol, the reference set and the number of videos on each side; its
    ``comparable_as`` key (protocol hash, set, files digest) is what leaderboards group FVDs by.
    """

    higher_is_better: ClassVar[bool] = False
    bootstrap: ClassVar[bool] = False
    weights: ClassVar[tuple[str, ...]] = ("i3d_pretrained_400",)
    state = {"stats": mergeable_state(FeatureStats)}

    @dataclass(frozen=True)
    class Options:
        preset: str = "cdfvd_i3d"
        protocol: dict = field(default_factory=dict)  # overrides of FVDProtocol fields
        ckpt_path: str | None = None
        reference: dict = field(default_factory=dict)  # a ReferenceSet (name, split, root, list, list_format, download)
        reference_stats: str | None = None
        reference_dir: str | None = None
        cache_dir: str | None = None
        batch_size: int = 8

    def __init__(self, **options: Any):
        super().__init__(**options)
        self.protocol = get_protocol(self.options.preset, **dict(self.options.protocol))
        from omnieval.config import build

        self.reference_set: ReferenceSet = build(ReferenceSet, dict(self.options.reference), "metric fvd: options.reference")
        if self.options.reference_stats and self.options.reference_dir:
            raise ConfigError("metric fvd: set at most one of reference_stats (.npz) or reference_dir (folder of real videos)")
        if not (self.options.reference_stats or self.options.reference_dir or self.reference_set.declared):
            raise ConfigError("metric fvd: name the real videos: reference_stats (.npz), reference_dir (folder of real "
                              "videos) or reference (a named set whose statistics `omnieval stats` caches)")
        self._detector = None
        self._reference: FeatureStats | None = None

    def required_weights(self) -> list[str]:
        """The detector's manifest file, unless an explicit ``ckpt_path`` is given."""
        return [] if self.options.ckpt_path else [DETECTOR_WEIGHTS[self.protocol.detector]]

    @property
    def detector(self):
        if self._detector is None:
            self._detector = load_detector(self.protocol.detector, self.options.ckpt_path)
        return self._detector

    def contributions(self, inputs: list[MetricInput]) -> list[dict[str, Any]]:
        items = [(item.item_id, item.output) for item in inputs]
        if not items:
            return []
        feats = np.concatenate(list(iter_features(items, self.detector, self.protocol, self.protocol.frame_policy, self.options.batch_size)))
        return [{"features": f} for f in feats]

    def fold(self, contribution: dict[str, Any]) -> None:
        self.stats.update(contribution["features"])

    # -- the reference side ------------------------------------------------------------------------
    def _cached(self, task: str = "") -> Path:
        """The cached statistics of the declared set under this protocol, or a one-line error saying how to make them."""
        ref, cache = self.reference_set, fvd_ref.cache_dir(self.options.cache_dir)
        found = fvd_ref.find_cached(cache, ref, self.protocol.reference_hash())
        if len(found) == 1:
            return found[0]
        if found:
            raise ConfigError(f"metric fvd: {len(found)} cached statistics of {ref.id} under protocol "
                              f"{self.protocol.reference_hash()} in {cache} (different files); pick one with reference_stats: "
                              f"{', '.join(p.name for p in found)}")
        where = f"download {ref.download}, " if ref.download else ""
        raise ConfigError(f"FVD reference statistics of {ref.id} (protocol {self.protocol.name}, {self.protocol.reference_hash()}) "
                          f"are not in {cache}: {where}then run `omnieval stats --task {task or '<task>'} --real DIR` once")

    def check_ready(self, task: str = "") -> None:
        """Fail before any generation if the reference side cannot be found (see the class docstring)."""
        if self.options.reference_stats:
            if not Path(self.options.reference_stats).is_file():
                raise ConfigError(f"metric fvd: reference_stats file not found: {self.options.reference_stats}")
        elif self.options.reference_dir:
            list_files(self.options.reference_dir, self.reference_set)
        else:
            self._cached(task)

    def build_reference(self, real_dir: str | os.PathLike) -> FeatureStats:
        """Compute (or find cached) the statistics of the reference set's videos under ``real_dir``."""
        self._reference = reference_stats(real_dir, self.protocol, reference=self.reference_set, ckpt_path=self.options.ckpt_path,
                                          cache_dir=self.options.cache_dir, batch_size=self.options.batch_size,
                                          detector=self._detector)
        return self._reference

    def reference(self) -> FeatureStats:
        if self._reference is None:
            if self.options.reference_dir:
                return self.build_reference(self.options.reference_dir)
            path = self.options.reference_stats or self._cached()
            stats = FeatureStats.load(path, self.protocol.reference_hash())
            stored = stats.meta.get("reference_set")
            if self.reference_set.declared and stored != self.reference_set.id:
                raise ConfigError(f"metric fvd: {path} holds statistics of {stored or 'an unnamed set'}, "
                                  f"not of {self.reference_set.id}; FVDs against different sets are not comparable")
            self._reference = stats
        return self._reference

    def compute(self) -> dict[str, float]:
        return {"fvd": fvd_from_stats(self.reference(), self.stats, self.protocol)}

    def result_info(self) -> dict[str, Any]:
        """The protocol (preset, fields, hashes), the reference set and its files digest, the number of videos on
        each side, and ``comparable_as``: FVDs are comparable only when these strings are equal."""
        ref = self._reference
        meta = ref.meta if ref else {}
        ref_id = meta.get("reference_set") or self.reference_set.id
        files = meta.get("files_sha256", "")
        info = {**self.protocol.describe(), "preset_option": self.options.preset, "protocol_overrides": dict(self.options.protocol),
                "reference_set": ref_id, "reference_files_sha256": files,
                "n_generated": self.stats.n, "n_reference": ref.n if ref else None}
        info["comparable_as"] = f"fvd:{self.protocol.hash()}:{ref_id}:{files}"
        return info
