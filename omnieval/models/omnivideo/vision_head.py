"""Omni-Video vision head: LLM last hidden states -> 4 continuous visual tokens (SigLIP width 1152).

Architecture of the official ``VisionHead`` (OV1 ``vila_with_vision_head.py``): an MLP
``llm_hidden -> width -> width`` (GELU) maps every hidden state, then a pre-norm ``torch.nn.Transformer``
(``d_model=width``, 4 encoder + 4 decoder layers, FFN ``4*width``, dropout 0, 8 heads) decodes
``num_queries`` learnable queries against them.  Parameter names (``fc``, ``visionHeadAdapter``,
``decoder_query``) equal the official ones, so its ``pytorch_model.bin`` loads strictly.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class QueryTransformerConfig:
    """Shape of an MLP + query-decoding transformer (vision head and DM adapter share the design)."""

    in_channels: int
    width: int
    num_queries: int
    num_layers: int = 4
    num_heads: int = 8
    ffn_mult: int = 4

    def to_dict(self) -> dict:
        return asdict(self)


def mlp(in_channels: int, width: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_channels, width), nn.GELU(), nn.Linear(width, width))


def query_transformer(cfg: QueryTransformerConfig) -> nn.Transformer:
    return nn.Transformer(
        d_model=cfg.width,
        nhead=cfg.num_heads,
        num_encoder_layers=cfg.num_layers,
        num_decoder_layers=cfg.num_layers,
        dim_feedforward=cfg.width * cfg.ffn_mult,
        dropout=0.0,
        batch_first=True,
        norm_first=True,
    )


def infer_query_config(state: dict[str, torch.Tensor], transformer_key: str, num_heads: int = 8) -> QueryTransformerConfig:
    """Widths, query count and depth read from a state dict's shapes (heads cannot be read: given)."""
    in_channels = state["fc.0.weight"].shape[1]
    width = state["fc.2.weight"].shape[0]
    num_queries = state["decoder_query"].shape[1]
    prefix = f"{transformer_key}.encoder.layers."
    depth = 1 + max(int(k[len(prefix):].split(".")[0]) for k in state if k.startswith(prefix))
    ffn = state[f"{prefix}0.linear1.weight"].shape[0]
    return QueryTransformerConfig(in_channels, width, num_queries, depth, num_heads, ffn // width)


class VisionHead(nn.Module):
    """``[B, L, llm_hidden]`` hidden states -> ``[B, num_queries, width]`` visual tokens."""

    def __init__(self, cfg: QueryTransformerConfig):
        super().__init__()
        self.config = cfg
        self.decoder_query = nn.Parameter(torch.zeros(1, cfg.num_queries, cfg.width))
        self.visionHeadAdapter = query_transformer(cfg)  # noqa: N815 - official parameter name
        self.fc = mlp(cfg.in_channels, cfg.width)

    @classmethod
    def official(cls, llm_hidden_size: int = 4096) -> "VisionHead":
        return cls(QueryTransformerConfig(llm_hidden_size, 1152, 4))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        x = self.fc(hidden_states)
        return self.visionHeadAdapter(src=x, tgt=self.decoder_query.expand(x.shape[0], -1, -1))
