"""CLIP backbones behind one small interface, loaded offline through the weight manifest.

A backbone turns uint8 frames (``N x H x W x 3`` RGB) and strings into **L2-normalised** features and
exposes ``logit_scale`` (``exp`` of the learned temperature, about 100 for trained CLIP models).

Backbone ids (:data:`BACKBONES`):

* ``openai/clip-vit-*`` -- a transformers ``CLIPModel`` + ``CLIPProcessor`` (manifest ``kind: hf``: a local
  directory given as ``path``, ``$OMNIEVAL_WEIGHTS_DIR/openai/clip-...`` or the offline HF cache).
  Preprocessing is the checkpoint's ``CLIPImageProcessor`` (transformers 5 torchvision backend): resize the
  short side to 224 (bicubic, antialiased), center crop 224, rescale 1/255, OpenAI mean/std -- exactly what
  torchmetrics ``CLIPScore`` feeds the model.  Text: the checkpoint's tokenizer, padded, truncated to 77
  tokens *keeping* the end token (OpenAI ``clip.tokenize(truncate=True)`` convention; torchmetrics instead
  cuts the ids, which differs only for captions longer than 77 tokens).
* ``open_clip:<arch>/<tag>`` -- an open_clip model (architecture name + a local state-dict file from the
  manifest, loaded with safetensors or ``torch.load(weights_only=True)``).  Preprocessing is open_clip's
  eval transform on PIL images: resize short side to the model size (bicubic), center crop, ToTensor,
  mean/std -- the same as OpenAI ``clip.load``'s transform used by MagicBrush.  Text: open_clip's tokenizer
  (77 tokens).
* ``open_clip:<arch>/file`` -- any registered open_clip architecture (QuickGELU, i.e. OpenAI layout) loaded
  from the state-dict file given as ``backbone_path`` (e.g. a small model built for a parity test).
* ``clip-tiny-random`` -- a deterministic random CLIPModel built in code (text/vision width 32, 2 layers,
  2 heads, 32 px images, patch 8, projection 16; ``torch.manual_seed(0)``) with the real 49408-token CLIP BPE
  bundled with open_clip.  Needs no file; its values are meaningless but reproducible (smoke runs, tests).
"""
from __future__ import annotations

import functools
import os
import pickle
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from omnieval.errors import ConfigError, MediaError, MissingWeightsError
from omnieval.media import as_uint8_frames

if TYPE_CHECKING:
    import torch

TINY_RANDOM = "clip-tiny-random"
TINY_SEED = 0


@dataclass(frozen=True)
class BackboneSpec:
    """How to build a backbone: ``kind`` hf|open_clip|tiny, the manifest weight id, the open_clip arch."""

    kind: str
    weight_id: str | None = None
    arch: str | None = None
    quick_gelu: bool = False
    #: manifest id of a separate processor (tokenizer + image processor) repo, e.g. PickScore's LAION ViT-H processor
    processor_id: str | None = None


BACKBONES: dict[str, BackboneSpec] = {
    TINY_RANDOM: BackboneSpec("tiny"),
    "openai/clip-vit-base-patch32": BackboneSpec("hf", "clip-vit-base-patch32"),
    "openai/clip-vit-base-patch16": BackboneSpec("hf", "clip-vit-base-patch16"),
    "openai/clip-vit-large-patch14": BackboneSpec("hf", "clip-vit-large-patch14"),
    "openai/clip-vit-large-patch14-336": BackboneSpec("hf", "clip-vit-large-patch14-336"),
    # OpenAI weights use QuickGELU; open_clip's plain arch names use nn.GELU, hence quick_gelu=True.
    # PickScore (a CLIP ViT-H/14 fine-tuned on Pick-a-Pic) with the processor of laion/CLIP-ViT-H-14-laion2B-s32B-b79K
    "yuvalkirstain/PickScore_v1": BackboneSpec("hf", "pickscore-v1", processor_id="clip-vit-h-14-laion2b-processor"),
    "open_clip:ViT-B-32/openai": BackboneSpec("open_clip", "open_clip-vit-b-32-openai", "ViT-B-32", True),
    "open_clip:ViT-L-14/openai": BackboneSpec("open_clip", "open_clip-vit-l-14-openai", "ViT-L-14", True),
}


