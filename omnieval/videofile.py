"""Reading video files: header probe, integrity checks, full decoding and seeking decoding of chosen frames.

:class:`omnieval.media.Video` uses this module for file-backed videos; nothing here keeps frames it was not
asked for.

* **Frame numbering.**  Frame ``i`` is the ``i``-th frame a full decode outputs (presentation order).  A seeking
  read finds frame ``i`` by its presentation timestamp, taken from an index of the stream's packets built by one
  demuxing pass (no decoding), so both ways give the same frames (decord builds the same kind of index).
* **Seeking.**  For each run of requested frames the decoder is positioned on the last keyframe whose
  presentation time is not after the first frame of the run, then decodes forward; frames of an open GOP that
  precede the keyframe in presentation order are never used.  When a container has no usable timestamps
  (packets without pts, duplicates), or a seek lands after the keyframe it was asked for, the read decodes from
  the start instead (still keeping only the requested frames).
* **Short reads.**  A read fails with :class:`MediaError` naming the file when the file holds fewer frames than
  the container declares: fewer packets than its frame count (MP4/MOV/AVI/GIF indexes, exact), an incomplete
  (cut) packet, fewer decoded frames than packets, or, for containers whose count is only an estimate
  (Matroska/WebM: no frame count, a duration), video that ends more than :data:`DURATION_SLACK_FRAMES` frames or
  :data:`DURATION_SLACK_FRACTION` of the duration, whichever is larger, before the declared duration.  The
  duration check is skipped when only the container's duration is known and the file has other streams (audio
  may legitimately run longer than video).
* **Size cap.**  Decoding more than :func:`max_decoded_bytes` bytes of RGB frames (``$OMNIEVAL_MAX_DECODED_BYTES``,
  default 4 GiB) in one read is refused with a :class:`MediaError` naming the file and the size, instead of
  running out of memory; sample fewer frames or raise the limit.
"""
from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from omnieval.errors import ConfigError, MediaError

#: default cap on the RGB bytes one read may decode (``$OMNIEVAL_MAX_DECODED_BYTES`` overrides it)
DEFAULT_MAX_DECODED_BYTES = 4 << 30
#: tolerance of the duration check for containers whose frame count is an estimate (see the module docstring)
DURATION_SLACK_FRAMES = 2
DURATION_SLACK_FRACTION = 0.02
#: frame rate assumed when a file declares none (as before: PyAV's ``average_rate``/``guessed_rate`` are unset)
FALLBACK_FPS = 8.0


def max_decoded_bytes() -> int:
    """The decoded-size cap in bytes: ``$OMNIEVAL_MAX_DECODED_BYTES`` (an integer, ``0`` = no cap) or 4 GiB."""
    text = os.environ.get("OMNIEVAL_MAX_DECODED_BYTES", "").strip()
    if not text:
        return DEFAULT_MAX_DECODED_BYTES
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"OMNIEVAL_MAX_DECODED_BYTES={text!r} is not an integer number of bytes") from None
    if value < 0:
        raise ConfigError(f"OMNIEVAL_MAX_DECODED_BYTES={text!r} must be >= 0 (0: no limit)")
    return value


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about its first video stream, read from the header (nothing decoded).

    ``num_frames``: the container's frame count when it has one (``exact``), else ``round(duration_s * fps)``
    (0 when the duration is unknown too); ``duration_s``: the video stream's duration, else the container's
    (``None`` when neither is known)."""

    num_frames: int
    fps: float
    width: int
    height: int
    duration_s: float | None
    exact: bool = False

    @property
    def frame_bytes(self) -> int:
        return self.width * self.height * 3


def _av():
    import av

    return av


def _open(path: Path):
    av = _av()
    if not path.is_file():
        raise MediaError(f"video {'path is not a file' if path.exists() else 'file not found'}: {path}")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise MediaError(f"cannot decode video {path}: {exc}") from exc
    if not container.streams.video:
        container.close()
        raise MediaError(f"cannot decode video {path}: no video stream (truncated or not a video file)")
    return container


def _errors():
    av = _av()
    return (av.FFmpegError, ValueError, OSError)


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """The first video stream's frame count, rate, size and duration, from the container header."""
    path = Path(path)
    container = _open(path)
    try:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or FALLBACK_FPS)
        duration = _stream_duration(container, stream)
        exact = int(stream.frames or 0) > 0
        num = int(stream.frames) if exact else (round(duration * fps) if duration else 0)
        ctx = stream.codec_context
        return VideoInfo(num, fps, int(ctx.width), int(ctx.height), duration, exact)
    finally:
        container.close()


