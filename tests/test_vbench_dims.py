"""VBench network dimensions (part B): parity with vbench 0.1.5 on random-init networks, rule logic, failures.

Parity tests run vbench's own inner functions and ours on the same two tiny videos (8 frames, 64 px, lossless
H.264) with the same random-init networks (a timm ViT in DINO's layout, a tiny ``clip.model.CLIP`` at 224 px, a
tiny ViCLIP).  Tolerance: 1e-6 absolute (float32 feature noise; VBench sums Python floats per frame).
"""
from __future__ import annotations

import os

import numpy as np
import pytest
from vbench_fixtures import write_videos

from omnieval.errors import MediaError, MissingWeightsError, OmniEvalError
from omnieval.media import Video
from omnieval.metrics.base import MetricInput
from omnieval.metrics.vbench import clip_dims, consistency, quality_dims, semantic_dims, viclip_dims
from omnieval.metrics.vbench.semantic_dims import Detection

TOL = 1e-6


@pytest.fixture(scope="session")
def videos(tmp_path_factory):
    return [str(p) for p in write_videos(tmp_path_factory.mktemp("vb_dims"), ["a-0.mp4", "b-0.mp4"], frames=8, size=64)]


@pytest.fixture(scope="session")
def tiny_vit():
    import timm
    import torch

    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, dynamic_img_size=True).eval()


@pytest.fixture(scope="session")
def tiny_clip():
    import clip.model
    import torch

    torch.manual_seed(0)
    # embed 32, 224 px, 1 vision layer of width 64, patch 32; text: ctx 77, full vocab, width 64, 1 head, 1 layer
    return clip.model.CLIP(32, 224, 1, 64, 32, 77, 49408, 64, 1, 1).eval()


@pytest.fixture(scope="session")
def tiny_viclip(tmp_path_factory):
    import torch

    os.environ.setdefault("VBENCH_CACHE_DIR", str(tmp_path_factory.mktemp("vbench_cache")))
    viclip_dims.ensure_viclip_bpe()
    from vbench.third_party.ViCLIP.viclip import ViCLIP
    from vbench.third_party.ViCLIP.viclip_text import CLIP_TEXT
    from vbench.third_party.ViCLIP.viclip_vision import VisionTransformer

    class TinyViCLIP(ViCLIP):
        def build_vision_encoder(self):
            return VisionTransformer(input_resolution=224, patch_size=32, width=64, layers=1, heads=2, output_dim=32, num_frames=8)

        def build_text_encoder(self):
            return CLIP_TEXT(32, 32, 49408, 64, 2, 1, 0)

    torch.manual_seed(0)
    model = TinyViCLIP(pretrain=None)
    for p in model.parameters():  # several ViCLIP parameters are torch.empty
        torch.nn.init.normal_(p, std=0.05)
    return model.eval()


def _items(paths, **kw):
    return [MetricInput(item_id=f"v{i}", output=p, **kw) for i, p in enumerate(paths)]


# ---------------------------------------------------------------------------------------------
# Parity with vbench (slow: builds networks)
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_subject_consistency_matches_vbench(videos, tiny_vit):
    from vbench.subject_consistency import subject_consistency as ref

    expected, per_video = ref(tiny_vit, videos, "cpu", False)
    assert abs(consistency.subject_consistency(videos, tiny_vit) - expected) < TOL
    metric = consistency.SubjectConsistency()
    metric.cached("dino", lambda: tiny_vit)
    contributions = metric.contributions(_items(videos))
    assert [c["subject_consistency"] for c in contributions] == pytest.approx([r["video_results"] for r in per_video], abs=TOL)
    # any split over processes gives the single-process (all frame pairs) value
    parts = [metric.fresh(), metric.fresh()]
    parts[0].fold(contributions[0])
    parts[1].fold(contributions[1])
    parts[0].merge(parts[1])
    assert abs(parts[0].compute()["subject_consistency"] - expected) < TOL


@pytest.mark.slow
def test_background_consistency_matches_vbench(videos, tiny_clip):
    from vbench.background_consistency import background_consistency as ref

    expected, _ = ref(tiny_clip, None, videos, "cpu", False)
    assert abs(consistency.background_consistency(videos, tiny_clip) - expected) < TOL
    metric = consistency.BackgroundConsistency()
    metric.cached("clip", lambda: tiny_clip)
    metric.update(_items(videos))
    assert abs(metric.compute()["background_consistency"] - expected) < TOL


