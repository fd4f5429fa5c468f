"""Shared pieces of the VBench dimensions: video access at VBench's conventions, the per-dimension base class.

Conventions (VBench 0.1.5, ``vbench/<dimension>.py``):

* VBench decodes every video file with ``cv2.VideoCapture`` (BGR, converted to RGB where a network is
  used) and reads the frame rate from ``CAP_PROP_FPS``.  :func:`read_video_cv2` does the same and returns a
  :class:`~omnieval.media.Video` (RGB uint8 ``T x H x W x 3``).  PyAV, decord and cv2 decode H.264 / MPEG-4 to
  identical frames (``shared/reference/environment.md`` section 10), so in-memory videos decoded by
  :func:`omnieval.media.read_video` give the same numbers.
* A dimension's value is the **mean over videos of per-video scores** (``np.mean(sim)`` in every
  single-process branch of VBench).  Each video is one contribution; :class:`VBenchDimensionMetric` folds
  ``{dimension: score}`` into running sums, so the value does not depend on how the videos were split over
  processes (unlike VBench's multi-GPU branches, see metric-conventions.md section 1.4).
* A video the dimension does not score (VBench's ``except AssertionError: continue``, or a video removed by
  the static filter) contributes ``{"<dimension>_skipped": reason}`` and no number.  A dimension with no
  scored video is *missing*: :meth:`VBenchDimensionMetric.compute` returns ``{}`` for it, never 0.

API used by the per-dimension modules (keep stable)::

    class MyDim(VBenchDimensionMetric):
        dimension = "subject_consistency"
        Options = MyOptions                       # frozen dataclass of conventions
        weights = ("vbench_dino_vitb16",)         # manifest ids (omnieval/metrics/manifest/vbench.yaml)
        def score_video(self, video: Video, item: MetricInput) -> float | Skip: ...

``score_video`` receives the item's video (:func:`as_video` already applied) and returns a float or
:class:`Skip` (or any result a subclass turns into a contribution by overriding ``result_entry``).  A dimension
whose network runs frame by frame overrides ``score_videos(videos, items)`` instead, so that the frames of all
videos of one ``contributions`` call share forward batches.  Heavy networks are built lazily with
:meth:`VBenchDimensionMetric.cached` so that ``fresh()`` clones share them, and with
:meth:`VBenchDimensionMetric.load_shared` so that every metric of the process using the same weight file shares
one instance (CLIP ViT-B/32, ViCLIP, RAFT, GRiT: loaded once per run).  Networks are built without their random
initialisation (:func:`skip_init`) when a strict checkpoint load follows.

Speed conventions (none moves a value beyond float32 rounding; the parity tests bound it): ``torch.inference_mode``;
forward batches do not mix information between samples (every network here is per-sample: instance/eval-mode
batch norm, no cross-sample attention).
"""
from __future__ import annotations

import contextlib
import os
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from omnieval.errors import MediaError, OmniEvalError
from omnieval.media import Video
from omnieval.metrics.base import MeanMetric, MetricInput

#: The 16 VBench dimensions, in the order of VBench's leaderboard / ``scripts/constant.py``.
DIMENSIONS: tuple[str, ...] = (
    "subject_consistency",
    "background_consistency",
    "temporal_flickering",
    "motion_smoothness",
    "dynamic_degree",
    "aesthetic_quality",
    "imaging_quality",
    "object_class",
    "multiple_objects",
    "human_action",
    "color",
    "spatial_relationship",
    "scene",
    "temporal_style",
    "appearance_style",
    "overall_consistency",
)

#: Dimensions whose score needs the prompt's ``auxiliary_info`` (VBench refuses them in custom_input mode).
AUXILIARY_DIMENSIONS: tuple[str, ...] = (
    "object_class",
    "multiple_objects",
    "scene",
    "appearance_style",
    "color",
    "spatial_relationship",
)


@dataclass(frozen=True)
class Skip:
    """A video the dimension does not score (and why); it contributes no number."""

    reason: str


