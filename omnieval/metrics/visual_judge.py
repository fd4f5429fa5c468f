"""Pieces shared by the judges that look at one generated image (WISE, T2I-ReasonBench).

Messages and the client are :mod:`omnieval.judge`'s (OpenAI chat format; images as base64 PNG data URLs, encoded by
Pillow with default settings and not resized, so the judge sees exactly the generated pixels).
"""
from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from omnieval.errors import MediaError
from omnieval.judge import JudgeCache, JudgeClient, JudgeSettings, encode_image
from omnieval.media import Video
from omnieval.metrics.base import MeanMetric, MetricInput


def png_bytes(image: Any, what: str = "image") -> bytes:
    """PNG bytes of a uint8 ``H x W x 3`` image (a video is refused: these judges score images)."""
    if isinstance(image, Video):
        raise MediaError(f"{what}: the judge scores images, got a video")
    try:
        return encode_image(image)
    except MediaError as exc:
        raise MediaError(f"{what}: {exc}") from None


def sha256_text(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def map_workers(fn: Callable[[Any], Any], items: list, workers: int) -> list:
    """``[fn(x) for x in items]``, on up to ``workers`` threads (order kept; results do not depend on ``workers``)."""
    if workers == 1 or len(items) < 2:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(fn, items))


class ImageJudgeMetric(MeanMetric):
    """Base of the metrics that judge one generated image per item: the judge client (checked settings, reply cache
    under the run folder), validation of every item before any call, ``workers`` items judged concurrently.
    Subclasses implement ``check_item(item)`` (raise a one-line error) and ``judge(item) -> contribution``."""

    @dataclass(frozen=True)
    class Options(JudgeSettings):
        cache: bool = True

    needs: ClassVar[tuple[str, ...]] = ("output", "doc")
    higher_is_better: ClassVar[dict[str, bool]] = {"failed": False}

    def __init__(self, *, sleep: Callable[[float], None] = time.sleep, **options: Any):
        super().__init__(**options)
        self.options.check(getattr(type(self), "registry_name", type(self).__name__))
        self.client = JudgeClient(self.options, sleep=sleep)

    def attach_run_dir(self, path: Path) -> None:
        """Accepted judge replies are cached under the run folder (:class:`~omnieval.judge.JudgeCache`)."""
        if self.options.cache:
            self.client.cache = JudgeCache(Path(path) / "judge_cache")

    def check_item(self, item: MetricInput) -> None:
        png_bytes(item.output, what=f"item {item.item_id} output")

    def judge(self, item: MetricInput) -> dict[str, Any]:
        raise NotImplementedError

    def score(self, inputs: list[MetricInput]) -> list[dict[str, Any]]:
        for item in inputs:  # every item is checked before any judge call
            self.check_item(item)
        return map_workers(self.judge, inputs, self.options.workers)
