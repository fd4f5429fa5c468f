"""``omnieval export``: copy a run's generated media out in another tool's naming.

``--format vbench`` writes ``DEST/{prompt}-{index}.mp4`` (VBench's sample names; the prompt is the task's raw
prompt field), so the videos can be handed to ``vbench evaluate`` unchanged.  Think-on samples go to
``DEST/think/`` (VBench has no notion of think mode).  Files are hard-linked when possible, else copied;
an existing file with other content is an error (nothing is overwritten silently).
"""
from __future__ import annotations

import filecmp
import os
import shutil
from pathlib import Path

from omnieval.errors import OmniEvalError
from omnieval.planning import TaskPlan
from omnieval.store import Store

FORMATS = ("vbench",)


def export_run(plans: list[TaskPlan], store: Store, task: str, dest: Path, fmt: str = "vbench") -> list[Path]:
    """Export ``task``'s artifacts from the store's output folder to ``dest``; returns the files written."""
    from omnieval.naming import video_filename

    if fmt not in FORMATS:
        raise OmniEvalError(f"export: unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    chosen = [p for p in plans if p.cfg.task == task]
    if not chosen:
        raise OmniEvalError(f"export: task {task!r} is not part of the run in {store.root}")
    plan = chosen[0]
    written = []
    for item in plan.items:
        record = store.generation(item.task, item.key)
        if record is None or not record.get("artifact"):
            raise OmniEvalError(f"export: no generated media for task {task} doc {item.doc.id} sample "
                                f"{item.sample_index} think {item.think}; run `omnieval run` first")
        source = store.root / record["artifact"]
        prompt = str(item.doc.get(plan.cfg.fields.prompt, item.prompt))
        folder = dest / "think" if item.think == "on" else dest
        target = folder / video_filename(prompt, item.sample_index, ext=source.suffix)
        folder.mkdir(parents=True, exist_ok=True)
        _place(source, target)
        written.append(target)
    return written


def _place(source: Path, target: Path) -> None:
    if target.exists():
        if filecmp.cmp(source, target, shallow=False):
            return
        raise OmniEvalError(f"export: {target} exists with other content; choose an empty destination")
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
