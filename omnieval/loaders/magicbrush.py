"""``magicbrush``: the MagicBrush test split as released (a password-protected zip, not on the hub).

Layout (``dataset.path`` = the folder holding ``images/`` and ``edit_sessions.json``; a ``test/`` sub-folder is
also accepted)::

    images/<img_id>/<img_id>-input.png, <img_id>-output1.png, <img_id>-mask1.png, <img_id>-output2.png, ...
    edit_sessions.json         {"<img_id>": [{"input", "mask", "output", "instruction"}, ...]}   (turns in order)
    local_descriptions.json    {"<img_id>": {"<output file name>": "<caption>"}}   (CLIP-T captions)
    global_descriptions.json   same shape

One doc per turn: ``{id: "<img_id>_t<k>", session, turn, n_turns, is_final, input, reference, instruction,
caption, chain_prev}``.  ``input``/``reference`` are the turn's ground-truth input and output (turn k's GT input is
GT output k-1).  ``caption`` = ``captions[img_id][<GT output file name>]``, the key ``image_eval.py`` uses.

Options: ``setting``: ``independent`` (every turn edits its GT input; MagicBrush "single-turn"/all-turn) or
``iterative`` (turn k edits the model's own turn k-1 output; ``chain_prev`` names that doc, for
``fields.chain``; MagicBrush "multi-turn"/final-turn); ``captions``: ``local`` (default; the evaluation README's
``--caption_path ./test/local_captions.json``) or ``global``.
"""
from __future__ import annotations

from pathlib import Path

from omnieval.errors import ConfigError
from omnieval.loaders.files import read_json

SETTINGS = ("independent", "iterative")
CAPTION_FILES = {"local": ("local_descriptions.json", "local_captions.json"),
                 "global": ("global_descriptions.json", "global_captions.json", "global_description.json")}


def _root(path: Path) -> Path | None:
    for root in (path, path / "test"):
        if (root / "edit_sessions.json").is_file() and (root / "images").is_dir():
            return root
    return None


def read(ctx):
    from omnieval.loaders import Loaded

    opts = ctx.options
    setting, which = opts.get("setting", "independent"), opts.get("captions", "local")
    if setting not in SETTINGS:
        raise ConfigError(f"task {ctx.task}: dataset.options.setting must be one of {SETTINGS}, got {setting!r}")
    if which not in CAPTION_FILES:
        raise ConfigError(f"task {ctx.task}: dataset.options.captions must be one of {tuple(CAPTION_FILES)}, got {which!r}")
    root = _root(ctx.local)
    if root is None:
        raise ctx.missing(LOADER, f"no MagicBrush test set at {ctx.local} (need images/ and edit_sessions.json)")
    sessions = read_json(root / "edit_sessions.json", ctx.task)
    caption_file = next((root / n for n in CAPTION_FILES[which] if (root / n).is_file()), None)
    if caption_file is None:
        raise ctx.missing(LOADER, f"{root} has no {' or '.join(CAPTION_FILES[which])}")
    captions = read_json(caption_file, ctx.task)
    if not isinstance(sessions, dict):
        raise ConfigError(f"task {ctx.task}: {root / 'edit_sessions.json'}: expected {{img_id: [turns]}}")
    rows = []
    for img_id, turns in sessions.items():
        if not isinstance(turns, list) or not turns:
            raise ConfigError(f"task {ctx.task}: edit_sessions.json: session {img_id!r} has no list of turns")
        for k, turn in enumerate(turns, 1):
            missing = [f for f in ("input", "output", "instruction") if f not in turn]
            if missing:
                raise ConfigError(f"task {ctx.task}: edit_sessions.json: session {img_id} turn {k} lacks {missing}")
            rows.append({
                "id": f"{img_id}_t{k}", "session": str(img_id), "turn": k, "n_turns": len(turns), "is_final": k == len(turns),
                "input": f"images/{img_id}/{turn['input']}", "reference": f"images/{img_id}/{turn['output']}",
                "instruction": turn["instruction"], "caption": captions.get(str(img_id), {}).get(turn["output"]),
                "chain_prev": f"{img_id}_t{k - 1}" if setting == "iterative" and k > 1 else None,
            })
    return Loaded(rows, root)


def _loader():
    from omnieval.loaders import Loader

    return Loader(read, options=("setting", "captions"), needs=(
        "download the MagicBrush test zip (github.com/OSU-NLP-Group/MagicBrush README 'Dataset Access') and unpack it "
        "with `unzip -P MagicBrush <zip> -d $MAGICBRUSH_DIR` so that $MAGICBRUSH_DIR/test/edit_sessions.json exists"))


LOADER = _loader()
