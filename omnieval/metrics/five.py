"""FiVE-Bench's conventional metrics, as its released ``evaluation/evaluate.py`` + ``metrics_calculator.py``
(Harvard-AI-and-Robotics-Lab/FiVE-Bench, commit 98ea719) compute them.  One item = one edited video.

**Frames** (``evaluate.py``): the source frames are the doc's frame folder (``images/<video>``) listed as
``sorted(glob('*.png') + glob('*.jpg') + glob('*.jpeg'))`` (file-name order, suffixes case-sensitive) and taken
every ``frame_stride``-th from the first (8); the masks are ``bmasks/<video>/<same file name>``, single-channel
images read as ``mask > 0`` (any non-zero JPEG noise counts as edit region).  The edited video's frames are taken
every ``frame_stride``-th from its first frame and each is **resized to the source frame size** (PIL ``resize``,
default bicubic).  Source and edited frames are then paired **by index**: ``zip(src[:len(tgt)], tgt, masks)``,
so an edit with fewer frames is compared with the first source frames and extra edited frames are ignored; there
is no temporal alignment.  Give the model the benchmark's frames from frame 0 at their native rate (for
``omnivideo``: ``edit_sampling_rate=1,edit_skip_num=0``) or the pairs show different instants.  Each contribution
records ``frames`` = ``[pairs compared, edited frames, strided source frames]`` and ``sizes`` (edit -> source).

**Regions** (``calculate_metric``): ``full`` frame; ``unedit`` = both frames multiplied by ``1 - mask`` (zeros in the
edit region, the metric taken over the whole frame), undefined (NaN) for a frame whose mask covers everything;
``edit`` = multiplied by ``mask``, undefined for an empty mask.  An item's value is the mean over its defined
frames (``calculate_mean``); an item with none has no value for that metric and is left out of the means.

**Measures** (``MetricsCalculator``), per frame pair (source first):

* ``five_pixels``: ``psnr`` (torchmetrics ``PeakSignalNoiseRatio(data_range=1)``), ``mse`` (``MeanSquaredError``),
  ``ssim`` (``StructuralSimilarityIndexMeasure(data_range=1)``: Gaussian 11, sigma 1.5) on pixels / 255, and
  ``lpips`` (``LearnedPerceptualImagePatchSimilarity('squeeze')`` on ``2 x - 1``; :mod:`omnieval.metrics.lpips`);
* ``five_structure_distance``: DINO ViT-B/8 key self-similarity distance on 0-255 pixels
  (:mod:`omnieval.metrics.dino_structure`);
* ``five_clip``: torchmetrics ``CLIPScore('openai/clip-vit-large-patch14')`` called on **one frame** at a time, so
  each frame's score is ``max(100 cos(frame, text), 0)`` (clamped per frame, then averaged); ``source_image``: the
  source frame with the source prompt, ``target_image``: the resized edited frame with the target prompt,
  ``target_image_edit_part``: the edited frame times the mask (``uint8(img * mask)``) with the target prompt; both
  prompts without FiVE's ``[...]`` brackets.  CLIP preprocessing: the transformers 4.x slow (PIL) processor the
  script ran with (``preprocess: pil``).

**Units**: values are in the units of FiVE's averaged tables (``evaluate.py`` scales column means by the header:
``structure_distance`` x1000, ``lpips_*`` x1000, ``mse_*`` x10000, ``ssim_*`` x100 -- substring tests, so the
whole-frame ``lpips`` / ``mse`` / ``ssim`` columns stay unscaled; PSNR and CLIP as computed).  Each item's value is
scaled (the mean of scaled values is the scaled mean).  **Averages**: mean over the items of each edit type, then
the unweighted mean over types (``final_averaged_results.csv``); ``group_by: [editing_type_id]`` gives the
per-type values.  FiVE rounds each per-type mean to 4 decimals before averaging them; omnieval does not.

Where omnieval differs: an ``.mp4`` edit is decoded directly (FiVE first re-encodes it to JPEG frames with ffmpeg);
FiVE's ``glob`` listing finds no frames in an edit folder whose name contains a complete ``[...]`` (a target prompt
prefix with a bracketed word; then every metric of that item is NaN) -- omnieval lists the folder without glob
patterns; a source/mask problem is an error naming the file here, where FiVE's loop prints it and skips the metric.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from omnieval.errors import ConfigError, MediaError
from omnieval.media import frame_count, read_image, sample_frames
from omnieval.metrics.base import MetricInput, State, sum_state
from omnieval.metrics.clip import check_choice
from omnieval.metrics.clip_backbones import (
    backbone_weights,
    default_device,
    load_backbone,
)
from omnieval.metrics.editing import DINO_ARCHS, load_dino, resize_to
from omnieval.metrics.macro import MacroMean
from omnieval.metrics.paired import PairedSizes, sizes_note
from omnieval.registry import register_metric

FRAME_SUFFIXES = (".png", ".jpg", ".jpeg")
REGIONS = {"full": "", "unedit": "_unedit_part", "edit": "_edit_part"}
#: FiVE's table scale of a column, by substring of its name, first match (``evaluate.py`` averaging)
TABLE_SCALES = (("structure_distance", 1000.0), ("lpips_", 1000.0), ("mse_", 10000.0), ("ssim_", 100.0),
                ("motion_fidelity_score", 100.0))


def table_scale(column: str) -> float:
    """The factor FiVE's averaged tables apply to ``column``'s mean (1 when no rule matches)."""
    return next((factor for part, factor in TABLE_SCALES if part in column), 1.0)


def list_frames(folder: Path) -> list[Path]:
    """FiVE's ``list_images``: the folder's ``*.png|*.jpg|*.jpeg`` files in file-name order."""
    if not folder.is_dir():
        raise MediaError(f"FiVE frame folder not found: {folder}")
    return sorted((p for p in folder.iterdir() if p.suffix in FRAME_SUFFIXES and p.is_file()), key=lambda p: p.name)


def read_mask(path: Path) -> np.ndarray:
    """``np.array(Image.open(path)) > 0`` of a single-channel mask, ``H x W`` bool."""
    from PIL import Image

    if not path.is_file():
        raise MediaError(f"FiVE mask not found: {path} (bmasks/<video>/ holds one mask per source frame, same file name)")
    with Image.open(path) as im:
        mask = np.array(im)
    if mask.ndim != 2:
        raise MediaError(f"FiVE mask {path} has shape {mask.shape}; evaluate.py needs single-channel masks")
    return mask > 0


@functools.lru_cache(maxsize=8)
def source_frames(folder: str, mask_folder: str, stride: int) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """Names, frames (``N x H x W x 3``) and masks (``N x H x W`` bool) of every ``stride``-th source frame."""
    files = list_frames(Path(folder))[::stride]
    if not files:
        raise MediaError(f"FiVE source folder {folder} has no .png/.jpg/.jpeg frames")
    frames = np.stack([read_image(f) for f in files])
    masks = np.stack([read_mask(Path(mask_folder) / f.name) for f in files])
    if masks.shape[1:] != frames.shape[1:3]:
        raise MediaError(f"FiVE masks in {mask_folder} are {masks.shape[1]}x{masks.shape[2]}, frames {frames.shape[1]}x{frames.shape[2]}")
    frames.flags.writeable = masks.flags.writeable = False
    return tuple(f.name for f in files), frames, masks


@dataclass(frozen=True)
class FramePairs:
    """Index-paired frames: ``source`` / ``edited`` ``N x H x W x 3`` uint8 (edited resized to the source size),
    ``masks`` ``N x H x W`` bool, and what the contribution records."""

    source: np.ndarray
    edited: np.ndarray
    masks: np.ndarray
    note: dict[str, Any]


def frame_pairs(item: MetricInput, stride: int, source_field: str = "media", mask_field: str = "mask") -> FramePairs:
    """The module docstring's pairing for one item (source and mask folders from the doc, relative to the data)."""
    doc = item.doc
    root = Path(doc.get("__media_root__", "."))
    try:
        folder, mask_folder = root / doc[source_field], root / doc[mask_field]
    except (KeyError, TypeError) as exc:
        raise MediaError(f"item {item.item_id}: FiVE metrics need doc[{source_field!r}] and doc[{mask_field!r}]") from exc
    _, src, masks = source_frames(str(folder), str(mask_folder), stride)
    n_out = frame_count(item.output)
    edited = sample_frames(item.output, np.arange(0, n_out, stride))
    n = min(len(src), len(edited))
    h, w = src.shape[1:3]
    resized = np.stack([resize_to(f, h, w) for f in edited[:n]])
    note = {"frames": [n, n_out, len(src)], "sizes": sizes_note(edited[0], src[0])}
    return FramePairs(src[:n], resized, masks[:n], note)


