"""Record vbench's own GRiT outputs for ``tests/data/grit_vbench_reference.json`` (run where detectron2 is built).

    PYTHONPATH=<repo>:<repo>/tests python tests/reference/record_grit.py tests/data/grit_vbench_reference.json

The weights are ``test_vbench_grit.random_grit(GRiTConfig.vbench(), **GRIT_B_TEXT_RECIPE)`` (GRiT-B, random,
biased to give detections with multi-word descriptions), saved in detectron2's layout and loaded by vbench's ``init_demo``; the frames are the parity tests'
``PARITY_FRAMES``.  For each task (ObjectDet, DenseCap) and frame the file keeps what vbench's predictor returns:
boxes, scores, descriptions and ``det_obj``.  CI, which cannot build detectron2, compares the native GRiT with this
record (``test_native_grit_matches_recorded_vbench_outputs``); the live parity tests compare with vbench directly.
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import torch


def record(out: Path) -> None:
    import detectron2
    import pytest
    import vbench
    from test_vbench_grit import GRIT_B_TEXT_RECIPE, PARITY_FRAMES, random_grit, save_checkpoint, smooth_frame, vbench_demo, write_vocab

    from omnieval.metrics.vbench.grit import GRiTConfig

    result = {"recipe": GRIT_B_TEXT_RECIPE, "frames": [list(f) for f in PARITY_FRAMES], "tasks": {},
              "recorded_with": {"vbench": vbench.__version__ if hasattr(vbench, "__version__") else "0.1.5",
                                "detectron2": detectron2.__version__, "torch": torch.__version__}}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_vocab(root / "vocab")
        save_checkpoint(random_grit(GRiTConfig.vbench(), None, **GRIT_B_TEXT_RECIPE), root / "grit_b.pth")
        patcher = pytest.MonkeyPatch()
        try:
            for task in ("ObjectDet", "DenseCap"):
                demo = vbench_demo(root, task, patcher)
                frames = []
                for h, w, seed in PARITY_FRAMES:
                    with torch.no_grad():
                        inst = demo.run_on_image(smooth_frame(h, w, seed))[0]["instances"]
                    frames.append({"boxes": inst.pred_boxes.tensor.tolist(), "scores": inst.scores.reshape(-1).tolist(),
                                   "descriptions": list(inst.pred_object_descriptions.data), "det_obj": list(inst.det_obj.data)})
                result["tasks"][task] = frames
        finally:
            patcher.undo()
    out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    record(Path(sys.argv[1]))
