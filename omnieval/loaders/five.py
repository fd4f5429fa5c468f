"""``five``: FiVE-Bench as unpacked from ``LIMinghan/FiVE-Fine-Grained-Video-Editing-Benchmark``.

Layout (``dataset.path`` = the ``data`` folder; ``INSTALL.md``: clone the hub repo, ``unzip bmasks.zip images.zip
videos.zip``)::

    edit_prompt/edit{1..6}_FiVE.json   a list of entries per editing type
    images/<video_name>/00001.jpg ...  source frames;  bmasks/<video_name>/00001.jpg ...  edit masks (SAM2)

Entry fields read: ``video_name``, ``editing_type_id``, ``source_prompt``, ``target_prompt`` (edited words in
``[...]``), ``save_dir``, and the FiVE-Acc questions ``multiple_choice_question``, ``source_yes_no_question``,
``target_yes_no_question`` when present.  One doc per entry: ``{id: "<video_name>/<out_dir>", prompt: target prompt
without brackets, source_prompt (without brackets), editing_type_id, media: "images/<video_name>", mask:
"bmasks/<video_name>", out_dir, questions...}`` where ``out_dir = f"{type}_{target_prompt[:len(save_dir) - 2]}"`` is
the folder name ``evaluate.py`` reads the edited video from (it is also the id suffix).  Option ``types``: which
``edit{n}_FiVE.json`` files to read (default 1-6).  Other string fields of an entry (e.g. an instruction) are kept.
"""
from __future__ import annotations

from omnieval.errors import ConfigError
from omnieval.loaders.files import read_json

QUESTIONS = ("multiple_choice_question", "source_yes_no_question", "target_yes_no_question")


def _strip(text: str) -> str:
    return text.replace("[", "").replace("]", "")


def read(ctx):
    from omnieval.loaders import Loaded

    root = ctx.local
    types = ctx.options.get("types", [1, 2, 3, 4, 5, 6])
    files = [root / "edit_prompt" / f"edit{t}_FiVE.json" for t in types]
    absent = [f for f in files if not f.is_file()]
    if absent or not (root / "images").is_dir():
        raise ctx.missing(LOADER, f"{absent[0] if absent else root / 'images'} not found")
    docs = []
    for path in files:
        entries = read_json(path, ctx.task)
        if not isinstance(entries, list):
            raise ConfigError(f"task {ctx.task}: {path}: expected a list of entries")
        for n, e in enumerate(entries):
            missing = [k for k in ("video_name", "editing_type_id", "source_prompt", "target_prompt", "save_dir") if k not in e]
            if missing:
                raise ConfigError(f"task {ctx.task}: {path}: entry {n} lacks {missing}")
            out_dir = f"{e['editing_type_id']}_{e['target_prompt'][:len(e['save_dir']) - 2]}"
            doc = {k: v for k, v in e.items() if isinstance(v, (str, int, float, bool))}
            doc.update(id=f"{e['video_name']}/{out_dir}", prompt=_strip(e["target_prompt"]),
                       source_prompt=_strip(e["source_prompt"]), editing_type_id=str(e["editing_type_id"]),
                       media=f"images/{e['video_name']}", mask=f"bmasks/{e['video_name']}", out_dir=out_dir)
            for q in QUESTIONS:
                doc.setdefault(q, None)
            docs.append(doc)
    return Loaded(docs, root)


def _loader():
    from omnieval.loaders import Loader

    return Loader(read, options=("types",), needs=(
        "git clone the hub dataset LIMinghan/FiVE-Fine-Grained-Video-Editing-Benchmark to $FIVE_DIR and "
        "`unzip bmasks.zip images.zip videos.zip` there, so that $FIVE_DIR/edit_prompt/edit1_FiVE.json exists"))


LOADER = _loader()
