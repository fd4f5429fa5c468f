"""VBench ``temporal_flickering``, native and vectorised (no network).

Convention (``vbench/temporal_flickering.py``, VBench 0.1.5):

* every decoded frame is used (no resize, no frame sampling); the value range is uint8 [0, 255];
* per consecutive pair ``(t, t+1)``: MAE = mean over H x W x 3 of ``|frame_t - frame_{t+1}|``;
* per video: ``(255 - mean over pairs of MAE) / 255`` (1.0 = perfectly static);
* the dimension: mean over videos (one process or many: per-video contributions, mean over all).

The published protocol runs VBench's **static filter** (RAFT, :func:`omnieval.metrics.vbench.motion.is_static`)
first: of each prompt's 25 videos, visited in VBench's sorted file order (``-0, -1, -10, ..., -19, -2, -20, ...``,
:func:`omnieval.naming.vbench_file_order`), the first 5 static ones are kept (``vbench static_filter``), and
temporal flickering is the mean over the kept videos of all prompts.  The registered metric does exactly that
when it aggregates (``static_filter=True``, ``kept_per_prompt=5``): every video's contribution records its doc,
its sample index, and its score or why it was skipped, and :meth:`TemporalFlickering.compute` applies the
selection per doc.  With ``static_filter=False`` every scored video counts.  The functional forms score what
they are given, like ``vbench.temporal_flickering``.

Numerics: VBench accumulates in float32; here the absolute differences are summed exactly (integers held in
float64), so the two agree to ~1e-7 (float32 rounding of VBench's per-pair means).  A one-frame video cannot be scored
(VBench would return NaN); it raises :class:`~omnieval.errors.MediaError`.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from omnieval.errors import MediaError
from omnieval.media import Video
from omnieval.metrics.base import MetricInput, State
from omnieval.metrics.vbench.common import Skip, VBenchDimensionMetric, as_video, require_frames
from omnieval.naming import vbench_file_order
from omnieval.registry import register_metric


def pair_mae(frames: np.ndarray) -> np.ndarray:
    """Mean absolute difference of consecutive frames, one float64 per pair (``T-1`` values), on uint8 frames.

    Sums of absolute differences are exact integers (cv2 ``absdiff`` + ``sumElems``, exact below 2**53).
    """
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise MediaError(f"temporal_flickering: expected uint8 frames T x H x W x 3, got {frames.dtype} {frames.shape}")
    return np.array([_abs_diff_sum(a, b) for a, b in zip(frames[:-1], frames[1:])], dtype=np.float64) / float(
        frames[0].size
    )


def _abs_diff_sum(a: np.ndarray, b: np.ndarray) -> float:
    try:
        import cv2
    except ImportError:  # pragma: no cover - cv2 is in the vbench extra
        return float(np.abs(a.astype(np.int16) - b).sum())
    return float(sum(cv2.sumElems(cv2.absdiff(np.ascontiguousarray(a), np.ascontiguousarray(b)))))


def flickering_score_from_file(path: str | os.PathLike) -> float:
    """One video file's score, decoded with cv2 like VBench and streamed (no frame array is kept)."""
    import cv2

    if not Path(path).is_file():
        raise MediaError(f"video file not found: {path}")
    capture = cv2.VideoCapture(str(path))
    try:
        ok, previous = capture.read()
        if not ok:
            raise MediaError(f"video has no decodable frames: {path}")
        total, pairs = 0.0, 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            total += _abs_diff_sum(previous, frame)
            pairs += 1
            previous = frame
    finally:
        capture.release()
    if not pairs:
        raise MediaError(f"temporal_flickering: {path} has a single frame")
    return float((255.0 - total / pairs / previous.size) / 255.0)


def flickering_score(frames: np.ndarray) -> float:
    """One video's score: ``(255 - mean_t MAE(frame_t, frame_t+1)) / 255``."""
    if len(frames) < 2:
        raise MediaError("temporal_flickering: a video needs at least 2 frames")
    return float((255.0 - pair_mae(frames).mean()) / 255.0)


