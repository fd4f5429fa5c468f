"""FVD: I3D network and protocol presets, against the installed cd-fvd package.

Tolerances (parity test, same random I3D weights and uint8 videos as cd-fvd): features max abs difference
< 1e-4 (features are O(10); the only difference is batch norm folded into the convolutions, float32
rounding), FVD relative difference < 1e-5.  Other tests use a small TorchScript stand-in for the
stylegan-v detector, which exposes the arguments it is called with.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from omnieval.errors import ConfigError, MediaError, MissingWeightsError
from omnieval.media import Video, write_video
from omnieval.metrics import fvd
from omnieval.metrics.base import MetricInput
from omnieval.metrics.frechet import FeatureStats
from omnieval.metrics.nets.i3d import InceptionI3d
from omnieval.registry import get_metric

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")


@pytest.fixture(scope="module")
def i3d_ckpt(tmp_path_factory):
    """Random I3D weights with He-normal convolutions and random BN statistics, so features are O(10)."""
    torch.manual_seed(0)
    state = InceptionI3d().state_dict()
    for key, value in state.items():
        if key.endswith("conv3d.weight"):
            value.copy_(torch.randn_like(value) * (2.0 / value[0].numel()) ** 0.5)
        elif key.endswith(("bn.running_var", "bn.weight")):
            value.copy_(torch.rand_like(value) + 0.5)
        elif key.endswith(("bn.running_mean", "bn.bias", "logits.conv3d.bias")):
            value.copy_(torch.randn_like(value) * 0.1)
    path = tmp_path_factory.mktemp("i3d") / "i3d_pretrained_400.pt"
    torch.save(state, path)
    return path


class _StandIn(torch.nn.Module):
    """Features: per-channel mean and mean square (after optional rescale), then the call's arguments."""

    def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False, return_features: bool = False) -> torch.Tensor:
        is_uint8 = float(x.dtype == torch.uint8)
        y = x.float()
        if rescale:
            y = y / 127.5 - 1.0
        b = y.shape[0]
        flat = y.reshape(b, y.shape[1], -1)
        info = torch.tensor([float(rescale), float(resize), float(return_features), is_uint8,
                             float(y.shape[2]), float(y.shape[3]), float(y.shape[4]), float(y.min()), float(y.max())])
        return torch.cat([flat.mean(2), (flat * flat).mean(2), info.expand(b, 9)], dim=1)


@pytest.fixture(scope="module")
def ts_ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("ts") / "i3d_torchscript.pt"
    torch.jit.script(_StandIn()).save(str(path))
    return path


def _videos(seed, n, t=12, size=16, low=0, high=256):
    return np.random.default_rng(seed).integers(low, high, (n, t, size, size, 3)).astype(np.uint8)


def test_state_dict_matches_cdfvd_layout():
    pytorch_i3d = pytest.importorskip("cdfvd.third_party.i3d.pytorch_i3d")
    ref = pytorch_i3d.InceptionI3d(400, in_channels=3).state_dict()
    ours = InceptionI3d().state_dict()
    assert sorted(ours) == sorted(ref)
    assert all(ours[k].shape == ref[k].shape for k in ref)


