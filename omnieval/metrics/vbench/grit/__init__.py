"""Native PyTorch port of GRiT-B (dense captioning + object detection) as VBench 0.1.5 runs it, without
detectron2: same detections (boxes, scores, descriptions, object names) on the same frame and weight file.

``GRiT.from_checkpoint(path, tokenizer_dir, config=GRiTConfig.vbench(task))`` loads the official detectron2-format
``grit_b_densecap_objectdet.pth`` strictly; ``model.detect(frame)`` returns VBench-style detections.
Submodules: :mod:`.preprocess`, :mod:`.backbone`, :mod:`.proposals`, :mod:`.roi_heads`, :mod:`.text_decoder`,
:mod:`.model`.
"""
from omnieval.metrics.vbench.grit.model import GRiT, GRiTConfig, GRiTPrediction, load_checkpoint

__all__ = ["GRiT", "GRiTConfig", "GRiTPrediction", "load_checkpoint"]
