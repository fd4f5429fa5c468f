"""Object detectors for GenEval: ``detect(image) -> {class name: [Detection, ...]}``.

GenEval (djghosh13/geneval) detects the 80 COCO thing classes, named as in its
``evaluation/object_names.txt`` (:data:`OBJECT_NAMES`), with an mmdetection 2.x Mask2Former Swin-S
instance-segmentation model (``mask2former_swin-s-p4-w7-224_lsj_8x2_50e_coco``).  Two adapters are here:

* :class:`Mask2FormerDetector` (default, ``detector="mask2former_hf"``): a transformers
  ``Mask2FormerForUniversalSegmentation`` COCO instance checkpoint (e.g.
  ``facebook/mask2former-swin-small-coco-instance``), resolved offline through the weight manifest.
  **It is not the mmdet checkpoint GenEval uses** (different training run and a different
  preprocessing unless ``size`` is set), so its GenEval numbers can differ from the official ones; the
  detector id is recorded in the metric options.  The post-processing follows mmdet's Mask2Former
  instance head exactly: mask logits upsampled bilinearly to the padded input, cropped to the resized
  image, upsampled bilinearly to the original size; top-``max_per_image`` (100) (query, class) pairs by
  softmax score (no-object column dropped); binary mask = logit > 0; score = class probability x mean
  sigmoid inside the mask; box = tight box of the mask with exclusive right/bottom edges
  (``[x_min, y_min, x_max + 1, y_max + 1]``).
* :class:`MMDetDetector` (``detector="mmdet"``): the official mmdet model, used when ``mmdet`` (2.x,
  with mmcv-full) is importable; config and checkpoint paths come from the manifest.

Detections are returned per class, unsorted and unthresholded; GenEval's selection (threshold, sort,
``max_objects``, optional NMS) is applied by :func:`omnieval.metrics.geneval.select_detections`.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import numpy as np

from omnieval.errors import ConfigError, MediaError, OmniEvalError
from omnieval.media import as_uint8_image

if TYPE_CHECKING:
    import torch

#: GenEval's class names (``evaluation/object_names.txt``): the 80 COCO thing classes in COCO order.
OBJECT_NAMES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag",
    "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite", "baseball bat",
    "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle", "wine glass", "cup", "fork",
    "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog",
    "pizza", "donut", "cake", "chair", "couch", "potted plant", "bed", "dining table", "toilet", "tv",
    "laptop", "computer mouse", "tv remote", "computer keyboard", "cell phone", "microwave", "oven",
    "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier",
    "toothbrush",
)

#: Other spellings of the COCO classes found in detector label maps (detectron2, VOC-style, HF configs).
LABEL_ALIASES: dict[str, str] = {
    "mouse": "computer mouse",
    "remote": "tv remote",
    "keyboard": "computer keyboard",
    "motorbike": "motorcycle",
    "aeroplane": "airplane",
    "sofa": "couch",
    "pottedplant": "potted plant",
    "tvmonitor": "tv",
    "tv monitor": "tv",
    "diningtable": "dining table",
    "hair dryer": "hair drier",
    "doughnut": "donut",
    "cellphone": "cell phone",
    "mobile phone": "cell phone",
}


class Detection(NamedTuple):
    """One detected instance: ``box`` xyxy float pixels, ``score`` in [0, 1], ``mask`` bool ``H x W`` or None."""

    box: np.ndarray
    score: float
    mask: np.ndarray | None = None


Detections = dict[str, list[Detection]]


class Detector(Protocol):
    """What the GenEval metric needs from a detector."""

    detector_id: str

    def detect(self, image: np.ndarray) -> Detections:
        """All instances found in an RGB uint8 ``H x W x 3`` image, grouped by GenEval class name."""


def geneval_class_name(label: str) -> str:
    """Map a detector label (e.g. ``"mouse"``, ``"tv_remote"``) to GenEval's class name, or raise."""
    name = label.strip().lower().replace("_", " ").replace("-", " ")
    name = LABEL_ALIASES.get(name, name)
    if name not in OBJECT_NAMES:
        raise ConfigError(f"detector label {label!r} is not one of GenEval's 80 COCO classes")
    return name