def backbone_weights(backbone: str) -> list[str]:
    """Manifest ids a backbone id needs (empty for the built-in tiny model)."""
    spec = _spec(backbone)
    return [w for w in (spec.weight_id, spec.processor_id) if w]


def _spec(backbone: str) -> BackboneSpec:
    if backbone.startswith("open_clip:") and backbone.endswith("/file"):
        # any open_clip architecture (QuickGELU, OpenAI layout) from a local state dict given as backbone_path
        return BackboneSpec("open_clip", None, backbone[len("open_clip:"):-len("/file")], True)
    if backbone not in BACKBONES:
        from omnieval.errors import UnknownNameError

        raise UnknownNameError("CLIP backbone", backbone, sorted(BACKBONES))
    return BACKBONES[backbone]


def default_device() -> str:
    """:func:`omnieval.launch.default_device` (``cuda:<local rank>`` under a launcher when CUDA is available)."""
    from omnieval.launch import default_device as launch_default

    return launch_default()


class ClipBackbone(ABC):
    """Images and texts -> L2-normalised features of one CLIP model."""

    name: str
    batch_size: int = 64

    @property
    @abstractmethod
    def logit_scale(self) -> float:
        """``exp(logit_scale)`` of the model (CLIP's ``logits_per_image`` = logit_scale * cos)."""

    @abstractmethod
    def _image_features(self, frames: np.ndarray, projected: bool) -> "torch.Tensor":
        """Raw (unnormalised) features of one batch of uint8 frames."""

    @abstractmethod
    def _text_features(self, texts: list[str]) -> "torch.Tensor":
        """Raw (unnormalised) features of one batch of strings."""

    def encode_images(self, frames: np.ndarray | Sequence[np.ndarray], *, projected: bool = True) -> "torch.Tensor":
        """``N x D`` float32 normalised image features of uint8 RGB frames (``N x H x W x 3`` or a list).

        ``projected=False`` gives the vision tower's pooled output before the projection (V2VBench's
        ``CLIPVisionModel.pooler_output``).
        """
        import torch

        batches = _frame_batches(frames, self.batch_size)
        with torch.inference_mode():
            feats = torch.cat([self._image_features(b, projected) for b in batches]).float()
        return _normalise(feats)

    def encode_texts(self, texts: Sequence[str]) -> "torch.Tensor":
        """``N x D`` float32 normalised text features."""
        import torch

        texts = list(texts)
        if not texts or not all(isinstance(t, str) for t in texts):
            raise MediaError(f"{self.name}: expected a non-empty list of strings, got {texts!r:.80}")
        with torch.inference_mode():
            feats = torch.cat(
                [self._text_features(texts[i : i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]
            ).float()
        return _normalise(feats)


def _normalise(feats: "torch.Tensor") -> "torch.Tensor":
    return feats / feats.norm(p=2, dim=-1, keepdim=True)


def _frame_batches(frames: np.ndarray | Sequence[np.ndarray], batch_size: int) -> list[np.ndarray | list[np.ndarray]]:
    """Validate uint8 frames and split them into batches (a list of images may mix sizes)."""
    if isinstance(frames, np.ndarray) and frames.ndim == 4:
        arr = as_uint8_frames(frames, what="CLIP input")
        return [arr[i : i + batch_size] for i in range(0, len(arr), batch_size)]
    items = [as_uint8_frames(np.asarray(f)[None], what="CLIP input")[0] for f in frames]
    if not items:
        raise MediaError("CLIP input: no frames")
    return [items[i : i + batch_size] for i in range(0, len(items), batch_size)]


def _output_tensor(out: Any) -> "torch.Tensor":
    """transformers 5 returns an output object from ``get_*_features``; 4.x returns the tensor."""
    return out.pooler_output if hasattr(out, "pooler_output") else out


class HFClipBackbone(ClipBackbone):
    """A transformers ``CLIPModel`` with its ``CLIPProcessor`` (see the module docstring for conventions)."""

    def __init__(self, model: Any, processor: Any, name: str = "hf", device: str | None = None, preprocess: str = "default"):
        import torch

        self.name = name
        self.device = torch.device(device or default_device())
        self.model = model.eval().to(self.device)
        self.processor = processor
        self.max_length = int(getattr(model.config.text_config, "max_position_embeddings", 77))
        self.image_processor = pil_image_processor(processor.image_processor) if preprocess == "pil" else processor.image_processor
        self.preprocess = preprocess

    @classmethod
    def from_dir(cls, path: str | os.PathLike, name: str, device: str | None = None, preprocess: str = "default",
                 processor_path: str | os.PathLike | None = None) -> "HFClipBackbone":
        from transformers import CLIPModel, CLIPProcessor

        try:
            model = CLIPModel.from_pretrained(str(path), local_files_only=True)
            processor = CLIPProcessor.from_pretrained(str(processor_path or path), local_files_only=True)
        except OSError as exc:
            raise MissingWeightsError(f"CLIP backbone {name}: cannot load a CLIPModel from {path}: {exc}".splitlines()[0]) from exc
        return cls(model, processor, name=name, device=device, preprocess=preprocess)

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.detach().exp().item())

    def pixel_values(self, frames: np.ndarray | list[np.ndarray]) -> "torch.Tensor":
        """The processor's ``pixel_values`` for uint8 ``H x W x 3`` frames (as CHW tensors, like torchmetrics)."""
        import torch

        if self.preprocess == "pil":
            from PIL import Image

            return self.image_processor(images=[Image.fromarray(np.asarray(f)) for f in frames], return_tensors="pt")["pixel_values"]
        if isinstance(frames, np.ndarray):  # one same-size batch: a single NCHW tensor (same values, less overhead)
            images = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
        else:
            images = [torch.from_numpy(np.ascontiguousarray(f)).permute(2, 0, 1) for f in frames]
        return self.image_processor(images=images, return_tensors="pt")["pixel_values"]

    def _image_features(self, frames, projected):
        pixels = self.pixel_values(frames).to(self.device)
        if projected:
            return _output_tensor(self.model.get_image_features(pixel_values=pixels))
        return self.model.vision_model(pixel_values=pixels).pooler_output

    def _text_features(self, texts):
        tok = self.processor.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        out = self.model.get_text_features(
            input_ids=tok["input_ids"].to(self.device), attention_mask=tok["attention_mask"].to(self.device)
        )
        return _output_tensor(out)


def pil_image_processor(processor: Any) -> Any:
    """The PIL-backend twin of a ``CLIPImageProcessor`` (same size / crop / mean / std): transformers 5's
    ``CLIPImageProcessorPil``, whose pixel values equal transformers 4.x's default slow processor (the one the
    LOVEU-TGVE, V2VBench and FiVE scripts ran with); the torchvision backend differs by up to ~0.015."""
    from transformers.models.clip import CLIPImageProcessorPil

    skip = {"image_processor_type", "processor_class", "_processor_class"}
    return CLIPImageProcessorPil(**{k: v for k, v in processor.to_dict().items() if k not in skip})


class OpenClipBackbone(ClipBackbone):
    """An open_clip model with its eval transform and tokenizer (see the module docstring)."""

    def __init__(self, model: Any, transform: Any, tokenizer: Any, name: str = "open_clip", device: str | None = None):
        import torch

        self.name = name
        self.device = torch.device(device or default_device())
        self.model = model.eval().to(self.device)
        self.transform = transform
        self.tokenizer = tokenizer

    @classmethod
    def from_file(cls, arch: str, path: str | os.PathLike, name: str, quick_gelu: bool = False, device: str | None = None):
        import open_clip

        model, _, transform = open_clip.create_model_and_transforms(arch, pretrained=None, force_quick_gelu=quick_gelu)
        try:
            open_clip.load_checkpoint(model, str(path), weights_only=True)
        except (RuntimeError, OSError, ValueError, pickle.UnpicklingError) as exc:
            raise MissingWeightsError(f"CLIP backbone {name}: cannot load {path}: {exc}".splitlines()[0]) from exc
        return cls(model, transform, open_clip.get_tokenizer(arch), name=name, device=device)

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.detach().exp().item())

    def _image_features(self, frames, projected):
        import torch
        from PIL import Image

        if not projected:
            raise ConfigError(f"CLIP backbone {self.name}: features before the projection need a transformers backbone")
        pixels = torch.stack([self.transform(Image.fromarray(np.asarray(f))) for f in frames]).to(self.device)
        return self.model.encode_image(pixels)

    def _text_features(self, texts):
        return self.model.encode_text(self.tokenizer(texts).to(self.device))


