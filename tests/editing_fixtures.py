"""Deterministic editing fixtures shared by the editing tests and the reference recorders (tests/reference/).

Everything here is built from seeds, so a recorder run once elsewhere and a test run in CI see identical files.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

from omnieval.media import write_image

#: MagicBrush parity fixture: (img_id, turns).  The reference's __main__ prints the first 10 pairs of each list,
#: so there must be at least 10 sessions (final-turn pairs) and 10 turns (all-turn pairs).
MB_SESSIONS = [("1001", 1), ("1002", 3), ("1003", 1), ("1004", 2), ("1005", 1), ("1006", 1), ("1007", 2),
               ("1008", 1), ("1009", 1), ("1010", 1)]
MB_GT_HW = (30, 40)       # ground truth images: 40 x 30 (W x H)
MB_GEN_HW = (48, 48)      # generated images: a different size, so L1/L2 exercise the bicubic resize


def smooth_image(rng: np.random.Generator, hw: tuple[int, int]) -> np.ndarray:
    """A small smooth image (colour gradient + a rectangle): compresses to a small PNG."""
    h, w = hw
    y, x = np.mgrid[0:h, 0:w]
    c = rng.integers(0, 256, size=(3, 3))
    img = np.stack([(c[i, 0] * x / w + c[i, 1] * y / h + c[i, 2]) % 256 for i in range(3)], -1).astype(np.uint8)
    y0, x0 = rng.integers(0, h // 2), rng.integers(0, w // 2)
    img[y0:y0 + h // 3, x0:x0 + w // 3] = rng.integers(0, 256, size=3)
    return img


def make_magicbrush_tree(root: Path, sessions=MB_SESSIONS, seed: int = 0, hw=MB_GT_HW) -> Path:
    """A MagicBrush test folder (``images/``, ``edit_sessions.json``, local/global descriptions)."""
    rng = np.random.default_rng(seed)
    edit_sessions, local, global_ = {}, {}, {}
    for img_id, turns in sessions:
        folder = root / "images" / img_id
        folder.mkdir(parents=True, exist_ok=True)
        write_image(smooth_image(rng, hw), folder / f"{img_id}-input.png")
        global_[img_id] = {f"{img_id}-input.png": f"a photo number {img_id}"}
        local[img_id], edit_sessions[img_id] = {}, []
        for k in range(1, turns + 1):
            write_image(smooth_image(rng, hw), folder / f"{img_id}-output{k}.png")
            write_image((smooth_image(rng, hw) > 128).astype(np.uint8) * 255, folder / f"{img_id}-mask{k}.png")
            prev = f"{img_id}-input.png" if k == 1 else f"{img_id}-output{k - 1}.png"
            edit_sessions[img_id].append({"input": prev, "mask": f"{img_id}-mask{k}.png", "output": f"{img_id}-output{k}.png",
                                          "instruction": f"turn {k}: add a red box to picture {img_id}"})
            local[img_id][f"{img_id}-output{k}.png"] = f"a red box on picture {img_id} after edit {k}"
            global_[img_id][f"{img_id}-output{k}.png"] = f"picture {img_id} with {k} red boxes"
    (root / "edit_sessions.json").write_text(json.dumps(edit_sessions, indent=1))
    (root / "edit_turns.json").write_text(json.dumps([t for s in edit_sessions.values() for t in s], indent=1))
    (root / "local_descriptions.json").write_text(json.dumps(local, indent=1))
    (root / "global_descriptions.json").write_text(json.dumps(global_, indent=1))
    return root


def make_magicbrush_generated(root: Path, sessions=MB_SESSIONS, seed: int = 1, hw=MB_GEN_HW) -> Path:
    """Generated images named as ``image_eval.py`` expects: ``<id>/<id>_1.png``, ``_inde_<k>``, ``_iter_<k>``."""
    rng = np.random.default_rng(seed)
    for img_id, turns in sessions:
        folder = root / img_id
        folder.mkdir(parents=True, exist_ok=True)
        write_image(smooth_image(rng, hw), folder / f"{img_id}_1.png")
        for k in range(2, turns + 1):
            write_image(smooth_image(rng, hw), folder / f"{img_id}_inde_{k}.png")
            write_image(smooth_image(rng, hw), folder / f"{img_id}_iter_{k}.png")
    return root


def magicbrush_manifest(gen_root: Path, sessions=MB_SESSIONS) -> Path:
    """A ``predictions`` manifest for both MagicBrush tasks (turn k: ``_inde_k`` independent, ``_iter_k`` iterative)."""
    lines = []
    for img_id, turns in sessions:
        for k in range(1, turns + 1):
            for task, kind in (("magicbrush_all_turn", "inde"), ("magicbrush_final_turn", "iter")):
                name = f"{img_id}_1.png" if k == 1 else f"{img_id}_{kind}_{k}.png"
                lines.append({"task": task, "doc_id": f"{img_id}_t{k}", "file": f"{img_id}/{name}"})
    path = gen_root / "manifest.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    return path


# ---------------------------------------------------------------------------------------------
# Hub-style datasets (parquet folders read by datasets.load_dataset, the code path of a hub id)
# ---------------------------------------------------------------------------------------------
def encoded(image: np.ndarray, fmt: str = "PNG") -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format=fmt)
    return buf.getvalue()


def write_parquet_dataset(folder: Path, rows: dict, image_columns=("image",), split: str = "test") -> Path:
    """``<folder>/data/<split>-00000-of-00001.parquet`` with ``image_columns`` as ``datasets.Image`` features."""
    import datasets

    def feature(name, values):
        if name in image_columns:
            return datasets.Image()
        v = values[0]
        return datasets.Value("bool" if isinstance(v, bool) else "int64" if isinstance(v, int) else "string")

    ds = datasets.Dataset.from_dict(rows, features=datasets.Features({k: feature(k, v) for k, v in rows.items()}))
    (folder / "data").mkdir(parents=True, exist_ok=True)
    ds.to_parquet(str(folder / "data" / f"{split}-00000-of-00001.parquet"))
    return folder


EMU_ROWS = [("add", "Add a red box to the picture", "a green field", "a green field with a red box"),
            ("remove", "Remove the rectangle", "a blue rectangle on a wall", "an empty wall"),
            ("style", "Make it look like a pencil sketch", "a photo of a road", "a pencil sketch of a road")]


def make_emu_edit(folder: Path, seed: int = 3, hw=(36, 28), fmt: str = "JPEG") -> Path:
    """An Emu Edit test-set shaped dataset (facebook/emu_edit_test_set features), images as JPEG bytes in-record."""
    rng = np.random.default_rng(seed)
    n = len(EMU_ROWS)
    rows = {"instruction": [r[1] for r in EMU_ROWS],
            "image": [{"bytes": encoded(smooth_image(rng, hw), fmt), "path": None} for _ in range(n)],
            "task": [r[0] for r in EMU_ROWS], "split": ["test"] * n, "idx": list(range(10, 10 + n)),
            "hash": [f"h{i}" for i in range(n)], "input_caption": [r[2] for r in EMU_ROWS],
            "output_caption": [r[3] for r in EMU_ROWS]}
    return write_parquet_dataset(folder, rows)


GEDIT_ROWS = [("subject-add", "g1", "Add a red hat to the man ", "en", True),
              ("color_alter", "g2", "Make the car blue", "en", False),
              ("style_change", "g3", "Turn it into a watercolor painting", "en", True),
              ("subject-add", "g1", "给男人加一顶红帽子", "cn", True)]


def make_gedit(folder: Path, seed: int = 4) -> Path:
    """A GEdit-Bench shaped dataset (split train); the first source image is RGBA (lmms-eval sends it as such)."""
    rng = np.random.default_rng(seed)
    images = []
    for i, _ in enumerate(GEDIT_ROWS):
        img = smooth_image(rng, (30 + 4 * i, 40))
        if i == 0:
            img = np.concatenate([img, np.full(img.shape[:2] + (1,), 200, np.uint8)], -1)
        images.append({"bytes": encoded(img), "path": None})
    rows = {"task_type": [r[0] for r in GEDIT_ROWS], "key": [r[1] for r in GEDIT_ROWS],
            "instruction": [r[2] for r in GEDIT_ROWS], "instruction_language": [r[3] for r in GEDIT_ROWS],
            "input_image": images, "input_image_raw": images, "Intersection_exist": [r[4] for r in GEDIT_ROWS]}
    return write_parquet_dataset(folder, rows, image_columns=("input_image", "input_image_raw"), split="train")


IMGEDIT_ROWS = [("i1", "add", "Add a cat on the sofa"), ("i2", "style", "Make it a pencil sketch"),
                ("i3", "mystery", "Brighten the sky")]


def make_imgedit(folder: Path, seed: int = 6) -> Path:
    """A kcz358/imgedit shaped dataset (split test)."""
    rng = np.random.default_rng(seed)
    rows = {"key": [r[0] for r in IMGEDIT_ROWS], "edit_type": [r[1] for r in IMGEDIT_ROWS],
            "prompt": [r[2] for r in IMGEDIT_ROWS],
            "image": [{"bytes": encoded(smooth_image(rng, (28, 36))), "path": None} for _ in IMGEDIT_ROWS]}
    return write_parquet_dataset(folder, rows)


# ---------------------------------------------------------------------------------------------
# Video editing layouts (frame folders)
# ---------------------------------------------------------------------------------------------
def write_frames(folder: Path, rng: np.random.Generator, n: int = 8, hw=(24, 32), suffix: str = ".jpg",
                 name: str = "{:05d}", start: int = 0) -> Path:
    """``n`` smooth, slowly moving frames as image files (``name`` formats the index, counted from ``start``)."""
    folder.mkdir(parents=True, exist_ok=True)
    base = smooth_image(rng, (hw[0], hw[1] + n))
    for i in range(n):
        write_image(np.ascontiguousarray(base[:, i:i + hw[1]]), folder / (name.format(start + i) + suffix))
    return folder


LOVEU_VIDEOS = [("DAVIS_480p", "gold-fish", "Several goldfish swim in a tank."),
                ("videvo_480p", "drone-lake", "A drone flies over a lake.")]


def make_loveu(root: Path, seed: int = 7) -> Path:
    """A LOVEU-TGVE-2023 folder: the CSV with section rows, and <subset>/480p_frames/<video>/*.jpg."""
    import csv

    rng = np.random.default_rng(seed)
    header = ["Video name", "Our GT caption", "Style Change Caption", "Object Change Caption", "Background Change Caption",
              "Multiple Changes Caption"]
    rows, current = [], None
    for subset, video, caption in LOVEU_VIDEOS:
        if subset != current:
            rows.append([subset.replace("_480p", " videos"), "", "", "", "", ""])
            current = subset
        subject = caption.split(" ", 2)[1]
        rows.append([video, caption, caption[:-1] + ", van gogh style.", caption.replace(subject, "robots"),
                     caption.replace(".", " at night."), caption.replace(subject, "robots")[:-1] + " at night, van gogh style."])
        write_frames(root / subset / "480p_frames" / video, rng)
    with open(root / "LOVEU-TGVE-2023_Dataset.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([header, *rows])
    return root


V2V_VIDEOS = [("hike", ["a superman hikes through the desert", "a man hikes on the moon"]), ("aurora", ["fireworks over a lake"])]


def make_v2vbench(root: Path, seed: int = 8) -> Path:
    """A V2VBench folder: config.yaml and frames/<video_id>/NN.png."""
    rng = np.random.default_rng(seed)
    data = [{"video_id": v, "prompt": f"source video {v}", "edit": [{"prompt": p} for p in prompts]} for v, prompts in V2V_VIDEOS]
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.yaml").write_text(yaml.safe_dump({"data": data}, sort_keys=False))
    for v, _ in V2V_VIDEOS:
        write_frames(root / "frames" / v, rng, suffix=".png", name="{:02d}")
    return root


def make_edited_videos(root: Path, rel_folders: list[str], seed: int = 11, suffix: str = ".jpg") -> Path:
    """Edited videos as frame folders (6 frames, 20 x 28) under ``root/<rel>``."""
    rng = np.random.default_rng(seed)
    for rel in rel_folders:
        write_frames(root / rel, rng, n=6, hw=(20, 28), suffix=suffix)
    return root


def loveu_edit_folders() -> list[str]:
    """Submission folders ``<subset>/<video>/<edit type>`` of the LOVEU fixture (``run_eval.py``'s layout)."""
    return [f"{s}/{v}/{t}" for s, v, _ in LOVEU_VIDEOS for t in ("style", "object", "background", "multiple")]


def v2v_edit_folders() -> list[str]:
    """Edited-video folders ``<video_id>/<edit index>`` of the V2VBench fixture."""
    return [f"{v}/{i}" for v, prompts in V2V_VIDEOS for i in range(len(prompts))]


def weights_checksum_dir(folder: Path) -> float:
    """Sum of the float parameters of a saved transformers model folder (safetensors)."""
    from safetensors.torch import load_file

    return float(sum(v.double().sum() for f in sorted(folder.glob("*.safetensors")) for v in load_file(f).values()
                     if v.is_floating_point()))


def tiny_hf_clip(folder: Path) -> Path:
    """The seeded tiny transformers CLIP (``clip-tiny-random``) saved with its processor as a model folder."""
    from omnieval.metrics.clip_backbones import tiny_clip_model_and_processor

    model, processor = tiny_clip_model_and_processor()
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


# ---------------------------------------------------------------------------------------------
# Tiny networks
# ---------------------------------------------------------------------------------------------
TINY_OC = "omnieval-tiny-oc"
TINY_OC_CFG = {"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 8},
               "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 1}}


def tiny_openai_clip(folder: Path) -> Path:
    """A seeded tiny OpenAI-layout CLIP saved as an open_clip state dict (weights rounded to fp16 values, as
    ``clip.model.build_model`` rounds them); loadable by omnieval (``open_clip:omnieval-tiny-oc/file``) and by
    OpenAI ``clip.model.build_model``."""
    import open_clip
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    cfg = folder / f"{TINY_OC}.json"
    cfg.write_text(json.dumps(TINY_OC_CFG))
    open_clip.add_model_config(cfg)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = open_clip.create_model(TINY_OC, pretrained=None, force_quick_gelu=True)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())
    path = folder / "tiny_oc.pt"
    torch.save(model.state_dict(), path)
    return path


def tiny_dino_file(folder: Path) -> Path:
    """The seeded tiny DINO ViT (``dino-tiny-random``) shifted by 0.01, saved as a state dict."""
    import copy

    import torch

    from omnieval.metrics.editing import load_dino

    net = copy.deepcopy(load_dino("dino-tiny-random"))
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.01)
    path = folder / "tiny_dino.pth"
    torch.save(net.state_dict(), path)
    return path


def weights_checksum(path: Path) -> float:
    """Sum of all parameters of a saved state dict (a recording states it; a test checks it)."""
    import torch

    return float(sum(v.double().sum() for v in torch.load(path, weights_only=True).values() if v.is_floating_point()))


# ---------------------------------------------------------------------------------------------
# Real task YAML with tiny networks
# ---------------------------------------------------------------------------------------------
#: sampler settings small enough for omnivideo-tiny on CPU (the task YAMLs carry the paper's settings)
TINY_GENERATION = {"height": 32, "width": 32, "num_inference_steps": 1}


def tiny_task_variant(task_file: Path, task: str, out_dir: Path, suffix: str = "_tiny", option_swaps=None,
                      generation: dict | None = None) -> str:
    """Write ``<out_dir>/<task><suffix>.yaml``: the repo's task ``task`` as defined (includes resolved), renamed,
    with each metric's options updated by ``option_swaps(metric_name, options) -> options`` (tiny networks) and
    ``generation`` merged into its sampler settings."""
    from omnieval.config import resolve_includes

    raw = yaml.safe_load(task_file.read_text())
    docs = raw if isinstance(raw, list) else [raw]
    doc = next(resolve_includes(d, task_file) for d in docs if resolve_includes(d, task_file).get("task") == task)
    doc = dict(doc, task=task + suffix, group=["tiny_variants"])
    if generation:
        doc["generation"] = dict(doc.get("generation") or {}, **generation)
    if doc.get("dataset", {}).get("path", "").startswith(("$", "/")) is False:
        doc["dataset"] = dict(doc["dataset"], path=str(task_file.parent / doc["dataset"]["path"]))
    metrics = []
    for m in doc.get("metrics", []):
        m = dict(m) if isinstance(m, dict) else {"name": m}
        if option_swaps:
            m["options"] = option_swaps(m["name"], dict(m.get("options") or {}))
        metrics.append(m)
    doc["metrics"] = metrics
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{task}{suffix}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return task + suffix


# ---------------------------------------------------------------------------------------------
# FiVE-Bench (official layout: edit_prompt/edit{1..6}_FiVE.json, images/<video>/, bmasks/<video>/)
# ---------------------------------------------------------------------------------------------
#: (video name, frames, H x W); masks: frame indexes whose mask is empty (no edit region) or full (all edit)
FIVE_VIDEOS = {"0001_bus": {"n": 17, "hw": (48, 64), "empty": (16,), "full": ()},
               "0002_girl-dog": {"n": 17, "hw": (40, 56), "empty": (), "full": (0, 8)}}


def _five_entry(type_id, video, source, target, mc, src_q, tgt_q):
    return {"video_name": video, "editing_type_id": type_id, "source_prompt": source, "target_prompt": target,
            "negative_prompt": "blurry, low quality", "save_dir": f"{type_id}_{target[:20]}",
            "multiple_choice_question": mc, "source_yes_no_question": src_q, "target_yes_no_question": tgt_q}


#: six edit types (one file each); edited words in [...] after the 20 characters of the output folder name
FIVE_ENTRIES = {
    1: [_five_entry(1, "0001_bus", "A city bus drives down the street past [a bus stop].",
                    "A city bus drives down the street as a [red truck].",
                    "What drives down the street? \na) A bus \nb) A truck", "Is there a bus in the image?",
                    "Is there a truck in the image?"),
        _five_entry(1, "0002_girl-dog", "A girl walks with her [dog] in the park.",
                    "A girl walks with her [wolf] in the park.",
                    "What walks with the girl? \na) A dog \nb) A wolf", "Is there a dog in the image?",
                    "Is there a wolf in the image?")],
    2: [_five_entry(2, "0002_girl-dog", "A girl walks with her dog, a [puppy].", "A girl walks with her dog, a [cat].",
                    "Which animal is with the girl? \na) A puppy \nb) A cat", "Is the animal a puppy?",
                    "Is the animal a cat?")],
    3: [_five_entry(3, "0001_bus", "A city bus drives by, painted [yellow].", "A city bus drives by, painted [blue].",
                    "What colour is the bus? \na) Yellow \nb) Blue", "Is the bus yellow?", "Is the bus blue?")],
    4: [_five_entry(4, "0002_girl-dog", "A girl walks with her dog of [fur].", "A girl walks with her dog of [bronze].",
                    "What is the dog made of? \na) Fur \nb) Bronze", "Is the dog furry?", "Is the dog made of bronze?")],
    5: [_five_entry(5, "0001_bus", "A city bus drives down the street.", "A city bus drives down the street with [a bird] above.",
                    "Is there a bird above the bus? \na) No \nb) Yes", "Is there a bird above the bus?",
                    "Is there a bird flying above the bus?")],
    6: [_five_entry(6, "0002_girl-dog", "A girl walks with her [dog].", "A girl walks with her hands in her pockets, [alone].",
                    "Is there a dog? \na) Yes \nb) No", "", "Is the girl walking alone?")],
}

#: the judge's replies by question (FiVE asks MC, then source YN, then target YN); prefix-parsed as FiVE does
FIVE_REPLIES = {
    "What drives down the street? \na) A bus \nb) A truck": "b) A truck",
    "Is there a bus in the image?": "No", "Is there a truck in the image?": "Yes.",
    "What walks with the girl? \na) A dog \nb) A wolf": "a) A dog",
    "Is there a dog in the image?": "No.", "Is there a wolf in the image?": "No",
    "Which animal is with the girl? \na) A puppy \nb) A cat": " B",
    "Is the animal a puppy?": "NO, it is not.", "Is the animal a cat?": "YES",
    "What colour is the bus? \na) Yellow \nb) Blue": "b",          # 3 edited frames: FiVE never asks (nan)
    "Is the bus yellow?": "No", "Is the bus blue?": "Yes",
    "What is the dog made of? \na) Fur \nb) Bronze": "The answer is b",
    "Is the dog furry?": "no", "Is the dog made of bronze?": "yes",
    "Is there a bird above the bus? \na) No \nb) Yes": "b",
    "Is there a bird above the bus?": "Yes", "Is there a bird flying above the bus?": "Yes",
    "Is there a dog? \na) Yes \nb) No": "b) No", "Is the girl walking alone?": "Yeah",
}


def five_reply(text: str) -> str:
    """The scripted reply to a FiVE-Acc prompt (the question ends the prompt)."""
    hits = [r for q, r in FIVE_REPLIES.items() if text.endswith("\n" + q)]
    if len(hits) != 1:
        raise KeyError(f"no scripted reply for {text!r}")
    return hits[0]


def make_five(root: Path, seed: int = 21) -> Path:
    """A FiVE-Bench ``data`` folder: six ``edit_prompt`` files, ``images/<video>/00001.jpg ...`` and single-channel
    JPEG masks ``bmasks/<video>/00001.jpg ...`` (a moving rectangle; the listed frames empty or full)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    (root / "edit_prompt").mkdir(parents=True, exist_ok=True)
    for type_id, entries in FIVE_ENTRIES.items():
        (root / "edit_prompt" / f"edit{type_id}_FiVE.json").write_text(json.dumps(entries, indent=2) + "\n")
    for video, spec in FIVE_VIDEOS.items():
        h, w = spec["hw"]
        write_frames(root / "images" / video, rng, n=spec["n"], hw=(h, w), start=1)  # FiVE counts frames from 1
        (root / "bmasks" / video).mkdir(parents=True, exist_ok=True)
        for i in range(spec["n"]):
            mask = np.zeros((h, w), np.uint8)
            if i in spec["full"]:
                mask[:] = 255
            elif i not in spec["empty"]:
                y, x = h // 4 + i % 3, w // 4 + i
                mask[y:y + h // 2, x:x + w // 3] = 255
            Image.fromarray(mask, "L").save(root / "bmasks" / video / f"{i + 1:05d}.jpg")
    return root


def five_edit_folders() -> list[str]:
    """Edited-video folders ``<video>/<type>_<target prompt[:len(save_dir) - 2]>`` (FiVE's evaluate.py layout), in
    the order of the six edit files."""
    return [f"{e['video_name']}/{t}_{e['target_prompt'][:len(e['save_dir']) - 2]}" for t, es in FIVE_ENTRIES.items() for e in es]


#: frames and size of each edited video (by folder order): different lengths (FiVE pairs by index after stride 8),
#: a different size (resized to the source size), 3 frames (too few for FiVE-Acc's 4: nan), 40 frames (10 sent)
FIVE_EDIT_SHAPES = [(17, (48, 64)), (17, (36, 60)), (9, (40, 56)), (3, (48, 64)), (40, (40, 56)), (17, (48, 64)),
                    (17, (40, 56))]


def make_five_edits(root: Path, seed: int = 22) -> Path:
    """Edited FiVE videos as PNG frame folders ``root/<video>/<out_dir>/00001.png ...`` (lossless, so the reference
    run and the tests read identical pixels)."""
    rng = np.random.default_rng(seed)
    for rel, (n, hw) in zip(five_edit_folders(), FIVE_EDIT_SHAPES):
        write_frames(root / rel, rng, n=n, hw=hw, suffix=".png", start=1)
    return root


def tiny_squeezenet_file(folder: Path, seed: int = 0) -> Path:
    """A seeded random torchvision ``squeezenet1_1`` state dict (the LPIPS-squeeze backbone's layout)."""
    import torch
    import torchvision

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = torchvision.models.squeezenet1_1(weights=None)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tiny_squeezenet1_1.pth"
    torch.save(net.state_dict(), path)
    return path


def tiny_dino_p8_file(folder: Path) -> Path:
    """The seeded ``dino-tiny-random-p8`` ViT (12 blocks, patch 8, width 24) saved as a DINO-layout state dict."""
    import torch

    from omnieval.metrics.editing import load_dino

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tiny_dino_p8.pth"
    torch.save(load_dino("dino-tiny-random-p8").state_dict(), path)
    return path
