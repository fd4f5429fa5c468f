"""GEdit-Bench (VIEScore) and ImgEdit-Bench through the judge client, against lmms-eval 0.7.3's own task functions.

The same docs (bundled fixtures, loaded by ``datasets`` for lmms-eval as for omnieval), the same edited images and
the same judge replies: lmms-eval's ``openai`` client is a stub whose ``create`` answers with the replies a fake
OpenAI-compatible server on 127.0.0.1 gives omnieval.  Compared exactly: the requests (model, messages with their
PNG data URLs, temperature, max_tokens), per-item scores and the aggregated values (1e-9).
"""
from __future__ import annotations

import base64
import importlib.util
import io
import json
import sys
import types
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import editing_fixtures as F
import numpy as np
import pytest
from judge_fixtures import FakeJudge, ok
from PIL import Image

from omnieval.cli import main
from omnieval.media import write_image
from omnieval.metrics import edit_judge as EJ
from omnieval.tasks import REPO_TASKS_DIR, load_docs, resolve_tasks

FIXTURES = REPO_TASKS_DIR / "editing" / "fixtures"
JUDGE_MODEL = "judge-m"


def import_lmms(monkeypatch, respond, calls):
    """lmms-eval's gedit_bench / imgedit task modules, importable offline (bare packages, an ``openai`` stub)."""
    class Completions:
        def create(self, **kw):
            calls.append(kw)
            return SimpleNamespace(choices=[SimpleNamespace(message=SimpleNamespace(content=respond(kw)))])

    class OpenAI:
        def __init__(self, **kw):
            self.chat = SimpleNamespace(completions=Completions())

    stub = types.ModuleType("openai")
    stub.OpenAI = OpenAI
    monkeypatch.setitem(sys.modules, "openai", stub)
    root = Path(importlib.util.find_spec("lmms_eval").submodule_search_locations[0])
    for name, path in [("lmms_eval", root), ("lmms_eval.tasks", root / "tasks"),
                       ("lmms_eval.tasks.gedit_bench", root / "tasks/gedit_bench"), ("lmms_eval.tasks.imgedit", root / "tasks/imgedit")]:
        if name not in sys.modules or not hasattr(sys.modules[name], "__path__"):
            module = types.ModuleType(name)
            module.__path__ = [str(path)]
            monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setenv("VIESCORE_API_KEY", "x")
    monkeypatch.setenv("VIESCORE_MODEL_NAME", JUDGE_MODEL)
    import lmms_eval.tasks.gedit_bench.utils as G
    import lmms_eval.tasks.imgedit.utils as I

    monkeypatch.setattr(I, "IMGEDIT_API_KEY", "x")
    monkeypatch.setattr(I, "IMGEDIT_MODEL_NAME", JUDGE_MODEL)
    monkeypatch.setattr(I, "_openai_client", None)
    monkeypatch.setattr(I, "OpenAI", OpenAI)  # bound at its first import (maybe by an earlier test's stub)
    return G, I


def last_image_value(payload) -> int:
    parts = [p for p in payload["messages"][0]["content"] if p["type"] == "image_url"]
    data = base64.b64decode(parts[-1]["image_url"]["url"].split(",", 1)[1])
    return int(np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))[0, 0, 0])


def responder(script: dict, value_to_key: dict):
    """Replies by (kind, doc key, n-th time asked): kind SC (two images) / PQ (one) / IE (ImgEdit)."""
    counts: Counter = Counter()

    def respond(payload) -> str:
        content = payload["messages"][0]["content"]
        n_images = sum(p["type"] == "image_url" for p in content)
        kind = "IE" if content[0]["type"] == "text" else ("SC" if n_images == 2 else "PQ")
        key = (kind, value_to_key[last_image_value(payload)])
        replies = script[key]
        reply = replies[min(counts[key], len(replies) - 1)]
        counts[key] += 1
        return reply
    return respond