def _stream_duration(container, stream) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    tag = stream.metadata.get("DURATION")  # Matroska's per-stream duration tag, "HH:MM:SS.nnnnnnnnn"
    if tag:
        try:
            h, m, s = tag.split(":")
            return int(h) * 3600 + int(m) * 60 + float(s)
        except ValueError:
            pass
    if container.duration and len(container.streams) == 1:  # other streams may run longer than the video
        return container.duration / 1_000_000
    return None


# ---------------------------------------------------------------------------------------------
# Integrity
# ---------------------------------------------------------------------------------------------
class _Tally:
    """Counts of one demuxing pass, checked against the header (see the module docstring)."""

    def __init__(self, info: VideoInfo):
        self.info = info
        self.packets = 0      # non-empty packets of the video stream, discarded ones included
        self.shown = 0        # packets that produce a frame (not flagged discard)
        self.corrupt = 0
        self.end_s = 0.0      # presentation end of the last packet, in seconds

    def add(self, packet) -> None:
        self.packets += 1
        self.corrupt += bool(packet.is_corrupt)
        if not packet.is_discard:
            self.shown += 1
        if packet.pts is not None and packet.time_base:
            end = (packet.pts + (packet.duration or 0)) * packet.time_base
            self.end_s = max(self.end_s, float(end))

    def check(self, path: Path, decoded: int | None = None) -> None:
        info = self.info
        if self.corrupt:
            held = (f"the container lists {info.num_frames} frames, the file holds {self.packets}" if info.exact
                    else f"{self.packets} frames present")
            raise MediaError(f"video {path} is truncated or damaged: {self.corrupt} incomplete packet(s); {held}")
        if info.exact and self.packets < info.num_frames:
            raise MediaError(f"video {path} is truncated: the container lists {info.num_frames} frames, "
                             f"the file holds {self.packets}")
        if decoded is not None and decoded < self.shown:
            raise MediaError(f"video {path} is damaged: decoded {decoded} of {self.shown} frames")
        if not info.exact and info.duration_s and self.end_s:
            slack = max(DURATION_SLACK_FRAMES / info.fps, DURATION_SLACK_FRACTION * info.duration_s)
            if self.end_s < info.duration_s - slack:
                raise MediaError(f"video {path} is truncated: its video ends at {self.end_s:.2f} s, the container "
                                 f"declares {info.duration_s:.2f} s")


# ---------------------------------------------------------------------------------------------
# Full decoding
# ---------------------------------------------------------------------------------------------
def _too_big(path: Path, frames: int, info: VideoInfo, cap: int) -> MediaError:
    size = frames * info.frame_bytes
    return MediaError(f"video {path}: decoding {frames} frames of {info.width}x{info.height} needs "
                      f"{size / 2**30:.2f} GiB, more than the {cap / 2**30:.2f} GiB limit; sample fewer frames or "
                      f"raise OMNIEVAL_MAX_DECODED_BYTES")