# ---------------------------------------------------------------------------------------------
# Videos at VBench's conventions
# ---------------------------------------------------------------------------------------------
def read_video_cv2(path: str | os.PathLike, rgb: bool = True) -> Video:
    """Decode ``path`` exactly like VBench: ``cv2.VideoCapture`` until the first failed read, BGR -> RGB.

    ``fps`` is ``CAP_PROP_FPS`` (VBench's dynamic_degree uses it for the frame interval).  ``rgb=False`` keeps
    cv2's BGR order (for channel-symmetric computations such as temporal flickering).
    """
    import cv2

    path = Path(path)
    if not path.is_file():
        raise MediaError(f"video file not found: {path}")
    capture = cv2.VideoCapture(str(path))
    fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
    frames = []
    try:
        while capture.isOpened():
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(frame)
    finally:
        capture.release()
    if not frames:
        raise MediaError(f"video has no decodable frames: {path}")
    array = np.stack(frames)
    if rgb:
        array = np.ascontiguousarray(array[..., ::-1])
    return Video(array, fps=fps if fps > 0 else 8.0)


def as_video(output: Any, item_id: str = "?") -> Video:
    """The item's output as a :class:`Video`: a Video, a ``T x H x W x 3`` array (fps 8) or a video file path."""
    if isinstance(output, Video):
        return output
    if isinstance(output, (str, os.PathLike)):
        return read_video_cv2(output)
    if isinstance(output, np.ndarray):
        return Video(output)
    raise MediaError(f"item {item_id}: expected a video (Video, T x H x W x 3 array or file path), got {type(output).__name__}")


def require_frames(video: Video, minimum: int, item_id: str, dimension: str) -> None:
    if len(video) < minimum:
        raise MediaError(f"item {item_id}: {dimension} needs at least {minimum} frames, the video has {len(video)}")


def auxiliary_info(item: MetricInput, dimension: str) -> dict:
    """The prompt's ``auxiliary_info`` for ``dimension`` (from ``VBench_full_info.json``, kept in ``item.doc``)."""
    info = (item.doc.get("auxiliary_info") or {}).get(dimension)
    if info is None:
        raise OmniEvalError(
            f"item {item.item_id}: {dimension} needs the prompt's auxiliary_info (use the VBench prompt suite, "
            "omnieval.metrics.vbench.suite.load_prompt_suite)"
        )
    return info


# ---------------------------------------------------------------------------------------------
# Runtime helpers
# ---------------------------------------------------------------------------------------------
def default_device() -> str:
    """``$OMNIEVAL_DEVICE``, else ``cuda:<local rank>`` when available, else ``cpu``
    (:func:`omnieval.launch.default_device`; not part of the options: it does not move the number beyond
    floating-point noise)."""
    from omnieval.launch import default_device as launch_default

    return launch_default()


