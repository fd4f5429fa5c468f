"""Emu Edit test set: in-record images end to end (omnivideo-tiny think both; predictions) and the five scores
against independent computations with OpenAI's ``clip`` package, torch and scipy (the paper released no code):
CLIP-dir as InstructPix2Pix's ``ClipSimilarity`` direction formula, the others as MagicBrush's ``image_eval.py``
formulas (recorded parity for those: ``test_magicbrush.py``) with the input image in place of the ground truth."""
from __future__ import annotations

import json

import editing_fixtures as F
import numpy as np
import pytest

from omnieval.cli import main
from omnieval.errors import ConfigError
from omnieval.media import read_image, write_image
from omnieval.tasks import REPO_TASKS_DIR, load_docs, resolve_tasks

TASK_FILE = REPO_TASKS_DIR / "editing" / "emu_edit.yaml"
FIXTURE = REPO_TASKS_DIR / "editing" / "fixtures" / "emu_edit"


def swap_tiny(clip_file, dino_file):
    def swap(name, options):
        if name in ("edit_clip_i", "edit_clip_t", "clip_direction"):
            return dict(options, backbone=f"open_clip:{F.TINY_OC}/file", backbone_path=str(clip_file), device="cpu")
        if name == "edit_dino":
            return dict(options, dino="dino-tiny-random", dino_path=str(dino_file))
        return options
    return swap


def test_missing_dataset_one_line(tmp_path, monkeypatch):
    cfg = resolve_tasks(["emu_edit"])[0]
    with pytest.raises(ConfigError, match="huggingface-cli download --repo-type dataset facebook/emu_edit_test_set") as err:
        load_docs(cfg)
    assert "\n" not in str(err.value)


def test_end_to_end_omnivideo_tiny_think_both(tmp_path):
    tasks = tmp_path / "tasks"
    swap = lambda n, o: dict(o, backbone="clip-tiny-random", device="cpu") if "clip" in n else (  # noqa: E731
        dict(o, dino="dino-tiny-random") if n == "edit_dino" else o)
    name = F.tiny_task_variant(TASK_FILE, "emu_edit", tasks, option_swaps=swap, generation=F.TINY_GENERATION)
    out = tmp_path / "out"
    assert main(["run", "--model", "omnivideo-tiny", "--model_args", "route=false,think_max_new_tokens=4", "--tasks", name,
                 "--think", "both", "--output_path", str(out), "--include_path", str(tasks),
                 "--dataset", f"{name}={FIXTURE}"]) == 0
    res = json.loads((out / "results.json").read_text())
    for key in (name, f"{name}@think"):
        values = res["results"][key]
        assert {"clip_direction", "clip_img/edit_clip_i", "clip_out/edit_clip_t", "l1/edit_l1", "dino/edit_dino"} <= set(values)
        assert "l1/edit_l1[task=add]" in values and values["l1/edit_l1[task=add]"]["n"] == 1
    info = res["metric_options"][name]["l1"]["info"]["off"]
    assert info["items_with_other_size"] == 3  # 32x32 outputs vs 36x28 inputs: resized to the input size


def test_scores_match_independent_computation(tmp_path):
    """``predictions`` on the fixture = CLIP (OpenAI clip package, same tiny weights) / torch / scipy formulas.
    Tolerance 1e-5 (float32 features), 1e-6 for L1."""
    import clip
    import torch
    from PIL import Image
    from scipy.spatial import distance
    from torchvision import transforms

    cfg = resolve_tasks(["emu_edit"])[0]
    docs = load_docs(cfg, str(FIXTURE))
    rng = np.random.default_rng(9)
    pred = tmp_path / "pred"
    pred.mkdir()
    outputs = {}
    lines = []
    for d in docs:
        outputs[d.id] = F.smooth_image(rng, (40, 40))
        write_image(outputs[d.id], pred / f"{d.id}.png")
        lines.append(json.dumps({"doc_id": d.id, "file": f"{d.id}.png"}))
    (pred / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    clip_file, dino_file = F.tiny_openai_clip(tmp_path / "nets"), F.tiny_dino_file(tmp_path / "nets")
    tasks = tmp_path / "tasks"
    name = F.tiny_task_variant(TASK_FILE, "emu_edit", tasks, option_swaps=swap_tiny(clip_file, dino_file))
    out = tmp_path / "out"
    assert main(["run", "--model", "predictions", "--model_args", f"path={pred}", "--tasks", name, "--output_path", str(out),
                 "--include_path", str(tasks), "--dataset", f"{name}={FIXTURE}"]) == 0
    ours = json.loads((out / "results.json").read_text())["results"][name]

    model = clip.model.build_model(torch.load(clip_file, weights_only=True)).float().eval()
    transform = clip.clip._transform(32)
    dino = __import__("omnieval.metrics.editing", fromlist=["load_dino"]).load_dino("dino-tiny-random", dino_file)
    dino_t = transforms.Compose([transforms.Resize(256, interpolation=3), transforms.CenterCrop(224), transforms.ToTensor(),
                                 transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    expected = {k: [] for k in ("dir", "img", "out", "l1", "dino")}
    with torch.no_grad():
        for d in docs:
            src = Image.fromarray(read_image(d.fields["image"]))
            edit = Image.fromarray(outputs[d.id])
            ei, si = (model.encode_image(transform(x)[None])[0] for x in (edit, src))
            to, ti = (model.encode_text(clip.tokenize(d.fields[k], truncate=True))[0] for k in ("output_caption", "input_caption"))
            n = lambda v: v / v.norm()  # noqa: E731  (ClipSimilarity normalises every feature first)
            expected["dir"].append(float(torch.nn.functional.cosine_similarity(n(ei) - n(si), n(to) - n(ti), dim=0)))
            expected["img"].append(1 - distance.cosine(ei.numpy(), si.numpy()))
            expected["out"].append(1 - distance.cosine(ei.numpy(), to.numpy()))
            tt = transforms.ToTensor()
            expected["l1"].append(float(torch.nn.L1Loss()(tt(edit.resize(src.size)), tt(src))))
            expected["dino"].append(1 - distance.cosine(dino(dino_t(edit)[None])[0].numpy(), dino(dino_t(src)[None])[0].numpy()))
    pairs = {"clip_direction": "dir", "clip_img/edit_clip_i": "img", "clip_out/edit_clip_t": "out",
             "l1/edit_l1": "l1", "dino/edit_dino": "dino"}
    for result, key in pairs.items():
        assert ours[result]["value"] == pytest.approx(np.mean(expected[key]), abs=1e-6 if key == "l1" else 1e-5), key
    add = [i for i, d in enumerate(docs) if d.fields["task"] == "add"][0]
    assert ours["l1/edit_l1[task=add]"]["value"] == pytest.approx(expected["l1"][add], abs=1e-6)
