"""GRiT's ROI heads at inference (``grit_src/grit/modeling/roi_heads/grit_roi_heads.py`` on detectron2's
``CascadeROIHeads``), without detectron2.

Parameter names as detectron2's ``roi_heads.*``: ``box_head.{k}.fc1/fc2`` (FastRCNNConvFCHead, 2 FC + ReLU),
``box_predictor.{k}.cls_score`` (Linear -> num_classes + 1) and ``box_predictor.{k}.bbox_pred`` (Linear, ReLU,
Linear -> 4, class-agnostic), ``mask_head.*`` (MaskRCNNConvUpsampleHead: loaded with the checkpoint but never run --
masks are not part of VBench's output) and ``text_decoder.textual.*`` (:mod:`.text_decoder`).

Inference, for the proposals of one image (boxes in input-image pixels and their ``objectness_logits``):

* pooling (detectron2's ``ROIPooler``, ``ROIAlignV2``): each box goes to level
  ``clamp(floor(4 + log2(sqrt(area) / 224 + 1e-8)), 3, 5)`` of p3..p5 and is pooled with
  ``torchvision.ops.roi_align(aligned=True, sampling_ratio=0, spatial_scale=1/stride)``: 7x7 for the box heads,
  14x14 for the object features fed to the text decoder;
* 3 cascade stages; stage k > 0 starts from stage k-1's decoded boxes clipped to the image; box decoding is
  detectron2's ``Box2BoxTransform`` with weights (10,10,5,5), (20,20,10,10), (30,30,15,15) and dw/dh clamped at
  log(1000/16);
* score = mean over stages of softmax class probabilities, then ``sqrt(score * objectness)`` (GRiT's
  ``MULT_PROPOSAL_SCORE``); the last stage's boxes, clipped; boxes with non-finite values dropped;
* foreground score > ``score_thresh`` (0.5 in VBench), NMS at IoU 0.5 (torchvision ``batched_nms``, one class),
  at most 256 detections, in decreasing score order.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torchvision
from torch import nn

from omnieval.metrics.vbench.grit.text_decoder import GRiTTextDecoder, TextDecoderConfig


@dataclass(frozen=True)
class ROIHeadsConfig:
    """Sizes and thresholds (defaults: GRiT-B as VBench builds it: Base.yaml + VBench's SCORE_THRESH_TEST 0.5)."""

    in_features: tuple[str, ...] = ("p3", "p4", "p5")
    strides: tuple[int, ...] = (8, 16, 32)
    channels: int = 256
    box_pooler_resolution: int = 7
    object_pooler_resolution: int = 14
    sampling_ratio: int = 0
    canonical_box_size: int = 224
    canonical_level: int = 4
    fc_dim: int = 1024
    num_classes: int = 1
    cascade_bbox_reg_weights: tuple[tuple[float, float, float, float], ...] = ((10.0, 10.0, 5.0, 5.0), (20.0, 20.0, 10.0, 10.0), (30.0, 30.0, 15.0, 15.0))
    scale_clamp: float = math.log(1000.0 / 16)
    mult_proposal_score: bool = True
    score_thresh: float = 0.5
    nms_thresh: float = 0.5
    max_detections: int = 256
    mask_num_conv: int = 4
    mask_conv_dim: int = 256
    text: TextDecoderConfig = field(default_factory=TextDecoderConfig)

    @classmethod
    def vbench(cls) -> "ROIHeadsConfig":
        return cls()

    @classmethod
    def tiny(cls, channels: int = 64) -> "ROIHeadsConfig":
        """Small random-weight stand-in matching the tiny backbone (``channels`` pyramid channels)."""
        return cls(channels=channels, fc_dim=32, object_pooler_resolution=4, mask_num_conv=1, mask_conv_dim=8,
                   text=TextDecoderConfig.tiny(channels))


# ---------------------------------------------------------------------------------------------
# Pure box / pooling functions
# ---------------------------------------------------------------------------------------------
def apply_deltas(deltas: torch.Tensor, boxes: torch.Tensor, weights: Sequence[float], scale_clamp: float) -> torch.Tensor:
    """detectron2's ``Box2BoxTransform.apply_deltas`` for (N, 4) deltas."""
    deltas = deltas.float()
    boxes = boxes.to(deltas.dtype)
    widths = boxes[:, 2] - boxes[:, 0]
    heights = boxes[:, 3] - boxes[:, 1]
    ctr_x = boxes[:, 0] + 0.5 * widths
    ctr_y = boxes[:, 1] + 0.5 * heights
    wx, wy, ww, wh = weights
    dx, dy = deltas[:, 0] / wx, deltas[:, 1] / wy
    dw = torch.clamp(deltas[:, 2] / ww, max=scale_clamp)
    dh = torch.clamp(deltas[:, 3] / wh, max=scale_clamp)
    pred_ctr_x = dx * widths + ctr_x
    pred_ctr_y = dy * heights + ctr_y
    pred_w = torch.exp(dw) * widths
    pred_h = torch.exp(dh) * heights
    return torch.stack((pred_ctr_x - 0.5 * pred_w, pred_ctr_y - 0.5 * pred_h, pred_ctr_x + 0.5 * pred_w, pred_ctr_y + 0.5 * pred_h), dim=-1)


def clip_boxes(boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Clamp x to [0, w] and y to [0, h] (``Boxes.clip``)."""
    h, w = size
    return torch.stack((boxes[:, 0].clamp(0, w), boxes[:, 1].clamp(0, h), boxes[:, 2].clamp(0, w), boxes[:, 3].clamp(0, h)), dim=-1)


def box_levels(boxes: torch.Tensor, min_level: int, max_level: int, canonical_size: int, canonical_level: int) -> torch.Tensor:
    """detectron2's ``assign_boxes_to_levels``: index into the pooled levels (0 = ``min_level``)."""
    sizes = torch.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
    levels = torch.floor(canonical_level + torch.log2(sizes / canonical_size + 1e-8))
    return torch.clamp(levels, min=min_level, max=max_level).to(torch.int64) - min_level


def roi_pool(features: Sequence[torch.Tensor], strides: Sequence[int], boxes: torch.Tensor, resolution: int, cfg: ROIHeadsConfig) -> torch.Tensor:
    """detectron2's ``ROIPooler`` (``ROIAlignV2``) for the boxes of one image -> (N, C, resolution, resolution)."""
    rois = torch.cat([boxes.new_zeros(len(boxes), 1), boxes], dim=1)

    def align(x: torch.Tensor, r: torch.Tensor, stride: int) -> torch.Tensor:
        return torchvision.ops.roi_align(x, r.to(x.dtype), (resolution, resolution), 1.0 / stride, cfg.sampling_ratio, True)

    if len(features) == 1:
        return align(features[0], rois, strides[0])
    min_level, max_level = int(math.log2(strides[0])), int(math.log2(strides[-1]))
    levels = box_levels(boxes, min_level, max_level, cfg.canonical_box_size, cfg.canonical_level)
    out = features[0].new_zeros(len(boxes), features[0].shape[1], resolution, resolution)
    for level, (x, stride) in enumerate(zip(features, strides)):
        inds = torch.nonzero(levels == level).squeeze(1)
        out.index_put_((inds,), align(x, rois[inds], stride))
    return out


# ---------------------------------------------------------------------------------------------
# Modules (names mirror detectron2)
# ---------------------------------------------------------------------------------------------
class FCHead(nn.Module):
    """``FastRCNNConvFCHead`` with two FC layers."""

    def __init__(self, in_dim: int, fc_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(in_dim, fc_dim)
        self.fc2 = nn.Linear(fc_dim, fc_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.fc2(torch.relu(self.fc1(torch.flatten(x, start_dim=1)))))


class BoxPredictor(nn.Module):
    """``GRiTFastRCNNOutputLayers``: class logits and class-agnostic box deltas."""

    def __init__(self, fc_dim: int, num_classes: int):
        super().__init__()
        self.cls_score = nn.Linear(fc_dim, num_classes + 1)
        self.bbox_pred = nn.Sequential(nn.Linear(fc_dim, fc_dim), nn.ReLU(inplace=True), nn.Linear(fc_dim, 4))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cls_score(x), self.bbox_pred(x)


class MaskHead(nn.Module):
    """``MaskRCNNConvUpsampleHead`` parameters (class-agnostic); kept for checkpoint compatibility only."""

    def __init__(self, channels: int, num_conv: int, conv_dim: int):
        super().__init__()
        dim = channels
        for i in range(num_conv):
            setattr(self, f"mask_fcn{i + 1}", nn.Conv2d(dim, conv_dim, 3, padding=1))
            dim = conv_dim
        self.deconv = nn.ConvTranspose2d(dim, conv_dim, 2, stride=2)
        self.predictor = nn.Conv2d(conv_dim, 1, 1)


class BoxDetections(NamedTuple):
    """Boxes (K, 4) in input-image pixels after NMS, their box scores (K,) (before the description score)."""

    boxes: torch.Tensor
    scores: torch.Tensor


class GRiTROIHeads(nn.Module):
    """``roi_heads``: cascade box heads, object-feature pooler and the text decoder."""

    def __init__(self, cfg: ROIHeadsConfig = ROIHeadsConfig()):
        super().__init__()
        self.config = cfg
        in_dim = cfg.channels * cfg.box_pooler_resolution ** 2
        stages = len(cfg.cascade_bbox_reg_weights)
        self.box_head = nn.ModuleList(FCHead(in_dim, cfg.fc_dim) for _ in range(stages))
        self.box_predictor = nn.ModuleList(BoxPredictor(cfg.fc_dim, cfg.num_classes) for _ in range(stages))
        self.mask_head = MaskHead(cfg.channels, cfg.mask_num_conv, cfg.mask_conv_dim)
        self.text_decoder = GRiTTextDecoder(cfg.text)

    def _levels(self, features: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        return [features[name] for name in self.config.in_features]

    @torch.no_grad()
    def detect_boxes(self, features: dict[str, torch.Tensor], proposals: torch.Tensor, objectness: torch.Tensor,
                     image_size: tuple[int, int]) -> BoxDetections:
        """Cascade + score combination + threshold + NMS for one image's proposals."""
        cfg = self.config
        levels = self._levels(features)
        boxes = proposals
        probs = []
        for k, weights in enumerate(cfg.cascade_bbox_reg_weights):
            if k > 0:
                boxes = clip_boxes(boxes, image_size)
            x = self.box_head[k](roi_pool(levels, cfg.strides, boxes, cfg.box_pooler_resolution, cfg))
            logits, deltas = self.box_predictor[k](x)
            probs.append(torch.softmax(logits, dim=-1))
            boxes = apply_deltas(deltas, boxes, weights, cfg.scale_clamp)
        scores = sum(probs) * (1.0 / len(probs))
        if cfg.mult_proposal_score:
            scores = (scores * objectness[:, None]) ** 0.5
        valid = torch.isfinite(boxes).all(dim=1) & torch.isfinite(scores).all(dim=1)
        boxes, scores = boxes[valid], scores[valid]
        scores = scores[:, :-1]
        boxes = clip_boxes(boxes, image_size)
        rows, classes = torch.nonzero(scores > cfg.score_thresh, as_tuple=True)
        boxes, scores = boxes[rows], scores[rows, classes]
        keep = torchvision.ops.batched_nms(boxes.float(), scores, classes, cfg.nms_thresh)
        if cfg.max_detections >= 0:
            keep = keep[: cfg.max_detections]
        return BoxDetections(boxes[keep], scores[keep])

    @torch.no_grad()
    def object_features(self, features: dict[str, torch.Tensor], boxes: torch.Tensor) -> torch.Tensor:
        """14x14 pooled features of the detected boxes as the decoder's memory: (K, 196, C)."""
        cfg = self.config
        pooled = roi_pool(self._levels(features), cfg.strides, boxes, cfg.object_pooler_resolution, cfg)
        return pooled.flatten(2).transpose(1, 2).contiguous()
