"""Wan2.1 umT5 encoder weights <-> transformers UMT5EncoderModel (omnieval/models/omnivideo/umt5_convert.py).

The reference is :func:`_wan_t5_forward` below: Wan2.1's ``T5Encoder`` forward (``wan/modules/t5.py``,
``shared_pos=False``) written out from its equations on Wan-named weights -- T5 RMS norm (no mean, no bias,
eps 1e-6), attention logits ``q k^T`` without ``1/sqrt(d)`` scaling plus a per-layer bias looked up from
bidirectional T5 buckets of ``key_pos - query_pos`` (max distance 128, float32 log as Wan), padding keys
filled with ``finfo.min``, gated FFN ``fc2(fc1(x) * gelu_tanh(gate(x)))``, final RMS norm.  Tolerance: 1e-5
absolute in float32 on outputs of size ~1 (the two sides only differ by summation order).
"""
from __future__ import annotations

import math

import pytest
import torch

from omnieval.models.omnivideo.umt5_convert import (
    build_umt5_from_wan,
    hf_to_wan_t5,
    umt5_config_from_wan,
    wan_t5_to_hf,
)

SIZES = dict(vocab_size=50, d_model=16, d_kv=6, d_ff=24, num_layers=2, num_heads=3, relative_attention_num_buckets=32)


@pytest.fixture(scope="module")
def hf_model():
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(0)
    model = UMT5EncoderModel(UMT5Config(**SIZES)).eval()
    with torch.no_grad():  # non-trivial norm weights and position biases (the init leaves norms at 1)
        for name, p in model.named_parameters():
            if "layer_norm" in name or "relative_attention_bias" in name:
                p.copy_(torch.randn_like(p) * (0.3 if "layer_norm" in name else 1.0) + ("layer_norm" in name))
    return model


def _wan_bucket(rel: torch.Tensor, num_buckets: int, max_dist: int = 128) -> torch.Tensor:
    """T5 bidirectional bucket of ``rel = key_pos - query_pos``: half the buckets per sign, exact below
    ``n // 2`` and logarithmic up to ``max_dist``, clipped to the last bucket."""
    half = num_buckets // 2
    exact = half // 2
    dist = rel.abs()
    log_part = exact + (torch.log(dist.float() / exact) / math.log(max_dist / exact) * (half - exact)).long()
    bucket = torch.where(dist < exact, dist, log_part.clamp(max=half - 1))
    return bucket + half * (rel > 0).long()


def _rms(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6))


def _gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def _wan_t5_forward(w: dict, ids: torch.Tensor, mask: torch.Tensor, heads: int) -> torch.Tensor:
    b, n = ids.shape
    x = w["token_embedding.weight"][ids]
    pos = torch.arange(n)
    buckets = _wan_bucket(pos[None, :] - pos[:, None], w["blocks.0.pos_embedding.embedding.weight"].shape[0])
    layers = len({k.split(".")[1] for k in w if k.startswith("blocks.")})
    for i in range(layers):
        p = f"blocks.{i}."
        h = _rms(x, w[p + "norm1.weight"])
        q, k, v = (
            (h @ w[p + f"attn.{s}.weight"].T).view(b, n, heads, -1).transpose(1, 2) for s in "qkv"
        )
        bias = w[p + "pos_embedding.embedding.weight"][buckets].permute(2, 0, 1)  # [heads, n, n]
        logits = (q @ k.transpose(-1, -2) + bias).masked_fill(mask[:, None, None, :] == 0, torch.finfo(x.dtype).min)
        att = logits.softmax(-1) @ v
        x = x + att.transpose(1, 2).reshape(b, n, -1) @ w[p + "attn.o.weight"].T
        h = _rms(x, w[p + "norm2.weight"])
        x = x + ((h @ w[p + "ffn.fc1.weight"].T) * _gelu_tanh(h @ w[p + "ffn.gate.0.weight"].T)) @ w[p + "ffn.fc2.weight"].T
    return _rms(x, w["norm.weight"])


def test_reference_buckets_match_hand_values():
    # 32 buckets: 16 per sign, exact below 8, then 8 + floor(8 * log(d/8) / log(16)), clipped at 15
    rel = torch.tensor([0, -1, 1, -7, 7, -8, 12, -12, 31, -127, 200, -200])
    expected = [0, 1, 17, 7, 23, 8, 16 + 9, 9, 16 + 11, 15, 31, 15]
    assert _wan_bucket(rel, 32).tolist() == expected


