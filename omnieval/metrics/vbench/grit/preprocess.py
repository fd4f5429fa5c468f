"""Frame -> GRiT model input, exactly as VBench 0.1.5 feeds its GRiT.

VBench calls ``DenseCaptioning.run_caption_tensor(frame)`` with an RGB ``uint8`` frame (H, W, 3) (its
``load_video`` frames, possibly resized to a 720 short side before).  That goes through GRiT's
``SingleDefaultPredictor`` (``grit_src/grit/predictor.py``), which differs from detectron2's ``DefaultPredictor``:

* **no channel flip**: detectron2's ``DefaultPredictor`` reverses the channels when ``cfg.INPUT.FORMAT == 'RGB'``
  (it expects BGR input); ``SingleDefaultPredictor`` does not, so the RGB frame reaches the RGB model as is;
* **no resize**: it computes ``ResizeShortestEdge([800, 800], 1333)`` on the frame but then builds the tensor from
  the *original* frame, so the network sees the frame at its own size and ``image_size == original_size``.

Both behaviours are options of :class:`PreprocessConfig` (``flip_channels``, ``resize``); the defaults are
VBench's.  With ``resize=(short, max_size)`` the frame is resized like detectron2's ``ResizeTransform``: output
size from ``ResizeShortestEdge.get_output_shape`` (round half up), ``uint8`` frames through PIL bilinear, float
frames through ``torch.nn.functional.interpolate(mode='bilinear', align_corners=False)``.

Then, like ``GeneralizedRCNN.preprocess_image``: ``float32``, ``(x - pixel_mean) / pixel_std`` per channel on the
0..255 scale (GRiT: ImageNet mean/std in RGB order), and zero padding (after normalisation) on the bottom/right to a
multiple of the backbone's ``size_divisibility`` (32 for GRiT's ViT-FPN).  Float frames are taken on the 0..255
scale, as detectron2 takes them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from omnieval.errors import MediaError


@dataclass(frozen=True)
class PreprocessConfig:
    """Every convention between a frame and the network input (defaults: VBench's GRiT-B)."""

    pixel_mean: tuple[float, float, float] = (123.675, 116.280, 103.530)  # cfg.MODEL.PIXEL_MEAN (RGB)
    pixel_std: tuple[float, float, float] = (58.395, 57.12, 57.375)  # cfg.MODEL.PIXEL_STD
    size_divisibility: int = 32  # ViT_FPN.size_divisibility = strides[2]
    flip_channels: bool = False  # SingleDefaultPredictor feeds channels as given
    resize: tuple[int, int] | None = None  # (short edge, max size); VBench computes it but discards it

    @classmethod
    def vbench(cls) -> "PreprocessConfig":
        return cls()


class Prepared(NamedTuple):
    """The network input: ``image`` (1, 3, Hp, Wp) normalised and padded; ``image_size`` (h, w) before padding
    (after the optional resize); ``original_size`` (H, W) of the frame."""

    image: torch.Tensor
    image_size: tuple[int, int]
    original_size: tuple[int, int]


def check_frame(frame: object, item: str = "frame") -> np.ndarray:
    """Validate one RGB frame (H, W, 3) of dtype uint8 or float (0..255 scale, finite); return it as an array."""
    if isinstance(frame, torch.Tensor):
        frame = frame.detach().cpu().numpy()
    if not isinstance(frame, np.ndarray):
        raise MediaError(f"{item}: expected an (H, W, 3) array, got {type(frame).__name__}")
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.shape[0] < 1 or frame.shape[1] < 1:
        raise MediaError(f"{item}: expected an (H, W, 3) RGB frame, got shape {tuple(frame.shape)}")
    if frame.dtype != np.uint8 and not np.issubdtype(frame.dtype, np.floating):
        raise MediaError(f"{item}: expected a uint8 or float frame, got dtype {frame.dtype}")
    if frame.dtype != np.uint8 and not np.isfinite(frame).all():
        raise MediaError(f"{item}: frame contains NaN or infinite values")
    return frame


def shortest_edge_size(h: int, w: int, short_edge: int, max_size: int) -> tuple[int, int]:
    """Output (h, w) of detectron2's ``ResizeShortestEdge.get_output_shape``."""
    scale = short_edge / min(h, w)
    newh, neww = (float(short_edge), scale * w) if h < w else (scale * h, float(short_edge))
    longest = max(newh, neww)
    if longest > max_size:
        newh, neww = newh * (max_size / longest), neww * (max_size / longest)
    return int(newh + 0.5), int(neww + 0.5)


def resize_frame(frame: np.ndarray, newh: int, neww: int) -> np.ndarray:
    """Bilinear resize as detectron2's ``ResizeTransform.apply_image``: PIL for uint8, torch for float."""
    if frame.dtype == np.uint8:
        from PIL import Image

        return np.asarray(Image.fromarray(np.ascontiguousarray(frame)).resize((neww, newh), Image.BILINEAR))
    chw = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None]
    out = F.interpolate(chw, (newh, neww), mode="bilinear", align_corners=False)
    return out[0].permute(1, 2, 0).numpy()


def prepare(
    frame: np.ndarray,
    config: PreprocessConfig = PreprocessConfig(),
    *,
    device: torch.device | str | None = None,
    item: str = "frame",
) -> Prepared:
    """One RGB frame -> :class:`Prepared` (see the module docstring for every step)."""
    frame = check_frame(frame, item)
    original_size = (int(frame.shape[0]), int(frame.shape[1]))
    if config.flip_channels:
        frame = frame[:, :, ::-1]
    if config.resize is not None:
        frame = resize_frame(frame, *shortest_edge_size(*original_size, *config.resize))
    image = torch.from_numpy(np.ascontiguousarray(frame).astype(np.float32).transpose(2, 0, 1)).to(device)
    mean = torch.tensor(config.pixel_mean, dtype=torch.float32, device=image.device).view(3, 1, 1)
    std = torch.tensor(config.pixel_std, dtype=torch.float32, device=image.device).view(3, 1, 1)
    image = (image - mean) / std
    h, w = int(image.shape[1]), int(image.shape[2])
    div = config.size_divisibility
    if div > 1:
        image = F.pad(image, (0, -w % div, 0, -h % div), value=0.0)
    return Prepared(image[None].contiguous(), (h, w), original_size)
