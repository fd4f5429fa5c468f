"""VBench-Long: clip splitting, clip lengths, slow-fast fusion (vbench2_beta_long at Vchitect/VBench 45e79ec).

The reference functions need PySceneDetect, moviepy and decord-written clips, so the rules are restated here from
``vbench2_beta_long/utils.py`` (``split_video_into_clips``, ``fuse_inclip_clip2clip``, ``linear_interpolate``) and
the constants from its ``configs/*.yaml``.  Tolerance: 1e-12 (pure arithmetic).
"""
from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass

import numpy as np
import pytest
from vbench_fixtures import moving_video

from omnieval.errors import UnknownNameError
from omnieval.media import Video
from omnieval.metrics.base import MetricInput
from omnieval.metrics.vbench import long as L
from omnieval.metrics.vbench.common import VBenchDimensionMetric
from omnieval.metrics.vbench.flicker import TemporalFlickering, flickering_score
from omnieval.registry import get_metric

PUBLISHED_CLIP_SECONDS = {
    "subject_consistency": 2.0, "background_consistency": 2.0, "motion_smoothness": 2.0, "temporal_flickering": 2.0,
    "dynamic_degree": 2.0, "imaging_quality": 2.0, "aesthetic_quality": 2.0, "object_class": 2.0,
    "multiple_objects": 2.0, "human_action": 10.0, "color": 2.0, "spatial_relationship": 2.0, "scene": 2.0,
    "appearance_style": 2.0, "temporal_style": 10.0, "overall_consistency": 10.0,
}


def test_published_constants():
    consts = L.long_constants()
    assert consts["clip_length_seconds"] == PUBLISHED_CLIP_SECONDS
    sb = consts["slow_fast"]["subject_consistency"]
    assert (sb["w_inclip"], sb["w_clip2clip"]) == (0.5, 0.5)
    assert math.isclose(sb["inclip_std"], 0.06767633012297831) and math.isclose(sb["clip2clip_mean"], 0.782773956831079)
    assert len(consts["mapping_tables"]["subject_consistency"]) == 101
    assert L.clip_seconds("human_action") == 10.0 and L.clip_seconds(["color", "temporal_style"]) == 10.0
    assert L.clip_seconds("color") == 2.0


@pytest.mark.parametrize(
    "frames, fps, seconds, expected",
    [
        (40, 8.0, 2.0, [(0, 16), (16, 32), (24, 40)]),  # last clip borrows 8 frames
        (32, 8.0, 2.0, [(0, 16), (16, 32)]),
        (10, 8.0, 2.0, [(0, 10)]),  # shorter than one clip: the whole video
        (50, 8.9, 2.0, [(0, 16), (16, 32), (32, 48), (34, 50)]),  # fps truncated to 8
        (100, 16.0, 10.0, [(0, 100)]),
    ],
)
def test_clip_ranges(frames, fps, seconds, expected):
    assert L.clip_ranges(frames, fps, seconds) == expected


def test_scene_detection_is_optional_and_recorded():
    video = moving_video(0, frames=20, size=16)
    clips, method = L.split_clips(video, 1.0)
    if importlib.util.find_spec("scenedetect") is None:
        assert method.startswith("none")
        assert [len(c) for c in clips] == [8, 8, 8]
    else:
        assert method.startswith("pyscenedetect") and sum(len(c) for c in clips) >= 20


def test_mapping_and_fusion():
    table = L.long_constants()["mapping_tables"]["subject_consistency"]
    x0, y0 = table[50]
    x1, y1 = table[51]
    assert L.map_clip2clip(x0, "subject_consistency") == y0
    mid = (x0 + x1) / 2
    assert math.isclose(L.map_clip2clip(mid, "subject_consistency"), (y0 + y1) / 2, abs_tol=1e-12)
    assert L.map_clip2clip(2.0, "subject_consistency") == table[-1][1]
    p = L.long_constants()["slow_fast"]["background_consistency"]
    z = L.map_clip2clip(0.8, "background_consistency", "zscore")
    assert math.isclose(z, (0.8 - p["clip2clip_mean"]) / p["clip2clip_std"] * p["inclip_std"] + p["inclip_mean"], abs_tol=1e-12)
    fused = L.fuse_slow_fast(0.9, mid, "subject_consistency")
    assert math.isclose(fused, 0.5 * 0.9 + 0.5 * (y0 + y1) / 2, abs_tol=1e-12)
    assert L.fuse_slow_fast(0.9, None, "subject_consistency") == 0.9
    assert L.fuse_slow_fast(0.9, 0.0, "subject_consistency") == 0.9  # mapped 0 keeps the in-clip score


def test_long_flickering_is_mean_over_all_clips_and_process_independent():
    videos = [moving_video(i, frames=n, size=16, speed=i) for i, n in enumerate([40, 20, 16])]
    items = [MetricInput(item_id=str(i), output=v) for i, v in enumerate(videos)]
    metric = L.LongVideoMetric(TemporalFlickering(static_filter=False))
    metric.update(items)
    clip_scores = [flickering_score(v.frames[a:b]) for v in videos for a, b in L.clip_ranges(len(v), v.fps, 2.0)]
    assert len(clip_scores) == 3 + 2 + 1
    assert math.isclose(metric.compute()["temporal_flickering"], np.mean(clip_scores), abs_tol=1e-12)
    a, b = metric.fresh(), metric.fresh()
    a.update(items[:1])
    b.update(items[1:])
    a.merge(b)
    assert math.isclose(a.compute()["temporal_flickering"], np.mean(clip_scores), abs_tol=1e-12)
    assert metric.fresh().compute() == {}
    registered = get_metric("vbench_long")(dimension="temporal_flickering", inner={"static_filter": False})
    registered.update(items)
    assert registered.compute() == metric.compute() and registered.required_weights() == []
    with pytest.raises(UnknownNameError, match="vbench_flickr"):
        get_metric("vbench_long")(dimension="flickr")


@dataclass(frozen=True)
class _NoOpts:
    pass


class _MeanBrightness(VBenchDimensionMetric):
    """A stand-in consistency dimension: score = mean brightness / 255."""

    dimension = "subject_consistency"
    Options = _NoOpts

    def score_video(self, video, item):
        return float(video.frames.mean() / 255.0)


def test_slow_fast_consistency_fusion():
    frames = np.stack([np.full((8, 8, 3), 6 * t, np.uint8) for t in range(40)])
    video = Video(frames, fps=8.0)
    metric = L.LongVideoMetric(_MeanBrightness())
    (c,) = metric.contributions([MetricInput(item_id="v", output=video)])
    ranges = L.clip_ranges(40, 8.0, 2.0)
    inclip = np.mean([frames[a:b].mean() / 255 for a, b in ranges])
    clip2clip = np.mean([frames[a].mean() for a, _ in ranges]) / 255
    assert math.isclose(c["subject_consistency_inclip"], inclip, abs_tol=1e-12)
    assert math.isclose(c["subject_consistency_clip2clip"], clip2clip, abs_tol=1e-12)
    expected = 0.5 * inclip + 0.5 * L.map_clip2clip(clip2clip, "subject_consistency")
    assert math.isclose(c["subject_consistency"], expected, abs_tol=1e-12)
    metric.fold(c)
    assert math.isclose(metric.compute()["subject_consistency"], expected, abs_tol=1e-12)
    plain = L.LongVideoMetric(_MeanBrightness(), slow_fast=False)
    plain.update([MetricInput(item_id="v", output=video)])
    assert math.isclose(plain.compute()["subject_consistency"], inclip, abs_tol=1e-12)