@pytest.mark.slow
def test_aesthetic_quality_matches_vbench(videos, tiny_clip):
    import torch
    from vbench.aesthetic_quality import laion_aesthetic

    torch.manual_seed(1)
    head = torch.nn.Linear(32, 1)
    expected, _ = laion_aesthetic(head, tiny_clip, videos, "cpu")
    assert abs(clip_dims.aesthetic_quality(videos, tiny_clip, head) - expected) < TOL
    metric = clip_dims.AestheticQuality()
    metric.cached("clip", lambda: tiny_clip)
    metric.cached("head", lambda: head)
    metric.update(_items(videos))
    assert abs(metric.compute()["aesthetic_quality"] - expected) < TOL


@pytest.mark.slow
def test_appearance_style_matches_vbench_over_all_frames(videos, tiny_clip):
    from vbench.appearance_style import appearance_style as ref

    styles = ["Van Gogh style", "oil painting"]
    video_dict = [{"auxiliary_info": {"appearance_style": s}, "video_list": [v]} for s, v in zip(styles, videos)]
    expected, per_video = ref(tiny_clip, video_dict, "cpu")
    assert abs(clip_dims.appearance_style(videos, styles, tiny_clip) - expected) < TOL
    metric = clip_dims.AppearanceStyle()
    metric.cached("clip", lambda: tiny_clip)
    items = [
        MetricInput(item_id=f"v{i}", output=v, doc={"auxiliary_info": {"appearance_style": {"appearance_style": s}}})
        for i, (v, s) in enumerate(zip(videos, styles))
    ]
    metric.update(items)
    assert abs(metric.compute()["appearance_style"] - expected) < TOL
    # the last-frame-only multi-GPU value of VBench is a different number
    last_only = np.mean([r["cur_sim"] for r in per_video])
    assert abs(last_only - expected) > 1e-9


@pytest.mark.slow
def test_temporal_style_and_overall_consistency_match_vbench(videos, tiny_viclip):
    from vbench.overall_consistency import overall_consistency as ref_overall
    from vbench.temporal_style import temporal_style as ref_style

    prompts = ["a cat running, slow motion", "a dog in the snow"]
    video_dict = [{"prompt": p, "video_list": [v]} for p, v in zip(prompts, videos)]
    expected, _ = ref_style(tiny_viclip, video_dict, None, "cpu")
    assert abs(viclip_dims.temporal_style(videos, prompts, tiny_viclip) - expected) < TOL
    expected_overall, _ = ref_overall(tiny_viclip, video_dict, None, "cpu")
    metric = viclip_dims.OverallConsistency()
    metric.cached("viclip", lambda: tiny_viclip)
    metric.update([MetricInput(item_id=f"v{i}", output=v, prompt=p) for i, (v, p) in enumerate(zip(videos, prompts))])
    assert abs(metric.compute()["overall_consistency"] - expected_overall) < TOL


def test_frames_of_several_videos_share_forward_batches():
    """batched_over_videos: full batches across video boundaries, each video's outputs in order."""
    import torch

    videos = [np.full((n, 2, 2, 3), i, np.uint8) for i, n in enumerate([5, 40, 3])]
    sizes = []

    def forward(x):
        sizes.append(len(x))
        return x.flatten(1).sum(1, keepdim=True) * 2

    outputs = consistency.batched_over_videos(videos, lambda f: torch.from_numpy(f).float(), forward, batch=16)
    assert sizes == [16, 16, 16]
    assert [tuple(o.shape) for o in outputs] == [(5, 1), (40, 1), (3, 1)]
    assert all(torch.equal(o, torch.full_like(o, 2 * 12 * i)) for i, o in enumerate(outputs))


def test_middle_indices_match_vbench():
    from vbench.utils import get_frame_indices

    for length in (1, 3, 7, 8, 9, 16, 17, 33, 100):
        for num in (8, 16):
            assert viclip_dims.vbench_middle_indices(num, length) == list(get_frame_indices(num, length, sample="middle"))


