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
from pathlib import Path
from typing import Any, Callable

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
