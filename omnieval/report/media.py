"""Browser-viewable copies of a run's media, written under ``RUN/report_assets/`` (PyAV and Pillow only).

The store keeps videos lossless (H.264 in RGB, ``libx264rgb``: High 4:4:4 Predictive), which Chrome, Firefox and
Safari do not play.  The report links, for each video, a copy that browsers do play:

* **video**: H.264 High profile, ``yuv420p`` (4:2:0 chroma, so colours differ slightly from the stored frames),
  ``libx264`` CRF :data:`CRF` preset :data:`PRESET`, same size (an odd width or height is padded by one replicated
  row/column: 4:2:0 needs even sizes), same frame rate and frame count, ``+faststart`` (the index first, so a
  browser reads the duration without fetching the whole file).  Cost measured here (2 shared cores) on an
  832x480, 81-frame noise-textured video: 3.1 s, of which decoding the lossless RGB file is 2.6 s (``veryfast``:
  5.3 s, same size; ``ultrafast``: 3.5 s, 1.8x larger);
* **poster**: the first frame as PNG, full size;
* **image**: PNG/JPEG/WebP/GIF inputs are copied as they are; other formats (BMP ...) are converted to PNG.

Copies are named by the source file's content (sha256), so re-running the report reuses them, two items with
the same input share one copy, and a changed artifact gets a new copy.  Files are written to a temporary name
and renamed, so an interrupted report never leaves a torn copy behind.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from omnieval.errors import MediaError
from omnieval.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES, file_sha256

ASSETS_DIR = "report_assets"
CRF = 18
PRESET = "superfast"
BROWSER_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif")
DESCRIPTION = (f"H.264 High profile, yuv420p (4:2:0), libx264 CRF {CRF}, same size (odd sizes padded by one row/column), "
               "frame rate and frames")


@dataclass(frozen=True)
class VideoCopy:
    """A playable copy: the file, its poster frame, what ``<source type>`` to announce, and its geometry."""

    path: Path
    poster: Path
    mime: str  # e.g. 'video/mp4; codecs="avc1.64000A"'
    width: int
    height: int
    frames: int
    fps: float

    @property
    def duration(self) -> float:
        return self.frames / self.fps if self.fps else 0.0


@dataclass(frozen=True)
class ImageCopy:
    path: Path
    width: int
    height: int


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")


def _replace(tmp: Path, final: Path) -> Path:
    os.replace(tmp, final)
    return final


def avc1_codec(extradata: bytes | None) -> str:
    """The RFC 6381 codec string of an H.264 stream from its ``avcC`` record (profile, constraints, level)."""
    if not extradata or len(extradata) < 4 or extradata[0] != 1:
        return "avc1"
    return f"avc1.{extradata[1]:02X}{extradata[2]:02X}{extradata[3]:02X}"


def probe_video(path: Path) -> tuple[str, int, int, int, float]:
    """(mime with codecs, width, height, frame count, fps) of an H.264 MP4 file."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        frames = stream.frames or sum(1 for _ in container.demux(stream) if _.size)
        fps = float(stream.average_rate or stream.guessed_rate or 0.0)
        return f'video/mp4; codecs="{avc1_codec(ctx.extradata)}"', ctx.width, ctx.height, int(frames), fps


def _even(frame: np.ndarray) -> np.ndarray:
    pad_h, pad_w = frame.shape[0] % 2, frame.shape[1] % 2
    return np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge") if pad_h or pad_w else frame


def _write_poster(frame: np.ndarray, path: Path) -> None:
    from PIL import Image

    tmp = _tmp(path)
    Image.fromarray(frame).save(tmp, format="PNG", optimize=True)
    _replace(tmp, path)


