"""Structure distance (Splice / PIE-Bench, as FiVE-Bench's ``metrics_calculator.py`` computes it): the mean squared
difference between the self-similarity matrices of the DINO ViT **keys** of two images.

Per image (``LossG.global_transform`` + ``VitExtractor.get_keys_self_sim_from_input``):

1. the image as float ``3 x H x W`` with values **0-255** (FiVE does not divide by 255);
2. torchvision ``Resize(224, max_size=480)`` on the tensor (short side 224, long side capped at 480; bilinear with
   antialiasing, torchvision's default for tensors since 0.17);
3. ImageNet ``Normalize`` (mean 0.485/0.456/0.406, std 0.229/0.224/0.225) applied to those 0-255 values;
4. DINO's token preparation: patch embedding (conv, stride = patch; a remainder is dropped), the class token, and
   the position embedding resampled **as DINO's own** ``interpolate_pos_encoding`` does (unchanged only when the
   token count matches and the image is square; else bicubic ``interpolate`` of the square grid with
   ``scale_factor = (rows + 0.1) / sqrt(N), (cols + 0.1) / sqrt(N)``) -- not timm's resampler;
5. the blocks before ``layer`` (FiVE: 11, the last block of ViT-B/8), then that block's ``qkv`` projection of its
   normalised input; the keys are its middle third (all heads concatenated, ``T x D`` with the class token);
6. the cosine self-similarity ``K K^T / max(|k_i| |k_j|, 1e-8)``.

``structure_distance(a, b) = mean((S(a) - S(b))^2)`` (``F.mse_loss``).  The backbone is a timm
``VisionTransformer`` with DINO's parameter names (:func:`omnieval.metrics.editing.load_dino`; FiVE:
``dino_vitb8``).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def dino_input(image: np.ndarray, size: int = 224, max_size: int = 480) -> torch.Tensor:
    """Steps 1-3 of the module docstring: ``1 x 3 x h x w`` float32 from a float or uint8 ``H x W x 3`` image (0-255)."""
    import torch
    from torchvision import transforms

    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)
    x = transforms.Resize(size, max_size=max_size)(x)
    return transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)(x)[None]


def dino_pos_embed(pos_embed: torch.Tensor, rows: int, cols: int, height: int, width: int) -> torch.Tensor:
    """DINO's ``interpolate_pos_encoding`` for a ``rows x cols`` patch grid of a ``height x width`` input."""
    import torch

    n = pos_embed.shape[1] - 1
    if rows * cols == n and height == width:
        return pos_embed
    side, dim = int(math.sqrt(n)), pos_embed.shape[-1]
    grid = pos_embed[:, 1:].reshape(1, side, side, dim).permute(0, 3, 1, 2)
    grid = torch.nn.functional.interpolate(grid, scale_factor=((rows + 0.1) / math.sqrt(n), (cols + 0.1) / math.sqrt(n)),
                                           mode="bicubic")
    if grid.shape[-2:] != (rows, cols):
        raise RuntimeError(f"DINO position embedding resampled to {tuple(grid.shape[-2:])}, expected {(rows, cols)}")
    return torch.cat((pos_embed[:, :1], grid.permute(0, 2, 3, 1).reshape(1, -1, dim)), dim=1)


def dino_keys(model: torch.nn.Module, x: torch.Tensor, layer: int = 11) -> torch.Tensor:
    """Steps 4-5: the ``T x D`` keys of block ``layer`` for a normalised ``1 x 3 x H x W`` input."""
    import torch

    if not 0 <= layer < len(model.blocks):
        raise ValueError(f"DINO layer {layer} out of range: the model has {len(model.blocks)} blocks")
    proj = model.patch_embed.proj
    with torch.inference_mode():
        x = x.to(proj.weight.device, proj.weight.dtype)
        patches = proj(x)
        rows, cols = patches.shape[-2:]
        tokens = torch.cat((model.cls_token.expand(1, -1, -1), patches.flatten(2).transpose(1, 2)), dim=1)
        tokens = tokens + dino_pos_embed(model.pos_embed, rows, cols, x.shape[-2], x.shape[-1])
        for block in model.blocks[:layer]:
            tokens = block(tokens)
        block = model.blocks[layer]
        qkv = block.attn.qkv(block.norm1(tokens))[0]
        dim = qkv.shape[-1] // 3
        return qkv[:, dim:2 * dim].float()


def self_similarity(keys: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Step 6: cosine self-similarity of the rows of ``keys`` (norm product clamped at ``eps``)."""
    norms = keys.norm(dim=1, keepdim=True)
    return keys @ keys.T / (norms @ norms.T).clamp(min=eps)


def structure_distance(model: torch.nn.Module, a: np.ndarray, b: np.ndarray, layer: int = 11) -> float:
    """``mean((S(a) - S(b))^2)`` of two ``H x W x 3`` images with values 0-255 (the module docstring)."""
    sa = self_similarity(dino_keys(model, dino_input(a), layer))
    sb = self_similarity(dino_keys(model, dino_input(b), layer))
    if sa.shape != sb.shape:
        raise ValueError(f"structure distance: the images give {sa.shape[0]} and {sb.shape[0]} tokens (sizes differ)")
    return float(((sa - sb) ** 2).mean())
