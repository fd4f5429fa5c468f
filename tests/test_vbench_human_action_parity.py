"""Parity of ``vbench_human_action`` with vbench 0.1.5's own ``human_action`` evaluation.

vbench's ``human_action`` module cannot be imported under numpy 2 only because
``vbench/third_party/umt/datasets/kinetics.py`` (imported through ``umt.datasets``) does
``from numpy.lib.function_base import disp``, a module numpy 2 made private; ``disp`` is never called on the
evaluation path. The test registers a stand-in ``numpy.lib.function_base`` whose ``disp`` raises if called, for
the duration of the test only.

Network: vbench's own UMT ``VisionTransformer`` class (``umt/models/modeling_finetune.py``) at a reduced size
(embed 48, depth 1, 2 heads; everything else as ``vit_large_patch16_224`` with vbench's ``create_model``
arguments), random weights saved as a state dict that both sides load. The real UMT-L/16 takes 87 s per video on
one core here (and 1.2 GB of weights), too slow for the suite. The same reduced builder replaces
``vit_large_patch16_224`` both in timm's registry (vbench calls ``timm.create_model``) and in
``modeling_finetune`` (omnieval calls it directly), so both sides build the same network. The reduced builder also
drops the ``cache_dir`` argument that newer timm versions' ``create_model`` pass (vbench pins timm <= 1.0.12; its own
builder drops only ``pretrained_cfg``/``pretrained_cfg_overlay``, so with the venv's timm 1.0.31 vbench's real
``human_action`` fails with "VisionTransformer.__init__() got an unexpected keyword argument 'cache_dir'").

The Kinetics head is biased so the result is not trivial: the five classes of the test prompts get bias 1.75
(sigmoid 0.85 is logit 1.735) and head rows with std 0.3, every other class bias -2 and rows with std 0.05 (no tied
probabilities), so the kept top-5 are among those five classes, with probabilities around the 0.85 threshold that
depend on the video: some videos are correct, some are not (checked).

Videos: 20-frame H.264 lossless clips, 48x80 and 80x48 (so vbench's 'middle' 16-frame sampling, both branches of
the short-side resize to 256 and the 224 centre crop are exercised), named ``'<prompt>-<i>.mp4'`` as VBench names
them (vbench parses the label from the file name, omnieval from the prompt). vbench decodes with decord, omnieval
with PyAV; lossless encoding makes the frames identical.

Tolerances: per-video correctness and the dimension score must be equal; top-5 class indices equal and top-5
probabilities within 1e-6 absolute (the allowance is for last-bit differences of float32 resize/normalisation and
of omnieval's fused attention kernel, see ``semantic_dims.load_umt``; at the real UMT-L/16 size the sigmoid
probabilities differ by ~2e-7). The test checks that no probability lies within 1e-4 of the threshold, so the rounding rule
cannot flip a decision through such last-bit differences.
"""
from __future__ import annotations

import sys
import types
from functools import partial

import numpy as np
import pytest

from omnieval.media import Video, read_video, write_video
from omnieval.metrics.base import MetricInput

pytestmark = pytest.mark.slow

PROMPTS = ["A person is riding a bike", "A person is skateboarding", "A person is jogging",
           "A person is juggling balls", "A person is playing guitar"]
THRESHOLD = 0.85


def _numpy_function_base_stand_in() -> types.ModuleType:
    module = types.ModuleType("numpy.lib.function_base")

    def disp(*_args, **_kwargs):
        raise RuntimeError("numpy.lib.function_base stand-in: disp is not part of the human_action evaluation")

    module.disp = disp  # type: ignore[attr-defined]
    return module


