"""Where a task stands in the store: which work is missing (never done: e.g. a shard still running or dead) and
which failed (done, raised, recorded).  ``results.json`` reports both per task; values are computed only for a
task with nothing missing (failed items are left out of them and counted)."""
from __future__ import annotations

from dataclasses import dataclass, field

from omnieval.failures import FIRST_N
from omnieval.planning import TaskPlan, WorkItem
from omnieval.results import TaskFailures, TaskMissing
from omnieval.scoring import score_key
from omnieval.store import Store


@dataclass
class TaskStatus:
    plan: TaskPlan
    missing_outputs: list[WorkItem] = field(default_factory=list)
    missing_scores: list[tuple[WorkItem, str]] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.missing_outputs and not self.missing_scores

    def missing(self) -> TaskMissing | None:
        if self.complete:
            return None
        first = list(dict.fromkeys([it.item_id for it in self.missing_outputs] + [it.item_id for it, _ in self.missing_scores]))
        return TaskMissing(items=len(self.missing_outputs), scores=len(self.missing_scores),
                           total_items=len(self.plan.items), first=first[:FIRST_N])

    def failures(self) -> TaskFailures:
        scoring: dict[str, int] = {}
        for rec in self.failed:
            if rec.get("stage") == "score":
                scoring[rec.get("metric") or "?"] = scoring.get(rec.get("metric") or "?", 0) + 1
        first = [{k: rec.get(k) for k in ("item", "stage", "metric", "error", "digest")} for rec in self.failed[:FIRST_N]]
        return TaskFailures(count=len(self.failed), generation=sum(r.get("stage") == "generate" for r in self.failed),
                            scoring=scoring, first=first)

    def summary_line(self) -> str:
        m = self.missing()
        text = f"task {self.plan.cfg.task}: " + ("complete" if m is None else
                                                f"{m.items} of {m.total_items} items without output, {m.scores} scores missing "
                                                f"(first: {', '.join(m.first)})")
        return text + (f", {len(self.failed)} failed" if self.failed else "")


def task_status(plan: TaskPlan, store: Store) -> TaskStatus:
    """The task's missing and failed work, from the records in the store (artifacts are not re-hashed here)."""
    task = plan.cfg.task
    status = TaskStatus(plan)
    for item in plan.items:
        if store.find("samples", task, item.key) is None:
            rec = store.failure(task, item.key)
            if rec is not None and rec.get("stage") == "generate":
                status.failed.append(rec)
            else:
                status.missing_outputs.append(item)
            continue
        for spec in plan.scored_specs(item):
            key = score_key(item, spec)
            if store.score(task, key) is not None:
                continue
            rec = store.failure(task, key)
            if rec is not None:
                status.failed.append(rec)
            else:
                status.missing_scores.append((item, spec.result_label))
    return status
