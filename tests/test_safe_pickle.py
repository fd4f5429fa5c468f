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