def _video(seed: int, frames: int = 20, height: int = 48, width: int = 80) -> Video:
    """Blocky random texture drifting sideways, plus noise: different content per seed."""
    rng = np.random.default_rng(seed)
    base = np.kron(rng.integers(0, 256, size=(height // 8 + 1, width // 8 + frames, 3)), np.ones((8, 8, 1)))
    out = [np.clip(base[:height, t : t + width] + rng.normal(0, 6, (height, width, 3)), 0, 255) for t in range(frames)]
    return Video(np.stack(out).astype(np.uint8), fps=8.0)


@pytest.fixture()
def human_action_setup(tmp_path, monkeypatch):
    """(vbench human_action module, omnieval semantic_dims, checkpoint path, video paths, class names by index,
    networks built since set-up, logits of every forward of those networks)."""
    torch = pytest.importorskip("torch", reason="torch not installed")
    pytest.importorskip("vbench", reason="vbench not installed")
    pytest.importorskip("decord", reason="decord not installed")
    pytest.importorskip("clip", reason="openai-clip (vbench human_action imports it) not installed")
    if "numpy.lib.function_base" not in sys.modules:
        try:
            __import__("numpy.lib.function_base")
        except ImportError:
            monkeypatch.setitem(sys.modules, "numpy.lib.function_base", _numpy_function_base_stand_in())
    import timm.models._registry as timm_registry
    import vbench.human_action as vbench_human_action
    from vbench.third_party.umt.models import modeling_finetune

    from omnieval.metrics.vbench import semantic_dims

    built, recorded = [], []  # models built, logits of every forward

    def small_umt(pretrained=False, **kwargs):  # vit_large_patch16_224's builder, reduced sizes
        for key in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):  # timm's create_model extras
            kwargs.pop(key, None)
        model = modeling_finetune.VisionTransformer(
            patch_size=16, embed_dim=48, depth=1, num_heads=2, mlp_ratio=4, qkv_bias=True,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), **kwargs)
        built.append(model)
        model.register_forward_hook(lambda _module, _inputs, logits: recorded.append(logits.detach().clone()))
        return model

    monkeypatch.setitem(timm_registry._model_entrypoints, "vit_large_patch16_224", small_umt)
    monkeypatch.setattr(modeling_finetune, "vit_large_patch16_224", small_umt)

    names = semantic_dims.kinetics_400_names()
    torch.manual_seed(0)
    model = small_umt(**semantic_dims.UMT_KWARGS)
    state = model.state_dict()
    label_ids = [names.index(semantic_dims.action_label(p)) for p in PROMPTS]
    gen = torch.Generator().manual_seed(1)
    head_w = 0.05 * torch.randn(state["head.weight"].shape, generator=gen)  # no ties among the other classes
    head_b = torch.full_like(state["head.bias"], -2.0)
    head_w[label_ids] = 0.3 * torch.randn(len(label_ids), head_w.shape[1], generator=gen)
    head_b[label_ids] = 1.75
    state["head.weight"], state["head.bias"] = head_w, head_b
    ckpt = tmp_path / "umt_small.pth"
    torch.save(state, ckpt)

    video_dir = tmp_path / "videos"
    video_dir.mkdir()
    sizes = [(48, 80), (80, 48)]  # landscape and portrait: both branches of the short-side resize
    paths = [write_video(_video(i, *sizes[i % 2]), video_dir / f"{prompt}-{i}.mp4")
             for i, prompt in enumerate(PROMPTS * 2)]
    built.clear()
    return vbench_human_action, semantic_dims, ckpt, paths, names, built, recorded


def test_human_action_matches_vbench(human_action_setup):
    """Same files, same random-weight reduced UMT: equal per-video correctness and dimension score; equal top-5
    classes and top-5 probabilities within 1e-6 (see the module docstring)."""
    import torch

    vbench_human_action, semantic_dims, ckpt, paths, names, built, recorded = human_action_setup

    # vbench: its own evaluation loop; the logits its model produced are recorded by a forward hook
    vb_acc, vb_results = vbench_human_action.human_action(str(ckpt), [str(p) for p in paths], "cpu")
    assert len(built) == 1 and len(recorded) == len(paths)  # vbench built the reduced network via timm
    vbench_top5 = []
    for logits in recorded:
        probs, idx = torch.topk(torch.sigmoid(logits), 5, dim=1)
        vbench_top5.append((probs[0].tolist(), idx[0].tolist()))

    # omnieval: the registered metric (building its network from ckpt_path) and that network on the same files
    metric = semantic_dims.HumanAction(ckpt_path=str(ckpt))
    inputs = [MetricInput(item_id=f"v{i}", output=read_video(p), prompt=PROMPTS[i % len(PROMPTS)])
              for i, p in enumerate(paths)]
    contributions = metric.contributions(inputs)
    for contribution in contributions:
        metric.fold(contribution)

    ours_correct = [bool(c["human_action"]) for c in contributions]
    vbench_correct = [r["video_results"] for r in vb_results]
    assert ours_correct == vbench_correct
    assert 0 < sum(vbench_correct) < len(paths), "biased head should make some videos correct and some not"
    assert metric.compute() == {"human_action": pytest.approx(vb_acc, abs=1e-12)}

    classify = metric.network()  # umt_classifier(ckpt), cached by the metric
    for item, (vb_probs, vb_idx) in zip(inputs, vbench_top5):
        probs, top_names = classify(item.output.frames)
        assert top_names == [names[i] for i in vb_idx]
        np.testing.assert_allclose(probs, vb_probs, rtol=0, atol=1e-6)
        assert min(abs(p - THRESHOLD) for p in vb_probs) > 1e-4, "a probability too close to the threshold"

