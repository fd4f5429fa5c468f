"""Tag2Text captioning speed: omnieval's native port vs vbench's Tag2Text under transformers 4.33.2.

Both sides load the same random checkpoint (made natively with the parity test's recipe) and caption the same
frames; the captions must be equal (printed) before the times mean anything.  The reference runs as a subprocess in
the legacy site (tests/reference/tag2text_ref.py), so its wall time includes Python start-up, imports, building
and loading the model; the native side is timed the same way (build + load + generate, imports excluded, printed
separately) and also for ``generate`` alone, with and without ``kv_cache``.

Usage: ``python bench/bench_vbench_tag2text.py [--size tiny|real] [--frames 4]`` (``real``: Swin-B / BERT-base
sizes, a 1.6 GB checkpoint in a temp dir, several minutes on 2 CPU cores).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import numpy as np  # noqa: E402
import torch  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", choices=("tiny", "real"), default="tiny")
    parser.add_argument("--frames", type=int, default=4)
    args = parser.parse_args()

    import test_vbench_tag2text as recipe
    from reference.legacy_site import ensure_legacy_site
    from reference.tag2text_ref import call_reference

    from omnieval.metrics.vbench.tag2text import Tag2TextCaptioner, Tag2TextConfig

    sizes = dict(recipe.TINY)
    if args.size == "real":
        sizes = {f.name: f.default for f in dataclasses.fields(Tag2TextConfig) if f.name in recipe.TINY}
    work = Path(tempfile.mkdtemp(prefix="bench_tag2text_"))
    vocab = work / "vocab"
    recipe.write_vocab(vocab)
    ckpt = work / "random.pth"
    torch.save({"model": recipe.random_model(vocab, seed=0, **sizes).state_dict()}, ckpt)
    video = recipe.frames(n=args.frames, h=240, w=320, seed=11)
    np.save(work / "frames.npy", video)

    t0 = time.perf_counter()
    model = Tag2TextCaptioner.from_checkpoint(ckpt, vocab, Tag2TextConfig(**sizes))
    t1 = time.perf_counter()
    captions = model.caption_frames(video)
    t2 = time.perf_counter()
    cached = Tag2TextCaptioner.from_checkpoint(ckpt, vocab, Tag2TextConfig(**sizes, kv_cache=True))
    t3 = time.perf_counter()
    cached_captions = cached.caption_frames(video)
    t4 = time.perf_counter()

    site = ensure_legacy_site()
    spec = {"vocab_dir": str(vocab), "frames_npy": str(work / "frames.npy"), "checkpoint": str(ckpt),
            "sizes": {k: list(v) if isinstance(v, tuple) else v for k, v in sizes.items()}}
    t5 = time.perf_counter()
    ref = call_reference(spec, work / "ref", site, timeout=7200)
    t6 = time.perf_counter()

    native_total, ref_total = (t2 - t0), (t6 - t5)
    print(f"size={args.size} frames={args.frames}")
    print(f"captions equal to reference: {captions == ref['captions']}; kv_cache captions equal: {cached_captions == captions}")
    print(f"native: load {t1 - t0:.1f} s, generate {t2 - t1:.1f} s; kv_cache generate {t4 - t3:.1f} s")
    print(f"reference subprocess (start-up + imports + build + load + generate): {ref_total:.1f} s")
    print(f"speed-up native (load+generate) vs reference: {ref_total / native_total:.2f}x; "
          f"native generate only: {ref_total / (t2 - t1):.2f}x; kv_cache generate: {ref_total / (t4 - t3):.2f}x")


if __name__ == "__main__":
    main()
