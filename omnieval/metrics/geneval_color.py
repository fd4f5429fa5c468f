"""GenEval's colour classifier: zero-shot open_clip over 10 colours on masked object crops.

Conventions (djghosh13/geneval ``evaluation/evaluate_images.py``, clip_benchmark 1.4.0):

* model: open_clip ``ViT-L-14`` with the ``openai`` weights (QuickGELU), loaded from a local file
  (manifest id ``open_clip-vit-l-14-openai``, shared with the CLIP metrics); preprocessing = open_clip's
  eval transform (shortest side to 224 bicubic, centre crop 224, CLIP mean/std).
* classes: :data:`COLORS`; templates: :data:`TEMPLATES` (``{cls}`` is the GenEval class name).  The
  classifier weight of a colour is the mean of the L2-normalised template text embeddings,
  re-normalised; logits = 100 * normalised image embedding @ weights; prediction = argmax.
* crop: the image is composited onto a plain ``bgcolor`` (``#999``) background through the
  instance mask (pixels outside the mask become grey), then cropped to the box with PIL's
  ``Image.crop`` (coordinates rounded half-to-even).  ``bgcolor="original"`` keeps the background;
  ``crop=False`` classifies the whole (masked) image.
* precision: fp32.  The reference runs under CUDA fp16 autocast (clip_benchmark ``amp=True``), so on GPU
  its logits differ in the last bits and near-ties can flip.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageColor

from omnieval.errors import MediaError

COLORS: tuple[str, ...] = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white")
TEMPLATES: tuple[str, ...] = ("a photo of a {c} {cls}", "a photo of a {c}-colored {cls}", "a photo of a {c} object")


def object_crop(image: np.ndarray, box: Sequence[float], mask: np.ndarray | None, *, bgcolor: str = "#999",
                crop: bool = True) -> Image.Image:
    """The PIL image GenEval classifies for one object (see the module docstring)."""
    pil = Image.fromarray(image).convert("RGB")
    if mask is not None:
        if tuple(mask.shape) != image.shape[:2]:
            raise MediaError(f"geneval colour: mask shape {tuple(mask.shape)} != image shape {image.shape[:2]}")
        background = image if bgcolor == "original" else np.broadcast_to(
            np.asarray(ImageColor.getrgb(bgcolor), np.uint8), image.shape)
        pil = Image.fromarray(np.where(np.asarray(mask, bool)[..., None], image, background).astype(np.uint8))
    if crop:
        pil = pil.crop(tuple(float(v) for v in box[:4]))
    return pil


class ColorClassifier:
    """Zero-shot colour classification of detected objects (one text classifier per class name, cached)."""

    def __init__(self, model, preprocess: Callable[[Image.Image], Any], tokenizer: Callable, *,
                 colors: Sequence[str] = COLORS, templates: Sequence[str] = TEMPLATES, bgcolor: str = "#999",
                 crop: bool = True, device: str = "cpu", batch_size: int = 16):
        self.model = model.eval().to(device)
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.colors = tuple(colors)
        self.templates = tuple(templates)
        self.bgcolor = bgcolor
        self.crop = crop
        self.device = device
        self.batch_size = batch_size
        self._text: dict[str, Any] = {}

    def text_weights(self, classname: str):
        """``D x len(colors)`` zero-shot weights for objects of ``classname``."""
        import torch
        import torch.nn.functional as F

        if classname not in self._text:
            columns = []
            with torch.no_grad():
                for color in self.colors:
                    texts = [t.format(c=color, cls=classname) for t in self.templates]
                    emb = F.normalize(self.model.encode_text(self.tokenizer(texts).to(self.device)).float(), dim=-1)
                    mean = emb.mean(dim=0)
                    columns.append(mean / mean.norm())
            self._text[classname] = torch.stack(columns, dim=1)
        return self._text[classname]

    def logits(self, image: np.ndarray, objects: Sequence, classname: str):
        """``N x len(colors)`` logits (100 * cosine) for the objects' crops (``objects``: (box, score, mask))."""
        import torch
        import torch.nn.functional as F

        weights = self.text_weights(classname)
        crops = [object_crop(image, obj[0], obj[2] if len(obj) > 2 else None, bgcolor=self.bgcolor, crop=self.crop)
                 for obj in objects]
        out = []
        with torch.no_grad():
            for start in range(0, len(crops), self.batch_size):
                batch = torch.stack([self.preprocess(c) for c in crops[start:start + self.batch_size]]).to(self.device)
                feats = F.normalize(self.model.encode_image(batch).float(), dim=-1)
                out.append(100.0 * feats @ weights)
        return torch.cat(out) if out else torch.zeros((0, len(self.colors)))

    def classify(self, image: np.ndarray, objects: Sequence, classname: str) -> list[str]:
        """The predicted colour name of each object."""
        return [self.colors[i] for i in self.logits(image, objects, classname).argmax(dim=1).tolist()]


def load_color_classifier(weights_path: str | os.PathLike, *, arch: str = "ViT-L-14", quick_gelu: bool = True,
                          device: str = "cpu", **kwargs: Any) -> ColorClassifier:
    """Build open_clip ``arch`` from a local state-dict file (safetensors or ``weights_only`` torch.load)."""
    from omnieval.metrics.clip_backbones import OpenClipBackbone

    backbone = OpenClipBackbone.from_file(arch, weights_path, name=f"open_clip:{arch}", quick_gelu=quick_gelu, device=device)
    return ColorClassifier(backbone.model, backbone.transform, backbone.tokenizer, device=device, **kwargs)
