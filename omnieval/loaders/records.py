"""What a loaded record holds, as the task's ``fields`` say: its id, its options and its media file.

Every loader's records go through these (whatever the layout they were read from):

* :func:`doc_id`: ``fields.id`` is a field name or a template of fields (``"{video}_{qid}"``), else the row index;
* :func:`doc_choices`: the options from one field (a list or a ``{letter: text}`` mapping), from several fields of
  one option each (NExT-QA's ``a0``..``a4``), or from ``A. text`` / ``(A) text`` lines of the prompt itself;
* :func:`resolve_media_path`: ``dataset.media_template`` (``{}`` the media value, ``{field}`` any field) under the
  media folder, with ``dataset.media_alternatives`` tried in order when the first names no file (``.MP4``).
"""
from __future__ import annotations

import re
import string
from pathlib import Path

from omnieval.errors import ConfigError


def doc_id(cfg, row: dict, index: int, where: str) -> str:
    """The doc id: the ``fields.id`` field, or a template of fields (``"{video}_{qid}"``), else the row index."""
    key = cfg.fields.id
    if key and "{" in key:
        try:
            return key.format_map(row)
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(f"task {cfg.task}: record {index} of {where}: fields.id {key!r} needs field {exc}") from exc
    return str(row[key]) if key and key in row else str(index)


_OPTION_LINE = re.compile(r"^\s*\(?([A-Z])[.)]\s*(.*?)\s*$")


def doc_choices(cfg, fields: dict) -> list | dict | None:
    """The options of a doc as :class:`~omnieval.config.FieldMap` says where they are: a list of texts, a
    ``{letter: text}`` mapping, or ``None`` (no options)."""
    f = cfg.fields
    if f.choices_in_prompt:
        text = fields.get(f.prompt) or ""
        found = [m.groups() for m in map(_OPTION_LINE.match, str(text).splitlines()[1:]) if m]
        return dict(found) or None
    if f.choices is None:
        return None
    value = [fields.get(name) for name in f.choices] if isinstance(f.choices, tuple) else fields.get(f.choices)
    if isinstance(value, (list, tuple)):
        value = [v for v in value if v not in f.choices_skip]
        if f.choices_strip:
            value = [v.strip() if isinstance(v, str) else v for v in value]
    return value


def resolve_media_path(doc, value: str, template: str = "{}", alternatives: tuple[str, ...] = ()) -> Path:
    """The media file of ``value``: ``template`` formatted with it (``{}``) and the doc's fields (``{field}``), under
    the media folder; the first of ``template, *alternatives`` that names an existing file (else the first)."""
    fields = {k: v for k, v in doc.fields.items() if isinstance(k, str)}
    paths = []
    for t in (template, *alternatives):
        try:
            p = Path(string.Formatter().vformat(t, (value,), fields))
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(f"doc {doc.id}: media template {t!r} needs field {exc}") from exc
        if not p.is_absolute() and "__media_root__" in doc.fields:
            p = Path(doc.fields["__media_root__"]) / p
        if not alternatives or p.exists():
            return p
        paths.append(p)
    return paths[0]
