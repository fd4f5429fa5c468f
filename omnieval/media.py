"""Media in memory and on disk.

Conventions (they change metric values, so they are fixed here and documented):

* An **image** is a ``numpy.uint8`` array ``H x W x 3``, RGB.
* A **video** is a :class:`Video`: ``frames`` ``numpy.uint8`` ``T x H x W x 3`` RGB, plus ``fps``.
* Videos are written losslessly: H.264 in RGB (``libx264rgb``, crf 0), so re-reading with PyAV, cv2 or decord
  returns exactly the frames that were generated (a YUV round trip would change pixels by up to ~2 levels
  and so change every metric).  Some players cannot show 4:4:4 RGB H.264; pass ``codec="libx264"`` for a
  viewable (lossy, yuv420p) file.  Images are written as PNG.
* Frame sampling (:func:`sample_frame_indices`) is explicit about its policy, because VBench, lmms-eval
  and FVD protocols all differ.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from omnieval.errors import MediaError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".gif")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


@dataclass
class Video:
    """``frames``: uint8 ``T x H x W x 3`` RGB; ``fps``: frames per second; ``path``: the file it was decoded
    from, if any (a metric whose reference decodes the file its own way, e.g. resizing while decoding, uses it)."""

    frames: np.ndarray
    fps: float = 8.0
    path: str | None = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        self.frames = as_uint8_frames(self.frames, what="video")

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.frames.shape)


Media = "np.ndarray | Video"


def as_uint8_frames(array, what: str = "media") -> np.ndarray:
    """Validate a ``T x H x W x 3`` uint8 array (float in [0, 1] is converted), naming ``what`` on error."""
    arr = np.asarray(array)
    if arr.ndim != 4 or arr.shape[-1] != 3 or min(arr.shape) == 0:
        raise MediaError(f"{what}: expected frames of shape T x H x W x 3, got {arr.shape}")
    return _to_uint8(arr, what)


def as_uint8_image(array, what: str = "image") -> np.ndarray:
    """Validate an ``H x W x 3`` uint8 image (float in [0, 1] is converted), naming ``what`` on error."""
    arr = np.asarray(array)
    if arr.ndim != 3 or arr.shape[-1] != 3 or min(arr.shape) == 0:
        raise MediaError(f"{what}: expected an image of shape H x W x 3, got {arr.shape}")
    return _to_uint8(arr, what)


def _to_uint8(arr: np.ndarray, what: str) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise MediaError(f"{what}: contains NaN or infinite values")
        if arr.min() < -1e-3 or arr.max() > 1 + 1e-3:
            raise MediaError(f"{what}: float media must be in [0, 1], got [{arr.min():.3g}, {arr.max():.3g}]")
        return np.round(np.clip(arr, 0, 1) * 255).astype(np.uint8)
    raise MediaError(f"{what}: unsupported dtype {arr.dtype} (use uint8 or float in [0, 1])")


# ---------------------------------------------------------------------------------------------
# Reading and writing
# ---------------------------------------------------------------------------------------------
def write_video(video: Video, path: str | os.PathLike, *, codec: str = "libx264rgb", crf: int = 0) -> Path:
    """Write ``video`` to ``path`` with PyAV (default: lossless RGB H.264; see the module docstring)."""
    import av

    path = Path(path)
    frames = video.frames
    t, h, w, _ = frames.shape
    pad_h, pad_w = h % 2, w % 2  # yuv encoders want even sizes; pad by edge replication
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    from fractions import Fraction

    rate = Fraction(video.fps).limit_denominator(1001)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        if codec == "libx264rgb":
            stream.pix_fmt = "rgb24"
            stream.options = {"crf": str(crf), "preset": "veryfast"}
        else:
            stream.pix_fmt = "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def read_video(path: str | os.PathLike, *, max_frames: int | None = None) -> Video:
    """Decode all frames (or the first ``max_frames``) of a video file to RGB uint8."""
    import av

    path = Path(path)
    if not path.is_file():
        raise MediaError(f"video {'path is not a file' if path.exists() else 'file not found'}: {path}")
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            fps = float(stream.average_rate or stream.guessed_rate or 8.0)
            frames = []
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray(format="rgb24"))
                if max_frames and len(frames) >= max_frames:
                    break
    except IndexError as exc:  # streams.video[0]: a truncated file or one with no video stream
        raise MediaError(f"cannot decode video {path}: no video stream (truncated or not a video file)") from exc
    except (av.FFmpegError, ValueError) as exc:
        raise MediaError(f"cannot decode video {path}: {exc}") from exc
    if not frames:
        raise MediaError(f"video has no frames: {path}")
    return Video(np.stack(frames), fps=fps, path=str(path))


def write_image(image: np.ndarray, path: str | os.PathLike) -> Path:
    from PIL import Image

    path = Path(path)
    Image.fromarray(as_uint8_image(image)).save(path)
    return path


def read_image(path: str | os.PathLike) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise MediaError(f"image {'path is not a file' if path.exists() else 'file not found'}: {path}")
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError) as exc:
        raise MediaError(f"cannot decode image {path}: {exc}") from exc


def read_frame_folder(path: str | os.PathLike, fps: float = 8.0) -> Video:
    """A folder of frames as a video: ``*.png|*.jpg|*.jpeg`` in sorted file-name order (the order of
    ``sorted(glob(...))`` in the LOVEU-TGVE, V2VBench and FiVE scripts), each converted to RGB.  ``fps`` is not
    stored in frame folders; the task states it."""
    path = Path(path)
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if not files:
        raise MediaError(f"frame folder has no .png/.jpg frames: {path}")
    frames = [read_image(f) for f in files]
    if len({f.shape for f in frames}) != 1:
        raise MediaError(f"frame folder {path}: frames differ in size ({sorted({f.shape[:2] for f in frames})})")
    return Video(np.stack(frames), fps=fps, path=str(path))


def read_media(path: str | os.PathLike):
    """Read an image or a video, by file suffix; a folder is a video of its frames (:func:`read_frame_folder`)."""
    suffix = Path(path).suffix.lower()
    if Path(path).is_dir() and suffix not in VIDEO_SUFFIXES + IMAGE_SUFFIXES:
        return read_frame_folder(path)
    if suffix in VIDEO_SUFFIXES:
        return read_video(path)
    if suffix in IMAGE_SUFFIXES:
        return read_image(path)
    raise MediaError(f"unknown media type {suffix!r}: {path}")


def write_media(media, path_without_suffix: str | os.PathLike) -> Path:
    """Write an image (``.png``) or a :class:`Video` (``.mp4``); returns the path written."""
    base = str(path_without_suffix)
    if isinstance(media, Video):
        return write_video(media, base + ".mp4")
    return write_image(media, base + ".png")


def as_frames(media) -> np.ndarray:
    """Frames of a video, or a single image as a one-frame ``1 x H x W x 3`` array."""
    if isinstance(media, Video):
        return media.frames
    return as_uint8_image(media)[None]


# ---------------------------------------------------------------------------------------------
# Frame sampling
# ---------------------------------------------------------------------------------------------
FramePolicy = Literal["all", "uniform", "middle", "first", "stride"]


def sample_frame_indices(num_frames: int, num: int | None, policy: FramePolicy = "uniform", stride: int = 1) -> np.ndarray:
    """Indices of frames to use.

    * ``all``: every frame (``num`` ignored).
    * ``uniform``: ``linspace(0, T-1, num)`` rounded (lmms-eval / Video-MME convention).
    * ``middle``: VBench's ``get_frame_indices(sample='middle')``: integer segment bounds
      ``linspace(0, T, min(num, T) + 1)``, the floor-middle of each ``[start, next - 1]``, padded with the last
      index up to ``num``.
    * ``first``: the first ``num`` consecutive frames (stylegan-v generated clips start at frame 0).
    * ``stride``: every ``stride``-th frame, then the first ``num`` of those.
    """
    if num_frames <= 0:
        raise MediaError("cannot sample frames from an empty video")
    if policy == "all" or num is None:
        return np.arange(num_frames)
    if policy == "uniform":
        return np.linspace(0, num_frames - 1, num).round().astype(int)
    if policy == "middle":
        edges = np.linspace(0, num_frames, min(num, num_frames) + 1).astype(int)
        picked = (edges[:-1] + edges[1:] - 1) // 2
        return np.concatenate([picked, np.full(num - len(picked), picked[-1])]).astype(int)
    if policy == "first":
        if num_frames < num:
            raise MediaError(f"need {num} frames, video has {num_frames}")
        return np.arange(num)
    if policy == "stride":
        return np.arange(0, num_frames, stride)[:num]
    raise ValueError(f"unknown frame policy {policy!r}")


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
