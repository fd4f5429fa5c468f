"""FID and KID with torchmetrics' InceptionV3 (torch-fidelity ``inception-v3-compat`` weights).

Conventions (torchmetrics 1.9 ``FrechetInceptionDistance`` / ``KernelInceptionDistance``):

* Input: uint8 RGB images, any size; the network resizes to 299x299 and maps ``(x - 128) / 128``.
  ``antialias=True`` (the torchmetrics default since #3177) resizes with bilinear + antialias;
  **``antialias=False`` is needed to match clean TF / torch-fidelity FID** (TF1-style bilinear resize).
* Features: pool3 (``feature=2048``, default) or 64/192/768; videos contribute their selected frames
  (``frames`` / ``num_frames``, default all frames) as images.
* FID: means and **unbiased (N-1)** covariances from float64 running sums; ``||mu1-mu2||^2 + Tr(S1) + Tr(S2)
  - 2 sum(sqrt(eig(S1 S2)))`` (real part), exactly torchmetrics' ``_compute_fid``.
* KID: unbiased polynomial-kernel MMD ``k(x, y) = (gamma x.y + coef)^degree`` (gamma = 1/D) averaged over
  ``subsets`` random subsets of ``subset_size`` real and generated samples; reported as ``kid`` (mean) and
  ``kid_std`` (population std).  Subsets are drawn with a ``torch.Generator`` seeded by ``seed``, which
  reproduces torchmetrics after ``torch.manual_seed(seed)``.  KID keeps every feature vector (D floats per
  image): its state grows with the number of samples, as in torchmetrics.
* Real images: ``reference_dir`` (every image file in it, sorted by name) or, without it, each item's
  ``reference``.
* Weights: the manifest id ``inception-v3-compat`` (``weights-inception-2015-12-05-6726825d.pth``); the file is
  read with ``torch.load(weights_only=True)`` -- torch-fidelity itself would unpickle it unrestricted or
  download it.
"""
from __future__ import annotations

import functools
import io
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from omnieval.errors import ConfigError, MediaError, MissingWeightsError
from omnieval.media import IMAGE_SUFFIXES, as_frames, frame_count, read_image, sample_frame_indices, sample_frames
from omnieval.metrics.base import Metric, MetricInput, list_state, mergeable_state
from omnieval.metrics.frechet import FeatureStats
from omnieval.registry import register_metric

if TYPE_CHECKING:
    import torch

INCEPTION_WEIGHTS = "inception-v3-compat"
FEATURE_DIMS = (64, 192, 768, 2048)


# ---------------------------------------------------------------------------------------------
# Feature extractor
# ---------------------------------------------------------------------------------------------
def load_inception(feature: int = 2048, antialias: bool = True, weights_path: str | os.PathLike | None = None,
                   device: str | None = None) -> "torch.nn.Module":
    """torchmetrics' ``NoTrainInceptionV3`` with manifest weights (no download, no unrestricted unpickling)."""
    from omnieval.metrics.weights import resolve

    if feature not in FEATURE_DIMS:
        raise ConfigError(f"fid: feature must be one of {FEATURE_DIMS}, got {feature!r}")
    path = resolve(INCEPTION_WEIGHTS, weights_path)
    from omnieval.launch import resolve_device

    return _load_inception(int(feature), bool(antialias), str(path), resolve_device(device))


@functools.lru_cache(maxsize=2)
def _load_inception(feature: int, antialias: bool, path: str, device: str) -> "torch.nn.Module":
    import torch
    from torchmetrics.image.fid import NoTrainInceptionV3

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is reported the same way
        raise MissingWeightsError(f"{INCEPTION_WEIGHTS}: cannot read {path}: {exc}".splitlines()[0]) from exc
    # torch-fidelity unpickles whatever it is given without the weights-only guard: hand it our own
    # re-serialised tensors, so nothing from the user's file is unpickled outside weights_only.
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    net = NoTrainInceptionV3(name="inception-v3-compat", features_list=[str(feature)],
                             feature_extractor_weights_path=buffer, antialias=antialias)
    return net.to(device).eval()


def extract_features(images: np.ndarray | Sequence[np.ndarray], extractor: "torch.nn.Module", batch_size: int = 32) -> np.ndarray:
    """``N x D`` float32 features of uint8 ``H x W x 3`` images (a 4-D array or a list of any sizes)."""
    import torch

    items = list(images) if not (isinstance(images, np.ndarray) and images.ndim == 4) else images
    if len(items) == 0:
        raise MediaError("fid: no images")
    device = next(extractor.parameters(), torch.empty(0)).device
    out = []
    with torch.inference_mode():
        for batch in _same_size_batches(items, batch_size):
            x = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).to(device)
            out.append(extractor(x).float().reshape(len(batch), -1).cpu().numpy())
    return np.concatenate(out)


