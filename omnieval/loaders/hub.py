"""``hub``: a Hugging Face ``datasets`` dataset (a hub id, or a local dataset folder such as a parquet export).

Image columns are read undecoded (``datasets.Image(decode=False)`` -> ``{"bytes", "path"}``) so the loader can
hash and cache their bytes (:mod:`omnieval.loaders.inline`).  Offline (``HF_HUB_OFFLINE=1``) the dataset must be
in the HF cache: ``huggingface-cli download --repo-type dataset <id> --revision <rev>``.
"""
from __future__ import annotations

from omnieval.errors import ConfigError


def read(ctx):
    from omnieval.loaders import Loaded

    spec, path = ctx.spec, ctx.path
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover
        raise ConfigError(f"task {ctx.task}: the `datasets` package is needed for hub dataset {path}") from exc
    local = ctx.local
    source = str(local) if local.exists() else path
    try:
        ds = datasets.load_dataset(source, spec.name, revision=spec.revision, split=spec.split)
    except Exception as exc:  # noqa: BLE001 - datasets raises many types; all mean "not available"
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"task {ctx.task}: cannot load dataset {path!r} (revision {spec.revision}, split {spec.split}): "
                          f"{first}; download it once with `huggingface-cli download --repo-type dataset {path}"
                          f"{' --revision ' + spec.revision if spec.revision else ''}` (offline runs read the HF cache)") from exc
    for name, feature in ds.features.items():
        if isinstance(feature, datasets.Image) and feature.decode:
            ds = ds.cast_column(name, datasets.Image(decode=False))
    return Loaded([dict(r) for r in ds], None)


def _loader():
    from omnieval.loaders import Loader

    return Loader(read, needs="download the dataset with `huggingface-cli download --repo-type dataset <id>`")


LOADER = _loader()
