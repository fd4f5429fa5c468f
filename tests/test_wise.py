"""WISE against lmms-eval 0.7.3's ``tasks/WISE/utils.py`` (loaded by file path; its ``_call_judge`` replaced by the
same scripted replies our judge gets from a local fake server): prompts, judge messages, reply parsing, per-image
scores and statuses, category and overall aggregates.  Then the task through ``omnieval run`` with omnivideo-tiny
and with ``predictions`` on the bundled fixture (the official ``WISE_legacy/data`` layout), think on and off.
"""
from __future__ import annotations

import base64
import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest
from judge_fixtures import FakeJudge as FakeServer
from judge_fixtures import ok

from omnieval.cli import main
from omnieval.config import load_task_file
from omnieval.errors import ConfigError
from omnieval.media import read_image, write_image
from omnieval.metrics import wise
from omnieval.metrics.base import MetricInput
from omnieval.planning import render_prompt
from omnieval.tasks import load_docs

REPO = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).resolve().parent / "data" / "wise_fixture"

#: scripted judge replies per prompt_id, in call order (several where the first replies do not parse)
REPLIES = {
    1: ["Consistency: 2\nRealism: 1\nAesthetic Quality: 1"],
    2: ["**Consistency**: 1\n**Realism**: 2\n**Aesthetic Quality**: 0"],
    401: ["I cannot tell.", "Consistency 1, Realism: 1", "2\n1\n1"],  # two unusable replies, then bare digits
    568: ["nothing", "still nothing", "no scores at all"],  # never parses: zeros, parse_failed
    701: ["consistency: 10\nrealism: 2\nAESTHETIC QUALITY: 2\nConsistency: 0"],  # one digit; the last label wins
    801: ["Consistency：2\nRealism: 2\nAesthetic Quality: 2", "Consistency: 2\nRealism: 2\nAesthetic Quality: 2"],
    901: ["Consistency: 1\nRealism: 0\nAesthetic Quality: 2\nConsistency: 2"],
}
CORPUS = [r for replies in REPLIES.values() for r in replies] + [
    "", "Consistency:2 Realism:2", "0\n1", " 2 \n 0 \n 1 \n 2 ", "Aesthetic Quality - 2", "**Realism** 1", "3\n1\n1",
    "Consistency: 7\nRealism: 9\nAesthetic Quality: 1"]


