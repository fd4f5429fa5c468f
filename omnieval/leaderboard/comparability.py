"""Which reported values may stand side by side.

A metric's result info may carry ``comparable_as`` (:meth:`omnieval.metrics.base.Metric.result_info`): FVD writes
``fvd:<protocol hash>:<reference set>:<files digest>``, because an FVD is only a number relative to its protocol
(detector, frames, resize, value range, covariance, video counts) and its real videos.  Results files keep it per
task, metric label and think mode (``metric_options[task][label]["info"][think]``).

Where the boards enforce it:

* benchmark tables (:func:`omnieval.leaderboard.render.boards_for`): the rows of one task are split into one table
  per distinct signature (:func:`split_rows`), titled with the protocol and reference set, so two FVDs of different
  protocols are never in one column, ranked or marked best against each other;
* the checkpoint comparison (:func:`omnieval.leaderboard.checkpoints.compare`): deltas across checkpoints whose
  signatures differ raise :class:`~omnieval.errors.ConfigError` (:func:`require_same`);
* the think-mode ablation table: on and off of one task share the metric instance and so the protocol; each row's
  metric cell names its protocol and reference set (:func:`describe`), so rows of runs with different protocols
  are marked as such.
"""
from __future__ import annotations

from omnieval.errors import ConfigError
from omnieval.leaderboard.entries import Row, Run, split_task_key

Signature = tuple[tuple[str, str], ...]


def _owner(key: str, labels: list[str]) -> str | None:
    """The metric label a result name belongs to (``label``, ``label/name``, ``label...``, ``...[field=value]``)."""
    if len(labels) == 1:
        return labels[0]
    base = key.split("[", 1)[0]
    matches = [lab for lab in labels if base == lab or base.startswith(lab)]
    return max(matches, key=len) if matches else None


def signature(run: Run | None, task_key: str) -> Signature:
    """``((result name, comparable_as), ...)`` of the results of ``task_key`` (``task`` or ``task@think``) in ``run``."""
    if run is None:
        return ()
    task, think = split_task_key(task_key)
    options = (run.data.get("metric_options") or {}).get(task) or {}
    tags = {}
    for label, entry in options.items():
        info = (entry.get("info") or {}).get(think) if isinstance(entry, dict) else None
        if isinstance(info, dict) and isinstance(info.get("comparable_as"), str):
            tags[label] = info["comparable_as"]
    if not tags:
        return ()
    labels = list(options)
    results = (run.data.get("results") or {}).get(task_key) or {}
    return tuple(sorted((key, tags[o]) for key in results if (o := _owner(key, labels)) in tags))


def row_signature(row: Row, task: str) -> Signature:
    return signature(row.run, task if row.think in (None, "off") else f"{task}@think")


def describe(tag: str) -> str:
    """``fvd:<protocol>:<set>:<files>`` -> ``protocol <protocol>, reference <set> (files <files>)``."""
    parts = tag.split(":")
    if len(parts) == 4:
        return f"protocol {parts[1]}, reference {parts[2]} (files {parts[3][:8] or 'unknown'})"
    return tag


def split_rows(task: str, rows: list[Row]) -> list[tuple[str, list[Row]]]:
    """Rows grouped by signature, in first-seen order, each with a title suffix (empty when all rows agree).
    Published rows carry no signature and stay with the first group."""
    groups: dict[Signature, list[Row]] = {}
    published = [r for r in rows if r.kind == "published"]
    for row in rows:
        if row.kind != "published":
            groups.setdefault(row_signature(row, task), []).append(row)
    if len(groups) <= 1:
        return [("", rows)]
    out = []
    for i, (sig, members) in enumerate(groups.items()):
        tags = sorted({tag for _, tag in sig})
        suffix = "; ".join(describe(t) for t in tags) if tags else "protocol not recorded"
        out.append((suffix, (published if i == 0 else []) + members))
    return out


def require_same(task: str, named: list[tuple[str, Run | None, str]]) -> None:
    """Refuse (ConfigError) to compare ``(name, run, task_key)`` entries whose signatures differ."""
    seen: dict[Signature, str] = {}
    for name, run, key in named:
        seen.setdefault(signature(run, key), name)
    if len(seen) > 1:
        detail = "; ".join(f"{name}: {', '.join(describe(t) for t in sorted({t for _, t in sig})) or 'not recorded'}"
                           for sig, name in seen.items())
        raise ConfigError(f"task {task}: these results were measured under different protocols or reference sets and are "
                          f"not comparable ({detail}); compare runs of one protocol")
