"""Import lmms-eval 0.7.3's own task functions (``lmms_eval/tasks/<bench>/utils.py``) by file path, for parity tests.

``import lmms_eval.tasks...`` would run the package ``__init__`` files, which import the whole evaluator (and fail on
packages lmms-eval's ``--no-deps`` install lacks).  Stub packages that point at the real folders but skip their
``__init__`` let each ``utils.py`` import its siblings (``_task_utils``); ``lmms_eval.utils`` (LongVideoBench) is a
stub with the one function it uses.  Everything goes through ``monkeypatch``, so nothing leaks into other tests.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import types
from pathlib import Path

# PyAV first: decord (imported by LongVideoBench's utils) bundles its own FFmpeg libraries, and a PyAV loaded after
# them cannot open libvpx-vp9 in the same process (test_media_lazy's WebM tests would fail after these tests)
import av  # noqa: F401
import pytest

_ROOT: list[Path] = []


def lmms_root() -> Path:
    """The installed lmms_eval package folder (found once: later the stub packages stand in sys.modules)."""
    if not _ROOT:
        spec = importlib.util.find_spec("lmms_eval")
        if spec is None or not spec.submodule_search_locations:
            pytest.skip("lmms-eval not installed (pip install --no-deps lmms-eval==0.7.3)")
        _ROOT.append(Path(next(iter(spec.submodule_search_locations))))
    return _ROOT[0]


def _resolve_cache_dir(cache_dir: str, base_dir: str | None = None) -> str:
    """lmms-eval's ``utils.resolve_cache_dir`` (``$VAR``/``~`` expanded, relative paths under ``base_dir``)."""
    resolved = os.path.expanduser(os.path.expandvars(cache_dir))
    return os.path.join(base_dir, resolved) if base_dir is not None and not os.path.isabs(resolved) else resolved


def load_file(relpath: str, name: str) -> types.ModuleType:
    """A self-contained lmms-eval source file (``relpath`` under the package) imported by path, as ``name``."""
    spec = importlib.util.spec_from_file_location(name, lmms_root() / relpath)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_task_utils(monkeypatch, hf_home: Path, relpath: str, **env: str) -> types.ModuleType:
    """``lmms_eval/tasks/<relpath>`` imported by path with ``HF_HOME=hf_home`` (several modules read it at import)
    and ``env`` set first (TempCompass freezes its judge URL at import)."""
    pkg = lmms_root()
    root = pkg / "tasks"
    for name, path in (("lmms_eval", pkg), ("lmms_eval.tasks", root), ("lmms_eval.tasks._task_utils", root / "_task_utils")):
        module = types.ModuleType(name)
        module.__path__ = [str(path)]
        monkeypatch.setitem(sys.modules, name, module)
    utils = types.ModuleType("lmms_eval.utils")
    utils.resolve_cache_dir = _resolve_cache_dir
    monkeypatch.setitem(sys.modules, "lmms_eval.utils", utils)
    monkeypatch.setattr(sys.modules["lmms_eval"], "utils", utils, raising=False)
    monkeypatch.setenv("HF_HOME", str(hf_home))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    name = "lmms_ref_" + relpath.replace("/", "_").removesuffix(".py")
    spec = importlib.util.spec_from_file_location(name, root / relpath)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


class ScriptedRandom:
    """Stands in for a reference module's ``random``: ``choice`` returns the letter omnieval's deterministic fallback
    drew for the current item, and fails if the reference draws where omnieval did not (or from other letters)."""

    def __init__(self):
        self.expected: tuple[list[str], str] | None = None
        self.calls = 0

    def expect(self, letters: list[str] | None, letter: str | None) -> None:
        self.expected = (list(letters), letter) if letter else None

    def choice(self, seq):
        assert self.expected is not None, "the reference drew a random letter where omnieval read one"
        letters, letter = self.expected
        assert list(seq) == letters, f"the reference draws from {list(seq)}, omnieval from {letters}"
        self.calls += 1
        self.expected = None
        return letter

    def uniform(self, a, b):  # TempCompass sleeps random.uniform(1, 2) between judge retries
        return 0.0
