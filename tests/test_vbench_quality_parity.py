"""VBench ``imaging_quality``: parity with vbench 0.1.5 on a random-init MUSIQ (pyiqa), and weight loading.

vbench runs its own whole path (``compute_imaging_quality``: ``MUSIQ(pretrained_model_path=...)`` loaded by
pyiqa, decord decoding, ``transform(..., 'longer')``, ``technical_quality``) on a checkpoint file made here;
ours loads the same file through the metric's ``ckpt_path`` option.  Videos: lossless H.264, 3 frames each, one
64x64 (no resize) and one 48x544 (long side > 512: 'longer' resizes it to 45x512, bilinear, no antialias).
Tolerance: 1e-7 absolute on the /100 scale (same float32 network, same inputs; only summation order of the
Python float frame scores could differ).
"""
from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest
from vbench_fixtures import moving_video

from omnieval.errors import OmniEvalError
from omnieval.media import Video, write_video
from omnieval.metrics.base import MetricInput

pytest.importorskip("pyiqa")
pytest.importorskip("vbench")

TOL = 1e-7


def _wide_video(seed: int, frames: int = 3, height: int = 48, width: int = 544) -> Video:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(frames, height // 8, width // 8, 3)).astype(np.uint8)
    return Video(np.repeat(np.repeat(base, 8, axis=1), 8, axis=2), fps=8.0)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    directory = tmp_path_factory.mktemp("vb_quality")
    clips = {"square-0.mp4": moving_video(seed=0, frames=3, size=64), "wide-0.mp4": _wide_video(seed=1)}
    return [str(write_video(video, directory / name)) for name, video in clips.items()]


@pytest.fixture(scope="module")
def musiq_ckpt(tmp_path_factory):
    """A random-init MUSIQ in VBench's configuration (one output), saved as a plain state dict."""
    import torch
    from pyiqa.archs.musiq_arch import MUSIQ

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("musiq") / "musiq_spaq_random.pth"
    torch.save(MUSIQ(pretrained=False, num_class=1).state_dict(), path)
    return path


@pytest.mark.slow
def test_imaging_quality_matches_vbench(videos, musiq_ckpt, tmp_path):
    from vbench.imaging_quality import compute_imaging_quality

    from omnieval.metrics.vbench.quality_dims import ImagingQuality, musiq_input

    info = tmp_path / "full_info.json"
    info.write_text(json.dumps([{"prompt_en": "a test", "dimension": ["imaging_quality"], "video_list": videos}]))
    expected, per_video = compute_imaging_quality(str(info), "cpu", {"model_path": str(musiq_ckpt)})

    metric = ImagingQuality(ckpt_path=str(musiq_ckpt))
    assert metric.required_weights() == []
    items = [MetricInput(item_id=f"v{i}", output=p) for i, p in enumerate(videos)]
    contributions = metric.contributions(items)
    # VBench's per-video values are on the 0-100 scale; ours are divided by 100 (Vchitect/VBench#28)
    ours = [100 * c["imaging_quality"] for c in contributions]
    assert ours == pytest.approx([r["video_results"] for r in per_video], abs=100 * TOL)
    for c in contributions:
        metric.fold(c)
    assert abs(metric.compute()["imaging_quality"] - expected) < TOL
    # the wide clip really went through the 'longer' resize (and the square one did not)
    assert tuple(musiq_input(_wide_video(seed=1).frames).shape[-2:]) == (45, 512)


def test_unsafe_or_mismatched_musiq_weights_fail_with_one_line(tmp_path, videos):
    import torch

    from omnieval.metrics.vbench.quality_dims import ImagingQuality

    pickled = tmp_path / "pickled.pth"
    torch.save({"conv_root.weight": Fraction(1, 3)}, pickled)  # needs unpickling of arbitrary objects
    with pytest.raises(OmniEvalError, match="weights_only=True"):
        ImagingQuality(ckpt_path=str(pickled)).update([MetricInput(item_id="v", output=videos[0])])
    wrong = tmp_path / "wrong.pth"
    torch.save({"head.weight": torch.zeros(10, 384)}, wrong)
    with pytest.raises(OmniEvalError, match="do not fit pyiqa's MUSIQ") as info:
        ImagingQuality(ckpt_path=str(wrong)).update([MetricInput(item_id="v", output=videos[0])])
    assert "\n" not in str(info.value)
