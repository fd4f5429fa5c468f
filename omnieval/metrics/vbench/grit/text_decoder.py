"""GRiT's object-description decoder (``grit_src/grit/modeling/text/text_decoder.py`` + ``modeling_bert.py``),
inference only, and the WordPiece decoding of its tokens.

Network (parameter names as detectron2's ``roi_heads.text_decoder.textual.*``):

* ``object_feature_projection``: Linear(256 -> 768) + LayerNorm (eps 1e-5) on the 14x14 = 196 pooled object
  features (the "memory");
* ``embedding``: word + absolute position embeddings (1024 positions), LayerNorm eps 1e-8;
* ``transformer.encoder.layer[i]``: 6 post-norm BERT layers (12 heads, FFN 3072, exact erf GELU, LayerNorm eps
  1e-12) run on ``[memory; text]`` with GRiT's mask: memory tokens attend to memory only, text tokens to all memory
  and to the text up to themselves;
* ``output``: Linear(768 -> 30522) whose weight is tied to the word embeddings.

Because memory rows never see the text, their per-layer states do not depend on the text: they are computed once
and the text tokens are decoded with a key/value cache (mathematically the same as GRiT, which re-runs the whole
prefix at every step; float results agree to ~1e-6).

Decoding = GRiT's ``AutoRegressiveBeamSearch`` with beam size 1 (VBench's ``BEAM_SIZE=1``):

* the prefix is the task token (ObjectDet: ``[CLS]`` = 101, DenseCap: 104);
* every step takes the top-1 of ``log_softmax(logits)``; from the second generated token on, the logit of the
  previous token is first set to -10000 (no immediate repetition); an object that has emitted EOS (``[SEP]``, 102)
  is forced to EOS with log-probability 0; at most ``max_steps`` = 40 tokens including the task token, and decoding
  stops early when every object has emitted EOS;
* (GRiT stops right after the first step when every object's first token is EOS and then returns that step's
  log-probabilities unnormalised; the general rule below gives the same values and the same empty descriptions;
  only the shape of vbench's scores differs there: it broadcasts them to an N x N matrix, whose diagonal is ours);
* the returned log-probability is the sum over steps divided by the number of generated non-EOS tokens plus one if
  an EOS was emitted (at least 1).

Tokens after the task token are turned into text like transformers 4.33's ``BertTokenizer.decode(ids,
skip_special_tokens=True)`` (VBench pins transformers 4.33.2): special tokens dropped, ``" ".join`` then
``" ##"`` removed, then its default ``clean_up_tokenization`` (spaces before ``. ? ! ,`` and English
contractions removed).
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from omnieval.errors import MissingWeightsError

#: GRiT's task tokens: the first training task starts with [CLS], the i-th with 103 + i (TRAIN_TASK order)
TASK_TOKENS = {"ObjectDet": 101, "DenseCap": 104}


@dataclass(frozen=True)
class TextDecoderConfig:
    """Sizes and decoding constants (defaults: GRiT-B as VBench builds it)."""

    object_feature_size: int = 256  # FPN.OUT_CHANNELS
    vocab_size: int = 30522
    hidden_size: int = 768
    num_layers: int = 6
    num_heads: int = 12
    feedforward_size: int = 3072
    max_positions: int = 1024
    max_steps: int = 40  # tokens including the task token
    eos_token_id: int = 102  # [SEP]
    embedding_eps: float = 1e-8
    layer_norm_eps: float = 1e-12

    @classmethod
    def vbench(cls) -> "TextDecoderConfig":
        return cls()

    @classmethod
    def tiny(cls, object_feature_size: int = 64) -> "TextDecoderConfig":
        """Small random-weight stand-in (the vocabulary stays BERT-sized so the real special ids exist)."""
        return cls(object_feature_size=object_feature_size, hidden_size=32, num_layers=2, num_heads=2,
                   feedforward_size=64, max_positions=64, max_steps=12)


# ---------------------------------------------------------------------------------------------
# Network (names mirror GRiT's modules)
# ---------------------------------------------------------------------------------------------
class _Linear(nn.Module):
    """A container holding ``dense`` (and ``LayerNorm``), as BERT's ``*.output`` modules."""

    def __init__(self, n_in: int, n_out: int, eps: float | None):
        super().__init__()
        self.dense = nn.Linear(n_in, n_out)
        if eps is not None:
            self.LayerNorm = nn.LayerNorm(n_out, eps=eps)


