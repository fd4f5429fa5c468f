"""Record T2I-ReasonBench's released scoring scripts on the bundled fixture for ``tests/data/t2i_reasonbench_recording.json``.

    PYTHONPATH=<repo> python tests/reference/record_t2i_reasonbench.py /path/to/T2I-ReasonBench \
        tests/data/t2i_reasonbench_recording.json [--commit SHA]

``/path/to/T2I-ReasonBench`` is a checkout of github.com/KaiyueSun98/T2I-ReasonBench (recorded at the commit named in
the output); nothing of it is copied here.  For each dimension its ``evaluation/Qwen2.5-VL/eval_<dimension>.py`` is
loaded from the checkout and run with the bundled fixture (``tests/data/t2i_reasonbench_fixture``, the release's
file layout) and one tiny PNG per prompt, with the judge replaced by scripted replies:

* ``qwen_vl_utils`` (not installed) is a stub module; the script's ``Qwen2_5_VLForConditionalGeneration`` and
  ``AutoProcessor`` become stubs whose ``from_pretrained`` returns None;
* its ``ask_qw(messages, processor, model)`` becomes a function that records ``messages`` (image paths replaced by
  their file names) and returns the next scripted reply of that image (:data:`REPLIES`);
* ``eval(args)`` writes the script's CSV, ``model_score(csv)`` appends its summary line; both are read back.

``eval_entity.py`` as released raises UnboundLocalError on the first image (it assigns the entity scores to
``score_scientific`` and reads ``score_entity``).  The recorder binds both names in that assignment (an AST edit of the
loaded source: ``score_scientific = score_entity = ...``), the smallest change that lets the script finish; the
recording says so under ``patches``.
"""
from __future__ import annotations

import argparse
import ast
import csv
import io
import json
import subprocess
import sys
import tempfile
import types
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "t2i_reasonbench_fixture"
DIMENSIONS = {  # dimension -> (script, prompt file, qs file)
    "idiom": ("eval_idiom.py", "prompts/idiom_interpretation.json", "deepseek_evaluation_qs/evaluation_idiom.json"),
    "textual_image": ("eval_textual_image.py", "prompts/textual_image_design.json", "deepseek_evaluation_qs/evaluation_textual_image.json"),
    "entity": ("eval_entity.py", "prompts/entity_reasoning.json", "deepseek_evaluation_qs/evaluation_entity.json"),
    "scientific": ("eval_scientific.py", "prompts/scientific_reasoning.json", "deepseek_evaluation_qs/evaluation_scientific.json"),
}
# Scripted judge replies per (dimension, image id): the description, then one reply per criteria group in the
# scripts' order.  They exercise numbers and numeric strings, mixed lists, prose and code fences around the JSON.
REPLIES = {
    ("idiom", 1): ["A woman at a dinner table speaks; others look surprised.\nNo cat is visible.",
                   '```json\n{"reason": ["dinner shown", "reveal partly", "metaphorical"], "score": [1, 0.5, 1]}\n```',
                   '{"reason": "faces fine, layout ok", "score": ["1", "0.5"]}'],
    ("idiom", 2): ["Two people drink coffee.",
                   'Answer:\n{"reason": ["two people", "mood neutral"], "score": [1, 0.5]} done.',
                   '{"reason": ["sharp"], "score": [0]}'],
    ("textual_image", 1): ["A blue poster.", '{"reason": ["title ok", "no time"], "score": [1, "0.5"]}',
                           '{"reason": ["clean"], "score": [1]}'],
    ("textual_image", 2): ["A diagram with arrows.", '{"reason": ["three steps", "order ok"], "score": [0.5, 1]}',
                           '{"reason": ["minor", "clear"], "score": [0.5, 1.0]}'],
    ("entity", 1): ["A tall iron lattice tower.", '{"reason": ["Eiffel Tower"], "score": [1]}',
                    '{"reason": ["Paris", "lattice"], "score": ["0.5", 1]}', '{"reason": ["ok", "ok"], "score": [1, 1]}'],
    ("entity", 2): ["A man with a red beard paints.", '{"reason": ["partly", "painting"], "score": [0.5, 1]}',
                    '{"reason": ["no canvas"], "score": [0]}', '{"reason": ["hands"], "score": [0.5]}'],
    ("scientific", 1): ["A glass with droplets.", '{"reason": ["droplets", "some ice"], "score": [1, 0.5]}',
                        '{"reason": ["summer"], "score": [1]}', '{"reason": ["not transparent"], "score": [0]}'],
    ("scientific", 2): ["A rusty bar in the grass.", '{"reason": ["rust"], "score": [0.5]}',
                        '{"reason": ["wet", "iron"], "score": [1, 0.5]}', '{"reason": ["texture"], "score": ["1"]}'],
}


class _Stub:
    @staticmethod
    def from_pretrained(*args, **kwargs):
        return None