def transcode(src: Path, dst: Path, poster: Path) -> None:
    """Decode ``src`` frame by frame (any format PyAV reads) into a browser-playable H.264 ``dst`` and its first
    frame into ``poster`` (see the module docstring).  Frames are streamed: memory holds one frame at a time."""
    import av

    tmp = _tmp(dst)
    try:
        with av.open(str(src)) as inp:
            istream = inp.streams.video[0]
            istream.thread_type = "AUTO"
            rate = Fraction(istream.average_rate or istream.guessed_rate or 8).limit_denominator(1001)
            with av.open(str(tmp), mode="w", format="mp4", options={"movflags": "+faststart"}) as out:
                ostream = None
                for frame in inp.decode(istream):
                    rgb = frame.to_ndarray(format="rgb24")
                    if ostream is None:
                        _write_poster(rgb, poster)
                        ostream = out.add_stream("libx264", rate=rate)
                        ostream.width, ostream.height = rgb.shape[1] + rgb.shape[1] % 2, rgb.shape[0] + rgb.shape[0] % 2
                        ostream.pix_fmt = "yuv420p"
                        ostream.options = {"crf": str(CRF), "preset": PRESET, "profile": "high"}
                    for packet in ostream.encode(av.VideoFrame.from_ndarray(_even(rgb), format="rgb24")):
                        out.mux(packet)
                if ostream is None:
                    raise MediaError(f"video has no frames: {src}")
                for packet in ostream.encode():
                    out.mux(packet)
    except IndexError as exc:
        tmp.unlink(missing_ok=True)
        raise MediaError(f"cannot decode video {src}: no video stream") from exc
    except (av.FFmpegError, ValueError) as exc:
        tmp.unlink(missing_ok=True)
        raise MediaError(f"cannot transcode video {src} for the report: {exc}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _replace(tmp, dst)


class AssetWriter:
    """Makes (once) and returns the browser copies of media files, under ``<run>/report_assets/``."""

    def __init__(self, run_dir: Path):
        self.root = Path(run_dir) / ASSETS_DIR
        self.made = 0  # copies written by this writer (the rest were reused)

    def _digest(self, src: Path, known: str | None) -> str:
        return (known or file_sha256(src))[:24]

    def video(self, src: Path, sha256: str | None = None) -> VideoCopy:
        digest = self._digest(src, sha256)
        dst, poster = self.root / "videos" / f"{digest}.mp4", self.root / "posters" / f"{digest}.png"
        if not (dst.is_file() and poster.is_file()):
            dst.parent.mkdir(parents=True, exist_ok=True)
            poster.parent.mkdir(parents=True, exist_ok=True)
            transcode(src, dst, poster)
            self.made += 1
        mime, width, height, frames, fps = probe_video(dst)
        return VideoCopy(dst, poster, mime, width, height, frames, fps)

    def image(self, src: Path, sha256: str | None = None, *, copy: bool = True) -> ImageCopy:
        """``copy=False``: the file is served where it is (a PNG artifact inside the run folder)."""
        from PIL import Image

        suffix = src.suffix.lower()
        if suffix in BROWSER_IMAGE_SUFFIXES and not copy:
            dst = src
        else:
            digest = self._digest(src, sha256)
            dst = self.root / "images" / f"{digest}{suffix if suffix in BROWSER_IMAGE_SUFFIXES else '.png'}"
            if not dst.is_file():
                dst.parent.mkdir(parents=True, exist_ok=True)
                tmp = _tmp(dst)
                if suffix in BROWSER_IMAGE_SUFFIXES:
                    shutil.copyfile(src, tmp)
                else:
                    with Image.open(src) as img:
                        img.convert("RGB").save(tmp, format="PNG")
                _replace(tmp, dst)
                self.made += 1
        try:
            with Image.open(dst) as img:
                width, height = img.size
        except OSError as exc:
            raise MediaError(f"cannot read image {src}: {exc}") from exc
        return ImageCopy(dst, width, height)

    def media(self, src: Path, sha256: str | None = None, *, copy: bool = True) -> VideoCopy | ImageCopy:
        suffix = src.suffix.lower()
        if suffix in VIDEO_SUFFIXES:
            return self.video(src, sha256)
        if suffix in IMAGE_SUFFIXES:
            return self.image(src, sha256, copy=copy)
        raise MediaError(f"unknown media type {suffix!r}: {src}")