class _SelfAttention(nn.Module):
    def __init__(self, hidden: int):
        super().__init__()
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)


class _Attention(nn.Module):
    def __init__(self, cfg: TextDecoderConfig):
        super().__init__()
        self.self = _SelfAttention(cfg.hidden_size)
        self.output = _Linear(cfg.hidden_size, cfg.hidden_size, cfg.layer_norm_eps)


class BertLayer(nn.Module):
    """Post-norm BERT layer; :meth:`forward` attends from ``x`` to cached keys/values (which include ``x``'s own)."""

    def __init__(self, cfg: TextDecoderConfig):
        super().__init__()
        self.num_heads = cfg.num_heads
        self.attention = _Attention(cfg)
        self.intermediate = _Linear(cfg.hidden_size, cfg.feedforward_size, None)
        self.output = _Linear(cfg.feedforward_size, cfg.hidden_size, cfg.layer_norm_eps)

    def heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, D) -> (B, heads, L, D / heads)."""
        b, n, d = x.shape
        return x.view(b, n, self.num_heads, d // self.num_heads).transpose(1, 2)

    def keys_values(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        att = self.attention.self
        return self.heads(att.key(x)), self.heads(att.value(x))

    def forward(self, x: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        att = self.attention
        q = self.heads(att.self.query(x))
        q = q / math.sqrt(q.shape[-1])
        scores = torch.matmul(q, keys.transpose(-1, -2))
        if mask is not None:
            scores = scores + mask
        context = torch.matmul(scores.softmax(dim=-1), values)
        b, _, n, _ = context.shape
        context = context.transpose(1, 2).reshape(b, n, -1)
        h = att.output.LayerNorm(att.output.dense(context) + x)
        inner = F.gelu(self.intermediate.dense(h))
        return self.output.LayerNorm(self.output.dense(inner) + h)


class _Encoder(nn.Module):
    def __init__(self, cfg: TextDecoderConfig):
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(cfg) for _ in range(cfg.num_layers))


class _Transformer(nn.Module):
    def __init__(self, cfg: TextDecoderConfig):
        super().__init__()
        self.encoder = _Encoder(cfg)


class _Embedding(nn.Module):
    def __init__(self, cfg: TextDecoderConfig):
        super().__init__()
        self.words = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.positions = nn.Embedding(cfg.max_positions, cfg.hidden_size)
        self.layer_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.embedding_eps)

    def forward(self, tokens: torch.Tensor, position: int) -> torch.Tensor:
        """Embeddings of ``tokens`` (B,) at one ``position`` -> (B, 1, D)."""
        pos = self.positions.weight[position]
        return self.layer_norm(self.words(tokens) + pos)[:, None]


class TextualHead(nn.Module):
    """GRiT's ``TransformerDecoderTextualHead`` (``decoder_type='bert_en'``, post-norm)."""

    def __init__(self, cfg: TextDecoderConfig):
        super().__init__()
        self.config = cfg
        self.object_feature_projection = nn.Sequential(nn.Linear(cfg.object_feature_size, cfg.hidden_size), nn.LayerNorm(cfg.hidden_size))
        self.embedding = _Embedding(cfg)
        self.transformer = _Transformer(cfg)
        self.output = nn.Linear(cfg.hidden_size, cfg.vocab_size)
        self.output.weight = self.embedding.words.weight

    @property
    def layers(self) -> nn.ModuleList:
        return self.transformer.encoder.layer

    def memory_cache(self, object_features: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per layer, the keys/values of the memory rows (which attend to memory only)."""
        h = self.object_feature_projection(object_features)
        cache = []
        for layer in self.layers:
            k, v = layer.keys_values(h)
            cache.append((k, v))
            h = layer(h, k, v)
        return cache


class GRiTTextDecoder(nn.Module):
    """``roi_heads.text_decoder``: holds ``textual``; :meth:`generate` is GRiT's greedy (beam 1) decoding."""

    def __init__(self, cfg: TextDecoderConfig = TextDecoderConfig()):
        super().__init__()
        self.config = cfg
        self.textual = TextualHead(cfg)

    @torch.no_grad()
    def generate(self, object_features: torch.Tensor, begin_tokens: Sequence[int]) -> "Generated":
        """Describe every object (``object_features`` (N, tokens, C)) once per task token in ``begin_tokens``;
        rows of the result are ordered task-major (all objects with the first token, then with the second, ...).
        Decoding the tasks together is the same as GRiT's separate calls (see the module docstring)."""
        cfg, textual = self.config, self.textual
        n, device = object_features.shape[0], object_features.device
        rows_total = n * len(begin_tokens)
        eos = cfg.eos_token_id
        memory = textual.memory_cache(object_features)
        obj = torch.arange(rows_total, device=device) % n  # object of each row
        heads = cfg.num_heads
        shape = (rows_total, heads, cfg.max_steps, cfg.hidden_size // heads)
        text_cache = [(memory[0][0].new_zeros(shape), memory[0][0].new_zeros(shape)) for _ in textual.layers]

        def step(position: int, last: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
            """Logits of the next token for ``rows`` whose token at ``position`` is ``last``."""
            h = textual.embedding(last, position)
            for layer, (mem_k, mem_v), (text_k, text_v) in zip(textual.layers, memory, text_cache):
                k, v = layer.keys_values(h)
                text_k[rows, :, position] = k[:, :, 0]
                text_v[rows, :, position] = v[:, :, 0]
                keys = torch.cat([mem_k[obj[rows]], text_k[rows, :, : position + 1]], dim=2)
                values = torch.cat([mem_v[obj[rows]], text_v[rows, :, : position + 1]], dim=2)
                h = layer(h, keys, values)
            return textual.output(h[:, 0]).float()

        tokens = torch.tensor(list(begin_tokens), dtype=torch.long, device=device).repeat_interleave(n)[:, None]
        total = torch.zeros(rows_total, device=device)
        while tokens.shape[1] < cfg.max_steps:
            last = tokens[:, -1]
            active = torch.nonzero(last != eos).squeeze(1)
            if active.numel() == 0:
                break
            # an object that emitted EOS is forced to EOS with log-probability 0: only the others are computed
            logits = step(tokens.shape[1] - 1, last[active], active)
            if tokens.shape[1] > 1:  # no repetition of the previous token (not applied to the task token)
                logits = logits.scatter(1, last[active, None], -10000.0)
            logprob, token = F.log_softmax(logits, dim=1).topk(1)
            new = torch.full((rows_total,), eos, dtype=torch.long, device=device)
            new[active] = token[:, 0]
            total[active] += logprob[:, 0]
            tokens = torch.cat([tokens, new[:, None]], dim=1)
        num_valid = (tokens != eos).sum(dim=1) + (tokens == eos).any(dim=1) - 1
        return Generated(tokens, total / num_valid.clamp(min=1))


class Generated(NamedTuple):
    """Decoder output: ``tokens`` (rows, steps) with the task token first and EOS after the end; ``logprobs``
    (rows,) as GRiT scores a description."""

    tokens: torch.Tensor
    logprobs: torch.Tensor

    @property
    def text_tokens(self) -> torch.Tensor:
        """The tokens after the task token (those turned into the description)."""
        return self.tokens[:, 1:]


# ---------------------------------------------------------------------------------------------
# WordPiece decoding (transformers 4.33 BertTokenizer.decode semantics)
# ---------------------------------------------------------------------------------------------
SPECIAL_TOKENS = ("[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]")
_CLEANUP = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
            (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"))


class WordPieceDecoder:
    """Token ids -> text with a BERT ``vocab.txt`` (one token a line, id = line number)."""

    def __init__(self, vocab: list[str]):
        index = {token: i for i, token in enumerate(vocab)}
        self.id_to_token = {i: token for token, i in index.items()}
        self.special_ids = {index[t] for t in SPECIAL_TOKENS if t in index}

    @classmethod
    def from_dir(cls, path: str | os.PathLike) -> "WordPieceDecoder":
        """From a directory holding ``vocab.txt`` (a local copy or HF-cache snapshot of bert-base-uncased) or the
        file itself."""
        path = Path(path)
        vocab_file = path / "vocab.txt" if path.is_dir() else path
        if not vocab_file.is_file():
            raise MissingWeightsError(f"GRiT tokenizer: no vocab.txt at {vocab_file} (bert-base-uncased vocabulary)")
        with open(vocab_file, encoding="utf-8") as f:
            return cls([line.rstrip("\n") for line in f.readlines()])

    def decode(self, ids: list[int]) -> str:
        tokens = [self.id_to_token.get(i, "[UNK]") for i in ids if i not in self.special_ids]
        text = " ".join(tokens).replace(" ##", "").strip()
        for old, new in _CLEANUP:
            text = text.replace(old, new)
        return text
