"""Wan2.1's own umT5-XXL encoder weights <-> transformers ``UMT5EncoderModel``.

Wan2.1 ships its text encoder as ``models_t5_umt5-xxl-enc-bf16.pth``: the plain ``state_dict()`` of the
``T5Encoder`` in Wan's ``wan/modules/t5.py`` (built by ``umt5_xxl(encoder_only=True)``, i.e. ``shared_pos=False``:
one relative position embedding per layer, gated-GELU feed-forward, bf16).  Both implementations compute the
same function, so the conversion is a pure renaming:

=========================================  ==========================================================
Wan ``T5Encoder``                          transformers ``UMT5EncoderModel``
=========================================  ==========================================================
``token_embedding.weight``                 ``shared.weight`` (tied to ``encoder.embed_tokens.weight``)
``blocks.i.norm1.weight``                  ``encoder.block.i.layer.0.layer_norm.weight``
``blocks.i.attn.{q,k,v,o}.weight``         ``encoder.block.i.layer.0.SelfAttention.{q,k,v,o}.weight``
``blocks.i.pos_embedding.embedding.weight``  ``encoder.block.i.layer.0.SelfAttention.relative_attention_bias.weight``
``blocks.i.norm2.weight``                  ``encoder.block.i.layer.1.layer_norm.weight``
``blocks.i.ffn.gate.0.weight``             ``encoder.block.i.layer.1.DenseReluDense.wi_0.weight`` (GELU branch)
``blocks.i.ffn.fc1.weight``                ``encoder.block.i.layer.1.DenseReluDense.wi_1.weight`` (linear branch)
``blocks.i.ffn.fc2.weight``                ``encoder.block.i.layer.1.DenseReluDense.wo.weight``
``norm.weight``                            ``encoder.final_layer_norm.weight``
=========================================  ==========================================================

Why the math agrees: Wan's FFN is ``fc2(fc1(x) * gelu_tanh(gate(x)))`` and HF's gated-GELU is
``wo(gelu_new(wi_0(x)) * wi_1(x))`` (``gelu_new`` is the tanh approximation); neither scales ``q k^T`` by
``1/sqrt(d)`` (HF UMT5 uses ``scaling = 1.0``); both RMS norms are ``w * x / sqrt(mean(x^2) + 1e-6)`` without
mean subtraction or bias; both relative-position buckets are the bidirectional T5 buckets of
``key_pos - query_pos`` with ``max_distance`` 128 (Wan's ``T5RelativeEmbedding`` default) and the bias table is
``[num_buckets, num_heads]`` in both; padding keys are masked with ``finfo.min`` in both.  Dropout (0.1) is
inactive in eval mode.  ``tests/test_umt5_convert.py`` checks this numerically against an independent
reimplementation of Wan's forward.
"""
from __future__ import annotations

import re

import torch

#: the file name of Wan2.1's text encoder in the original checkpoint folder
WAN_T5_FILENAME = "models_t5_umt5-xxl-enc-bf16.pth"

#: google/umt5-xxl settings that are not visible in the weights' shapes (its config.json, as used by
#: Wan-AI/Wan2.1-T2V-1.3B-Diffusers/text_encoder); Wan's T5RelativeEmbedding hard-codes max_dist=128 too
UMT5_XXL_FIXED = dict(
    relative_attention_max_distance=128, feed_forward_proj="gated-gelu", layer_norm_epsilon=1e-6,
    dropout_rate=0.1, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, initializer_factor=1.0,
)

_GLOBAL = (
    ("token_embedding.weight", "shared.weight"),
    ("norm.weight", "encoder.final_layer_norm.weight"),
)
_PER_LAYER = (
    ("norm1.weight", "layer.0.layer_norm.weight"),
    ("attn.q.weight", "layer.0.SelfAttention.q.weight"),
    ("attn.k.weight", "layer.0.SelfAttention.k.weight"),
    ("attn.v.weight", "layer.0.SelfAttention.v.weight"),
    ("attn.o.weight", "layer.0.SelfAttention.o.weight"),
    ("pos_embedding.embedding.weight", "layer.0.SelfAttention.relative_attention_bias.weight"),
    ("norm2.weight", "layer.1.layer_norm.weight"),
    ("ffn.gate.0.weight", "layer.1.DenseReluDense.wi_0.weight"),
    ("ffn.fc1.weight", "layer.1.DenseReluDense.wi_1.weight"),
    ("ffn.fc2.weight", "layer.1.DenseReluDense.wo.weight"),
)
_WAN_BLOCK = re.compile(r"blocks\.(\d+)\.(.+)")
_HF_BLOCK = re.compile(r"encoder\.block\.(\d+)\.(.+)")
_HF_TIED = "encoder.embed_tokens.weight"


def _rename(state: dict[str, torch.Tensor], block: re.Pattern, block_fmt: str, pairs_global, pairs_layer,
            what: str) -> dict[str, torch.Tensor]:
    globals_, layers = dict(pairs_global), dict(pairs_layer)
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key in globals_:
            out[globals_[key]] = value
            continue
        m = block.fullmatch(key)
        if m is None or m.group(2) not in layers:
            raise ValueError(f"unexpected {what} key {key!r}")
        out[block_fmt.format(m.group(1), layers[m.group(2)])] = value
    return out


