"""The BLIP-style BERT of vbench's ``tag2Text/med.py``, reduced to what Tag2Text's captioner runs.

Three uses, with the reference's parameter names (``embeddings.*``, ``encoder.layer.N.{attention,crossattention,
intermediate,output}.*``, ``cls.predictions.*``):

* **tagging head** (``vision_multi``, :class:`BertModel` without embeddings and without self-attention):
  the label embeddings cross-attend to the image tokens ("mlr" mode): cross-attention -> feed-forward;
* **tag encoder** (:class:`BertModel`): word + absolute position embeddings (no token-type embeddings),
  LayerNorm; per layer bidirectional self-attention over the tag tokens (padding masked with -10000),
  cross-attention to the image tokens, feed-forward;
* **text decoder** (:class:`BertLMHead`): the same layers with a causal self-attention mask (-10000), cross-attending
  to the tag encoder output; the LM head (dense, GELU, LayerNorm, vocabulary projection tied to the word
  embeddings, plus a bias).

Attention: ``softmax(q @ k^T / sqrt(head_dim) + mask) @ v``; residual blocks ``LayerNorm(dense(x) + input)``;
GELU is the exact (erf) one; LayerNorm eps from the config (1e-12).  Cross-attention masks are all ones in
Tag2Text (the reference adds ``(1 - 1) * finfo.min = -0.0``, an exact no-op), so none is applied here.
Dropout is identity (inference only).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

#: additive value of masked attention positions (BLIP's ``get_extended_attention_mask``)
MASKED = -10000.0

KeyValues = tuple[torch.Tensor, torch.Tensor]  # [B, heads, L, head_dim] each
CrossCache = list[KeyValues]


@dataclass(frozen=True)
class BertSizes:
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    encoder_width: int = 768  # width of the states cross-attention attends to
    vocab_size: int = 30524
    max_position_embeddings: int = 512
    layer_norm_eps: float = 1e-12


class Embeddings(nn.Module):
    def __init__(self, sizes: BertSizes):
        super().__init__()
        self.word_embeddings = nn.Embedding(sizes.vocab_size, sizes.hidden_size)
        self.position_embeddings = nn.Embedding(sizes.max_position_embeddings, sizes.hidden_size)
        self.LayerNorm = nn.LayerNorm(sizes.hidden_size, eps=sizes.layer_norm_eps)

    def forward(self, input_ids: torch.Tensor, start: int = 0) -> torch.Tensor:
        positions = torch.arange(start, start + input_ids.shape[1], device=input_ids.device)[None]
        return self.LayerNorm(self.word_embeddings(input_ids) + self.position_embeddings(positions))


class Projections(nn.Module):
    """query / key / value of one attention (registered as ``self`` like the reference)."""

    def __init__(self, sizes: BertSizes, cross: bool):
        super().__init__()
        self.num_heads = sizes.num_heads
        source = sizes.encoder_width if cross else sizes.hidden_size
        self.query = nn.Linear(sizes.hidden_size, sizes.hidden_size)
        self.key = nn.Linear(source, sizes.hidden_size)
        self.value = nn.Linear(source, sizes.hidden_size)

    def heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        return x.view(b, n, self.num_heads, d // self.num_heads).permute(0, 2, 1, 3)

    def keys_values(self, source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.heads(self.key(source)), self.heads(self.value(source))

    def forward(self, x: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor], mask: torch.Tensor | None) -> torch.Tensor:
        q = self.heads(self.query(x))
        k, v = kv
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
        if mask is not None:
            scores = scores + mask
        context = torch.matmul(scores.softmax(dim=-1), v).permute(0, 2, 1, 3).contiguous()
        return context.view(*context.shape[:2], -1)


class Residual(nn.Module):
    """``LayerNorm(dense(x) + input)`` (the reference's BertSelfOutput / BertOutput)."""

    def __init__(self, d_in: int, d_out: int, eps: float):
        super().__init__()
        self.dense = nn.Linear(d_in, d_out)
        self.LayerNorm = nn.LayerNorm(d_out, eps=eps)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(x) + residual)


