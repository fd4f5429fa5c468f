"""Image/video editing metrics, MagicBrush conventions (OSU-NLP-Group/MagicBrush ``evaluation/image_eval.py``).

Inputs (:class:`~omnieval.metrics.base.MetricInput`): ``output`` = the edited image or video, ``reference``
= the ground-truth edited image (when the benchmark has one), ``source`` = the input image, ``prompt`` =
the target caption (CLIP-T) or instruction.  Videos are compared frame by frame (frames paired by index, or
a single reference image against every frame); an item's score is the mean over its frames, the metric the
mean over items.

* ``edit_l1`` / ``edit_l2``: ``mean |x - y|`` / ``mean (x - y)^2`` (``nn.L1Loss`` / ``nn.MSELoss``) on
  ToTensor values in [0, 1], the output first resized to the reference size with PIL bicubic (Pillow's
  default filter for ``Image.resize``, which MagicBrush calls without a filter).
* ``edit_psnr``: ``10 log10(1 / MSE)`` on the same [0, 1] values (torchmetrics ``peak_signal_noise_ratio``
  with ``data_range=1``); identical images give ``inf``.
* ``edit_ssim``: torchmetrics ``structural_similarity_index_measure`` -- Gaussian window 11, sigma 1.5,
  ``data_range=1``, k1 0.01, k2 0.03, mean over the map -- on the same values.
* ``edit_clip_i``: cosine of CLIP image features, output vs reference; ``edit_clip_t``: cosine of the
  output's image features and the caption's text features (scale 1, no clamp).  Both default to OpenAI
  ViT-B/32 (``open_clip:ViT-B-32/openai``, transform = OpenAI ``clip.load``'s: bicubic resize 224, center
  crop, CLIP mean/std).
* ``edit_dino``: cosine of DINO ViT-S/16 CLS features (``dino_vits16``: last-layer norm, token 0), output vs
  reference; transform: PIL resize of the short side to 256 (bicubic), center crop 224, ToTensor, ImageNet
  mean/std.
* Temporal consistency of edited videos: ``clip_frame_consistency`` (:mod:`omnieval.metrics.clip`).
"""
from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from omnieval.errors import MediaError, MissingWeightsError
from omnieval.media import as_frames
from omnieval.metrics.base import MeanMetric, MetricInput
from omnieval.metrics.clip import ClipI, ClipIOptions, ClipT, ClipTOptions, check_choice
from omnieval.metrics.paired import PairedSizes, sizes_note
from omnieval.registry import register_metric

if TYPE_CHECKING:
    import torch

MAGICBRUSH_CLIP = "open_clip:ViT-B-32/openai"


