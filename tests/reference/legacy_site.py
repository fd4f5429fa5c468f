"""A side site-packages with the transformers version vbench pins, for reference runs in a subprocess.

vbench 0.1.5 pins ``transformers==4.33.2``; its Tag2Text code imports helpers that transformers 5 removed. The
reference scripts under ``tests/reference/`` therefore run in a subprocess of the test interpreter with
``PYTHONPATH=<legacy site>:<repo>``: torch, numpy, timm, decord, ... come from the venv, while the packages
installed here shadow the venv's transformers 5 / tokenizers / huggingface_hub.

The site is made once with ``pip install --no-deps --target`` (``LEGACY_REQUIREMENTS``) in
``$OMNIEVAL_LEGACY_SITE`` or ``~/.cache/omnieval/legacy-transformers-4.33.2``; later calls reuse it. A file lock
serialises concurrent pytest processes, and the install goes to a temporary sibling directory that is renamed into
place only when complete, so a half-installed site is never used. When pip cannot reach the package index, the
pytest helpers skip with a reason containing "not installed" (tests/conftest.py turns that into a failure in CI).
``python tests/reference/legacy_site.py`` installs it ahead of time and prints its path.

Versions: transformers 4.33.2 needs ``tokenizers<0.14`` and ``huggingface-hub>=0.15.1,<1.0`` (it checks both at
import); tokenizers 0.13.3 and huggingface_hub 0.17.3 are the releases of the same month. The venv's safetensors
0.8, regex, requests, filelock, PyYAML, packaging and tqdm satisfy transformers 4.33's import-time checks.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pytest

LEGACY_REQUIREMENTS: tuple[str, ...] = ("transformers==4.33.2", "tokenizers==0.13.3", "huggingface_hub==0.17.3")
_MARKER = "omnieval-legacy-site.json"
REPO_ROOT = Path(__file__).resolve().parents[2]


class LegacySiteUnavailable(RuntimeError):
    """pip could not install the legacy packages (no index reachable, no wheel for this Python, ...)."""


def legacy_site_dir() -> Path:
    """Where the legacy site lives: ``$OMNIEVAL_LEGACY_SITE`` or ``~/.cache/omnieval/legacy-transformers-4.33.2``."""
    env = os.environ.get("OMNIEVAL_LEGACY_SITE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "omnieval" / "legacy-transformers-4.33.2"


def _is_complete(site: Path) -> bool:
    marker = site / _MARKER
    if not marker.is_file():
        return False
    try:
        recorded = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return recorded.get("requirements") == list(LEGACY_REQUIREMENTS)


def ensure_legacy_site(site: Path | None = None, timeout: float = 900.0) -> Path:
    """Install ``LEGACY_REQUIREMENTS`` into ``site`` (default ``legacy_site_dir()``) unless already there; return it.

    Raises ``LegacySiteUnavailable`` with pip's last output lines when the install fails.
    """
    site = Path(site) if site is not None else legacy_site_dir()
    if _is_complete(site):
        return site
    site.parent.mkdir(parents=True, exist_ok=True)
    with open(site.parent / f".{site.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if _is_complete(site):  # another process finished while we waited
                return site
            staging = Path(tempfile.mkdtemp(prefix=f".{site.name}.", dir=site.parent))
            try:
                cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-input", "--disable-pip-version-check",
                       "--target", str(staging), *LEGACY_REQUIREMENTS]
                try:
                    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
                except subprocess.TimeoutExpired as exc:
                    raise LegacySiteUnavailable(f"pip install {' '.join(LEGACY_REQUIREMENTS)} timed out") from exc
                if proc.returncode != 0:
                    tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
                    raise LegacySiteUnavailable(f"pip install {' '.join(LEGACY_REQUIREMENTS)} failed: {tail}")
                (staging / _MARKER).write_text(json.dumps({"requirements": list(LEGACY_REQUIREMENTS)}))
                if site.exists():  # a stale or partial site from an older requirement list
                    shutil.rmtree(site)
                staging.rename(site)
            finally:
                if staging.exists():
                    shutil.rmtree(staging, ignore_errors=True)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return site


def legacy_env(site: Path) -> dict[str, str]:
    """Environment for a reference subprocess: legacy site first, then the repo; offline hub; one thread."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(REPO_ROOT)])
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONWARNINGS"] = "ignore"
    return env


def run_legacy_script(script: Path, args: Sequence[str], site: Path, timeout: float = 600.0) -> str:
    """Run ``script args`` with the venv interpreter in the legacy environment; return stdout.

    Raises RuntimeError carrying the tail of stderr when the script fails, so a test shows the reference's error.
    """
    proc = subprocess.run([sys.executable, str(script), *args], env=legacy_env(site), capture_output=True,
                          text=True, timeout=timeout)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-25:])
        raise RuntimeError(f"reference script {script.name} failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout


def require_legacy_site() -> Path:
    """``ensure_legacy_site()``, or skip the calling test with a reason containing "not installed"."""
    try:
        return ensure_legacy_site()
    except LegacySiteUnavailable as exc:
        pytest.skip(f"transformers 4.33.2 reference site not installed: {exc}")


@pytest.fixture(scope="session")
def legacy_site() -> Path:
    """Session fixture: the legacy site directory (installed on first use). Import it into a test module."""
    return require_legacy_site()


if __name__ == "__main__":  # pre-install (e.g. in CI before the tests): python tests/reference/legacy_site.py
    print(ensure_legacy_site())
