"""Frame sampling as part of a task: which frames of an input video the model sees.

A task's ``frames:`` spec (:class:`FrameSpec`) names a rule from :data:`RULES`; the harness applies it to the input
video **before** the model sees it (:func:`take_frames`, called from :func:`omnieval.generation.make_request`), so
every model gets the same frames.  The request's ``media`` is then a :class:`SampledVideo`: the sampled frames
(uint8 ``N x H x W x 3``) with the source frame indices, their timestamps (seconds, ``index / source fps``), the
source's frame count and frame rate, and the rule; the generation record keeps the same information
(:meth:`SampledVideo.record`).  The spec is part of the task's generation hash.

Only the sampled frames are decoded: :func:`take_frames` is the one place that reads frames, through
:meth:`omnieval.media.Video.sample`, which seeks in a file-backed video (an hour-long video is never decoded
whole; its length comes from a demuxing pass).

Rules (``T`` = frames of the video, ``N`` = ``num``, ``fps`` = the video's frame rate):

* ``uniform_floor``: ``linspace(0, T-1, min(N, T))`` **truncated** to int -- ``np.linspace(..., dtype=int)`` of
  lmms-eval's video loader, VILA's ``opencv_extract_frames`` (the Omni-Video understanding scripts) and Video-MME's
  subtitle code; a video with fewer than ``N`` frames gives all of them (as both references do).
* ``uniform_round``: ``linspace(0, T-1, N)`` **rounded** (omnieval's ``media.sample_frame_indices(policy="uniform")``;
  repeats frames when ``T < N``).  For ``T=100, N=8``: floor ``[0,14,28,42,56,70,84,99]``, round ``[0,14,28,42,57,71,85,99]``.
* ``fps``: one frame every ``round(fps / target_fps)`` frames from frame 0 (``fps: target``), and if that gives more
  than ``max`` frames, ``uniform_floor`` with ``max`` frames instead (lmms-eval's ``llava_vid`` sampler).
* ``mvbench_segments``: MVBench's ``get_index``: ``N`` (16) equal segments of ``[start, end]``, the frame
  ``int(start + seg/2 + round(seg * i))`` of each (``seg = (end - start) / N``; ``round`` is half-to-even as numpy's);
  ``start, end`` = frames ``max(0, round(s * fps))`` and ``min(round(e * fps), T-1)`` of the doc's ``bound_fields``
  (seconds) when given, else ``0`` and ``T-1``.
* ``lvb_step``: LongVideoBench's ``load_video``: ``n = min(N, int(duration))`` frames at ``i * int(int(duration * fps) / n)``
  (a floor step from frame 0, not centred); ``duration`` (seconds) from the doc's ``duration_field``, else ``T / fps``;
  ``n`` is at least 1 and indices past the last frame are clipped to it.
* ``all``: every frame.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from omnieval.config import FRAME_RULES, FrameSpec
from omnieval.errors import MediaError
from omnieval.media import Video

__all__ = ["RULES", "FrameSpec", "SampledVideo", "frame_indices", "is_task_sampled", "take_frames"]


def _uniform_floor(total: int, num: int):
    import numpy as np

    n = min(num, total)
    return np.linspace(0, total - 1, n).astype(np.int64)


def _rule_uniform_floor(total: int, fps: float, spec: FrameSpec, doc: dict):
    return _uniform_floor(total, spec.num)


def _rule_uniform_round(total: int, fps: float, spec: FrameSpec, doc: dict):
    from omnieval.media import sample_frame_indices

    return sample_frame_indices(total, spec.num, "uniform")


def _rule_fps(total: int, fps: float, spec: FrameSpec, doc: dict):
    import numpy as np

    step = max(1, round(fps / spec.fps))
    idx = np.arange(0, total, step, dtype=np.int64)
    if spec.max is not None and len(idx) > spec.max:
        return _uniform_floor(total, spec.max)
    return idx


def _seconds(doc: dict, field: str, what: str) -> float:
    value = doc.get(field)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise MediaError(f"{what}: doc field {field!r} must be a number of seconds, got {value!r}") from None


def _rule_mvbench_segments(total: int, fps: float, spec: FrameSpec, doc: dict):
    import numpy as np

    last = total - 1
    if spec.bound_fields:
        start_s = _seconds(doc, spec.bound_fields[0], "frames (mvbench_segments)")
        end_s = _seconds(doc, spec.bound_fields[1], "frames (mvbench_segments)")
    else:
        start_s, end_s = -1e5, 1e5
    start, end = max(0, round(start_s * fps)), min(round(end_s * fps), last)
    seg = float(end - start) / spec.num
    return np.array([int(start + seg / 2 + np.round(seg * i)) for i in range(spec.num)], dtype=np.int64)


def _rule_lvb_step(total: int, fps: float, spec: FrameSpec, doc: dict):
    import numpy as np

    duration = _seconds(doc, spec.duration_field, "frames (lvb_step)") if spec.duration_field else total / fps
    n = max(1, min(spec.num, int(duration)))
    step = int(int(duration * fps) / n)
    return np.minimum(np.arange(n, dtype=np.int64) * step, total - 1)


def _rule_all(total: int, fps: float, spec: FrameSpec, doc: dict):
    import numpy as np

    return np.arange(total, dtype=np.int64)


#: rule name -> ``(T, fps, spec, doc fields) -> frame indices``
RULES: dict[str, Callable[[int, float, FrameSpec, dict], Any]] = {
    "uniform_floor": _rule_uniform_floor,
    "uniform_round": _rule_uniform_round,
    "fps": _rule_fps,
    "mvbench_segments": _rule_mvbench_segments,
    "lvb_step": _rule_lvb_step,
    "all": _rule_all,
}
if tuple(RULES) != FRAME_RULES:  # pragma: no cover - a development error
    raise RuntimeError("omnieval.config.FRAME_RULES must list the rules of omnieval.frames.RULES, in order")


def frame_indices(spec: FrameSpec, total: int, fps: float, doc: dict | None = None):
    """The source frame indices ``spec`` takes from a video of ``total`` frames at ``fps``."""
    if total < 1:
        raise MediaError("cannot sample frames from an empty video")
    return RULES[spec.rule](total, float(fps), spec, doc or {})


class SampledVideo(Video):
    """The frames a task's :class:`FrameSpec` took from an input video, with where they came from.

    ``fps`` is the source's frame rate (so ``timestamps = indices / fps``); ``indices`` are source frame numbers.
    Models that sample their own frames use all of these when given one (:func:`is_task_sampled`).
    """

    def __init__(self, frames, fps: float, *, indices, source_frames: int, rule: str, path: str | None = None):
        super().__init__(frames, fps=fps, path=path)
        self.indices = [int(i) for i in indices]
        self.source_frames = int(source_frames)
        self.rule = rule

    @property
    def timestamps(self) -> list[float]:
        return [i / self.fps for i in self.indices]

    @property
    def source_file(self):
        return None  # these frames are not the file's frames

    def record(self) -> dict[str, Any]:
        """What the generation record keeps about the sampling."""
        return {"rule": self.rule, "indices": self.indices, "timestamps": [round(t, 6) for t in self.timestamps],
                "source_frames": self.source_frames, "source_fps": self.fps}


def is_task_sampled(media: Any) -> bool:
    """Whether ``media`` holds the frames a task's ``frames:`` spec chose (the model must use them all)."""
    return isinstance(media, SampledVideo)


def take_frames(video: Video, spec: FrameSpec, doc: dict | None = None, *, what: str = "video") -> SampledVideo:
    """Apply ``spec`` to ``video``: the only place frames of a task's input video are read (seeking decode)."""
    total = len(video)
    try:
        idx = frame_indices(spec, total, video.fps, doc)
        frames = video.sample(idx)
    except MediaError as exc:
        raise MediaError(f"{what}: {exc}") from exc
    return SampledVideo(frames, video.fps, indices=idx, source_frames=total, rule=spec.describe(), path=video.path)