# ---------------------------------------------------------------------------------------------
# Weights and start-up failures
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_clip_loads_from_safetensors_and_refuses_torchscript(tmp_path, tiny_clip):
    import torch
    from safetensors.torch import save_file

    path = tmp_path / "clip.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_clip.state_dict().items()}, str(path))
    loaded = consistency.load_openai_clip(path)
    assert loaded.visual.conv1.weight.dtype == torch.float32
    # built without random init (skip_init): the same weights as openai-clip's own build_model (fp16-rounded, like
    # the released archives and vbench's clip.load)
    from clip.model import build_model

    reference = build_model(dict(tiny_clip.state_dict())).float().state_dict()
    assert all(torch.equal(v, reference[k]) for k, v in loaded.state_dict().items())
    metric = consistency.BackgroundConsistency(ckpt_path=str(path))
    assert metric.model() is metric.fresh().model()  # built once, shared by clones
    scripted = tmp_path / "jit.pt"
    torch.jit.script(torch.nn.Linear(2, 2)).save(str(scripted))
    with pytest.raises(OmniEvalError, match="TorchScript"):
        consistency.load_openai_clip(scripted)


def test_state_dicts_load_memory_mapped_and_from_legacy_files(tmp_path):
    import torch

    from omnieval.metrics.vbench.common import load_state_dict

    state = {"module.w": torch.arange(6.0).reshape(2, 3)}
    torch.save(state, tmp_path / "zip.pth")
    torch.save(state, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)  # cannot be memory-mapped
    for name in ("zip.pth", "legacy.pth"):
        loaded = load_state_dict(tmp_path / name)
        assert list(loaded) == ["w"] and torch.equal(loaded["w"], state["module.w"])


def test_skip_init_leaves_tensors_alone_and_restores():
    import torch

    from omnieval.metrics.vbench.common import skip_init

    t = torch.zeros(4)
    with skip_init():
        torch.nn.init.normal_(t)
        torch.nn.Linear(2, 2)  # reset_parameters -> kaiming_uniform_: untouched
        assert torch.equal(t, torch.zeros(4))
    torch.nn.init.normal_(t)
    assert not torch.equal(t, torch.zeros(4))


def test_missing_weights_fail_with_one_line(videos):
    metric = consistency.SubjectConsistency()
    assert metric.required_weights() == ["vbench_dino_vitb16"]
    with pytest.raises(MissingWeightsError, match="dino_vitbase16_pretrain.pth"):
        metric.update(_items(videos[:1]))
    with pytest.raises(MissingWeightsError, match="l16_ptk710"):
        semantic_dims.HumanAction()


@pytest.mark.parametrize(
    "cls, package",
    [
        (quality_dims.ImagingQuality, "pyiqa"),
    ],
)
def test_unavailable_networks_fail_at_creation(cls, package, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, package, None)  # as if not installed (imports raise ImportError)
    with pytest.raises(OmniEvalError, match=package):
        cls()


@pytest.mark.parametrize("cls", [semantic_dims.ObjectClass, semantic_dims.Color])
def test_grit_needs_only_grit_and_bert_weights(cls, monkeypatch):
    import sys
    from pathlib import Path

    monkeypatch.setitem(sys.modules, "detectron2", None)  # the native GRiT does not need detectron2
    with pytest.raises(MissingWeightsError, match="grit_b_densecap_objectdet.pth"):
        cls()
    with pytest.raises(MissingWeightsError, match="bert-base-uncased"):
        cls(ckpt_path=__file__)  # the checkpoint is there, the vocabulary is not
    assert cls(detector=lambda f: []).required_weights() == []
    assert cls(ckpt_path=__file__, vocab_path=str(Path(__file__).parent)).required_weights() == []


def test_scene_needs_only_tag2text_and_bert_weights():
    with pytest.raises(MissingWeightsError, match="tag2text_swin_14m.pth"):
        semantic_dims.Scene()
    with pytest.raises(MissingWeightsError, match="bert-base-uncased"):
        semantic_dims.Scene(ckpt_path=__file__)  # the checkpoint is there, the vocabulary is not
    assert semantic_dims.Scene(captioner=lambda f: [""] * len(f)).required_weights() == []


