"""FID / KID: parity with torchmetrics on a random-init InceptionV3, and quick checks with a tiny network."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from clip_fixtures import random_images

from omnieval.errors import MediaError, MissingWeightsError
from omnieval.media import Video, write_image
from omnieval.metrics import fid as F
from omnieval.metrics.base import MetricInput
from omnieval.registry import get_metric


class TinyFeatures(torch.nn.Module):
    """uint8 NCHW -> 8 features (a stand-in for InceptionV3 in quick tests)."""

    num_features = 8

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 3)

    def forward(self, x):
        return self.conv(x.float() / 255).mean(dim=(2, 3))


@pytest.fixture(scope="session")
def inception_file(tmp_path_factory):
    """A random-init torch-fidelity InceptionV3 state dict (95 MB), made once per session."""
    from unittest import mock

    from torch_fidelity import feature_extractor_inceptionv3 as fe

    path = tmp_path_factory.mktemp("inception") / "random-inception.pth"
    with mock.patch.object(fe, "load_state_dict_from_url", lambda *a, **k: {}), \
            mock.patch.object(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda *a, **k: None):
        torch.manual_seed(0)
        net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    torch.save(net.state_dict(), path)
    return path


def test_missing_inception_weights_is_one_line_naming_the_file():
    metric = get_metric("fid")()
    assert metric.required_weights() == ["inception-v3-compat"]
    with pytest.raises(MissingWeightsError) as err:
        metric.update([MetricInput("a", random_images(1)[0], reference=random_images(1)[0])])
    assert "weights-inception-2015-12-05-6726825d.pth" in str(err.value) and "\n" not in str(err.value)


def test_fid_with_tiny_extractor_equals_torchmetrics():
    """Our running stats + merge vs torchmetrics FrechetInceptionDistance with the same module (tol 1e-6 rel)."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    real, fake = random_images(12, seed=1), random_images(10, seed=2)
    net = TinyFeatures()
    tm = FrechetInceptionDistance(feature=net)
    tm.update(torch.from_numpy(real).permute(0, 3, 1, 2), real=True)
    tm.update(torch.from_numpy(fake).permute(0, 3, 1, 2), real=False)
    expected = float(tm.compute())

    assert F.compute_fid(real, fake, extractor=net) == pytest.approx(expected, rel=1e-6)
    metric = get_metric("fid")()
    metric.extractor = net
    assert metric.required_weights() == []
    parts = [metric.fresh(), metric.fresh()]
    for i in range(10):
        parts[i % 2].update([MetricInput(str(i), fake[i], reference=real[i])])
    parts[0].merge(parts[1])
    paired = F.compute_fid(real[:10], fake, extractor=net)
    assert parts[0].compute()["fid"] == pytest.approx(paired, rel=1e-6)


def test_reference_dir_and_videos(tmp_path):
    net = TinyFeatures()
    real = random_images(6, seed=3)
    for i, im in enumerate(real):
        write_image(im, tmp_path / f"{i:02d}.png")
    fake = random_images(4, seed=4)
    metric = get_metric("fid")(reference_dir=str(tmp_path))
    metric.extractor = net
    metric.update([MetricInput("v", Video(fake[:3])), MetricInput("i", fake[3])])
    assert metric.compute()["fid"] == pytest.approx(F.compute_fid(real, fake, extractor=net), rel=1e-6)

    kid = get_metric("kid")(reference_dir=str(tmp_path), subsets=5, subset_size=3)
    kid.extractor = net
    kid.update([MetricInput("v", Video(fake))])
    mean, std = F.kid_from_features(F.extract_features(real, net), F.extract_features(fake, net), 5, 3)
    assert kid.compute() == pytest.approx({"kid": mean, "kid_std": std})
    assert kid.is_higher_better("kid") is False and kid.bootstrap is False

    with pytest.raises(MediaError, match="subset_size"):
        F.kid_from_features(np.zeros((4, 2)), np.zeros((4, 2)), subset_size=50)
    with pytest.raises(MediaError, match="not found"):
        F.reference_images(tmp_path / "nope")
    with pytest.raises(MediaError, match="item x"):
        metric.contributions([MetricInput("x", np.zeros((3, 3)))])


def test_kid_equals_torchmetrics_with_same_seed():
    """KID vs torchmetrics KernelInceptionDistance after torch.manual_seed(seed) (tolerance 1e-6 rel)."""
    from torchmetrics.image.kid import KernelInceptionDistance

    real, fake = random_images(9, seed=5), random_images(8, seed=6)
    net = TinyFeatures()
    tm = KernelInceptionDistance(feature=net, subsets=7, subset_size=5)
    tm.update(torch.from_numpy(real).permute(0, 3, 1, 2), real=True)
    tm.update(torch.from_numpy(fake).permute(0, 3, 1, 2), real=False)
    torch.manual_seed(3)
    mean, std = (float(v) for v in tm.compute())
    ours = F.compute_kid(real, fake, extractor=net, subsets=7, subset_size=5, seed=3)
    assert ours == pytest.approx((mean, std), rel=1e-6)


@pytest.mark.slow
def test_fid_equals_torchmetrics_on_random_inception(inception_file):
    """FID through the manifest path vs torchmetrics FrechetInceptionDistance on the same weights file.

    FID is compared with ``feature=64`` (a 2048-d eigendecomposition costs ~10 s here; the code path is the
    same), tolerance 1e-4 relative (same network and float64 statistics).  The 2048-d pool3 features with
    ``antialias=False`` (TF1-style resize) equal torchmetrics' network within 1e-5 relative.
    """
    from torchmetrics.image.fid import FrechetInceptionDistance, NoTrainInceptionV3

    real, fake = random_images(3, 48, 48, seed=7), random_images(2, 40, 56, seed=8)
    tm = FrechetInceptionDistance(feature=64, feature_extractor_weights_path=str(inception_file))
    tm.update(torch.from_numpy(real).permute(0, 3, 1, 2), real=True)
    tm.update(torch.from_numpy(fake).permute(0, 3, 1, 2), real=False)
    expected = float(tm.compute())

    metric = get_metric("fid")(weights_path=str(inception_file), feature=64)
    metric.update([MetricInput(str(i), fake[i], reference=real[i]) for i in range(2)])
    extra = metric.fresh()
    extra.real.update(F.extract_features(real[2:], metric.network()))
    metric.merge(extra)
    assert metric.compute()["fid"] == pytest.approx(expected, rel=1e-4)

    ref_net = NoTrainInceptionV3("inception-v3-compat", ["2048"], str(inception_file), antialias=False)
    ours = F.extract_features(fake, F.load_inception(2048, antialias=False, weights_path=inception_file))
    with torch.no_grad():
        theirs = ref_net(torch.from_numpy(fake).permute(0, 3, 1, 2)).numpy()
    assert np.abs(ours - theirs).max() <= 1e-5 * max(1.0, np.abs(theirs).max())
    antialiased = F.extract_features(fake, F.load_inception(2048, antialias=True, weights_path=inception_file))
    assert np.abs(ours - antialiased).max() > 0  # the option changes the features
