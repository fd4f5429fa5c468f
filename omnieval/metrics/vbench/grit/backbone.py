"""GRiT's backbone: a ViTDet ViT (window + global attention blocks with decomposed relative positions) and the
simple feature pyramid GRiT builds on its stride-16 output (``grit_src/grit/modeling/backbone/vit.py``:
``ViT``, ``ViT_FPN``, ``build_vit_fpn_backbone``; top block ``LastLevelP6P7_P5`` from CenterNet2).

Parameter names mirror the detectron2 modules (``bottom_up.blocks.0.attn.qkv.weight``, ``fpn_stride8_conv1.weight``,
``top_block.p6.weight``, ...) so GRiT's checkpoint loads without renaming.  Inference only: drop path is the
identity, activation checkpointing is irrelevant, and residual conv blocks are not built (no GRiT variant uses them).

Forward of the pyramid, for the ViT output ``x`` (stride 16, ``embed_dim`` channels):

* p3 (stride 8):  ConvTranspose2d(2, stride 2, no bias) -> 1x1 conv -> LayerNorm -> 3x3 conv -> LayerNorm
* p4 (stride 16): 1x1 conv -> LayerNorm -> 3x3 conv -> LayerNorm
* p5 (stride 32): MaxPool2d(2, 2) -> 1x1 conv -> LayerNorm -> 3x3 conv -> LayerNorm
* p6 = Conv3x3/2(p5), p7 = Conv3x3/2(relu(p6))

(convs without bias, LayerNorms over channels with eps 1e-5; the ViT's own LayerNorms use eps 1e-6.)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class BackboneConfig:
    """Sizes of the ViT and its pyramid (defaults: GRiT-B, ``build_vit_fpn_backbone`` with FPN.OUT_CHANNELS 256)."""

    img_size: int = 1024  # sets the global blocks' relative-position table length (2 * img/patch - 1)
    patch_size: int = 16
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    window_size: int = 14
    window_block_indexes: tuple[int, ...] = (0, 1, 3, 4, 6, 7, 9, 10)
    pretrain_img_size: int = 224  # absolute position table: (pretrain/patch)^2 (+1 cls token)
    pretrain_use_cls_token: bool = True
    vit_norm_eps: float = 1e-6
    out_channels: int = 256
    strides: tuple[int, ...] = (8, 16, 32, 64, 128)

    @classmethod
    def vbench(cls) -> "BackboneConfig":
        """GRiT-B as VBench builds it (GRiT_B_DenseCap_ObjectDet.yaml)."""
        return cls()

    @classmethod
    def tiny(cls) -> "BackboneConfig":
        """A small random-weight stand-in for tests (same structure: window and global blocks, 5 levels)."""
        return cls(img_size=128, embed_dim=32, depth=3, num_heads=2, window_size=4, window_block_indexes=(0, 2),
                   pretrain_img_size=64, out_channels=64)

    @property
    def size_divisibility(self) -> int:
        return self.strides[2]

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f"p{int(math.log2(s))}" for s in self.strides)


def window_partition(x: torch.Tensor, window: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """(B, H, W, C) -> (B * nW, window, window, C), zero-padding H and W up to multiples of ``window``."""
    b, h, w, c = x.shape
    ph, pw = -h % window, -w % window
    if ph or pw:
        x = F.pad(x, (0, 0, 0, pw, 0, ph))
    hp, wp = h + ph, w + pw
    x = x.view(b, hp // window, window, wp // window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, window, window, c), (hp, wp)


def window_unpartition(x: torch.Tensor, window: int, padded: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`window_partition`, cropping the padding away."""
    (hp, wp), (h, w) = padded, size
    b = x.shape[0] // (hp * wp // window // window)
    x = x.view(b, hp // window, wp // window, window, window, -1).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, hp, wp, -1)[:, :h, :w, :]


def relative_position_table(q_size: int, k_size: int, table: torch.Tensor) -> torch.Tensor:
    """(q_size, k_size, C) embeddings for every query/key offset; the table is linearly resampled to
    ``2 * max(q, k) - 1`` rows when its length differs (ViTDet ``get_rel_pos``)."""
    length = int(2 * max(q_size, k_size) - 1)
    if table.shape[0] != length:
        table = F.interpolate(table.reshape(1, table.shape[0], -1).permute(0, 2, 1), size=length, mode="linear")
        table = table.reshape(-1, length).permute(1, 0)
    q_coords = torch.arange(q_size)[:, None] * max(k_size / q_size, 1.0)
    k_coords = torch.arange(k_size)[None, :] * max(q_size / k_size, 1.0)
    offsets = (q_coords - k_coords) + (k_size - 1) * max(q_size / k_size, 1.0)
    return table[offsets.long()]


def absolute_positions(table: torch.Tensor, has_cls_token: bool, h: int, w: int) -> torch.Tensor:
    """The pretraining position table (1, N(+1), C) as (1, h, w, C), bicubic-resized when the grid differs."""
    if has_cls_token:
        table = table[:, 1:]
    side = int(math.sqrt(table.shape[1]))
    if side * side != table.shape[1]:
        raise ValueError(f"absolute position table of {table.shape[1]} entries is not square")
    grid = table.reshape(1, side, side, -1)
    if side == h and side == w:
        return grid
    grid = F.interpolate(grid.permute(0, 3, 1, 2), size=(h, w), mode="bicubic", align_corners=False)
    return grid.permute(0, 2, 3, 1)


class PatchEmbed(nn.Module):
    def __init__(self, patch: int, in_chans: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)  # B, H, W, C


class Attention(nn.Module):
    """Multi-head self-attention over a (B, H, W, C) grid with decomposed relative position biases."""

    def __init__(self, dim: int, num_heads: int, rel_size: tuple[int, int]):
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.rel_pos_h = nn.Parameter(torch.zeros(2 * rel_size[0] - 1, head_dim))
        self.rel_pos_w = nn.Parameter(torch.zeros(2 * rel_size[1] - 1, head_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, _ = x.shape
        qkv = self.qkv(x).reshape(b, h * w, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.reshape(3, b * self.num_heads, h * w, -1).unbind(0)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        rh = relative_position_table(h, h, self.rel_pos_h)
        rw = relative_position_table(w, w, self.rel_pos_w)
        grid_q = q.reshape(-1, h, w, q.shape[-1])
        bias_h = torch.einsum("bhwc,hkc->bhwk", grid_q, rh)
        bias_w = torch.einsum("bhwc,wkc->bhwk", grid_q, rw)
        attn = (attn.view(-1, h, w, h, w) + bias_h[:, :, :, :, None] + bias_w[:, :, :, None, :]).view(-1, h * w, h * w)
        out = attn.softmax(dim=-1) @ v
        out = out.view(b, self.num_heads, h, w, -1).permute(0, 2, 3, 1, 4).reshape(b, h, w, -1)
        return self.proj(out)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block; ``window > 0`` attends within (zero-padded) windows, else globally."""

    def __init__(self, cfg: BackboneConfig, window: int):
        super().__init__()
        grid = cfg.img_size // cfg.patch_size
        self.window = window
        self.norm1 = nn.LayerNorm(cfg.embed_dim, eps=cfg.vit_norm_eps)
        self.attn = Attention(cfg.embed_dim, cfg.num_heads, (window, window) if window else (grid, grid))
        self.norm2 = nn.LayerNorm(cfg.embed_dim, eps=cfg.vit_norm_eps)
        self.mlp = Mlp(cfg.embed_dim, int(cfg.embed_dim * cfg.mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm1(x)
        if self.window:
            size = (y.shape[1], y.shape[2])
            y, padded = window_partition(y, self.window)
            y = window_unpartition(self.attn(y), self.window, padded, size)
        else:
            y = self.attn(y)
        x = x + y
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    """ViTDet's plain ViT: patch embedding + resized absolute positions + blocks; returns (B, C, H/16, W/16)."""

    def __init__(self, cfg: BackboneConfig):
        super().__init__()
        self.pretrain_use_cls_token = cfg.pretrain_use_cls_token
        self.patch_embed = PatchEmbed(cfg.patch_size, 3, cfg.embed_dim)
        positions = (cfg.pretrain_img_size // cfg.patch_size) ** 2 + int(cfg.pretrain_use_cls_token)
        self.pos_embed = nn.Parameter(torch.zeros(1, positions, cfg.embed_dim))
        windows = set(cfg.window_block_indexes)
        self.blocks = nn.ModuleList(Block(cfg, cfg.window_size if i in windows else 0) for i in range(cfg.depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        x = x + absolute_positions(self.pos_embed, self.pretrain_use_cls_token, x.shape[1], x.shape[2])
        for block in self.blocks:
            x = block(x)
        return x.permute(0, 3, 1, 2)


class LastLevelP6P7(nn.Module):
    """CenterNet2's ``LastLevelP6P7_P5``: p6 = conv3x3/2(p5), p7 = conv3x3/2(relu(p6))."""

    def __init__(self, channels: int):
        super().__init__()
        self.p6 = nn.Conv2d(channels, channels, 3, 2, 1)
        self.p7 = nn.Conv2d(channels, channels, 3, 2, 1)

    def forward(self, p5: torch.Tensor) -> list[torch.Tensor]:
        p6 = self.p6(p5)
        return [p6, self.p7(F.relu(p6))]


def _channel_norm(norm: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    return norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ViTFPN(nn.Module):
    """GRiT's ``ViT_FPN``: returns ``{"p3": ..., "p7": ...}`` (names from the strides)."""

    def __init__(self, cfg: BackboneConfig):
        super().__init__()
        self.config = cfg
        dim, out = cfg.embed_dim, cfg.out_channels
        self.bottom_up = ViT(cfg)
        self.top_block = LastLevelP6P7(out)
        self.maxpool = nn.MaxPool2d(2, stride=2)
        self.fpn_stride_16_8 = nn.ConvTranspose2d(dim, dim, 2, stride=2, bias=False)
        for stride in (8, 16, 32):
            setattr(self, f"fpn_stride{stride}_conv1", nn.Conv2d(dim, out, kernel_size=1, bias=False))
            setattr(self, f"fpn_stride{stride}_norm1", nn.LayerNorm(out))
            setattr(self, f"fpn_stride{stride}_conv2", nn.Conv2d(out, out, kernel_size=3, padding=1, bias=False))
            setattr(self, f"fpn_stride{stride}_norm2", nn.LayerNorm(out))

    @property
    def size_divisibility(self) -> int:
        return self.config.size_divisibility

    def _level(self, stride: int, x: torch.Tensor) -> torch.Tensor:
        x = _channel_norm(getattr(self, f"fpn_stride{stride}_norm1"), getattr(self, f"fpn_stride{stride}_conv1")(x))
        return _channel_norm(getattr(self, f"fpn_stride{stride}_norm2"), getattr(self, f"fpn_stride{stride}_conv2")(x))

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.bottom_up(image)
        p3 = self._level(8, self.fpn_stride_16_8(x))
        p4 = self._level(16, x)
        p5 = self._level(32, self.maxpool(x))
        levels = [p3, p4, p5, *self.top_block(p5)]
        return dict(zip(self.config.feature_names, levels))


def build_backbone(cfg: BackboneConfig = BackboneConfig()) -> ViTFPN:
    """GRiT's ``build_vit_fpn_backbone`` for the given sizes (random weights; load a checkpoint on top)."""
    return ViTFPN(cfg)
