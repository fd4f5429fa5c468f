"""Official omni_ckpts/ layout: writer -> real loader round trip, key conversion, clear errors.

The round trip must reproduce the in-memory tiny model's outputs exactly (same seeds, float32, CPU;
tolerance 0: the same weights run through the same code).
"""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from omnieval.errors import MissingWeightsError
from omnieval.media import Video
from omnieval.models.omnivideo.checkpoint import LAYOUT, diffusers_to_wan, load_official, save_official, wan_to_diffusers
from omnieval.registry import get_model
from omnieval.safe_pickle import UnsafePickleError


@pytest.fixture(scope="module")
def tiny():
    return get_model("omnivideo-tiny").from_args(seed="3", route="false", think_max_new_tokens="16")


@pytest.fixture(scope="module")
def official_root(tiny, tmp_path_factory):
    root = tmp_path_factory.mktemp("ov_official")
    save_official(root, tiny.parts, tiny.mllm)
    return root


def test_key_conversion_round_trip(tiny):
    state = tiny.parts.decoder.transformer.state_dict()
    original = diffusers_to_wan(state)
    assert {"blocks.0.self_attn.q.weight", "blocks.0.cross_attn.o.weight", "blocks.0.norm3.weight", "blocks.0.modulation",
            "head.modulation", "head.head.weight", "time_embedding.0.weight", "text_embedding.2.bias",
            "time_projection.1.weight", "blocks.0.ffn.0.weight", "blocks.0.self_attn.norm_q.weight"} <= set(original)
    back = wan_to_diffusers(original)
    assert set(back) == set(state) and all(torch.equal(back[k], state[k]) for k in state)


def test_round_trip_outputs_identical(tiny, official_root):
    loaded = get_model("omnivideo").from_args(checkpoint=str(official_root), route="false", think_max_new_tokens="16")
    assert not loaded.load_report["unexpected"]
    assert not any(k.endswith("wan_model") or k.endswith("visual_context_adapter") for k in loaded.load_report["missing"])
    src = Video(np.random.default_rng(1).integers(0, 255, (12, 36, 40, 3), dtype=np.uint8))
    gen = dict(height=32, width=32, num_frames=5, num_inference_steps=2, guidance_scale=4.0)
    for think in (False, True):
        for model_out in zip(
            [tiny.generate_image(["a cat"], think=think, seeds=[11], **gen),
             tiny.edit_video([src], ["snow"], think=think, seeds=[12], **gen)],
            [loaded.generate_image(["a cat"], think=think, seeds=[11], **gen),
             loaded.edit_video([src], ["snow"], think=think, seeds=[12], **gen)],
        ):
            a, b = model_out
            np.testing.assert_array_equal(np.asarray(getattr(a[0].output, "frames", a[0].output)),
                                          np.asarray(getattr(b[0].output, "frames", b[0].output)))
            assert a[0].info == b[0].info
    fingerprint = loaded.checkpoint_fingerprint()
    assert len(fingerprint) == 16 and fingerprint != tiny.checkpoint_fingerprint()
    # the runner computes the identity before building anything: it must agree with the loaded model's
    assert get_model("omnivideo").identity_from_args(checkpoint=str(official_root), route="false",
                                                     think_max_new_tokens="16") == loaded.identity()


def _copy(root, tmp_path):
    import shutil

    dst = tmp_path / "copy"
    shutil.copytree(root, dst)
    return dst / "omni_ckpts"


@pytest.mark.parametrize("key", ["adapter", "vision_head", "transformer", "uncond", "special_tokens"])
def test_missing_file_names_it(official_root, tmp_path, key):
    root = _copy(official_root, tmp_path)
    (root / LAYOUT[key]).unlink()
    with pytest.raises(MissingWeightsError) as err:
        load_official(root)
    msg = str(err.value)
    assert LAYOUT[key] in msg and "omni_ckpts/ layout" in msg and "\n" not in msg


def test_wrong_contents_are_clear(official_root, tmp_path):
    root = _copy(official_root, tmp_path)
    torch.save({"state": {}}, root / LAYOUT["adapter"])
    with pytest.raises(MissingWeightsError, match="model_state_dict"):
        load_official(root)
    root = _copy(official_root, tmp_path / "b")
    head = torch.load(root / LAYOUT["vision_head"], weights_only=True)
    head["fc.2.weight"] = torch.zeros(3, 3)
    torch.save(head, root / LAYOUT["vision_head"])
    with pytest.raises(MissingWeightsError, match="pytorch_model.bin"):
        load_official(root)
    root = _copy(official_root, tmp_path / "c")
    (root / LAYOUT["uncond"]).write_bytes(pickle.dumps({"text_emb": torch.zeros(1, 2, 32)}))
    with pytest.raises(MissingWeightsError, match="vlm_last_hidden_states"):
        load_official(root)


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned",))


def test_code_in_pickles_is_refused(official_root, tmp_path):
    root = _copy(official_root, tmp_path)
    (root / LAYOUT["special_tokens"]).write_bytes(pickle.dumps({"<img_st>": _Evil()}))
    with pytest.raises(UnsafePickleError, match="os.system|posix.system"):
        load_official(root)


def test_missing_root_and_args():
    with pytest.raises(MissingWeightsError, match="not found"):
        load_official("/nonexistent/omni")
    from omnieval.errors import ConfigError

    with pytest.raises(ConfigError, match="checkpoint="):
        get_model("omnivideo").from_args()
