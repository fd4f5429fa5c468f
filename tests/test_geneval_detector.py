"""GenEval detector adapters and colour classifier, on tiny random-weight models.

* Mask2Former post-processing: hand-computed values of mmdet's instance head (exact for labels and
  boxes, 1e-6 for scores), and parity with transformers' ``post_process_instance_segmentation`` where
  both define the same computation (a 384 x 384 image, no padding, top-``num_queries``): labels and masks
  exact, scores to 1e-6 (transformers rounds them to 6 decimals).
* Colour: parity with clip_benchmark 1.4.0 (``zero_shot_classifier`` + ``run_classification``, as called
  by GenEval) on the same tiny open_clip model and GenEval-style crops: logits to 1e-4 (100 x cosine,
  fp32), predicted colours exact.
"""
from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest

from omnieval.errors import ConfigError, MissingWeightsError, OmniEvalError
from omnieval.metrics.base import MetricInput
from omnieval.metrics.geneval import GenEval
from omnieval.metrics.geneval_color import COLORS, TEMPLATES, ColorClassifier, load_color_classifier, object_crop
from omnieval.metrics.geneval_detector import (
    OBJECT_NAMES,
    Detection,
    Mask2FormerDetector,
    MMDetDetector,
    detections_from_mmdet,
    geneval_class_name,
    instance_postprocess,
    masks_to_boxes,
)

torch = pytest.importorskip("torch")

# detectron2 / HF-style COCO names: three differ from GenEval's
HF_LABELS = [{"computer mouse": "mouse", "tv remote": "remote", "computer keyboard": "keyboard"}.get(n, n) for n in OBJECT_NAMES]


# -- label mapping and mmdet conversion --------------------------------------------------------
def test_label_mapping():
    assert [geneval_class_name(n) for n in HF_LABELS] == list(OBJECT_NAMES)
    assert geneval_class_name("hair_dryer") == "hair drier" and geneval_class_name("Dining-Table") == "dining table"
    with pytest.raises(ConfigError, match="not one of"):
        geneval_class_name("LABEL_3")


def test_mmdet_result_conversion():
    bbox = [np.zeros((0, 5), np.float32) for _ in OBJECT_NAMES]
    bbox[16] = np.array([[1, 2, 3, 4, 0.75], [5, 6, 7, 8, 0.5]], np.float32)
    segm = [[] for _ in OBJECT_NAMES]
    segm[16] = [np.ones((10, 10), bool), np.zeros((10, 10), bool)]
    found = detections_from_mmdet((bbox, segm))
    assert list(found) == ["dog"] and [d.score for d in found["dog"]] == [0.75, 0.5]
    assert found["dog"][0].box.tolist() == [1, 2, 3, 4] and found["dog"][0].mask.all()
    assert detections_from_mmdet(bbox)["dog"][1].mask is None
    with pytest.raises(ConfigError, match="80"):
        detections_from_mmdet(bbox[:3])


def test_mmdet_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "mmdet", None)  # import fails even where mmdet is installed
    monkeypatch.setitem(sys.modules, "mmdet.apis", None)
    with pytest.raises(OmniEvalError, match="mmdet 2.x and mmcv-full"):
        MMDetDetector("cfg.py", "ckpt.pth")


def test_missing_weights_name_the_file():
    metric = GenEval()
    with pytest.raises(MissingWeightsError, match="facebook/mask2former-swin-small-coco-instance"):
        metric.update([MetricInput("x", np.zeros((8, 8, 3), np.uint8), doc={"tag": "single_object", "include": [{"class": "cat", "count": 1}]})])


# -- mmdet instance post-processing ------------------------------------------------------------
def test_instance_postprocess_by_hand():
    # 2 queries, 2 classes (+ no-object); softmax rows: q0 = [e^2, 1, 1]/(e^2+2), q1 = [1, e^1, 1]/(e+2)
    cls = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    masks = torch.full((2, 4, 6), -3.0)
    masks[0, 1:3, 2:5] = 1.0  # 2 x 3 pixels, sigmoid(1)
    masks[1, 0, 0] = 2.0
    scores, labels, binary, boxes = instance_postprocess(cls, masks, max_per_image=2)
    order = torch.argsort(scores, descending=True)
    p00 = np.exp(2) / (np.exp(2) + 2)
    p11 = np.e / (np.e + 2)
    sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    assert labels[order].tolist() == [0, 1]
    assert scores[order].tolist() == pytest.approx([p00 * sig(1) * 6 / (6 + 1e-6), p11 * sig(2) / (1 + 1e-6)], abs=1e-6)
    assert boxes[order].tolist() == [[2, 1, 5, 3], [0, 0, 1, 1]]
    assert binary[order][0].sum() == 6
    assert masks_to_boxes(torch.zeros((1, 3, 3), dtype=torch.bool)).tolist() == [[0, 0, 0, 0]]


