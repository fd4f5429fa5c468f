"""VBench-Long (``vbench2_beta_long/`` at Vchitect/VBench 45e79ec): long videos scored as short clips.

Conventions:

* **Scenes.**  VBench-Long first cuts a video at scene changes with PySceneDetect (``ContentDetector``,
  threshold 27.0).  ``scenedetect`` is optional here: when it is not installed every video is one scene
  (fixed-length splitting only) and each contribution records ``scene_detection: "none (...)"``.
* **Clips.**  Each scene is split into clips of ``clip_length_seconds[dimension]`` (2.0 s for most dimensions,
  10.0 s for human_action, temporal_style and overall_consistency; for a prompt with several dimensions VBench
  uses the longest).  ``n = int(fps) * seconds`` frames per clip (fps truncated to an integer, as decord's
  ``int(get_avg_fps())``); a scene shorter than ``n`` is one clip; otherwise ``len // n`` clips, plus, if frames
  remain, a last clip made of the final ``n`` frames (it borrows frames from the previous clip).
* **Scores.**  A dimension is the mean of its short-video score over **all clips** of all videos
  (``reorganize_clips_results``).
* **Slow-fast consistency** (subject_consistency, background_consistency).  In-clip score of a video = mean over
  its clips; clip-to-clip score = the same dimension on the video made of the first frame of each clip
  (skipped when there is one clip).  The clip-to-clip score is mapped to the in-clip scale -- ``mapping="table"``
  (piecewise-linear tables ``configs/*_mapping_table.yaml``, the code at 45e79ec) or ``"zscore"``
  (``(c - mean_c2c) / std_c2c * std_in + mean_in``, the 2024-06 code) -- and fused
  ``w_inclip * inclip + w_clip2clip * mapped`` with 0.5 / 0.5 (``configs/slow_fast_params.yaml``); a mapped
  score of exactly 0 keeps the in-clip score.  The dimension is the mean over videos of the fused scores.
  The clip-to-clip feature extractor is the dimension's own network (VBench's default ``dino`` / ``clip``;
  its dev options dinov2 / dreamsim are not provided).
All constants live in ``omnieval/aggregate/vbench_constants.json`` (key ``long``).
"""
from __future__ import annotations

import bisect
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from omnieval.errors import ConfigError, MediaError
from omnieval.media import Video
from omnieval.metrics.base import Metric, MetricInput, sum_state
from omnieval.metrics.vbench.common import Skip, VBenchDimensionMetric, as_video
from omnieval.registry import register_metric

SCENE_THRESHOLD = 27.0
SLOW_FAST_DIMENSIONS = ("subject_consistency", "background_consistency")


def long_constants() -> dict[str, Any]:
    from omnieval.aggregate.vbench import load_constants

    return load_constants()["long"]


def clip_seconds(dimensions: list[str] | tuple[str, ...] | str) -> float:
    """Clip length for a prompt's dimensions: the longest of theirs (``get_duration_from_json``)."""
    table = long_constants()["clip_length_seconds"]
    dims = [dimensions] if isinstance(dimensions, str) else list(dimensions)
    known = [table[d] for d in dims if d in table]
    if not known:
        raise ConfigError(f"VBench-Long: no clip length for dimension(s) {dims}")
    return float(max(known))


# ---------------------------------------------------------------------------------------------
# Splitting
# ---------------------------------------------------------------------------------------------
def detect_scenes(video: Video, threshold: float = SCENE_THRESHOLD) -> tuple[list[tuple[int, int]], str]:
    """Scene boundaries ``[(start, end), ...]`` and how they were found (PySceneDetect, or none if absent)."""
    try:
        from scenedetect import SceneManager, open_video
        from scenedetect.detectors import ContentDetector
    except ImportError:
        return [(0, len(video))], "none (scenedetect not installed): fixed-length splitting only"
    from omnieval.media import write_video

    with tempfile.TemporaryDirectory() as tmp:
        path = write_video(video, Path(tmp) / "video.mp4")
        manager = SceneManager()
        manager.add_detector(ContentDetector(threshold=threshold))
        manager.detect_scenes(open_video(str(path)))
        scenes = [(int(a.get_frames()), int(b.get_frames())) for a, b in manager.get_scene_list()]
    return (scenes or [(0, len(video))]), f"pyscenedetect ContentDetector threshold={threshold}"


