"""File-backed, lazy videos: seeking reads give the frames full decoding gives, short reads and oversized reads are
refused naming the file (issue 14 §7.4, §7.6; issue 10 §3)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from omnieval import videofile
from omnieval.errors import MediaError
from omnieval.media import Video, probe_video, read_video, sample_frame_indices, write_video


def make_video(path, *, n=48, width=96, height=64, codec="libx264", pix_fmt="yuv420p", fps=24, options=None,
               container_options=None):
    """A clip whose frames all differ (a textured pattern scrolling), written with PyAV.

    libvpx-vp9 is written in a child process: once decord (VBench's reader, with its own bundled FFmpeg) is
    loaded, PyAV's libvpx encoder fails to open in the same process (EINVAL), which only concerns making this
    fixture, not reading it."""
    if codec == "libvpx-vp9":
        import json
        import subprocess
        import sys

        args = dict(n=n, width=width, height=height, codec=codec, pix_fmt=pix_fmt, fps=fps, options=options,
                    container_options=container_options)
        code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import test_media_lazy as t; "
                f"t._write_clip({str(path)!r}, **json.loads(sys.argv[1]))")
        subprocess.run([sys.executable, "-c", code, json.dumps(args)], check=True)
        return path
    return _write_clip(path, n=n, width=width, height=height, codec=codec, pix_fmt=pix_fmt, fps=fps, options=options,
                       container_options=container_options)


def _write_clip(path, *, n, width, height, codec, pix_fmt, fps, options, container_options):
    import av

    rng = np.random.default_rng(0)
    base = np.kron(rng.integers(0, 256, (height // 4 + 1, width // 4 + 1, 3), dtype=np.uint8), np.ones((4, 4, 1), np.uint8))
    with av.open(str(path), "w", options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if options:
            stream.options = options
        for t in range(n):
            frame = np.ascontiguousarray(np.roll(base[:height, :width], 3 * t, axis=1))
            frame[:8, :8] = (5 * t) % 256  # a frame-number stamp: no two of 48 frames are alike
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


CODECS = {
    # H.264 with B-frames and short GOPs (several keyframes to seek to), a size that is not a multiple of 16
    "h264_bframes": dict(codec="libx264", width=90, height=54, options={"bf": "3", "g": "8", "keyint_min": "8"}),
    # MPEG-4 part 2 with B-frames
    "mpeg4_bframes": dict(codec="mpeg4", width=98, height=66, options={"bf": "2", "g": "6"}),
    # omnieval's own lossless writer format, odd size
    "h264rgb_odd": dict(codec="libx264rgb", pix_fmt="rgb24", width=33, height=27, options={"crf": "0", "g": "10"}),
    # Matroska/WebM: no frame count in the container (the index comes from demuxing)
    "vp9_webm": dict(codec="libvpx-vp9", width=64, height=48, options={"g": "12"}),
    "h264_mkv": dict(codec="libx264", width=64, height=48, options={"bf": "3", "g": "5"}),
    "mpeg4_avi": dict(codec="mpeg4", width=64, height=48, options={"bf": "2", "g": "6"}),
    # GIF: frames are partial updates of the previous one (only the first is a keyframe)
    "gif": dict(codec="gif", pix_fmt="rgb8", width=64, height=48),
}
SUFFIX = {"vp9_webm": ".webm", "h264_mkv": ".mkv", "mpeg4_avi": ".avi", "gif": ".gif"}


@pytest.mark.parametrize("name", sorted(CODECS))
def test_sampled_frames_equal_full_decoding(tmp_path, monkeypatch, name):
    spec = CODECS[name]

    def no_fallback(*args):
        raise AssertionError("the seeking read fell back to decoding from the start")

    monkeypatch.setattr(videofile, "_sequential_read", no_fallback)
    path = make_video(tmp_path / ("v" + SUFFIX.get(name, ".mp4")), **spec)
    full = read_video(path).frames
    assert full.shape == (48, spec["height"], spec["width"], 3)
    assert len(np.unique(full.reshape(48, -1), axis=0)) == 48  # every frame differs, so a wrong frame is caught
    rng = np.random.default_rng(1)
    for indices in (sample_frame_indices(48, 8, "uniform"), sample_frame_indices(48, 16, "middle"), [47], [0], [47, 0, 23],
                    [5, 5, 6, 40, 39], rng.integers(0, 48, 20), np.arange(48), [7, 8, 9, 15, 16, 17, 46]):
        lazy = read_video(path)
        got = lazy.sample(indices)
        assert not lazy.decoded
        np.testing.assert_array_equal(got, full[np.asarray(indices)], err_msg=f"{name} {list(indices)}")


def test_sampling_decodes_only_what_it_needs(tmp_path, monkeypatch):
    """With keyframes every 8 frames, the last frame costs one GOP, not the whole file."""
    path = make_video(tmp_path / "v.mp4", n=96, **CODECS["h264_bframes"])
    decoded = []

    class Counting(videofile._Cursor):
        def _frames(self, *args):
            for frame in super()._frames(*args):
                decoded.append(frame.pts)
                yield frame

    monkeypatch.setattr(videofile, "_Cursor", Counting)
    video = read_video(path)
    last = video.sample([95])
    np.testing.assert_array_equal(last[0], read_video(path).frames[95])
    assert 0 < len(decoded) <= 8 + 3, len(decoded)  # one GOP (+ B-frame reordering)
    decoded.clear()
    video.sample(sample_frame_indices(96, 4, "uniform"))
    assert len(decoded) <= 4 * (8 + 3), len(decoded)


def test_lazy_video_reads_only_the_header(tmp_path):
    path = make_video(tmp_path / "v.mp4", n=12, **CODECS["h264rgb_odd"])
    video = read_video(path)
    assert not video.decoded and video.source_file == path
    info = probe_video(path)
    assert (info.num_frames, info.width, info.height, info.exact) == (12, 33, 27, True)
    assert info.fps == pytest.approx(24) and info.duration_s == pytest.approx(0.5)
    assert len(video) == 12 and video.shape == (12, 27, 33, 3) and not video.decoded
    assert video.frames.shape == (12, 27, 33, 3) and video.decoded
    video.frames = video.frames[:3]  # replaced frames are no longer the file's
    assert video.source_file is None and len(video) == 3


def test_in_memory_videos_sample_by_index():
    frames = np.arange(5 * 2 * 2 * 3, dtype=np.uint8).reshape(5, 2, 2, 3)
    video = Video(frames, fps=4)
    np.testing.assert_array_equal(video.sample([4, 0, 0]), frames[[4, 0, 0]])
    with pytest.raises(MediaError, match="out of range"):
        video.sample([5])
    assert video.decoded and video.source_file is None


def _faststart_lossless(path, n=48):
    """``moov`` (the index) at the front: a cut file still opens and declares all its frames."""
    return make_video(path, n=n, width=64, height=48, codec="libx264rgb", pix_fmt="rgb24",
                      options={"crf": "0", "preset": "veryfast"}, container_options={"movflags": "faststart"})


@pytest.mark.parametrize("fraction", [0.5, 0.9, 0.995])
def test_truncated_mp4_with_index_at_the_front_is_refused(tmp_path, fraction):
    """Before: a 48-frame file cut at 50% decoded to 15 frames without a word."""
    whole = _faststart_lossless(tmp_path / "whole.mp4")
    cut = tmp_path / "cut.mp4"
    data = whole.read_bytes()
    cut.write_bytes(data[: int(len(data) * fraction)])
    assert probe_video(cut).num_frames == 48  # the header still promises 48
    with pytest.raises(MediaError, match=r"cut\.mp4 is truncated.*48"):
        _ = read_video(cut).frames
    with pytest.raises(MediaError, match=r"cut\.mp4 is truncated"):
        read_video(cut).sample([40])
    with pytest.raises(MediaError, match=r"cut\.mp4 is truncated"):
        read_video(cut).verify()
    assert len(read_video(whole).frames) == 48


def test_truncated_webm_is_refused_by_duration_intact_one_is_not(tmp_path):
    whole = make_video(tmp_path / "whole.webm", **CODECS["vp9_webm"])
    assert not probe_video(whole).exact
    assert len(read_video(whole).frames) == 48
    read_video(whole).verify()
    cut = tmp_path / "cut.webm"
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match=r"cut\.webm is truncated: its video ends at .* declares 2\.00 s"):
        _ = read_video(cut).frames


def test_decoded_size_cap_names_the_file_and_size(tmp_path, monkeypatch):
    path = make_video(tmp_path / "big.mp4", n=10, width=64, height=48)
    frame_bytes = 64 * 48 * 3
    monkeypatch.setenv("OMNIEVAL_MAX_DECODED_BYTES", str(4 * frame_bytes))
    with pytest.raises(MediaError, match=r"big\.mp4: decoding 10 frames of 64x48 needs .* GiB, more than the .* limit"):
        _ = read_video(path).frames
    assert read_video(path).sample([0, 3, 9]).shape == (3, 48, 64, 3)  # sampling within the cap is fine
    with pytest.raises(MediaError, match="decoding 5 frames"):
        read_video(path).sample([0, 1, 2, 3, 4])
    monkeypatch.setenv("OMNIEVAL_MAX_DECODED_BYTES", "lots")
    with pytest.raises(Exception, match="OMNIEVAL_MAX_DECODED_BYTES='lots' is not an integer"):
        _ = read_video(path).frames


def test_writer_output_round_trips_through_the_lazy_reader(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (7, 10, 12, 3), dtype=np.uint8)
    path = write_video(Video(frames, fps=6), tmp_path / "w.mp4")
    video = read_video(path)
    np.testing.assert_array_equal(video.sample([6, 1]), frames[[6, 1]])
    np.testing.assert_array_equal(video.frames, frames)
    assert read_video(path, max_frames=3).frames.shape == (3, 10, 12, 3)
