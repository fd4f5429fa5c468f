"""Media IO and frame-sampling conventions."""
from __future__ import annotations

import numpy as np
import pytest

from omnieval.errors import MediaError
from omnieval.media import Video, read_image, read_media, read_video, sample_frame_indices, write_image, write_video


def test_video_round_trip_is_lossless(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (5, 12, 10, 3), dtype=np.uint8)
    path = write_video(Video(frames, fps=12.5), tmp_path / "v.mp4")
    back = read_video(path)
    np.testing.assert_array_equal(back.frames, frames)
    assert back.fps == pytest.approx(12.5)


def test_odd_sizes_are_padded_and_images_round_trip(tmp_path):
    frames = np.full((2, 7, 9, 3), 100, np.uint8)
    assert read_video(write_video(Video(frames), tmp_path / "odd.mp4")).frames.shape == (2, 8, 10, 3)
    img = np.random.default_rng(1).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    np.testing.assert_array_equal(read_media(write_image(img, tmp_path / "i.png")), img)


def test_bad_media_errors_name_the_item(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(MediaError, match="bad.mp4"):
        read_video(bad)
    (tmp_path / "bad.png").write_bytes(b"nope")
    with pytest.raises(MediaError, match="bad.png"):
        read_image(tmp_path / "bad.png")
    with pytest.raises(MediaError, match="NaN"):
        Video(np.full((2, 4, 4, 3), np.nan))
    with pytest.raises(MediaError, match="T x H x W x 3"):
        Video(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(MediaError, match=r"\[0, 1\]"):
        Video(np.full((2, 4, 4, 3), 3.0))
    for fps in (float("nan"), 0, -2, float("inf"), "fast"):  # issue 14 §7.3: a NaN rate could not be written
        with pytest.raises(MediaError, match="fps must be a finite number > 0"):
            Video(np.zeros((2, 4, 4, 3), np.uint8), fps=fps)


def test_float_frames_in_unit_range_become_uint8():
    v = Video(np.full((1, 2, 2, 3), 0.5))
    assert v.frames.dtype == np.uint8 and v.frames[0, 0, 0, 0] == 128


@pytest.mark.parametrize("frames", [1, 2, 5, 8, 16, 17, 33, 81])
@pytest.mark.parametrize("num", [1, 3, 8, 16])
def test_middle_policy_equals_vbench(frames, num):
    vbench_utils = pytest.importorskip("vbench.utils")
    expected = [int(i) for i in vbench_utils.get_frame_indices(num, frames, sample="middle")]
    assert list(sample_frame_indices(frames, num, "middle")) == expected


def test_uniform_policy_is_linspace_rounded():
    assert list(sample_frame_indices(81, 8, "uniform")) == list(np.linspace(0, 80, 8).round().astype(int))
    assert list(sample_frame_indices(10, 3, "stride", stride=4)) == [0, 4, 8]
    with pytest.raises(MediaError):
        sample_frame_indices(5, 8, "first")


@pytest.mark.parametrize("codec, width, height", [("libx264", 480, 270), ("mpeg4", 352, 198)])
def test_lossy_yuv420p_video_decodes_like_vbench_decoders(tmp_path, codec, width, height):
    """Generated videos from other models are lossy yuv420p: omnieval's reader (PyAV rgb24) must give the same RGB
    frames as the decoders VBench uses (decord ``load_video``; cv2 ``VideoCapture`` + BGR->RGB), or every VBench
    dimension would drift.  Exact equality, odd sizes, B-frames (x264 defaults)."""
    import av
    import cv2
    import decord

    rng = np.random.default_rng(0)
    base = np.kron(rng.integers(0, 256, (height // 6 + 1, width // 6 + 1, 3), dtype=np.uint8), np.ones((6, 6, 1), np.uint8))
    path = tmp_path / "lossy.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=24)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for t in range(12):
            frame = np.ascontiguousarray(np.roll(base[:height, :width], 3 * t, axis=1))
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    ours = read_video(path).frames
    by_decord = decord.VideoReader(str(path), num_threads=1).get_batch(list(range(len(ours)))).asnumpy()
    capture, by_cv2 = cv2.VideoCapture(str(path)), []
    while (read := capture.read())[0]:
        by_cv2.append(cv2.cvtColor(read[1], cv2.COLOR_BGR2RGB))
    assert ours.shape == (12, height, width, 3)
    assert np.array_equal(ours, by_decord) and np.array_equal(ours, np.stack(by_cv2))


# -- image modes (issue 14 §7.5) and decompression bombs (§7.10) ----------------------------------
def test_16bit_greyscale_png_is_scaled_not_clipped_to_white(tmp_path):
    from PIL import Image

    values = np.array([[0, 128, 129, 257], [32896, 50000, 65279, 65535]], np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode == "I;16"
    got = read_image(tmp_path / "g16.png")
    expected = np.round(values / 257).astype(np.uint8)  # 65535 -> 255, the inverse of 8 -> 16 bit (v * 257)
    assert got.dtype == np.uint8 and got.shape == (2, 4, 3)
    np.testing.assert_array_equal(got, np.repeat(expected[..., None], 3, axis=2))


def _rgba(tmp_path, name="a.png"):
    from PIL import Image

    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[..., :3] = [[[10, 200, 30]] * 3, [[250, 0, 100]] * 3]
    rgba[..., 3] = [[0, 128, 255], [255, 64, 255]]
    Image.fromarray(rgba, "RGBA").save(tmp_path / name)
    return tmp_path / name, rgba


def test_alpha_is_ignored_as_the_references_do_and_said_so(tmp_path, monkeypatch):
    """MagicBrush, GenEval and the CLIP references read ``Image.open(p).convert('RGB')``: the colour channels are
    kept and alpha is dropped.  omnieval does the same by default (so scores match theirs) but warns, once."""
    from PIL import Image

    from omnieval import media

    monkeypatch.setattr(media, "_alpha_warned", False)
    path, rgba = _rgba(tmp_path)
    with pytest.warns(UserWarning, match=r"a\.png has transparent pixels; alpha is ignored"):
        got = read_image(path)
    np.testing.assert_array_equal(got, rgba[..., :3])
    np.testing.assert_array_equal(got, np.asarray(Image.open(path).convert("RGB")))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_image(_rgba(tmp_path, "b.png")[0])  # said once per process, not once per image


@pytest.mark.parametrize("background, value", [("white", 255), ("black", 0)])
def test_alpha_can_be_composited_on_a_background(tmp_path, background, value):
    path, rgba = _rgba(tmp_path)
    a = rgba[..., 3:].astype(np.float64) / 255
    expected = np.round(rgba[..., :3] * a + value * (1 - a)).astype(np.uint8)
    np.testing.assert_array_equal(read_image(path, alpha=background), expected)


def test_palette_and_grey_alpha_images(tmp_path, monkeypatch):
    from PIL import Image

    from omnieval import media

    monkeypatch.setattr(media, "_alpha_warned", True)
    pal = Image.new("P", (3, 1))
    pal.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 759)
    pal.putdata([0, 1, 2])
    pal.info["transparency"] = 1
    pal.save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_image(tmp_path / "p.png"), [[[255, 0, 0], [0, 255, 0], [0, 0, 255]]])
    np.testing.assert_array_equal(read_image(tmp_path / "p.png", alpha="white")[0, 1], [255, 255, 255])
    la = np.stack([np.array([[40, 90]], np.uint8), np.array([[255, 0]], np.uint8)], -1)
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    np.testing.assert_array_equal(read_image(tmp_path / "la.png"), [[[40] * 3, [90] * 3]])
    np.testing.assert_array_equal(read_image(tmp_path / "la.png", alpha="black"), [[[40] * 3, [0] * 3]])
    with pytest.raises(ValueError, match="alpha must be one of"):
        read_image(tmp_path / "la.png", alpha="grey")


def bomb_png(path, width=40000, height=40000):
    """A PNG that declares ``width x height`` pixels in a few dozen bytes (PIL refuses it when opening)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("size", [(40000, 40000), (10000, 9500)])  # PIL's error (> 2x the limit) and its warning
def test_decompression_bomb_png_is_a_one_line_media_error(tmp_path, size):
    path = bomb_png(tmp_path / "bomb.png", *size)
    with pytest.raises(MediaError, match=r"bomb\.png.*pixels") as err:
        read_image(path)
    assert "\n" not in str(err.value)