# ---------------------------------------------------------------------------------------------
# Pixel metrics
# ---------------------------------------------------------------------------------------------
def resize_to(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """PIL bicubic resize of a uint8 image to ``height x width`` (unchanged when already that size)."""
    from PIL import Image

    if image.shape[:2] == (height, width):
        return image
    return np.asarray(Image.fromarray(image).resize((width, height), Image.BICUBIC))


def paired_frames(output: Any, reference: Any, what: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """Frame pairs (output resized to the reference size): index-paired, or one reference for all frames."""
    if output is None or reference is None:
        raise MediaError(f"{what}: needs both an output and a reference")
    try:
        out, ref = as_frames(output), as_frames(reference)
    except MediaError as exc:
        raise MediaError(f"{what}: {exc}") from exc
    if len(ref) == 1:
        ref = np.repeat(ref, len(out), axis=0)
    if len(out) != len(ref):
        raise MediaError(f"{what}: {len(out)} output frames but {len(ref)} reference frames")
    return [(resize_to(o, *r.shape[:2]), r) for o, r in zip(out, ref)]


def _unit(image: np.ndarray) -> np.ndarray:
    """ToTensor values: float in [0, 1] (kept ``H x W x 3``)."""
    return image.astype(np.float32) / 255.0


def l1_distance(output: np.ndarray, reference: np.ndarray) -> float:
    """MagicBrush L1 of one image pair (output resized to the reference size)."""
    o = _unit(resize_to(output, *reference.shape[:2]))
    return float(np.abs(o - _unit(reference)).mean(dtype=np.float64))


def l2_distance(output: np.ndarray, reference: np.ndarray) -> float:
    """MagicBrush L2 (mean squared error) of one image pair (output resized to the reference size)."""
    o = _unit(resize_to(output, *reference.shape[:2]))
    return float(np.square(o - _unit(reference)).mean(dtype=np.float64))


def psnr(output: np.ndarray, reference: np.ndarray) -> float:
    """PSNR with data range 1 (``inf`` for identical images)."""
    mse = l2_distance(output, reference)
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


def ssim(output: np.ndarray, reference: np.ndarray) -> float:
    """torchmetrics SSIM (Gaussian 11, sigma 1.5, data range 1) of one image pair."""
    import torch
    from torchmetrics.functional.image import structural_similarity_index_measure

    def to_tensor(im: np.ndarray) -> "torch.Tensor":
        return torch.from_numpy(_unit(im)).permute(2, 0, 1)[None]

    o = resize_to(output, *reference.shape[:2])
    value = structural_similarity_index_measure(
        to_tensor(o), to_tensor(reference), gaussian_kernel=True, sigma=1.5, kernel_size=11, data_range=1.0, k1=0.01, k2=0.03
    )
    return float(value)


PIXEL_FUNCTIONS = {"l1": l1_distance, "l2": l2_distance, "psnr": psnr, "ssim": ssim}


@dataclass(frozen=True)
class PixelOptions:
    """``against``: compare with the ``reference`` (ground truth, MagicBrush) or the ``source`` (Emu Edit L1)."""

    against: str = "reference"

    def __post_init__(self):
        check_choice("pixel metric", "against", self.against, ("reference", "source"))


class PixelMetric(PairedSizes, MeanMetric):
    """Mean over items of the mean over frame pairs of one pixel function."""

    Options = PixelOptions
    needs = ("output", "reference")
    kind: ClassVar[str] = "l1"
    convention = ("output resized to the compared image's size with PIL bicubic (MagicBrush eval_distance: "
                  "Image.resize without a filter); no crop; ToTensor values in [0, 1]")

    def score(self, inputs: list[MetricInput]) -> list[dict[str, Any]]:
        fn = PIXEL_FUNCTIONS[self.kind]
        out = []
        for item in inputs:
            other = getattr(item, self.options.against)
            pairs = paired_frames(item.output, other, f"item {item.item_id}")
            out.append({self.registry_name: float(np.mean([fn(o, r) for o, r in pairs])), "sizes": sizes_note(item.output, other)})
        return out


@register_metric("edit_l1", description="MagicBrush L1 on [0,1] pixels, output resized (bicubic) to the ground truth", capability=("edit_image", "edit_video"))
class EditL1(PixelMetric):
    kind = "l1"
    higher_is_better = False


@register_metric("edit_l2", description="MagicBrush L2 (MSE) on [0,1] pixels, output resized (bicubic) to the ground truth",
                 capability=("edit_image", "edit_video"))
class EditL2(PixelMetric):
    kind = "l2"
    higher_is_better = False


@register_metric("edit_psnr", description="PSNR (data range 1) of the edit vs the ground truth", capability=("edit_image", "edit_video"))
class EditPSNR(PixelMetric):
    kind = "psnr"


@register_metric("edit_ssim", description="SSIM (torchmetrics, Gaussian 11, sigma 1.5, range 1) vs the ground truth", capability=("edit_image", "edit_video"))
class EditSSIM(PixelMetric):
    kind = "ssim"


# ---------------------------------------------------------------------------------------------
# CLIP-I / CLIP-T with MagicBrush defaults
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EditClipIOptions(ClipIOptions):
    backbone: str = MAGICBRUSH_CLIP


@register_metric("edit_clip_i", description="MagicBrush CLIP-I: cos of ViT-B/32 image features, edit vs ground truth", capability=("edit_image", "edit_video"))
class EditClipI(ClipI):
    Options = EditClipIOptions
    key = "edit_clip_i"


@dataclass(frozen=True)
class EditClipTOptions(ClipTOptions):
    backbone: str = MAGICBRUSH_CLIP
    scale: float | None = 1.0


@register_metric("edit_clip_t", description="MagicBrush CLIP-T: cos of ViT-B/32 features, edit vs target caption", capability=("edit_image", "edit_video"))
class EditClipT(ClipT):
    Options = EditClipTOptions
    key = "edit_clip_t"


# ---------------------------------------------------------------------------------------------
# DINO
# ---------------------------------------------------------------------------------------------
#: timm ``VisionTransformer`` arguments of the DINO backbones (``weight_id`` None: seeded random, no file)
DINO_ARCHS: dict[str, dict[str, Any]] = {
    "dino_vits16": dict(weight_id="dino-vits16", patch_size=16, embed_dim=384, depth=12, num_heads=6),
    "dino_vitb16": dict(weight_id="dino-vitb16", patch_size=16, embed_dim=768, depth=12, num_heads=12),
    "dino_vitb8": dict(weight_id="dino-vitb8", patch_size=8, embed_dim=768, depth=12, num_heads=12),
    "dino-tiny-random": dict(weight_id=None, patch_size=16, embed_dim=24, depth=1, num_heads=2),
    # 12 blocks of patch 8 like dino_vitb8 (FiVE's structure distance reads block 11), tiny width
    "dino-tiny-random-p8": dict(weight_id=None, patch_size=8, embed_dim=24, depth=12, num_heads=2),
}


def dino_transform():
    """MagicBrush's DINO transform: Resize(256, bicubic) on PIL, CenterCrop(224), ToTensor, ImageNet norm."""
    from torchvision import transforms

    return transforms.Compose([
        transforms.Resize(256, interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.CenterCrop(224),
        transforms.ToTensor(),
        transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    ])


def load_dino(arch: str = "dino_vits16", path: str | os.PathLike | None = None, device: str | None = None) -> "torch.nn.Module":
    """A DINO ViT (timm ``VisionTransformer``, CLS token after the final norm) with manifest weights."""
    if arch not in DINO_ARCHS:
        from omnieval.errors import UnknownNameError

        raise UnknownNameError("DINO backbone", arch, sorted(DINO_ARCHS))
    from omnieval.launch import resolve_device

    return _load_dino(arch, str(path) if path else None, resolve_device(device))


@functools.lru_cache(maxsize=2)
def _load_dino(arch: str, path: str | None, device: str) -> "torch.nn.Module":
    import timm
    import torch

    from omnieval.metrics.weights import resolve

    cfg = dict(DINO_ARCHS[arch])
    weight_id = cfg.pop("weight_id")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = timm.models.vision_transformer.VisionTransformer(
            img_size=224, num_classes=0, global_pool="token", qkv_bias=True, **cfg
        )
    if weight_id is not None or path:
        file = resolve(weight_id, path) if weight_id else path
        try:
            state = torch.load(file, map_location="cpu", weights_only=True)
            state = state.get("state_dict", state.get("model", state)) if isinstance(state, dict) else state
            model.load_state_dict(state, strict=True)
        except (RuntimeError, OSError, ValueError, KeyError) as exc:
            raise MissingWeightsError(f"DINO {arch}: cannot load {file}: {exc}".splitlines()[0]) from exc
    return model.eval().to(device)


def dino_features(model: "torch.nn.Module", frames: list[np.ndarray]) -> "torch.Tensor":
    """``N x D`` float32 DINO features (not normalised) of uint8 frames."""
    import torch
    from PIL import Image

    transform = dino_transform()
    device = next(model.parameters()).device
    batch = torch.stack([transform(Image.fromarray(f)) for f in frames]).to(device)
    with torch.inference_mode():
        return model(batch).float().cpu()


@dataclass(frozen=True)
class DinoOptions:
    """``dino``: backbone (:data:`DINO_ARCHS`); ``dino_path``: weights file overriding the manifest;
    ``against``: ``reference`` (MagicBrush) or ``source`` (Emu Edit DINO vs the input image)."""

    dino: str = "dino_vits16"
    dino_path: str | None = None
    against: str = "reference"
    device: str | None = None

    def __post_init__(self):
        check_choice("edit_dino", "dino", self.dino, sorted(DINO_ARCHS))
        check_choice("edit_dino", "against", self.against, ("reference", "source"))


@register_metric("edit_dino", description="MagicBrush DINO: cos of dino_vits16 CLS features, edit vs ground truth", capability=("edit_image", "edit_video"))
class EditDino(PairedSizes, MeanMetric):
    Options = DinoOptions
    needs = ("output", "reference")
    convention = "each image separately: PIL resize of the short side to 256 (bicubic), center crop 224; no resize to the other side"

    def required_weights(self) -> list[str]:
        """The DINO file, unless given as ``dino_path`` or the tiny random backbone is used."""
        weight_id = DINO_ARCHS[self.options.dino]["weight_id"]
        return [] if (self.options.dino_path or weight_id is None) else [weight_id]

    def score(self, inputs: list[MetricInput]) -> list[dict[str, Any]]:
        import torch

        model = load_dino(self.options.dino, self.options.dino_path, self.options.device)
        out = []
        for item in inputs:
            what = f"item {item.item_id}"
            try:
                a, b = as_frames(item.output), as_frames(getattr(item, self.options.against))
            except (MediaError, AttributeError, TypeError) as exc:
                raise MediaError(f"{what}: {exc}") from exc
            if len(b) == 1:
                b = np.repeat(b, len(a), axis=0)
            if len(a) != len(b):
                raise MediaError(f"{what}: {len(a)} output frames but {len(b)} {self.options.against} frames")
            fa, fb = dino_features(model, list(a)), dino_features(model, list(b))
            out.append({"edit_dino": float(torch.nn.functional.cosine_similarity(fa, fb, dim=-1).mean()),
                        "sizes": sizes_note(item.output, getattr(item, self.options.against))})
        return out
