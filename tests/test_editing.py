"""Editing metrics (MagicBrush conventions) against direct torch / torchvision / torchmetrics computations."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from clip_fixtures import random_images
from PIL import Image

from omnieval.errors import ConfigError, MediaError, MissingWeightsError
from omnieval.media import Video
from omnieval.metrics import editing as E
from omnieval.metrics.base import MetricInput
from omnieval.registry import get_metric


def _magicbrush_distance(gen: np.ndarray, gt: np.ndarray, loss) -> float:
    """MagicBrush eval_distance for one pair: PIL resize to the GT size (default filter), ToTensor, torch loss."""
    from torchvision.transforms import ToTensor

    g = Image.fromarray(gen).resize(Image.fromarray(gt).size)
    return float(loss(ToTensor()(g), ToTensor()(Image.fromarray(gt))))


def test_l1_l2_psnr_ssim_match_reference_formulas():
    """Tolerance 1e-6 absolute (float32 torch losses vs our float64 mean of float32 values)."""
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    gen, gt = random_images(2, 30, 40, seed=1), random_images(2, 24, 32, seed=2)
    items = [MetricInput(str(i), gen[i], reference=gt[i]) for i in range(2)]
    for name, loss in (("edit_l1", torch.nn.L1Loss()), ("edit_l2", torch.nn.MSELoss())):
        metric = get_metric(name)()
        metric.update(items)
        expected = np.mean([_magicbrush_distance(gen[i], gt[i], loss) for i in range(2)])
        assert metric.compute()[name] == pytest.approx(expected, abs=1e-6)
        assert metric.is_higher_better(name) is False

    resized = [np.asarray(Image.fromarray(g).resize((32, 24), Image.BICUBIC)) for g in gen]
    t = lambda a: torch.from_numpy(a.astype(np.float32) / 255).permute(2, 0, 1)[None]  # noqa: E731
    psnr = np.mean([float(peak_signal_noise_ratio(t(r), t(g), data_range=1.0)) for r, g in zip(resized, gt)])
    ssim = np.mean([float(structural_similarity_index_measure(t(r), t(g), data_range=1.0)) for r, g in zip(resized, gt)])
    for name, expected in (("edit_psnr", psnr), ("edit_ssim", ssim)):
        metric = get_metric(name)()
        metric.update(items)
        assert metric.compute()[name] == pytest.approx(expected, abs=1e-5)
    assert E.psnr(gt[0], gt[0]) == float("inf")


def test_video_pairs_and_errors():
    frames, ref = random_images(3, seed=3), random_images(1, seed=4)[0]
    metric = get_metric("edit_l1")()
    metric.update([MetricInput("v", Video(frames), reference=ref)])
    assert metric.compute()["edit_l1"] == pytest.approx(np.mean([E.l1_distance(f, ref) for f in frames]))
    with pytest.raises(MediaError, match="item w"):
        metric.contributions([MetricInput("w", Video(frames), reference=Video(frames[:2]))])
    with pytest.raises(MediaError, match="item n"):
        metric.contributions([MetricInput("n", frames[0])])
    src = get_metric("edit_l1")(against="source")
    src.update([MetricInput("s", frames[0], source=frames[0])])
    assert src.compute()["edit_l1"] == 0.0
    with pytest.raises(ConfigError):
        get_metric("edit_l2")(against="gt")


def test_dino_matches_magicbrush_pipeline(tmp_path):
    """edit_dino vs MagicBrush's pipeline (torchvision transform on PIL, model(x), 1 - scipy cosine distance).

    The backbone is a tiny random timm ViT saved to a file and loaded through ``dino_path``; tolerance 1e-5.
    """
    import copy

    from scipy.spatial import distance
    from torchvision import transforms

    net = copy.deepcopy(E.load_dino("dino-tiny-random"))  # the loader caches: never mutate its model
    path = tmp_path / "dino.pth"
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.01)  # a different network than the built-in one, so loading the file is observable
    torch.save(net.state_dict(), path)

    gen, gt = random_images(2, 64, 80, seed=5), random_images(2, 70, 60, seed=6)
    transform = transforms.Compose([
        transforms.Resize(256, interpolation=3), transforms.CenterCrop(224), transforms.ToTensor(),
        transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    ])
    with torch.no_grad():
        sims = [1 - distance.cosine(net(transform(Image.fromarray(a))[None])[0].numpy(),
                                    net(transform(Image.fromarray(b))[None])[0].numpy()) for a, b in zip(gen, gt)]
    metric = get_metric("edit_dino")(dino="dino-tiny-random", dino_path=str(path))
    assert metric.required_weights() == []
    metric.update([MetricInput(str(i), gen[i], reference=gt[i]) for i in range(2)])
    assert metric.compute()["edit_dino"] == pytest.approx(np.mean(sims), abs=1e-5)

    builtin = get_metric("edit_dino")(dino="dino-tiny-random")
    builtin.update([MetricInput(str(i), gen[i], reference=gt[i]) for i in range(2)])
    assert builtin.compute()["edit_dino"] != pytest.approx(np.mean(sims), abs=1e-7)

    default = get_metric("edit_dino")()
    assert default.required_weights() == ["dino-vits16"]
    with pytest.raises(MissingWeightsError, match="dino_deitsmall16_pretrain.pth"):
        default.update([MetricInput("0", gen[0], reference=gt[0])])


def test_edit_clip_metrics_use_magicbrush_conventions():
    from omnieval.metrics import clip as C

    gen, gt = random_images(2, seed=7), random_images(2, seed=8)
    assert get_metric("edit_clip_i")().required_weights() == ["open_clip-vit-b-32-openai"]
    clip_t = get_metric("edit_clip_t")(backbone="clip-tiny-random", device="cpu")
    assert clip_t.options.scale == 1.0
    clip_t.update([MetricInput(str(i), gen[i], prompt="a red cat") for i in range(2)])
    backbone = clip_t.backbone
    cos = (backbone.encode_images(gen) @ backbone.encode_texts(["a red cat"]).T).mean()
    assert clip_t.compute()["edit_clip_t"] == pytest.approx(float(cos), abs=1e-5)
    clip_i = get_metric("edit_clip_i")(backbone="clip-tiny-random", device="cpu")
    clip_i.update([MetricInput(str(i), gen[i], reference=gt[i]) for i in range(2)])
    assert clip_i.compute()["edit_clip_i"] == pytest.approx(C.clip_i(gen, gt, model=backbone), abs=1e-6)


@pytest.mark.slow
def test_open_clip_backbone_matches_openai_clip_magicbrush(tmp_path):
    """CLIP-I / CLIP-T through the open_clip backbone vs MagicBrush's OpenAI ``clip`` pipeline.

    A tiny OpenAI-layout CLIP (width 64, 1 layer, 32 px) is registered with open_clip, saved, loaded by
    :class:`OpenClipBackbone` (QuickGELU), and rebuilt with ``clip.model.build_model`` from the same state dict;
    MagicBrush's formulas (``1 - scipy cosine``, ``clip._transform``, ``clip.tokenize``) give the reference.
    Tolerance 1e-5.
    """
    import json

    import clip as openai_clip
    import open_clip
    from scipy.spatial import distance

    from omnieval.metrics import clip as C
    from omnieval.metrics.clip_backbones import OpenClipBackbone

    cfg = {"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 8},
           "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 1}}
    (tmp_path / "omnieval-tiny-oc.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(tmp_path / "omnieval-tiny-oc.json")
    torch.manual_seed(0)
    model = open_clip.create_model("omnieval-tiny-oc", pretrained=None, force_quick_gelu=True)
    with torch.no_grad():  # build_model rounds weights to fp16 (real OpenAI checkpoints are fp16 already)
        for p in model.parameters():
            p.copy_(p.half().float())
    torch.save(model.state_dict(), tmp_path / "tiny.pt")
    ours = OpenClipBackbone.from_file("omnieval-tiny-oc", tmp_path / "tiny.pt", name="tiny-oc", quick_gelu=True, device="cpu")

    ref = openai_clip.model.build_model(torch.load(tmp_path / "tiny.pt", weights_only=True)).float().eval()
    transform = openai_clip.clip._transform(32)
    gen, gt = random_images(2, 50, 40, seed=9), random_images(2, 36, 48, seed=10)
    caption = "a red cat wearing a hat"
    with torch.no_grad():
        enc = lambda im: ref.encode_image(transform(Image.fromarray(im))[None])[0].numpy()  # noqa: E731
        text = ref.encode_text(openai_clip.tokenize(caption))[0].numpy()
        clip_i = np.mean([1 - distance.cosine(enc(a), enc(b)) for a, b in zip(gen, gt)])
        clip_t = np.mean([1 - distance.cosine(enc(a), text) for a in gen])
    assert C.clip_i(gen, gt, model=ours) == pytest.approx(clip_i, abs=1e-5)
    assert np.mean(C.text_similarities(ours, [g[None] for g in gen], [caption] * 2, 1.0)) == pytest.approx(clip_t, abs=1e-5)