@pytest.mark.slow
def test_parity_with_cdfvd(i3d_ckpt):
    cdfvd_fvd = pytest.importorskip("cdfvd.fvd")
    real = _videos(0, 4, t=16, size=32)
    fake = (_videos(1, 4, t=16, size=32) // 2 + 64).astype(np.uint8)
    ref = cdfvd_fvd.cdfvd("i3d", n_real="full", n_fake=2048, ckpt_path=str(i3d_ckpt), device="cpu", compute_feats=True)
    ref_value = ref.compute_fvd(real, fake)
    protocol = fvd.get_protocol("cdfvd_i3d")
    net = fvd.load_detector("i3d", i3d_ckpt)
    ours_real = fvd.extract_features(real, net, protocol, side="real")
    ours_fake = fvd.extract_features(fake, net, protocol)
    assert np.abs(ours_real - ref.real_stats.get_all()).max() < 1e-4
    assert np.abs(ours_fake - ref.fake_stats.get_all()).max() < 1e-4
    stats = [FeatureStats(), FeatureStats()]
    stats[0].update(ours_real)
    stats[1].update(ours_fake)
    value = fvd.fvd_from_stats(stats[0], stats[1], protocol)
    assert ref_value > 1.0  # non-trivial distance, so the comparison can fail
    assert value == pytest.approx(ref_value, rel=1e-5)


def test_compute_fvd_end_to_end_with_i3d(i3d_ckpt):
    """compute_fvd on the I3D path equals the Fréchet distance of extract_features' output."""
    real, fake = _videos(2, 2, t=10, size=8), _videos(3, 2, t=10, size=8, high=128)
    value = fvd.compute_fvd(real, [Video(v) for v in fake], detector="i3d", ckpt_path=i3d_ckpt, num_frames=10)
    protocol = fvd.get_protocol(num_frames=10)
    net = fvd.load_detector("i3d", i3d_ckpt)
    a, b = FeatureStats(), FeatureStats()
    a.update(fvd.extract_features(real, net, protocol, side="real"))
    b.update(fvd.extract_features(fake, net, protocol))
    assert value == pytest.approx(fvd.frechet_distance(*a.mean_cov(), *b.mean_cov()), rel=1e-6)
    assert value > 0


def test_jh_zeros_vs_ones_sanity_structure(ts_ckpt):
    """JunyaoHu's README check: zeros vs ones videos (float [0, 1]); covariances are 0, FVD = mean term."""
    zeros = np.zeros((4, 30, 16, 16, 3), dtype=np.float32)
    ones = np.ones((4, 30, 16, 16, 3), dtype=np.float32)
    value = fvd.compute_fvd(zeros, ones, detector="i3d_torchscript", ckpt_path=ts_ckpt, preset="jh_styleganv")
    # stand-in features: channel means -1 vs 1 (3 * 2^2), mean squares 1 vs 1, min and max -1 vs 1 (2 * 2^2)
    assert value == pytest.approx(20.0, rel=1e-6)
    with pytest.raises(MediaError, match=r"N x T x H x W x 3"):  # their N x T x C x H x W layout is refused
        fvd.compute_fvd(zeros.transpose(0, 1, 4, 2, 3), ones, detector="i3d_torchscript", ckpt_path=ts_ckpt)


def test_torchscript_call_conventions(ts_ckpt):
    videos = _videos(4, 2, t=20, size=40)
    net = fvd.load_detector("i3d_torchscript", ts_ckpt)
    sg = fvd.extract_features(videos, net, fvd.get_protocol("styleganv_16f"))[0, 6:]
    # stylegan-v: uint8 input at the original size, 16 frames, rescale=True, resize=True
    np.testing.assert_allclose(sg[:7], [1, 1, 1, 1, 16, 40, 40])
    jh = fvd.extract_features(videos, net, fvd.get_protocol("jh_styleganv"))[0, 6:]
    # JunyaoHu: float [-1, 1], resized to 224 and centre-cropped by us, all 20 frames, flags off
    np.testing.assert_allclose(jh[:7], [0, 0, 1, 0, 20, 224, 224])
    assert -1.0 <= jh[7] and jh[8] <= 1.0


def test_frame_policies_and_short_videos(ts_ckpt, i3d_ckpt):
    frames = np.arange(40, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
    protocol = fvd.get_protocol(num_frames=16, real_frame_policy="random", seed=7)
    a = fvd.select_frames(frames, protocol, "random", "clip_a")
    assert np.array_equal(a, fvd.select_frames(frames, protocol, "random", "clip_a"))  # keyed, not ordered
    assert np.array_equal(a[:, 0, 0, 0], np.arange(a[0, 0, 0, 0], a[0, 0, 0, 0] + 16))
    offsets = {int(fvd.select_frames(frames, protocol, "random", f"v{i}")[0, 0, 0, 0]) for i in range(20)}
    assert len(offsets) > 1 and max(offsets) <= 24
    assert list(fvd.select_frames(frames, protocol, "uniform", "u")[[0, -1], 0, 0, 0]) == [0, 39]
    with pytest.raises(MediaError, match=r"video 1 has 9 frames.*at least 10"):
        fvd.compute_fvd(_videos(5, 2, t=10), [_videos(6, 1, t=10)[0], _videos(7, 1, t=9)[0]],
                        detector="i3d", ckpt_path=i3d_ckpt, num_frames=None)
    with pytest.raises(MediaError, match=r"video 0 has 12 frames.*at least 16"):
        fvd.compute_fvd(_videos(5, 2, t=12), _videos(6, 2, t=12), detector="i3d_torchscript", ckpt_path=ts_ckpt)
    with pytest.raises(ConfigError, match="at least 10"):
        fvd.get_protocol(num_frames=8)


def test_missing_weights_one_line_error():
    with pytest.raises(MissingWeightsError) as info:
        fvd.compute_fvd(_videos(0, 2), _videos(1, 2))
    message = str(info.value)
    assert "i3d_pretrained_400.pt" in message and "\n" not in message


def test_protocol_validation_and_hashes():
    with pytest.raises(ConfigError, match="unknown FVD protocol field"):
        fvd.get_protocol(frames=16)
    with pytest.raises(ConfigError, match="resize='detector'"):
        fvd.get_protocol(resize="detector")
    base = fvd.get_protocol()
    assert base.name == "cdfvd_i3d" and fvd.get_protocol(ddof=1).name == "custom"
    # sqrt method / ddof / generated-side fields do not change the real-side features
    assert fvd.get_protocol(ddof=1, sqrt_method="sqrtm", frame_policy="uniform").reference_hash() == base.reference_hash()
    assert fvd.get_protocol(resize="short_side_center_crop").reference_hash() != base.reference_hash()
    assert fvd.get_protocol(ddof=1).hash() != base.hash()


def test_reference_stats_of_another_protocol_are_refused(tmp_path, ts_ckpt):
    stats = FeatureStats()
    stats.update(np.random.default_rng(0).standard_normal((4, 15)))
    path = stats.save(tmp_path / "ref.npz", protocol_hash=fvd.get_protocol("jh_styleganv").reference_hash())
    fake = _videos(1, 3, t=16)
    assert np.isfinite(fvd.compute_fvd(path, fake, detector="i3d_torchscript", ckpt_path=ts_ckpt, preset="jh_styleganv"))
    with pytest.raises(ConfigError, match="recompute"):
        fvd.compute_fvd(path, fake, detector="i3d_torchscript", ckpt_path=ts_ckpt, preset="styleganv_16f")


def _inputs(videos, prefix):
    return [MetricInput(item_id=f"{prefix}{i}", output=Video(v)) for i, v in enumerate(videos)]


def test_metric_merge_equals_single_process(tmp_path, ts_ckpt):
    cls = get_metric("fvd")
    ref = FeatureStats()
    protocol = fvd.get_protocol("styleganv_16f")
    ref.update(fvd.extract_features(_videos(8, 5, t=20), "i3d_torchscript", protocol, side="real", ckpt_path=ts_ckpt))
    ref_path = ref.save(tmp_path / "ref.npz", protocol_hash=protocol.reference_hash())
    options = dict(preset="styleganv_16f", ckpt_path=str(ts_ckpt), reference_stats=str(ref_path))
    inputs = _inputs(_videos(9, 6, t=16, high=200), "gen")
    single = cls(**options)
    single.update(inputs)
    parts = [cls(**options), cls(**options)]
    parts[0].update(inputs[:2])
    parts[1].update(inputs[2:])
    parts[0].merge(parts[1])
    assert single.compute()["fvd"] > 0
    assert parts[0].compute()["fvd"] == pytest.approx(single.compute()["fvd"], rel=1e-9)
    info = single.result_info()
    assert info["preset"] == "styleganv_16f" and info["n_generated"] == 6 and info["n_reference"] == 5
    assert cls.higher_is_better is False and cls.bootstrap is False
    assert single.required_weights() == []  # explicit ckpt_path
    assert cls(preset="styleganv_16f", reference_stats=str(ref_path)).required_weights() == ["i3d_torchscript"]
    with pytest.raises(ConfigError, match="name the real videos"):
        cls(preset="styleganv_16f")


def test_metric_reference_dir_is_cached(tmp_path, ts_ckpt, monkeypatch):
    ref_dir = tmp_path / "real"
    ref_dir.mkdir()
    for i, v in enumerate(_videos(10, 3, t=16, size=16)):
        write_video(Video(v), ref_dir / f"real_{i}.mp4")
    options = dict(preset="jh_styleganv", ckpt_path=str(ts_ckpt), reference_dir=str(ref_dir), cache_dir=str(tmp_path / "cache"))
    first = get_metric("fvd")(**options)
    contributions = first.contributions(_inputs(_videos(11, 3, t=16, size=16), "g"))
    for c in contributions:
        first.fold(c)
    value = first.compute()["fvd"]
    assert len(list((tmp_path / "cache").glob("fvd_ref_*.npz"))) == 1

    def no_detector(*args, **kwargs):
        raise AssertionError("reference statistics should come from the cache")

    monkeypatch.setattr(fvd, "load_detector", no_detector)
    second = get_metric("fvd")(**options)
    for c in contributions:
        second.fold(c)
    assert second.compute()["fvd"] == pytest.approx(value, rel=1e-12)
