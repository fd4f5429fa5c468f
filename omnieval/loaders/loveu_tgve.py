"""``loveu_tgve``: the LOVEU-TGVE-2023 data as unpacked from ``loveu-tgve-2023.zip``.

Layout (``dataset.path`` = the ``loveu-tgve-2023`` folder)::

    LOVEU-TGVE-2023_Dataset.csv        columns "Video name", "Our GT caption", "Style Change Caption",
                                       "Object Change Caption", "Background Change Caption", "Multiple Changes Caption"
    <subset>/480p_frames/<video>/*.jpg  subset in DAVIS_480p, youtube_480p, videvo_480p

The CSV interleaves section rows with video rows.  ``run_eval.py`` slices it by position
(``df[1:17]`` DAVIS, ``df[19:42]`` youtube, ``df[44:82]`` videvo); option ``sections: script`` does exactly that.
The default ``sections: markers`` reads the same file by content: a row with no captions is a section row and
switches the subset when its text names one (``davis`` / ``youtube`` / ``videvo``).

One doc per (video, edit type): ``{id: "<subset>/<video>/<type>", prompt: <caption, stripped>, source_caption,
media: "<subset>/480p_frames/<video>", subset, video, edit_type}`` with ``edit_type`` the caption column's first
word lower-cased (style / object / background / multiple), as ``run_eval.py`` names the submission folders.
Prompts are *target captions*, not instructions.
"""
from __future__ import annotations

import csv
import io

from omnieval.errors import ConfigError

CSV_NAME = "LOVEU-TGVE-2023_Dataset.csv"
SUBSETS = ("DAVIS_480p", "youtube_480p", "videvo_480p")
SCRIPT_SLICES = {"DAVIS_480p": (1, 17), "youtube_480p": (19, 42), "videvo_480p": (44, 82)}
CAPTION_COLUMNS = ("Style Change Caption", "Object Change Caption", "Background Change Caption", "Multiple Changes Caption")
SOURCE_COLUMN = "Our GT caption"


def _sections_by_marker(rows: list[dict]) -> list[tuple[str, dict]]:
    out, subset = [], None
    for row in rows:
        if not any((row.get(c) or "").strip() for c in CAPTION_COLUMNS):
            text = " ".join(v for v in row.values() if v).lower()
            subset = next((s for s in SUBSETS if s.split("_")[0].lower() in text), subset)
            continue
        if subset is None:
            subset = SUBSETS[0]
        out.append((subset, row))
    return out


def _sections_by_position(rows: list[dict]) -> list[tuple[str, dict]]:
    return [(sub, row) for sub, (a, b) in SCRIPT_SLICES.items() for row in rows[a:b]]


SECTIONS = {"markers": _sections_by_marker, "script": _sections_by_position}


def read(ctx):
    from omnieval.loaders import Loaded

    root = ctx.local
    csv_path = root / CSV_NAME
    if not csv_path.is_file():
        raise ctx.missing(LOADER, f"{csv_path} not found")
    mode = ctx.options.get("sections", "markers")
    if mode not in SECTIONS:
        raise ConfigError(f"task {ctx.task}: dataset.options.sections must be one of {tuple(SECTIONS)}, got {mode!r}")
    rows = list(csv.DictReader(io.StringIO(csv_path.read_text(encoding="utf-8-sig"), newline="")))
    need = ("Video name", SOURCE_COLUMN, *CAPTION_COLUMNS)
    absent = [c for c in need if rows and c not in rows[0]]
    if absent:
        raise ConfigError(f"task {ctx.task}: {csv_path}: missing column(s) {absent}")
    docs = []
    for subset, row in SECTIONS[mode](rows):
        video = (row["Video name"] or "").strip()
        for column in CAPTION_COLUMNS:
            edit_type = column.split(" ")[0].lower()
            docs.append({"id": f"{subset}/{video}/{edit_type}", "prompt": str(row[column]).strip(),
                         "source_caption": (row[SOURCE_COLUMN] or "").strip(), "media": f"{subset}/480p_frames/{video}",
                         "subset": subset, "video": video, "edit_type": edit_type})
    return Loaded(docs, root)


def _loader():
    from omnieval.loaders import Loader

    return Loader(read, options=("sections",), needs=(
        "download loveu-tgve-2023.zip (github.com/showlab/loveu-tgve-2023 README 'Prepare the data') and unzip it so "
        f"that $LOVEU_TGVE_DIR/{CSV_NAME} and $LOVEU_TGVE_DIR/<subset>/480p_frames/<video>/ exist"))


LOADER = _loader()
