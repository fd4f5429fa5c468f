"""``hub``: a Hugging Face ``datasets`` dataset (a hub id, or a local dataset folder such as a parquet export).

Image columns are read undecoded (``datasets.Image(decode=False)`` -> ``{"bytes", "path"}``) so the loader can
hash and cache their bytes (:mod:`omnieval.loaders.inline`).  Offline (``HF_HUB_OFFLINE=1``) the dataset must be
in the HF cache: ``huggingface-cli download --repo-type dataset <id> --revision <rev>``, or a ``datasets.load_dataset``
run with network and the same ``HF_HOME``.

Options: several configs read one after the other (:mod:`omnieval.loaders.configs`; each as the ``datasets`` config
name instead of ``dataset.name``).
"""
from __future__ import annotations

from omnieval.errors import ConfigError


def read(ctx):
    from omnieval.loaders import Loaded
    from omnieval.loaders.configs import Configs

    configs = Configs.from_options(ctx.options, ctx.task)
    return Loaded(configs.rows(lambda config: _load(ctx, config or ctx.spec.name)), None)


def _load(ctx, config: str | None) -> list[dict]:
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover
        raise ConfigError(f"task {ctx.task}: the `datasets` package is needed for hub dataset {ctx.path}") from exc
    spec, path = ctx.spec, ctx.path
    local = ctx.local
    source = str(local) if local.exists() else path
    try:
        ds = datasets.load_dataset(source, config, revision=spec.revision, split=spec.split)
    except Exception as exc:  # datasets raises many types; all mean "not available"
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"task {ctx.task}: cannot load dataset {path!r} (config {config}, revision {spec.revision}, "
                          f"split {spec.split}): {first}; {hub_fix(spec, path, ctx.task)}") from exc
    for name, feature in ds.features.items():
        if isinstance(feature, datasets.Image) and feature.decode:
            ds = ds.cast_column(name, datasets.Image(decode=False))
    return [dict(r) for r in ds]


def hub_fix(spec, path: str, task: str) -> str:
    """How to get a hub dataset onto a machine without network (one line, no newline)."""
    configs = (getattr(spec, "options", None) or {}).get("configs")
    config = "<each of dataset.options.configs>" if configs else spec.name
    args = ", ".join([repr(path)] + ([repr(config)] if config else []) + [f"split={spec.split!r}"]
                     + ([f"revision={spec.revision!r}"] if spec.revision else []))
    revision = f" --revision {spec.revision}" if spec.revision else ""
    return (f"download it once with `huggingface-cli download --repo-type dataset {path}{revision}` or, with network "
            f"and the same HF_HOME, `python -c \"import datasets; datasets.load_dataset({args})\"` (offline runs read the "
            f"HF cache), or pass --dataset {task}=<a local .jsonl/.parquet copy>")


def _loader():
    from omnieval.loaders import Loader
    from omnieval.loaders.configs import OPTIONS

    return Loader(read, needs="download the dataset with `huggingface-cli download --repo-type dataset <id>`",
                  options=OPTIONS)


LOADER = _loader()
