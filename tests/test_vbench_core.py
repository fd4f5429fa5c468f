"""VBench part A: temporal flickering, static filter, dynamic degree, motion smoothness, naming/protocol.

Tolerances (stated per test):
* native temporal flickering vs vbench 0.1.5 on the same files: 1e-6 (VBench averages in float32);
* dynamic degree: identical decisions; per-pair top-5 % flow magnitudes within 1e-4 relative (VBench runs RAFT
  one pair at a time, we batch pairs: float32 reduction order);
* motion smoothness: 1e-6 (same AMT-S network; float32 noise can flip the uint8 rounding of a few pixels,
  each flip moves a 128 px video's score by ~1e-7).
Networks are vbench's RAFT / AMT-S with random weights saved to temporary checkpoint files.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from vbench_fixtures import moving_video, random_amt_checkpoint, random_raft_checkpoint, write_videos

from omnieval import naming
from omnieval.cli import main
from omnieval.errors import ConfigError, MediaError, MissingWeightsError
from omnieval.media import Video, write_video
from omnieval.metrics.base import MetricInput
from omnieval.metrics.vbench import flicker, motion, suite
from omnieval.metrics.vbench.common import read_video_cv2
from omnieval.registry import get_metric


# ---------------------------------------------------------------------------------------------
# temporal flickering (native)
# ---------------------------------------------------------------------------------------------
def _naive_flicker(frames: np.ndarray) -> float:
    """The VBench definition restated with float64 loops (independent of the vectorised code)."""
    maes = [np.abs(frames[t].astype(np.float64) - frames[t + 1].astype(np.float64)).mean() for t in range(len(frames) - 1)]
    return (255.0 - float(np.mean(maes))) / 255.0


def test_flicker_matches_definition_exactly():
    """Vectorised integer sums vs float64 loops: 1e-12."""
    rng = np.random.default_rng(0)
    for shape in [(2, 5, 7, 3), (40, 9, 11, 3), (3, 1, 1, 3)]:
        frames = rng.integers(0, 256, size=shape, dtype=np.uint8)
        assert math.isclose(flicker.flickering_score(frames), _naive_flicker(frames), abs_tol=1e-12)
    assert flicker.flickering_score(np.zeros((4, 3, 3, 3), np.uint8)) == 1.0
    with pytest.raises(MediaError):
        flicker.flickering_score(np.zeros((1, 3, 3, 3), np.uint8))


def _items(videos):
    return [MetricInput(item_id=f"v{i}", output=v) for i, v in enumerate(videos)]


def test_flicker_metric_is_process_independent_and_missing_is_missing():
    videos = [moving_video(seed=i, frames=6, size=16, speed=i) for i in range(5)]
    metric = get_metric("vbench_temporal_flickering")(static_filter=False)
    assert metric.required_weights() == []
    metric.update(_items(videos))
    whole = metric.compute()
    a, b = metric.fresh(), metric.fresh()
    a.update(_items(videos)[:2])
    b.update(_items(videos)[2:])
    a.merge(b)
    assert whole.keys() == {"temporal_flickering"}
    assert math.isclose(a.compute()["temporal_flickering"], whole["temporal_flickering"], abs_tol=1e-12)
    assert math.isclose(whole["temporal_flickering"], np.mean([_naive_flicker(v.frames) for v in videos]), abs_tol=1e-12)
    assert metric.fresh().compute() == {}  # no video: missing, not 0


def test_flicker_static_filter_skips_and_needs_raft(monkeypatch):
    metric = get_metric("vbench_temporal_flickering")()
    assert metric.required_weights() == ["vbench_raft_things"]
    with pytest.raises(MissingWeightsError, match="raft-things.pth"):
        metric.update(_items([moving_video(0, frames=4, size=16)]))
    monkeypatch.setattr(motion, "load_raft", lambda path=None, device=None: "raft")
    monkeypatch.setattr(motion, "is_static", lambda video, raft: video.frames[0, 0, 0, 0] < 128)
    still = Video(np.full((4, 8, 8, 3), 50, np.uint8))
    moving = Video(np.full((4, 8, 8, 3), 200, np.uint8))
    metric = get_metric("vbench_temporal_flickering")(raft_path=__file__)  # any existing file: the stub loads it
    contributions = metric.contributions(_items([still, moving]))
    assert contributions[0] == {"temporal_flickering": 1.0, "doc_id": "v0", "sample_index": 0}
    assert "temporal_flickering_skipped" in contributions[1] and "temporal_flickering" not in contributions[1]
    metric.fold(contributions[1])
    assert metric.compute() == {}  # only a non-static video: the dimension is missing


# ---------------------------------------------------------------------------------------------
# RAFT rules with a stub network: flow = (mean(b) - mean(a), 0) everywhere
# ---------------------------------------------------------------------------------------------
class _MeanShiftFlow(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, a, b, iters, test_mode):
        shift = (b.mean(dim=(1, 2, 3)) - a.mean(dim=(1, 2, 3))).view(-1, 1, 1)
        flow = torch.stack([shift.expand(-1, a.shape[2], a.shape[3]), torch.zeros_like(a[:, 0])], dim=1)
        return None, flow


def _levels(values, size=256, fps=8.0):
    return Video(np.stack([np.full((size, size, 3), v, np.uint8) for v in values]), fps=fps)


@pytest.mark.parametrize(
    "levels, static",
    [
        ([100] * 16, True),
        ([100, 104, 100, 104] + [100] * 12, False),  # 3 pairs above 3.0 > count 2
        ([100, 104, 100] + [100] * 13, True),  # 2 pairs above: still static
        ([100 + i for i in range(16)], False),  # first/last differ by 15 > 3.0 * 2 * 2
        ([100 + round(0.7 * i) for i in range(16)], True),  # first/last differ by 10 or 11
    ],
)
def test_static_filter_rule(levels, static):
    assert motion.is_static(_levels(levels), _MeanShiftFlow(), batch_size=3) is static


@pytest.mark.parametrize(
    "levels, fps, dynamic",
    [
        ([0, 7, 0, 7, 0] + [0] * 11, 8.0, True),  # 4 pairs above 6.0, count round(4*16/16)=4
        ([0, 7, 0, 7] + [7] * 12, 8.0, False),  # 3 pairs
        ([0, 0, 7, 7, 0, 0] + [0] * 10, 16.0, True),  # interval 2: levels 0,7,0,0,... -> 2 pairs, count 2
    ],
)
def test_dynamic_degree_rule(levels, fps, dynamic):
    assert motion.is_dynamic(_levels(levels, fps=fps), _MeanShiftFlow(), batch_size=2) is dynamic
    assert motion.dynamic_interval(24) == 3 and motion.dynamic_interval(4) == 1


# ---------------------------------------------------------------------------------------------
# naming and protocol
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "prompt",
    ["a cat", "close-up of a man's face, (smiling). 3-2", "ünïcödé prompt", "ends with digits 12-3"],
)
def test_filename_round_trip(prompt):
    for index in (0, 4, 24):
        name = naming.video_filename(prompt, index)
        assert name == f"{prompt}-{index}.mp4"
        assert naming.parse_filename(name) == (prompt, index)
    assert naming.parse_filename(naming.video_filename(prompt, 3, special_str="_x"), special_str="_x") == (prompt, 3)
    if not prompt[-1].isdigit():  # "x 12-3.mp4" is read as prompt "x 12", index 3 -- by VBench too
        assert naming.parse_filename(f"{prompt}.mp4") == (prompt, None)


def test_filename_length_and_truncation():
    long = "a very long prompt " * 20
    with pytest.raises(ConfigError, match="truncate"):
        naming.video_filename(long, 0)
    with pytest.raises(ConfigError):
        naming.video_filename("a/b", 0)
    name = naming.video_filename(long + "é", 12, truncate=True)
    assert len(name.encode()) <= 255 and name.endswith("-12.mp4")
    stem, index = naming.parse_filename(name)
    assert index == 12 and naming.match_prompt(stem, [long + "é", "other"]) == long + "é"


def test_prompt_suite_and_sampling_plan():
    entries = suite.load_prompt_suite()
    assert len(entries) == 946
    counts = {d: len(suite.load_prompt_suite([d])) for d in ("human_action", "temporal_flickering", "motion_smoothness", "color")}
    assert counts == {"human_action": 100, "temporal_flickering": 75, "motion_smoothness": 72, "color": 85}
    multi = suite.load_prompt_suite(["multiple_objects"])[0]
    assert multi.doc()["auxiliary_info"]["multiple_objects"]["object"]
    plan = suite.sampling_plan(["temporal_flickering", "color"])
    flick = [p for p in plan if "temporal_flickering" in p[0].dimensions]
    assert len(flick) == 75 * 25 and len(plan) == 75 * 25 + 85 * 5
    assert len({name for _, _, name in plan}) == len(plan)


def test_vbench_file_order():
    assert naming.vbench_file_order(range(12)) == [0, 1, 10, 11, 2, 3, 4, 5, 6, 7, 8, 9]
    names = [naming.video_filename("a stop sign", i) for i in range(25)]
    assert [naming.parse_filename(n)[1] for n in sorted(names)] == naming.vbench_file_order(range(25))


def _flicker_task(folder, counts: dict[str, int], options: dict) -> Path:
    """A t2v task over ``counts`` (prompt -> samples) scored by temporal flickering, written to ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "docs.jsonl").write_text("".join(json.dumps({"id": str(i), "prompt": p, "num_samples": n}) + "\n"
                                               for i, (p, n) in enumerate(counts.items())))
    (folder / "vb_flicker.yaml").write_text(
        "task: vb_flicker\ncapability: t2v\ndataset: {path: docs.jsonl}\n"
        "fields: {id: id, prompt: prompt, num_samples: num_samples}\n"
        f"metrics:\n  - {{name: vbench_temporal_flickering, options: {json.dumps(options)}}}\n")
    return folder


