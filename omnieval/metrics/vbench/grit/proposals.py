"""GRiT's proposal generator: CenterNet2's ``CenterNet`` in its proposal-only mode (``ONLY_PROPOSAL`` and
``WITH_AGN_HM``), inference path only (``centernet2/centernet/modeling/dense_heads/centernet.py`` and
``centernet_head.py``).

Head, per pyramid level (shared weights; parameter names as detectron2's ``proposal_generator.centernet_head.*``):
``bbox_tower`` = ``NUM_BOX_CONVS`` x (conv3x3 + GroupNorm(32) + ReLU); class-agnostic heatmap logits
``agn_hm(tower)``; box distances ``relu(scales[level] * bbox_pred(tower))`` (left, top, right, bottom, in units of
the level's stride).  The class tower and share tower are empty in this mode.

Decoding, per level: locations are ``(x * s + s // 2, y * s + s // 2)``; a location is a candidate when
``sigmoid(agn_hm) > INFERENCE_TH`` (1e-4); if more than ``PRE_NMS_TOPK_TEST`` (1000) are candidates, the top ones
by heatmap value are kept; box = location -/+ distances * stride, with ``x2 >= x1 + 0.01`` and ``y2 >= y1 + 0.01``
(boxes are not clipped); score = ``sqrt(sigmoid(agn_hm))``.  All levels are then pooled, NMS at IoU
``NMS_TH_TEST`` (0.9) keeps boxes in decreasing score order, and when more than ``POST_NMS_TOPK_TEST`` (256) remain,
those scoring at least the (n - 256 + 1)-th smallest score are kept (ties may keep a few more, as CenterNet does).

The scores are what detectron2 stores as ``Instances.objectness_logits`` of the proposals (despite the name, the
square root of a probability), which GRiT's ROI heads multiply into their class scores.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torchvision
from torch import nn


@dataclass(frozen=True)
class ProposalConfig:
    """CenterNet proposal settings (defaults: GRiT's Base.yaml + CenterNet2 config defaults, test mode)."""

    in_channels: int = 256
    in_features: tuple[str, ...] = ("p3", "p4", "p5", "p6", "p7")
    strides: tuple[int, ...] = (8, 16, 32, 64, 128)
    num_box_convs: int = 4
    score_thresh: float = 1e-4  # INFERENCE_TH
    pre_nms_topk: int = 1000  # PRE_NMS_TOPK_TEST
    post_nms_topk: int = 256  # POST_NMS_TOPK_TEST
    nms_thresh: float = 0.9  # NMS_TH_TEST

    @classmethod
    def vbench(cls) -> "ProposalConfig":
        return cls()

    @classmethod
    def tiny(cls) -> "ProposalConfig":
        """Matches :meth:`BackboneConfig.tiny` (64 channels); fewer convs and proposals."""
        return cls(in_channels=64, num_box_convs=2, pre_nms_topk=100, post_nms_topk=20)


class Scale(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class CenterNetHead(nn.Module):
    """Box tower, agnostic heatmap and box-regression convolutions (proposal-only CenterNet head)."""

    def __init__(self, cfg: ProposalConfig):
        super().__init__()
        c = cfg.in_channels
        groups = 32 if c % 32 == 0 else 25  # NORM 'GN': detectron2's GroupNorm(32, C), CenterNet's 25 otherwise
        layers: list[nn.Module] = []
        for _ in range(cfg.num_box_convs):
            layers += [nn.Conv2d(c, c, kernel_size=3, padding=1), nn.GroupNorm(groups, c), nn.ReLU()]
        self.bbox_tower = nn.Sequential(*layers)
        self.bbox_pred = nn.Conv2d(c, 4, kernel_size=3, padding=1)
        self.scales = nn.ModuleList(Scale() for _ in cfg.in_features)
        self.agn_hm = nn.Conv2d(c, 1, kernel_size=3, padding=1)

    def forward(self, features: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per level: heatmap logits (B, 1, H, W) and box distances in stride units (B, 4, H, W)."""
        heatmaps, distances = [], []
        for level, feature in enumerate(features):
            tower = self.bbox_tower(feature)
            heatmaps.append(self.agn_hm(tower))
            distances.append(torch.relu(self.scales[level](self.bbox_pred(tower))))
        return heatmaps, distances


def level_locations(h: int, w: int, stride: int, device: torch.device) -> torch.Tensor:
    """(h * w, 2) pixel centres (x, y) of a level's cells, row-major, as CenterNet's ``compute_grids``."""
    xs = torch.arange(0, w * stride, step=stride, dtype=torch.float32, device=device)
    ys = torch.arange(0, h * stride, step=stride, dtype=torch.float32, device=device)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((grid_x.reshape(-1), grid_y.reshape(-1)), dim=1) + stride // 2


class CenterNetProposals(nn.Module):
    """``module(features, image_size) -> (boxes (N, 4) xyxy in input-image pixels, objectness (N,))``.

    ``features`` is the backbone's dict for a batch of one image; ``image_size`` (h, w) is accepted for the
    interface (CenterNet records it on the proposals but neither clips nor filters with it).
    """

    def __init__(self, cfg: ProposalConfig = ProposalConfig()):
        super().__init__()
        self.config = cfg
        self.centernet_head = CenterNetHead(cfg)

    def decode_level(self, heatmap_logits: torch.Tensor, distances: torch.Tensor, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Candidates of one level (batch of one): boxes (n, 4) and scores (n,) before NMS."""
        cfg = self.config
        _, _, h, w = heatmap_logits.shape
        heat = heatmap_logits.sigmoid().reshape(-1)
        regression = (distances * stride)[0].permute(1, 2, 0).reshape(-1, 4)
        locations = level_locations(h, w, stride, heat.device)
        candidates = torch.nonzero(heat > cfg.score_thresh).squeeze(1)
        values = heat[candidates]
        if candidates.numel() > cfg.pre_nms_topk:
            values, top = values.topk(cfg.pre_nms_topk, sorted=False)
            candidates = candidates[top]
        loc, reg = locations[candidates], regression[candidates]
        boxes = torch.stack([loc[:, 0] - reg[:, 0], loc[:, 1] - reg[:, 1], loc[:, 0] + reg[:, 2], loc[:, 1] + reg[:, 3]], 1)
        boxes[:, 2] = torch.max(boxes[:, 2], boxes[:, 0] + 0.01)
        boxes[:, 3] = torch.max(boxes[:, 3], boxes[:, 1] + 0.01)
        return boxes, values.sqrt()

    def select(self, boxes: torch.Tensor, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """NMS over all levels (torchvision's ``batched_nms`` with one label, as CenterNet's ``ml_nms``), then
        CenterNet's score-threshold form of the post-NMS top-k."""
        cfg = self.config
        if cfg.nms_thresh > 0:
            labels = torch.zeros(scores.shape[0], dtype=torch.int64, device=scores.device)
            keep = torchvision.ops.batched_nms(boxes.float(), scores, labels, cfg.nms_thresh)
            boxes, scores = boxes[keep], scores[keep]
        n = scores.numel()
        if n > cfg.post_nms_topk:
            threshold, _ = torch.kthvalue(scores.float().cpu(), n - cfg.post_nms_topk + 1)
            keep = torch.nonzero(scores >= threshold.item()).squeeze(1)
            boxes, scores = boxes[keep], scores[keep]
        return boxes, scores

    def forward(self, features: dict[str, torch.Tensor], image_size: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.config
        levels = [features[name] for name in cfg.in_features]
        if levels[0].shape[0] != 1:
            raise ValueError(f"CenterNetProposals takes a batch of one image, got {levels[0].shape[0]}")
        heatmaps, distances = self.centernet_head(levels)
        decoded = [self.decode_level(hm, d, s) for hm, d, s in zip(heatmaps, distances, cfg.strides)]
        boxes = torch.cat([b for b, _ in decoded])
        scores = torch.cat([s for _, s in decoded])
        return self.select(boxes, scores)


def build_proposal_generator(cfg: ProposalConfig = ProposalConfig()) -> CenterNetProposals:
    """GRiT's CenterNet proposal generator (random weights; load a checkpoint on top)."""
    return CenterNetProposals(cfg)
