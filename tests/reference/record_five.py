"""Record FiVE-Bench's own ``evaluation/evaluate.py`` + ``metrics_calculator.py`` on the bundled fixture
(``tasks/editing/fixtures/five``) -> ``tests/data/five_reference.json``.  Needs transformers 4.x (torchmetrics'
``CLIPScore`` calls ``get_image_features`` as a tensor; transformers 4.x also gives the slow, PIL, CLIP image
processor the script ran with), e.g. the side venv of ``record_tgve.py``::

    R=/work/.mirror/Harvard-AI-and-Robotics-Lab+FiVE-Bench/repo; D=/work/.mirror/facebookresearch+dino/repo
    mkdir -p /tmp/five_ref/dino
    git -C $R show 98ea719:evaluation/evaluate.py > /tmp/five_ref/evaluate.py
    git -C $R show 98ea719:evaluation/metrics_calculator.py > /tmp/five_ref/metrics_calculator.py
    git -C $D show HEAD:vision_transformer.py > /tmp/five_ref/dino/vision_transformer.py
    git -C $D show HEAD:utils.py > /tmp/five_ref/dino/utils.py
    PYTHONPATH=<repo>:<repo>/tests python -c "import editing_fixtures as F, pathlib; F.tiny_hf_clip(pathlib.Path('/tmp/five_ref/clip'))"
    PYTHONPATH=<repo>:<repo>/tests /tmp/tf4venv/bin/python tests/reference/record_five.py /tmp/five_ref tests/data/five_reference.json /tmp/five_ref/clip

``evaluate.main`` runs unchanged on the fixture and on the edited videos of ``editing_fixtures.make_five_edits``
(PNG frame folders, one method ``omni``), with these offline substitutions (tiny seeded networks; the same ones the
test builds, their checksums are stored):

* ``CLIPScore("openai/clip-vit-large-patch14")`` -> ``CLIPScore`` of the tiny CLIP of ``tiny_hf_clip`` (saved by the
  test environment, loaded here by transformers 4.x: ``CLIPModel`` + ``CLIPProcessor``, as torchmetrics does for an
  ``openai/...`` id);
* LPIPS-squeeze's torchvision ``squeezenet1_1`` ImageNet weights -> ``tiny_squeezenet_file`` (the linear layers are
  torchmetrics' own bundled ``lpips_models/squeeze.pth``, as in the real run);
* ``torch.hub.load('facebookresearch/dino:main', 'dino_vitb8')`` -> DINO's own ``vision_transformer.py`` ViT with
  patch 8, 12 blocks and width 24 / 2 heads, loaded with omnieval's ``dino-tiny-random-p8`` state dict; the
  extractor derives width and heads from the model *name* (768 / 12 for ``dino_vitb8``), so its
  ``get_embedding_dim`` / ``get_head_num`` answer 24 / 2 (the keys it concatenates do not depend on the head split);
* CoTracker (motion fidelity; not run) -> an empty module so ``MetricsCalculator`` can be built;
* ``FiVEAcc_Qwen_VL``: its ``run_each_iter`` (frame listing and selection, messages) and ``get_score`` (templates,
  parsing) run unchanged; only the Qwen2.5-VL model, processor and ``qwen_vl_utils.process_vision_info`` are fakes
  that log the messages and answer with ``editing_fixtures.five_reply`` (the replies the test's fake judge gives).

Stored: every per-type CSV (per-item rows and the ``_avg`` row) and ``final_averaged_results.csv``, as the script
wrote them, plus the logged FiVE-Acc calls (frame file names sent, prompt text, reply).  Nothing of FiVE's code is
stored here.
"""
from __future__ import annotations

import csv
import json
import sys
import tempfile
import types
from argparse import Namespace
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tasks" / "editing" / "fixtures" / "five"
#: FiVE's default metric list minus NIQE and motion fidelity (IQA-PyTorch subprocess / CoTracker3), plus the other
#: regions ``calculate_metric`` offers (full frame, edit part) so every option of omnieval's metrics is checked
METRICS = ["structure_distance", "psnr_unedit_part", "lpips_unedit_part", "mse_unedit_part", "ssim_unedit_part",
           "clip_similarity_source_image", "clip_similarity_target_image", "clip_similarity_target_image_edit_part",
           "five_acc", "psnr", "lpips", "mse", "ssim", "structure_distance_unedit_part", "psnr_edit_part",
           "lpips_edit_part", "mse_edit_part", "ssim_edit_part", "structure_distance_edit_part"]
METHOD = "omni"


class _Inputs(dict):
    input_ids = ((0,),)

    def to(self, device):
        return self


