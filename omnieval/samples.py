"""``--log_samples``: one JSONL line per work item with its doc, prompt, output and every metric's scores."""
from __future__ import annotations

import json
from pathlib import Path

from omnieval.store import atomic_write_text


def write_scored_samples(runner) -> list[Path]:
    """Write ``DIR/samples/<task>.scored.jsonl`` (replaced atomically; derived from the store, so re-runnable)."""
    written = []
    for plan in runner.plan():
        lines = []
        for item in plan.items:
            rec = runner.store.generation(item.task, item.key)
            if rec is None:
                continue
            scores = {}
            for label, spec in plan.metrics:
                srec = runner.store.score(item.task, runner.score_key(item, spec))
                if srec is not None:
                    scores[label] = srec["contribution"]
            doc = {k: v for k, v in item.doc.fields.items() if k != "__media_root__"}
            lines.append(json.dumps({"doc_id": item.doc.id, "sample_index": item.sample_index, "think": item.think,
                                     "seed": item.seed, "prompt": item.prompt, "doc": doc, "artifact": rec.get("artifact"),
                                     "response": rec.get("response"), "info": rec.get("info"), "scores": scores},
                                    sort_keys=True, default=str))
        path = Path(runner.run.output_path) / "samples" / f"{plan.cfg.task}.scored.jsonl"
        atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))
        written.append(path)
    return written