def region_weight(mask: np.ndarray, region: str) -> np.ndarray | None:
    """``H x W x 1`` float32 factor of a region (None: the whole frame), or an empty array when undefined."""
    if region == "full":
        return None
    keep = ~mask if region == "unedit" else mask
    return keep[..., None].astype(np.float32) if keep.any() else np.empty(0, np.float32)


def item_value(values: list[float | None]) -> float | None:
    """FiVE's ``calculate_mean``: the mean of the defined values, None when there is none."""
    defined = [v for v in values if v is not None and not np.isnan(v)]
    return float(sum(defined) / len(defined)) if defined else None


# ---------------------------------------------------------------------------------------------
# The metrics
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FiveOptions:
    """``frame_stride``: FiVE's ``frame_stride`` (8); ``macro_over``: the doc field whose groups are averaged
    first (FiVE: the edit type; None: plain mean over items); ``source_field`` / ``mask_field``: the doc fields
    holding the source frame folder and the mask folder (the ``five`` loader's ``media`` / ``mask``)."""

    frame_stride: int = 8
    macro_over: str | None = "editing_type_id"
    source_field: str = "media"
    mask_field: str = "mask"
    device: str | None = None

    def __post_init__(self):
        if self.frame_stride < 1:
            raise ConfigError(f"FiVE metric: frame_stride must be >= 1, got {self.frame_stride}")


