"""Pieces shared by the judges that look at a generated image (WISE, T2I-ReasonBench).

Messages are OpenAI chat messages with content parts: ``{"type": "text", "text": ...}`` and
``{"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}``, sent through
:class:`~omnieval.metrics.judge.JudgeClient` (which passes messages through unchanged).  Images are encoded
losslessly as PNG (Pillow, default settings): the judge sees exactly the generated pixels.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from omnieval.errors import MediaError
from omnieval.media import Video, as_uint8_image


def png_bytes(image: Any, what: str = "image") -> bytes:
    """PNG bytes of a uint8 ``H x W x 3`` image (a video is refused: these judges score images)."""
    from PIL import Image

    if isinstance(image, Video):
        raise MediaError(f"{what}: the judge scores images, got a video")
    buf = io.BytesIO()
    Image.fromarray(as_uint8_image(np.asarray(image), what=what)).save(buf, format="PNG")
    return buf.getvalue()


def text_part(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def image_part(png: bytes) -> dict[str, Any]:
    """An ``image_url`` part holding ``png`` as a base64 data URL (always labelled PNG)."""
    return {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(png).decode("ascii")}}


def sha256_text(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def map_workers(fn: Callable[[Any], Any], items: list, workers: int) -> list:
    """``[fn(x) for x in items]``, on up to ``workers`` threads (order kept; results do not depend on ``workers``)."""
    if workers == 1 or len(items) < 2:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(fn, items))