def _run_vbench_folder(tmp_path, videos: Path, tasks: Path) -> dict:
    out = tmp_path / "run"
    rc = main(["run", "--model", "predictions", "--model_args", f"path={videos},naming=vbench", "--tasks", "vb_flicker",
               "--include_path", str(tasks), "--output_path", str(out)])
    assert rc == 0
    return json.loads((out / "results.json").read_text())["results"]["vb_flicker"]


def test_runner_scores_a_vbench_folder_without_filter(tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    frames = []
    for p, prompt in enumerate(["a dog", "a cat, running"]):
        for i in range(5 if p == 0 else 3):
            video = moving_video(seed=10 * p + i, frames=5, size=16, speed=i)
            write_video(video, folder / naming.video_filename(prompt, i))
            frames.append(read_video_cv2(folder / naming.video_filename(prompt, i)).frames)
    tasks = _flicker_task(tmp_path / "tasks", {"a dog": 5, "a cat, running": 3}, {"static_filter": False})
    result = _run_vbench_folder(tmp_path, folder, tasks)["temporal_flickering"]
    assert math.isclose(result["value"], np.mean([_naive_flicker(f) for f in frames]), abs_tol=1e-12)
    assert result["n"] == 8 and result["n_clusters"] == 2


def _stepped(i: int) -> Video:
    """Frame 0 at level 8 i, odd frames i brighter: flicker (255 - i) / 255, static decision keyed on i."""
    return Video(np.stack([np.full((16, 16, 3), 8 * i + (t % 2) * i, np.uint8) for t in range(3)]))


def test_runner_applies_the_static_protocol_first_five_static_in_vbench_order(tmp_path, monkeypatch):
    folder = tmp_path / "videos"
    folder.mkdir()
    for i in range(25):
        write_video(_stepped(i), folder / naming.video_filename("a stop sign", i))
    static_indices = {1, 3, 10, 12, 20, 21, 22}
    monkeypatch.setattr(motion, "load_raft", lambda path=None, device=None: "raft")
    monkeypatch.setattr(motion, "is_static", lambda video, raft: round(float(video.frames[0].mean()) / 8) in static_indices)
    tasks = _flicker_task(tmp_path / "tasks", {"a stop sign": 25}, {"raft_path": __file__})
    result = _run_vbench_folder(tmp_path, folder, tasks)["temporal_flickering"]
    # string order: -0, -1, -10, -11, -12, -13, ..., -19, -2, -20, -21, ...: the first five static ones
    kept = (1, 10, 12, 20, 21)
    assert math.isclose(result["value"], np.mean([(255 - i) / 255 for i in kept]), abs_tol=1e-12)


# ---------------------------------------------------------------------------------------------
# parity with vbench 0.1.5 (slow)
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_videos(tmp_path_factory):
    return write_videos(tmp_path_factory.mktemp("vb_small"), ["a cat-0.mp4", "a dog-0.mp4"], frames=16, size=64)


@pytest.fixture(scope="module")
def raft_videos(tmp_path_factory):
    """RAFT and AMT-S need >= 128 px (their correlation pyramids degenerate below: NaN)."""
    return write_videos(tmp_path_factory.mktemp("vb_raft"), ["a cat-0.mp4", "a dog-0.mp4"], frames=3, size=128)


@pytest.fixture(scope="module")
def amt_videos(tmp_path_factory):
    return write_videos(tmp_path_factory.mktemp("vb_amt"), ["a cat-0.mp4", "a dog-0.mp4"], frames=5, size=128)


@pytest.mark.slow
def test_temporal_flickering_parity_with_vbench(small_videos):
    """Same files, vbench's cv2 reader and float32 MAE: 1e-6."""
    from vbench.temporal_flickering import temporal_flickering as vb_flicker

    expected, per_video = vb_flicker([str(p) for p in small_videos])
    ours = flicker.temporal_flickering_per_video(small_videos)
    assert np.allclose(ours, [d["video_results"] for d in per_video], rtol=0, atol=1e-6)
    assert math.isclose(flicker.temporal_flickering(small_videos), float(expected), abs_tol=1e-6)
    in_memory = [read_video_cv2(p) for p in small_videos]  # RGB frames give the same numbers
    assert np.allclose(flicker.temporal_flickering_per_video(in_memory), ours, rtol=0, atol=1e-12)


@pytest.mark.slow
def test_dynamic_degree_parity_with_vbench(raft_videos, tmp_path):
    """Same random RAFT checkpoint: equal decisions, per-pair scores within 1e-4 relative."""
    from easydict import EasyDict
    from vbench import dynamic_degree as vb
    from vbench.third_party.RAFT.core.utils_core.utils import InputPadder

    ckpt = random_raft_checkpoint(tmp_path / "raft-things.pth")
    reference = vb.DynamicDegree(EasyDict(model=str(ckpt), small=False, mixed_precision=False, alternate_corr=False), "cpu")
    expected, per_video = vb.dynamic_degree(reference, [str(p) for p in raft_videos])
    metric = get_metric("vbench_dynamic_degree")(raft_path=str(ckpt), batch_size=3)
    contributions = metric.contributions([MetricInput(item_id=p.name, output=str(p)) for p in raft_videos])
    assert [c["dynamic_degree"] for c in contributions] == [float(d["video_results"]) for d in per_video]
    for c in contributions:
        metric.fold(c)
    assert metric.compute() == {"dynamic_degree": float(expected)}
    with torch.no_grad():
        frames = reference.get_frames(str(raft_videos[0]))
        ref_scores = []
        for a, b in zip(frames[:-1], frames[1:]):
            a, b = InputPadder(a.shape).pad(a, b)
            ref_scores.append(reference.get_score(a, reference.model(a, b, iters=20, test_mode=True)[1]))
    video = read_video_cv2(raft_videos[0])
    ours = motion.top_flow_magnitudes(metric.cached("raft", lambda: None), video.frames[:-1], video.frames[1:], 0.05)
    assert np.all(np.isfinite(ours)) and np.allclose(ours, ref_scores, rtol=1e-4)


@pytest.mark.slow
def test_raft_flows_match_vbench_forward(raft_videos, tmp_path):
    """omnieval's RAFT pass (each frame's features once, the upsampling mask of the last iteration only) gives vbench's
    ``RAFT.forward(test_mode=True)`` flow: 1e-4 px (float32 batch composition of the feature network)."""
    ckpt = random_raft_checkpoint(tmp_path / "raft-things.pth")
    raft = motion.load_raft(str(ckpt), "cpu")
    frames = read_video_cv2(raft_videos[1]).frames
    cache = motion._pair_flows(raft, frames, [(0, 1), (1, 2), (2, 0)])
    with torch.inference_mode():
        ours = torch.cat([cache(0, 2), cache(2, 3)])
        a = torch.from_numpy(frames[[0, 1, 2]]).permute(0, 3, 1, 2).float()
        b = torch.from_numpy(frames[[1, 2, 0]]).permute(0, 3, 1, 2).float()
        reference = torch.cat([raft(x[None], y[None], iters=motion.RAFT_ITERS, test_mode=True)[1] for x, y in zip(a, b)])
    assert ours.shape == reference.shape and float(reference.abs().max()) > 0.1
    assert float((ours - reference).abs().max()) < 1e-4


@pytest.mark.slow
def test_early_stopping_gives_the_decision_over_all_pairs(tmp_path):
    """is_dynamic / is_static stop scoring once the rule's decision is known: the same decisions as the rules applied
    to every pair's score, on vbench's RAFT (random weights: large flows, so dynamic and not static; with the flow
    head scaled down: small flows, so static and not dynamic)."""
    raft = motion.load_raft(str(random_raft_checkpoint(tmp_path / "raft-things.pth")), "cpu")
    outcomes = set()
    for scale in (1.0, 0.03):
        with torch.no_grad():
            raft.update_block.flow_head.conv2.weight.mul_(scale)
            raft.update_block.flow_head.conv2.bias.mul_(scale)
        for seed, speed in [(0, 0.0), (1, 3.0)]:
            video = moving_video(seed=seed, frames=6, size=128, speed=speed)
            frames, t = video.frames, len(video)
            consecutive = motion.top_flow_magnitudes(raft, frames[:-1], frames[1:], 0.05)
            dynamic = int((consecutive > 6.0 * 128 / 256).sum()) >= round(4 * t / 16)
            assert motion.is_dynamic(video, raft, batch_size=2) == dynamic
            scores = motion.top_flow_magnitudes(raft, np.concatenate([frames[:-1], frames[[0, -1]]]),
                                                np.concatenate([frames[1:], frames[[-1, 0]]]), 0.02)
            thres, count = 3.0 * 128 / 256, round(2 * t / 16)
            static = int((scores[:-2] > thres).sum()) <= count and not bool((scores[-2:] > thres * count * 2).any())
            assert motion.is_static(video, raft, batch_size=2) == static
            outcomes.add((dynamic, static))
    assert outcomes == {(True, False), (False, True)}


@pytest.mark.slow
def test_motion_smoothness_parity_with_vbench(amt_videos, tmp_path):
    """Same random AMT-S checkpoint: 1e-6."""
    from vbench import motion_smoothness as vb

    ckpt = random_amt_checkpoint(tmp_path / "amt-s.pth")
    reference = vb.MotionSmoothness(motion.amt_config_path(), str(ckpt), "cpu")
    expected, per_video = vb.motion_smoothness(reference, [str(p) for p in amt_videos])
    metric = get_metric("vbench_motion_smoothness")(amt_path=str(ckpt))
    contributions = metric.contributions([MetricInput(item_id=p.name, output=str(p)) for p in amt_videos])
    assert np.allclose([c["motion_smoothness"] for c in contributions], [d["video_results"] for d in per_video], rtol=0, atol=1e-6)
    for c in contributions:
        metric.fold(c)
    assert math.isclose(metric.compute()["motion_smoothness"], float(expected), abs_tol=1e-6)


def _equal_mean_video(i: int, moving: bool) -> Video:
    """4 frames at 16 px: a checkerboard of amplitude ``i + 1`` flipping sign every frame (every frame has the same
    mean, so a mean-shift flow sees no motion; flicker (255 - 2 (i + 1)) / 255), plus a drift of 5 levels per
    frame when ``moving``."""
    board = (np.indices((16, 16)).sum(0) % 2 * 2 - 1)[..., None].repeat(3, -1)
    return Video(np.stack([(100 + (-1) ** t * (i + 1) * board + (5 * t if moving else 0)).astype(np.uint8) for t in range(4)]))


@pytest.mark.slow
def test_static_filter_protocol_parity_with_vbench(tmp_path, monkeypatch):
    """vbench's own static filter (``vbench/cli/static_filter.py``: sorted file order, first 5 static per prompt,
    copies renumbered) followed by ``vbench.temporal_flickering`` on the kept copies, against ``omnieval run`` over
    the same folder: equal value (1e-6).  Both sides get the same flow network, a mean-shift stub (RAFT itself is
    checked by the dynamic degree parity test), so the static decisions are known and mixed."""
    import argparse

    from vbench.cli import static_filter as vb_static
    from vbench.temporal_flickering import temporal_flickering as vb_flicker

    prompt = "In a still frame, a stop sign"  # a temporal_flickering prompt of VBench_full_info.json
    folder = tmp_path / "videos"
    folder.mkdir()
    moving = {0, 2, 3, 11, 14, 15, 16}
    for i in range(18):
        write_video(_equal_mean_video(i, i in moving), folder / naming.video_filename(prompt, i))
    stub = _MeanShiftFlow()
    monkeypatch.setattr(vb_static, "DEVICE", "cpu")
    monkeypatch.setattr(vb_static.StaticFilter, "load_model", lambda self: setattr(self, "model", stub))
    args = argparse.Namespace(model="unused", videos_path=str(folder), result_path=str(tmp_path / "filter"),
                              store_name="static.json", small=False, mixed_precision=False, alternate_corr=False,
                              filter_scope="temporal_flickering")
    vb_static.static_filter(args)
    kept = json.loads((tmp_path / "filter" / "static.json").read_text())[prompt]["static_path"]
    # VBench's order is -0, -1, -10, -11, ...: the first five static ones are 1, 10, 12, 13, 17
    assert [naming.parse_filename(p)[1] for p in kept] == [1, 10, 12, 13, 17]
    expected, _ = vb_flicker([str(p) for p in sorted((tmp_path / "filter" / "filtered_videos").glob("*.mp4"))])

    monkeypatch.setattr(motion, "load_raft", lambda path=None, device=None: stub)
    tasks = _flicker_task(tmp_path / "tasks", {prompt: 18}, {"raft_path": __file__})
    result = _run_vbench_folder(tmp_path, folder, tasks)["temporal_flickering"]
    assert math.isclose(result["value"], float(expected), abs_tol=1e-6)
    assert math.isclose(result["value"], np.mean([(255 - 2 * (i + 1)) / 255 for i in (1, 10, 12, 13, 17)]), abs_tol=1e-6)


def test_flicker_vectorised_resampling_equals_merging_doc_states():
    """The static-filter selection is within a doc, so kept sums add across docs: the vectorised form the
    bootstrap uses gives the same intervals as merging per-doc states."""
    from omnieval.aggregate import stats

    rng = np.random.default_rng(0)
    contribs, clusters = [], []
    for d in range(12):
        for i in range(8):
            static = rng.random() < 0.6
            c = {"doc_id": f"d{d}", "sample_index": i}
            c.update({"temporal_flickering": float(rng.uniform(0.9, 1.0))} if static else {"temporal_flickering_skipped": "x"})
            contribs.append(c)
            clusters.append(f"d{d}")
    fast = get_metric("vbench_temporal_flickering")(raft_path=__file__)

    class Merged(type(fast)):
        additive_state = compute_additive = None

    slow = Merged(raft_path=__file__)
    a = stats.cluster_bootstrap(fast, contribs, clusters, iters=300)["temporal_flickering"]
    b = stats.cluster_bootstrap(slow, contribs, clusters, iters=300)["temporal_flickering"]
    assert (a.stderr, a.ci_low, a.ci_high) == pytest.approx((b.stderr, b.ci_low, b.ci_high), rel=1e-9)
