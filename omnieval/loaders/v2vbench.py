"""``v2vbench``: V2VBench as on the hub (``Wenhao-Sun/V2VBench``: ``config.yaml`` + ``frames/<video_id>/NN.png``).

``config.yaml``: ``data: [{video_id, edit: [{prompt}, ...], ...}]``.  One doc per (video, edit):
``{id: "<video_id>/<edit index>", prompt, media: "frames/<video_id>", video_id, edit_id}`` -- the edit index is
the position in ``edit`` (``base_evaluator.py`` reads ``<edit_video_dir>/<video_id>/<edit_id>``).  Other scalar keys
of the video entry and of the edit (e.g. a source prompt) are kept as doc fields.
"""
from __future__ import annotations

import yaml

from omnieval.errors import ConfigError


def read(ctx):
    from omnieval.loaders import Loaded

    root = ctx.local
    index = root / "config.yaml"
    if not index.is_file() or not (root / "frames").is_dir():
        raise ctx.missing(LOADER, f"no V2VBench config.yaml + frames/ at {root}")
    try:
        config = yaml.safe_load(index.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"task {ctx.task}: {index}: malformed YAML ({exc})") from exc
    entries = config.get("data") if isinstance(config, dict) else None
    if not isinstance(entries, list):
        raise ConfigError(f"task {ctx.task}: {index}: expected `data: [{{video_id, edit: [...]}}]`")
    docs = []
    for n, entry in enumerate(entries):
        if not isinstance(entry, dict) or "video_id" not in entry or not isinstance(entry.get("edit"), list):
            raise ConfigError(f"task {ctx.task}: {index}: data[{n}] needs video_id and an edit list")
        video = str(entry["video_id"])
        base = {k: v for k, v in entry.items() if k not in ("edit", "video_id") and isinstance(v, (str, int, float, bool))}
        for edit_id, edit in enumerate(entry["edit"]):
            if not isinstance(edit, dict) or "prompt" not in edit:
                raise ConfigError(f"task {ctx.task}: {index}: data[{n}] ({video}) edit {edit_id} has no prompt")
            extra = {k: v for k, v in edit.items() if isinstance(v, (str, int, float, bool))}
            docs.append({**base, **extra, "id": f"{video}/{edit_id}", "prompt": edit["prompt"], "media": f"frames/{video}",
                         "video_id": video, "edit_id": edit_id})
    return Loaded(docs, root)


def _loader():
    from omnieval.loaders import Loader

    return Loader(read, needs=("download the V2VBench data with `huggingface-cli download --repo-type dataset "
                               "Wenhao-Sun/V2VBench --local-dir $V2VBENCH_DIR` (config.yaml and frames/ inside)"))


LOADER = _loader()