def _expect_complete(state: dict[str, torch.Tensor], expected: set[str], what: str) -> None:
    missing = sorted(expected - set(state))
    if missing:
        raise ValueError(f"{what} lacks {len(missing)} key(s), e.g. {missing[0]!r}")


def _num_layers(keys, block: re.Pattern) -> int:
    idx = {int(m.group(1)) for k in keys if (m := block.fullmatch(k))}
    if idx != set(range(len(idx))):
        raise ValueError(f"layer indices are not 0..n-1: {sorted(idx)}")
    return len(idx)


def _wan_keys(num_layers: int) -> set[str]:
    return {w for w, _ in _GLOBAL} | {f"blocks.{i}.{w}" for i in range(num_layers) for w, _ in _PER_LAYER}


def wan_t5_to_hf(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Wan ``T5Encoder`` (umT5, per-layer position bias) state dict -> ``UMT5EncoderModel`` state dict.

    The token embedding appears under both ``shared.weight`` and ``encoder.embed_tokens.weight`` (same
    tensor), as in ``UMT5EncoderModel.state_dict()``.  Raises ``ValueError`` on a key of another layout (e.g.
    the shared ``pos_embedding`` of plain T5, or decoder keys) or a missing key.
    """
    if "pos_embedding.embedding.weight" in state:
        raise ValueError("shared position embedding found: a T5 (shared_pos=True) encoder, not Wan's umT5")
    _expect_complete(state, _wan_keys(_num_layers(state, _WAN_BLOCK)), "Wan umT5 state dict")
    out = _rename(state, _WAN_BLOCK, "encoder.block.{}.{}", _GLOBAL, _PER_LAYER, "Wan umT5")
    out[_HF_TIED] = out["shared.weight"]
    return out


def hf_to_wan_t5(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`wan_t5_to_hf`; ``shared.weight`` and/or ``encoder.embed_tokens.weight`` (equal) accepted."""
    state = dict(state)
    tied = state.pop(_HF_TIED, None)
    if tied is not None:
        shared = state.setdefault("shared.weight", tied)
        if shared is not tied and not torch.equal(shared, tied):
            raise ValueError("shared.weight and encoder.embed_tokens.weight differ (untied embeddings)")
    out = _rename(state, _HF_BLOCK, "blocks.{}.{}", [(h, w) for w, h in _GLOBAL], [(h, w) for w, h in _PER_LAYER],
                  "UMT5EncoderModel")
    _expect_complete(out, _wan_keys(_num_layers(out, _WAN_BLOCK)), "UMT5EncoderModel state dict")
    return out


def umt5_config_from_wan(state: dict[str, torch.Tensor]):
    """``UMT5Config`` for a Wan umT5 state dict: sizes from the shapes, the rest as google/umt5-xxl.

    vocab/d_model from ``token_embedding``; heads and buckets from the position-bias table
    ``[num_buckets, heads]``; ``d_kv = q.out_features / heads``; ``d_ff`` from ``fc1``; layers from the
    block count.  umt5-xxl gives 256384, 4096, 64 heads, 32 buckets, d_kv 64, d_ff 10240, 24 layers.
    """
    from transformers import UMT5Config

    vocab, d_model = state["token_embedding.weight"].shape
    num_buckets, heads = state["blocks.0.pos_embedding.embedding.weight"].shape
    dim_attn = state["blocks.0.attn.q.weight"].shape[0]
    if dim_attn % heads:
        raise ValueError(f"attention width {dim_attn} is not a multiple of {heads} heads")
    layers = _num_layers(state, _WAN_BLOCK)
    return UMT5Config(
        vocab_size=int(vocab), d_model=int(d_model), d_kv=int(dim_attn // heads), num_heads=int(heads),
        d_ff=int(state["blocks.0.ffn.fc1.weight"].shape[0]), num_layers=layers, num_decoder_layers=layers,
        relative_attention_num_buckets=int(num_buckets), **UMT5_XXL_FIXED,
    )


def build_umt5_from_wan(state: dict[str, torch.Tensor]):
    """A float32 ``UMT5EncoderModel`` (eval mode) holding a Wan umT5 state dict, loaded strictly.

    The model is created on the meta device and the (float32-cast) tensors are assigned, so the 5.7B-parameter
    XXL encoder is neither randomly initialised nor held twice in float32.  ``state`` is consumed (its values
    are replaced by float32 tensors).  Raises ``ValueError`` (layout) or ``RuntimeError`` (shapes).
    """
    from transformers import UMT5EncoderModel

    config = umt5_config_from_wan(state)
    for key in list(state):
        state[key] = state[key].float()
    hf_state = wan_t5_to_hf(state)
    with torch.device("meta"):
        model = UMT5EncoderModel(config)
    model.load_state_dict(hf_state, strict=True, assign=True)
    left = [name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise ValueError(f"tensors not provided by the state dict: {left[:3]}")
    return model.eval()