# ---------------------------------------------------------------------------------------------
# Mask2Former post-processing (mmdet's instance head)
# ---------------------------------------------------------------------------------------------
def masks_to_boxes(masks: "torch.Tensor") -> "torch.Tensor":
    """Tight xyxy boxes of bool masks ``N x H x W``: ``[x_min, y_min, x_max + 1, y_max + 1]``; empty -> zeros."""
    import torch

    boxes = torch.zeros((masks.shape[0], 4), dtype=torch.float32)
    cols, rows = masks.any(dim=1), masks.any(dim=2)
    for i in range(masks.shape[0]):
        xs, ys = torch.nonzero(cols[i]).flatten(), torch.nonzero(rows[i]).flatten()
        if len(xs) and len(ys):
            boxes[i] = torch.tensor([xs[0], ys[0], xs[-1] + 1, ys[-1] + 1], dtype=torch.float32)
    return boxes


def instance_postprocess(class_logits, mask_logits, max_per_image: int = 100):
    """mmdet ``MaskFormerFusionHead.instance_postprocess`` for one image (all classes are things).

    ``class_logits``: ``Q x (C + 1)`` (last column = no object); ``mask_logits``: ``Q x H x W`` at the
    output resolution.  Returns ``(scores, labels, masks, boxes)`` for the top ``max_per_image``
    (query, class) pairs.
    """
    import torch

    num_classes = class_logits.shape[1] - 1
    probs = torch.softmax(class_logits.float(), dim=-1)[:, :-1]
    top_scores, top_index = probs.flatten().topk(min(max_per_image, probs.numel()), sorted=False)
    labels = top_index % num_classes
    logits = mask_logits[top_index // num_classes].float()
    binary = logits > 0
    mask_score = (logits.sigmoid() * binary).flatten(1).sum(1) / (binary.flatten(1).sum(1) + 1e-6)
    return top_scores * mask_score, labels, binary, masks_to_boxes(binary)


class Mask2FormerDetector:
    """GenEval detector on a transformers Mask2Former COCO instance-segmentation model.

    Not the exact mmdet checkpoint GenEval uses: numbers can differ from official GenEval scores.
    Preprocessing is the checkpoint's ``Mask2FormerImageProcessor``: resize keeping the aspect ratio to
    ``size`` (``{"shortest_edge": 800, "longest_edge": 1333}`` is mmdet's test scale; None keeps the
    checkpoint's config), each side then rounded up to a multiple of 32 by a slight stretch (mmdet pads
    instead), ImageNet mean/std.  Padding a processor adds (``pixel_mask``) is cropped from the mask
    logits before resizing them to the image, as mmdet does.  ``max_per_image``: instances kept per
    image before GenEval's thresholding (mmdet test_cfg: 100).
    """

    def __init__(self, model, processor, *, max_per_image: int = 100, size: dict | None = None,
                 device: str = "cpu", detector_id: str = "mask2former_hf"):
        self.model = model.eval().to(device)
        self.processor = processor
        self.max_per_image = max_per_image
        self.size = size
        self.device = device
        self.detector_id = detector_id
        id2label = model.config.id2label
        self.class_of_label = [geneval_class_name(id2label[i]) for i in range(len(id2label))]

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, **kwargs: Any) -> "Mask2FormerDetector":
        """Load model + image processor from a local directory (never downloads)."""
        from transformers import Mask2FormerForUniversalSegmentation, Mask2FormerImageProcessor

        model = Mask2FormerForUniversalSegmentation.from_pretrained(str(path), local_files_only=True)
        processor = Mask2FormerImageProcessor.from_pretrained(str(path), local_files_only=True)
        return cls(model, processor, **kwargs)

    def detect(self, image: np.ndarray) -> Detections:
        import torch
        import torch.nn.functional as F

        image = as_uint8_image(image)
        height, width = image.shape[:2]
        extra = {"size": self.size} if self.size else {}
        inputs = self.processor(images=[image], return_tensors="pt", **extra)
        pixel_values = inputs["pixel_values"].to(self.device)
        pixel_mask = inputs.get("pixel_mask")
        with torch.no_grad():
            out = self.model(pixel_values=pixel_values, pixel_mask=None if pixel_mask is None else pixel_mask.to(self.device))
        padded = tuple(pixel_values.shape[-2:])
        logits = F.interpolate(out.masks_queries_logits.float(), size=padded, mode="bilinear", align_corners=False)[0]
        if pixel_mask is not None:  # drop the padding: keep the resized image's rows and columns
            valid = pixel_mask[0].bool()
            logits = logits[:, : int(valid.any(dim=1).sum()), : int(valid.any(dim=0).sum())]
        logits = F.interpolate(logits[None], size=(height, width), mode="bilinear", align_corners=False)[0]
        scores, labels, masks, boxes = instance_postprocess(out.class_queries_logits[0].cpu(), logits.cpu(), self.max_per_image)
        found: Detections = {}
        for score, label, mask, box in zip(scores.tolist(), labels.tolist(), masks.numpy(), boxes.numpy()):
            found.setdefault(self.class_of_label[label], []).append(Detection(box, float(score), mask))
        return found


