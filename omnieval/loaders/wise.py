"""``wise``: WISE (Niu et al., 2025), 1,000 world-knowledge text-to-image prompts in six categories.

Accepted dataset paths:

* the hub dataset ``Yuwei-Niu/WISE`` (lmms-eval's ``dataset_path``; split ``test``; fields ``Prompt``,
  ``Explanation``, ``Category``, ``Subcategory``, ``prompt_id``, ``Hint``), loaded with ``datasets`` at the task's
  ``revision``;
* a local folder holding that dataset's parquet files (``data/test-*.parquet``), e.g. a
  ``huggingface-cli download --repo-type dataset Yuwei-Niu/WISE --local-dir DIR``;
* a local folder holding the official GitHub release's ``cultural_common_sense.json``,
  ``spatio-temporal_reasoning.json`` and ``natural_science.json`` (``WISE_legacy/data``; the same fields without
  ``Hint``).

Records are returned as given plus ``prompt`` (``Prompt`` stripped: what the model is asked, as lmms-eval's
``doc_to_text``), sorted by ``prompt_id``.  The category the score is reported under is derived from
``prompt_id`` at scoring time, as lmms-eval does (:mod:`omnieval.metrics.wise`).
"""
from __future__ import annotations

from pathlib import Path

from omnieval.errors import ConfigError
from omnieval.loaders.files import read_json

HINT = ("download the WISE prompts: the hub dataset Yuwei-Niu/WISE (huggingface-cli download --repo-type dataset "
        "Yuwei-Niu/WISE --local-dir DIR) or WISE_legacy/data/*.json of github.com/PKU-YuanGroup/WISE, into DIR")
LEGACY_FILES = ("cultural_common_sense.json", "spatio-temporal_reasoning.json", "natural_science.json")


def _from_folder(folder: Path, task: str) -> list[dict]:
    legacy = [folder / name for name in LEGACY_FILES]
    if any(p.is_file() for p in legacy):
        missing = [p.name for p in legacy if not p.is_file()]
        if missing:
            raise ConfigError(f"task {task}: {folder} lacks {', '.join(missing)} (the official WISE release has all three)")
        rows = []
        for p in legacy:
            data = read_json(p, task)
            if not isinstance(data, list):
                raise ConfigError(f"task {task}: {p}: expected a JSON list of prompts")
            rows += data
        return rows
    parquet = sorted(folder.glob("data/test-*.parquet")) or sorted(folder.glob("test-*.parquet"))
    if parquet:
        import pyarrow.parquet as pq

        return [row for p in parquet for row in pq.read_table(p).to_pylist()]
    raise ConfigError(f"task {task}: {folder} holds neither {', '.join(LEGACY_FILES)} nor data/test-*.parquet; {HINT}")


def read(ctx):
    from omnieval.loaders import Loaded, hub

    local = ctx.local
    if local.is_dir():
        rows = _from_folder(local, ctx.task)
    elif ctx.path.startswith((".", "/", "~")) or local.exists():
        raise ctx.missing(LOADER, f"no WISE prompts at {local} (a folder is expected)")
    else:
        try:
            rows = hub.read(ctx).rows
        except ConfigError as exc:
            raise ctx.missing(LOADER, f"cannot load {ctx.path} (revision {ctx.spec.revision}): {str(exc).split(': ', 2)[-1]}") from exc
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or "Prompt" not in row or "prompt_id" not in row:
            raise ConfigError(f"task {ctx.task}: WISE record {i} lacks Prompt or prompt_id")
        row["prompt"] = str(row["Prompt"] or "").strip()  # what the model is asked (lmms-eval's doc_to_text)
    return Loaded(sorted(rows, key=lambda r: int(r["prompt_id"])), None)


def _loader():
    from omnieval.loaders import Loader

    return Loader(read, needs=HINT)


LOADER = _loader()
