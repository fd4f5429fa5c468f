"""The README's main job: `omnieval run --output_path DIR` = omnivideo-tiny on the smoke group, think off and on."""
from __future__ import annotations

import json

from omnieval.cli import main
from omnieval.tasks import resolve_tasks


def test_embedded_default_runs_every_capability_with_think_off_and_on(tmp_path, capsys):
    out = tmp_path / "smoke"
    assert main(["run", "--output_path", str(out)]) == 0
    printed = capsys.readouterr().out
    data = json.loads((out / "results.json").read_text())
    assert data["model"]["name"] == "omnivideo-tiny"
    tasks = {cfg.task: cfg.capability for cfg in resolve_tasks(["smoke"])}
    from omnieval.capabilities import CAPABILITIES

    assert sorted(set(tasks.values())) == sorted(CAPABILITIES)  # the main job exercises every capability
    for task, capability in tasks.items():
        assert data["results"][task], task
        if capability != "understand":
            assert data["results"][f"{task}@think"], task
            assert data["ablations"][task], task
        assert task in printed
    # think-on samples carry the rewritten prompt; every sample records the routing decision
    records = [json.loads(line) for line in (out / "samples" / "smoke_t2v.jsonl").read_text().splitlines()]
    assert {r["think"] for r in records} == {"off", "on"}
    assert all("rewritten_prompt" in r["info"] for r in records if r["think"] == "on")
    assert all("routed_task" in r["info"] for r in records)
    # resuming makes no calls and reports the same numbers
    assert main(["run", "--output_path", str(out)]) == 0
    again = json.loads((out / "results.json").read_text())
    assert again["counters"] == {"generation_calls": 0, "generated_items": 0, "scoring_calls": 0, "scored_items": 0}
    assert again["results"] == data["results"]


def test_resuming_needs_no_torch_for_the_model_identity():
    """A finished run is recognised without importing torch (the resumed smoke run takes well under a second)."""
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys; from omnieval.registry import get_model; "
            "print(get_model('omnivideo-tiny').identity_from_args().fingerprint, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    fingerprint, imported = out.stdout.split()
    assert imported == "False" and len(fingerprint) == 16
