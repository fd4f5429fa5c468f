"""Which real videos an FVD is measured against, and where their statistics are cached.

An FVD is only meaningful with a named reference set *and* protocol.  A :class:`ReferenceSet` (the ``reference``
option of the ``fvd`` metric) names the set (``name``, ``split``), says where its videos are below the folder
given to ``omnieval stats --real DIR`` (``root``) and which of them belong to it (``list``: an official split file,
read by ``list_format``), and what a user downloads to get them (``download``, used in the missing-data message).

Listing (:func:`list_files`): the list's entries in the list's order, each resolved as ``DIR/root/<entry>``; an entry
that is not there is looked up by its file name, case-insensitively, anywhere under ``DIR/root`` (UCF-101's
``HandStandPushups`` files live in the ``HandstandPushups`` folder; MSR-VTT's ``videoN.mp4`` may be flat or under
``TestVideo/`` or ``all/``).  A name found twice or not at all is a one-line error naming it.  Without a list,
every video under ``DIR/root`` in sorted order.

Cache: ``<cache>/fvd_ref_<set>_<reference hash>_<files>.npz`` where ``<set>`` is the set's id (``ucf101-trainlist01``),
``<reference hash>`` hashes the protocol's real-side fields (:meth:`FVDProtocol.reference_hash`) and ``<files>`` is
:func:`files_digest` of the videos used (relative names and sizes).  A run finds the file from the set and the
protocol alone (it needs no ``DIR``); the ``.npz`` also stores the set id, the files digest and the list file's
sha256, so a statistic of another set is refused and every result says which files it was measured against.
``<cache>`` is ``cache_dir`` if given, else ``$OMNIEVAL_CACHE_DIR/fvd`` (default ``~/.cache/omnieval/fvd``).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from omnieval.errors import ConfigError, MediaError
from omnieval.media import VIDEO_SUFFIXES


@dataclass(frozen=True)
class ReferenceSet:
    """A named set of real videos (see the module docstring).  ``name='folder'`` (the default) is an ad-hoc set:
    every video under the folder given as ``reference_dir``."""

    name: str = "folder"
    split: str = ""
    root: str = "."
    list: str | None = None
    list_format: str = "txt"
    download: str = ""

    def __post_init__(self):
        if self.list_format not in LIST_FORMATS:
            raise ConfigError(f"FVD reference: list_format={self.list_format!r} is not one of {', '.join(LIST_FORMATS)}")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", self.name) or (self.split and not re.fullmatch(r"[A-Za-z0-9_.-]+", self.split)):
            raise ConfigError(f"FVD reference: name {self.name!r} and split {self.split!r} must be letters, digits, '_', '.' or '-'")

    @property
    def id(self) -> str:
        """``name/split`` (or ``name``): what results and cached statistics name the set by."""
        return f"{self.name}/{self.split}" if self.split else self.name

    @property
    def slug(self) -> str:
        return self.id.replace("/", "-")

    @property
    def declared(self) -> bool:
        return self.name != "folder"


# ---------------------------------------------------------------------------------------------
# Split files
# ---------------------------------------------------------------------------------------------
def _txt_entries(path: Path) -> list[str]:
    """First token of every non-empty line (UCF-101 ``trainlist01.txt``: ``Class/v_Class_g08_c01.avi 1``)."""
    return [line.split()[0] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _msrvtt_entries(path: Path) -> list[str]:
    """``<video_id>.mp4`` of every test video of MSR-VTT's ``test_videodatainfo.json`` (or JSFusion csv row)."""
    from omnieval.loaders.msrvtt import video_ids

    return [f"{vid}.mp4" for vid in video_ids(path, task="FVD reference")]


#: list_format -> reader of entries (paths relative to the set's root)
LIST_FORMATS = {"txt": _txt_entries, "msrvtt": _msrvtt_entries}


def _video_index(root: Path) -> dict[str, list[Path]]:
    index: dict[str, list[Path]] = {}
    for p in root.rglob("*"):
        if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file():
            index.setdefault(p.name.lower(), []).append(p)
    return index


def list_files(real_dir: str | os.PathLike, ref: ReferenceSet) -> list[tuple[str, Path]]:
    """``(name relative to the root, path)`` of the set's videos under ``real_dir``, in list order."""
    base = Path(real_dir)
    root = base / ref.root
    hint = f" ({ref.download})" if ref.download else ""
    if not root.is_dir():
        raise MediaError(f"FVD reference {ref.id}: folder {root} not found{hint}")
    if ref.list is None:
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
        if not files:
            raise MediaError(f"FVD reference {ref.id}: no videos ({', '.join(VIDEO_SUFFIXES)}) under {root}{hint}")
        return [(p.relative_to(root).as_posix(), p) for p in files]
    list_path = base / ref.list
    if not list_path.is_file():
        raise MediaError(f"FVD reference {ref.id}: split file {list_path} not found{hint}")
    entries = LIST_FORMATS[ref.list_format](list_path)
    if not entries:
        raise MediaError(f"FVD reference {ref.id}: split file {list_path} lists no videos")
    index: dict[str, list[Path]] | None = None
    out = []
    for entry in entries:
        path = root / entry
        if not path.is_file():
            index = _video_index(root) if index is None else index
            found = index.get(Path(entry).name.lower(), [])
            if len(found) != 1:
                what = "not found" if not found else f"found {len(found)} times"
                raise MediaError(f"FVD reference {ref.id}: video {entry} (listed in {list_path}) {what} under {root}{hint}")
            path = found[0]
        out.append((Path(entry).as_posix(), path))
    return out


def files_digest(files: list[tuple[str, Path]]) -> str:
    """Hash of the videos used: relative names (lower-cased) and file sizes, in order."""
    listing = [(name.lower(), path.stat().st_size) for name, path in files]
    return hashlib.sha256(json.dumps(listing).encode()).hexdigest()[:16]


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------------
# Cache
# ---------------------------------------------------------------------------------------------
def cache_dir(explicit: str | os.PathLike | None = None) -> Path:
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("OMNIEVAL_CACHE_DIR", Path.home() / ".cache" / "omnieval")) / "fvd"


def cache_path(cache: Path, ref: ReferenceSet, reference_hash: str, files_sha: str) -> Path:
    return cache / f"fvd_ref_{ref.slug}_{reference_hash}_{files_sha}.npz"


def find_cached(cache: Path, ref: ReferenceSet, reference_hash: str) -> list[Path]:
    """Cached statistics of ``ref`` under the protocol with ``reference_hash`` (any files digest)."""
    return sorted(cache.glob(f"fvd_ref_{ref.slug}_{reference_hash}_*.npz"))
