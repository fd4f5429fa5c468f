"""The ``results.json`` schema (versioned), environment capture and atomic writes.

Schema (``schema_version`` 1)::

    {
      "schema_version": 1,
      "results":   {task_key: {metric_name: {"value", "stderr", "n", "higher_is_better"}}},
      "ablations": {task: {metric_name: {"off", "on", "delta", "stderr", "p_value", "n"}}},
      "configs":   {task: resolved task config},
      "task_hashes": {task: {"config": ..., "generation": ..., "docs": ...}},
      "model":     {"name", "args", "fingerprint"},
      "environment": {"packages": {...}, "python", "platform", "git_revision", "world_size"},
      "timing":    {"load_s", "generate_s", "score_s", "total_s"},
      "counters":  {"generation_calls", "generated_items", "scoring_calls", "scored_items"},
      "metric_options": {task: {metric: options}},
    }

``task_key`` is the task name for think mode *off* and ``<task>@think`` for think mode *on*.  ``stderr`` is a
bootstrap estimate (null where the metric cannot be resampled cheaply, e.g. FVD).
"""
from __future__ import annotations

import json
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from omnieval.store import atomic_write_text

SCHEMA_VERSION = 1
TRACKED_PACKAGES = (
    "omnieval", "torch", "torchvision", "transformers", "diffusers", "accelerate", "open-clip-torch", "torchmetrics",
    "torch-fidelity", "numpy", "scipy", "datasets", "pandas", "av", "vbench", "cd-fvd", "opencv-python-headless",
)


def think_key(task: str, think: str) -> str:
    return task if think == "off" else f"{task}@think"


def environment(world_size: int = 1) -> dict[str, Any]:
    packages = {}
    for name in TRACKED_PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "packages": packages,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "git_revision": git_revision(),
        "world_size": world_size,
    }


def git_revision() -> str | None:
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=5)
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


class ResultsFile:
    """``results.json`` of an output folder, merged task by task and replaced atomically."""

    def __init__(self, path: Path):
        self.path = path
        self.data: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION, "results": {}, "ablations": {}, "configs": {}, "task_hashes": {},
            "metric_options": {}, "model": None, "environment": None, "timing": {}, "counters": {},
        }
        if path.exists():
            try:
                old = json.loads(path.read_text())
            except json.JSONDecodeError:
                old = None  # a torn file cannot exist (atomic writes); a hand-edited one is replaced
            if isinstance(old, dict) and old.get("schema_version") == SCHEMA_VERSION:
                for key in ("results", "ablations", "configs", "task_hashes", "metric_options"):
                    self.data[key].update(old.get(key) or {})

    def set_task(self, task: str, *, results: dict, ablations: dict | None, config: dict, hashes: dict, metric_options: dict) -> None:
        for key in [k for k in self.data["results"] if k == task or k.startswith(task + "@")]:
            del self.data["results"][key]
        self.data["results"].update(results)
        if ablations:
            self.data["ablations"][task] = ablations
        else:
            self.data["ablations"].pop(task, None)
        self.data["configs"][task] = config
        self.data["task_hashes"][task] = hashes
        self.data["metric_options"][task] = metric_options

    def write(self, **top: Any) -> None:
        self.data.update(top)
        atomic_write_text(self.path, json.dumps(self.data, indent=2, sort_keys=False, default=str) + "\n")
