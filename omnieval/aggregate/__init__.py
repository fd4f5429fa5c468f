"""Aggregation: statistics over contributions (:mod:`.stats`) and task-level aggregates over metric values.

A task lists aggregates by name (``aggregates: [vbench]`` in its YAML).  Each maps the task's metric
values ``{result name: value}`` to extra entries ``{name: {"value", "higher_is_better", ...}}``; calling it
with an empty mapping must return every name it can produce (with ``value`` None).
"""
from __future__ import annotations

import importlib
from typing import Any

from omnieval.errors import UnknownNameError

#: name -> "module:function", imported only when a task uses it
AGGREGATORS = {
    "vbench": "omnieval.aggregate.vbench:task_aggregate",
}


def task_aggregate(name: str, values: dict[str, Any]) -> dict[str, dict]:
    if name not in AGGREGATORS:
        raise UnknownNameError("aggregate", name, sorted(AGGREGATORS))
    module, func = AGGREGATORS[name].split(":")
    return getattr(importlib.import_module(module), func)(values)