class _FixedOutputs(torch.nn.Module):
    """Stands in for the network: one confident 'dog' query whose mask logit is +10 left of column 22 of 24."""

    def __init__(self):
        super().__init__()
        self.config = types.SimpleNamespace(id2label=dict(enumerate(HF_LABELS)))

    def forward(self, pixel_values, pixel_mask=None):
        h, w = pixel_values.shape[-2] // 4, pixel_values.shape[-1] // 4
        cls = torch.full((1, 1, 81), -10.0)
        cls[0, 0, 16] = 10.0
        masks = torch.full((1, 1, h, w), -10.0)
        masks[..., : w - 2] = 10.0
        return types.SimpleNamespace(class_queries_logits=cls, masks_queries_logits=masks)


def test_padding_is_cropped_before_resizing_masks():
    def processor(images, return_tensors, **kw):  # a 64 x 90 resized image padded to 64 x 96
        mask = torch.zeros((1, 64, 96), dtype=torch.long)
        mask[:, :, :90] = 1
        return {"pixel_values": torch.zeros((1, 3, 64, 96)), "pixel_mask": mask}

    image = np.zeros((50, 70, 3), np.uint8)
    (dog,) = Mask2FormerDetector(_FixedOutputs(), processor, max_per_image=1).detect(image)["dog"]
    # logits positive up to column 88 (22 * 4) of the 90 valid ones: x_max ~ 70 * 88 / 90 = 68.4
    # (without cropping the padding it would be 70 * 88 / 96 ~ 64)
    assert dog.box.tolist()[:2] == [0, 0] and dog.box[2] in (68.0, 69.0) and dog.box[3] == 50
    assert dog.score == pytest.approx(1.0, abs=1e-3)  # boundary pixels have sigmoid < 1


# -- tiny transformers Mask2Former through the real loading path -------------------------------
@pytest.fixture(scope="module")
def tiny_mask2former(tmp_path_factory):
    from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation, Mask2FormerImageProcessor, SwinConfig

    torch.manual_seed(0)
    backbone = SwinConfig(image_size=32, patch_size=4, embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1],
                          window_size=2, out_features=["stage1", "stage2", "stage3", "stage4"])
    config = Mask2FormerConfig(backbone_config=backbone, feature_size=32, mask_feature_size=32, hidden_dim=32,
                               encoder_feedforward_dim=32, dim_feedforward=32, encoder_layers=1, decoder_layers=2,
                               num_attention_heads=2, num_queries=6, num_labels=80, use_pretrained_backbone=False,
                               id2label=dict(enumerate(HF_LABELS)), label2id={n: i for i, n in enumerate(HF_LABELS)})
    model = Mask2FormerForUniversalSegmentation(config).eval()
    with torch.no_grad():  # make some queries confident so selections are non-trivial
        model.class_predictor.bias[:] = torch.randn(81) * 3
    path = tmp_path_factory.mktemp("m2f") / "facebook" / "mask2former-swin-small-coco-instance"
    model.save_pretrained(path)
    Mask2FormerImageProcessor(size={"shortest_edge": 384, "longest_edge": 384}).save_pretrained(path)
    return path


def test_mask2former_matches_transformers_postprocess(tiny_mask2former):
    detector = Mask2FormerDetector.from_pretrained(tiny_mask2former, max_per_image=6)
    image = np.random.default_rng(0).integers(0, 256, (384, 384, 3), dtype=np.uint8)
    found = detector.detect(image)
    ours = sorted((name, round(d.score, 6), d.mask.tobytes()) for name, dets in found.items() for d in dets
                  if d.mask.any())
    for dets in found.values():
        for d in dets:
            assert d.mask.shape == (384, 384) and 0 <= d.score <= 1
            assert d.box.tolist() == masks_to_boxes(torch.from_numpy(d.mask)[None])[0].tolist()

    inputs = detector.processor(images=[image], return_tensors="pt")
    with torch.no_grad():
        out = detector.model(**inputs)
    ref = detector.processor.post_process_instance_segmentation(out, threshold=0.0, return_binary_maps=True)[0]
    ref_masks = ref["segmentation"] if ref["segments_info"] else torch.zeros((0, 384, 384))
    theirs = sorted((OBJECT_NAMES[s["label_id"]], s["score"], ref_masks[i].bool().numpy().tobytes())
                    for i, s in enumerate(ref["segments_info"]))
    assert len(ours) == len(theirs) > 0
    for a, b in zip(ours, theirs):
        assert a[0] == b[0] and a[1] == pytest.approx(b[1], abs=1.5e-6) and a[2] == b[2]


def test_metric_loads_detector_from_weights_dir(tiny_mask2former, monkeypatch):
    """The manifest's hf entry resolves ``$OMNIEVAL_WEIGHTS_DIR/<repo id>`` (no hub access)."""
    monkeypatch.setenv("OMNIEVAL_WEIGHTS_DIR", str(tiny_mask2former.parent.parent))
    metric = GenEval(detector_size=[64, 96], threshold=0.0)
    image = np.random.default_rng(1).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    doc = {"tag": "single_object", "include": [{"class": "bench", "count": 1}], "prompt": "a photo of a bench"}
    contrib = metric.contributions([MetricInput("i0", image, doc=doc)])[0]
    assert metric.detector.detector_id == "hf:mask2former_swin_small_coco_instance"
    assert metric.detector.processor(images=[image], return_tensors="pt", size=metric.detector.size)["pixel_values"].shape[-2:] == (64, 96)
    details = json.loads(contrib["details"])
    raw = metric.detector.detect(image)
    assert sum(map(len, details.values())) == sum(d.score > 0 for dets in raw.values() for d in dets) > 0
    assert contrib["correct"] == ("bench" in details)