def scripted_qwen(base, calls: list):
    """``FiVEAcc_Qwen_VL`` with a fake model/processor: the reference's own ``run_each_iter`` / ``get_score`` run."""
    import editing_fixtures as F

    class Processor:
        def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True):
            video, text = messages[0]["content"][0]["video"], messages[0]["content"][1]["text"]
            folder = Path(video[0]).parent
            calls.append({"video": str(Path(*folder.parts[-2:])), "frames": [Path(v).name for v in video], "text": text,
                          "reply": F.five_reply(text)})
            return text

        def __call__(self, **kw):
            return _Inputs()

        def batch_decode(self, ids, **kw):
            return [calls[-1]["reply"]]

    class Model:
        def generate(self, max_new_tokens=None, **kw):
            calls[-1]["max_new_tokens"] = max_new_tokens
            return [[0, 1]]

    class Scripted(base):
        def __init__(self, num_frames=4, model_id=""):
            torch.nn.Module.__init__(self)
            self.num_frames, self.processor, self.model = num_frames, Processor(), Model()

    return Scripted


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def record(ref_dir: Path, out: Path, clip_dir: Path) -> None:
    import editing_fixtures as F
    import torchmetrics
    import torchmetrics.functional.image.lpips as tm_lpips
    import torchvision
    import transformers
    from omegaconf import OmegaConf
    from torchmetrics.multimodal import CLIPScore

    stub = types.ModuleType("qwen_vl_utils")
    stub.process_vision_info = lambda messages: (None, None)
    sys.modules["qwen_vl_utils"] = stub
    import torchvision.io

    if not hasattr(torchvision.io, "read_video"):  # imported (never used) by evaluate.py; gone in torchvision 0.29
        torchvision.io.read_video = None
    sys.path[:0] = [str(ref_dir), str(ref_dir / "dino")]
    import evaluate as E
    import metrics_calculator as MC
    import vision_transformer as dino_vits

    calls: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        preds = F.make_five_edits(root / "pred" / METHOD)
        squeeze_file = F.tiny_squeezenet_file(root / "nets")
        dino_file = F.tiny_dino_p8_file(root / "nets")

        def clip_loader():
            return (transformers.CLIPModel.from_pretrained(clip_dir).eval(), transformers.CLIPProcessor.from_pretrained(clip_dir))

        MC.CLIPScore = lambda model_name_or_path: CLIPScore(model_name_or_path=clip_loader)

        def tv_features(net, pretrained=False):
            assert net == "squeezenet1_1" and pretrained
            model = torchvision.models.squeezenet1_1(weights=None)
            model.load_state_dict(torch.load(squeeze_file, weights_only=True))
            return model.features

        tm_lpips._get_tv_model_features = tv_features

        def hub_load(repo, name, *a, **kw):
            assert (repo, name) == ("facebookresearch/dino:main", "dino_vitb8")
            from functools import partial

            model = dino_vits.VisionTransformer(patch_size=8, embed_dim=24, depth=12, num_heads=2, mlp_ratio=4,
                                                qkv_bias=True, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6))
            model.load_state_dict(torch.load(dino_file, weights_only=True), strict=True)
            return model

        torch.hub.load = hub_load
        MC.VitExtractor.get_embedding_dim = lambda self: 24
        MC.VitExtractor.get_head_num = lambda self: 2
        MC.CoTrackerPredictor = lambda checkpoint: torch.nn.Module()
        MC.FiVEAcc_Qwen_VL = scripted_qwen(MC.FiVEAcc_Qwen_VL, calls)

        config = OmegaConf.create({"cotracker_model_path": "unused", "IQA_PyTorch_model_path": "unused",
                                   "five_acc_vlm_num_frames": 4, "five_acc_vlm_model_id": "scripted"})
        result_csv = root / "out" / "evaluation_result.csv"
        args = Namespace(annotation_mapping_files=[str(FIXTURE / "edit_prompt" / f"edit{t}_FiVE.json") for t in range(1, 7)],
                         metrics=METRICS, src_image_folder=str(FIXTURE) + "/", tgt_methods=[METHOD],
                         result_path=str(result_csv), device="cpu", edit_category_list=[str(t) for t in range(1, 7)],
                         evaluate_whole_table=False, evaluate_source_video=False, frame_stride=8)
        E.main(args, config, {METHOD: (str(preds) + "/", "")})

        tables = {}
        for t in range(1, 7):
            stem = f"edit{t}_FiVE_evaluation_result_frame_stride8"
            tables[str(t)] = {"rows": read_csv(result_csv.parent / f"{stem}.csv"),
                              "avg": read_csv(result_csv.parent / f"{stem}_avg.csv")}
        final = read_csv(result_csv.parent / "final_averaged_results.csv")
        result = {"script": "Harvard-AI-and-Robotics-Lab/FiVE-Bench evaluation/evaluate.py + metrics_calculator.py (98ea719)",
                  "method": METHOD, "metrics": METRICS, "edit_folders": F.five_edit_folders(), "per_type": tables,
                  "final": final, "five_acc_calls": calls,
                  "checksums": {"clip": F.weights_checksum_dir(clip_dir), "squeezenet": F.weights_checksum(squeeze_file),
                                "dino": F.weights_checksum(dino_file)},
                  "recorded_with": {"transformers": transformers.__version__, "torch": torch.__version__,
                                    "torchmetrics": torchmetrics.__version__, "torchvision": torchvision.__version__}}
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(dict(zip(final[0], final[1])), indent=1))


if __name__ == "__main__":
    record(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
