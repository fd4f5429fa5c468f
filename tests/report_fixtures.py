"""A saved run for the report tests: the fake harness model on the smoke group (every capability, think off and on)
plus two tasks that exercise what the smoke group does not: a ``group_by`` breakdown, two samples per prompt, a
metric that fails on some items (RETRY-marked and metric-reported errors), a distribution metric without
per-item values, a video of odd size, and a generated file deleted after the run (output missing)."""
from __future__ import annotations

import json
from pathlib import Path

import harness_fixtures  # noqa: F401 -- registers fake-test and the test metrics

from omnieval.metrics.base import RETRY, MeanMetric
from omnieval.registry import register_metric

RETRY_DOC, ERROR_DOC = "p1", "p2"
COLORS = ["red", "blue", "red", "green"]


@register_metric("test_report_flaky", description="fails on some docs (report tests)", capability="t2i,t2v")
class Flaky(MeanMetric):
    """``flaky``: 1 when the output is brighter than mid-grey; a RETRY mark on doc p1 (a transient outage) and a
    reported error on doc p2."""

    def score(self, inputs):
        out = []
        for x in inputs:
            if x.doc_id == RETRY_DOC:
                out.append({RETRY: "judge endpoint unreachable"})
            elif x.doc_id == ERROR_DOC:
                out.append({"flaky_failed": 1.0, "flaky_error": "unparseable reply"})
            else:
                from omnieval.media import as_frames

                out.append({"flaky": float(as_frames(x.output).mean() > 127.5)})
        return out


def write_tasks(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    prompts = [{"id": f"p{i}", "prompt": f"a {c} ball number {i}", "color": c} for i, c in enumerate(COLORS)]
    (folder / "prompts.jsonl").write_text("".join(json.dumps(p) + "\n" for p in prompts))
    (folder / "r_t2i.yaml").write_text(
        "task: r_t2i\ncapability: t2i\ndataset: {path: prompts.jsonl}\ngroup_by: [color]\n"
        "generation: {height: 8, width: 8, seed: 3, samples_per_prompt: 2}\n"
        "think: [off, on]\nmetrics:\n  - name: test_brightness\n  - name: test_report_flaky\n")
    (folder / "r_t2v.yaml").write_text(
        "task: r_t2v\ncapability: t2v\ndataset: {path: prompts.jsonl}\n"
        "generation: {height: 9, width: 11, num_frames: 5, fps: 4, seed: 1}\n"
        "think: [off, on]\nmetrics:\n  - name: test_brightness\n  - name: test_feature_spread\n")
    return folder


TASKS = "smoke,r_t2i,r_t2v"


def make_run(root: Path) -> tuple[Path, str]:
    """Run the fake model (think both) and delete one generated video afterwards; returns (run folder, the deleted
    item's key)."""
    from omnieval.cli import main

    tasks = write_tasks(root / "tasks")
    run = root / "run"
    assert main(["run", "--model", "fake-test", "--tasks", TASKS, "--think", "both", "--output_path", str(run),
                 "--include_path", str(tasks)]) == 0
    records = [json.loads(line) for line in (run / "samples" / "r_t2v.jsonl").read_text().splitlines()]
    gone = next(r for r in records if r["doc_id"] == "p3" and r["think"] == "on")
    (run / gone["artifact"]).unlink()
    return run, gone["key"]
