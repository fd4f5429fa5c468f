"""Record LOVEU-TGVE's ``scripts/run_eval.py`` and V2VBench's evaluators on the tgve parity fixture ->
``tests/data/tgve_reference.json``.  Needs transformers 4.x (their code calls ``.detach()`` / ``torch.norm`` on
``get_*_features`` outputs, which transformers 5 returns as objects) and scikit-learn, e.g. a side venv::

    python -m venv --system-site-packages /tmp/tf4venv && /tmp/tf4venv/bin/pip install transformers==4.57.6 scikit-learn
    git -C <mirror of showlab/loveu-tgve-2023> show HEAD:scripts/run_eval.py > /tmp/tgve/run_eval.py
    for f in __init__ base_evaluator utils clip_text_alignment clip_consistency pick_score; do
        git -C <mirror of wenhao728/awesome-diffusion-v2v> show HEAD:v2vbench/$f.py > /tmp/tgve/v2vbench/$f.py; done
    PYTHONPATH=<repo>:<repo>/tests /tmp/tf4venv/bin/python tests/reference/record_tgve.py /tmp/tgve tests/data/tgve_reference.json

The model is the tiny seeded CLIP of ``editing_fixtures.tiny_hf_clip`` (saved by the test environment, loaded here
by transformers 4.x with its default slow = PIL image processor); it also stands in for PickScore (model and
processor).  LOVEU's functions get it through their module globals (``model``, ``processor``, ``device``), frames
resized to 480x480 as its ``__main__`` does; V2VBench's evaluator classes run in batch mode on ``config.yaml``.
Nothing of either script is stored here.
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch


def record(ref_dir: Path, out: Path, model_dir: Path) -> None:
    from glob import glob

    import editing_fixtures as F
    import transformers
    from PIL import Image

    sys.path.insert(0, str(ref_dir))
    from v2vbench.clip_consistency import ClipConsistency
    from v2vbench.clip_text_alignment import ClipTextAlignment
    from v2vbench.pick_score import PickScore

    import run_eval as L  # noqa: E402

    result = {"recorded_with": {"transformers": transformers.__version__, "torch": torch.__version__},
              "checksum": F.weights_checksum_dir(model_dir), "loveu": {}, "v2vbench": {}}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = F.make_loveu(root / "loveu")
        sub = F.make_edited_videos(root / "loveu_sub", F.loveu_edit_folders())
        L.device = "cpu"
        L.model = transformers.CLIPModel.from_pretrained(model_dir).eval()
        L.processor = transformers.AutoProcessor.from_pretrained(model_dir)
        import csv

        rows = list(csv.DictReader(open(data / "LOVEU-TGVE-2023_Dataset.csv", encoding="utf-8")))
        for rel in F.loveu_edit_folders():
            subset, video, edit_type = rel.split("/")
            row = next(r for r in rows if r["Video name"] == video)
            column = {"style": "Style Change Caption", "object": "Object Change Caption", "background": "Background Change Caption",
                      "multiple": "Multiple Changes Caption"}[edit_type]
            prompt = str(row[column]).strip()
            frames = [Image.open(x).resize((480, 480)) for x in sorted(glob(f"{sub / rel}/*.jpg"))]
            result["loveu"][rel] = {fn: float(getattr(L, fn)(frames, prompt))
                                    for fn in ("clip_score_text", "clip_score_frame", "pick_score")}
        v2v = F.make_v2vbench(root / "v2v")
        edits = F.make_edited_videos(root / "v2v_edit", F.v2v_edit_folders(), suffix=".png")
        kwargs = dict(index_file=v2v / "config.yaml", edit_video_dir=edits, reference_video_dir=None, edit_prompt=None,
                      device=torch.device("cpu"))
        runs = {"clip_text_alignment": ClipTextAlignment(**kwargs, pretrained_model_name=str(model_dir)),
                "clip_consistency": ClipConsistency(**kwargs, pretrained_model_name=str(model_dir)),
                "pick_score": PickScore(**kwargs, pretrained_model_name=str(model_dir), pretrained_processor_name=str(model_dir))}
        for name, evaluator in runs.items():
            scores = evaluator()
            for video, edit, score in zip(scores["video_id"], scores["edit_id"], scores["score"]):
                result["v2vbench"].setdefault(f"{video}/{edit}", {})[name] = float(score)
    out.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(json.dumps({k: np.mean([list(v.values()) for v in result[k].values()], 0).tolist() for k in ("loveu", "v2vbench")}))


if __name__ == "__main__":
    record(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
