"""T2I-ReasonBench against a recording of its released ``evaluation/Qwen2.5-VL/eval_<dimension>.py`` scripts
(``tests/data/t2i_reasonbench_recording.json``, made by ``tests/reference/record_t2i_reasonbench.py`` on the bundled
fixture in the release's layout, with scripted judge replies): the conversation sent per image (texts and turn
structure; the release passes the image as a file path, omnieval as a PNG data URL), per-image averages (exact) and
the per-dimension summaries the scripts print (2 decimals).  Then the tasks through ``omnieval run`` with
``predictions`` and omnivideo-tiny, judged by a local fake server that returns the recorded replies.
"""
from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
from judge_fixtures import FakeJudge as FakeServer
from judge_fixtures import ok

from omnieval.cli import main
from omnieval.config import load_task_file
from omnieval.errors import ConfigError
from omnieval.media import write_image
from omnieval.metrics import t2i_reasonbench as t2ir
from omnieval.metrics.visual_judge import png_bytes
from omnieval.tasks import load_docs

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
FIXTURE = DATA / "t2i_reasonbench_fixture"
RECORDING = json.loads((DATA / "t2i_reasonbench_recording.json").read_text())


def _docs(dims=None) -> dict[str, dict]:
    cfg = load_task_file(REPO / "tasks" / "t2i_reasonbench" / "t2i_reasonbench.yaml")[0]
    docs = load_docs(cfg, str(FIXTURE))
    return {d.id: dict(d.fields) for d in docs if dims is None or d.fields["dimension"] in dims}


def _image(dim: str, num: int) -> np.ndarray:
    return np.full((8, 8, 3), 40 * num + 7 * list(t2ir.GROUPS).index(dim), np.uint8)


def _as_release(messages: list[dict]) -> list[dict]:
    """Our messages in the release's form: an image_url part becomes {"type": "image", "image": <name>}."""
    out = []
    for m in messages:
        content = m["content"]
        if isinstance(content, list):
            content = [{"type": "image", "image": "<image>"} if p["type"] == "image_url" else p for p in content]
        out.append({"role": m["role"], "content": content})
    return out


def _release_plain(messages: list[dict]) -> list[dict]:
    return [{"role": m["role"], "content": [dict(p, image="<image>") if p.get("type") == "image" else p for p in m["content"]]
             if isinstance(m["content"], list) else m["content"]} for m in messages]


def test_recording_provenance():
    assert RECORDING["source"]["commit"] == "efc1d206901b1be71688039a45c3ad8dec01a084"
    assert RECORDING["unpatched_entity_error"].startswith("UnboundLocalError")  # the release's entity script as is
    assert len(RECORDING["patches"]) == 1 and "score_entity" in RECORDING["patches"][0]


def test_docs_join_the_release_files():
    docs = _docs()
    assert list(docs) == [f"{d}_{i:04d}" for d in t2ir.GROUPS for i in (1, 2)]
    d = docs["idiom_0002"]
    assert d["prompt"].endswith("coffee.") and d["qs_prompt"].endswith("coffee")  # the prompt file wins; qs kept apart
    assert set(docs["entity_0001"]) >= {"entity_evaluation", "other_details_evaluation", "quality_evaluation"}
    assert docs["scientific_0002"]["quality_evaluation"] == {"q1": "Is the texture detailed?", "c1": "1: Yes; 0.5: Somewhat; 0: No"}


@pytest.mark.parametrize("dim", list(t2ir.GROUPS))
def test_conversation_and_scores_equal_the_release(dim):
    docs = _docs([dim])
    rec = RECORDING["dimensions"][dim]
    accuracy, quality = [], []
    for image in rec["images"]:
        doc = docs[f"{dim}_{image['id']:04d}"]
        png = png_bytes(_image(dim, image["id"]))
        replies = image["replies"]
        accuracy_groups, quality_group = t2ir.GROUPS[dim]
        keys = [k for k, _ in accuracy_groups] + [quality_group]
        ours = [t2ir.describe_messages(png)] + [t2ir.group_messages(png, replies[0], doc[k]) for k in keys]
        assert len(ours) == len(image["calls"])
        for mine, theirs in zip(ours, image["calls"]):
            assert _as_release(mine) == _release_plain(theirs)
        # the criteria dict reaches the judge as Python's str(dict) of the file's dict, key order kept
        assert str(doc[keys[0]]) in image["calls"][1][-1]["content"][0]["text"]
        assert ast.literal_eval(str(doc[keys[0]])) == doc[keys[0]]
        means = {k: t2ir.parse_group(r) for k, r in zip(keys, replies[1:])}
        acc, qual = t2ir.image_scores(dim, means)
        expected = list(image["averages"].values())
        if dim in ("idiom", "textual_image"):
            assert [acc, qual] == expected  # exact: same floats as the script's CSV
        else:
            assert [means[keys[0]], means[keys[1]], qual] == expected
            assert acc == 0.7 * expected[0] + 0.3 * expected[1]
        accuracy.append(acc)
        quality.append(qual)
    assert round(sum(accuracy) / len(accuracy) * 100, 2) == rec["summary"]["accuracy"]
    assert round(sum(quality) / len(quality) * 100, 2) == rec["summary"]["quality"]