class Attention(nn.Module):
    def __init__(self, sizes: BertSizes, cross: bool):
        super().__init__()
        self.add_module("self", Projections(sizes, cross))
        self.output = Residual(sizes.hidden_size, sizes.hidden_size, sizes.layer_norm_eps)

    @property
    def projections(self) -> Projections:
        return self._modules["self"]  # type: ignore[return-value]

    def forward(self, x: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor], mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.output(self.projections(x, kv, mask), x)


class Intermediate(nn.Module):
    def __init__(self, sizes: BertSizes):
        super().__init__()
        self.dense = nn.Linear(sizes.hidden_size, sizes.intermediate_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dense(x))


class Layer(nn.Module):
    def __init__(self, sizes: BertSizes, self_attention: bool = True):
        super().__init__()
        if self_attention:
            self.attention = Attention(sizes, cross=False)
        self.crossattention = Attention(sizes, cross=True)
        self.intermediate = Intermediate(sizes)
        self.output = Residual(sizes.intermediate_size, sizes.hidden_size, sizes.layer_norm_eps)

    def forward(self, x: torch.Tensor, self_mask: torch.Tensor | None,
                cross_kv: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        if hasattr(self, "attention"):
            x = self.attention(x, self.attention.projections.keys_values(x), self_mask)
        x = self.crossattention(x, cross_kv)
        return self.output(self.intermediate(x), x)

    def extend(self, x: torch.Tensor, past: KeyValues | None, self_mask: torch.Tensor | None,
               cross_kv: KeyValues) -> tuple[torch.Tensor, KeyValues]:
        """Decoder step with cached self-attention keys/values: ``x`` holds only the new positions."""
        k, v = self.attention.projections.keys_values(x)
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        x = self.attention(x, (k, v), self_mask)
        x = self.crossattention(x, cross_kv)
        return self.output(self.intermediate(x), x), (k, v)


class Encoder(nn.Module):
    def __init__(self, sizes: BertSizes, self_attention: bool = True):
        super().__init__()
        self.layer = nn.ModuleList([Layer(sizes, self_attention) for _ in range(sizes.num_layers)])




class BertModel(nn.Module):
    """Embeddings (optional) + layers; ``forward`` runs every layer with cross-attention to ``encoder_states``."""

    def __init__(self, sizes: BertSizes, *, embeddings: bool = True, self_attention: bool = True):
        super().__init__()
        if embeddings:
            self.embeddings = Embeddings(sizes)
        self.encoder = Encoder(sizes, self_attention)

    def cross_cache(self, encoder_states: torch.Tensor) -> CrossCache:
        """Per-layer cross-attention keys/values (they do not change while decoding)."""
        return [layer.crossattention.projections.keys_values(encoder_states) for layer in self.encoder.layer]

    def run(self, hidden: torch.Tensor, self_mask: torch.Tensor | None, cross: CrossCache) -> torch.Tensor:
        for layer, kv in zip(self.encoder.layer, cross):
            hidden = layer(hidden, self_mask, kv)
        return hidden

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, encoder_states: torch.Tensor) -> torch.Tensor:
        """Bidirectional encoder over ``input_ids`` (padding mask ``attention_mask``) attending to ``encoder_states``."""
        mask = (1.0 - attention_mask[:, None, None, :].to(torch.float32)) * MASKED
        return self.run(self.embeddings(input_ids), mask, self.cross_cache(encoder_states))

    def cross_only(self, embeds: torch.Tensor, encoder_states: torch.Tensor) -> torch.Tensor:
        """The tagging head's "mlr" mode: ``embeds`` (no embedding layer) cross-attend to ``encoder_states``."""
        return self.run(embeds, None, self.cross_cache(encoder_states))