def clip_ranges(num_frames: int, fps: float, seconds: float) -> list[tuple[int, int]]:
    """Frame ranges of the fixed-length clips of one scene (``split_video_into_clips``)."""
    n = int(int(fps) * seconds)
    if n <= 0:
        raise MediaError(f"VBench-Long: clip of {seconds} s at {fps} fps has no frames")
    if num_frames < n:
        return [(0, num_frames)]
    full = num_frames // n
    ranges = [(i * n, (i + 1) * n) for i in range(full)]
    if num_frames % n:
        ranges.append((max(0, num_frames - n), num_frames))
    return ranges


def split_clips(video: Video, seconds: float, scene_threshold: float = SCENE_THRESHOLD) -> tuple[list[Video], str]:
    """The clips of a long video (scenes first, then fixed length) and the scene-detection method used."""
    scenes, method = detect_scenes(video, scene_threshold)
    clips = []
    for start, end in scenes:
        for a, b in clip_ranges(end - start, video.fps, seconds):
            clips.append(Video(video.frames[start + a : start + b], fps=video.fps))
    return clips, method


# ---------------------------------------------------------------------------------------------
# Slow-fast fusion
# ---------------------------------------------------------------------------------------------
def map_clip2clip(score: float, dimension: str, mapping: str = "table") -> float:
    """A clip-to-clip score on the in-clip scale (see module docstring)."""
    consts = long_constants()
    if mapping == "zscore":
        p = consts["slow_fast"][dimension]
        return (score - p["clip2clip_mean"]) / p["clip2clip_std"] * p["inclip_std"] + p["inclip_mean"]
    if mapping != "table":
        raise ConfigError(f"VBench-Long: mapping must be 'table' or 'zscore', got {mapping!r}")
    table = consts["mapping_tables"][dimension]
    keys = [k for k, _ in table]
    idx = bisect.bisect_left(keys, score)
    if idx == 0:
        return table[0][1]
    if idx == len(keys):
        return table[-1][1]
    (x0, y0), (x1, y1) = table[idx - 1], table[idx]
    return y0 + (y1 - y0) * (score - x0) / (x1 - x0)


def fuse_slow_fast(inclip: float, clip2clip: float | None, dimension: str, mapping: str = "table",
                   w_inclip: float | None = None, w_clip2clip: float | None = None) -> float:
    """``w_inclip * inclip + w_clip2clip * mapped(clip2clip)``; the in-clip score alone without clip-to-clip."""
    if clip2clip is None:
        return inclip
    p = long_constants()["slow_fast"][dimension]
    w_in = p["w_inclip"] if w_inclip is None else w_inclip
    w_cc = p["w_clip2clip"] if w_clip2clip is None else w_clip2clip
    mapped = map_clip2clip(clip2clip, dimension, mapping)
    return inclip if mapped == 0.0 else inclip * w_in + mapped * w_cc


def clip_value(result: Any) -> float | None:
    """A clip's score: a float, a pooled result's per-video value (``num / den`` if absent), None for a skip."""
    if isinstance(result, Skip):
        return None
    if isinstance(result, (int, float, np.floating, np.integer)):
        return float(result)
    per_video = getattr(result, "per_video", None)
    if per_video is not None:
        return float(per_video)
    return float(result.num) / float(result.den)


# ---------------------------------------------------------------------------------------------
# The long-video wrapper metric
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LongOptions:
    """``seconds``: clip length (None: the published length of the dimension); ``slow_fast``: fuse in-clip and
    clip-to-clip scores (consistency dimensions only); ``mapping``, ``w_inclip``, ``w_clip2clip``: see
    :func:`fuse_slow_fast` (None: published constants); ``scene_threshold``: PySceneDetect threshold."""

    seconds: float | None = None
    slow_fast: bool = True
    mapping: str = "table"
    w_inclip: float | None = None
    w_clip2clip: float | None = None
    scene_threshold: float = SCENE_THRESHOLD