def test_unusable_replies_are_failures_not_crashes():
    assert t2ir.parse_group('no json here') is None
    assert t2ir.parse_group('{"reason": "x", "score": []}') is None
    assert t2ir.parse_group('{"reason": ["x"]}') is None
    assert t2ir.parse_group('{"reason": ["a {b}"], "score": [1]}') is None  # the first "}" ends the object, as released
    assert t2ir.parse_group('{"score": ["1", 0.5]} {"score": [0]}') == 0.75


def _server(images: dict[bytes, tuple[str, int]] | None = None):
    """Replies from the recording: a description by image (or a generic one), group replies by the criteria text."""
    by_criteria = {}
    for dim, rec in RECORDING["dimensions"].items():
        docs = _docs([dim])
        accuracy_groups, quality_group = t2ir.GROUPS[dim]
        keys = [k for k, _ in accuracy_groups] + [quality_group]
        for image in rec["images"]:
            doc = docs[f"{dim}_{image['id']:04d}"]
            for k, reply in zip(keys, image["replies"][1:]):
                by_criteria[t2ir.group_question(doc[k])] = reply
    described = {f"{d}/{i}": r["replies"][0] for d, rec in RECORDING["dimensions"].items() for r in rec["images"] for i in [r["id"]]}

    def respond(payload, index):
        messages = payload["messages"]
        if len(messages) == 1:
            url = messages[0]["content"][0]["image_url"]["url"]
            key = (images or {}).get(url)
            return ok(described[f"{key[0]}/{key[1]}"] if key else "An image.")
        return ok(by_criteria[messages[-1]["content"][0]["text"]])

    return FakeServer(respond)


def _tasks(tmp_path: Path, url: str) -> Path:
    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "t2ir_tiny.yaml").write_text(
        f"include: {REPO / 'tasks' / 't2i_reasonbench' / 't2i_reasonbench.yaml'}\ntask: t2ir_tiny\n"
        f"dataset: {{path: {FIXTURE}}}\ngeneration: {{height: 32, width: 32, num_inference_steps: 2}}\n"
        f"metrics:\n  - name: t2i_reasonbench\n    options: {{base_url: '{url}', backoff_s: 0.0}}\n")
    return folder


def test_task_through_omnieval_run(tmp_path):
    from omnieval.judge import image_part

    pred = tmp_path / "pred"
    pred.mkdir()
    lines, images = [], {}
    for dim in t2ir.GROUPS:
        (pred / dim).mkdir()
        for num in (1, 2):
            write_image(_image(dim, num), pred / dim / f"{num:04d}.png")  # the release's <dimension>/<id>.png layout
            lines.append({"doc_id": f"{dim}_{num:04d}", "file": f"{dim}/{num:04d}.png"})
            images[image_part(_image(dim, num))["image_url"]["url"]] = (dim, num)
    (pred / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    with _server(images) as server:
        tasks = _tasks(tmp_path, server.url)
        out = tmp_path / "pred_out"
        assert main(["run", "--model", "predictions", "--model_args", f"path={pred}", "--tasks", "t2ir_tiny",
                     "--include_path", str(tasks), "--output_path", str(out)]) == 0
        # the requests are the recorded conversations (image as a data URL)
        first = server.payloads[:4]
        assert first[0]["max_tokens"] == 1000 and first[0]["model"] == "Qwen/Qwen2.5-VL-72B-Instruct"
        r = json.loads((out / "results.json").read_text())["results"]["t2ir_tiny"]
        for dim, rec in RECORDING["dimensions"].items():
            assert round(r[f"accuracy_{dim}"]["value"], 2) == rec["summary"]["accuracy"]
            assert round(r[f"quality_{dim}"]["value"], 2) == rec["summary"]["quality"]
        overall = np.mean([rec["summary"]["accuracy"] for rec in RECORDING["dimensions"].values()])
        assert r["accuracy"]["value"] == pytest.approx(overall, abs=0.01) and r["failed"]["value"] == 0
        # omnivideo-tiny, think off and on: the same judge replies, so the same scores in both modes
        out2 = tmp_path / "tiny_out"
        assert main(["run", "--tasks", "t2ir_tiny", "--include_path", str(tasks), "--output_path", str(out2), "--think", "both"]) == 0
    data = json.loads((out2 / "results.json").read_text())
    for key in ("t2ir_tiny", "t2ir_tiny@think"):
        assert data["results"][key]["accuracy_idiom"]["value"] == pytest.approx(r["accuracy_idiom"]["value"])
    assert data["ablations"]["t2ir_tiny"]["accuracy"]["delta"] == pytest.approx(0.0)
    from omnieval.leaderboard.render import render_boards

    render_boards([out2], tmp_path / "board")  # the think ablation table lists the task's values
    ablations = (tmp_path / "board" / "ablations.md").read_text()
    assert "| t2ir_tiny | accuracy |" in ablations and "| t2ir_tiny | accuracy_scientific |" in ablations


def test_missing_release_is_one_line(monkeypatch, tmp_path):
    cfg = load_task_file(REPO / "tasks" / "t2i_reasonbench" / "t2i_reasonbench_idiom.yaml")[0]
    monkeypatch.delenv("T2I_REASONBENCH_DIR", raising=False)
    with pytest.raises(ConfigError) as info:
        load_docs(cfg)
    assert "\n" not in str(info.value) and "github.com/KaiyueSun98/T2I-ReasonBench" in str(info.value)
    monkeypatch.setenv("T2I_REASONBENCH_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match="idiom_interpretation.json not found"):
        load_docs(cfg)
    monkeypatch.setenv("T2I_REASONBENCH_DIR", str(FIXTURE))
    assert len(load_docs(cfg)) == 2
