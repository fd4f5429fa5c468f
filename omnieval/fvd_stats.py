"""``omnieval stats --task T --real DIR``: compute a task's FVD reference statistics once, into the cache.

For every ``fvd`` metric of the task (or the one labelled ``--metric``) the statistics of its reference set under
its protocol are computed from the official videos in ``DIR`` (the set's ``root`` and split ``list`` are relative
to it, e.g. ``UCF-101/`` and ``ucfTrainTestlist/trainlist01.txt``) and written to the cache
(:mod:`omnieval.metrics.fvd_reference`), where ``omnieval run`` finds them without ``DIR``.  Metrics sharing a
protocol's real side share one file.  ``--out FILE`` also copies the ``.npz`` there (one metric only).
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from omnieval.errors import ConfigError


def task_stats(task: str, real: str | Path, *, metric: str | None = None, include_path: tuple[str, ...] = (),
               batch_size: int | None = None, out: str | Path | None = None) -> list[dict[str, Any]]:
    """Compute (or find cached) the reference statistics of ``task``'s FVD metrics; one summary dict per metric."""
    from omnieval.metrics import fvd_reference as fvd_ref
    from omnieval.metrics.fvd import FVD
    from omnieval.registry import get_metric
    from omnieval.tasks import resolve_tasks

    configs = resolve_tasks([task], include_path)
    if len(configs) != 1:
        raise ConfigError(f"stats: {task!r} is a group of {len(configs)} tasks; name one task")
    cfg = configs[0]
    specs = [s for s in cfg.metrics if issubclass(get_metric(s.name), FVD) and (metric is None or s.result_label == metric)]
    if not specs:
        labels = ", ".join(s.result_label for s in cfg.metrics) or "none"
        raise ConfigError(f"stats: task {cfg.task} has no FVD metric{f' labelled {metric!r}' if metric else ''} "
                          f"(its metrics: {labels})")
    if out is not None and len(specs) > 1:
        raise ConfigError(f"stats: --out needs one metric; task {cfg.task} has {len(specs)} FVD metrics (pick one with --metric)")
    summaries = []
    for spec in specs:
        options = dict(spec.options, reference_stats=None, reference_dir=None)
        if batch_size is not None:
            options["batch_size"] = batch_size
        fvd: FVD = get_metric(spec.name)(**options)
        stats = fvd.build_reference(real)
        path = fvd_ref.cache_path(fvd_ref.cache_dir(fvd.options.cache_dir), fvd.reference_set,
                                  fvd.protocol.reference_hash(), stats.meta.get("files_sha256", ""))
        if out is not None:
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, out)
        summaries.append({"task": cfg.task, "metric": spec.result_label, "preset": fvd.protocol.name,
                          "protocol_hash": fvd.protocol.hash(), "reference_hash": fvd.protocol.reference_hash(),
                          "reference_set": stats.meta.get("reference_set", fvd.reference_set.id),
                          "files_sha256": stats.meta.get("files_sha256", ""), "n": stats.n, "path": str(path)})
    return summaries