def causal_mask(batch: int, length: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """``[B, 1, L, L]`` additive mask: 0 where key position <= query position, -10000 elsewhere."""
    ids = torch.arange(length, device=device)
    allowed = (ids[None, None, :].repeat(batch, length, 1) <= ids[None, :, None]).to(torch.float32)
    return (1.0 - allowed[:, None, :, :]) * MASKED


class PredictionTransform(nn.Module):
    def __init__(self, sizes: BertSizes):
        super().__init__()
        self.dense = nn.Linear(sizes.hidden_size, sizes.hidden_size)
        self.LayerNorm = nn.LayerNorm(sizes.hidden_size, eps=sizes.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(F.gelu(self.dense(x)))


class Predictions(nn.Module):
    def __init__(self, sizes: BertSizes):
        super().__init__()
        self.transform = PredictionTransform(sizes)
        self.decoder = nn.Linear(sizes.hidden_size, sizes.vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(sizes.vocab_size))
        self.decoder.bias = self.bias  # one tensor under both names, as in the reference

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.transform(x))


class LMHead(nn.Module):
    def __init__(self, sizes: BertSizes):
        super().__init__()
        self.predictions = Predictions(sizes)


class BertLMHead(nn.Module):
    """Causal text decoder: ``bert`` (embeddings + layers) and ``cls`` (LM head tied to the word embeddings)."""

    def __init__(self, sizes: BertSizes):
        super().__init__()
        self.bert = BertModel(sizes)
        self.cls = LMHead(sizes)
        self.cls.predictions.decoder.weight = self.bert.embeddings.word_embeddings.weight

    def next_logits(self, input_ids: torch.Tensor, cross: CrossCache) -> torch.Tensor:
        """``[B, vocab]`` logits of the token after ``input_ids``, recomputing the whole prefix (what the reference
        does under transformers 4.33, whose ``prepare_inputs_for_generation`` never receives the cache); the LM
        head is applied to the last position only (row-wise, so the same values)."""
        mask = causal_mask(*input_ids.shape, device=input_ids.device)
        hidden = self.bert.run(self.bert.embeddings(input_ids), mask, cross)
        return self.cls.predictions(hidden[:, -1, :])

    def extend(self, new_ids: torch.Tensor, past: list[KeyValues] | None,
               cross: CrossCache) -> tuple[torch.Tensor, list[KeyValues]]:
        """Incremental decoding: logits after ``new_ids`` given the cached keys/values of the earlier positions."""
        start = 0 if past is None else past[0][0].shape[2]
        mask = causal_mask(*new_ids.shape, device=new_ids.device) if new_ids.shape[1] > 1 else None
        hidden = self.bert.embeddings(new_ids, start)
        presents = []
        for layer, layer_past, kv in zip(self.bert.encoder.layer, past or [None] * len(cross), cross):
            hidden, present = layer.extend(hidden, layer_past, mask, kv)
            presents.append(present)
        return self.cls.predictions(hidden[:, -1, :]), presents


class StepLogits:
    """The ``next_logits(input_ids, parent_rows)`` callable beam search needs, for one batch of conditions.

    ``cached=False`` recomputes the prefix each step (the reference's arithmetic); ``cached=True`` keeps each
    layer's self-attention keys/values, reorders them by ``parent_rows`` (the rows the beams came from) and runs
    only the new token; with a causal mask the last position attends to the same keys, so the logits agree up to
    floating-point summation order (bit-identical in the parity tests on this machine)."""

    def __init__(self, decoder: BertLMHead, cross: CrossCache, cached: bool):
        self.decoder, self.cross, self.cached = decoder, cross, cached
        self.past: list[KeyValues] | None = None

    def __call__(self, input_ids: torch.Tensor, parent_rows: torch.Tensor | None) -> torch.Tensor:
        if not self.cached:
            return self.decoder.next_logits(input_ids, self.cross)
        if self.past is None:
            logits, self.past = self.decoder.extend(input_ids, None, self.cross)
            return logits
        past = [(k.index_select(0, parent_rows), v.index_select(0, parent_rows)) for k, v in self.past]
        logits, self.past = self.decoder.extend(input_ids[:, -1:], past, self.cross)
        return logits


def tie_parameters(target: nn.Module, source: nn.Module) -> None:
    """Make every Linear / LayerNorm of ``target`` use the weight and bias tensors of the same-named module of
    ``source`` (Tag2Text's ``tie_encoder_decoder_weights``: the tag encoder's first layers share the tagging head's
    cross-attention and feed-forward weights, each keeping its own head count)."""
    sources = dict(source.named_modules())
    for name, module in target.named_modules():
        if isinstance(module, (nn.Linear, nn.LayerNorm)):
            module.weight = sources[name].weight
            module.bias = sources[name].bias
