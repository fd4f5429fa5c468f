"""Frame sampling as part of the task (omnieval/frames.py): the rules against their references, seeking decode, the
record, the hash, and models using the task's frames.

References: lmms-eval 0.7.3's video loader (``models/model_utils/load_video.py``: ``np.linspace(0, T-1, n,
dtype=int)`` with ``n = min(T, N)``, unique) for ``uniform_floor``; LongVideoBench's ``load_video`` in lmms-eval's
``tasks/longvideobench/utils.py`` (decord on the same file) for ``lvb_step``; MVBench's ``get_index`` by its formula
and the worked example of the research notes for ``mvbench_segments``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from omnieval.config import FrameSpec, load_task_file
from omnieval.errors import ConfigError
from omnieval.frames import SampledVideo, frame_indices, is_task_sampled, take_frames
from omnieval.media import Video, read_video, sample_frame_indices, write_video
from omnieval.tasks import all_tasks

FIXTURES = Path(__file__).resolve().parent.parent / "tasks" / "understanding" / "fixtures"


def numbered(path: Path, frames: int, fps: float = 8.0) -> Path:
    """Frame ``i`` has green value ``i`` (lossless), so decoded frames name their source index."""
    a = np.zeros((frames, 16, 16, 3), np.uint8)
    a[..., 1] = np.arange(frames, dtype=np.uint8)[:, None, None]
    return write_video(Video(a, fps=fps), path)


def test_uniform_floor_truncates_uniform_round_rounds():
    """The research finding: lmms-eval / VILA truncate, omnieval's `uniform` rounds; both are named rules now."""
    floor = frame_indices(FrameSpec("uniform_floor", 8), 100, 8.0)
    round_ = frame_indices(FrameSpec("uniform_round", 8), 100, 8.0)
    assert floor.tolist() == [0, 14, 28, 42, 56, 70, 84, 99]
    assert round_.tolist() == [0, 14, 28, 42, 57, 71, 85, 99]
    assert sample_frame_indices(100, 8, "uniform").tolist() == round_.tolist()
    assert sample_frame_indices(100, 8, "uniform_floor").tolist() == floor.tolist()
    assert frame_indices(FrameSpec("uniform_floor", 8), 5, 8.0).tolist() == [0, 1, 2, 3, 4]  # fewer frames: all


@pytest.mark.slow
def test_uniform_floor_equals_lmms_eval_video_loader():
    from lmms_tasks import load_file

    ref = load_file("models/model_utils/load_video.py", "lmms_ref_load_video")  # imports av and numpy only
    for total in list(range(1, 70)) + [100, 899, 1800, 108000]:
        for num in (1, 2, 4, 8, 16, 32, 64):
            expected = ref._compute_uniform_indices(total, ref._compute_sample_count(total, num, None, None))
            assert frame_indices(FrameSpec("uniform_floor", num), total, 30.0).tolist() == expected.tolist(), (total, num)


def test_mvbench_segments_formula():
    spec = FrameSpec("mvbench_segments", 16)
    assert frame_indices(spec, 100, 30.0).tolist() == [3, 9, 15, 22, 28, 34, 40, 46, 53, 59, 65, 71, 77, 83, 90, 96]
    bounded = FrameSpec("mvbench_segments", 4, bound_fields=("start", "end"))
    # start 1 s, end 3 s at 10 fps -> frames 10..30, segment 5: int(10 + 2.5 + round(5 i)) = 12, 17, 22, 27
    assert frame_indices(bounded, 100, 10.0, {"start": 1.0, "end": 3.0}).tolist() == [12, 17, 22, 27]
    # end clipped to T-1 = 24, segment 3.5, numpy rounds half to even: int(11.75 + round(3.5 i)) = 11, 15, 18, 21
    assert frame_indices(bounded, 25, 10.0, {"start": 1.0, "end": 9.0}).tolist() == [11, 15, 18, 21]


def test_fps_rule_and_lvb_step():
    fps = FrameSpec("fps", None, fps=1.0, max=5)
    assert frame_indices(fps, 100, 25.0).tolist() == [0, 25, 50, 75]
    assert frame_indices(fps, 300, 25.0).tolist() == [0, 74, 149, 224, 299]  # more than max: uniform_floor of max
    lvb = FrameSpec("lvb_step", 16, duration_field="duration")
    assert frame_indices(lvb, 84, 30.0, {"duration": 2.8}).tolist() == [0, 42]
    assert frame_indices(lvb, 18000, 30.0, {"duration": 600.0}).tolist() == [1125 * i for i in range(16)]
    assert frame_indices(lvb, 10, 30.0, {"duration": 0.3}).tolist() == [0]  # under a second: one frame


@pytest.mark.slow
def test_lvb_step_equals_longvideobench_loader(monkeypatch, tmp_path):
    """LongVideoBench's own loader (decord) and take_frames take the same frames of the same file.  decord cannot
    read the fixtures' lossless RGB H.264, so the videos here are yuv420p H.264 whose frames differ from each other
    (both decoders give the same pixels for them, tests/test_media.py)."""
    from lmms_tasks import load_task_utils

    module = load_task_utils(monkeypatch, tmp_path, "longvideobench/utils.py")
    cfg = all_tasks()["longvideobench"]
    rng = np.random.default_rng(0)
    for frames, fps, duration in [(84, 30.0, 2.8), (40, 8.0, 5.0), (130, 25.0, 5.2)]:
        path = tmp_path / f"v{frames}.mp4"
        pixels = np.repeat(np.repeat(rng.integers(0, 255, (frames, 4, 4, 3), dtype=np.uint8), 8, 1), 8, 2)
        write_video(Video(pixels, fps=fps), path, codec="libx264")
        row = {"duration": duration}
        theirs = np.stack([np.asarray(im) for im in module.load_video(str(path), duration, 16)])
        ours = take_frames(read_video(path), cfg.frames, row)
        expected = [int(int(duration * fps) / min(16, int(duration))) * i for i in range(min(16, int(duration)))]
        assert ours.indices == expected
        assert np.array_equal(ours.frames, theirs), (frames, fps, duration)