def import_vbench(module: str = "vbench"):
    """Import a module of the ``vbench`` package (the engine for its networks), with a one-line error if absent."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise OmniEvalError(
            f"{module} is needed for this VBench dimension but cannot be imported ({exc}); "
            "install it with `pip install --no-deps vbench==0.1.5` and the omnieval[vbench] extra"
        ) from exc


def load_state_dict(path: str | os.PathLike, key: str | None = None, strip_prefix: str = "module.") -> dict:
    """A checkpoint's state dict, loaded without executing code (``torch.load(weights_only=True)``).

    ``key``: take ``checkpoint[key]`` (e.g. AMT's ``'state_dict'``); ``strip_prefix``: removed from key names
    (DataParallel's ``module.``).
    """
    try:
        checkpoint = _torch_load(path)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad weight file
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise OmniEvalError(f"cannot load weights {path} safely (weights_only=True): {first}") from exc
    if key is not None:
        if not isinstance(checkpoint, dict) or key not in checkpoint:
            raise OmniEvalError(f"weights {path}: no {key!r} entry")
        checkpoint = checkpoint[key]
    if not isinstance(checkpoint, dict):
        raise OmniEvalError(f"weights {path}: expected a state dict, got {type(checkpoint).__name__}")
    if strip_prefix:
        checkpoint = {k[len(strip_prefix):] if k.startswith(strip_prefix) else k: v for k, v in checkpoint.items()}
    return checkpoint


def _torch_load(path: str | os.PathLike):
    """``torch.load(weights_only=True)``, memory-mapped when the file allows it (zip format: the tensors are read
    once, straight into the network, instead of into a buffer first -- 1.6 GB ViCLIP 0.95 s -> 0.25 s); legacy
    files are read normally."""
    import torch

    try:
        return torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as exc:
        if "mmap" not in str(exc):
            raise
        return torch.load(str(path), map_location="cpu", weights_only=True)


def read_checkpoint(path: str | os.PathLike, network: str) -> dict:
    """The state dict of a ``{"model": state_dict, ...}`` checkpoint (detectron2's and BLIP's layout) or of a bare
    state dict, loaded without executing code: ``torch.load(weights_only=True)``, else omnieval's restricted
    unpickler.  A missing file or one without a state dict -> :class:`MissingWeightsError` naming it."""
    import torch

    from omnieval.errors import MissingWeightsError
    from omnieval.safe_pickle import restricted_load

    if not Path(path).is_file():
        raise MissingWeightsError(f"{network} weights not found: {path}")
    try:
        checkpoint = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - retry with the restricted unpickler (numpy entries, old formats)
        try:
            checkpoint = restricted_load(path)
        except Exception as exc:  # noqa: BLE001 - any failure is a bad weight file
            raise OmniEvalError(f"cannot load {network} weights {path} safely: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
    state = checkpoint.get("model", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise MissingWeightsError(f"{path}: not a {network} checkpoint (no state dict)")
    return {k: torch.as_tensor(v) for k, v in state.items() if isinstance(v, torch.Tensor) or hasattr(v, "__array__")}


#: ``torch.nn.init`` functions that fill a tensor in place (what module constructors call to initialise weights)
_INIT_FUNCTIONS = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
                   "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "sparse_")


@contextlib.contextmanager
def skip_init(*extra: tuple[Any, str]):
    """Build a network without its random initialisation: inside the block, ``torch.nn.init``'s in-place
    initialisers (and any ``(module, function name)`` in ``extra``, e.g. a copy of timm's ``trunc_normal_``) return
    their tensor untouched.  For networks whose every weight is then loaded strictly from a checkpoint (their
    parameters hold uninitialised memory until then): it saves seconds per ViT-L (CLIP ViT-L/14 4.5 s -> 1.7 s)."""
    import torch.nn.init as init

    targets = [(init, name) for name in _INIT_FUNCTIONS if hasattr(init, name)] + list(extra)
    saved = [(owner, name, getattr(owner, name)) for owner, name in targets]
    for owner, name in targets:
        setattr(owner, name, _untouched)
    try:
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


def _untouched(tensor, *args, **kwargs):
    return tensor


def load_matching(module, state: dict, path: str | os.PathLike, network: str, *, ignore_unexpected: bool = False) -> None:
    """Load ``state`` into ``module`` only if every weight is there with its shape (and, unless
    ``ignore_unexpected``, nothing else is): otherwise a one-line :class:`MissingWeightsError` naming the file, so a
    checkpoint that would leave weights random never passes silently."""
    from omnieval.errors import MissingWeightsError

    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [] if ignore_unexpected else [k for k in state if k not in expected]
    if missing or unexpected:
        parts = [f"{len(missing)} weights missing (e.g. {missing[0]})"] if missing else []
        parts += [f"{len(unexpected)} unexpected (e.g. {unexpected[0]})"] if unexpected else []
        raise MissingWeightsError(f"{path}: not a {network} checkpoint for this configuration: {', '.join(parts)}")
    wrong = [k for k, v in expected.items() if tuple(state[k].shape) != tuple(v.shape)]
    if wrong:
        raise MissingWeightsError(f"{path}: not a {network} checkpoint for this configuration: {len(wrong)} weights "
                                  f"have other shapes (e.g. {wrong[0]}: {tuple(state[wrong[0]].shape)} vs "
                                  f"{tuple(expected[wrong[0]].shape)})")
    module.load_state_dict({k: state[k] for k in expected}, strict=True)


# ---------------------------------------------------------------------------------------------
# The per-dimension metric
# ---------------------------------------------------------------------------------------------
class VBenchDimensionMetric(MeanMetric):
    """One VBench dimension: per-video score, value = mean over scored videos (VBench's single-process rule).

    Subclasses set ``dimension`` and ``Options`` and implement :meth:`score_video`.  ``compute()`` returns
    ``{dimension: mean}``, or ``{}`` when no video was scored (the dimension is then *missing*).
    """

    dimension: ClassVar[str] = ""
    weights: ClassVar[tuple[str, ...]] = ()
    #: name of an option holding an explicit checkpoint path; when set, no manifest weight is required
    path_option: ClassVar[str | None] = "ckpt_path"

    def required_weights(self) -> list[str]:
        """Manifest ids to check at start-up: none with an explicit path; the ``weight_id`` option when the
        dimension has one (so a user's choice of checkpoint is what gets checked), else ``weights``."""
        if self.path_option and getattr(self.options, self.path_option, None):
            return []
        weight_id = getattr(self.options, "weight_id", None)
        return [weight_id] if weight_id else list(self.weights)

    def score_video(self, video: Video, item: MetricInput) -> float | Skip:  # pragma: no cover - abstract
        raise NotImplementedError

    def score_videos(self, videos: list[Video], items: list[MetricInput]) -> list[Any]:
        """The results of several videos: :meth:`score_video` one by one, unless a dimension overrides this to share
        network batches across the videos of a ``contributions`` call."""
        return [self.score_video(video, item) for video, item in zip(videos, items)]

    def score(self, inputs: list[MetricInput]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        videos = [as_video(item.output, item.item_id) for item in inputs]
        for result in self.score_videos(videos, inputs):
            if isinstance(result, Skip):
                out.append({f"{self.dimension}_skipped": result.reason})
            else:
                out.append(self.result_entry(result))
        return out

    def result_entry(self, result: Any) -> dict[str, Any]:
        """The contribution of one scored video (override for richer results, e.g. pooled sums)."""
        return {self.dimension: float(result)}

    def compute(self) -> dict[str, float]:
        return {k: v for k, v in super().compute().items() if k == self.dimension}

    def cached(self, name: str, build: Callable[[], Any], share: tuple | None = None) -> Any:
        """A lazily built heavy member (network), shared by ``fresh()`` clones.  With a ``share`` key, also shared
        by every metric of the process that asks for the same key (see :func:`shared_network`)."""
        store = self.__dict__.setdefault("_cache", {})
        if name not in store:
            store[name] = build() if share is None else shared_network(share, build)
        return store[name]

    def load_shared(self, name: str, loader: Callable[[Any, str], Any], weight_id: str, explicit: str | os.PathLike | None = None) -> Any:
        """``loader(path, device)`` as the member ``name``, ``path`` being the weight ``weight_id`` (or ``explicit``),
        built once per process for the same loader, file and device (e.g. CLIP ViT-B/32 for background_consistency
        and appearance_style, ViCLIP for temporal_style and overall_consistency, RAFT for dynamic_degree and the
        static filter)."""
        store = self.__dict__.setdefault("_cache", {})
        if name in store:
            return store[name]
        from omnieval.metrics.weights import resolve

        path, device = resolve(weight_id, explicit), default_device()
        key = (f"{loader.__module__}.{loader.__qualname__}", str(Path(path).resolve()), device)
        return self.cached(name, lambda: loader(path, device), share=key)


#: networks built by :func:`shared_network`, held weakly: a network lives as long as a metric holds it
_SHARED_NETWORKS: "weakref.WeakValueDictionary[tuple, Any]" = weakref.WeakValueDictionary()


def shared_network(key: tuple, build: Callable[[], Any]) -> Any:
    """The network registered under ``key`` in this process, built with ``build()`` on first use.

    ``key`` must name everything that makes the network (loader, weight file, device, options that change it).
    Networks are not modified by the metrics (eval mode, inference only), so one instance serves all of them."""
    network = _SHARED_NETWORKS.get(key)
    if network is None:
        network = build()
        try:
            _SHARED_NETWORKS[key] = network
        except TypeError:  # not weak-referenceable: not shared
            pass
    return network
