"""Chat messages for OpenAI-compatible judges, including images.

A message is ``{"role": "system" | "user" | "assistant", "content": str | list[part]}``; a conversation is a list
of them (multi-turn judges add earlier turns as ``assistant`` / ``user`` messages).  Parts follow the OpenAI
chat format, which vLLM and SGLang accept for vision-language models:

* text: ``{"type": "text", "text": "..."}``
* image: ``{"type": "image_url", "image_url": {"url": "data:image/png;base64,<...>"}}`` (optionally ``"detail"``)

**Image encoding** (it changes what the judge sees, hence its scores, and it is part of the cache key):
:func:`image_part` takes a uint8 ``H x W x 3`` RGB array, a ``PIL.Image`` (converted with ``.convert("RGB")``,
which drops alpha the way VIEScore and ImgEdit do) or encoded bytes, and

* encodes with Pillow as **PNG** by default (lossless; Pillow's default compression level 6, no metadata) --
  the encoding of VIEScore's ``encode_image_to_base64`` and lmms-eval's ImgEdit / GEdit-Bench tasks -- or as
  JPEG (``format="JPEG"``, ``quality`` default 75 = Pillow's default, 4:2:0 subsampling) for protocols that
  send JPEG (the official GEdit scripts);
* **does not resize** unless ``max_side`` is given: then the longer side is scaled to ``max_side`` (aspect ratio
  kept, each side ``round``-ed, at least 1 pixel) with Pillow's bicubic filter, and only when it is longer;
* base64-encodes the bytes (standard alphabet, with padding) into a ``data:image/png`` / ``data:image/jpeg`` URL.

Already encoded bytes (:func:`bytes_part`) are sent verbatim with the MIME type given, e.g. ImgEdit's official
script sends the original JPEG file labelled ``image/png``.
"""
from __future__ import annotations

import base64
import io
from collections.abc import Iterable
from typing import Any

import numpy as np

from omnieval.errors import MediaError

__all__ = ["bytes_part", "encode_image", "image_part", "message", "system_message", "text_part", "user_message"]

_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg"}


def text_part(text: str) -> dict[str, Any]:
    return {"type": "text", "text": str(text)}


def encode_image(image: Any, *, format: str = "PNG", quality: int = 75, max_side: int | None = None) -> bytes:
    """The encoded bytes of ``image`` (see the module docstring for the exact conventions)."""
    from PIL import Image

    fmt = format.upper()
    if fmt not in _FORMATS:
        raise ValueError(f"image format must be one of {', '.join(_FORMATS)}, got {format!r}")
    if isinstance(image, Image.Image):
        pil = image.convert("RGB")
    else:
        array = np.asarray(image)
        if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3 or 0 in array.shape:
            raise MediaError(f"judge image must be a uint8 H x W x 3 RGB array or a PIL image, got "
                             f"{array.dtype} {tuple(array.shape)}")
        pil = Image.fromarray(np.ascontiguousarray(array), "RGB")
    if max_side is not None:
        if max_side < 1:
            raise ValueError(f"max_side must be >= 1, got {max_side}")
        w, h = pil.size
        if max(w, h) > max_side:
            scale = max_side / max(w, h)
            pil = pil.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    if fmt == "JPEG":
        pil.save(buf, format="JPEG", quality=quality)
    else:
        pil.save(buf, format="PNG")
    return buf.getvalue()


def bytes_part(data: bytes, mime: str = "image/png", detail: str | None = None) -> dict[str, Any]:
    """An image part from already encoded bytes, sent as they are."""
    url = {"url": f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"}
    if detail is not None:
        url["detail"] = detail
    return {"type": "image_url", "image_url": url}


def image_part(image: Any, *, format: str = "PNG", quality: int = 75, max_side: int | None = None,
               detail: str | None = None) -> dict[str, Any]:
    """An ``image_url`` part holding ``image`` as a base64 data URL (PNG, not resized, by default)."""
    if isinstance(image, (bytes, bytearray)):
        return bytes_part(bytes(image), _FORMATS.get(format.upper(), "image/png"), detail)
    data = encode_image(image, format=format, quality=quality, max_side=max_side)
    return bytes_part(data, _FORMATS[format.upper()], detail)


def message(role: str, *parts: Any) -> dict[str, Any]:
    """A message; one string part gives plain ``content: str``, anything else a list of parts (strings become
    text parts, arrays / PIL images become PNG image parts, dicts are taken as parts)."""
    if role not in ("system", "user", "assistant"):
        raise ValueError(f"message role must be system, user or assistant, got {role!r}")
    if len(parts) == 1 and isinstance(parts[0], str):
        return {"role": role, "content": parts[0]}
    return {"role": role, "content": [_part(p) for p in parts]}


def _part(p: Any) -> dict[str, Any]:
    if isinstance(p, str):
        return text_part(p)
    if isinstance(p, dict):
        return p
    return image_part(p)


def system_message(text: str) -> dict[str, Any]:
    return message("system", text)


def user_message(*parts: Any) -> dict[str, Any]:
    return message("user", *parts)


def check_messages(messages: Iterable[Any]) -> list[dict[str, Any]]:
    """``messages`` as a list, or ValueError naming the first malformed message."""
    out = list(messages)
    if not out:
        raise ValueError("a judge request needs at least one message")
    for i, m in enumerate(out):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant") or "content" not in m:
            raise ValueError(f"judge message {i} must be {{'role': system|user|assistant, 'content': ...}}, got {m!r}"[:300])
        content = m["content"]
        if not isinstance(content, str) and not (isinstance(content, list) and all(isinstance(p, dict) and "type" in p for p in content)):
            raise ValueError(f"judge message {i}: content must be a string or a list of typed parts")
    return out
