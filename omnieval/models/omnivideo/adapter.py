"""Omni-Video adapters between the MLLM side and the Wan2.1 cross-attention context.

* :class:`DMAdapter` (official ``DM_Adapter``): visual tokens ``[B, n, 1152]`` -> MLP ``1152 -> 4096 -> 4096``
  (GELU) -> pre-norm ``nn.Transformer`` (4+4 layers, FFN ``4*4096``, 8 heads, dropout 0) decoding 256 learnable
  queries -> ``[B, 256, 4096]``.  :func:`adapt_visual_tokens` applies the official image/video rule: an
  image uses only the first visual token (256 tokens); a video adapts each of the 4 tokens separately and
  concatenates them (1024 tokens).
* :class:`VisualContextAdapter`: VAE latents ``[16, F, h, w]`` of the edit source -> Conv3d patchify
  (patch ``(1, 4, 4)``, 16 -> Wan dim) -> LayerNorm (no affine) -> Linear -> Wan ``text_dim`` ->
  LayerNorm (no affine), flattened to ``[F*h/4*w/4, text_dim]`` tokens.

Parameter names equal the official ones so their state dicts load strictly.
"""
from __future__ import annotations

import torch
from torch import nn

from omnieval.models.omnivideo.vision_head import QueryTransformerConfig, mlp, query_transformer


class DMAdapter(nn.Module):
    def __init__(self, cfg: QueryTransformerConfig):
        super().__init__()
        self.config = cfg
        self.decoder_query = nn.Parameter(torch.zeros(1, cfg.num_queries, cfg.width))
        self.fc = mlp(cfg.in_channels, cfg.width)
        self.adapter = query_transformer(cfg)

    @classmethod
    def official(cls) -> "DMAdapter":
        return cls(QueryTransformerConfig(1152, 4096, 256))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.fc(tokens)
        return self.adapter(x, tgt=self.decoder_query.expand(x.shape[0], -1, -1))


def adapt_visual_tokens(adapter: DMAdapter, vision_tokens: torch.Tensor, is_image: bool) -> torch.Tensor:
    """``[B, n, C]`` vision-head tokens -> ``[B, Q, D]`` (image: first token) or ``[B, n*Q, D]`` (video)."""
    if is_image:
        return adapter(vision_tokens[:, :1])
    b, n, c = vision_tokens.shape
    out = adapter(vision_tokens.reshape(b * n, 1, c))
    return out.reshape(b, n * out.shape[1], out.shape[2])


class VisualContextAdapter(nn.Module):
    def __init__(self, patch_size: tuple[int, int, int] = (1, 4, 4), in_channels: int = 16, hidden_dim: int = 1536,
                 out_dim: int = 4096, eps: float = 1e-6):
        super().__init__()
        self.patch_size = tuple(patch_size)
        self.patch_embedding = nn.Conv3d(in_channels, hidden_dim, kernel_size=patch_size, stride=patch_size)
        self.norm1 = nn.LayerNorm(hidden_dim, eps=eps, elementwise_affine=False)
        self.projection = nn.Linear(hidden_dim, out_dim)
        self.norm2 = nn.LayerNorm(out_dim, eps=eps, elementwise_affine=False)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        """``[C, F, h, w]`` or ``[B, C, F, h, w]`` -> ``[B, N, out_dim]``."""
        if latents.dim() == 4:
            latents = latents.unsqueeze(0)
        x = self.patch_embedding(latents).flatten(2).transpose(1, 2)
        return self.norm2(self.projection(self.norm1(x)))
