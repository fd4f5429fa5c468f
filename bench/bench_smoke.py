"""Embedded default run (omnivideo-tiny on the smoke group, think off and on): wall time and harness overhead.

Targets (issue 3 / issue 2): the whole run, imports included, under 60 s on a 2-core machine; the time spent
outside model, metric and statistics code (planning, store, results, locks) under 5 % of the run (the
statistics -- values, bootstrap CIs and sign-flip tests -- are reported on their own line); a resumed run
under 10 % of the first.

    python bench/bench_smoke.py
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(out: Path) -> tuple[float, dict]:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "omnieval.cli", "run", "--output_path", str(out)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    return wall, json.loads((out / "results.json").read_text())


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "smoke"
        wall, data = run(out)
        t = data["timing"]
        inside = t["load_s"] + t["generate_s"] + t["score_s"] + t.get("aggregate_s", 0.0)
        overhead = t["total_s"] - inside
        print(f"first run: {wall:.1f} s wall (imports included; target < 60 s)")
        print(f"  in-process {t['total_s']:.2f} s = load {t['load_s']:.2f} + generate {t['generate_s']:.2f} "
              f"+ score {t['score_s']:.2f} + statistics {t.get('aggregate_s', 0.0):.2f} + harness {overhead:.2f} s")
        print(f"  harness overhead share: {overhead / t['total_s']:.1%} of the run (target < 5 %)")
        print(f"  imports and start-up: {wall - t['total_s']:.1f} s")
        wall2, data2 = run(out)
        c = data2["counters"]
        print(f"resumed run: {wall2:.1f} s wall = {wall2 / wall:.1%} of the first (target < 10 %); "
              f"{c['generated_items']} generated, {c['scored_items']} scored")


if __name__ == "__main__":
    main()