# ---------------------------------------------------------------------------------------------
# mmdet (the official GenEval detector)
# ---------------------------------------------------------------------------------------------
def detections_from_mmdet(result, class_names: tuple[str, ...] = OBJECT_NAMES) -> Detections:
    """Convert an mmdet 2.x result (``bbox`` list or ``(bbox, segm)``; per class ``n x 5`` arrays) to detections."""
    bbox = result[0] if isinstance(result, tuple) else result
    segm = result[1] if isinstance(result, tuple) and len(result) > 1 else None
    if len(bbox) != len(class_names):
        raise ConfigError(f"mmdet detector returned {len(bbox)} classes, GenEval expects {len(class_names)}")
    found: Detections = {}
    for index, name in enumerate(class_names):
        rows = np.asarray(bbox[index], dtype=np.float64).reshape(-1, 5)
        if len(rows):
            masks = segm[index] if segm is not None else [None] * len(rows)
            found[name] = [Detection(row[:4].copy(), float(row[4]), None if m is None else np.asarray(m, bool))
                           for row, m in zip(rows, masks)]
    return found


class MMDetDetector:
    """GenEval's own detector through mmdet 2.x (``init_detector`` + ``inference_detector``).

    The image is passed as BGR, as mmdet's file loader would produce.  Needs ``mmdet`` 2.x and
    ``mmcv-full``; without them construction raises an :class:`OmniEvalError` saying so.
    """

    def __init__(self, config_path: str | os.PathLike, checkpoint_path: str | os.PathLike, *, device: str = "cpu",
                 detector_id: str = "mmdet:mask2former_swin-s-p4-w7-224_lsj_8x2_50e_coco"):
        try:
            from mmdet.apis import inference_detector, init_detector
        except ImportError as exc:
            raise OmniEvalError(
                f"geneval detector 'mmdet' needs mmdet 2.x and mmcv-full ({exc}); install them or use detector=mask2former_hf"
            ) from exc
        self._infer = inference_detector
        self.model = init_detector(str(config_path), str(checkpoint_path), device=device)
        self.detector_id = detector_id

    def detect(self, image: np.ndarray) -> Detections:
        image = as_uint8_image(image)
        return detections_from_mmdet(self._infer(self.model, np.ascontiguousarray(image[..., ::-1])))


def check_mask(mask: np.ndarray | None, shape: tuple[int, int], what: str) -> None:
    """Raise a :class:`MediaError` when a detection mask does not cover the image."""
    if mask is not None and tuple(mask.shape) != tuple(shape):
        raise MediaError(f"{what}: detection mask has shape {tuple(mask.shape)}, image is {tuple(shape)}")
