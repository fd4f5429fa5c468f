"""``--log_samples``: one JSONL line per work item with its doc, prompt, output and every metric's scores."""
from __future__ import annotations

import json
from pathlib import Path

from omnieval.planning import TaskPlan
from omnieval.scoring import score_key
from omnieval.store import Store, atomic_write_text


def write_scored_samples(plans: list[TaskPlan], store: Store) -> list[Path]:
    """Write ``<output>/samples/<task>.scored.jsonl`` (replaced atomically; derived from the store, so re-runnable)."""
    written = []
    for plan in plans:
        lines = []
        for item in plan.items:
            rec = store.generation(item.task, item.key)
            if rec is None:
                continue
            scores = {}
            for spec in plan.scored_specs(item):
                srec = store.score(item.task, score_key(item, spec))
                if srec is not None:
                    scores[spec.result_label] = srec["contribution"]
            doc = {k: v for k, v in item.doc.fields.items() if k != "__media_root__"}
            lines.append(json.dumps({"doc_id": item.doc.id, "sample_index": item.sample_index, "think": item.think,
                                     "seed": item.seed, "prompt": item.prompt, "doc": doc, "artifact": rec.get("artifact"),
                                     "response": rec.get("response"), "info": rec.get("info"), "frames": rec.get("frames"),
                                     "scores": scores},
                                    sort_keys=True, default=str))
        path = store.root / "samples" / f"{plan.cfg.task}.scored.jsonl"
        atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))
        written.append(path)
    return written