def _same_size_batches(items: Sequence[np.ndarray], batch_size: int) -> Iterable[np.ndarray]:
    batch: list[np.ndarray] = []
    for image in items:
        image = as_frames(image)[0] if image.ndim == 3 else image
        if batch and (len(batch) == batch_size or image.shape != batch[0].shape):
            yield np.stack(batch)
            batch = []
        batch.append(image)
    if batch:
        yield np.stack(batch)


# ---------------------------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------------------------
def frechet_distance_from_stats(real: FeatureStats, fake: FeatureStats) -> float:
    """FID from two :class:`FeatureStats` (torchmetrics ``_compute_fid``: eigenvalues of S1 S2)."""
    import torch
    from torchmetrics.image.fid import _compute_fid

    mu1, s1 = (torch.from_numpy(a) for a in real.mean_cov(ddof=1))  # unbiased, as torchmetrics
    mu2, s2 = (torch.from_numpy(a) for a in fake.mean_cov(ddof=1))
    return float(_compute_fid(mu1, s1, mu2, s2))


def kid_from_features(real: np.ndarray, fake: np.ndarray, subsets: int = 100, subset_size: int = 1000, degree: int = 3,
                      gamma: float | None = None, coef: float = 1.0, seed: int = 0) -> tuple[float, float]:
    """KID mean and std over random subsets (torchmetrics ``poly_mmd``; see the module docstring)."""
    import torch
    from torchmetrics.image.kid import poly_mmd

    for side, feats in (("real", real), ("generated", fake)):
        if len(feats) < subset_size:
            raise MediaError(f"kid: subset_size {subset_size} exceeds the {len(feats)} {side} samples; lower subset_size")
    fr, ff = torch.from_numpy(np.asarray(real)), torch.from_numpy(np.asarray(fake))
    gen = torch.Generator().manual_seed(seed)
    scores = []
    for _ in range(subsets):
        r = fr[torch.randperm(len(fr), generator=gen)[:subset_size]]
        f = ff[torch.randperm(len(ff), generator=gen)[:subset_size]]
        scores.append(poly_mmd(r, f, degree, gamma, coef))
    stacked = torch.stack(scores)
    return float(stacked.mean()), float(stacked.std(unbiased=False))


# ---------------------------------------------------------------------------------------------
# Functional forms
# ---------------------------------------------------------------------------------------------
def compute_fid(real: np.ndarray | Sequence[np.ndarray], fake: np.ndarray | Sequence[np.ndarray], *, feature: int = 2048,
                antialias: bool = True, weights_path: str | None = None, extractor: "torch.nn.Module | None" = None) -> float:
    """FID between two sets of uint8 ``H x W x 3`` images (torchmetrics conventions; module docstring)."""
    net = extractor if extractor is not None else load_inception(feature, antialias, weights_path)
    stats = []
    for images in (real, fake):
        s = FeatureStats()
        s.update(extract_features(images, net))
        stats.append(s)
    return frechet_distance_from_stats(*stats)


def compute_kid(real, fake, *, feature: int = 2048, antialias: bool = True, weights_path: str | None = None,
                extractor: "torch.nn.Module | None" = None, **kid_options: Any) -> tuple[float, float]:
    """KID (mean, std) between two sets of uint8 images; ``kid_options`` as :func:`kid_from_features`."""
    net = extractor if extractor is not None else load_inception(feature, antialias, weights_path)
    return kid_from_features(extract_features(real, net), extract_features(fake, net), **kid_options)


def reference_images(directory: str | os.PathLike) -> list[np.ndarray]:
    """Every image in ``directory`` (sorted by file name), as uint8 arrays."""
    root = Path(directory)
    if not root.is_dir():
        raise MediaError(f"reference image folder not found: {root}")
    files = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise MediaError(f"reference image folder has no images ({', '.join(IMAGE_SUFFIXES)}): {root}")
    return [read_image(p) for p in files]


