"""A restricted unpickler for checkpoint pickles (``tokens.pkl``, ``context.pkl`` ...).

``pickle.load`` runs whatever callable a file names, so a downloaded pickle can execute code.
:func:`load` only lets a pickle rebuild

* plain containers (dict, list, tuple, set, ``collections.OrderedDict``) and scalars/strings,
* torch tensors and parameters (``torch._utils._rebuild_tensor_v2`` & co., dtypes, ``torch.Size``),
  with the serialized storages read back by ``torch.load(..., weights_only=True)``,
* numpy arrays and scalars.

Any other global (``os.system``, ``builtins.eval``, a class from some module, ...) raises
:class:`UnsafePickleError`, naming the file and the refused global; nothing is called.
"""
from __future__ import annotations

import io
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omnieval.errors import OmniEvalError


class UnsafePickleError(OmniEvalError, pickle.UnpicklingError):
    """The pickle names a global outside the allow-list (it could run code)."""


def _load_storage_from_bytes(data: bytes):
    """Replacement for ``torch.storage._load_from_bytes`` that refuses code in the nested archive."""
    import torch

    return torch.load(io.BytesIO(data), weights_only=True)


def _allowed_globals() -> dict[tuple[str, str], Any]:
    import collections

    import torch
    import torch._utils as tu

    allowed: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "dict"): dict,
        ("builtins", "list"): list,
        ("builtins", "tuple"): tuple,
        ("builtins", "bytearray"): bytearray,
        ("builtins", "complex"): complex,
        ("torch", "Size"): torch.Size,
        ("torch", "Tensor"): torch.Tensor,
        ("torch.nn.parameter", "Parameter"): torch.nn.Parameter,
        ("torch.storage", "_load_from_bytes"): _load_storage_from_bytes,
    }
    for name in ("_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_parameter", "_rebuild_parameter_with_state"):
        if hasattr(tu, name):
            allowed[("torch._utils", name)] = getattr(tu, name)
    for name in dir(torch):
        if isinstance(getattr(torch, name, None), torch.dtype):
            allowed[("torch", name)] = getattr(torch, name)
    try:
        import numpy as np

        for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
            allowed[(mod, "_reconstruct")] = np._core.multiarray._reconstruct  # type: ignore[attr-defined]
            allowed[(mod, "scalar")] = np._core.multiarray.scalar  # type: ignore[attr-defined]
        allowed[("numpy", "ndarray")] = np.ndarray
        allowed[("numpy", "dtype")] = np.dtype
        for name in ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool_"):
            allowed[("numpy", name)] = getattr(np, name)
        for name in dir(np.dtypes):
            if name.endswith("DType"):
                allowed[("numpy.dtypes", name)] = getattr(np.dtypes, name)
    except (ImportError, AttributeError):  # pragma: no cover - numpy layout differs
        pass
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` only returns allow-listed globals."""

    def __init__(self, file, *, what: str = "pickle"):
        super().__init__(file)
        self._what = what
        self._allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> Callable:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self._what}: refusing to load global {module}.{name} (only tensors and plain containers are allowed)"
            ) from None

    def persistent_load(self, pid):  # torch.save's zip format is not a plain pickle
        raise UnsafePickleError(f"{self._what}: persistent ids are not supported (is this a torch.save archive?)")


def restricted_loads(data: bytes, *, what: str = "pickle") -> Any:
    """Unpickle ``data`` with the allow-list."""
    return RestrictedUnpickler(io.BytesIO(data), what=what).load()


def restricted_load(path: str | os.PathLike) -> Any:
    """Unpickle the file at ``path`` with the allow-list (see module docstring)."""
    path = Path(path)
    with open(path, "rb") as f:
        try:
            return RestrictedUnpickler(f, what=str(path)).load()
        except UnsafePickleError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, RuntimeError) as exc:
            raise UnsafePickleError(f"{path}: not a readable pickle ({type(exc).__name__}: {exc})") from exc


# ---------------------------------------------------------------------------------------------
# Static check of checkpoint files (nothing is unpickled)
# ---------------------------------------------------------------------------------------------
_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING", "SHORT_BINSTRING"}
_GET_OPS = {"GET", "BINGET", "LONG_BINGET"}
_PUT_OPS = {"PUT", "BINPUT", "LONG_BINPUT"}
#: pickles read from a legacy (non-zip) ``torch.save`` file: magic number, protocol, sys info, the object, storage keys
_LEGACY_TORCH_PICKLES = 5


def pickle_globals(stream, *, max_pickles: int = 1) -> set[str]:
    """``module.name`` of every global the pickle(s) read from the binary file object ``stream`` would import,
    read from the opcodes (nothing is executed).  ``STACK_GLOBAL`` names come from the two strings pushed before
    it (directly or from the memo); a name that cannot be determined is reported as ``<unknown>``.  Reading stops
    at the first place that is not a pickle (what follows could not be unpickled either)."""
    import pickletools

    found: set[str] = set()
    for _ in range(max_pickles):
        pushed: list[Any] = []
        memo: dict[Any, Any] = {}
        try:
            for op, arg, _pos in pickletools.genops(stream):
                name = op.name
                if name == "GLOBAL" or name == "INST":
                    found.add(str(arg).replace(" ", "."))
                    pushed.append(None)
                elif name == "STACK_GLOBAL":
                    module, attr = (pushed[-2:] + [None, None])[:2] if len(pushed) >= 2 else (None, None)
                    ok = isinstance(module, str) and isinstance(attr, str)
                    found.add(f"{module}.{attr}" if ok else "<unknown>")
                    pushed.append(None)
                elif name in _STRING_OPS:
                    pushed.append(arg.decode("latin-1") if isinstance(arg, bytes) else arg)
                elif name in _GET_OPS:
                    pushed.append(memo.get(arg))
                elif name in _PUT_OPS:
                    memo[arg] = pushed[-1] if pushed else None
                elif name == "MEMOIZE":
                    memo[len(memo)] = pushed[-1] if pushed else None
                elif op.stack_after:
                    pushed.append(None)
        except (ValueError, EOFError):  # the end, or not a pickle from here on
            break
    return found


def _python3_name(name: str) -> str:
    """The name Python 3's unpickler imports for a protocol 0-2 global (``__builtin__.set`` -> ``builtins.set``)."""
    import _compat_pickle

    module, _, attr = name.rpartition(".")
    if (module, attr) in _compat_pickle.NAME_MAPPING:
        module, attr = _compat_pickle.NAME_MAPPING[(module, attr)]
    elif module in _compat_pickle.IMPORT_MAPPING:
        module = _compat_pickle.IMPORT_MAPPING[module]
    return f"{module}.{attr}"


def allowed_global_names() -> set[str]:
    """What ``torch.load(weights_only=True)`` accepts by default, plus this module's allow-list."""
    names = {f"{module}.{name}" for module, name in _allowed_globals()}
    try:
        from torch import _weights_only_unpickler

        names |= set(_weights_only_unpickler._get_allowed_globals())
    except (ImportError, AttributeError):  # pragma: no cover - torch layout differs
        pass
    return names


def unsafe_globals(path: str | os.PathLike) -> list[str]:
    """Globals in a checkpoint file (``torch.save`` zip or legacy file, or a plain pickle) that neither
    ``torch.load(weights_only=True)`` nor :func:`restricted_load` would accept, i.e. names that could run code.
    Files that are not pickles (safetensors, TorchScript archives, JSON ...) give ``[]``."""
    import zipfile

    path = Path(path)
    if path.suffix == ".safetensors":
        return []
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if any(n.endswith("constants.pkl") for n in names):
                return []  # TorchScript: loaded by torch.jit (no Python unpickling)
            pkl = [n for n in names if n.endswith("data.pkl")]
            if not pkl:
                return []
            found = pickle_globals(io.BytesIO(archive.read(pkl[0])))
    else:
        with open(path, "rb") as f:  # a legacy torch.save file (several pickles, then raw storages) or a pickle
            found = pickle_globals(f, max_pickles=_LEGACY_TORCH_PICKLES)
    return sorted({_python3_name(n) for n in found} - allowed_global_names())


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".tar")


def check_checkpoint(path: str | os.PathLike, what: str = "checkpoint") -> None:
    """Refuse, as a one-line :class:`UnsafePickleError`, a checkpoint that names code-running globals; a folder
    is checked file by file (pickle-like suffixes only)."""
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in PICKLE_SUFFIXES) if path.is_dir() else [path]
    for file in files:
        if not file.is_file():
            continue
        bad = unsafe_globals(file)
        if bad:
            shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
            raise UnsafePickleError(f"{what} {file}: refusing to load it, its pickle names {shown}, which could run "
                                    f"code (only tensors and plain containers are allowed); replace it with the "
                                    f"original file")
