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

import math
import os
from pathlib import Path
from typing import Literal

import numpy as np

from omnieval.errors import MediaError
from omnieval.videofile import VideoInfo, max_decoded_bytes, probe_video  # noqa: F401 - re-exported

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".gif")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


class Video:
    """A video: ``frames`` uint8 ``T x H x W x 3`` RGB, ``fps`` frames per second, ``path`` the file it was read
    from, if any (a metric whose reference decodes the file its own way, e.g. resizing while decoding, uses it).

    ``Video(frames, fps)`` holds frames in memory.  :meth:`from_file` (what :func:`read_video` returns) is
    *file-backed and lazy*: only the header is read; ``frames`` decodes the whole file on first access and keeps
    it; :meth:`sample` decodes only the requested frames (seeking, see :mod:`omnieval.videofile`) and keeps
    nothing; ``len()`` and ``shape`` come from a demuxing pass (no decoding).  Both refuse short reads and reads
    above the decoded-size cap with a :class:`MediaError` naming the file.
    """

    def __init__(self, frames, fps: float = 8.0, path: str | None = None):
        self._frames: np.ndarray | None = as_uint8_frames(frames, what="video")
        self.fps = fps
        self.path = path
        self._file: _FileBacking | None = None

    @property
    def fps(self) -> float:
        return self._fps

    @fps.setter
    def fps(self, value) -> None:
        """A finite rate > 0 (a NaN or zero rate cannot be written, and would be recorded as bare NaN)."""
        try:
            ok = math.isfinite(float(value)) and float(value) > 0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise MediaError(f"video: fps must be a finite number > 0, got {value!r}")
        self._fps = float(value)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> Video:
        """A lazy video backed by ``path`` (the header is read now, so an unreadable file fails here)."""
        info = probe_video(path)
        video = cls.__new__(cls)
        video._frames, video.fps, video.path = None, info.fps if info.fps > 0 else 8.0, str(path)
        video._file = _FileBacking(Path(path), info)
        return video

    # -- frames ---------------------------------------------------------------------------------
    @property
    def frames(self) -> np.ndarray:
        if self._frames is None:
            self._frames = self._file.decode_all()
        return self._frames

    @frames.setter
    def frames(self, value) -> None:
        self._frames = as_uint8_frames(value, what="video")
        self._file = None  # the frames no longer are the file's

    @property
    def decoded(self) -> bool:
        """Whether the frames are in memory (always, for a video built from an array)."""
        return self._frames is not None

    @property
    def source_file(self) -> Path | None:
        """The file whose decoded frames these are (a file-backed video whose frames were not replaced)."""
        return self._file.path if self._file is not None else None

    def sample(self, indices) -> np.ndarray:
        """Frames ``indices`` (frame numbers, repeats allowed) as uint8 ``N x H x W x 3``; a file-backed video
        that is not decoded decodes only these frames (the same pixels full decoding gives)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if self._frames is not None:
            if idx.size and (idx.min() < 0 or idx.max() >= len(self._frames)):
                raise MediaError(f"video{_where(self.path)}: frame index out of range 0..{len(self._frames) - 1}: "
                                 f"{idx[(idx < 0) | (idx >= len(self._frames))][0]}")
            return self._frames[idx]
        got = self._file.decode(idx)
        return np.stack([got[int(i)] for i in idx]) if idx.size else np.empty((0, *self.shape[1:]), np.uint8)

    def verify(self) -> None:
        """Check a file-backed video for short reads without decoding (one demuxing pass; no-op in memory)."""
        if self._file is not None:
            self._file.index()

    def __len__(self) -> int:
        return int(self._frames.shape[0]) if self._frames is not None else len(self._file.index())

    @property
    def shape(self) -> tuple[int, ...]:
        if self._frames is not None:
            return tuple(self._frames.shape)
        info = self._file.info
        return (len(self), info.height, info.width, 3)

    def __repr__(self) -> str:
        state = "in memory" if self._frames is not None else "not decoded"
        return f"Video(shape={self.shape if self._frames is not None else '?'}, fps={self.fps}, {state}{_where(self.path)})"


def _where(path) -> str:
    return f" {path}" if path else ""


class _FileBacking:
    """The file behind a lazy :class:`Video`: its header info and (built on demand) its frame index."""

    def __init__(self, path: Path, info):
        self.path, self.info = path, info
        self._index = None

    def index(self):
        from omnieval.videofile import build_index

        if self._index is None:
            self._index = build_index(self.path, self.info)
        return self._index

    def decode_all(self) -> np.ndarray:
        from omnieval.videofile import decode_all

        return decode_all(self.path, self.info, num_frames=len(self._index) if self._index is not None else None)

    def decode(self, positions) -> dict[int, np.ndarray]:
        from omnieval.videofile import decode_frames

        return decode_frames(self.path, positions, self.index(), self.info)


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
    """A file-backed, lazy :class:`Video` of ``path`` (the header is read now: a missing, unreadable or
    stream-less file fails here; frames decode on use).  With ``max_frames``: the first ``max_frames`` frames,
    decoded into memory."""
    video = Video.from_file(path)
    if max_frames:
        from omnieval.videofile import decode_all

        return Video(decode_all(path, video._file.info, max_frames=max_frames), fps=video.fps, path=str(path))
    return video


def write_image(image: np.ndarray, path: str | os.PathLike) -> Path:
    from PIL import Image

    path = Path(path)
    Image.fromarray(as_uint8_image(image)).save(path)
    return path


#: What :func:`read_image` does with transparency (RGBA, LA, PA, palette or grey images with a ``tRNS`` entry).
#: ``"ignore"`` (default): keep the colour channels and drop alpha -- exactly ``Image.open(p).convert("RGB")``,
#: which is what the metrics' references do (MagicBrush's ``image_eval.py``, GenEval, the CLIP preprocessors),
#: so scores match theirs; a warning says so once per process.  ``"white"`` / ``"black"``: composite on that
#: background, ``round(c * a + bg * (1 - a))`` with ``a`` = alpha / 255.
ALPHA = "ignore"
ALPHA_BACKGROUNDS = {"white": 255, "black": 0}
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_alpha_warned = False


def read_image(path: str | os.PathLike, *, alpha: str | None = None) -> np.ndarray:
    """Decode an image file to uint8 ``H x W x 3`` RGB.

    * 16-bit greyscale (PNG ``I;16``, or ``I`` holding 0..65535) is scaled, ``round(v / 257)`` (65535 -> 255, the
      inverse of the 8 -> 16 bit expansion ``v * 257``), and replicated to RGB.  PIL's ``convert("RGB")`` would
      clip every value above 255 to white.
    * Transparency follows ``alpha`` (default :data:`ALPHA`, see there).
    * Images of more than ``PIL.Image.MAX_IMAGE_PIXELS`` pixels (89.5 M by default) are refused as possible
      decompression bombs (a :class:`MediaError`, one line); raise that limit for genuinely huge images.
    """
    import warnings

    from PIL import Image, UnidentifiedImageError

    policy = ALPHA if alpha is None else alpha
    if policy != "ignore" and policy not in ALPHA_BACKGROUNDS:
        raise ValueError(f"alpha must be one of ignore, {', '.join(ALPHA_BACKGROUNDS)}; got {policy!r}")
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"image {'path is not a file' if path.exists() else 'file not found'}: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                return _to_rgb(img, policy, path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise MediaError(f"image {path} refused: {exc} (PIL.Image.MAX_IMAGE_PIXELS is "
                         f"{Image.MAX_IMAGE_PIXELS} pixels)") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise MediaError(f"cannot decode image {path}: {exc}") from exc


def _to_rgb(img, alpha: str, path: Path) -> np.ndarray:
    """A PIL image -> uint8 ``H x W x 3`` (see :func:`read_image`)."""
    global _alpha_warned

    if img.mode in _SIXTEEN_BIT_MODES:
        values = np.asarray(img, dtype=np.int64)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise MediaError(f"image {path}: {img.mode} pixels outside 0..65535 are not supported")
        grey = ((values + 128) // 257).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if img.mode in _ALPHA_MODES or "transparency" in img.info:
        rgba = np.asarray(img.convert("RGBA"))
        opacity = rgba[..., 3]
        if (opacity < 255).any():
            if alpha == "ignore":
                if not _alpha_warned:
                    _alpha_warned = True
                    import warnings

                    warnings.warn(f"omnieval: image {path} has transparent pixels; alpha is ignored (colour channels "
                                  f"kept, as Image.convert('RGB') in the metrics' references); further images are "
                                  f"not reported", UserWarning, stacklevel=3)
                return np.asarray(img.convert("RGB"))
            a = opacity[..., None].astype(np.float64) / 255
            out = rgba[..., :3] * a + ALPHA_BACKGROUNDS[alpha] * (1 - a)
            return np.round(out).astype(np.uint8)
    return np.asarray(img.convert("RGB"))


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


def frame_count(media) -> int:
    """Number of frames of a video (no decoding for a file-backed one), 1 for an image."""
    return len(media) if isinstance(media, Video) else 1


def sample_frames(media, indices) -> np.ndarray:
    """Frames ``indices`` of a video (a file-backed one decodes only those), or of an image seen as one frame."""
    if isinstance(media, Video):
        return media.sample(indices)
    return as_uint8_image(media)[None][np.asarray(indices, dtype=np.int64)]


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
