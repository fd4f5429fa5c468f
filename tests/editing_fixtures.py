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
                 name: str = "{:05d}") -> Path:
    """``n`` smooth, slowly moving frames as image files (``name`` formats the index)."""
    folder.mkdir(parents=True, exist_ok=True)
    base = smooth_image(rng, (hw[0], hw[1] + n))
    for i in range(n):
        write_image(np.ascontiguousarray(base[:, i:i + hw[1]]), folder / (name.format(i) + suffix))
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
