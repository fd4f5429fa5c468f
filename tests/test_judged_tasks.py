"""The judged open-ended video-QA tasks: loaders, task files, runs through ``omnieval run``, and parity.

* every task runs end to end on its bundled fixture (``tasks/understanding/fixtures/``, the official release
  layouts) with ``--model predictions`` and a fake OpenAI-compatible judge on 127.0.0.1 (``judge_fixtures``);
* the VILA scripts' judge prompts, reply reading and aggregates are compared with a recording of the scripts
  themselves (``tests/reference/record_vila_judges.py`` -> ``tests/data/vila_judges_reference.json``);
* ActivityNet-QA and the Video-ChatGPT benchmark are compared with lmms-eval 0.7.3's own task functions on the same
  docs, responses and judge replies (``slow``).
"""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
import types
from pathlib import Path

import pytest
import yaml
from judge_fixtures import FakeJudge, ok, predicted

from omnieval.cli import main
from omnieval.config import load_task_file
from omnieval.errors import ConfigError
from omnieval.judge.reviews import InvalidReply, parse_review
from omnieval.metrics.base import RETRY, MetricInput
from omnieval.planning import render_prompt
from omnieval.registry import get_metric
from omnieval.tasks import load_docs, resolve_tasks

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tasks" / "understanding" / "fixtures"
FOLDER = {"activitynetqa": "activitynetqa", "activitynetqa_vila": "activitynetqa", "msvd_qa": "msvd_qa",
          "msrvtt_qa": "msrvtt_qa", "tgif_qa": "tgif_qa", "videochatgpt_generic": "videochatgpt",
          "videochatgpt_temporal": "videochatgpt", "videochatgpt_consistency": "videochatgpt",
          "videochatgpt_generic_vila": "videochatgpt", "videochatgpt_temporal_vila": "videochatgpt",
          "videochatgpt_consistency_vila": "videochatgpt"}
RECORDING = json.loads((Path(__file__).parent / "data" / "vila_judges_reference.json").read_text())


@pytest.fixture(autouse=True)
def _judge_env(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
                "OMNIEVAL_JUDGE_MODEL", "OMNIEVAL_JUDGE_API_KEY_ENV", "MODEL_VERSION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")


def task_docs(task: str):
    cfg = resolve_tasks([task])[0]
    return cfg, load_docs(cfg, str(FIXTURES / FOLDER[task]))


# -- loaders --------------------------------------------------------------------------------------
def test_loaders_read_the_official_layouts():
    _, docs = task_docs("activitynetqa")
    assert [d.id for d in docs] == ["v_fixred_0", "v_fixred_1", "v_fixgreen_0", "v_fixgreen_1"]
    assert [d.fields["video"] for d in docs] == ["all_test/v_fixred.mp4"] * 2 + ["all_test/v_fixgreen.mkv"] * 2
    assert [d.fields["category"] for d in docs] == ["color", "yes_no", "motion", "other"]
    assert docs[0].fields["answer"] == "red" and docs[0].fields["question"] == "what color is the square"
    _, docs = task_docs("msvd_qa")
    assert [d.fields["video"] for d in docs] == ["videos/msvd_blue_clip.avi"] * 2 + ["videos/msvd_yellow_clip.mp4"]
    _, docs = task_docs("msrvtt_qa")
    assert docs[0].fields["video"] == "videos/all/video7010.mp4" and docs[2].fields["type"] == "where"
    _, docs = task_docs("tgif_qa")
    assert [d.id for d in docs] == ["v_tumblr_fixture_a_0", "v_tumblr_fixture_b_0", "v_tumblr_fixture_b_1"]
    _, docs = task_docs("videochatgpt_generic")
    assert [d.id for d in docs] == ["vcg_red_0", "vcg_red_1", "vcg_green_0"]  # occurrence index per video (VILA's keys)
    assert docs[0].fields["video"] == "Test_Videos/v_vcg_red.mp4" and docs[2].fields["video"] == "Test_Videos/vcg_green.mkv"
    _, docs = task_docs("videochatgpt_consistency")
    assert [(d.fields["Q1"][:9], d.fields["Q2"][:5]) for d in docs] == [("What colo", "Which"), ("Which way", "In wh")]


def _copy_layout(tmp_path: Path, folder: str) -> Path:
    import shutil

    dest = tmp_path / folder
    shutil.copytree(FIXTURES / folder, dest)
    return dest


