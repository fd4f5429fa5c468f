"""Weight manifest: every metric network's id, public source, expected sha256 and local override.

Entries live in ``omnieval/metrics/manifest/*.yaml`` (one file per metric family)::

    - id: i3d_pretrained_400
      filename: i3d_pretrained_400.pt
      source: https://github.com/.../i3d_pretrained_400.pt
      sha256: 55095f04...        # null when unknown; then only presence is checked
      kind: file                 # file | hf (a Hugging Face repo id, resolved from the local HF cache)
      used_by: [fvd]
      description: I3D Kinetics-400 (TATS / cd-fvd), PyTorch state dict

Optional keys used by ``omnieval weights --download`` (:mod:`omnieval.metrics.fetch`); an entry with none
of them is not downloadable and says where to get it by hand (``source``):

    url: https://...             # plain URL; sha256 (when given) is the digest of the file at this URL
    archive: zip                 # the URL is an archive (zip | tar | tar.gz | tar.bz2 | tar.xz), unpacked safely
    archive_member: models/x.pth # the member that becomes ``filename`` (absent: the archive's content
                                 # becomes the directory ``filename``)
    hf_repo: org/name            # a Hugging Face repo (kind: hf -> a snapshot directory; kind: file -> hf_filename)
    hf_revision: 0123abcd...     # the pinned commit (40 hex digits); unpinned hub entries are refused
    hf_filename: model.pth       # kind: file only: the file in the repo that becomes ``filename``
    hf_repo_type: model          # model | dataset | space
    hf_files: [config.json, [model.safetensors, pytorch_model.bin]]
                                 # kind: hf only: glob patterns of the snapshot's files to fetch; an inner
                                 # list is a choice: its first pattern that matches a file of the repo

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
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from omnieval.errors import (
    ConfigError,
    MissingWeightsError,
    OmniEvalError,
    UnknownNameError,
)

MANIFEST_DIR = Path(__file__).resolve().parent / "manifest"
ARCHIVE_FORMATS = ("zip", "tar", "tar.gz", "tar.bz2", "tar.xz")


@dataclass(frozen=True)
class WeightSpec:
    id: str
    filename: str
    source: str
    sha256: str | None = None
    kind: str = "file"
    used_by: tuple[str, ...] = ()
    description: str = ""
    url: str | None = None
    archive: str | None = None
    archive_member: str | None = None
    hf_repo: str | None = None
    hf_revision: str | None = None
    hf_filename: str | None = None
    hf_repo_type: str = "model"
    hf_files: tuple[str | tuple[str, ...], ...] = ()

    def __post_init__(self):
        where = f"weight entry {self.id!r}"
        if self.kind not in ("file", "hf"):
            raise ConfigError(f"{where}: kind must be file or hf, got {self.kind!r}")
        if self.url and self.hf_repo:
            raise ConfigError(f"{where}: give either url or hf_repo, not both")
        if self.archive and not self.url:
            raise ConfigError(f"{where}: archive needs a url")
        if self.archive and self.archive not in ARCHIVE_FORMATS:
            raise ConfigError(f"{where}: archive must be one of {', '.join(ARCHIVE_FORMATS)}, got {self.archive!r}")
        if self.archive_member and not self.archive:
            raise ConfigError(f"{where}: archive_member needs archive")
        if self.hf_repo and self.kind == "file" and not self.hf_filename:
            raise ConfigError(f"{where}: a kind: file hub entry needs hf_filename")
        if self.hf_filename and self.kind != "file":
            raise ConfigError(f"{where}: hf_filename is for kind: file entries (kind: hf fetches hf_files)")
        if self.hf_files and self.kind != "hf":
            raise ConfigError(f"{where}: hf_files is for kind: hf entries (kind: file fetches hf_filename)")
        if not all(isinstance(p, str) or (p and all(isinstance(q, str) for q in p)) for p in self.hf_files):
            raise ConfigError(f"{where}: hf_files must be patterns or lists of alternative patterns")
        if self.hf_repo_type not in ("model", "dataset", "space"):
            raise ConfigError(f"{where}: hf_repo_type must be model, dataset or space, got {self.hf_repo_type!r}")

    @property
    def file_sha256(self) -> str | None:
        """The digest of the local file, when known (for an archive entry ``sha256`` is the archive's)."""
        return None if self.archive else self.sha256

    @property
    def downloadable(self) -> bool:
        return bool(self.url or self.hf_repo)

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
                raw = dict(raw, used_by=tuple(raw.get("used_by") or ()),
                           hf_files=tuple(tuple(p) if isinstance(p, list) else p for p in raw.get("hf_files") or ()))
                try:
                    spec = WeightSpec(**raw)
                except ConfigError as exc:
                    raise ConfigError(f"{path}: {exc}") from None
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


_DEFERRED: ContextVar[list[str] | None] = ContextVar("omnieval_deferred_weights", default=None)


@contextmanager
def deferred() -> Iterator[list[str]]:
    """Within the block :func:`resolve` does not raise for a missing manifest weight (without an explicit
    path): it records the id in the yielded list and returns where the file would be.  Used to build metrics
    (whose constructors may resolve their checkpoint to fail early) only to ask what they need."""
    token = _DEFERRED.set([])
    try:
        yield _DEFERRED.get()
    finally:
        _DEFERRED.reset(token)


def resolve(weight_id: str, explicit: str | os.PathLike | None = None) -> Path:
    """The local path of a weight, or a one-line :class:`MissingWeightsError` saying how to provide it
    (see :func:`deferred` for the exception)."""
    path = locate(weight_id, explicit)
    if path is None:
        recorded = _DEFERRED.get()
        if recorded is not None and not explicit:
            recorded.append(spec(weight_id).id)
            return weights_dir() / spec(weight_id).filename
        raise MissingWeightsError(missing_message([weight_id], explicit))
    return path


def missing_message(weight_ids: list[str], explicit: str | os.PathLike | None = None) -> str:
    parts = []
    for wid in weight_ids:
        s = spec(wid)
        where = f"{explicit}" if explicit else f"{weights_dir() / s.filename} (or set {s.env_var})"
        parts.append(f"{s.id}: put {s.filename} at {where}; source: {s.source}")
    fetchable = [wid for wid in weight_ids if spec(wid).downloadable]
    hint = f" | or fetch them with: omnieval weights --download --ids {','.join(fetchable)}" if fetchable and not explicit else ""
    return "missing metric weights -- " + " | ".join(parts) + hint


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
        if verify and path is not None and path.is_file() and s.file_sha256:
            st.checksum_ok = file_sha256(path) == s.sha256
            if not st.checksum_ok:
                st.note = "sha256 mismatch"
        out.append(st)
    return out
def metric_weights(metric) -> list[str]:
    """Manifest ids one built metric needs: its ``required_weights()`` (which honours options such as an
    explicit path), else its ``weights`` class attribute."""
    method = getattr(metric, "required_weights", None)
    return list(method() if method else getattr(metric, "weights", ()) or ())


def required_for_tasks(configs, build=None) -> list[str]:
    """Manifest ids the metrics of ``configs`` (task configs) need, in first-use order without duplicates.

    Each metric is built from its spec (cheap: networks load lazily) so that options choosing a checkpoint or
    giving an explicit path count.  Building happens inside :func:`deferred`, so a constructor that resolves
    its checkpoint early does not stop at the first missing file (the ids it resolved are counted too).  A
    metric that cannot be built for another reason (typically a missing Python package, which the run will
    report) counts its class's default ``weights``.  ``build(spec) -> Metric`` lets a caller reuse its own
    instances (the runner's cache); the default is ``get_metric(spec.name)(**spec.options)``."""
    from omnieval.registry import get_metric

    if build is None:
        def build(spec):
            return get_metric(spec.name)(**spec.options)

    needed: list[str] = []
    for cfg in configs:
        for metric_spec in cfg.metrics:
            with deferred() as resolved_early:
                try:
                    ids = metric_weights(build(metric_spec))
                except MissingWeightsError:  # an explicit path that does not exist: fetching cannot help
                    raise
                except OmniEvalError:
                    ids = list(getattr(get_metric(metric_spec.name), "weights", ()) or ())
            needed += resolved_early + ids
    return list(dict.fromkeys(needed))
