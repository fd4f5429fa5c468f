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
from omnieval.models.base import make_requests
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
            [tiny.generate_image(make_requests("t2i", ["a cat"], think=think, seeds=[11], **gen)),
             tiny.edit_video(make_requests("edit_video", ["snow"], media=[src], think=think, seeds=[12], **gen))],
            [loaded.generate_image(make_requests("t2i", ["a cat"], think=think, seeds=[11], **gen)),
             loaded.edit_video(make_requests("edit_video", ["snow"], media=[src], think=think, seeds=[12], **gen))],
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


def test_original_t5_and_vae_files_round_trip(tiny, tmp_path):
    """``models_t5_umt5-xxl-enc-bf16.pth`` (Wan's umT5 names) and ``Wan2.1_VAE.pth`` (original names, read by
    diffusers' converter) + ``google/umt5-xxl/`` instead of the diffusers folders: identical outputs (tolerance 0)."""
    from omnieval.models.omnivideo.umt5_convert import WAN_T5_FILENAME

    root = save_official(tmp_path, tiny.parts, tiny.mllm)  # the release's formats are the default
    wan = root / LAYOUT["wan"]
    assert not any((wan / sub).exists() for sub in ("text_encoder", "vae", "tokenizer"))
    t5 = torch.load(wan / WAN_T5_FILENAME, weights_only=True)
    assert {"token_embedding.weight", "blocks.1.pos_embedding.embedding.weight", "blocks.0.ffn.gate.0.weight",
            "norm.weight"} <= set(t5)
    vae = torch.load(wan / "Wan2.1_VAE.pth", weights_only=True)
    assert {"encoder.conv1.weight", "conv1.weight", "conv2.weight", "decoder.upsamples.4.shortcut.weight",
            "decoder.upsamples.3.resample.1.weight", "decoder.middle.1.to_qkv.weight", "decoder.head.2.bias"} <= set(vae)

    loaded = get_model("omnivideo").from_args(checkpoint=str(root), route="false", think_max_new_tokens="16")
    a, b = tiny.parts.decoder, loaded.parts.decoder
    for mine, theirs in ((a.text_encoder, b.text_encoder), (a.vae, b.vae)):
        ref = mine.state_dict()
        got = theirs.state_dict()
        assert set(got) == set(ref) and all(torch.equal(got[k], ref[k]) for k in ref)
    assert a.tokenizer("a cat").input_ids == b.tokenizer("a cat").input_ids
    src = Video(np.random.default_rng(2).integers(0, 255, (9, 36, 40, 3), dtype=np.uint8))
    gen = dict(height=32, width=32, num_frames=5, num_inference_steps=2, guidance_scale=4.0)
    outs = [(m.generate_image(make_requests("t2i", ["a cat"], seeds=[11], **gen))[0],
             m.edit_video(make_requests("edit_video", ["snow"], media=[src], seeds=[12], **gen))[0])
            for m in (tiny, loaded)]
    for x, y in zip(*outs):
        np.testing.assert_array_equal(np.asarray(getattr(x.output, "frames", x.output)),
                                      np.asarray(getattr(y.output, "frames", y.output)))
    # diffusers-format Wan folders (vae/, text_encoder/, tokenizer/) load to the same model
    folders = save_official(tmp_path / "diffusers", tiny.parts, tiny.mllm, original_formats=())
    assert (folders / LAYOUT["wan"] / "vae" / "config.json").is_file()
    from_folders = get_model("omnivideo").from_args(checkpoint=str(folders), route="false", think_max_new_tokens="16")
    np.testing.assert_array_equal(from_folders.generate_image(make_requests("t2i", ["a cat"], seeds=[11], **gen))[0].output, outs[0][0].output)


def test_original_t5_file_errors_name_it(tiny, tmp_path):
    from omnieval.models.omnivideo.umt5_convert import WAN_T5_FILENAME

    root = save_official(tmp_path, tiny.parts, original_formats=("t5",))
    pth = root / LAYOUT["wan"] / WAN_T5_FILENAME
    state = torch.load(pth, weights_only=True)
    torch.save({k: v for k, v in state.items() if k != "blocks.1.attn.k.weight"}, pth)
    with pytest.raises(MissingWeightsError) as err:
        load_official(root)
    assert WAN_T5_FILENAME in str(err.value) and "blocks.N." in str(err.value) and "\n" not in str(err.value)
    torch.save({**state, "blocks.0.ffn.fc1.weight": torch.zeros(3, 3)}, pth)
    with pytest.raises(MissingWeightsError, match="inconsistent shapes") as err:
        load_official(root)
    assert "\n" not in str(err.value)
    pth.unlink()
    with pytest.raises(MissingWeightsError, match="text_encoder/ .diffusers. or models_t5_umt5-xxl-enc-bf16.pth"):
        load_official(root)
    with pytest.raises(ValueError, match="unknown"):
        save_official(tmp_path / "x", tiny.parts, original_formats=("dit",))
    import dataclasses

    from diffusers import AutoencoderKLWan

    odd_vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1)
    odd = dataclasses.replace(tiny.parts, decoder=dataclasses.replace(tiny.parts.decoder, vae=odd_vae))
    with pytest.raises(ValueError, match="Wan2.1_VAE.pth: dim_mult, num_res_blocks differ"):
        save_official(tmp_path / "y", odd, original_formats=("vae",))