@dataclass(frozen=True)
class FiveRegionOptions(FiveOptions):
    """``region``: full | unedit | edit (module docstring)."""

    region: str = "full"

    def __post_init__(self):
        super().__post_init__()
        check_choice(type(self).__name__, "region", self.region, tuple(REGIONS))


class FiveMetric(PairedSizes, MacroMean):
    """Per item: one FiVE column (:meth:`column`) from the index-paired frames; subclasses give ``frame_value``."""

    Options: ClassVar[type] = FiveOptions
    state: ClassVar[dict[str, State]] = {**MacroMean.state, "n_resized": sum_state(0)}
    needs = ("output", "doc")
    convention = ("FiVE evaluate.py: every frame_stride-th frame of source and edit from frame 0, the edit's frames "
                  "resized to the source size (PIL bicubic), paired by index (zip: the shorter side decides)")
    #: whether a higher value is better
    higher: ClassVar[bool] = True

    def column(self) -> str:
        raise NotImplementedError

    def region(self) -> str:
        return self.options.region

    def frame_value(self, src: np.ndarray, edited: np.ndarray, weight: np.ndarray | None, item: MetricInput) -> float:
        """The measure of one frame pair; ``weight``: the region's ``H x W x 1`` 0/1 factor (None: whole frame)."""
        raise NotImplementedError

    def is_higher_better(self, name: str) -> bool:
        return self.higher

    def score(self, inputs: list[MetricInput]) -> list[dict[str, Any]]:
        out = []
        for item in inputs:
            pairs = frame_pairs(item, self.options.frame_stride, self.options.source_field, self.options.mask_field)
            weights = [region_weight(m, self.region()) for m in pairs.masks]
            values = [None if w is not None and w.size == 0 else self.frame_value(s, e, w, item)
                      for s, e, w in zip(pairs.source, pairs.edited, weights)]
            value = item_value(values)
            contribution = {**pairs.note, **self.group_of(item)}
            if value is None:
                contribution["undefined"] = f"{self.column()}: no frame with a defined value (mask region empty)"
            else:
                contribution[self.column()] = value * table_scale(self.column())
            out.append(contribution)
        return out


def _unit_tensor(image: np.ndarray, weight: np.ndarray | None):
    """``1 x 3 x H x W`` float32 of ``image / 255``, times the region's weight (FiVE's ``calculate_psnr`` & co)."""
    import torch

    x = image.astype(np.float32) / 255
    if weight is not None:
        x = x * weight
    return torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1)[None]


def _psnr(a, b):
    from torchmetrics.functional.image import peak_signal_noise_ratio

    return peak_signal_noise_ratio(a, b, data_range=1.0)


def _mse(a, b):
    from torchmetrics.functional.regression import mean_squared_error

    return mean_squared_error(a[0].contiguous(), b[0].contiguous())


def _ssim(a, b):
    from torchmetrics.functional.image import structural_similarity_index_measure

    return structural_similarity_index_measure(a, b, data_range=1.0)


PIXEL_MEASURES = {"psnr": (_psnr, True), "mse": (_mse, False), "ssim": (_ssim, True), "lpips": (None, False)}


@dataclass(frozen=True)
class FivePixelOptions(FiveRegionOptions):
    """``measure``: psnr | lpips | mse | ssim; ``region`` (FiVE reports ``unedit``); ``lpips_path``: the SqueezeNet
    1.1 backbone file (default: the manifest's ``squeezenet1_1-imagenet``)."""

    measure: str = "psnr"
    region: str = "unedit"
    lpips_path: str | None = None

    def __post_init__(self):
        super().__post_init__()
        check_choice("five_pixels", "measure", self.measure, tuple(PIXEL_MEASURES))


