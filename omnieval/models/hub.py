"""Resolving model checkpoints given as a local folder or a Hugging Face id, offline-first.

Nothing here downloads unless the user allowed it: with ``HF_HUB_OFFLINE=1`` (or ``local_files_only``) a
hub id must already be in the local cache.  A checkpoint that cannot be found raises a one-line
:class:`~omnieval.errors.MissingWeightsError` naming the id or folder.
"""
from __future__ import annotations

import os
from pathlib import Path

from omnieval.errors import MissingWeightsError
from omnieval.models.base import quick_fingerprint

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf")


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def resolve_checkpoint(name_or_path: str, what: str) -> Path:
    """A local folder for ``name_or_path`` (a folder, or a hub id present in the HF cache)."""
    path = Path(name_or_path).expanduser()
    if path.exists():
        return path
    if name_or_path.startswith((".", "/", "~")):
        raise MissingWeightsError(f"{what}: checkpoint folder not found: {path}")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name_or_path, local_files_only=offline()))
    except Exception as exc:  # noqa: BLE001 - offline misses and network errors alike
        hint = "it is not in the local Hugging Face cache and HF_HUB_OFFLINE=1" if offline() else str(exc).splitlines()[0]
        raise MissingWeightsError(f"{what}: cannot load {name_or_path!r}: {hint}") from exc


def folder_fingerprint(name_or_path: str) -> str:
    """Fingerprint of the weight files of a checkpoint folder or cached hub id (no download, no model build)."""
    path = Path(name_or_path).expanduser()
    if not path.exists():
        try:
            from huggingface_hub import snapshot_download

            path = Path(snapshot_download(name_or_path, local_files_only=True))
        except Exception:  # noqa: BLE001 - not cached: identity falls back to the id itself
            return f"unresolved:{name_or_path}"
    files = [p for p in path.rglob("*") if p.is_file() and (p.suffix in WEIGHT_SUFFIXES or p.name == "config.json")]
    return quick_fingerprint(files) if files else f"empty:{name_or_path}"


def torch_dtype(name: str | None):
    import torch

    if name in (None, "auto"):
        return None
    table = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
             "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
    if name not in table:
        from omnieval.errors import ConfigError

        raise ConfigError(f"dtype must be one of {', '.join(table)}, got {name!r}")
    return table[name]
