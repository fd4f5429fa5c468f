"""Weight manifest: every metric network's id, public source, expected sha256 and local override.

Entries live in ``omnieval/metrics/manifest/*.yaml`` (one file per metric family)::

    - id: i3d_pretrained_400
      filename: i3d_pretrained_400.pt
      source: https://github.com/.../i3d_pretrained_400.pt
      sha256: 55095f04...        # null when unknown; then only presence is checked
      kind: file                 # file | hf (a Hugging Face repo id, resolved from the local HF cache)
      used_by: [fvd]
      description: I3D Kinetics-400 (TATS / cd-fvd), PyTorch state dict

Where a weight is looked for, in order:

1. an explicit path passed by the caller (a metric option such as ``ckpt_path``);
2. the environment variable ``OMNIEVAL_WEIGHT_<ID>`` (id upper-cased, non-alphanumerics -> ``_``);
3. ``$OMNIEVAL_WEIGHTS_DIR/<filename>`` (default ``~/.cache/omnieval/weights``).

``kind: hf`` entries resolve a local directory, or a repo id already in the Hugging Face cache
(``local_files_only``).  Nothing is downloaded at run time: a missing file raises
:class:`~omnieval.errors.MissingWeightsError` naming the file, where to put it and where to get it.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from omnieval.errors import ConfigError, MissingWeightsError, UnknownNameError

MANIFEST_DIR = Path(__file__).resolve().parent / "manifest"


@dataclass(frozen=True)
class WeightSpec:
    id: str
    filename: str
    source: str
    sha256: str | None = None
    kind: str = "file"
    used_by: tuple[str, ...] = ()
    description: str = ""

    @property
    def env_var(self) -> str:
        return "OMNIEVAL_WEIGHT_" + re.sub(r"[^0-9A-Za-z]", "_", self.id).upper()


@dataclass
class WeightStatus:
    spec: WeightSpec
    path: Path | None
    present: bool
    checksum_ok: bool | None = None  # None: not verified or no expected checksum
    note: str = field(default="")


def weights_dir() -> Path:
    return Path(os.environ.get("OMNIEVAL_WEIGHTS_DIR", Path.home() / ".cache" / "omnieval" / "weights"))


_MANIFEST: dict[str, WeightSpec] | None = None


def manifest() -> dict[str, WeightSpec]:
    """All weight specs, by id."""
    global _MANIFEST
    if _MANIFEST is None:
        specs: dict[str, WeightSpec] = {}
        allowed = set(WeightSpec.__dataclass_fields__)
        for path in sorted(MANIFEST_DIR.glob("*.yaml")):
            for raw in yaml.safe_load(path.read_text()) or []:
                unknown = set(raw) - allowed
                if unknown:
                    raise ConfigError(f"{path}: unknown key(s) {sorted(unknown)} in weight entry {raw.get('id')!r}")
                raw = dict(raw, used_by=tuple(raw.get("used_by") or ()))
                spec = WeightSpec(**raw)
                if spec.id in specs:
                    raise ConfigError(f"{path}: weight id {spec.id!r} is declared twice")
                specs[spec.id] = spec
        _MANIFEST = specs
    return _MANIFEST


def spec(weight_id: str) -> WeightSpec:
    specs = manifest()
    if weight_id not in specs:
        raise UnknownNameError("weight", weight_id, sorted(specs))
    return specs[weight_id]


def locate(weight_id: str, explicit: str | os.PathLike | None = None) -> Path | None:
    """Where the weight is on this machine, or None (no download, no error)."""
    s = spec(weight_id)
    candidates: list[Path] = []
    if explicit:
        candidates.append(Path(explicit).expanduser())
    if os.environ.get(s.env_var):
        candidates.append(Path(os.environ[s.env_var]).expanduser())
    candidates.append(weights_dir() / s.filename)
    for path in candidates:
        if path.exists():
            return path
    if s.kind == "hf" and not explicit:
        return _hf_cached(s.filename)
    return None


def _hf_cached(repo_id: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # noqa: BLE001 - any failure means "not cached"
        return None


def resolve(weight_id: str, explicit: str | os.PathLike | None = None) -> Path:
    """The local path of a weight, or a one-line :class:`MissingWeightsError` saying how to provide it."""
    path = locate(weight_id, explicit)
    if path is None:
        raise MissingWeightsError(missing_message([weight_id], explicit))
    return path


def missing_message(weight_ids: list[str], explicit: str | os.PathLike | None = None) -> str:
    parts = []
    for wid in weight_ids:
        s = spec(wid)
        where = f"{explicit}" if explicit else f"{weights_dir() / s.filename} (or set {s.env_var})"
        parts.append(f"{s.id}: put {s.filename} at {where}; source: {s.source}")
    return "missing metric weights -- " + " | ".join(parts)


def require(weight_ids: list[str], files: list[str | os.PathLike] | tuple = ()) -> None:
    """Fail at start-up (before hours of generation), listing every missing file at once; then refuse, as one
    line, any present checkpoint -- manifest weights and the explicit ``files`` (metric options that name a file,
    see :func:`option_files`) -- whose pickle names code-running globals
    (:func:`omnieval.safe_pickle.check_checkpoint`, read from the opcodes, nothing executed)."""
    from omnieval.safe_pickle import check_checkpoint

    ids = list(dict.fromkeys(weight_ids))
    missing = [wid for wid in ids if locate(wid) is None]
    if missing:
        raise MissingWeightsError(missing_message(missing))
    for wid in ids:
        check_checkpoint(locate(wid), f"metric weights {wid}:")
    for file in dict.fromkeys(Path(f) for f in files):
        check_checkpoint(file, "metric weights")


#: option names that hold a file or folder given explicitly by the user (instead of a manifest weight)
PATH_OPTION_SUFFIXES = ("_path", "_weights", "_file")


def option_files(metric) -> list[Path]:
    """Existing files and folders named by a metric's path options (``ckpt_path``, ``raft_path`` ...): the files
    :meth:`required_weights` leaves out because the user pointed at them explicitly."""
    import dataclasses

    options = getattr(metric, "options", None)
    if options is None or not dataclasses.is_dataclass(options):
        return []
    out = []
    for f in dataclasses.fields(options):
        value = getattr(options, f.name)
        if f.name.endswith(PATH_OPTION_SUFFIXES) and isinstance(value, (str, os.PathLike)) and str(value):
            path = Path(value).expanduser()
            if path.exists():
                out.append(path)
    return out


def status(verify: bool = False) -> list[WeightStatus]:
    """Presence (and, with ``verify``, checksum) of every weight in the manifest."""
    from omnieval.media import file_sha256

    out = []
    for s in manifest().values():
        path = locate(s.id)
        st = WeightStatus(s, path, path is not None)
        if verify and path is not None and path.is_file() and s.sha256:
            st.checksum_ok = file_sha256(path) == s.sha256
            if not st.checksum_ok:
                st.note = "sha256 mismatch"
        out.append(st)
    return out


def verify_file(weight_id: str, path: Path) -> None:
    """Raise if ``path`` does not have the manifest's sha256 (when one is declared)."""
    from omnieval.media import file_sha256

    s = spec(weight_id)
    if s.sha256 and path.is_file():
        actual = file_sha256(path)
        if actual != s.sha256:
            raise MissingWeightsError(f"{s.id}: {path} has sha256 {actual[:12]}..., expected {s.sha256[:12]}... ({s.source})")
