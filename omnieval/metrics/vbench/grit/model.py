"""GRiT-B assembled: frame -> detections (boxes, scores, dense descriptions, object names), as VBench's
``DenseCaptioning.run_caption_tensor`` computes them, in plain PyTorch (no detectron2).

Per frame (see the submodules for each step's conventions):

1. :func:`.preprocess.prepare` (VBench's ``SingleDefaultPredictor``: no resize, no channel flip, ImageNet
   mean/std on 0..255, zero padding to a multiple of 32);
2. :mod:`.backbone` (ViT-B + simple feature pyramid p3..p7) and :mod:`.proposals` (CenterNet, <= 256 proposals);
3. :mod:`.roi_heads` (3-stage cascade, ``sqrt(score * objectness)``, score > 0.5, NMS 0.5, <= 256 boxes);
4. the text decoder (:mod:`.text_decoder`) describes every box twice, as vbench's ``GRiT.inference`` does: with the
   configured task's token (``DenseCap`` for color, ``ObjectDet`` otherwise) -> ``descriptions`` and box
   ``scores = sqrt(box score * exp(description log-probability))``; with the ``ObjectDet`` token -> ``det_obj``
   (object names; the same decoding when the task is ObjectDet);
5. detectron2's ``detector_postprocess``: boxes scaled from the network input size to the frame size, clipped to
   the frame, boxes with zero width or height dropped.

:meth:`GRiT.detect` returns :class:`~omnieval.metrics.vbench.detections.Detection` items like VBench's
``dense_pred_to_caption_tuple`` + omnieval's former detectron2 adapter: ``caption`` = i-th description, ``box`` =
the box's coordinates truncated with ``int``, ``label`` = i-th ``det_obj`` entry.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from omnieval.errors import ConfigError
from omnieval.metrics.vbench.common import load_matching, read_checkpoint
from omnieval.metrics.vbench.detections import Detection
from omnieval.metrics.vbench.grit.backbone import BackboneConfig, build_backbone
from omnieval.metrics.vbench.grit.preprocess import PreprocessConfig, prepare
from omnieval.metrics.vbench.grit.proposals import ProposalConfig, build_proposal_generator
from omnieval.metrics.vbench.grit.roi_heads import GRiTROIHeads, ROIHeadsConfig, clip_boxes
from omnieval.metrics.vbench.grit.text_decoder import TASK_TOKENS, WordPieceDecoder

#: checkpoint entries that are not weights of the native model (vbench's second decoder shares the first one's
#: tensors; detectron2 versions before 0.4 saved the normalisation constants)
IGNORED_PREFIXES = ("roi_heads.text_decoder_det.", "pixel_mean", "pixel_std")


@dataclass(frozen=True)
class GRiTConfig:
    """Everything that changes the detections.  ``task``: ``'DenseCap'`` (VBench's color) or ``'ObjectDet'``."""

    task: str = "ObjectDet"
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    proposals: ProposalConfig = field(default_factory=ProposalConfig)
    roi_heads: ROIHeadsConfig = field(default_factory=ROIHeadsConfig)

    def __post_init__(self) -> None:
        if self.task not in TASK_TOKENS:
            raise ConfigError(f"GRiT task must be one of {sorted(TASK_TOKENS)}, got {self.task!r}")

    @classmethod
    def vbench(cls, task: str = "ObjectDet") -> "GRiTConfig":
        """GRiT_B_DenseCap_ObjectDet with VBench's overrides (beam 1, no soft NMS, score threshold 0.5)."""
        return cls(task=task)

    @classmethod
    def tiny(cls, task: str = "ObjectDet") -> "GRiTConfig":
        """Small random-weight stand-in for tests (same structure)."""
        backbone = BackboneConfig.tiny()
        return cls(task=task, backbone=backbone, proposals=ProposalConfig.tiny(),
                   roi_heads=ROIHeadsConfig.tiny(backbone.out_channels))


class GRiTPrediction(NamedTuple):
    """Detections of one frame: ``boxes`` (K, 4) xyxy float in frame pixels, ``scores`` (K,), ``descriptions``
    (task decoder) and ``det_obj`` (ObjectDet decoder), both K strings."""

    boxes: torch.Tensor
    scores: torch.Tensor
    descriptions: list[str]
    det_obj: list[str]


def load_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict of a detectron2-format GRiT checkpoint (``{"model": state_dict, ...}``), loaded without
    executing code, minus the parts the native model does not have (:data:`IGNORED_PREFIXES`)."""
    return {k: v for k, v in read_checkpoint(path, "GRiT").items() if not k.startswith(IGNORED_PREFIXES)}


class GRiT(nn.Module):
    """Native GRiT.  Module names mirror detectron2's GRiT (``backbone``, ``proposal_generator``, ``roi_heads``) so
    the official ``grit_b_densecap_objectdet.pth`` loads strictly without renaming."""

    def __init__(self, config: GRiTConfig = GRiTConfig(), tokenizer: WordPieceDecoder | None = None):
        super().__init__()
        self.config = config
        self.tokenizer = tokenizer
        self.backbone = build_backbone(config.backbone)
        self.proposal_generator = build_proposal_generator(config.proposals)
        self.roi_heads = GRiTROIHeads(config.roi_heads)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, tokenizer_dir: str | os.PathLike, config: GRiTConfig | None = None,
                        device: str | torch.device = "cpu") -> "GRiT":
        """Build for ``config`` (default :meth:`GRiTConfig.vbench`), load ``path`` strictly (a missing or unexpected
        weight -> :class:`MissingWeightsError` naming the file) and the BERT vocabulary from ``tokenizer_dir``."""
        model = cls(config or GRiTConfig.vbench(), WordPieceDecoder.from_dir(tokenizer_dir))
        model.load_weights(path)
        return model.eval().to(device)

    def load_weights(self, path: str | os.PathLike) -> None:
        load_matching(self, load_checkpoint(path), path, "GRiT")

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def describe(self, object_features: torch.Tensor, tasks: tuple[str, ...]) -> list[tuple[list[str], torch.Tensor]]:
        """Per task: descriptions and description log-probabilities of pooled objects (decoded together)."""
        if self.tokenizer is None:
            raise ConfigError("GRiT has no tokenizer: build it with GRiT.from_checkpoint(path, tokenizer_dir)")
        generated = self.roi_heads.text_decoder.generate(object_features, [TASK_TOKENS[t] for t in tasks])
        texts = [self.tokenizer.decode(row) for row in generated.text_tokens.tolist()]
        n = object_features.shape[0]
        return [(texts[i * n:(i + 1) * n], generated.logprobs[i * n:(i + 1) * n]) for i in range(len(tasks))]

    @torch.no_grad()
    def predict(self, frame: np.ndarray, item: str = "frame") -> GRiTPrediction:
        """Detections of one RGB frame (H, W, 3), ``uint8`` or float on the 0..255 scale."""
        prepared = prepare(frame, self.config.preprocess, device=self.device, item=item)
        features = self.backbone(prepared.image)
        proposals, objectness = self.proposal_generator(features, prepared.image_size)
        boxes, scores = self.roi_heads.detect_boxes(features, proposals, objectness, prepared.image_size)
        if len(boxes) == 0:
            return GRiTPrediction(boxes.cpu(), scores.cpu(), [], [])
        memory = self.roi_heads.object_features(features, boxes)
        tasks = (self.config.task,) if self.config.task == "ObjectDet" else (self.config.task, "ObjectDet")
        described = self.describe(memory, tasks)
        (descriptions, logprobs), det_obj = described[0], described[-1][0]
        scores = (scores * torch.exp(logprobs)) ** 0.5
        # detector_postprocess: network-input size -> frame size, clip, drop empty boxes
        (h, w), (out_h, out_w) = prepared.image_size, prepared.original_size
        boxes = boxes.clone()
        boxes[:, 0::2] *= out_w / w
        boxes[:, 1::2] *= out_h / h
        boxes = clip_boxes(boxes, (out_h, out_w))
        keep = ((boxes[:, 2] - boxes[:, 0]) > 0) & ((boxes[:, 3] - boxes[:, 1]) > 0)
        idx = torch.nonzero(keep).squeeze(1).tolist()
        return GRiTPrediction(boxes[keep].cpu(), scores[keep].cpu(), [descriptions[i] for i in idx], [det_obj[i] for i in idx])

    def detect(self, frame: np.ndarray, item: str = "frame") -> list:
        """VBench's view of one frame's detections: a list of ``Detection(caption, box, label)``."""
        pred = self.predict(frame, item)
        return [Detection(caption, tuple(int(a) for a in box), label)
                for caption, box, label in zip(pred.descriptions, pred.boxes.tolist(), pred.det_obj)]

    def forward(self, frame: np.ndarray) -> list:
        return self.detect(frame)