def load_lmms_wise():
    pytest.importorskip("loguru")
    spec = importlib.util.find_spec("lmms_eval")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("lmms-eval not installed (pip install --no-deps lmms-eval)")
    path = Path(next(iter(spec.submodule_search_locations))) / "tasks" / "WISE" / "utils.py"
    module_spec = importlib.util.spec_from_file_location("lmms_wise_utils", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def _pid_of(messages) -> int:
    text = messages[-1]["content"][0]["text"]
    prompt = re.search(r'PROMPT: "(.*)"\nEXPLANATION', text, re.DOTALL).group(1)
    return next(int(d["prompt_id"]) for d in _docs() if d["Prompt"] == prompt)


def _docs() -> list[dict]:
    cfg = load_task_file(REPO / "tasks" / "wise" / "wise.yaml")[0]
    return [dict(d.fields) for d in load_docs(cfg, str(FIXTURE))]


def _judge_server():
    calls: dict[int, int] = {}

    def respond(payload, index):
        pid = _pid_of(payload["messages"])
        n = calls.get(pid, 0)
        calls[pid] = n + 1
        return ok(REPLIES[pid][min(n, len(REPLIES[pid]) - 1)], model="fake-gpt-4o")

    return FakeServer(respond)


def _image(pid: int) -> np.ndarray:
    return np.random.default_rng(pid).integers(0, 256, (12, 16, 3), dtype=np.uint8)


def test_docs_prompts_and_messages_equal_lmms_eval(tmp_path):
    ref = load_lmms_wise()
    cfg = load_task_file(REPO / "tasks" / "wise" / "wise.yaml")[0]
    docs = load_docs(cfg, str(FIXTURE))
    assert [d.id for d in docs] == ["1", "2", "401", "568", "701", "801", "901"]
    for doc in docs:
        fields = {k: v for k, v in doc.fields.items() if k != "__media_root__"}
        assert render_prompt(cfg, doc) == ref.wise_doc_to_text(fields, {"pre_prompt": "", "post_prompt": ""})
        png = tmp_path / f"{doc.id}.png"
        write_image(_image(int(doc.id)), png)
        ours = wise.judge_messages(fields, (png.read_bytes()))
        assert ours == ref._build_evaluation_messages(fields, ref._encode_image(str(png)))
        assert wise.category(doc.id) == ref._category_from_prompt_id(int(doc.id))
    assert render_prompt(cfg, docs[0]) == docs[0].fields["Prompt"].strip() != docs[0].fields["Prompt"]
    for text in CORPUS:
        assert wise.parse_scores(text) == ref._extract_scores(text), text


def test_scores_and_aggregates_equal_lmms_eval(tmp_path, monkeypatch):
    ref = load_lmms_wise()
    docs = _docs()
    # lmms-eval, its judge call replaced by the scripted replies
    calls: dict[int, int] = {}

    def fake_call(messages):
        pid = _pid_of(messages)
        n = calls.get(pid, 0)
        calls[pid] = n + 1
        return REPLIES[pid][min(n, len(REPLIES[pid]) - 1)]

    monkeypatch.setattr(ref, "_call_judge", fake_call)
    per_doc = []
    for doc in docs:
        png = tmp_path / f"{doc['prompt_id']}.png"
        write_image(_image(doc["prompt_id"]), png)
        per_doc.append(ref.wise_process_results(doc, [json.dumps({"images": [str(png)]})]))
    # omnieval, the same replies from a local OpenAI-compatible server
    with _judge_server() as server:
        metric = wise.Wise(base_url=server.url, api_key_env="", backoff_s=0.0)
        inputs = [MetricInput(item_id=str(d["prompt_id"]), output=read_image(tmp_path / f"{d['prompt_id']}.png"), doc=d)
                  for d in docs]
        contributions = metric.contributions(inputs)
    assert server.payloads[0]["max_tokens"] == 128 and server.payloads[0]["temperature"] == 0.0
    assert server.payloads[0]["model"] == "gpt-4o-2024-05-13"
    assert sum(calls.values()) == len(server.payloads) == 1 + 1 + 3 + 3 + 1 + 2 + 1  # parse retries: same requests
    for contribution, result in zip(contributions, per_doc):
        entry = result["WISE_overall_wiscore"]
        assert contribution["status"] == entry["status"]
        assert contribution["category"] == entry["category"]
        for key in ("consistency", "realism", "aesthetic_quality"):
            assert contribution[key] == entry[key]
        assert contribution["wiscore_item"] == entry["score"]
        metric.fold(contribution)
    values = metric.compute()
    for cat in wise.WEIGHTS:
        expected = getattr(ref, f"wise_aggregate_{cat}")([r[ref.CATEGORY_METRICS[cat]] for r in per_doc])
        assert values[f"wiscore_{cat}"] == pytest.approx(expected, abs=1e-12)
    assert values["wiscore"] == pytest.approx(ref.wise_aggregate_overall_wiscore([r["WISE_overall_wiscore"] for r in per_doc]), abs=1e-12)
    assert values["failed"] == 1.0 and values["wiscore"] > 0
    # a subset with categories missing: lmms-eval renormalises the weights over the categories present
    subset = [c for c in contributions if c["category"] in ("culture", "physics")]
    part = metric.fresh()
    for c in subset:
        part.fold(c)
    dicts = [r["WISE_overall_wiscore"] for r in per_doc if r["WISE_overall_wiscore"]["category"] in ("culture", "physics")]
    assert part.compute()["wiscore"] == pytest.approx(ref.wise_aggregate_overall_wiscore(dicts), abs=1e-12)
    assert set(part.compute()) == {"wiscore", "wiscore_culture", "wiscore_physics", "consistency", "realism",
                                   "aesthetic_quality", "failed"}


def test_transport_failure_is_retried_next_run(monkeypatch):
    from omnieval.metrics.base import RETRY

    with FakeServer(lambda p, i: (503, {"error": "overloaded"}, {})) as server:
        metric = wise.Wise(base_url=server.url, api_key_env="", backoff_s=0.0, max_attempts=2)
        (c,) = metric.contributions([MetricInput(item_id="x", output=_image(1), doc=_docs()[0])])
    assert RETRY in c and c["failed"] == 1.0 and "consistency" not in c


def _tiny_task(tmp_path: Path, url: str) -> Path:
    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "wise_tiny.yaml").write_text(
        f"include: {REPO / 'tasks' / 'wise' / 'wise.yaml'}\ntask: wise_tiny\ndataset: {{path: {FIXTURE}}}\n"
        "generation: {height: 32, width: 32, num_inference_steps: 2}\n"
        f"metrics:\n  - name: wise\n    options: {{base_url: '{url}', api_key_env: '', backoff_s: 0.0}}\n")
    return folder


