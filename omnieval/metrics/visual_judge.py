"""Pieces shared by the judges that look at one generated image (WISE, T2I-ReasonBench).

Messages and the client are :mod:`omnieval.judge`'s (OpenAI chat format; images as base64 PNG data URLs, encoded by
Pillow with default settings and not resized, so the judge sees exactly the generated pixels).
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from omnieval.errors import MediaError
from omnieval.judge import encode_image
from omnieval.media import Video


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