def _bind_entity_scores(tree: ast.Module) -> int:
    """Make ``score_scientific = X`` also bind ``score_entity`` (the released entity script's bug); returns the count."""
    count = 0
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "score_scientific" for t in node.targets):
            node.targets.append(ast.Name(id="score_entity", ctx=ast.Store()))
            count += 1
    return count


def load_script(path: Path, entity_fix: bool) -> tuple[types.ModuleType, list[str]]:
    sys.modules.setdefault("qwen_vl_utils", types.ModuleType("qwen_vl_utils"))
    sys.modules["qwen_vl_utils"].process_vision_info = lambda messages: (None, None)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    patches = []
    if entity_fix:
        n = _bind_entity_scores(tree)
        patches.append(f"{path.name}: `score_scientific = ...` also binds `score_entity` ({n} assignment)")
    module = types.ModuleType(f"t2ir_{path.stem}")
    module.__file__ = str(path)
    exec(compile(ast.fix_missing_locations(tree), str(path), "exec"), module.__dict__)  # noqa: S102 - the reference, run from /tmp to record it
    module.Qwen2_5_VLForConditionalGeneration = module.AutoProcessor = _Stub
    return module, patches


def _plain(messages: list[dict]) -> list[dict]:
    """Messages with image paths replaced by their file names."""
    out = []
    for m in messages:
        content = m["content"]
        if isinstance(content, list):
            content = [dict(part, image=Path(part["image"]).name) if part.get("type") == "image" else dict(part)
                       for part in content]
        out.append({"role": m["role"], "content": content})
    return out


def record_dimension(repo: Path, dim: str, work: Path, fix: bool = True) -> tuple[dict, list[str]]:
    from PIL import Image

    script, prompt_json, qs_json = DIMENSIONS[dim]
    module, patches = load_script(repo / "evaluation" / "Qwen2.5-VL" / script, entity_fix=fix and dim == "entity")
    images = work / dim / "images"
    images.mkdir(parents=True)
    ids = [r["id"] for r in json.loads((FIXTURE / prompt_json).read_text())]
    for i in ids:
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(images / f"{i:04d}.png")
    calls: dict[int, list] = {i: [] for i in ids}

    def fake_ask(messages, processor, model):
        image = int(Path(messages[0]["content"][0]["image"]).name[:4])
        n = len(calls[image])
        calls[image].append(_plain(messages))
        return [REPLIES[(dim, image)][n]]

    module.ask_qw = fake_ask
    args = argparse.Namespace(model_name="fixture", image_folder=str(images), output_path=str(work / dim / "csv"),
                              prompt_json=str(FIXTURE / prompt_json), qs_json=str(FIXTURE / qs_json))
    with redirect_stdout(io.StringIO()):
        csv_path = module.eval(args)
        module.model_score(csv_path)
    with open(csv_path, newline="") as f:
        rows = list(csv.reader(f))
    header, body, summary = rows[0], rows[1:-1], rows[-1]
    n_avg = 2 if dim in ("idiom", "textual_image") else 3
    out = {"script": f"evaluation/Qwen2.5-VL/{script}", "csv_header": header, "images": [], "summary": {
        "line": summary, "accuracy": float(summary[1]), "quality": float(summary[3]), "count": len(body)}}
    for row in body:
        image = int(row[0][:4])
        out["images"].append({"id": image, "image_name": row[0], "calls": calls[image], "replies": REPLIES[(dim, image)][: len(calls[image])],
                              "averages": dict(zip(header[-n_avg:], map(float, row[-n_avg:])))})
    return out, patches


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("repo", type=Path, help="checkout of KaiyueSun98/T2I-ReasonBench")
    parser.add_argument("out", type=Path)
    parser.add_argument("--commit", default=None, help="the checkout's commit (default: git rev-parse HEAD in it)")
    args = parser.parse_args()
    commit = args.commit or subprocess.run(["git", "-C", str(args.repo), "rev-parse", "HEAD"], capture_output=True, check=False,
                                           text=True).stdout.strip()
    result = {"source": {"repository": "KaiyueSun98/T2I-ReasonBench", "commit": commit or "unknown"},
              "fixture": "tests/data/t2i_reasonbench_fixture", "patches": [], "dimensions": {}}
    with tempfile.TemporaryDirectory() as tmp:
        try:  # the released entity script as is
            record_dimension(args.repo, "entity", Path(tmp) / "unpatched", fix=False)
            result["unpatched_entity_error"] = None
        except Exception as exc:  # noqa: BLE001 - recorded, whatever it is
            result["unpatched_entity_error"] = f"{type(exc).__name__}: {exc}"
        for dim in DIMENSIONS:
            result["dimensions"][dim], patches = record_dimension(args.repo, dim, Path(tmp))
            result["patches"] += patches
    args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