def decode_all(path: str | os.PathLike, info: VideoInfo | None = None, *, max_frames: int | None = None,
               num_frames: int | None = None) -> np.ndarray:
    """Every frame (or the first ``max_frames``) as uint8 ``T x H x W x 3`` RGB, checked for short reads.

    Frames are written into one preallocated array (no second copy when stacking): ``num_frames`` when known
    (a :class:`FrameIndex` was built), else the container's count, with a little room when it is an estimate."""
    path = Path(path)
    info = info or probe_video(path)
    cap = max_decoded_bytes()
    if num_frames is None:
        num_frames = info.num_frames if info.exact else math.ceil(info.num_frames * (1 + DURATION_SLACK_FRACTION)) + 2
    expected = max(num_frames, 1) if max_frames is None else min(max(num_frames, 1), max_frames)
    if cap and min(expected, max(info.num_frames, 1)) * info.frame_bytes > cap:
        raise _too_big(path, min(expected, max(info.num_frames, 1)), info, cap)
    container = _open(path)
    out: np.ndarray | None = None
    n = 0
    tally = _Tally(info)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for packet in container.demux(stream):
            if packet.size:
                tally.add(packet)
            for frame in packet.decode():
                rgb = frame.to_ndarray(format="rgb24")
                if out is None:
                    room = expected if not cap else max(1, min(expected, cap // rgb.nbytes))
                    out = np.empty((room, *rgb.shape), np.uint8)
                elif rgb.shape != out.shape[1:]:
                    raise MediaError(f"video {path}: frame {n} is {rgb.shape[1]}x{rgb.shape[0]}, earlier frames are "
                                     f"{out.shape[2]}x{out.shape[1]} (size changes mid-stream are not supported)")
                if n == len(out):  # the container's count was an estimate (or wrong): grow by a quarter
                    grown = max(n + 1, int(n * 1.25))
                    if cap and grown * rgb.nbytes > cap:
                        raise _too_big(path, grown, info, cap)
                    out = np.concatenate([out, np.empty((grown - n, *rgb.shape), np.uint8)])
                out[n] = rgb
                n += 1
                if max_frames is not None and n >= max_frames:
                    return out[:n]
    except _errors() as exc:
        raise MediaError(f"cannot decode video {path}: {exc}") from exc
    finally:
        container.close()
    if out is None or n == 0:
        raise MediaError(f"video has no frames: {path}")
    tally.check(path, decoded=n)
    return out[:n]  # a view: the few spare frames of an estimate are not worth a copy of the whole video


# ---------------------------------------------------------------------------------------------
# Index and seeking
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FrameIndex:
    """Presentation timestamps of the frames (``pts[i]`` is frame ``i``) and the presentation and decoding
    timestamps of the keyframes (sorted by presentation time), in the stream's time base.  ``seekable`` is False
    when timestamps are missing or repeated (then reads decode from the start)."""

    pts: np.ndarray
    key_pts: np.ndarray
    key_dts: np.ndarray
    seekable: bool

    def __len__(self) -> int:
        return len(self.pts)


def build_index(path: str | os.PathLike, info: VideoInfo | None = None) -> FrameIndex:
    """One demuxing pass (no decoding): frame timestamps, keyframes, and the short-read checks on packets."""
    path = Path(path)
    info = info or probe_video(path)
    container = _open(path)
    tally = _Tally(info)
    pts: list[int | None] = []
    keys: list[tuple[int, int]] = []
    try:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            if not packet.size:
                continue
            tally.add(packet)
            if packet.is_keyframe and packet.pts is not None:
                keys.append((packet.pts, packet.dts if packet.dts is not None else packet.pts))
            if not packet.is_discard:
                pts.append(packet.pts)
    except _errors() as exc:
        raise MediaError(f"cannot decode video {path}: {exc}") from exc
    finally:
        container.close()
    tally.check(path)
    if not pts:
        raise MediaError(f"video has no frames: {path}")
    seekable = None not in pts and len(set(pts)) == len(pts) and bool(keys)
    frame_pts = np.sort(np.asarray([p for p in pts if p is not None], np.int64))
    keys.sort()
    return FrameIndex(frame_pts, np.asarray([k[0] for k in keys], np.int64), np.asarray([k[1] for k in keys], np.int64),
                      seekable)


def decode_frames(path: str | os.PathLike, positions, index: FrameIndex, info: VideoInfo) -> dict[int, np.ndarray]:
    """Frames at the given positions (frame numbers, see the module docstring) as ``{position: H x W x 3}``."""
    path = Path(path)
    wanted = sorted({int(p) for p in positions})
    if not wanted:
        return {}
    bad = [p for p in wanted if not 0 <= p < len(index)]
    if bad:
        raise MediaError(f"video {path}: frame {bad[0]} requested, the video has {len(index)} frames")
    cap = max_decoded_bytes()
    if cap and len(wanted) * info.frame_bytes > cap:
        raise _too_big(path, len(wanted), info, cap)
    if index.seekable:
        try:
            return _read(path, lambda c, s: _seeking_read(c, s, wanted, index))
        except _SeekFailed:
            pass  # decode from the start instead
    return _read(path, lambda c, s: _sequential_read(c, s, wanted, path))


def _read(path: Path, reader):
    container = _open(path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return reader(container, stream)
    except _errors() as exc:
        raise MediaError(f"cannot decode video {path}: {exc}") from exc
    finally:
        container.close()


class _SeekFailed(Exception):
    """A seek landed after the keyframe it targeted, or frames lack timestamps: decode sequentially."""


class _Cursor:
    """Decoding position after a seek to a keyframe: the frames decoded since (``frames``), the presentation time
    of the keyframe the seek landed on (``landed``) and of the last frame decoded (``last``)."""

    def __init__(self, container, stream, key_pts: int, key_dts: int):
        self.landed: int | None = None
        self.last: int | None = None
        self.frames = self._frames(container, stream, key_pts, key_dts)

    def _frames(self, container, stream, key_pts: int, key_dts: int):
        # Demuxers index keyframes by presentation time (mov, matroska) or by decoding time (avi): a backward
        # seek to the keyframe's pts lands on it in the first kind, but may land on a *later* keyframe in the
        # second (whose dts is <= this pts); then its dts (<= its pts) is tried, which lands on it or earlier.
        for ts in dict.fromkeys((key_pts, min(key_dts, key_pts))):
            container.seek(ts, stream=stream, backward=True, any_frame=False)
            packets = container.demux(stream)
            first = next((p for p in packets if p.size), None)
            if first is None or not first.is_keyframe or first.pts is None:
                raise _SeekFailed
            if first.pts <= key_pts:
                break
        else:
            raise _SeekFailed
        self.landed = first.pts
        for packet in itertools.chain([first], packets):
            for frame in packet.decode():
                if frame.pts is None:
                    raise _SeekFailed
                self.last = frame.pts
                yield frame


def _seeking_read(container, stream, wanted: list[int], index: FrameIndex) -> dict[int, np.ndarray]:
    """For each requested frame not yet decoded: seek to the last keyframe at or before it (unless decoding since
    the previous seek already passed that keyframe), then decode forward up to it, keeping requested frames."""
    out: dict[int, np.ndarray] = {}
    by_pts = {int(index.pts[p]): p for p in wanted}
    cursor: _Cursor | None = None
    for target in sorted(by_pts):
        if by_pts[target] in out:
            continue
        k = int(np.searchsorted(index.key_pts, target, side="right")) - 1
        if k < 0:
            raise _SeekFailed  # no keyframe before the target (an open GOP's leading frames)
        key_pts = int(index.key_pts[k])
        if cursor is None or cursor.last is None or key_pts > cursor.last:
            cursor = _Cursor(container, stream, key_pts, int(index.key_dts[k]))
        for frame in cursor.frames:
            if frame.pts < cursor.landed:
                continue  # an open GOP's leading frames reference frames before the seek point
            pos = by_pts.get(frame.pts)
            if pos is not None and pos not in out:
                out[pos] = frame.to_ndarray(format="rgb24")
            if frame.pts >= target:
                break
        else:
            cursor = None  # end of stream
        if by_pts[target] not in out:
            raise _SeekFailed
    return out


def _sequential_read(container, stream, wanted: list[int], path: Path) -> dict[int, np.ndarray]:
    out: dict[int, np.ndarray] = {}
    want = set(wanted)
    last = wanted[-1]
    n = 0
    for packet in container.demux(stream):
        for frame in packet.decode():
            if n in want:
                out[n] = frame.to_ndarray(format="rgb24")
            n += 1
            if n > last:
                return out
    missing = [p for p in wanted if p not in out]
    raise MediaError(f"video {path} is truncated or damaged: frame {missing[0]} could not be decoded "
                     f"(decoding stopped after {n} frames)")