def test_too_short_video_is_an_error(tiny_vit):
    with pytest.raises(MediaError, match="2 frames"):
        consistency.subject_consistency([np.zeros((1, 8, 8, 3), np.uint8)], tiny_vit)


# ---------------------------------------------------------------------------------------------
# Rule logic given detections / captions / predictions (VBench 0.1.5 code, by hand)
# ---------------------------------------------------------------------------------------------
def _det(label, box=(0, 0, 10, 10), caption=""):
    return Detection(caption or label, box, label)


def test_object_class_and_multiple_objects_rules():
    frames = [[_det("person"), _det("dog")], [_det("dog")], [], [_det("cat"), _det("person")]]
    labels = semantic_dims.frame_labels(frames)
    assert semantic_dims.object_class_hits(labels, "person") == 2
    assert semantic_dims.multiple_objects_hits(labels, "person and dog") == 1
    assert semantic_dims.multiple_objects_hits(labels, " cat  and person ") == 1


def test_object_class_metric_pools_frames_with_fake_detector():
    outputs = {"v0": 1, "v1": 3}  # number of leading frames (of 16 sampled) in which a person is found

    def detector_for(n):
        calls = iter(range(100))
        return lambda frame: [_det("person")] if next(calls) < n else [_det("car")]

    values = []
    for item_id, n in outputs.items():
        metric = semantic_dims.ObjectClass(detector=detector_for(n))
        item = MetricInput(item_id=item_id, output=Video(np.zeros((20, 8, 8, 3), np.uint8)), doc={"auxiliary_info": {"object_class": {"object": "person"}}})
        values.append(metric.contributions([item])[0])
    merged = semantic_dims.ObjectClass(detector=lambda f: [])
    for c in values:
        merged.fold(c)
    assert merged.compute() == {"object_class": pytest.approx(4 / 32)}
    assert values[1]["object_class"] == pytest.approx(3 / 16)


def test_color_rules_including_first_detection_quirk():
    assert semantic_dims.color_object("a red bicycle", "red") == "bicycle"
    assert semantic_dims.color_object("a yellow banana", "yellow") == "banana"
    assert semantic_dims.color_object("an orange car", "orange") == "car"
    frames = [
        [_det("bicycle", caption="a red bicycle"), _det("car", caption="blue car")],  # object with colour, red
        [_det("bicycle", caption="a blue bike")],  # object, not red
        [_det("car", caption="red car"), _det("bicycle", caption="red bicycle")],  # first label car: ignored
        [_det("bicycle", caption="a bicycle")],  # no colour word
    ]
    assert semantic_dims.color_counts(frames, "red", "bicycle") == (2, 1)
    metric = semantic_dims.Color(detector=lambda f: [])
    item = MetricInput(item_id="v", output=np.zeros((4, 8, 8, 3), np.uint8), prompt="a red bicycle", doc={"auxiliary_info": {"color": {"color": "red"}}})
    assert metric.contributions([item]) == [{"color_skipped": "object not detected with any colour"}]
    assert metric.compute() == {}


def test_spatial_relationship_rules():
    left, right = (0, 0, 10, 10), (20, 0, 30, 10)
    assert semantic_dims.position_score("on the left of", left, right) == 1.0
    assert semantic_dims.position_score("on the right of", left, right) == 1.0  # direction is not checked
    assert semantic_dims.position_score("on the top of", left, right) == 0.0
    overlapping = (5, 0, 15, 10)  # IoU = 50 / 150
    assert semantic_dims.position_score("on the left of", left, overlapping) == pytest.approx(0.1 / (50 / 150))
    below = (0, 20, 10, 30)
    assert semantic_dims.position_score("on the bottom of", left, below) == 1.0
    assert semantic_dims.position_score("left", left, right) == 1.0  # substring test, as in VBench
    info = {"object_a": "bicycle", "object_b": "car", "relationship": "on the left of"}
    frames = [
        [_det("bicycle", left), _det("car", right)],
        [_det("bicycle", left), _det("tree", right)],
        [_det("car", left), _det("car", overlapping), _det("car", below)],
    ]
    assert semantic_dims.spatial_frame_scores(frames, info) == pytest.approx([1.0, 0.0, 0.3])
    # vbench matches the description (info[0]), not the det_obj label
    described = [[Detection("bicycle", left, "person"), Detection("car", right, "person")]]
    assert semantic_dims.spatial_frame_scores(described, info) == [1.0]
    assert semantic_dims.spatial_frame_scores([[_det("bicycle", left, "x"), _det("car", right, "y")]], info) == [0.0]


