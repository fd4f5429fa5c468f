"""``msrvtt``: MSR-VTT (Xu et al., 2016) annotations as text-to-video prompts.

Accepted files (the dataset path):

* the official ``test_videodatainfo.json`` (or ``train_val_videodatainfo.json``): ``videos`` (``video_id``,
  ``split``, ``category``, ...) and ``sentences`` (``video_id``, ``caption``, ``sen_id``); the 2,990 test videos
  ``video7010`` ... ``video9999`` have 20 captions each;
* CLIP4Clip's ``MSRVTT_JSFUSION_test.csv`` (the "1k-A" split): columns ``key, vid_key, video_id, sentence``,
  one sentence per video.

No reference code fixes how zero-shot T2V papers pick prompts from MSR-VTT, so every choice is a loader option
(``dataset.options``), recorded in the task hash:

``captions``: ``one_per_video`` (default; one doc per video, id = ``video_id``) or ``all`` (one doc per
    caption, id = ``<video_id>#<sen_id>``; 59,800 prompts on the official test split).
``caption_choice`` (with ``one_per_video``): ``seeded`` (default; caption ``k`` of the video's captions in
    ``sen_id`` order, ``k`` drawn by ``numpy.random.default_rng([seed, crc32(video_id)])``, so the choice does
    not depend on file order) or ``first`` (the lowest ``sen_id``).  The JSFusion csv has one sentence a video.
``seed``: default 0.  ``split``: the ``videos[].split`` kept from the official json (default ``test``).

Each record: ``id``, ``video_id``, ``prompt`` (the caption, as given), ``sen_id``, ``category`` and ``video``
(``<video_id>.mp4``, the official file name).
"""
from __future__ import annotations

import csv
import zlib
from pathlib import Path

import numpy as np

from omnieval.errors import ConfigError
from omnieval.loaders.files import read_json

HINT = ("download MSR-VTT's test annotations test_videodatainfo.json (or CLIP4Clip's MSRVTT_JSFUSION_test.csv) "
        "and set MSRVTT_DIR to the folder holding it")
OPTIONS = ("captions", "caption_choice", "seed", "split")
CHOICES = {"captions": ("one_per_video", "all"), "caption_choice": ("seeded", "first")}


def _captions(path: Path, task: str, split: str) -> dict[str, list[dict]]:
    """video_id -> its captions (``caption``, ``sen_id``, ``category``) in sen_id order, videos in file order."""
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        if not rows or not {"video_id", "sentence"} <= set(rows[0]):
            raise ConfigError(f"task {task}: {path}: expected CLIP4Clip's columns video_id, sentence")
        return {r["video_id"]: [{"caption": r["sentence"], "sen_id": i, "category": None}] for i, r in enumerate(rows)}
    data = read_json(path, task)
    if not isinstance(data, dict) or not isinstance(data.get("videos"), list) or not isinstance(data.get("sentences"), list):
        raise ConfigError(f"task {task}: {path}: expected MSR-VTT's videodatainfo json (keys videos, sentences)")
    videos = {v["video_id"]: v for v in data["videos"] if v.get("split", split) == split}
    out: dict[str, list[dict]] = {vid: [] for vid in videos}
    for s in data["sentences"]:
        if s.get("video_id") in out:
            out[s["video_id"]].append({"caption": s["caption"], "sen_id": int(s["sen_id"]),
                                       "category": videos[s["video_id"]].get("category")})
    empty = [vid for vid, caps in out.items() if not caps]
    if empty:
        raise ConfigError(f"task {task}: {path}: video {empty[0]} has no caption")
    return {vid: sorted(caps, key=lambda c: c["sen_id"]) for vid, caps in out.items()}


def video_ids(path: Path, task: str = "", split: str = "test") -> list[str]:
    """The video ids of an annotation file (official json: the ``split`` videos; JSFusion csv: every row)."""
    return list(_captions(path, task, split))


def read(ctx):
    from omnieval.loaders import Loaded

    opts = {"captions": "one_per_video", "caption_choice": "seeded", "seed": 0, "split": "test", **ctx.options}
    for key, allowed in CHOICES.items():
        if opts[key] not in allowed:
            raise ConfigError(f"task {ctx.task}: dataset.options.{key} must be one of {allowed}, got {opts[key]!r}")
    path = ctx.local
    if not path.is_file():
        raise ctx.missing(LOADER, f"MSR-VTT annotations not found: {path}")
    records = []
    for vid, caps in _captions(path, ctx.task, opts["split"]).items():
        if opts["captions"] == "all":
            chosen = caps
        elif opts["caption_choice"] == "first" or len(caps) == 1:
            chosen = caps[:1]
        else:
            chosen = [caps[int(np.random.default_rng([int(opts["seed"]), zlib.crc32(vid.encode())]).integers(len(caps)))]]
        for c in chosen:
            records.append({"id": vid if opts["captions"] == "one_per_video" else f"{vid}#{c['sen_id']}", "video_id": vid,
                            "prompt": c["caption"], "sen_id": c["sen_id"], "category": c["category"],
                            "video": f"{vid}.mp4"})
    return Loaded(records, path.parent)


def _loader():
    from omnieval.loaders import Loader

    return Loader(read, needs=HINT, options=OPTIONS)


LOADER = _loader()