def predictions(folder: Path, docs, task: str) -> dict[str, Path]:
    """Constant-colour edited images (the value identifies the doc in the judge's request), and a manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    paths, lines = {}, []
    for i, key in enumerate(docs):
        paths[key] = folder / f"{key}.png"
        write_image(np.full((24 + 8 * i, 32, 3), 10 + 50 * i, np.uint8), paths[key])
        lines.append(json.dumps({"task": task, "doc_id": key, "file": f"{key}.png"}))
    (folder / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return paths


def run_ours(tmp_path, task_file: Path, task: str, judge: FakeJudge, pred: Path, fixture: Path) -> tuple[dict, dict]:
    def swap(name, options):
        return dict(options, base_url=judge.url, model=JUDGE_MODEL, api_key_env="", backoff_s=0.0, max_attempts=1)
    name = F.tiny_task_variant(task_file, task, tmp_path / "tasks", option_swaps=swap)
    manifest = (pred / "manifest.jsonl").read_text().replace(f'"task": "{task}"', f'"task": "{name}"')
    (pred / "manifest.jsonl").write_text(manifest)
    out = tmp_path / "out"
    assert main(["run", "--model", "predictions", "--model_args", f"path={pred}", "--tasks", name, "--output_path", str(out),
                 "--include_path", str(tmp_path / "tasks"), "--dataset", f"{name}={fixture}", "--log_samples"]) == 0
    results = json.loads((out / "results.json").read_text())["results"][name]
    samples = [json.loads(x) for x in (out / "samples" / f"{name}.scored.jsonl").read_text().splitlines()]
    return results, {s["doc_id"]: s["scores"] for s in samples}


def _request(kw: dict) -> str:
    return json.dumps({k: kw[k] for k in ("model", "messages", "temperature", "max_tokens")}, sort_keys=True)


GEDIT_SCRIPT = {
    ("SC", "g1"): ['||V^=^V||{"score": [7, 9], "reasoning": "ok"}||V^=^V||'],
    ("PQ", "g1"): ['{"score" : [8, 6], "reasoning": "fine"}'],
    ("SC", "g2"): ["I cannot tell", "[6, 4]"],           # unreadable, then (retry round) no JSON -> guess 10
    ("PQ", "g2"): ["7", "8"],                            # readable, but re-asked with SC; retry round -> guess 1
    ("SC", "g3"): ['{"score": 5, "reasoning": "scalar"}'],
    ("PQ", "g3"): ["{reason: 5, note: ok}"],             # fix_json path without "score": lmms-eval scores 0, 0, 0
    ("SC", "g1cn"): ['{"score": [3, 4]}'],
    ("PQ", "g1cn"): ['{"score": [2]}'],
}


def test_gedit_bench_matches_lmms_eval(tmp_path, monkeypatch):
    import datasets

    fixture = FIXTURES / "gedit_bench"
    ref_docs = list(datasets.load_dataset(str(fixture), split="train"))  # PIL images, as lmms-eval gets them
    keys = ["g1", "g2", "g3", "g1cn"]
    pred = predictions(tmp_path / "pred", keys, "gedit_bench_en")
    value_to_key = {10 + 50 * i: k for i, k in enumerate(keys)}
    calls: list[dict] = []
    G, _ = import_lmms(monkeypatch, responder(GEDIT_SCRIPT, value_to_key), calls)
    ref = {}
    for doc, key in zip(ref_docs, keys):
        ref[key] = G.gedit_bench_process_results(doc, [json.dumps({"text": "", "images": [str(pred[key])]})])

    judge_respond = responder(GEDIT_SCRIPT, value_to_key)
    with FakeJudge(lambda payload, index: ok(judge_respond(payload))) as judge:
        results, per_item = run_ours(tmp_path, REPO_TASKS_DIR / "editing" / "gedit_bench.yaml", "gedit_bench_en", judge, tmp_path / "pred", fixture)
        payloads = judge.payloads
    en_calls = [c for c in calls if last_image_value(c) != value_to_key_inv(value_to_key, "g1cn")]
    assert sorted(map(_request, payloads)) == sorted(map(_request, en_calls))  # identical requests, incl. the re-asks
    assert len(payloads) == 8  # g1: 2, g2: 4 (both re-asked), g3: 2 (its zeros need no re-ask)
    for key in ("g1", "g2", "g3"):
        ours = per_item[key]["viescore"]
        for ours_name, ref_name in (("viescore_semantics", "semantics"), ("viescore_quality", "quality"), ("viescore_overall", "overall")):
            assert ours[ours_name] == pytest.approx(ref[key][f"gedit_bench_en_fullset_{ref_name}"]["score"], abs=1e-12), (key, ours_name)
    assert per_item["g2"]["viescore"]["viescore_semantics"] == 10 and per_item["g2"]["viescore"]["viescore_quality"] == 1
    assert per_item["g3"]["viescore"]["viescore_zeroed"] == 1.0
    for scope, label in (("fullset", "viescore"), ("intersection", "viescore_intersection")):
        for ref_name, ours_name in (("semantics", "viescore_semantics"), ("quality", "viescore_quality"), ("overall", "viescore_overall")):
            fn = getattr(G, f"gedit_bench_aggregate_en_{scope}_{ref_name}")
            expected = fn([r[f"gedit_bench_en_{scope}_{ref_name}"] for r in ref.values()])
            name = ours_name if label == "viescore" else f"{label}/{ours_name}"  # a name starting with its label is kept
            assert results[name]["value"] == pytest.approx(expected, abs=1e-9), (scope, ref_name)
    assert results["viescore_overall[task_type=subject-add]"]["value"] == pytest.approx(
        ref["g1"]["gedit_bench_en_fullset_overall"]["score"], abs=1e-12)


def value_to_key_inv(value_to_key: dict, key: str) -> int:
    return next(v for v, k in value_to_key.items() if k == key)


IMGEDIT_SCRIPT = {
    ("IE", "i1"): ["Prompt Compliance: 4\nVisual Naturalness: 3\nPhysical & Detail Integrity: 3"],
    ("IE", "i2"): ["Style Fidelity 5\nContent Preservation 4\nRendering Quality 2"],  # lines ending in digits
    ("IE", "i3"): ["I refuse to score this."],                                     # -> 0, 0, 0
}


def test_imgedit_matches_lmms_eval(tmp_path, monkeypatch):
    import datasets

    fixture = FIXTURES / "imgedit"
    ref_docs = list(datasets.load_dataset(str(fixture), split="test"))
    keys = ["i1", "i2", "i3"]
    pred = predictions(tmp_path / "pred", keys, "imgedit")
    value_to_key = {10 + 50 * i: k for i, k in enumerate(keys)}
    calls: list[dict] = []
    _, I = import_lmms(monkeypatch, responder(IMGEDIT_SCRIPT, value_to_key), calls)
    ref = {key: I.imgedit_process_results(doc, [json.dumps({"text": "", "images": [str(pred[key])]})])
           for doc, key in zip(ref_docs, keys)}
    judge_respond = responder(IMGEDIT_SCRIPT, value_to_key)
    with FakeJudge(lambda payload, index: ok(judge_respond(payload))) as judge:
        results, per_item = run_ours(tmp_path, REPO_TASKS_DIR / "editing" / "imgedit.yaml", "imgedit", judge, tmp_path / "pred", fixture)
        payloads = judge.payloads
    assert sorted(map(_request, payloads)) == sorted(map(_request, calls))
    for key in keys:
        for name in ("imgedit_score1", "imgedit_score2", "imgedit_score3", "imgedit_avg_score"):
            assert per_item[key]["imgedit_judge"][name] == pytest.approx(ref[key][name]["score"], abs=1e-12)
    for name in ("imgedit_score1", "imgedit_score2", "imgedit_score3"):
        assert results[name]["value"] == pytest.approx(I.imgedit_aggregate_score([r[name] for r in ref.values()]), abs=1e-9)
    assert results["imgedit_avg_score"]["value"] == pytest.approx(
        I.imgedit_aggregate_avg_score([r["imgedit_avg_score"] for r in ref.values()]), abs=1e-9)
    assert results["imgedit_avg_score[edit_type=style]"]["value"] == pytest.approx(ref["i2"]["imgedit_avg_score"]["score"])


def test_prompts_and_readers_equal_lmms_eval(monkeypatch):
    """Prompt strings, the reply readers on a corpus of replies (incl. the repair and guess paths), image sizing."""
    G, I = import_lmms(monkeypatch, lambda kw: "", [])
    from lmms_eval.tasks.gedit_bench.viescore import VIEScore
    from lmms_eval.tasks.gedit_bench.viescore.utils import mllm_output_to_dict
    from lmms_eval.tasks.imgedit.prompt import IMGEDIT_PROMPTS

    vie = VIEScore(task="tie")
    assert EJ.prompts()["viescore_tie"]["sc"] == vie.SC_prompt and EJ.prompts()["viescore_tie"]["pq"] == vie.PQ_prompt
    assert EJ.prompts()["imgedit"]["templates"] == IMGEDIT_PROMPTS
    corpus = ['||V^=^V||{"score": [1, 2]}||V^=^V||', '{"score": 4}', "[6, 0]", "[6,0]", "7", "11", "nothing",
              "{score: 3, reasoning: fine}", "{broken", '{"a": 1}', "x{score: 5}", "[1, 2, 3]", '{"score": [2, 3],\n"r": "a\nb"}',
              '||V^=^V||{"score": [1]}', '{"score": "high"}']
    import random
    for text in corpus:
        assert EJ.read_viescore(text) == mllm_output_to_dict(text, give_up_parsing=False), text
        random.seed(42)
        rng = random.Random(42)
        assert EJ.read_viescore(text, lambda rng=rng: rng.randint(0, 10)) == mllm_output_to_dict(text, give_up_parsing=True), text
    for text in ["A: 1\nB: 2\nC: 3", "x: 10 y: 4 z:2 w: 5", "1\n2\n3\n4", "4 stars", "", "Score: 3/5\nOther: 2\nLast: 1"]:
        assert EJ.read_imgedit(text) == I.parse_gpt_scores(text), text
    for ratio in (1.0, 4 / 3, 0.75, 16 / 9, 1 / 3):
        assert EJ.area_dimensions(512 * 512, ratio) == G.calculate_dimensions(512 * 512, ratio)[:2]


def test_missing_key_and_failures(tmp_path, monkeypatch):
    """No API key: one line at start; a judge outage is a retry, never a 0."""
    from omnieval.errors import ConfigError
    from omnieval.registry import get_metric

    monkeypatch.delenv("IMGEDIT_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="IMGEDIT_API_KEY"):
        get_metric("imgedit_judge")(api_key_env="IMGEDIT_API_KEY")
    fixture = FIXTURES / "imgedit"
    docs = load_docs(resolve_tasks(["imgedit"])[0], str(fixture))
    from omnieval.metrics.base import RETRY, MetricInput

    with FakeJudge(lambda payload, index: (503, {"error": "down"}, {})) as judge:
        metric = get_metric("imgedit_judge")(base_url=judge.url, api_key_env="", max_attempts=2, backoff_s=0.0)
        [c] = metric.contributions([MetricInput("x", np.zeros((8, 8, 3), np.uint8), doc=dict(docs[0].fields))])
    assert RETRY in c and c["judge_failed"] == 1.0 and "imgedit_avg_score" not in c


@pytest.mark.slow
def test_end_to_end_omnivideo_tiny_think_both(tmp_path):
    """Both judged tasks on their fixtures with omnivideo-tiny (think off/on) and a fake judge."""
    def respond(payload, index):
        first = payload["messages"][0]["content"][0]
        return ok("Prompt Compliance: 4\nVisual Naturalness: 3\nPhysical: 2" if first["type"] == "text" else '{"score": [6, 8]}')

    with FakeJudge(respond) as judge:
        def swap(name, options):
            return dict(options, base_url=judge.url, model=JUDGE_MODEL, api_key_env="")
        names = [F.tiny_task_variant(REPO_TASKS_DIR / "editing" / f"{f}.yaml", t, tmp_path / "tasks", option_swaps=swap,
                                     generation=F.TINY_GENERATION) for f, t in (("gedit_bench", "gedit_bench_en"), ("imgedit", "imgedit"))]
        out = tmp_path / "out"
        assert main(["run", "--model", "omnivideo-tiny", "--model_args", "route=false,think_max_new_tokens=4", "--tasks",
                     ",".join(names), "--think", "both", "--output_path", str(out), "--include_path", str(tmp_path / "tasks"),
                     "--dataset", f"{names[0]}={FIXTURES / 'gedit_bench'}", "--dataset", f"{names[1]}={FIXTURES / 'imgedit'}"]) == 0
    res = json.loads((out / "results.json").read_text())["results"]
    for think in ("", "@think"):
        assert res[names[0] + think]["viescore_semantics"]["value"] == 6.0 and res[names[0] + think]["viescore_semantics"]["n"] == 3
        assert res[names[1] + think]["imgedit_avg_score"]["value"] == pytest.approx(3.0)