# ---------------------------------------------------------------------------------------------
# The tiny deterministic backbone
# ---------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def clip_bpe_tokenizer():
    """A transformers ``CLIPTokenizer`` with the real 49408-token CLIP BPE bundled with open_clip (offline)."""
    from open_clip.tokenizer import SimpleTokenizer
    from transformers import CLIPTokenizer

    simple = SimpleTokenizer()
    renames = {"<start_of_text>": "<|startoftext|>", "<end_of_text>": "<|endoftext|>"}
    vocab = {renames.get(tok, tok): idx for tok, idx in simple.encoder.items()}
    merges = [pair for pair, _ in sorted(simple.bpe_ranks.items(), key=lambda kv: kv[1])]
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)


def tiny_clip_config():
    """The tiny ``CLIPConfig`` of ``clip-tiny-random`` (vocabulary of the real CLIP BPE)."""
    from transformers import CLIPConfig

    common = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=2)
    return CLIPConfig(
        text_config=dict(common, vocab_size=49408, max_position_embeddings=77),
        vision_config=dict(common, image_size=32, patch_size=8),
        projection_dim=16,
    )


def tiny_clip_model_and_processor(seed: int = TINY_SEED):
    """The seeded random tiny ``CLIPModel`` and a ``CLIPProcessor`` (32 px resize/crop, real BPE)."""
    import torch
    from transformers import CLIPImageProcessor, CLIPModel, CLIPProcessor

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CLIPModel(tiny_clip_config())
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return model.eval(), CLIPProcessor(image_processor=image_processor, tokenizer=clip_bpe_tokenizer())