# ---------------------------------------------------------------------------------------------
# Stateful metrics
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class InceptionOptions:
    """``reference_dir``: folder of real images (else each item's ``reference``); ``feature``: 64/192/768/2048;
    ``antialias``: torchmetrics resize (True) or TF1-style (False, clean-FID parity); ``weights_path``: the
    InceptionV3 file overriding the manifest; ``frames``/``num_frames``: frames of videos used as images."""

    reference_dir: str | None = None
    feature: int = 2048
    antialias: bool = True
    weights_path: str | None = None
    frames: str = "all"
    num_frames: int | None = None
    device: str | None = None
    batch_size: int = 32

    def __post_init__(self):
        if self.feature not in FEATURE_DIMS:
            raise ConfigError(f"feature must be one of {FEATURE_DIMS}, got {self.feature!r}")


class InceptionMetric(Metric):
    """Shared part of FID/KID: features of outputs (and per-item references) per item; real set from a folder."""

    Options = InceptionOptions
    higher_is_better = False
    bootstrap = False

    #: set by tests or callers to use another feature network (an ``nn.Module`` mapping uint8 NCHW to N x D)
    extractor: "torch.nn.Module | None" = None

    def required_weights(self) -> list[str]:
        """The InceptionV3 file, unless given as ``weights_path`` or a custom extractor is set."""
        return [] if (self.options.weights_path or self.extractor is not None) else [INCEPTION_WEIGHTS]

    def network(self) -> "torch.nn.Module":
        if self.extractor is None:
            o = self.options
            self.extractor = load_inception(o.feature, o.antialias, o.weights_path, o.device)
        return self.extractor

    def _features(self, media: Any, what: str) -> np.ndarray:
        if media is None:
            raise MediaError(f"{what}: missing")
        try:  # a file-backed video decodes only the selected frames
            frames = sample_frames(media, sample_frame_indices(frame_count(media), self.options.num_frames,
                                                               self.options.frames))  # type: ignore[arg-type]
        except MediaError as exc:
            raise MediaError(f"{what}: {exc}") from exc
        return extract_features(frames, self.network(), self.options.batch_size)

    def contributions(self, inputs: list[MetricInput]) -> list[dict[str, Any]]:
        out = []
        for item in inputs:
            c: dict[str, Any] = {"features": self._features(item.output, f"item {item.item_id} output")}
            if self.options.reference_dir is None:
                c["reference_features"] = self._features(item.reference, f"item {item.item_id} reference")
            out.append(c)
        return out

    def folder_features(self) -> np.ndarray:
        """Features of ``reference_dir`` (computed once per instance family; ``fresh()`` shares them)."""
        cache = self.__dict__.setdefault("_folder_cache", {})
        if "features" not in cache:
            cache["features"] = extract_features(reference_images(self.options.reference_dir), self.network(), self.options.batch_size)
        return cache["features"]


@register_metric("fid", description="FID (torchmetrics InceptionV3, unbiased covariance) vs reference images", capability=("t2i", "t2v", "edit_image"))
class FID(InceptionMetric):
    state = {"fake": mergeable_state(FeatureStats), "real": mergeable_state(FeatureStats)}

    def fold(self, contribution):
        self.fake.update(contribution["features"])
        if "reference_features" in contribution:
            self.real.update(contribution["reference_features"])

    def compute(self):
        real = self.real
        if self.options.reference_dir is not None:
            real = FeatureStats()
            real.update(self.folder_features())
        return {"fid": frechet_distance_from_stats(real, self.fake)}


@dataclass(frozen=True)
class KIDOptions(InceptionOptions):
    """KID subsets (torchmetrics defaults 100 x 1000), polynomial kernel and the subset-sampling ``seed``."""

    subsets: int = 100
    subset_size: int = 1000
    degree: int = 3
    gamma: float | None = None
    coef: float = 1.0
    seed: int = 0


@register_metric("kid", description="KID (torchmetrics polynomial-kernel MMD over random subsets) vs reference images", capability=("t2i", "t2v", "edit_image"))
class KID(InceptionMetric):
    Options = KIDOptions
    state = {"fake": list_state(), "real": list_state()}

    def fold(self, contribution):
        self.fake.append(np.asarray(contribution["features"], dtype=np.float32))
        if "reference_features" in contribution:
            self.real.append(np.asarray(contribution["reference_features"], dtype=np.float32))

    def compute(self):
        o = self.options
        real = self.folder_features() if o.reference_dir is not None else _concat(self.real)
        mean, std = kid_from_features(real, _concat(self.fake), o.subsets, o.subset_size, o.degree, o.gamma, o.coef, o.seed)
        return {"kid": mean, "kid_std": std}


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    if not parts:
        raise MediaError("kid: no samples")
    return np.concatenate(parts)
