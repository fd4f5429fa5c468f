"""CLIP backbones and CLIP metrics, on tiny random CLIP models (no downloads)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from clip_fixtures import random_images, save_tiny_clip, torchmetrics_clip_loader

from omnieval.errors import ConfigError, MediaError, MissingWeightsError
from omnieval.media import Video
from omnieval.metrics import clip as C
from omnieval.metrics.base import MetricInput
from omnieval.metrics.clip_backbones import clip_bpe_tokenizer, load_backbone
from omnieval.registry import get_metric

PROMPTS = ["a red cat on a mat", "two dogs, running!", "a café at night", "a red cat on a mat"]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return save_tiny_clip(tmp_path_factory.mktemp("tiny_clip"))


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    return load_backbone("clip-tiny-random", path=tiny_dir, device="cpu")


def test_tiny_random_backbone_is_deterministic_and_normalised():
    a = load_backbone("clip-tiny-random", device="cpu")
    from omnieval.metrics.clip_backbones import tiny_clip_model_and_processor

    model, _ = tiny_clip_model_and_processor()
    assert torch.equal(model.text_projection.weight, a.model.text_projection.weight)
    feats = a.encode_images(random_images(3))
    assert feats.shape == (3, 16)
    assert torch.allclose(feats.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert a.encode_texts(["x", "y"]).shape == (2, 16)


def test_bpe_tokenizer_matches_open_clip():
    import open_clip

    ours = clip_bpe_tokenizer()
    ref = open_clip.get_tokenizer("ViT-B-32")
    for text in ["A photo of a café, déjà vu!", "two dogs; 3 cats"]:
        ids = ours(text)["input_ids"]
        assert ids == ref([text])[0][: len(ids)].tolist()


def test_missing_weights_is_one_line():
    with pytest.raises(MissingWeightsError) as err:
        load_backbone("openai/clip-vit-base-patch32", device="cpu")
    assert "openai/clip-vit-base-patch32" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(KeyError):
        load_backbone("no-such-clip")


@pytest.mark.slow
def test_clip_score_equals_torchmetrics(tiny_dir, tiny):
    """Parity with torchmetrics 1.9.0 CLIPScore (functional and stateful) on the same saved tiny CLIPModel.

    Tolerance: 1e-4 absolute on a 0-100 scale (same processor, same float32 model; only summation order differs).
    """
    from torchmetrics.functional.multimodal import clip_score as tm_clip_score
    from torchmetrics.multimodal import CLIPScore

    images = random_images(4, 40, 56, seed=3)
    chw = torch.from_numpy(images).permute(0, 3, 1, 2)
    expected = float(tm_clip_score(chw, PROMPTS, torchmetrics_clip_loader(tiny_dir)).detach())
    assert C.clip_score(images, PROMPTS, model=tiny) == pytest.approx(expected, abs=1e-4)

    tm = CLIPScore(model_name_or_path=torchmetrics_clip_loader(tiny_dir))
    metric = get_metric("clip_score")(backbone="clip-tiny-random", backbone_path=str(tiny_dir), device="cpu")
    for lo, hi in [(0, 3), (3, 4)]:
        tm.update(list(chw[lo:hi]), PROMPTS[lo:hi])
        metric.update([MetricInput(str(i), images[i], prompt=PROMPTS[i]) for i in range(lo, hi)])
    assert metric.compute()["clip_score"] == pytest.approx(float(tm.compute()), abs=1e-4)


def test_clip_score_clamps_the_mean_not_each_pair(tiny):
    images = random_images(4, seed=5)
    per_item = C.text_similarities(tiny, [im[None] for im in images], PROMPTS, 100.0)
    assert C.clip_score(images, PROMPTS, model=tiny, clamp=False) == pytest.approx(np.mean(per_item), abs=1e-5)
    assert C.clip_score(images, PROMPTS, model=tiny) == pytest.approx(max(np.mean(per_item), 0.0), abs=1e-5)
    metric = get_metric("clip_score")(backbone="clip-tiny-random", device="cpu", scale=-100.0)
    metric.update([MetricInput(str(i), images[i], prompt=PROMPTS[i]) for i in range(4)])
    other = metric.fresh()
    assert other.compute() == {}
    assert metric.compute()["clip_score"] == max(-np.mean(C.text_similarities(metric.backbone, [im[None] for im in images], PROMPTS, 100.0)), 0.0)


def test_loveu_clip_t_and_frame_consistency_match_direct_torch(tiny_dir, tiny):
    """CLIP-T and all-pairs consistency vs a direct computation from CLIPModel outputs (tolerance 1e-5).

    CLIP-T = mean over frames of ``logits_per_image`` (LOVEU); all_pairs = mean of the off-diagonal cosine
    matrix of ``get_image_features``; consecutive = mean of clamped consecutive cosines of the vision
    tower's ``pooler_output`` (V2VBench).
    """
    from transformers import CLIPModel, CLIPProcessor

    frames = random_images(5, 36, 36, seed=7)
    model = CLIPModel.from_pretrained(tiny_dir).eval()
    proc = CLIPProcessor.from_pretrained(tiny_dir)
    with torch.no_grad():
        inputs = proc(text=["a red cat"], images=list(torch.from_numpy(frames).permute(0, 3, 1, 2)), return_tensors="pt", padding=True)
        out = model(**inputs)
        logits = out.logits_per_image[:, 0]
        emb = out.image_embeds / out.image_embeds.norm(dim=-1, keepdim=True)
        pooled = model.vision_model(pixel_values=inputs["pixel_values"]).pooler_output
        pooled = pooled / pooled.norm(dim=-1, keepdim=True)
    sim = emb @ emb.T
    all_pairs = float((sim.sum() - sim.trace()) / (5 * 4))
    consecutive = float(torch.clamp((pooled[1:] * pooled[:-1]).sum(-1), min=0).mean())

    video = Video(frames)
    assert C.clip_t([video], ["a red cat"], model=tiny) == pytest.approx(float(logits.mean()), abs=1e-4)
    assert C.frame_consistency([video], model=tiny) == pytest.approx(all_pairs, abs=1e-5)
    assert C.frame_consistency([video], model=tiny, variant="consecutive") == pytest.approx(consecutive, abs=1e-5)

    metric = get_metric("clip_frame_consistency")(backbone="clip-tiny-random", backbone_path=str(tiny_dir), device="cpu", variant="consecutive")
    metric.update([MetricInput("v", video)])
    assert metric.compute()["clip_frame_consistency"] == pytest.approx(consecutive, abs=1e-5)


def test_clip_i_and_direction(tiny):
    a, b = random_images(2, seed=1), random_images(2, seed=2)
    assert C.clip_i(a, a, model=tiny) == pytest.approx(1.0, abs=1e-5)
    fa, fb = tiny.encode_images(a), tiny.encode_images(b)
    assert C.clip_i(a, b, model=tiny) == pytest.approx(float((fa * fb).sum(-1).mean()), abs=1e-5)

    src_t, tgt_t = ["a cat", "a dog"], ["a tiger", "a wolf"]
    ts, tt = tiny.encode_texts(src_t), tiny.encode_texts(tgt_t)
    expected = torch.nn.functional.cosine_similarity(fb - fa, tt - ts).mean()
    assert C.clip_direction(a, b, src_t, tgt_t, model=tiny) == pytest.approx(float(expected), abs=1e-5)

    metric = get_metric("clip_direction")(backbone="clip-tiny-random", device="cpu")
    metric.backbone  # noqa: B018 - loads the cached backbone
    items = [MetricInput(str(i), b[i], prompt=tgt_t[i], source=a[i], doc={"input_caption": src_t[i]}) for i in range(2)]
    ref = C.clip_direction(a, b, src_t, tgt_t, model=metric.backbone)
    contribs = metric.contributions(items)
    for c in contribs:
        metric.fold(c)
    assert metric.compute()["clip_direction"] == pytest.approx(ref, abs=1e-6)
    with pytest.raises(MediaError, match="item 0"):
        metric.contributions([MetricInput("0", b[0], prompt="x", source=a[0])])
    # the target caption may come from a doc field instead of the prompt (the prompt being an instruction)
    by_field = get_metric("clip_direction")(backbone="clip-tiny-random", device="cpu", target_caption_field="output_caption")
    items = [MetricInput(str(i), b[i], prompt="make it wild", source=a[i],
                         doc={"input_caption": src_t[i], "output_caption": tgt_t[i]}) for i in range(2)]
    by_field.update(items)
    assert by_field.compute()["clip_direction"] == pytest.approx(ref, abs=1e-6)


def test_metrics_merge_and_validate(tiny):
    images = random_images(4, seed=9)
    items = [MetricInput(str(i), images[i], prompt=PROMPTS[i]) for i in range(4)]
    whole = get_metric("clip_t")(backbone="clip-tiny-random", device="cpu", scale=100.0)
    whole.update(items)
    left, right = whole.fresh(), whole.fresh()
    left.update(items[:1])
    right.update(items[1:])
    left.merge(right)
    assert left.compute()["clip_t"] == pytest.approx(whole.compute()["clip_t"], abs=1e-5)  # batching changes float32 sums

    with pytest.raises(ConfigError):
        get_metric("clip_frame_consistency")(variant="pairs")
    with pytest.raises(ConfigError):
        get_metric("clip_t")(nonsense=1)
    with pytest.raises(MediaError, match="item bad"):
        whole.contributions([MetricInput("bad", np.zeros((4, 4)), prompt="x")])
    with pytest.raises(MediaError, match="at least 2 frames"):
        C.frame_consistency([images[0]], model=tiny)
    assert get_metric("clip_score")().required_weights() == ["clip-vit-large-patch14"]
    assert get_metric("clip_t")(backbone="clip-tiny-random").required_weights() == []


def test_video_frame_sampling(tiny):
    frames = random_images(6, seed=4)
    metric = get_metric("clip_t")(backbone="clip-tiny-random", device="cpu", frames="uniform", num_frames=2)
    metric.update([MetricInput("v", Video(frames), prompt="a cat")])
    expected = C.clip_t([frames[[0, 5]]], ["a cat"], model=metric.backbone)
    assert metric.compute()["clip_t"] == pytest.approx(expected, abs=1e-5)