def test_missing_or_inconsistent_data_is_one_line(tmp_path, monkeypatch):
    cfg = resolve_tasks(["msvd_qa"])[0]
    monkeypatch.delenv("MSVDQA_DIR", raising=False)
    with pytest.raises(ConfigError, match=r"needs \$MSVDQA_DIR, which is not set; download .*GPT_Zero_Shot_QA") as e:
        load_docs(cfg)
    assert "\n" not in str(e.value)
    monkeypatch.setenv("MSVDQA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match=r"test_q.json not found; download .* set \$MSVDQA_DIR to its MSVD_Zero_Shot_QA folder"):
        load_docs(cfg)

    root = _copy_layout(tmp_path, "msvd_qa")
    monkeypatch.setenv("MSVDQA_DIR", str(root))
    assert len(load_docs(cfg)) == 3
    answers = json.loads((root / "test_a.json").read_text())
    (root / "test_a.json").write_text(json.dumps(answers[:2]))
    with pytest.raises(ConfigError, match="has 3 entries but test_a.json has 2; they are joined by position"):
        load_docs(cfg)
    answers[1]["question_id"] = "7"
    (root / "test_a.json").write_text(json.dumps(answers))
    with pytest.raises(ConfigError, match=r"entry 1: question_id '1' in test_q.json but '7' in test_a.json"):
        load_docs(cfg)
    answers[1]["question_id"] = "1"
    (root / "test_a.json").write_text(json.dumps(answers))
    (root / "videos" / "msvd_blue_clip.avi").unlink()
    with pytest.raises(ConfigError, match=r"2 of 3 videos not found \(first: .*videos/msvd_blue_clip\.\* for question 0\)"):
        load_docs(cfg)
    skipping = dataclasses.replace(cfg, dataset=dataclasses.replace(cfg.dataset, options={"skip_missing_videos": True}))
    assert [d.id for d in load_docs(skipping)] == ["2"]


def test_task_files_state_the_reference_protocols():
    anet = {c.task: c for c in load_task_file(REPO / "tasks" / "understanding" / "activitynetqa.yaml")}
    lmms, vila = anet["activitynetqa"], anet["activitynetqa_vila"]
    assert (lmms.generation.max_new_tokens, lmms.generation.temperature) == (64, 0.0)
    assert (vila.generation.max_new_tokens, vila.generation.temperature, vila.generation.extra) == (1024, 0.2, {"do_sample": True})
    lo, vo = lmms.metrics[0].options, vila.metrics[0].options
    assert (lo["model"], lo["temperature"], lo["max_tokens"], lo["extract"]) == ("gpt-4o-2024-11-20", 0.0, 64, "brace")
    assert (vo["model"], vo["temperature"], vo["max_tokens"], vo["extract"]) == ("gpt-3.5-turbo", None, None, "whole")
    vcg = [c for c in load_task_file(REPO / "tasks" / "understanding" / "videochatgpt.yaml") if not c.task.endswith("_vila")]
    labels = [(c.task, m.result_label, m.options["template"]) for c in vcg for m in c.metrics]
    assert labels == [("videochatgpt_generic", "correctness", "vcg_correctness"),
                      ("videochatgpt_generic", "detail_orientation", "vcg_detail"),
                      ("videochatgpt_generic", "context", "vcg_context"),
                      ("videochatgpt_temporal", "temporal", "vcg_temporal"),
                      ("videochatgpt_consistency", "consistency", "vcg_consistency")]
    assert all(m.options["model"] == "gpt-4o-2024-11-20" and m.options["max_tokens"] == 64 for c in vcg for m in c.metrics)


def test_judge_model_comes_from_the_environment_and_is_hashed(monkeypatch):
    path = REPO / "tasks" / "understanding" / "msvd_qa.yaml"
    before = load_task_file(path)[0]
    monkeypatch.setenv("OMNIEVAL_JUDGE_MODEL", "Qwen/Qwen2.5-72B-Instruct")
    after = load_task_file(path)[0]
    assert after.metrics[0].options["model"] == "Qwen/Qwen2.5-72B-Instruct"
    assert after.metrics[0].options_hash() != before.metrics[0].options_hash()
    assert after.generation_hash() == before.generation_hash()  # the answers do not depend on the judge


# -- through `omnieval run` --------------------------------------------------------------------------
QA_REPLIES = {"a dog": "{'pred': 'yes', 'score': 5}", "a cat": "{'pred': 'no', 'score': 1}",
              "maybe": "{'pred': 'partially', 'score': 2}", "chatty": "Sure! {'pred': 'yes', 'score': 4}",
              "broken": "{'pred': 'yes', 'score': 9}"}
DIMENSIONS = {"factual accuracy": 1, "detail orientation": 2, "contextual understanding": 3,
              "temporal understanding": 4, "consistency of generative": 0}


def judge_reply(payload: dict, index: int):
    """yes/no prompts: by predicted answer; Video-ChatGPT prompts: (dimension + k) % 6 for the answer 'answer k'."""
    system = payload["messages"][0]["content"]
    if "determine if they match meaningfully" in system:
        return ok(QA_REPLIES[predicted(payload)])
    dim = next(v for key, v in DIMENSIONS.items() if key in system)
    label = "Predicted Answer to Question 1: " if dim == 0 else "Predicted Answer: "
    k = int(predicted(payload, label).split()[-1])
    return ok(f"{{'score': {(dim + k) % 6}}}")


def run_task(tmp_path: Path, task: str, responses: list, extra: list[str] = ()) -> tuple[int, dict]:
    cfg, docs = task_docs(task)
    samples = len(cfg.fields.prompts) or 1
    preds = tmp_path / f"preds_{task}"
    preds.mkdir(exist_ok=True)
    lines = [{"task": task, "doc_id": d.id, "sample_index": s, "response": responses[i] if samples == 1 else f"{responses[i]} {s}"}
             for i, d in enumerate(docs) for s in range(samples)]
    (preds / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = tmp_path / f"out_{task}"
    rc = main(["run", "--model", "predictions", "--model_args", f"path={preds}", "--tasks", task, "--dataset",
               f"{task}={FIXTURES / FOLDER[task]}", "--output_path", str(out), "--log_samples", *extra])
    return rc, json.loads((out / "results.json").read_text())["results"][task]


@pytest.mark.parametrize("task", ["activitynetqa", "activitynetqa_vila"])
def test_activitynetqa_through_omnieval_run(tmp_path, monkeypatch, task):
    with FakeJudge(judge_reply) as judge:
        monkeypatch.setenv("OMNIEVAL_JUDGE_URL", judge.url)
        rc, res = run_task(tmp_path, task, ["  a dog ", "a cat", "maybe", "chatty"])
    assert rc == 0
    payload = next(p for p in judge.payloads if "Question: what color is the square\n" in p["messages"][1]["content"])
    samples = [json.loads(line) for line in (tmp_path / f"out_{task}" / "samples" / f"{task}.jsonl").read_text().splitlines()]
    prompts = {s["doc_id"]: s["prompt"] for s in samples}
    if task == "activitynetqa":  # lmms-eval: capitalised question + "?" + post prompt; brace reading accepts "Sure! {...}"
        assert prompts["v_fixred_0"] == "What color is the square? Answer the question using a single word or phrase."
        assert (payload["model"], payload["temperature"], payload["max_tokens"]) == ("gpt-4o-2024-11-20", 0.0, 64)
        assert res["judge_score"]["value"] == pytest.approx((5 + 1 + 2 + 4) / 4) and res["judge_failed"]["value"] == 0
        assert res["judge_yes_rate"]["value"] == pytest.approx(100 * 2 / 3)
        assert res["judge_score[category=color]"]["value"] == 5 and res["judge_score[category=other]"]["value"] == 4
    else:  # VILA: bare question, whole-reply reading: "Sure! {...}" is a failure (and retried next run)
        assert prompts["v_fixred_0"] == "what color is the square"
        assert payload["model"] == "gpt-3.5-turbo" and "temperature" not in payload and "max_tokens" not in payload
        assert res["judge_score"]["value"] == pytest.approx((5 + 1 + 2) / 3) and res["judge_failed"]["value"] == 1
        assert res["judge_yes_rate"]["value"] == pytest.approx(50.0)
    assert "Predicted Answer: a dog\n" in payload["messages"][1]["content"]  # the response is stripped; the question is
    # the raw dataset question (what both references send the judge), not the rendered prompt


@pytest.mark.parametrize("task", ["msvd_qa", "msrvtt_qa", "tgif_qa"])
def test_vila_zero_shot_tasks_through_omnieval_run(tmp_path, monkeypatch, task):
    with FakeJudge(judge_reply) as judge:
        monkeypatch.setenv("OMNIEVAL_JUDGE_URL", judge.url)
        rc, res = run_task(tmp_path, task, ["a dog", "broken", "a cat"])
        assert rc == 0 and len(judge.payloads) == 3
        assert res["judge_score"]["value"] == pytest.approx(3.0) and res["judge_yes_rate"]["value"] == pytest.approx(50.0)
        assert res["judge_failed"]["value"] == 1 and res["judge_score"]["n"] == 3  # 9 on 0-5: a failure, not a score
        rc, _ = run_task(tmp_path, task, ["a dog", "broken", "a cat"])
        assert rc == 0 and len(judge.payloads) == 4  # the failed item (only) is judged again
    _, docs = task_docs(task)
    types_ = {str(d.fields["type"]) for d in docs}
    assert {k for k in res if k.startswith("judge_failed[")} == {f"judge_failed[type={t}]" for t in types_}


def test_videochatgpt_tasks_through_omnieval_run(tmp_path, monkeypatch):
    with FakeJudge(judge_reply) as judge:
        monkeypatch.setenv("OMNIEVAL_JUDGE_URL", judge.url)
        rc, generic = run_task(tmp_path, "videochatgpt_generic", ["answer 0", "answer 1", "answer 2"])
        assert rc == 0 and len(judge.payloads) == 9  # three dimensions per answer
        rc2, temporal = run_task(tmp_path, "videochatgpt_temporal", ["answer 3", "answer 1"])
        rc3, consistency = run_task(tmp_path, "videochatgpt_consistency", ["answer", "answer"])
    assert rc2 == rc3 == 0
    for label, dim in (("correctness", 1), ("detail_orientation", 2), ("context", 3)):
        assert generic[f"{label}/judge_score"]["value"] == pytest.approx(sum((dim + k) % 6 for k in range(3)) / 3)
        assert generic[f"{label}/judge_failed"]["value"] == 0
    assert temporal["judge_score"]["value"] == pytest.approx(((4 + 3) % 6 + (4 + 1) % 6) / 2)
    assert consistency["judge_score"]["value"] == 0.0 and consistency["judge_score"]["n"] == 2  # one judged pair per doc
    user = next(p["messages"][1]["content"] for p in judge.payloads if "Question 1: Which way" in p["messages"][1]["content"])
    assert "Question 1: Which way does the square move?\nQuestion 2: In what direction is the shape travelling?\n" in user
    assert "Predicted Answer to Question 1: answer 0\nPredicted Answer to Question 2: answer 1\n" in user
    with FakeJudge(judge_reply) as judge:  # the VILA variant: no decoding settings sent, Q1 twice (its script's bug)
        monkeypatch.setenv("OMNIEVAL_JUDGE_URL", judge.url)
        rc, vila = run_task(tmp_path, "videochatgpt_consistency_vila", ["answer", "answer"])
    assert rc == 0 and vila["judge_score"]["n"] == 2
    assert all(p["model"] == "gpt-3.5-turbo-0125" and set(p) == {"model", "messages"} for p in judge.payloads)
    assert any("Question 1: Which way does the square move?\nQuestion 2: Which way does the square move?\n"
               in p["messages"][1]["content"] for p in judge.payloads)
    samples = (tmp_path / "out_videochatgpt_consistency" / "samples" / "videochatgpt_consistency.jsonl").read_text()
    prompts = [(s["sample_index"], s["prompt"]) for s in map(json.loads, samples.splitlines()) if s["doc_id"] == "vcg_red_0"]
    assert sorted(prompts) == [(0, "What color is the square?"), (1, "Which color does the moving shape have?")]


# -- core pieces the tasks use ---------------------------------------------------------------------
def test_paired_prompts_samples_and_siblings(tmp_path):
    from omnieval import shards
    from omnieval.models.base import ModelIdentity
    from omnieval.planning import TaskPlan, plan_items

    cfg, docs = task_docs("videochatgpt_consistency")
    items = plan_items(cfg, docs, ModelIdentity("m", {}, "f"), ["off"], None)
    assert [(it.doc.id, it.sample_index, it.seed, it.prompt[:10]) for it in items] == [
        ("vcg_red_0", 0, 0, "What color"), ("vcg_red_0", 1, 1, "Which colo"),
        ("vcg_green_0", 0, 0, "Which way "), ("vcg_green_0", 1, 1, "In what di")]
    plan = TaskPlan(cfg, None, tuple(docs), tuple(items), cfg.metrics)
    assert [it.sample_index for it in plan.scored_items(cfg.metrics[0])] == [0, 0]
    assert [it.key for it in plan.siblings(items[0])] == [items[1].key]
    blocks = shards.blocks(plan, 1, together=plan.together())
    for rank in (0, 1):  # a doc's two answers stay on one rank
        mine = [it for block in shards.shard(blocks, rank, 2) for it in block]
        assert len({it.doc.id for it in mine}) == 1 and len(mine) == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: b\ncapability: understand\ndataset: {path: x.jsonl}\nfields: {prompts: [a, b]}\n"
                   "generation: {samples_per_prompt: 2}\n")
    with pytest.raises(ConfigError, match="fields.prompts: one sample per listed question"):
        load_task_file(bad)


def test_prompt_field_transforms():
    cfg, docs = task_docs("activitynetqa")
    assert render_prompt(cfg, docs[2]) == "Which way does the square move? Answer the question using a single word or phrase."
    assert "what WHAT".capitalize() == "What what"  # what lmms-eval's str.capitalize does to the rest of the question


def test_consistency_metric_needs_its_pair():
    metric = get_metric("judge_consistency")(base_url="http://127.0.0.1:9/v1", api_key_env="")
    item = MetricInput(item_id="x/1", output="a", reference="b", doc={"Q1": "q1", "Q2": "q2"}, sample_index=1, siblings={0: "c"})
    with pytest.raises(ConfigError, match="samples: \\[0\\]"):
        metric.contributions([item])
    item = MetricInput(item_id="x/0", output="a", reference="b", doc={"Q1": "q1", "Q2": "q2"}, sample_index=0, siblings={})
    with pytest.raises(Exception, match="sample 1"):
        metric.contributions([item])


# -- parity with the VILA scripts (recorded) --------------------------------------------------------
VILA_TASKS = {None: ("msvd_qa", None), "eval_benchmark_1_correctness.py": ("videochatgpt_generic_vila", "correctness"),
              "eval_benchmark_2_detailed_orientation.py": ("videochatgpt_generic_vila", "detail_orientation"),
              "eval_benchmark_3_context.py": ("videochatgpt_generic_vila", "context"),
              "eval_benchmark_4_temporal.py": ("videochatgpt_temporal_vila", "temporal"),
              "eval_benchmark_5_consistency.py": ("videochatgpt_consistency_vila", "consistency")}


def _vila_input(script: str | None, inp: dict) -> MetricInput:
    if script is None:
        return MetricInput(item_id="x", output=inp["pred"], reference=inp["answer"], doc={"question": inp["question"]})
    if "consistency" in script:
        return MetricInput(item_id="x", output=inp["pred1"], reference=inp["A"], doc={"Q1": inp["Q1"], "Q2": inp["Q2"]},
                           sample_index=0, siblings={1: inp["pred2"]})
    return MetricInput(item_id="x", output=inp["pred"], reference=inp["A"], doc={"Q": inp["Q"]})


def _runs():
    yield None, RECORDING["eval_video_qa"]
    yield from RECORDING["benchmarks"].items()


@pytest.mark.parametrize("script,sets", list(_runs()), ids=lambda v: v if isinstance(v, str) else "")
def test_vila_tasks_send_the_vila_scripts_requests(script, sets):
    """The ``*_vila`` tasks' judge metrics build exactly the request each VILA script sent (model, messages, and no
    temperature / max_tokens), including eval_benchmark_5's Q1-twice prompt (``question_keys: [Q1, Q1]``)."""
    task, label = VILA_TASKS[script]
    metric = _metric(task, label, "http://127.0.0.1:9/v1")
    for run in sets.values():
        assert run["call_kwargs"] == {}
        for item in run["items"]:
            sent = [{"role": "system", "content": run["system"]}, {"role": "user", "content": item["user_head"] + run["user_tail"]}]
            messages = metric.template.messages(**metric.fields(_vila_input(script, item["input"])))
            assert metric.client.payload(messages) == {"model": run["model"], "messages": sent}


def test_vcg_templates_equal_lmms_eval_and_vila_apart_from_the_consistency_bug():
    """The lmms-eval protocol's consistency prompt differs from VILA's only in the Question 2 line."""
    run = RECORDING["benchmarks"]["eval_benchmark_5_consistency.py"]["agree"]
    item = run["items"][0]
    ours = _metric("videochatgpt_consistency", "consistency", "http://127.0.0.1:9/v1")
    fields = ours.fields(_vila_input("eval_benchmark_5_consistency.py", item["input"]))
    assert ours.template.messages(**fields)[1]["content"] == (item["user_head"] + run["user_tail"]).replace(
        f"Question 2: {item['input']['Q1']}\n", f"Question 2: {item['input']['Q2']}\n")


def _ours(reply: str | None, with_pred: bool):
    if reply is None:
        return "failure"
    try:
        r = parse_review(reply, extract="whole", with_pred=with_pred)
    except InvalidReply:
        return "failure"
    return {"pred": r.pred, "score": r.score} if with_pred else {"score": r.score}


def test_reply_reading_equals_vila_where_the_conventions_agree():
    """``agree`` sets: every reply is stored by VILA and accepted by omnieval, with the same (pred, int(score)), and the
    printed aggregates equal omnieval's values.  ``edge`` sets: the differences are exactly the documented ones."""
    qa = RECORDING["eval_video_qa"]
    for item in qa["agree"]["items"]:
        stored = item["stored"][0]
        ours = _ours(item["reply"], True)
        pred = stored["pred"].lower()
        assert ours == {"pred": "yes" if "yes" in pred else "no" if "no" in pred else stored["pred"], "score": int(stored["score"])}
    metric = get_metric("judge_score")(api_key_env="", extract="whole")
    for item in qa["agree"]["items"]:
        r = _ours(item["reply"], True)
        yes_rate = {"judge_yes_rate": float(r["pred"] == "yes")} if r["pred"] in ("yes", "no") else {}
        metric.fold({"judge_failed": 0.0, "judge_score": float(r["score"])} | yes_rate)
    values, printed = metric.compute(), qa["agree"]["printed"]
    assert values["judge_yes_rate"] == pytest.approx(100 * printed["Accuracy"], abs=1e-9)
    assert values["judge_score"] == pytest.approx(printed["Average score"], abs=1e-9)
    assert (printed["Yes count"], printed["No count"]) == (4, 2)

    edge = {it["input"]["pred"]: (it["stored"][0] if it["stored"] else None, _ours(it["reply"], True)) for it in qa["edge"]["items"]}
    assert edge["a dog"] == ({"pred": "yes", "score": 5}, {"pred": "yes", "score": 5})
    assert edge["sure"] == (None, "failure") and edge["not a dict"] == (None, "failure")  # VILA drops, omnieval retries
    assert edge["no score"] == ({"pred": "yes"}, "failure")  # VILA counts it in the mean with 0
    assert edge["too high"] == ({"pred": "yes", "score": 99}, "failure") and edge["negative"][1] == "failure"
    assert qa["edge"]["printed"]["Average score"] == pytest.approx((5 + 99 - 7) / 4)  # ... which VILA averages

    for script, sets in RECORDING["benchmarks"].items():
        scores = []
        for item in sets["agree"]["items"]:
            ours = _ours(item["reply"], False)
            assert ours == {"score": int(item["stored"][0]["score"])}
            scores.append(ours["score"])
        (printed,) = sets["agree"]["printed"].values()
        assert sum(scores) / len(scores) == pytest.approx(printed, abs=1e-9), script
        for item in sets["edge"]["items"]:
            stored, ours = item["stored"][0], _ours(item["reply"], False)
            if item["reply"] is None:  # BadRequestError: VILA stores score 0 (pred emptied); omnieval: a failure
                assert stored == {"score": 0} and item["stored"][1]["pred"] == "" and ours == "failure"
            elif ours == "failure":  # out of range (99, -1) or no score key (benchmark 2 reads it as 3)
                assert stored.get("score", 3) not in range(6) or "score" not in stored
            else:
                assert ours == {"score": int(stored["score"])}


# -- parity with lmms-eval 0.7.3 (live) ---------------------------------------------------------------
def _load_lmms(monkeypatch, tmp_path, task_dir: str, judge_url: str):
    pytest.importorskip("loguru")
    spec = importlib.util.find_spec("lmms_eval")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("lmms-eval not installed (pip install --no-deps lmms-eval==0.7.3)")
    pkg = Path(next(iter(spec.submodule_search_locations)))
    for name, path in (("lmms_eval", pkg), ("lmms_eval.tasks", pkg / "tasks"), ("lmms_eval.tasks._task_utils", pkg / "tasks" / "_task_utils")):
        stub = types.ModuleType(name)
        stub.__path__ = [str(path)]
        monkeypatch.setitem(sys.modules, name, stub)  # the real __init__ imports the whole harness (pytz, ...)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("OPENAI_API_URL", judge_url + "/chat/completions")  # read at import
    module_spec = importlib.util.spec_from_file_location(f"lmms_ref_{task_dir}", pkg / "tasks" / task_dir / "utils.py")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    kwargs = yaml.safe_load("".join(l for l in (pkg / "tasks" / task_dir / "_default_template_yaml").read_text().splitlines(True)
                                    if "!function" not in l))["lmms_eval_specific_kwargs"]["default"]
    return module, kwargs


def _metric(task: str, label: str | None, url: str):
    cfg = resolve_tasks([task])[0]
    spec = next(m for m in cfg.metrics if label is None or m.result_label == label)
    return get_metric(spec.name)(**{**spec.options, "base_url": url, "workers": 1})


def _same_payloads(a: list[dict], b: list[dict]) -> None:
    """The same requests (as JSON values: lmms-eval sends ``"temperature": 0``, omnieval ``0.0``), in any order."""
    def key(p):
        return json.dumps(p["messages"], sort_keys=True)

    assert len(a) == len(b) and sorted(a, key=key) == sorted(b, key=key)


ANET_REPLIES = {"a dog": "{'pred': 'yes', 'score': 5}", "a cat": "{'pred': 'no', 'score': 0}",
                "maybe": "{'pred': 'partially', 'score': 3}", "chatty": "Sure! {'pred': 'Yes', 'score': 4.8} hope it helps",
                "string score": "{\"pred\": \"no\", \"score\": \"2\"}"}


@pytest.mark.slow
def test_parity_with_lmms_eval_activitynetqa(monkeypatch, tmp_path):
    """Same prompts (exact), same judge payloads, same (pred, score) per item and the same aggregates as lmms-eval's
    ``activitynetqa`` functions on the fixture docs; an unparseable reply crashes lmms-eval (``TypeError``) where
    omnieval records a failure."""
    cfg, docs = task_docs("activitynetqa")
    preds = ["a dog", "a cat", "maybe", "chatty", "string score"]
    le_docs = [{"video_name": d.fields["video_name"], "question_id": d.id, "question": d.fields["question"],
                "answer": d.fields["answer"], "type": str(d.fields["type"])} for d in docs]
    le_docs.append(dict(le_docs[0], question_id="extra"))
    docs_fields = [d.fields for d in docs] + [docs[0].fields]
    with FakeJudge(lambda p, i: ok(ANET_REPLIES.get(predicted(p), "I cannot judge this."))) as judge:
        le, kwargs = _load_lmms(monkeypatch, tmp_path, "activitynetqa", judge.url)
        for doc, le_doc in zip(docs, le_docs):
            assert render_prompt(cfg, doc) == le.activitynetqa_doc_to_text(le_doc, kwargs)
        le_results = [le.activitynetqa_process_results(d, [p]) for d, p in zip(le_docs, preds)]
        n_le = len(judge.payloads)
        metric = _metric("activitynetqa", None, judge.url)
        ours = metric.contributions([MetricInput(item_id=str(i), output=p, reference=f["answer"], doc=f)
                                     for i, (f, p) in enumerate(zip(docs_fields, preds))])
        _same_payloads(judge.payloads[:n_le], judge.payloads[n_le:])
        with pytest.raises(TypeError):  # lmms-eval: parse_score returns None, then None[0] outside the try
            le.activitynetqa_process_results(le_docs[0], ["gibberish"])
        failure = metric.contributions([MetricInput(item_id="g", output="gibberish", reference="red", doc=docs[0].fields)])[0]
    assert failure["judge_failed"] == 1.0 and RETRY in failure and "judge_score" not in failure
    le_rows = [r["gpt_eval_score"] for r in le_results]
    assert [(c["judge_pred"], int(c["judge_score"])) for c in ours] == [(r["Correctness"], r["score"]) for r in le_rows]
    for c in ours:
        metric.fold(c)
    values = metric.compute()
    assert values["judge_yes_rate"] == pytest.approx(le.activitynetqa_aggregate_accuracy(le_rows, None), abs=1e-9)
    assert values["judge_score"] == pytest.approx(le.activitynetqa_aggregate_score(le_rows, None), abs=1e-9)


def _vcg_reply(payload: dict, index: int):
    system, user = payload["messages"][0]["content"], payload["messages"][1]["content"]
    dim = next(v for key, v in DIMENSIONS.items() if key in system)
    label = "Predicted Answer to Question 1: " if dim == 0 else "Predicted Answer: "
    pred = predicted(payload, label)
    if pred == "unreadable":
        return ok("The score is four.")
    return ok(f"{{'score': {(dim + len(pred) + len(user) % 3) % 6}}}" if pred != "float" else "{'score': 4.8}")


@pytest.mark.slow
def test_parity_with_lmms_eval_videochatgpt(monkeypatch, tmp_path):
    """Generic (3 dimensions), temporal and consistency: same prompts, same judge payloads, same per-item scores and
    the same means as lmms-eval's ``videochatgpt`` functions; an unreadable reply is 0 in lmms-eval (counted) and a
    failure in omnieval (left out, retried)."""
    with FakeJudge(_vcg_reply) as judge:
        le, kwargs = _load_lmms(monkeypatch, tmp_path, "videochatgpt", judge.url)
        # generic and temporal
        for task, labels in (("videochatgpt_generic", ("correctness", "detail_orientation", "context")),
                             ("videochatgpt_temporal", ("temporal",))):
            cfg, docs = task_docs(task)
            preds = ["A red square moves right.", "float", "It is green."][: len(docs)]
            le_docs = [{"video_name": d.fields["video_name"], "question": d.fields["Q"], "answer": d.fields["A"]} for d in docs]
            assert [render_prompt(cfg, d) for d in docs] == [le.videochatgpt_doc_to_text(d, kwargs) for d in le_docs]
            start = len(judge.payloads)
            process = le.videochatgpt_process_results_generic if "generic" in task else le.videochatgpt_process_results_temporal
            le_out = [process(d, [p]) for d, p in zip(le_docs, preds)]
            mid = len(judge.payloads)
            inputs = [MetricInput(item_id=d.id, output=p, reference=d.fields["A"], doc=d.fields) for d, p in zip(docs, preds)]
            for label in labels:
                metric = _metric(task, label, judge.url)
                ours = metric.contributions(inputs)
                le_rows = [o[f"gpt_eval_score_{label.replace('detail_', 'detailed_')}"] for o in le_out]
                assert [int(c["judge_score"]) for c in ours] == [r["score"] for r in le_rows], label
                for c in ours:
                    metric.fold(c)
                assert metric.compute()["judge_score"] == pytest.approx(le.videochatgpt_aggregate_score(le_rows, None), abs=1e-9)
            _same_payloads(judge.payloads[start:mid], judge.payloads[mid:])

        # consistency: lmms-eval has one row per phrasing and pairs them at aggregation time (judging there)
        cfg, docs = task_docs("videochatgpt_consistency")
        answers = [("Red.", "It is red."), ("Left.", "float")]
        le_rows, our_inputs = [], []
        for d, (p1, p2) in zip(docs, answers):
            first = {"video_name": d.fields["video_name"], "question_1": d.fields["Q1"], "question_2": "None", "answer": d.fields["A"]}
            second = {"video_name": d.fields["video_name"], "question_1": "None", "question_2": d.fields["Q2"], "answer": d.fields["A"]}
            assert [render_prompt(cfg, d, f) for f in cfg.fields.prompts] == [le.videochatgpt_doc_to_text_consistency(x, kwargs) for x in (first, second)]
            le_rows += [le.videochatgpt_process_results_consistency(first, [p1])["gpt_eval_score_consistency"],
                        le.videochatgpt_process_results_consistency(second, [p2])["gpt_eval_score_consistency"]]
            our_inputs.append(MetricInput(item_id=d.id, output=p1, reference=d.fields["A"], doc=d.fields, sample_index=0, siblings={1: p2}))
        start = len(judge.payloads)
        le_mean = le.videochatgpt_aggregate_consistency(le_rows, types.SimpleNamespace(output_path=str(tmp_path / "le")))
        mid = len(judge.payloads)
        metric = _metric("videochatgpt_consistency", "consistency", judge.url)
        ours = metric.contributions(our_inputs)
        _same_payloads(judge.payloads[start:mid], judge.payloads[mid:])
        for c in ours:
            metric.fold(c)
        assert metric.compute()["judge_score"] == pytest.approx(le_mean, abs=1e-9)

        # an unreadable reply: lmms-eval scores 0 (in the mean), omnieval a failure (out of the mean, judged again)
        cfg, docs = task_docs("videochatgpt_temporal")
        le_row = le.videochatgpt_process_results_temporal({"video_name": "v", "question": "q", "answer": "a"}, ["unreadable"])
        ours = _metric("videochatgpt_temporal", "temporal", judge.url).contributions(
            [MetricInput(item_id="u", output="unreadable", reference="a", doc={"Q": "q"})])
    assert le_row["gpt_eval_score_temporal"]["score"] == 0
    assert ours[0]["judge_failed"] == 1.0 and RETRY in ours[0] and "judge_score" not in ours[0]


@pytest.mark.slow
def test_every_judged_task_runs_with_omnivideo_tiny(tmp_path, monkeypatch):
    """The group end to end with the embedded tiny model on the bundled fixtures (``--fixtures``: each task's
    ``dataset.fixture``; one doc per task; ~20 s, mostly 1024-token decoding); the harness samples the frames."""
    def respond(payload, index):
        return ok("{'pred': 'no', 'score': 1}" if "'pred'" in payload["messages"][1]["content"] else "{'score': 2}")

    args = ["run", "--tasks", "video_judged", "--model", "omnivideo-tiny", "--limit", "1", "--fixtures",
            "--output_path", str(tmp_path / "out")]
    with FakeJudge(respond) as judge:
        monkeypatch.setenv("OMNIEVAL_JUDGE_URL", judge.url)
        assert main(args) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())["results"]
    assert set(results) == set(FOLDER)
    assert all(r["judge_score"]["value"] == 1.0 for t, r in results.items() if "judge_yes_rate" in r)
    assert results["videochatgpt_generic"]["context/judge_score"]["value"] == 2.0
    assert results["videochatgpt_consistency"]["judge_score"]["n"] == 1
    assert results["videochatgpt_consistency_vila"]["judge_score"]["n"] == 1
    for task in FOLDER:  # VILA's rule, applied by the harness: 8 frames at linspace(0, T-1, 8) truncated
        record = json.loads((tmp_path / "out" / "samples" / f"{task}.jsonl").read_text().splitlines()[0])
        assert record["frames"]["rule"] == "uniform_floor num=8" and len(record["frames"]["indices"]) == 8, task