# ---------------------------------------------------------------------------------------------
# Loading by id
# ---------------------------------------------------------------------------------------------
PREPROCESS = ("default", "pil")


def load_backbone(backbone: "str | ClipBackbone", path: str | os.PathLike | None = None, device: str | None = None,
                  preprocess: str = "default") -> ClipBackbone:
    """A backbone by id (see :data:`BACKBONES`), resolved offline; ``path`` overrides the manifest location.
    ``preprocess="pil"``: transformers backbones use the PIL image processor (:func:`pil_image_processor`).

    Backbone objects are passed through.  Loaded backbones are cached per (id, path, device, preprocess).
    """
    if isinstance(backbone, ClipBackbone):
        return backbone
    if preprocess not in PREPROCESS:
        raise ConfigError(f"CLIP backbone {backbone}: preprocess must be one of {PREPROCESS}, got {preprocess!r}")
    from omnieval.launch import resolve_device

    return _load_cached(backbone, str(path) if path else None, resolve_device(device), preprocess)


@functools.lru_cache(maxsize=4)
def _load_cached(backbone: str, path: str | None, device: str, preprocess: str = "default") -> ClipBackbone:
    from omnieval.metrics.weights import resolve

    spec = _spec(backbone)
    if spec.kind == "tiny":
        if path:
            return HFClipBackbone.from_dir(path, name=backbone, device=device, preprocess=preprocess)
        model, processor = tiny_clip_model_and_processor()
        return HFClipBackbone(model, processor, name=backbone, device=device, preprocess=preprocess)
    if spec.weight_id is None and not path:
        raise ConfigError(f"CLIP backbone {backbone}: give the state-dict file as backbone_path")
    located = Path(path) if spec.weight_id is None else Path(resolve(spec.weight_id, path))
    if spec.kind == "hf":
        processor = resolve(spec.processor_id) if spec.processor_id and not path else None
        return HFClipBackbone.from_dir(located, name=backbone, device=device, preprocess=preprocess, processor_path=processor)
    return OpenClipBackbone.from_file(spec.arch, located, name=backbone, quick_gelu=spec.quick_gelu, device=device)