def test_key_names_and_round_trip(hf_model):
    hf_state = hf_model.state_dict()
    wan = hf_to_wan_t5(hf_state)
    expected = {"token_embedding.weight", "norm.weight"} | {
        f"blocks.{i}.{s}" for i in range(2) for s in (
            "norm1.weight", "attn.q.weight", "attn.k.weight", "attn.v.weight", "attn.o.weight", "norm2.weight",
            "pos_embedding.embedding.weight", "ffn.gate.0.weight", "ffn.fc1.weight", "ffn.fc2.weight")}
    assert set(wan) == expected
    assert wan["blocks.1.ffn.gate.0.weight"] is hf_state["encoder.block.1.layer.1.DenseReluDense.wi_0.weight"]
    assert wan["blocks.1.ffn.fc1.weight"] is hf_state["encoder.block.1.layer.1.DenseReluDense.wi_1.weight"]
    back = wan_t5_to_hf(wan)
    assert set(back) == set(hf_state) and all(torch.equal(back[k], hf_state[k]) for k in hf_state)
    again = hf_to_wan_t5(back)
    assert set(again) == set(wan) and all(again[k] is wan[k] for k in wan)


def test_hf_forward_equals_wan_equations(hf_model):
    wan = hf_to_wan_t5(hf_model.state_dict())
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(2, SIZES["vocab_size"], (2, 150), generator=gen)  # > 128: exercises the clipped bucket
    mask = torch.ones(2, 150, dtype=torch.long)
    mask[1, 37:] = 0
    with torch.no_grad():
        ref = _wan_t5_forward(wan, ids, mask, heads=SIZES["num_heads"])
        out = hf_model(input_ids=ids, attention_mask=mask).last_hidden_state
    assert ref.abs().mean() > 0.1
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)


def test_build_from_wan_state(hf_model):
    wan = {k: v.clone() for k, v in hf_to_wan_t5(hf_model.state_dict()).items()}
    cfg = umt5_config_from_wan(wan)
    for key, value in SIZES.items():
        assert getattr(cfg, key) == value, key
    built = build_umt5_from_wan({k: v.to(torch.bfloat16) for k, v in wan.items()})
    assert built.dtype == torch.float32 and not built.training
    ids = torch.randint(2, SIZES["vocab_size"], (1, 9))
    with torch.no_grad():
        ref = _wan_t5_forward({k: v.to(torch.bfloat16).float() for k, v in wan.items()}, ids, torch.ones_like(ids), 3)
        torch.testing.assert_close(built(ids).last_hidden_state, ref, atol=1e-5, rtol=0)


def test_config_of_real_umt5_xxl_shapes():
    """Shapes of the real file (meta tensors: no memory) give google/umt5-xxl's config."""
    meta = dict(device="meta")
    state = {"token_embedding.weight": torch.empty(256384, 4096, **meta), "norm.weight": torch.empty(4096, **meta)}
    for i in range(24):
        p = f"blocks.{i}."
        state.update({p + "norm1.weight": torch.empty(4096, **meta), p + "norm2.weight": torch.empty(4096, **meta),
                      p + "pos_embedding.embedding.weight": torch.empty(32, 64, **meta)})
        state.update({p + f"attn.{s}.weight": torch.empty(4096, 4096, **meta) for s in "qkvo"})
        state.update({p + "ffn.gate.0.weight": torch.empty(10240, 4096, **meta),
                      p + "ffn.fc1.weight": torch.empty(10240, 4096, **meta),
                      p + "ffn.fc2.weight": torch.empty(4096, 10240, **meta)})
    cfg = umt5_config_from_wan(state)
    # Wan-AI/Wan2.1-T2V-1.3B-Diffusers text_encoder/config.json (google/umt5-xxl)
    hub = dict(vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_heads=64, num_layers=24, num_decoder_layers=24,
               relative_attention_num_buckets=32, relative_attention_max_distance=128, feed_forward_proj="gated-gelu",
               dense_act_fn="gelu_new", is_gated_act=True, layer_norm_epsilon=1e-6, pad_token_id=0, eos_token_id=1)
    assert {k: getattr(cfg, k) for k in hub} == hub
    assert len(wan_t5_to_hf(state)) == len(state) + 1


def test_bad_layouts_are_refused(hf_model):
    wan = hf_to_wan_t5(hf_model.state_dict())
    with pytest.raises(ValueError, match="shared position embedding"):
        wan_t5_to_hf({**wan, "pos_embedding.embedding.weight": torch.zeros(32, 3)})
    with pytest.raises(ValueError, match="unexpected Wan umT5 key 'blocks.0.ffn.extra.weight'"):
        wan_t5_to_hf({**wan, "blocks.0.ffn.extra.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="lacks 1 key"):
        wan_t5_to_hf({k: v for k, v in wan.items() if k != "blocks.1.attn.k.weight"})
    with pytest.raises(ValueError, match="not 0..n-1"):
        wan_t5_to_hf({k.replace("blocks.1.", "blocks.2."): v for k, v in wan.items()})
    hf = dict(hf_model.state_dict())
    hf["encoder.embed_tokens.weight"] = hf["shared.weight"] + 1
    with pytest.raises(ValueError, match="differ"):
        hf_to_wan_t5(hf)
