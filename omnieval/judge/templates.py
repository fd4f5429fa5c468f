"""Judge prompt templates (the data is ``templates.yaml`` next to this file).

A :class:`PromptTemplate` is a system and a user message with named fields (``{question}``, ``{pred}``, ...).
Filling is one pass over the template (a value that itself contains ``{pred}`` is not substituted again) and only
the declared fields are replaced, so literal braces such as the ``{''score': 4.8}`` example survive.  The
template's :attr:`PromptTemplate.sha256` goes into the metric options and every contribution, so results say
exactly which prompt the judge saw.
"""
from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from omnieval.errors import ConfigError, UnknownNameError

__all__ = ["PromptTemplate", "get_template", "templates"]

_DATA = Path(__file__).with_name("templates.yaml")


@dataclass(frozen=True)
class PromptTemplate:
    """A system message and a user message with ``{field}`` placeholders for ``fields``."""

    name: str
    system: str
    user: str
    fields: tuple[str, ...] = ("question", "answer", "pred")

    @property
    def sha256(self) -> str:
        return hashlib.sha256(json.dumps({"system": self.system, "user": self.user}, sort_keys=True).encode()).hexdigest()

    def fill(self, text: str, values: dict[str, Any]) -> str:
        missing = [f for f in self.fields if f not in values]
        if missing:
            raise ValueError(f"judge template {self.name}: no value for field(s) {', '.join(missing)}")
        pattern = re.compile(r"\{(" + "|".join(map(re.escape, self.fields)) + r")\}")
        return pattern.sub(lambda m: str(values[m.group(1)]), text)

    def messages(self, **values: Any) -> list[dict[str, str]]:
        """``[system, user]`` with the fields filled in."""
        return [{"role": "system", "content": self.fill(self.system, values)},
                {"role": "user", "content": self.fill(self.user, values)}]


def _text(value: Any, where: str) -> str:
    parts = value if isinstance(value, list) else [value]
    if not all(isinstance(p, str) for p in parts):
        raise ConfigError(f"{_DATA}: {where} must be a string or a list of strings")
    return "".join(parts)


@functools.cache
def templates() -> dict[str, PromptTemplate]:
    """Every template of ``templates.yaml`` by name."""
    data = yaml.safe_load(_DATA.read_text(encoding="utf-8"))
    out = {}
    for name, spec in data["templates"].items():
        out[name] = PromptTemplate(name, _text(spec["system"], f"{name}.system"), _text(spec["user"], f"{name}.user"),
                                   tuple(spec.get("fields", ("question", "answer", "pred"))))
    return out


def get_template(name: str) -> PromptTemplate:
    known = templates()
    if name not in known:
        raise UnknownNameError("judge template", name, sorted(known))
    return known[name]