def test_scene_and_human_action_rules():
    captions = ["a narrow alley at night", "a street with cars", "an alleyway"]
    assert semantic_dims.scene_hits(captions, "alley") == 2
    assert semantic_dims.scene_hits(captions, "street cars") == 1
    assert semantic_dims.action_label("A person is riding a bike") == "riding a bike"
    names = ["riding a bike", "riding mountain bike", "skateboarding", "unicycling", "jogging"]
    assert semantic_dims.action_correct([0.9, 0.5, 0.1, 0.1, 0.1], names, "riding a bike")
    assert semantic_dims.action_correct([0.84996, 0.5, 0.1, 0.1, 0.1], names, "riding a bike")  # rounds to 0.85
    assert not semantic_dims.action_correct([0.8499, 0.95, 0.1, 0.1, 0.1], names, "riding a bike")
    assert not semantic_dims.action_correct([0.99, 0.95, 0.1, 0.1, 0.1], names, "jogging")  # not in kept top-5
    metric = semantic_dims.HumanAction(classifier=lambda frames: ([0.9, 0.9, 0.1, 0.1, 0.1], names))
    prompts = ["A person is riding a bike", "A person is jogging"]
    metric.update([MetricInput(item_id=f"v{i}", output=np.zeros((16, 8, 8, 3), np.uint8), prompt=p) for i, p in enumerate(prompts)])
    assert metric.compute() == {"human_action": 0.5}


def test_imaging_quality_preprocessing_and_scale():
    import torch

    frames = np.full((3, 600, 1024, 3), 255, np.uint8)
    x = quality_dims.musiq_input(frames, "longer")
    assert tuple(x.shape) == (3, 3, 300, 512) and float(x.max()) == pytest.approx(1.0)
    assert tuple(quality_dims.musiq_input(frames, "shorter_centercrop").shape) == (3, 3, 512, 512)
    metric = quality_dims.ImagingQuality(scorer=lambda x: torch.tensor(40.0) + 20 * x.mean())
    metric.update([MetricInput(item_id="v", output=Video(frames[:, :64, :64]))])
    assert metric.compute() == {"imaging_quality": pytest.approx(0.6)}


def test_umt_classifier_builds_vbench_network_and_rejects_partial_checkpoints(tmp_path, monkeypatch):
    """The real loader path of human_action on a narrow/shallow version of vbench's own UMT VisionTransformer
    (vit_large_patch16_224 at real size is a 1.2 GB checkpoint): vbench's constructor must accept our
    arguments, a full checkpoint must load, and one that leaves weights random must be refused."""
    import torch

    finetune = semantic_dims.import_vbench("vbench.third_party.umt.models.modeling_finetune")

    def small(pretrained=False, **kwargs):
        return finetune.VisionTransformer(patch_size=16, embed_dim=32, depth=1, num_heads=2, qkv_bias=True, **kwargs)

    monkeypatch.setattr(finetune, "vit_large_patch16_224", small)
    torch.manual_seed(0)
    state = small(**semantic_dims.UMT_KWARGS).state_dict()
    full = tmp_path / "umt.pth"
    torch.save(state, full)
    classify = semantic_dims.umt_classifier(full)
    probs, names = classify(np.random.default_rng(0).integers(0, 255, (16, 64, 64, 3), dtype=np.uint8))
    assert len(probs) == len(names) == 5 and all(0 <= p <= 1 for p in probs) and all(isinstance(n, str) for n in names)
    partial = tmp_path / "partial.pth"
    torch.save({k: v for k, v in state.items() if not k.startswith("head")}, partial)
    with pytest.raises(MissingWeightsError, match="partial.pth: not a UMT-L/16"):
        semantic_dims.umt_classifier(partial)


