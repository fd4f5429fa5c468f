"""VBench's sample file names (an I/O convention shared by ``predictions``, ``export`` and the VBench metrics).

Conventions (VBench 0.1.5 ``vbench/__init__.py`` ``build_full_info_json``, ``static_filter.py``):

* a sample of prompt ``p`` is named ``f"{p}{special_str}-{index}{ext}"`` (``ext`` ``.mp4``); the prompt is read
  back by stripping one trailing ``-<digits>`` (``get_prompt_from_filename``), so prompts may contain ``-``,
  ``'``, ``,``, ``.``, parentheses, digits -- anything but ``/`` (and NUL), which a file name cannot hold;
* VBench visits a prompt's files in *lexicographic* order (``sorted(glob)``: ``-0, -1, -10, -11, ..., -19, -2,
  -20, ...``): :func:`vbench_file_order` gives that order for sample indices;
* VBench never truncates prompts.  Its longest prompt is 210 bytes, so every name fits the usual 255-byte
  limit; :func:`video_filename` refuses a longer name unless ``truncate=True``, which cuts the prompt at a UTF-8
  character boundary (and :func:`match_prompt` maps a truncated name back by unique prefix).
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from omnieval.errors import ConfigError

MAX_NAME_BYTES = 255
_INDEX_SUFFIX = re.compile(r"-(\d+)$")


def video_filename(prompt: str, index: int, ext: str = ".mp4", special_str: str = "", truncate: bool = False) -> str:
    """VBench's sample name ``{prompt}{special_str}-{index}{ext}``."""
    if "/" in prompt or "\x00" in prompt:
        raise ConfigError(f"prompt {prompt!r} contains '/' or NUL, which cannot be part of a file name")
    if index < 0:
        raise ConfigError(f"sample index must be >= 0, got {index}")
    tail = f"{special_str}-{index}{ext}"
    name = prompt + tail
    excess = len(name.encode("utf-8")) - MAX_NAME_BYTES
    if excess > 0:
        if not truncate:
            raise ConfigError(f"file name for prompt {prompt[:40]!r}... is {excess} bytes over {MAX_NAME_BYTES}; pass truncate=True")
        cut = prompt.encode("utf-8")[: len(prompt.encode("utf-8")) - excess].decode("utf-8", errors="ignore")
        name = cut + tail
    return name


def parse_filename(name: str | Path, special_str: str = "") -> tuple[str, int | None]:
    """``(prompt, index)`` of a sample file name; ``index`` is None when the stem has no ``-<n>`` suffix."""
    stem = Path(name).stem if Path(name).suffix else Path(name).name
    match = _INDEX_SUFFIX.search(stem)
    if not match:
        prompt, index = stem, None
    else:
        prompt, index = stem[: match.start()], int(match.group(1))
    if special_str and prompt.endswith(special_str):
        prompt = prompt[: -len(special_str)]
    return prompt, index


def match_prompt(name_prompt: str, prompts: Iterable[str]) -> str | None:
    """The suite prompt a (possibly truncated) file-name prompt stands for: exact, else the unique prefix match."""
    prompts = list(prompts)
    if name_prompt in prompts:
        return name_prompt
    hits = [p for p in prompts if p.startswith(name_prompt)]
    return hits[0] if len(hits) == 1 else None


def vbench_file_order(indices: Iterable[int], ext: str = ".mp4") -> list[int]:
    """Sample indices of one prompt in the order VBench visits their files (plain string order of the names,
    whose common prompt prefix does not matter: ``-1.mp4 < -10.mp4 < -2.mp4``)."""
    return sorted(indices, key=lambda i: f"-{i}{ext}")
