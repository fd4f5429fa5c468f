"""Speed of GenEval's colour classification: omnieval vs GenEval's reference path (clip_benchmark 1.4.0).

Both classify the same masked crops with the same randomly initialised open_clip model (default
ViT-B-32; ``--arch ViT-L-14`` for the real architecture) on CPU, fp32.  The reference path is GenEval's:
a ``torch.utils.data`` dataset compositing each crop on #999 with PIL, a DataLoader (batch 16, workers 0
here instead of 4) and ``zero_shot_classifier`` / ``run_classification``.  The text classifier is built
once per class name in both (GenEval caches it too), so the timing covers the image side plus one
classifier.  Prints seconds for each and the ratio reference / omnieval (> 1: omnieval faster), and
checks that the predictions agree.

    python bench/geneval_color.py [--arch ViT-B-32] [--objects 32] [--repeats 3]
"""
from __future__ import annotations

import argparse
import sys
import time
import types

import numpy as np


def _import_clip_benchmark():
    try:
        import sklearn.metrics  # noqa: F401  (only whether it imports)
    except ImportError:  # clip_benchmark imports two sklearn names that classification does not use
        stub = types.ModuleType("sklearn.metrics")
        stub.classification_report = stub.balanced_accuracy_score = None
        sys.modules.setdefault("sklearn", types.ModuleType("sklearn"))
        sys.modules["sklearn.metrics"] = stub
    from clip_benchmark.metrics import zeroshot_classification as zsc

    return zsc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="ViT-B-32")
    parser.add_argument("--objects", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import open_clip
    import torch
    from PIL import Image

    from omnieval.metrics.geneval_color import COLORS, TEMPLATES, ColorClassifier
    from omnieval.metrics.geneval_detector import Detection

    zsc = _import_clip_benchmark()
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms(args.arch, pretrained=None)
    model.eval()
    tokenizer = open_clip.get_tokenizer(args.arch)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)
    objects = []
    for _ in range(args.objects):
        x0, y0 = rng.integers(0, 300, 2)
        w, h = rng.integers(40, 200, 2)
        mask = np.zeros((512, 512), bool)
        mask[y0:y0 + h, x0:x0 + w] = rng.random((h, w)) > 0.3
        objects.append(Detection(np.array([x0, y0, x0 + w, y0 + h], float), 0.9, mask))
    name = "car"

    def ours():
        clf = ColorClassifier(model, preprocess, tokenizer)
        return clf.classify(image, objects, name)

    class Crops(torch.utils.data.Dataset):  # GenEval's ImageCrops (bgcolor #999, crop=1)
        def __init__(self):
            self.image = Image.fromarray(image).convert("RGB")
            self.blank = Image.new("RGB", self.image.size, color="#999")

        def __len__(self):
            return len(objects)

        def __getitem__(self, i):
            obj = objects[i]
            crop = Image.composite(self.image, self.blank, Image.fromarray(obj.mask)).crop(tuple(obj.box[:4]))
            return preprocess(crop), 0

    def reference():
        templates = [t.replace("{cls}", name) for t in TEMPLATES]
        weights = zsc.zero_shot_classifier(model, tokenizer, list(COLORS), templates, "cpu", amp=False)
        loader = torch.utils.data.DataLoader(Crops(), batch_size=16, num_workers=0)
        logits, _ = zsc.run_classification(model, weights, loader, "cpu", amp=False)
        return [COLORS[i] for i in logits.argmax(1).tolist()]

    zsc.tqdm = lambda it, *a, **k: it  # as GenEval does
    timings = {}
    preds = {}
    for label, fn in (("omnieval", ours), ("reference", reference)):
        fn()  # warm-up
        best = float("inf")
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            preds[label] = fn()
            best = min(best, time.perf_counter() - t0)
        timings[label] = best
    print(f"arch {args.arch}, {args.objects} objects, torch threads {torch.get_num_threads()}")
    for label, seconds in timings.items():
        print(f"{label:>10}: {seconds:.3f} s (best of {args.repeats})")
    print(f"ratio reference/omnieval: {timings['reference'] / timings['omnieval']:.2f}")
    print(f"predictions agree: {preds['omnieval'] == preds['reference']}")


if __name__ == "__main__":
    main()