class LongVideoMetric(Metric):
    """VBench-Long version of one short-video dimension metric (``inner``).

    Per video the contribution holds the clip scores' sum and count (and, for consistency dimensions, the fused
    per-video score), so the value is independent of how videos are spread over processes.
    """

    Options = LongOptions
    bootstrap: ClassVar[bool] = True

    def __init__(self, inner: VBenchDimensionMetric, /, **options: Any):
        self.inner = inner
        self.dimension = inner.dimension
        super().__init__(**options)

    def required_weights(self) -> list[str]:
        return self.inner.required_weights()

    def _uses_slow_fast(self) -> bool:
        return self.options.slow_fast and self.dimension in SLOW_FAST_DIMENSIONS

    def contributions(self, inputs: list[MetricInput]) -> list[dict[str, Any]]:
        seconds = self.options.seconds or clip_seconds(self.dimension)
        out = []
        for item in inputs:
            video = as_video(item.output, item.item_id)
            clips, method = split_clips(video, seconds, self.options.scene_threshold)
            values = [v for v in (clip_value(self.inner.score_video(clip, item)) for clip in clips) if v is not None]
            contribution: dict[str, Any] = {"scene_detection": method, "clips": len(clips)}
            if values:
                contribution[f"{self.dimension}_clip_sum"] = float(sum(values))
                contribution[f"{self.dimension}_clip_count"] = len(values)
            if self._uses_slow_fast() and values:
                inclip = float(np.mean(values))
                clip2clip = None
                if len(clips) > 1:
                    firsts = Video(np.stack([c.frames[0] for c in clips]), fps=video.fps)
                    clip2clip = clip_value(self.inner.score_video(firsts, item))
                    contribution[f"{self.dimension}_clip2clip"] = clip2clip
                contribution[f"{self.dimension}_inclip"] = inclip
                contribution[self.dimension] = fuse_slow_fast(
                    inclip, clip2clip, self.dimension, self.options.mapping, self.options.w_inclip, self.options.w_clip2clip
                )
            out.append(contribution)
        return out

    #: clip scores and clips (per-clip mean), fused per-video scores and videos (slow-fast dimensions)
    state = {"clip_sum": sum_state(), "clip_count": sum_state(), "fused_sum": sum_state(), "videos": sum_state()}

    def fold(self, contribution: dict[str, Any]) -> None:
        d = self.dimension
        if f"{d}_clip_count" in contribution:
            self.clip_sum += contribution[f"{d}_clip_sum"]
            self.clip_count += contribution[f"{d}_clip_count"]
        if d in contribution:
            self.fused_sum += contribution[d]
            self.videos += 1

    def additive_state(self) -> dict[str, float]:
        """The state as sums that add across docs (vectorised resampling, omnieval.aggregate.stats)."""
        return {name: float(getattr(self, name)) for name in self.state}

    def compute_additive(self, s: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        num, den = (s["fused_sum"], s["videos"]) if self._uses_slow_fast() else (s["clip_sum"], s["clip_count"])
        with np.errstate(all="ignore"):
            return {self.dimension: np.where(den > 0, num / den, np.nan)}

    def compute(self) -> dict[str, float]:
        if self._uses_slow_fast():
            return {self.dimension: self.fused_sum / self.videos} if self.videos else {}
        if not self.clip_count:
            return {}
        return {self.dimension: self.clip_sum / self.clip_count}


@dataclass(frozen=True)
class VBenchLongOptions(LongOptions):
    """:class:`LongOptions` plus ``dimension`` (a VBench dimension name) and ``inner``: the options of that
    dimension's short-video metric ``vbench_<dimension>``."""

    dimension: str = "subject_consistency"
    inner: dict = field(default_factory=dict)


@register_metric("vbench_long", description="VBench-Long: one VBench dimension on scene/clip-split long videos (slow-fast fusion for consistency)",
                 capability=("long_video", "t2v"))
class VBenchLong(LongVideoMetric):
    """Registered form of :class:`LongVideoMetric`: ``{name: vbench_long, options: {dimension: ..., inner: {...}}}``."""

    Options = VBenchLongOptions

    def __init__(self, **options: Any):
        from omnieval.registry import get_metric

        opts = self.build_options(options)
        super().__init__(get_metric(f"vbench_{opts.dimension}")(**opts.inner), **options)