@pytest.mark.slow
def test_wise_task_runs_with_omnivideo_tiny_and_predictions(tmp_path):
    with _judge_server() as server:
        tasks = _tiny_task(tmp_path, server.url)
        out = tmp_path / "out"
        assert main(["run", "--tasks", "wise_tiny", "--include_path", str(tasks), "--output_path", str(out), "--think", "both"]) == 0
        results = json.loads((out / "results.json").read_text())
        for key in ("wise_tiny", "wise_tiny@think"):
            r = results["results"][key]
            assert set(wise.WEIGHTS) <= {k.removeprefix("wiscore_") for k in r}
            assert 0 < r["wiscore"]["value"] <= 1 and r["failed"]["value"] == 1.0
        assert "wiscore" in results["ablations"]["wise_tiny"]
        # predictions: the same images named <prompt_id>.png (WISE's IMAGE_DIR layout) through a manifest
        pred = tmp_path / "pred"
        pred.mkdir()
        lines = []
        for d in _docs():
            write_image(_image(d["prompt_id"]), pred / f"{d['prompt_id']}.png")
            lines.append({"doc_id": str(d["prompt_id"]), "file": f"{d['prompt_id']}.png"})
        (pred / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
        out2 = tmp_path / "out2"
        assert main(["run", "--model", "predictions", "--model_args", f"path={pred}", "--tasks", "wise_tiny",
                     "--include_path", str(tasks), "--output_path", str(out2)]) == 0
    r = json.loads((out2 / "results.json").read_text())["results"]["wise_tiny"]
    # expected from the scripted replies: per-category WiScores, weighted as lmms-eval
    items = {1: 0.85, 2: 0.55, 401: 0.85, 568: 0.0, 701: 0.3, 801: 1.0, 901: 0.8}
    cats = {c: np.mean([v for pid, v in items.items() if wise.category(pid) == c]) for c in wise.WEIGHTS}
    assert r["wiscore_culture"]["value"] == pytest.approx(0.7)
    assert r["wiscore"]["value"] == pytest.approx(sum(wise.WEIGHTS[c] * cats[c] for c in cats))


def test_missing_wise_data_is_one_line(tmp_path):
    cfg = load_task_file(REPO / "tasks" / "wise" / "wise.yaml")[0]
    with pytest.raises(ConfigError) as info:
        load_docs(cfg)  # offline: the hub dataset is not cached here
    assert "\n" not in str(info.value) and "huggingface-cli download --repo-type dataset Yuwei-Niu/WISE" in str(info.value)
    with pytest.raises(ConfigError, match="no WISE prompts at .*nowhere .*huggingface-cli download"):
        load_docs(cfg, str(tmp_path / "nowhere"))
    (tmp_path / "cultural_common_sense.json").write_text("[]")
    with pytest.raises(ConfigError, match="lacks spatio-temporal_reasoning.json, natural_science.json"):
        load_docs(cfg, str(tmp_path))


def test_data_url_is_the_png():
    image = _image(3)
    part = wise.judge_messages({"Prompt": "p"}, wise.png_bytes(image))[1]["content"][1]
    data = base64.b64decode(part["image_url"]["url"].split(",", 1)[1])
    import io

    from PIL import Image

    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), image)