def test_take_frames_decodes_only_the_sampled_frames(tmp_path):
    path = numbered(tmp_path / "v.mp4", 40, fps=10.0)
    video = read_video(path)
    sampled = take_frames(video, FrameSpec("uniform_floor", 5), what="doc 1")
    assert not video.decoded  # the source was sought, never decoded whole
    assert sampled.indices == [0, 9, 19, 29, 39] and sampled.frames[:, 0, 0, 1].tolist() == sampled.indices
    assert is_task_sampled(sampled) and not is_task_sampled(video) and sampled.source_file is None
    assert sampled.record() == {"rule": "uniform_floor num=5", "indices": [0, 9, 19, 29, 39],
                                "timestamps": [0.0, 0.9, 1.9, 2.9, 3.9], "source_frames": 40, "source_fps": 10.0}
    in_memory = take_frames(Video(np.zeros((6, 4, 4, 3), np.uint8), fps=3.0), FrameSpec("all"))
    assert in_memory.indices == list(range(6)) and in_memory.timestamps[-1] == pytest.approx(5 / 3)


def test_frames_spec_is_validated_and_hashed(tmp_path):
    base = ("task: t\ncapability: understand\ndataset: {path: d.jsonl}\nfields: {media: v}\n")
    (tmp_path / "d.jsonl").write_text('{"id": "1", "prompt": "p", "v": "x.mp4"}\n')
    path = tmp_path / "t.yaml"
    hashes = {}
    for name, extra in [("none", ""), ("floor8", "frames: {rule: uniform_floor, num: 8}\n"),
                        ("floor8b", "frames: {rule: uniform_floor}\n"), ("round8", "frames: {rule: uniform_round, num: 8}\n")]:
        path.write_text(base + extra)
        hashes[name] = load_task_file(path)[0].generation_hash()
    assert hashes["floor8"] == hashes["floor8b"] and len({hashes["none"], hashes["floor8"], hashes["round8"]}) == 3
    for bad, message in [("frames: {rule: middle}", "not one of"), ("frames: {rule: uniform_floor, num: 0}", "num >= 1"),
                         ("frames: {rule: fps}", "target rate"), ("frames: {rule: uniform_floor, nmu: 8}", "did you mean 'num'"),
                         ("frames: {rule: mvbench_segments, bound_fields: [start]}", "start, end")]:
        path.write_text(base + bad + "\n")
        with pytest.raises(ConfigError, match=message):
            load_task_file(path)


def test_harness_gives_every_model_the_task_frames(tmp_path):
    """A run records the frames it took; the model receives exactly those (a probe model answers with what it saw)."""
    from omnieval.cli import main
    from omnieval.models.base import Model
    from omnieval.registry import register_model

    @register_model("frames-probe-test", description="answers with the green values of the frames it got")
    class Probe(Model):
        capabilities = ("understand",)

        def understand(self, requests):
            return [json.dumps({"indices": r.media.frames[:, 0, 0, 1].tolist(), "sampled": is_task_sampled(r.media)})
                    for r in requests]

    out = tmp_path / "out"
    assert main(["run", "--model", "frames-probe-test", "--tasks", "mvbench,longvideobench", "--fixtures",
                 "--output_path", str(out), "--predict_only"]) == 0
    for task in ("mvbench", "longvideobench"):
        for line in (out / "samples" / f"{task}.jsonl").read_text().splitlines():
            record = json.loads(line)
            seen = json.loads(record["response"])
            assert seen["sampled"] and seen["indices"] == record["frames"]["indices"]
            assert record["frames"]["rule"] == all_tasks()[task].frames.describe()
    data = json.loads((out / "results.json").read_text())
    assert data["model"]["frames"] == "every frame of the input video"


def test_models_use_the_task_frames_and_say_how_they_sample_otherwise():
    from types import SimpleNamespace

    from omnieval.models.hf_vlm import HFVideoVLM
    from omnieval.models.omnivideo.mllm import OmniMLLM
    from omnieval.registry import get_model

    video = Video(np.arange(12, dtype=np.uint8)[:, None, None, None].repeat(4, 1).repeat(4, 2).repeat(3, 3), fps=4.0)
    sampled = take_frames(video, FrameSpec("uniform_floor", 5))
    vlm = SimpleNamespace(num_frames=2, frame_policy="uniform")
    assert len(HFVideoVLM.frames(vlm, sampled)) == 5 and len(HFVideoVLM.frames(vlm, video)) == 2
    mllm = SimpleNamespace(config=SimpleNamespace(num_video_frames=3))
    assert len(OmniMLLM._frames(mllm, sampled, "x")) == 5
    assert OmniMLLM._frames(mllm, video, "x")[:, 0, 0, 0].tolist() == [0, 5, 11]  # its own rule: linspace truncated
    assert HFVideoVLM.identity_from_args(pretrained="p", num_frames=4).frames == "uniform num=4 (media.sample_frame_indices)"
    assert get_model("omnivideo-tiny").identity_from_args().frames.startswith("uniform_floor num=num_video_frames")
    assert isinstance(sampled, SampledVideo) and sampled.fps == 4.0
