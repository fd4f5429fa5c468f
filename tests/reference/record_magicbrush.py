"""Record MagicBrush's own ``evaluation/image_eval.py`` on the parity fixture -> ``tests/data/magicbrush_reference.json``.

    git -C /work/.mirror/OSU-NLP-Group+MagicBrush/repo show HEAD:evaluation/image_eval.py > /tmp/mb/image_eval.py
    PYTHONPATH=<repo>:<repo>/tests python tests/reference/record_magicbrush.py /tmp/mb/image_eval.py tests/data/magicbrush_reference.json

The script's ``__main__`` runs unchanged (``runpy``) on a fixture built by ``editing_fixtures`` (10 sessions, GT
40x30, generated 48x48), with two offline substitutions: ``clip.load("ViT-B/32")`` returns a seeded tiny
OpenAI-layout CLIP (``clip.model.build_model`` of ``tiny_openai_clip``'s state dict, fp32 on CPU) with
``clip.clip._transform(32)``, and ``torch.hub.load(... 'dino_vits16')`` returns the tiny DINO ViT of
``tiny_dino_file``; and its closing ``json.dump`` gets ``default=float`` (scipy returns numpy float32 here, which
the script's own dump cannot write).  The file keeps the script's ``evaluation_metrics.json``, its pairs, and checksums of both
networks (the test rebuilds them and checks the checksums first).  Nothing of the script is stored here.
"""
from __future__ import annotations

import json
import runpy
import sys
import tempfile
from pathlib import Path

import torch


def record(script: Path, out: Path) -> None:
    import clip
    import editing_fixtures as F

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        gt = F.make_magicbrush_tree(root / "test")
        gen = F.make_magicbrush_generated(root / "generated")
        clip_file, dino_file = F.tiny_openai_clip(root / "nets"), F.tiny_dino_file(root / "nets")
        ref_clip = clip.model.build_model(torch.load(clip_file, weights_only=True)).float().eval()
        from omnieval.metrics.editing import load_dino

        dino = load_dino("dino-tiny-random", dino_file)
        clip.load = lambda name, device=None, **kw: (ref_clip, clip.clip._transform(32))
        torch.hub.load = lambda repo, name, *a, **kw: dino
        # the script's final json.dump fails on the numpy float32 that scipy's cosine returns here (numpy 2):
        # numbers are written through float() instead, the values are untouched
        dump = json.dump
        json.dump = lambda obj, f, **kw: dump(obj, f, default=float, **kw)
        save = root / "results"
        sys.argv = [str(script), "--generated_path", str(gen), "--gt_path", str(gt / "images"), "--device", "cpu",
                    "--caption_path", str(gt / "local_descriptions.json"), "--save_path", str(save)]
        namespace = runpy.run_path(str(script), run_name="__main__")
        json.dump = dump
        metrics = json.loads((save / "evaluation_metrics.json").read_text())
        rel = lambda p: str(Path(p).relative_to(root))  # noqa: E731
        pairs = {"all_turn": [[rel(a), rel(b)] for a, b in namespace["all_turn_pairs"]],
                 "final_turn": [[rel(a), rel(b)] for a, b in namespace["final_turn_pairs"]]}
        result = {"script": "OSU-NLP-Group/MagicBrush evaluation/image_eval.py (fcfc892)", "metrics": metrics,
                  "pairs": pairs, "sessions": F.MB_SESSIONS, "captions": "local_descriptions.json",
                  "checksums": {"clip": F.weights_checksum(clip_file), "dino": F.weights_checksum(dino_file)},
                  "recorded_with": {"torch": torch.__version__, "clip": getattr(clip, "__version__", "openai-clip 1.0.1")}}
    out.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(json.dumps(metrics, indent=1))


if __name__ == "__main__":
    record(Path(sys.argv[1]), Path(sys.argv[2]))