@pytest.mark.parametrize("height, width", [(776, 1000), (96, 128)])
def test_detector_frames_match_vbench_loading(tmp_path, height, width):
    """GRiT's input frames equal what vbench's object_class / multiple_objects / spatial_relationship (decord
    ``load_video(num_frames=16)`` as float, torchvision ``Resize`` to short side 720 when it exceeds 768) and color
    (``return_tensor=False`` uint8, cv2 INTER_LINEAR) hand to GRiT.  Tolerance: exact for the cv2 path, 1e-3 grey
    levels for torchvision's float resize (the same op on the same float input)."""
    import cv2
    from torchvision import transforms
    from vbench.utils import load_video

    from omnieval.media import read_video, write_video

    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, (20, 6, 8, 3), dtype=np.uint8)
    frames = np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_CUBIC) for f in coarse])
    path = write_video(Video(frames, fps=8), tmp_path / "v.mp4")
    decoded = read_video(path).frames

    reference = load_video(str(path), num_frames=16)
    if min(height, width) > 768:
        scale = 720.0 / min(height, width)
        reference = transforms.Resize(size=(int(scale * height), int(scale * width)))(reference)
    ours = semantic_dims.detector_frames(decoded, resize="torchvision")
    assert ours.shape == tuple(reference.permute(0, 2, 3, 1).shape)
    assert np.abs(ours - reference.permute(0, 2, 3, 1).numpy()).max() <= 1e-3

    reference = load_video(str(path), num_frames=16, return_tensor=False)
    if min(height, width) > 768:
        scale = 720.0 / min(height, width)
        size = (int(scale * width), int(scale * height))
        reference = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_LINEAR) for f in reference])
    ours = semantic_dims.detector_frames(decoded, resize="cv2")
    assert ours.dtype == reference.dtype and np.array_equal(ours, reference)


def test_grit_metrics_end_to_end_with_a_given_detector():
    """The registered GRiT metrics on a video, with a detector whose answers are known per frame: 4 dark frames
    (nothing), 6 bright ("red car"), 6 mid grey ("blue car").  color: 12 object frames, 6 red -> 0.5 (a per-video
    rate, mean over videos); object_class: 12 / 16 frames; a second video without the object is not scored by color."""
    levels = np.array([20] * 4 + [200] * 6 + [150] * 6, dtype=np.uint8)
    video = Video(np.broadcast_to(levels[:, None, None, None], (16, 24, 32, 3)).copy(), fps=8)
    dark = Video(np.full((16, 24, 32, 3), 20, np.uint8), fps=8)

    def detector(frame):
        if frame.mean() > 180:
            return [Detection("red car", (0, 0, 10, 10), "car")]
        return [Detection("blue car", (0, 0, 10, 10), "car")] if frame.mean() > 100 else []

    def items(dimension, info, prompt):
        return [MetricInput(item_id=f"v{i}", output=v, prompt=prompt, doc={"auxiliary_info": {dimension: info}})
                for i, v in enumerate((video, dark))]

    color = semantic_dims.Color(detector=detector)
    color.update(items("color", {"color": "red"}, "a red car"))
    assert color.compute() == {"color": 0.5}
    objects = semantic_dims.ObjectClass(detector=detector)
    objects.update(items("object_class", {"object": "car"}, "a car"))
    assert objects.compute() == {"object_class": 12 / 32}


def test_scene_frames_are_decoded_like_vbench(tmp_path):
    """Tag2Text's input: vbench's scene decodes with decord scaling to 384x384 while decoding; a video read from a
    file is decoded the same way (exactly equal pixels); an in-memory video falls back to its own frames."""
    import cv2
    from vbench.utils import load_video

    from omnieval.media import read_video, write_video

    rng = np.random.default_rng(1)
    frames = np.stack([cv2.resize(f, (80, 60), interpolation=cv2.INTER_CUBIC)
                       for f in rng.integers(0, 256, (20, 6, 8, 3), dtype=np.uint8)])
    path = write_video(Video(frames, fps=8), tmp_path / "v.mp4")
    reference = load_video(str(path), num_frames=16, return_tensor=False, width=384, height=384)
    ours = semantic_dims.scene_frames(read_video(path))
    assert ours.shape == (16, 384, 384, 3) and np.array_equal(ours, reference)
    in_memory = semantic_dims.scene_frames(Video(frames, fps=8))
    assert in_memory.shape == (16, 60, 80, 3)
