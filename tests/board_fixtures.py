"""Synthetic ``results.json`` files for the leaderboard tests, keyed exactly as the runner keys them.

Schema 1 (``omnieval/results.py``): ``results[task or task@think][key] = {value, stderr, n, higher_is_better}``;
``ablations[task][key] = {off, on, delta, stderr, p_value, n, higher_is_better}``.  Schema 2 adds ``ci_low``,
``ci_high``, ``n_clusters`` and ``method`` (``schema=2``).  Keys: GenEval's single metric gives its tag names;
VBench gives ``vbench_<dim>/<dim>`` plus the ``vbench_total|quality|semantic`` aggregates; Video-MME gives
``mcq_accuracy_ref`` (percent) and ``mcq_accuracy_ref[duration=<duration>]``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from omnieval.aggregate.vbench import load_constants, vbench_scores

GENEVAL_TAGS = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
VBENCH_DIMS = tuple(load_constants()["dimensions"])


def geneval_values(rng: np.random.Generator) -> dict[str, float]:
    tags = {t: float(rng.uniform(0.2, 0.95)) for t in GENEVAL_TAGS}
    return {**tags, "overall": float(np.mean(list(tags.values()))), "prompt_accuracy": 0.5, "image_accuracy": 0.5}


def vbench_values(rng: np.random.Generator, prefix: str = "vbench_") -> dict[str, float]:
    dims = {d: float(rng.uniform(lo, hi)) for d, (lo, hi) in zip(VBENCH_DIMS, [(0.9, 0.99)] * 4 + [(0.3, 0.7)] + [(0.5, 0.7)] * 2
                                                                       + [(0.5, 0.95)] * 6 + [(0.2, 0.3)] * 3)}
    out = {f"{prefix}{d}/{d}": v for d, v in dims.items()}
    out.update({f"vbench_{k}": v for k, v in vbench_scores(dims, percent=False).items()})
    return out


def videomme_values(rng: np.random.Generator) -> dict[str, float]:
    parts = {d: float(rng.uniform(30, 70)) for d in ("short", "medium", "long")}
    return {"mcq_accuracy_ref": float(np.mean(list(parts.values()))),
            **{f"mcq_accuracy_ref[duration={d}]": v for d, v in parts.items()}}


VALUES = {"geneval": geneval_values, "vbench": vbench_values, "videomme": videomme_values,
          "vbench_long": lambda rng: vbench_values(rng, prefix="long_"),
          "smoke_t2i": lambda rng: {"clip_score": float(rng.uniform(20, 30))}}
LOWER_IS_BETTER: set[str] = set()


def entry(value: float, schema: int, n: int = 8) -> dict:
    e = {"value": value, "stderr": 0.01 * abs(value) + 1e-3, "n": n, "higher_is_better": True}
    if schema >= 2:
        e.update(ci_low=value - 0.02 * abs(value), ci_high=value + 0.02 * abs(value), n_clusters=n // 2,
                 method="cluster bootstrap")
    return e


def ablation(off: float, on: float, schema: int, n: int = 8, p: float = 0.03125) -> dict:
    d = on - off
    e = {"off": off, "on": on, "delta": d, "stderr": abs(d) / 2 + 1e-3, "p_value": p, "n": n, "higher_is_better": True}
    if schema >= 2:
        e.update(ci_low=d - abs(d) - 1e-3, ci_high=d + abs(d) + 1e-3, n_clusters=n // 2, method="sign-flip exact")
    return e


def write_results(folder: Path, tasks: list[str], *, model: str = "omnivideo", args: dict | None = None, seed: int = 0,
                  think: bool = True, schema: int = 1, shift: float = 0.0) -> Path:
    """A results folder with ``tasks`` (think off, and on when ``think``); ``shift`` is added to every think-off
    value (to make checkpoints that improve).  Returns the folder."""
    rng = np.random.default_rng(seed)
    results, ablations = {}, {}
    for task in tasks:
        off = {k: v + shift for k, v in VALUES[task](rng).items()}
        results[task] = {k: entry(v, schema) for k, v in off.items()}
        if think:
            on = {k: v + (0.01 if v < 1 else 1.0) for k, v in off.items()}
            results[f"{task}@think"] = {k: entry(v, schema) for k, v in on.items()}
            ablations[task] = {k: ablation(off[k], on[k], schema) for k in off}
            for agg in ("vbench_total", "vbench_quality", "vbench_semantic"):  # aggregates: no pairs, as the runner writes
                if agg in ablations[task]:
                    ablations[task][agg] = {"off": off[agg], "on": on[agg], "delta": on[agg] - off[agg], "n": None,
                                            "higher_is_better": True}
    data = {"schema_version": schema, "results": results, "ablations": ablations, "configs": {}, "task_hashes": {},
            "model": {"name": model, "args": args or {}, "fingerprint": f"fp-{seed}"}, "environment": {}, "timing": {},
            "counters": {}}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(data, indent=1))
    return folder