def test_fixture_key_reads_the_same_docs_as_the_fixture_folder():
    """``dataset.fixture`` of every judged task names its folder in FOLDER (what ``--fixtures`` reads), and the task
    samples VILA's 8 frames."""
    for task in FOLDER:
        cfg, docs = task_docs(task)
        assert cfg.frames is not None and cfg.frames.describe() == "uniform_floor num=8"
        assert [(d.id, d.content_hash) for d in load_docs(cfg, fixture=True)] == [(d.id, d.content_hash) for d in docs]


@pytest.mark.parametrize("task,labels", [("videochatgpt_generic_vila", {"correctness": 1, "detail_orientation": 2, "context": 3}),
                                         ("videochatgpt_temporal_vila", {"temporal": 4})])
def test_videochatgpt_vila_tasks_through_omnieval_run(tmp_path, monkeypatch, task, labels):
    with FakeJudge(judge_reply) as judge:
        monkeypatch.setenv("OMNIEVAL_JUDGE_URL", judge.url)
        rc, res = run_task(tmp_path, task, ["answer 0", "answer 1", "answer 2"])
    _, docs = task_docs(task)
    assert rc == 0 and len(judge.payloads) == len(docs) * len(labels)
    assert all(set(p) == {"model", "messages"} and p["model"] == "gpt-3.5-turbo-0125" for p in judge.payloads)
    for label, dim in labels.items():
        name = f"{label}/judge_score" if len(labels) > 1 else "judge_score"
        assert res[name]["value"] == pytest.approx(sum((dim + k) % 6 for k in range(len(docs))) / len(docs))