@register_metric("five_pixels", description="FiVE-Bench PSNR / LPIPS / MSE / SSIM of edit vs source, unedited region by default", capability="edit_video")
class FivePixels(FiveMetric):
    Options = FivePixelOptions

    @property
    def higher(self) -> bool:  # type: ignore[override]
        return PIXEL_MEASURES[self.options.measure][1]

    def column(self) -> str:
        return self.options.measure + REGIONS[self.options.region]

    def required_weights(self) -> list[str]:
        from omnieval.metrics.lpips import lpips_weights

        return lpips_weights("squeeze", self.options.lpips_path) if self.options.measure == "lpips" else []

    def frame_value(self, src, edited, weight, item):
        a, b = _unit_tensor(src, weight), _unit_tensor(edited, weight)
        if self.options.measure == "lpips":
            from omnieval.metrics.lpips import load_lpips, lpips

            net = load_lpips("squeeze", self.options.lpips_path, self.options.device or default_device())
            device = next(net.parameters()).device
            return lpips(net, (a * 2 - 1).to(device), (b * 2 - 1).to(device))
        return float(PIXEL_MEASURES[self.options.measure][0](a, b))


@dataclass(frozen=True)
class FiveStructureOptions(FiveRegionOptions):
    """``dino``: backbone (:data:`~omnieval.metrics.editing.DINO_ARCHS`; FiVE: ``dino_vitb8``), ``dino_path``:
    weights overriding the manifest; ``layer``: the block whose keys are compared (11); ``region`` (FiVE reports
    ``full``)."""

    dino: str = "dino_vitb8"
    dino_path: str | None = None
    layer: int = 11

    def __post_init__(self):
        super().__post_init__()
        check_choice("five_structure_distance", "dino", self.dino, sorted(DINO_ARCHS))


@register_metric("five_structure_distance", description="FiVE-Bench structure distance (DINO ViT-B/8 key self-similarity), x1000", capability="edit_video")
class FiveStructureDistance(FiveMetric):
    Options = FiveStructureOptions
    higher = False

    def column(self) -> str:
        return "structure_distance" + REGIONS[self.options.region]

    def required_weights(self) -> list[str]:
        weight_id = DINO_ARCHS[self.options.dino]["weight_id"]
        return [] if (self.options.dino_path or weight_id is None) else [weight_id]

    def frame_value(self, src, edited, weight, item):
        from omnieval.metrics.dino_structure import structure_distance

        factor = 1.0 if weight is None else weight
        model = load_dino(self.options.dino, self.options.dino_path, self.options.device)
        return structure_distance(model, src.astype(np.float32) * factor, edited.astype(np.float32) * factor, self.options.layer)


#: five_clip ``which`` -> (frames: source | edited, doc field of the text, region)
CLIP_COLUMNS = {"source_image": ("source", "source_prompt", "full"), "target_image": ("edited", "prompt", "full"),
                "target_image_edit_part": ("edited", "prompt", "edit")}


@dataclass(frozen=True)
class FiveClipOptions(FiveOptions):
    """``which``: source_image | target_image | target_image_edit_part (FiVE's three CLIP columns); ``backbone``
    (torchmetrics' default ``openai/clip-vit-large-patch14``), ``backbone_path``, ``preprocess`` (``pil``: the
    transformers 4.x processor FiVE ran with); ``scale``: factor on the cosine (100)."""

    which: str = "target_image"
    backbone: str = "openai/clip-vit-large-patch14"
    backbone_path: str | None = None
    preprocess: str = "pil"
    scale: float = 100.0

    def __post_init__(self):
        super().__post_init__()
        check_choice("five_clip", "which", self.which, tuple(CLIP_COLUMNS))
        check_choice("five_clip", "preprocess", self.preprocess, ("default", "pil"))


@register_metric("five_clip", description="FiVE-Bench CLIP score per frame, max(100 cos, 0), of source / edit / edit region", capability="edit_video")
class FiveClip(FiveMetric):
    Options = FiveClipOptions

    def column(self) -> str:
        return "clip_similarity_" + self.options.which

    def required_weights(self) -> list[str]:
        return [] if self.options.backbone_path else backbone_weights(self.options.backbone)

    def score(self, inputs: list[MetricInput]) -> list[dict[str, Any]]:
        self._backbone = load_backbone(self.options.backbone, self.options.backbone_path, self.options.device,
                                       self.options.preprocess)
        self._texts: dict[str, Any] = {}  # text features of this batch's prompts, encoded once each
        return super().score(inputs)

    def region(self) -> str:
        return CLIP_COLUMNS[self.options.which][2]

    def frame_value(self, src, edited, weight, item):
        side, field, _ = CLIP_COLUMNS[self.options.which]
        frame = src if side == "source" else edited
        if weight is not None:  # the edit part: uint8(img * mask)
            frame = (frame * weight.astype(bool)).astype(np.uint8)
        text = item.doc.get(field)
        if not isinstance(text, str):
            raise MediaError(f"item {item.item_id}: five_clip needs the prompt doc[{field!r}]")
        if text not in self._texts:
            self._texts[text] = self._backbone.encode_texts([text])
        cos = float((self._backbone.encode_images(frame[None]) @ self._texts[text].T).squeeze())
        return max(self.options.scale * cos, 0.0)  # torchmetrics CLIPScore of one image: clamped per frame
