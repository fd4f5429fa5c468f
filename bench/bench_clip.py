"""CLIP score throughput: omnieval ``clip_score`` vs torchmetrics ``CLIPScore`` on the same random CLIPModel.

Both sides use the same in-memory model (a seeded random ``CLIPConfig``, ViT-B/32 sizes by default) and the same
``CLIPProcessor``; the values must agree (printed) before the times mean anything.  Prints images/s of each
and the ratio (target >= 1x).  Usage: ``python bench/bench_clip.py [--images 32] [--size base|tiny] [--repeats 3]``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402


def build(size: str):
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    from omnieval.metrics.clip_backbones import HFClipBackbone, clip_bpe_tokenizer, tiny_clip_model_and_processor

    if size == "tiny":
        model, processor = tiny_clip_model_and_processor()
    else:
        torch.manual_seed(0)
        model = CLIPModel(CLIPConfig(text_config={"vocab_size": 49408}, vision_config={"image_size": 224, "patch_size": 32})).eval()
        processor = CLIPProcessor(image_processor=CLIPImageProcessor(), tokenizer=clip_bpe_tokenizer())

    class TensorFeatures(CLIPModel):  # torchmetrics 1.9 + transformers 5 (Lightning-AI/torchmetrics#3407)
        def get_image_features(self, *a, **k):
            return super().get_image_features(*a, **k).pooler_output

        def get_text_features(self, *a, **k):
            return super().get_text_features(*a, **k).pooler_output

    tm_model = TensorFeatures(model.config).eval()
    tm_model.load_state_dict(model.state_dict())
    return HFClipBackbone(model, processor, name=f"random-{size}", device="cpu"), (tm_model, processor)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--size", choices=("base", "tiny"), default="base")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from torchmetrics.multimodal import CLIPScore

    from omnieval.metrics.clip import clip_score

    backbone, tm_pair = build(args.size)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(args.images, 256, 256, 3), dtype=np.uint8)
    # 4 frames per prompt, as when scoring video frames against their prompt (CLIP-T style)
    prompts = [f"a photo of object number {i // 4}" for i in range(args.images)]
    chw = list(torch.from_numpy(images).permute(0, 3, 1, 2))
    metric = CLIPScore(model_name_or_path=lambda: tm_pair)

    def ours() -> float:
        return clip_score(images, prompts, model=backbone)

    def theirs() -> float:
        metric.reset()
        metric.update(chw, prompts)
        return float(metric.compute().detach())

    # equal value: the clamp hides a negative mean with random weights, so compare the per-pair scores too
    from torchmetrics.functional.multimodal.clip_score import _clip_score_update

    from omnieval.metrics.clip import text_similarities

    with torch.no_grad():
        ref_pairs = _clip_score_update(chw, prompts, *tm_pair)[0].numpy()
    our_pairs = np.array(text_similarities(backbone, [im[None] for im in images], prompts, 100.0))
    print(f"per-pair 100*cos max |diff| = {np.abs(ref_pairs - our_pairs).max():.2e} (mean {our_pairs.mean():.4f})")

    ours(), theirs()  # warm-up
    t_ours, t_ref = [], []
    for _ in range(args.repeats):
        t = time.perf_counter(); v_ours = ours(); t_ours.append(time.perf_counter() - t)
        t = time.perf_counter(); v_ref = theirs(); t_ref.append(time.perf_counter() - t)
    a, b = statistics.median(t_ours), statistics.median(t_ref)
    print(f"model={args.size} images={args.images} threads={torch.get_num_threads()}")
    print(f"value  omnieval={v_ours:.6f} torchmetrics={v_ref:.6f} |diff|={abs(v_ours - v_ref):.2e}")
    print(f"time   omnieval={a:.3f}s ({args.images / a:.1f} img/s)  torchmetrics={b:.3f}s ({args.images / b:.1f} img/s)")
    print(f"speed ratio (torchmetrics time / omnieval time): {b / a:.2f}x")


if __name__ == "__main__":
    main()
