"""Shared stand-ins for CLIP/FID/editing tests: tiny random models saved to tmp dirs, random media."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def random_images(n: int, h: int = 40, w: int = 48, seed: int = 0) -> np.ndarray:
    """``n x h x w x 3`` uint8 noise with a per-image colour bias, so images differ in content."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(n, 1, 1, 3))
    noise = rng.integers(-60, 60, size=(n, h, w, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def save_tiny_clip(directory: Path, seed: int = 1) -> Path:
    """Save a seeded tiny ``CLIPModel`` + ``CLIPProcessor`` (like ``clip-tiny-random``, other seed) to ``directory``.

    The logit scale is set to ``log(100)`` so that ``logits_per_image`` behaves like a trained CLIP.
    """
    import math

    import torch

    from omnieval.metrics.clip_backbones import tiny_clip_model_and_processor

    model, processor = tiny_clip_model_and_processor(seed=seed)
    with torch.no_grad():
        model.logit_scale.fill_(math.log(100.0))
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


def torchmetrics_clip_loader(directory: Path):
    """A callable returning (model, processor) for torchmetrics ``CLIPScore``, with the transformers-5 fix.

    torchmetrics 1.9.0 expects ``get_image_features``/``get_text_features`` to return tensors; in
    transformers 5 they return output objects whose ``pooler_output`` is the projected embedding
    (Lightning-AI/torchmetrics#3407).  The subclass unwraps them; nothing else changes.
    """
    from transformers import CLIPModel, CLIPProcessor

    class _TensorFeaturesCLIP(CLIPModel):
        def get_image_features(self, *args, **kwargs):
            return super().get_image_features(*args, **kwargs).pooler_output

        def get_text_features(self, *args, **kwargs):
            return super().get_text_features(*args, **kwargs).pooler_output

    def load():
        return _TensorFeaturesCLIP.from_pretrained(directory).eval(), CLIPProcessor.from_pretrained(directory)

    return load