def temporal_flickering_per_video(videos: Iterable[Any]) -> list[float]:
    """Per-video scores of ``videos`` (each a :class:`Video`, a ``T x H x W x 3`` uint8 array or a file path;
    files are decoded with cv2 and kept in BGR, which does not change the channel-symmetric MAE)."""
    return [
        flickering_score_from_file(v) if isinstance(v, (str, os.PathLike)) else flickering_score(as_video(v).frames)
        for v in videos
    ]


def temporal_flickering(videos: Iterable[Any]) -> float:
    """VBench temporal flickering of ``videos``: the mean of per-video scores (no static filter applied here)."""
    scores = temporal_flickering_per_video(videos)
    if not scores:
        raise MediaError("temporal_flickering: no videos given")
    return float(np.mean(scores))


@dataclass(frozen=True)
class FlickerOptions:
    """``static_filter``: score only videos VBench's RAFT static filter keeps (the published protocol);
    ``kept_per_prompt``: how many static videos of a prompt count, in VBench's file order (VBench: 5);
    ``raft_path``: explicit RAFT checkpoint (else the manifest's ``vbench_raft_things``)."""

    static_filter: bool = True
    kept_per_prompt: int = 5
    raft_path: str | None = None


def _union_docs(a: dict, b: dict) -> dict:
    for doc, samples in b.items():
        a.setdefault(doc, {}).update(samples)
    return a


@register_metric(
    "vbench_temporal_flickering",
    description="VBench temporal flickering: (255 - mean consecutive-frame MAE)/255, static videos only",
    capability=("t2v", "long_video"),
)
class TemporalFlickering(VBenchDimensionMetric):
    dimension: ClassVar[str] = "temporal_flickering"
    Options = FlickerOptions
    weights: ClassVar[tuple[str, ...]] = ("vbench_raft_things",)

    path_option: ClassVar[str | None] = "raft_path"
    #: doc id -> sample index -> score (None: skipped by the static filter)
    state = {"videos": State(dict, _union_docs)}
    cluster_fields: ClassVar[tuple[str, ...]] = ("doc_id",)

    def required_weights(self) -> list[str]:
        return super().required_weights() if self.options.static_filter else []

    def score_video(self, video: Video, item: MetricInput) -> float | Skip:
        require_frames(video, 2, item.item_id, self.dimension)
        if self.options.static_filter:
            from omnieval.metrics.vbench.motion import is_static, load_raft
            raft = self.load_shared("raft", load_raft, "vbench_raft_things", self.options.raft_path)
            if not is_static(video, raft):
                return Skip("not static (VBench static filter)")
        return flickering_score(video.frames)

    def contributions(self, inputs: list[MetricInput]) -> list[dict[str, Any]]:
        out = super().contributions(inputs)
        for contribution, item in zip(out, inputs):
            contribution.update(doc_id=item.doc_id or item.item_id, sample_index=item.sample_index)
        return out

    def fold(self, contribution: dict[str, Any]) -> None:
        samples = self.videos.setdefault(str(contribution["doc_id"]), {})
        samples[int(contribution["sample_index"])] = contribution.get(self.dimension)

    def kept_scores(self) -> list[float]:
        """The scores that count: per doc, the first ``kept_per_prompt`` static videos in VBench's file order."""
        kept: list[float] = []
        for samples in self.videos.values():
            scores = [samples[i] for i in vbench_file_order(samples) if samples[i] is not None]
            kept += scores[: self.options.kept_per_prompt] if self.options.static_filter else scores
        return kept

    def compute(self) -> dict[str, float]:
        kept = self.kept_scores()
        return {self.dimension: float(np.mean(kept))} if kept else {}

    # -- vectorised form for resampling docs: the selection is within a doc, so kept sums add across docs ----
    def additive_state(self) -> dict[str, float]:
        kept = self.kept_scores()
        return {"kept_sum": float(sum(kept)), "kept": float(len(kept))}

    def compute_additive(self, s: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with np.errstate(all="ignore"):
            return {self.dimension: np.where(s["kept"] > 0, s["kept_sum"] / s["kept"], np.nan)}
