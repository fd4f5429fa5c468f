"""The restricted unpickler rebuilds tensors and containers and refuses anything that could run code."""
from __future__ import annotations

import collections
import os
import pickle

import numpy as np
import pytest
import torch

from omnieval import safe_pickle
from omnieval.errors import OmniEvalError


def test_round_trips_tensors_and_containers(tmp_path):
    payload = {
        "<img_st>": torch.randn(1, 8),
        "bf16": torch.randn(2, 3).to(torch.bfloat16),
        "param": torch.nn.Parameter(torch.ones(3)),
        "nested": [torch.arange(4), (1, 2.5, "x"), {"s": {1, 2}}],
        "od": collections.OrderedDict(a=torch.zeros(2)),
        "np": np.arange(6, dtype=np.float32).reshape(2, 3),
    }
    path = tmp_path / "tokens.pkl"
    path.write_bytes(pickle.dumps(payload))
    out = safe_pickle.restricted_load(path)
    assert set(out) == set(payload)
    assert torch.equal(out["<img_st>"], payload["<img_st>"])
    assert out["bf16"].dtype == torch.bfloat16 and torch.equal(out["bf16"], payload["bf16"])
    assert torch.equal(out["param"], payload["param"])
    assert torch.equal(out["nested"][0], torch.arange(4)) and out["nested"][1] == (1, 2.5, "x")
    assert out["nested"][2]["s"] == {1, 2}
    assert isinstance(out["od"], collections.OrderedDict)
    np.testing.assert_array_equal(out["np"], payload["np"])


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


class _Custom:
    pass


@pytest.mark.parametrize("obj", [_Evil(), {"x": _Custom()}, [eval]])
def test_refuses_code(tmp_path, obj):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(obj))
    with pytest.raises(safe_pickle.UnsafePickleError) as err:
        safe_pickle.restricted_load(path)
    assert isinstance(err.value, OmniEvalError)
    assert "evil.pkl" in str(err.value) and "refusing" in str(err.value)


def test_nested_storage_archive_is_loaded_weights_only(tmp_path):
    """A storage blob that hides a code-running pickle inside is refused by torch.load(weights_only=True)."""
    import io

    buf = io.BytesIO()
    torch.save(_Evil(), buf)
    blob = buf.getvalue()

    class _Smuggler:
        def __reduce__(self):
            return (torch.storage._load_from_bytes, (blob,))

    path = tmp_path / "smuggle.pkl"
    path.write_bytes(pickle.dumps(_Smuggler()))
    with pytest.raises(pickle.UnpicklingError):
        safe_pickle.restricted_load(path)


def test_garbage_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.pkl"
    path.write_bytes(b"not a pickle at all")
    with pytest.raises(safe_pickle.UnsafePickleError, match="bad.pkl"):
        safe_pickle.restricted_load(path)


# -- static checks of checkpoint files (issue 14 §7.10) ------------------------------------------------
WRITERS = {
    "torch_zip": lambda obj, p: torch.save(obj, p),
    "torch_legacy": lambda obj, p: torch.save(obj, p, _use_new_zipfile_serialization=False),
    "pickle0": lambda obj, p: p.write_bytes(pickle.dumps(obj, protocol=0)),
    "pickle2": lambda obj, p: p.write_bytes(pickle.dumps(obj, protocol=2)),
    "pickle5": lambda obj, p: p.write_bytes(pickle.dumps(obj, protocol=5)),
}


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_unsafe_globals_are_found_without_unpickling(tmp_path, kind):
    write = WRITERS[kind]
    good = {"w": torch.zeros(2), "od": collections.OrderedDict(a=torch.ones(1)), "s": {1}, "n": np.arange(3)}
    write(good, tmp_path / "good.pth")
    # protocol 5 pickles numpy arrays through numpy's _frombuffer, which no loader here accepts either
    expected = ["numpy._core.numeric._frombuffer"] if kind == "pickle5" else []
    assert safe_pickle.unsafe_globals(tmp_path / "good.pth") == expected
    # the same string "system" twice: protocol 4+ memoizes it and STACK_GLOBAL reads it back from the memo
    write({"a": _Evil(), "b": _Evil(), "c": [eval]}, tmp_path / "bad.pth")
    assert safe_pickle.unsafe_globals(tmp_path / "bad.pth") == ["builtins.eval", "posix.system"]
    with pytest.raises(safe_pickle.UnsafePickleError, match=r"x: .*bad\.pth: refusing to load it, its pickle names "
                                                           r"builtins\.eval, posix\.system, which could run code"):
        safe_pickle.check_checkpoint(tmp_path / "bad.pth", "x:")
    with pytest.raises(safe_pickle.UnsafePickleError, match=r"bad\.pth"):
        safe_pickle.check_checkpoint(tmp_path)  # a folder: every pickle-like file in it


def test_files_that_are_not_pickles_pass_the_static_check(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, tmp_path / "model.safetensors")
    (tmp_path / "noise.bin").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    (tmp_path / "vocab.txt").write_text("hello\nworld\n")
    scripted = torch.jit.script(torch.nn.Linear(2, 2))
    torch.jit.save(scripted, str(tmp_path / "script.pt"))
    for name in ("model.safetensors", "noise.bin", "vocab.txt", "script.pt"):
        assert safe_pickle.unsafe_globals(tmp_path / name) == [], name
    safe_pickle.check_checkpoint(tmp_path)
