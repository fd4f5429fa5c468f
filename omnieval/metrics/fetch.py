"""``omnieval weights --download``: fetch manifest weights into ``$OMNIEVAL_WEIGHTS_DIR``.

Nothing here runs during an evaluation (a run never downloads); it is the explicit pre-fetch step for a
cluster's login node.  Per manifest entry (:mod:`omnieval.metrics.weights` describes the keys):

* already present where :func:`~omnieval.metrics.weights.locate` looks (explicit env override, weights
  folder, HF cache for ``kind: hf``): left alone;
* ``url``: a resumable download to ``<weights dir>/<filename>`` (see :mod:`omnieval.download`), checked
  against ``sha256`` when the manifest has one (else the computed digest is printed, to be pinned);
  with ``archive`` the download is unpacked safely and ``archive_member`` (or the whole content) is moved
  into place;
* ``hf_repo``: fetched with ``huggingface_hub`` at the manifest's pinned ``hf_revision`` (a commit).  An
  entry without a pinned commit is refused unless ``allow_unpinned``: then the branch (``hf_revision`` or
  ``main``) is resolved to its current commit once, that commit is downloaded and printed so it can be
  pinned.  ``kind: hf`` fetches a snapshot (``hf_files`` patterns) as the directory ``<filename>``;
  ``kind: file`` fetches ``hf_filename`` as ``<filename>``.  Work in progress lives in ``<filename>.part``
  (resumed by huggingface_hub); ``HF_ENDPOINT`` selects the hub (mirror, or a test server);
* anything else: reported as not downloadable, with the manifest's ``source`` to fetch by hand.

A failing entry is reported in one line and the others continue; the caller gets every result.
"""
from __future__ import annotations

import fnmatch
import os
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from omnieval.download import DownloadError, download, extract, sha256_of
from omnieval.metrics.weights import WeightSpec, locate, manifest, spec, weights_dir

COMMIT = re.compile(r"[0-9a-f]{40}")


@dataclass
class FetchResult:
    id: str
    state: str  # present | downloaded | failed
    path: Path | None = None
    note: str = ""


@dataclass
class FetchOptions:
    allow_unpinned: bool = False
    show_progress: bool = True
    attempts: int = 5
    backoff: float = 2.0
    log: Callable[[str], None] = print
    error: Callable[[str], None] = field(default=lambda text: print(text, file=sys.stderr))


def destination(s: WeightSpec) -> Path:
    return weights_dir() / s.filename


def fetch(s: WeightSpec, opts: FetchOptions) -> Path:
    """Download one entry to :func:`destination`; :class:`DownloadError` (one line) when it cannot."""
    if s.hf_repo:
        return _fetch_hub(s, opts)
    if s.url:
        return _fetch_url(s, opts)
    raise DownloadError(f"{s.id}: no download source in the manifest (no url / hf_repo); get it by hand from "
                        f"{s.source} and put it at {destination(s)} (or set {s.env_var})")


def fetch_all(ids: list[str] | None, opts: FetchOptions) -> list[FetchResult]:
    """Fetch ``ids`` (default: every manifest entry) that are not present yet."""
    ids = list(dict.fromkeys(ids)) if ids is not None else list(manifest())
    results = []
    for wid in ids:
        s = spec(wid)
        found = locate(wid)
        if found is not None:
            results.append(FetchResult(wid, "present", found))
            continue
        try:
            results.append(FetchResult(wid, "downloaded", fetch(s, opts)))
        except DownloadError as exc:
            opts.error(f"omnieval: error: {exc}")
            results.append(FetchResult(wid, "failed", None, str(exc)))
    return results


# ---------------------------------------------------------------------------------------------
# Plain URLs and archives
# ---------------------------------------------------------------------------------------------
def _report_digest(s: WeightSpec, digest: str, opts: FetchOptions) -> None:
    if not s.sha256:
        opts.log(f"{s.id}: sha256 {digest} (not in the manifest, so not verified; add `sha256: {digest}` to pin it)")


