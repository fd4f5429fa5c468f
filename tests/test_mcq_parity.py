"""Parity of the video multiple-choice tasks with lmms-eval 0.7.3's own task functions.

For every benchmark lmms-eval ships (Video-MME, MVBench, NExT-QA MC, EgoSchema subset, PerceptionTest MC val,
TempCompass MC, LongVideoBench, MLVU dev), the bundled fixture docs and a table of model responses (quirk cases
included: "a dog", "A man ...", "Dog", "b", "(B)", "E", empty, whitespace, answer phrases, long text without a
letter, option texts) go through omnieval and through lmms-eval's ``doc_to_text``, ``process_results`` and
aggregation, imported by file path (``tests/lmms_tasks.py``).  Checked, exactly: the prompt of every doc, the verdict
(and for MVBench whether the item is counted) of every item, and the overall value (and MVBench per sub-task,
TempCompass per dimension).  Where lmms-eval draws a random letter, its ``random`` is replaced by one that returns
omnieval's deterministic stand-in and fails if lmms-eval draws where omnieval did not.  TempCompass's judge is a
fake chat server on 127.0.0.1 that both sides call: the request payloads must be equal.

``test_run_on_fixture_equals_lmms_eval`` runs each task through ``omnieval run --fixtures --model predictions`` with
a manifest of responses and compares results.json with lmms-eval's aggregate of the same responses.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from lmms_tasks import ScriptedRandom, lmms_root, load_task_utils

from omnieval.cli import main
from omnieval.loaders.records import doc_choices
from omnieval.metrics.base import MetricInput
from omnieval.planning import render_prompt
from omnieval.registry import get_metric
from omnieval.tasks import all_tasks, load_docs

pytestmark = pytest.mark.slow

COMMON = [
    "A", "B", "C", "D", "E", "b", "(B)", "(b)", "B.", "B)", "B:", "Answer: A", "The answer is C.", "The best answer is D",
    "The correct option isB", "Best option:(D)", "I think the answer is (C) because of the end", "Option B",
    "C, because the man waves", "a dog", "Dogs Chase Dogs", "A man is walking", "Dog", "", "   ", "\n", "A or B", "<think>hmm</think>B",
    "none of them are right, I really cannot tell from this short video at all", "D) something", "B. fast", "E.",
    "(A) (B) both look right", "The answer: B or maybe C", "c", "答案是C", "e-mail me - b", "B. or maybe (A)", "a cat, B",
]


def responses_for(options: list[str]) -> list[str]:
    """The common table plus option-text answers (a bare option, and one in a sentence of more than 5 words)."""
    texts = [o for o in options if o]
    return COMMON + texts[:2] + [f"I am quite sure that it is {texts[-1]} in this clip",
                                 f"it could be {texts[-1].lower()} or else {texts[0].lower()} for this video"]


def lmms_kwargs(relyaml: str) -> dict | None:
    """``lmms_eval_specific_kwargs.default`` of a task YAML (its ``include`` first), as lmms-eval hands it over."""
    path = lmms_root() / "tasks" / relyaml
    data = yaml.safe_load("".join(line for line in path.read_text().splitlines(True) if "!function" not in line))
    if "include" in data:
        base = yaml.safe_load("".join(line for line in (path.parent / data["include"]).read_text().splitlines(True)
                                      if "!function" not in line))
        data = {**base, **data}
    kwargs = data.get("lmms_eval_specific_kwargs")
    return dict(kwargs["default"]) if kwargs else None


@dataclass
class Bench:
    utils: str
    yaml: str
    to_text: str
    process: Callable[[Any, dict, str], dict]
    verdict: Callable[[dict], bool]
    aggregate: Callable[[Any, list[dict]], float]
    scale: float  # lmms-eval's value = scale * omnieval's fraction
    tolerance: float = 1e-9
    random_letters: bool = False


def _mvb_kwargs(doc):
    return {"sub_task": doc["sub_task"], "post_prompt": "Only give the best option.\n"}


BENCHES: dict[str, Bench] = {
    "videomme": Bench("videomme/utils.py", "videomme/videomme.yaml", "videomme_doc_to_text",
                      lambda m, d, r: m.videomme_process_results(d, [r])["videomme_perception_score"],
                      lambda x: x["pred_answer"] == x["answer"], lambda m, xs: m.videomme_aggregate_results(xs), 100.0),
    "mvbench": Bench("mvbench/utils.py", "mvbench/mvbench_action_sequence.yaml", "mvbench_doc_to_text",
                     lambda m, d, r: m.mvbench_process_results(d, [r])["mvbench_accuracy"],
                     lambda x: x["score"] == 1, lambda m, xs: m.mvbench_aggregate_results(xs), 100.0),
    "nextqa_mc": Bench("nextqa/utils.py", "nextqa/nextqa_mc_test.yaml", "nextqa_doc_to_text_mc",
                       lambda m, d, r: {"exact_match": m.nextqa_mc_process_results(d, [r])["exact_match"]},
                       lambda x: bool(x["exact_match"]), lambda m, xs: sum(x["exact_match"] for x in xs) / len(xs), 1.0,
                       random_letters=True),
    "egoschema": Bench("egoschema/utils.py", "egoschema/egoschema_subset.yaml", "egoschema_doc_to_text",
                       lambda m, d, r: m.egoschema_process_results_generation(d, [r])["score"],
                       lambda x: str(x["ground_truth"]) == str(x["pred"]),
                       lambda m, xs: m.egoschema_aggregate_score(xs, None), 1.0, random_letters=True),
    "perceptiontest_mc": Bench("perceptiontest/val/utils.py", "perceptiontest/val/perceptiontest_mc.yaml",
                               "perceptiontest_val_doc_to_text",
                               lambda m, d, r: m.perceptiontest_val_process_results_mc(d, [r])["accuracy"],
                               lambda x: x["correct"] == 1, lambda m, xs: m.perceptiontest_val_aggregate_accuracy(xs, None),
                               1.0),
    "tempcompass_mc": Bench("tempcompass/utils.py", "tempcompass/tempcompass_mc.yaml",
                            "tempcompass_doc_to_text_multi_choice",
                            lambda m, d, r: m.tempcompass_process_results_multi_choice(d, [r])["avg_accuracy"],
                            lambda x: x["rating"] == 1, lambda m, xs: m.tempcompass_aggregate_rating(xs, None), 100.0),
    "longvideobench": Bench("longvideobench/utils.py", "longvideobench/longvideobench_val_v.yaml",
                            "longvideobench_doc_to_text",
                            lambda m, d, r: m.longvideobench_process_results(d, [r])["lvb_acc"],
                            lambda x: x["parsed_pred"] == x["answer"], lambda m, xs: m.longvideobench_aggregate_results(xs),
                            1.0, tolerance=5e-6, random_letters=True),
    "mlvu_dev": Bench("mlvu/utils.py", "mlvu/mlvu_dev.yaml", "mlvu_doc_to_text",
                      lambda m, d, r: m.mlvu_process_results(d, [r])["mlvu_percetion_score"],
                      lambda x: x["pred_answer"] == x["answer"], lambda m, xs: m.mlvu_aggregate_results_dev(xs), 100.0),
}


def raw(doc) -> dict:
    """The dataset row lmms-eval sees (omnieval's bookkeeping field removed)."""
    return {k: v for k, v in doc.fields.items() if k != "__media_root__"}


def metric_input(cfg, doc, response: str, sample_index: int) -> MetricInput:
    """What omnieval's scorer builds for one item (scoring.metric_input without a store)."""
    fields = dict(doc.fields)
    fields.setdefault("choices", doc_choices(cfg, doc.fields))
    return MetricInput(item_id=f"{doc.id}/{sample_index}", output=response, prompt=doc.get(cfg.fields.prompt),
                       reference=doc.get(cfg.fields.reference), doc=fields, doc_id=doc.id, sample_index=sample_index)


def option_texts(cfg, doc) -> list[str]:
    choices = doc_choices(cfg, doc.fields)
    return [str(v) for v in (choices.values() if isinstance(choices, dict) else choices)]


# -- the fake TempCompass judge -------------------------------------------------------------------------------------
def judge_reply(payload: dict, index: int):
    from judge_fixtures import ok

    user = payload["messages"][-1]["content"]
    truth = re.search(r"Ground-Truth Answer: (.*)", user).group(1)
    prediction = user.rsplit("Model Prediction: ", 1)[1]
    right = truth.split(". ", 1)[-1].lower() in prediction.lower() or prediction.strip("() ").upper() == truth[0]
    variants = (["Correct", "The prediction is Correct."] if right else
                ["Incorrect", "Incorrect. It does not match.", "This is not Correct... Incorrect"])
    return ok(variants[len(prediction) % len(variants)])


@dataclass
class Setup:
    """One benchmark on both sides: its lmms-eval module (``random`` scripted where it draws letters), omnieval's task
    and fixture docs, metric options to add (TempCompass: the fake judge) and that judge server."""

    bench: Bench
    cfg: Any
    docs: list
    module: Any
    scripted: ScriptedRandom
    extra_options: dict
    server: Any = None


@pytest.fixture
def reference(monkeypatch, tmp_path):
    """``reference(task)`` -> :class:`Setup`."""
    servers = []

    def load(task: str) -> Setup:
        env, extra = {}, {}
        if task == "tempcompass_mc":
            from judge_fixtures import FakeJudge

            servers.append(FakeJudge(judge_reply).start())
            for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
                monkeypatch.delenv(var, raising=False)
            monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
            env = {"OPENAI_API_URL": servers[-1].url + "/chat/completions", "OPENAI_API_KEY": "k"}
            extra = {"judge": {"base_url": servers[-1].url, "api_key_env": "", "max_attempts": 1}}
        bench, cfg = BENCHES[task], all_tasks()[task]
        module = load_task_utils(monkeypatch, tmp_path / "hf_home", bench.utils, **env)
        scripted = ScriptedRandom()
        if bench.random_letters:
            monkeypatch.setattr(module, "random", scripted)
        return Setup(bench, cfg, load_docs(cfg, fixture=True), module, scripted, extra, servers[-1] if servers else None)

    yield load
    for server in servers:
        server.stop()


@pytest.mark.parametrize("task", list(BENCHES))
def test_prompts_verdicts_and_aggregates_equal_lmms_eval(task, reference):
    ref = reference(task)
    bench, cfg, docs, module, scripted, server = ref.bench, ref.cfg, ref.docs, ref.module, ref.scripted, ref.server

    # prompts: every doc
    kwargs = lmms_kwargs(bench.yaml)
    to_text = getattr(module, bench.to_text)
    for doc in docs:
        args = (_mvb_kwargs(raw(doc)),) if task == "mvbench" else (() if kwargs is None else (dict(kwargs),))
        assert render_prompt(cfg, doc) == to_text(raw(doc), *args), f"{task} doc {doc.id}"

    # verdicts: every doc x every response
    spec = cfg.metrics[0]
    metric = get_metric(spec.name)(**{**spec.options, **ref.extra_options})
    items, ours, theirs = [], [], []
    for doc in docs:
        for k, response in enumerate(responses_for(option_texts(cfg, doc))):
            inp = metric_input(cfg, doc, response, k)
            contribution = metric.contributions([inp])[0]
            if bench.random_letters:
                scripted.expect(_letters(cfg, doc), contribution["ref_parsed"] if contribution["ref_how"] == "random" else None)
            result = bench.process(module, raw(doc), response.strip())  # lmms-eval's Task strips every response
            assert scripted.expected is None, f"{task} doc {doc.id} {response!r}: omnieval drew a letter, lmms-eval did not"
            counted = "mcq_accuracy_ref" in contribution
            if task == "mvbench":
                assert counted == (result["pred_answer"] != ""), f"{task} doc {doc.id} {response!r}"
            elif task != "tempcompass_mc" or contribution["ref_how"] != "judge_failed":
                assert counted, f"{task} doc {doc.id} {response!r}: only MVBench drops items"
            if counted:
                assert contribution["mcq_accuracy_ref"] == float(bench.verdict(result)), f"{task} doc {doc.id} {response!r}"
            items.append((doc, contribution))
            ours.append(contribution)
            theirs.append(result)
    if bench.random_letters:
        assert scripted.calls > 0, "the table must exercise the random fallback"

    # overall value (MVBench: the mean of the sub-tasks, which lmms-eval reports one by one)
    metric.reset()
    for c in ours:
        metric.fold(c)
    values = metric.compute()
    if task == "mvbench":
        per_sub = {}
        for (doc, c), result in zip(items, theirs):
            per_sub.setdefault(doc.fields["sub_task"], []).append((c, result))
        assert len(per_sub) == 20
        expected = []
        for sub, pairs in per_sub.items():
            sub_metric = metric.fresh()
            for c, _ in pairs:
                sub_metric.fold(c)
            lmms = bench.aggregate(module, [r for _, r in pairs])
            assert sub_metric.compute()["mcq_accuracy_ref"] == pytest.approx(lmms, abs=1e-9), sub
            expected.append(lmms)
        assert values["mcq_accuracy_ref"] == pytest.approx(sum(expected) / 20, abs=1e-9)
    else:
        lmms = bench.aggregate(module, theirs)
        assert values["mcq_accuracy_ref"] / 100.0 * bench.scale == pytest.approx(lmms, abs=bench.tolerance)
    if task == "tempcompass_mc":  # per dimension, and the judge requests
        for dim in {d.fields["dim"] for d in docs}:
            sub_metric = metric.fresh()
            for (doc, c) in items:
                if doc.fields["dim"] == dim:
                    sub_metric.fold(c)
            lmms = module.tempcompass_aggregate_rating(
                [r for (doc, _), r in zip(items, theirs) if doc.fields["dim"] == dim], None)
            assert sub_metric.compute()["mcq_accuracy_ref"] == pytest.approx(lmms, abs=1e-9), dim
        judged = sum(c["ref_judged"] for c in ours)
        assert judged > 10 and len(server.payloads) == 2 * judged
        assert server.payloads[0::2] == server.payloads[1::2]  # per item: ours, then lmms-eval's
    assert values["mcq_disagree"] > 0  # the table is built to make the conventions differ somewhere


def _letters(cfg, doc) -> list[str]:
    from omnieval.metrics.qa import option_map

    return list(option_map(doc_choices(cfg, doc.fields)))


# -- end to end: omnieval run on the fixture ------------------------------------------------------------------------
RUN_RESPONSES = {"tempcompass_mc": ["B", "A.", "C) dancing", "B. the light turns on"]}


@pytest.mark.parametrize("task", list(BENCHES))
def test_run_on_fixture_equals_lmms_eval(task, reference, tmp_path):
    """``omnieval run --fixtures --model predictions`` (responses from a manifest) gives lmms-eval's aggregate of the
    same responses as mcq_accuracy_ref, the strict number, breakdowns by every group_by field and the frames record."""
    ref = reference(task)
    bench, cfg, docs, module, scripted = ref.bench, ref.cfg, ref.docs, ref.module, ref.scripted
    table = RUN_RESPONSES.get(task) or ["B", "The answer is (A)", "c", "", "A man", "none of these fit the clip at all",
                                        "D.", "(C)"]
    answers = {doc.id: table[i % len(table)] for i, doc in enumerate(docs)}
    preds = tmp_path / "preds"
    preds.mkdir()
    (preds / "manifest.jsonl").write_text("".join(json.dumps({"task": task, "doc_id": d, "response": r}) + "\n"
                                                  for d, r in answers.items()))
    out = tmp_path / "out"
    assert main(["run", "--model", "predictions", "--model_args", f"path={preds}", "--tasks", task, "--fixtures",
                 "--output_path", str(out), "--log_samples"]) == 0
    data = json.loads((out / "results.json").read_text())
    res = data["results"][task]
    scored = {json.loads(line)["doc_id"]: json.loads(line) for line in (out / "samples" / f"{task}.scored.jsonl").read_text().splitlines()}
    results = []
    for doc in docs:
        contribution = scored[doc.id]["scores"][cfg.metrics[0].result_label]
        if bench.random_letters:
            scripted.expect(_letters(cfg, doc), contribution["ref_parsed"] if contribution["ref_how"] == "random" else None)
        results.append(bench.process(module, raw(doc), answers[doc.id].strip()))
    if task == "mvbench":
        by_sub: dict[str, list] = {}
        for doc, r in zip(docs, results):
            by_sub.setdefault(doc.fields["sub_task"], []).append(r)
        subs = {s: bench.aggregate(module, rs) for s, rs in by_sub.items()}
        assert res["mcq_accuracy_ref"]["value"] == pytest.approx(sum(subs.values()) / len(subs), abs=1e-9)
        for s, v in subs.items():
            assert res[f"mcq_accuracy_ref[sub_task={s}]"]["value"] == pytest.approx(v, abs=1e-9)
    else:
        lmms = bench.aggregate(module, results)
        assert res["mcq_accuracy_ref"]["value"] / 100.0 * bench.scale == pytest.approx(lmms, abs=bench.tolerance)
    assert {"mcq_accuracy", "mcq_accuracy_ref", "mcq_disagree", "unparsed_rate"} <= {k.split("/")[-1] for k in res}
    for field in cfg.group_by:
        assert any(name.startswith(f"mcq_accuracy[{field}=") for name in res), field
    record = json.loads((out / "samples" / f"{task}.jsonl").read_text().splitlines()[0])
    assert record["frames"]["rule"] == cfg.frames.describe() and record["frames"]["indices"]
    assert data["model"]["frames"] == "none (answers are read from files)"