# -- colour classifier -------------------------------------------------------------------------
def test_object_crop_masks_with_grey_and_rounds_box():
    image = np.full((10, 12, 3), 200, np.uint8)
    mask = np.zeros((10, 12), bool)
    mask[2:5, 3:6] = True
    crop = np.asarray(object_crop(image, (2.5, 1.5, 6.6, 5.4), mask))
    assert crop.shape == (3, 5, 3)  # PIL rounds half to even: x 2..7, y 2..5
    assert (crop[:, 1:4] == 200).all() and (crop[:, 0] == 153).all() and (crop[:, 4] == 153).all()
    assert (np.asarray(object_crop(image, (0, 0, 12, 10), mask, bgcolor="original")) == 200).all()
    assert np.asarray(object_crop(image, (0, 0, 4, 4), None, crop=False)).shape == (10, 12, 3)


TINY_CLIP = {"embed_dim": 16, "quick_gelu": True,
             "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
             "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    open_clip = pytest.importorskip("open_clip")
    cfg_dir = tmp_path_factory.mktemp("oc_cfg")
    (cfg_dir / "geneval-tiny-test.json").write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(cfg_dir)
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms("geneval-tiny-test", pretrained=None)
    return model.eval(), preprocess, open_clip.get_tokenizer("geneval-tiny-test")


def _scene():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    masks = [rng.random((48, 64)) > 0.5, np.zeros((48, 64), bool)]
    masks[1][10:30, 5:40] = True
    return image, [Detection(np.array([3.2, 4.5, 40.7, 30.1]), 0.9, masks[0]),
                   Detection(np.array([5.0, 10.0, 40.0, 30.0]), 0.8, masks[1])]


@pytest.mark.slow
def test_colour_matches_clip_benchmark(tiny_clip, monkeypatch):
    try:
        import sklearn.metrics  # noqa: F401  (only whether it imports)
    except ImportError:  # clip_benchmark imports two sklearn names it does not use here: stub them for this test
        stub = types.ModuleType("sklearn.metrics")
        stub.classification_report = stub.balanced_accuracy_score = None
        monkeypatch.setitem(sys.modules, "sklearn", types.ModuleType("sklearn"))
        monkeypatch.setitem(sys.modules, "sklearn.metrics", stub)
    zsc = pytest.importorskip("clip_benchmark.metrics.zeroshot_classification")
    from PIL import Image

    model, preprocess, tokenizer = tiny_clip
    image, objects = _scene()
    name = "teddy bear"
    # GenEval's reference path: f-string templates with the class name, composite on #999, crop box[:4]
    templates = [t.replace("{cls}", name) for t in TEMPLATES]
    ref_weights = zsc.zero_shot_classifier(model, tokenizer, list(COLORS), templates, "cpu", amp=False)
    pil = Image.fromarray(image)
    blank = Image.new("RGB", pil.size, color="#999")
    crops = [preprocess(Image.composite(pil, blank, Image.fromarray(o.mask)).crop(tuple(o.box[:4]))) for o in objects]
    loader = torch.utils.data.DataLoader(list(zip(crops, [0] * len(crops))), batch_size=16)
    ref_logits, _ = zsc.run_classification(model, ref_weights, loader, "cpu", amp=False)

    clf = ColorClassifier(model, preprocess, tokenizer)
    assert torch.allclose(clf.text_weights(name), ref_weights, atol=1e-6)
    assert torch.allclose(clf.logits(image, objects, name), ref_logits, atol=1e-4)
    assert clf.classify(image, objects, name) == [COLORS[i] for i in ref_logits.argmax(1).tolist()]


def test_colour_classifier_loads_from_file_and_drives_the_metric(tiny_clip, tmp_path):
    from safetensors.torch import save_file

    model, preprocess, tokenizer = tiny_clip
    path = tmp_path / "tiny_clip.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    loaded = load_color_classifier(path, arch="geneval-tiny-test")
    image, objects = _scene()
    direct = ColorClassifier(model, preprocess, tokenizer)
    assert torch.allclose(loaded.logits(image, objects, "car"), direct.logits(image, objects, "car"), atol=1e-5)
    colour = direct.classify(image, objects[:1], "car")[0]

    class OneCar:
        detector_id = "test"

        def detect(self, img):
            return {"car": objects[:1]}

    metric = GenEval(clip_arch="geneval-tiny-test", clip_path=str(path))
    metric.detector = OneCar()
    docs = [{"tag": "colors", "include": [{"class": "car", "count": 1, "color": c}], "prompt": c} for c in (colour, "none")]
    got = metric.contributions([MetricInput(f"i{k}", image, doc=d) for k, d in enumerate(docs)])
    assert [g["correct"] for g in got] == [True, False]
    assert got[1]["reason"] == f"expected none car>=1, found 0 none; and 1 {colour}"