def _fetch_url(s: WeightSpec, opts: FetchOptions) -> Path:
    dest = destination(s)
    common = {"log": opts.log, "attempts": opts.attempts, "backoff": opts.backoff, "show_progress": opts.show_progress}
    opts.log(f"{s.id}: downloading {s.url}")
    if not s.archive:
        digest = download(s.url, dest, sha256=s.sha256, label=s.id, **common)
        _report_digest(s, digest, opts)
        return dest
    work = weights_dir() / ".downloads"
    archive = work / f"{s.id}.{s.archive}"
    digest = download(s.url, archive, sha256=s.sha256, label=s.id, **common)
    _report_digest(s, digest, opts)
    unpacked = work / f"{s.id}.unpacked"
    shutil.rmtree(unpacked, ignore_errors=True)
    try:
        extract(archive, unpacked, s.archive)
        source = unpacked / s.archive_member if s.archive_member else unpacked
        if s.archive_member and not source.exists():
            raise DownloadError(f"{s.id}: {s.archive_member!r} is not in the archive from {s.url}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, dest)
    finally:
        archive.unlink(missing_ok=True)
        shutil.rmtree(unpacked, ignore_errors=True)
    opts.log(f"{s.id}: unpacked {s.archive_member or 'the archive'} to {dest}")
    return dest


# ---------------------------------------------------------------------------------------------
# Hugging Face Hub
# ---------------------------------------------------------------------------------------------
def _hub_error(s: WeightSpec, revision: str, exc: Exception) -> DownloadError:
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return DownloadError(f"{s.id}: cannot fetch {s.hf_repo}@{revision[:12]} from the Hugging Face Hub "
                         f"({type(exc).__name__}: {text})")


def _pinned_revision(s: WeightSpec, opts: FetchOptions, endpoint: str | None) -> str:
    if s.hf_revision and COMMIT.fullmatch(s.hf_revision):
        return s.hf_revision
    branch = s.hf_revision or "main"
    if not opts.allow_unpinned:
        raise DownloadError(f"{s.id}: hub entry {s.hf_repo} has no pinned hf_revision (a 40-hex commit) in the "
                            f"manifest, and a branch ({branch}) can change under a benchmark; pin one, or pass "
                            f"--allow-unpinned to fetch the current {branch} and print its commit")
    from huggingface_hub import HfApi

    try:
        commit = HfApi(endpoint=endpoint).repo_info(s.hf_repo, repo_type=s.hf_repo_type, revision=branch).sha
    except Exception as exc:  # noqa: BLE001 - any hub failure becomes one line
        raise _hub_error(s, branch, exc) from None
    opts.log(f"{s.id}: UNPINNED: {s.hf_repo}@{branch} is commit {commit}; pin it with `hf_revision: {commit}`")
    return commit


def _snapshot_patterns(s: WeightSpec, revision: str, endpoint: str | None) -> list[str] | None:
    """``hf_files`` with each choice (inner list) replaced by its first pattern that matches a repo file."""
    plain = [p for p in s.hf_files if isinstance(p, str)]
    choices = [p for p in s.hf_files if not isinstance(p, str)]
    if not choices:
        return plain or None
    from huggingface_hub import HfApi

    files = HfApi(endpoint=endpoint).list_repo_files(s.hf_repo, revision=revision, repo_type=s.hf_repo_type)
    for choice in choices:
        picked = next((p for p in choice if any(fnmatch.fnmatchcase(f, p) for f in files)), None)
        if picked is None:
            raise DownloadError(f"{s.id}: {s.hf_repo}@{revision[:12]} has none of {list(choice)}")
        plain.append(picked)
    return plain


def _fetch_hub(s: WeightSpec, opts: FetchOptions) -> Path:
    import huggingface_hub
    from huggingface_hub import constants
    from huggingface_hub.utils import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )

    if constants.HF_HUB_OFFLINE:
        raise DownloadError(f"{s.id}: HF_HUB_OFFLINE is set; unset it (HF_HUB_OFFLINE=0) to download {s.hf_repo}")
    endpoint = os.environ.get("HF_ENDPOINT") or None
    revision = _pinned_revision(s, opts, endpoint)
    dest = destination(s)
    staging = dest.with_name(dest.name + ".part")
    staging.mkdir(parents=True, exist_ok=True)
    what = f"{s.hf_repo}@{revision[:12]}" + (f":{s.hf_filename}" if s.hf_filename else "")
    opts.log(f"{s.id}: downloading {what} from the Hugging Face Hub")
    quiet = not (opts.show_progress and sys.stderr.isatty()) and not are_progress_bars_disabled()
    if quiet:  # hub bars in a log file are noise: one line before, one after
        disable_progress_bars()
    try:
        common = {"repo_type": s.hf_repo_type, "revision": revision, "local_dir": staging, "endpoint": endpoint}
        if s.kind == "hf":
            patterns = _snapshot_patterns(s, revision, endpoint)
            huggingface_hub.snapshot_download(s.hf_repo, allow_patterns=patterns, **common)
            got = staging
        else:
            got = Path(huggingface_hub.hf_hub_download(s.hf_repo, s.hf_filename, **common))
    except DownloadError:
        raise
    except Exception as exc:  # noqa: BLE001 - huggingface_hub/httpx errors of many kinds -> one line
        raise _hub_error(s, revision, exc) from None
    finally:
        if quiet:
            enable_progress_bars()
    if s.kind == "hf":
        shutil.rmtree(staging / ".cache", ignore_errors=True)  # huggingface_hub's resume metadata
        os.replace(staging, dest)
    else:
        if s.sha256:
            actual = sha256_of(got)
            if actual != s.sha256.lower():
                shutil.rmtree(staging, ignore_errors=True)
                raise DownloadError(f"{s.id}: sha256 mismatch for {what}: got {actual}, expected {s.sha256}; "
                                    f"the downloaded file was deleted")
        os.replace(got, dest)
        shutil.rmtree(staging, ignore_errors=True)
    opts.log(f"{s.id}: done -> {dest}")
    return dest
