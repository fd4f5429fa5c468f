"""The video multiple-choice tasks: dataset loading in the official formats, the two conventions of mcq_accuracy,
``omnieval ls tasks``, and end-to-end runs on the fixtures with omnivideo-tiny.

Parity with lmms-eval's own functions is in tests/test_mcq_parity.py; frame sampling in tests/test_frames.py.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from omnieval.cli import main
from omnieval.config import load_task_file
from omnieval.errors import ConfigError
from omnieval.loaders.records import doc_choices
from omnieval.metrics.base import RETRY, MetricInput
from omnieval.metrics.mcq_reference import CONVENTIONS, random_letter
from omnieval.metrics.qa import MCQAccuracy, resolve_target
from omnieval.tasks import all_tasks, load_docs

MCQ_TASKS = ["videomme", "mvbench", "nextqa_mc", "egoschema", "perceptiontest_mc", "tempcompass_mc", "longvideobench",
             "mlvu_dev"]


def item(response, target="B", choices=("red", "green", "blue", "yellow"), doc_id="d", **doc):
    return MetricInput(item_id=doc_id, output=response, reference=target, doc={"choices": list(choices), **doc},
                       doc_id=doc_id)


def scored(metric, items):
    contributions = metric.contributions(items)
    metric.reset()
    for c in contributions:
        metric.fold(c)
    return contributions, metric.compute()


# -- the two conventions -------------------------------------------------------------------------------------------
def test_strict_and_reference_side_by_side_with_disagreements():
    """lmms-eval's Video-MME reading is permissive ("Dog" -> D, "a cat" -> A at the start); strict is not."""
    metric = MCQAccuracy(reference="lmms_videomme")
    cs, values = scored(metric, [item("B"), item("Dog", target="D"), item("A cat, surely", target="A"), item(""),
                                 item("C")])
    assert [c["parsed"] for c in cs] == ["B", "", "", "", "C"]
    assert [c["ref_parsed"] for c in cs] == ["B", "D", "A", "", "C"]
    assert values["mcq_accuracy"] == pytest.approx(20.0) and values["mcq_accuracy_ref"] == pytest.approx(60.0)
    assert values["mcq_disagree"] == 2 and values["unparsed_rate"] == pytest.approx(0.6)
    assert "ref_random" not in values and "ref_judged" not in values  # counts this convention cannot make


def test_denominators_mvbench_drops_empty_official_videomme_drops_unparsed():
    mvb = MCQAccuracy(reference="lmms_mvbench")
    cs, values = scored(mvb, [item("B"), item("   "), item("a dog", target="A"), item("C")])
    assert [c["ref_how"] for c in cs] == ["parsed", "empty", "parsed", "parsed"] and "mcq_accuracy_ref" not in cs[1]
    assert values["mcq_accuracy_ref"] == pytest.approx(200 / 3) and values["mcq_accuracy"] == pytest.approx(25.0)
    assert values["ref_dropped"] == 1 and values["mcq_disagree"] == 2  # "a dog" is A for MVBench, unread for strict
    official = MCQAccuracy(reference="videomme_official")
    cs, values = scored(official, [item("B"), item("no idea"), item("The best answer is C", target="C"),
                                   item("Best answer: C", target="C")])
    # Video-MME's prefix list fuses "Best answer:Best option:" (a missing comma), so "Best answer: C" reads as B
    assert [c["ref_parsed"] for c in cs] == ["B", "", "C", "B"] and values["ref_dropped"] == 1
    assert values["mcq_accuracy_ref"] == pytest.approx(200 / 3) and values["mcq_accuracy"] == pytest.approx(75.0)


def test_random_fallback_is_deterministic_and_documented():
    letters = ["A", "B", "C", "D", "E"]
    picks = {random_letter("lmms_nextqa", f"doc{i}", 0, letters) for i in range(40)}
    assert picks == set(letters)  # a spread of letters ...
    assert random_letter("lmms_nextqa", "doc7", 0, letters) == random_letter("lmms_nextqa", "doc7", 0, letters)
    metric = MCQAccuracy(reference="lmms_nextqa")
    five = ("to hide", "to play", "chasing the dog", "it rained", "to eat")
    a, _ = scored(metric, [item("no clue at all, sorry about that", choices=five, doc_id="x")])
    b, _ = scored(MCQAccuracy(reference="lmms_nextqa"), [item("no clue at all, sorry about that", choices=five, doc_id="x")])
    assert a[0]["ref_how"] == "random" and a[0]["ref_parsed"] == b[0]["ref_parsed"] == random_letter("lmms_nextqa", "x", 0, letters)
    assert a[0]["ref_random"] == 1.0 and a[0]["mcq_accuracy"] == 0.0  # strict: unparsed is wrong
    assert "random.Random" in sys.modules["omnieval.metrics.mcq_reference"].__doc__


def test_macro_over_groups_and_mlvu_fixed_types():
    """MLVU: lmms-eval averages over its 7 fixed types, an absent one counting 0 (one correct count item -> 14.29)."""
    types = ["anomaly_reco", "count", "ego", "needle", "order", "plotQA", "topic_reasoning"]
    metric = MCQAccuracy(reference="lmms_mlvu", macro_over="task_type", reference_groups=tuple(types))
    _, values = scored(metric, [item("B", task_type="count")])
    assert values["mcq_accuracy_ref"] == pytest.approx(100 / 7) and values["mcq_accuracy"] == pytest.approx(100.0)
    _, values = scored(metric, [item("B", task_type="count"), item("B", task_type="count"), item("A", task_type="ego")])
    assert values["mcq_accuracy"] == pytest.approx(50.0) and values["mcq_accuracy_micro"] == pytest.approx(200 / 3)
    with pytest.raises(ConfigError, match="macro_over"):
        MCQAccuracy(reference_groups=("a",))
    with pytest.raises(ConfigError, match="not one of"):
        MCQAccuracy(reference="lmms_nope")


def test_targets_index_letter_text_and_option_line():
    letters = {"A": "slow", "B": "fast", "C": "normal"}
    assert resolve_target("B. fast", letters, "x") == "B" and resolve_target("(C)", letters, "x") == "C"
    assert resolve_target("2", letters, "x", "index") == "C" and resolve_target(1, letters, "x", "index") == "B"
    with pytest.raises(ConfigError, match="target: index"):
        resolve_target("fast", letters, "x", "index")
    assert resolve_target("fast", letters, "x", "text") == "B"


def test_tempcompass_judge_needed_without_judge_and_retried_when_it_fails():
    choices = {"A": "slow", "B": "fast"}
    no_judge = MCQAccuracy(reference="lmms_tempcompass")
    cs, values = scored(no_judge, [MetricInput("t", "it is fast", prompt="Speed?\nA. slow\nB. fast", reference="B. fast",
                                               doc={"choices": choices}, doc_id="t"),
                                   MetricInput("u", "B", prompt="q", reference="B. fast", doc={"choices": choices})])
    assert cs[0]["ref_how"] == "judge_needed" and values["ref_judge_needed"] == 1 and values["mcq_accuracy_ref"] == 50.0
    dead = MCQAccuracy(reference="lmms_tempcompass",
                       judge={"base_url": "http://127.0.0.1:9/v1", "api_key_env": "", "max_attempts": 1, "timeout_s": 2})
    cs = dead.contributions([MetricInput("t", "it is fast", prompt="Speed?", reference="B. fast",
                                         doc={"choices": choices}, doc_id="t")])
    assert RETRY in cs[0] and cs[0]["ref_how"] == "judge_failed" and cs[0]["mcq_accuracy_ref"] == 0.0
    with pytest.raises(ConfigError, match="unknown key"):
        MCQAccuracy(reference="lmms_tempcompass", judge={"url": "x"})


def test_every_convention_is_documented_and_used():
    doc = sys.modules["omnieval.metrics.mcq_reference"].__doc__
    assert all(name in doc for name in CONVENTIONS)
    used = {spec.options.get("reference") for name in MCQ_TASKS for spec in all_tasks()[name].metrics}
    assert used == set(CONVENTIONS)


# -- loading in the official formats ---------------------------------------------------------------------------------
def test_fixture_docs_in_official_formats():
    tasks = all_tasks()
    counts = {name: len(load_docs(tasks[name], fixture=True)) for name in MCQ_TASKS}
    assert counts == {"videomme": 4, "mvbench": 21, "nextqa_mc": 3, "egoschema": 3, "perceptiontest_mc": 3,
                      "tempcompass_mc": 4, "longvideobench": 3, "mlvu_dev": 8}
    mvb = load_docs(tasks["mvbench"], fixture=True)
    assert len({d.fields["sub_task"] for d in mvb}) == 20
    assert {d.fields["media_dir"] for d in mvb if d.fields["sub_task"] == "episodic_reasoning"} == {"tvqa/video_fps3_hq_segment"}
    nextqa = load_docs(tasks["nextqa_mc"], fixture=True)
    assert nextqa[0].id == "4010069381_3" and doc_choices(tasks["nextqa_mc"], nextqa[0].fields)[0] == "to hide"  # stripped
    lvb = load_docs(tasks["longvideobench"], fixture=True)
    assert doc_choices(tasks["longvideobench"], lvb[1].fields) == ["red", "blue", "green"]  # "N/A" options dropped
    tc = load_docs(tasks["tempcompass_mc"], fixture=True)
    assert doc_choices(tasks["tempcompass_mc"], tc[0].fields) == {"A": "slow", "B": "fast", "C": "normal"}


def test_local_copies_configs_parquet_and_media_alternatives(tmp_path, monkeypatch):
    """A downloaded MVBench `video` snapshot (json/<sub-task>.json) via --dataset, a parquet copy of a hub split, and
    upper-case .MP4 files (lmms-eval tries .mp4 then .MP4)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from omnieval.capabilities import capability
    from omnieval.generation import input_media

    tasks = all_tasks()
    fixtures = Path(tasks["mvbench"].source_file).parent / "fixtures"
    monkeypatch.setenv("MVBENCH_DIR", str(fixtures / "mvbench"))
    assert len(load_docs(tasks["mvbench"], str(fixtures / "mvbench"))) == 21
    rows = [json.loads(line) for line in (fixtures / "egoschema" / "test.jsonl").read_text().splitlines()]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "test-00000-of-00001.parquet")
    videos = tmp_path / "ego" / "videos"
    videos.mkdir(parents=True)
    for row in rows:
        (videos / f"{row['video_idx']}.MP4").write_bytes((fixtures / "egoschema" / "videos" / f"{row['video_idx']}.mp4").read_bytes())
    monkeypatch.setenv("EGOSCHEMA_DIR", str(tmp_path / "ego"))
    docs = load_docs(tasks["egoschema"], str(tmp_path / "test-00000-of-00001.parquet"))
    assert [d.fields for d in docs] == [dict(r, __media_root__=str(videos)) for r in rows]
    assert len(input_media(tasks["egoschema"], capability("understand"), docs[0])) == 32


def test_configs_are_options_of_the_hub_and_file_loaders(monkeypatch):
    """MVBench's sub-tasks: each config loaded by the hub loader under its name, tagged with config_field and its
    config_fields; bad or misspelt options are one-line errors naming them."""
    import dataclasses

    import datasets

    cfg = all_tasks()["mvbench"]
    monkeypatch.setenv("MVBENCH_DIR", str(Path(cfg.source_file).parent / "fixtures" / "mvbench"))
    calls = []

    def fake_load(path, name, revision, split):
        calls.append((path, name, revision, split))
        return datasets.Dataset.from_list([{"video": f"{name}.mp4", "question": "q", "candidates": ["a", "b"], "answer": "a"}])

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    docs = load_docs(cfg)
    configs = cfg.dataset.options["configs"]
    assert [c[1] for c in calls] == configs and {c[0] for c in calls} == {"OpenGVLab/MVBench"}
    assert [d.fields["sub_task"] for d in docs] == configs and [d.id for d in docs] == [str(i) for i in range(20)]
    assert docs[configs.index("episodic_reasoning")].fields["media_dir"] == "tvqa/video_fps3_hq_segment"

    def with_options(options):
        return dataclasses.replace(cfg, dataset=dataclasses.replace(cfg.dataset, options=options))

    with pytest.raises(ConfigError, match="options.configs must be a list of config names"):
        load_docs(with_options({"configs": "action_count"}))
    with pytest.raises(ConfigError, match=r"config_fields names configs not in configs: \['nope'\]"):
        load_docs(with_options({"configs": ["a"], "config_fields": {"nope": {"x": 1}}}))
    with pytest.raises(ConfigError, match=r"dataset.options \['config'\] not understood by loader 'hub'"):
        load_docs(with_options({"config": ["a"]}))


def test_missing_data_and_media_are_one_line_with_the_fix(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("NEXTQA_DIR", raising=False)
    assert main(["run", "--model", "predictions", "--model_args", f"path={tmp_path}", "--tasks", "nextqa_mc",
                 "--output_path", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs $NEXTQA_DIR, which is not set" in err and "NExTVideo" in err
    monkeypatch.setenv("NEXTQA_DIR", str(tmp_path / "nowhere"))
    assert main(["run", "--model", "predictions", "--model_args", f"path={tmp_path}", "--tasks", "nextqa_mc",
                 "--output_path", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err  # offline, the hub dataset is not cached: how to get it, in one line
    assert err.count("\n") == 1 and "datasets.load_dataset('lmms-eval/NExTQA', 'MC', split='test')" in err
    folder = tmp_path / "task"
    folder.mkdir()
    (folder / "t.yaml").write_text("task: t\ncapability: understand\ndataset: {path: d.jsonl, media_root: media, "
                                   "download: 'get the clips from X into media/'}\nfields: {media: v}\n"
                                   "metrics: [mcq_accuracy]\n")
    (folder / "d.jsonl").write_text('{"id": "1", "prompt": "p", "v": "x.mp4", "choices": ["a"]}\n')
    with pytest.raises(ConfigError, match="media folder not found: .*; get the clips from X into media/"):
        load_docs(load_task_file(folder / "t.yaml")[0])


def test_adding_task_keys_kept_every_existing_hash():
    """Work items are addressed by the generation hash: the keys this change added are hashed only when set (and
    dataset.fixture / dataset.download never)."""
    tasks = all_tasks()
    known = {"geneval": "a99399594baa3ab0", "vbench": "c7ccbfe22d40bc96", "magicbrush_all_turn": "6ed4fd1960fd87a4",
             "emu_edit": "77b593aaa9e0b444"}  # as main computed them before h-mcq was merged
    assert {name: tasks[name].generation_hash() for name in known} == known
    import dataclasses

    cfg = tasks["videomme"]
    moved = dataclasses.replace(cfg, dataset=dataclasses.replace(cfg.dataset, fixture="elsewhere/x.jsonl", download="other"))
    assert (moved.generation_hash(), moved.config_hash()) == (cfg.generation_hash(), cfg.config_hash())
    more = dataclasses.replace(cfg, dataset=dataclasses.replace(cfg.dataset, media_alternatives=("{}.avi",)))
    assert more.generation_hash() != cfg.generation_hash()


# -- omnieval ls tasks ------------------------------------------------------------------------------------------------
def test_ls_tasks_counts_and_says_what_is_missing(tmp_path, monkeypatch, capsys):
    from datasets.naming import camelcase_to_snakecase

    from omnieval.availability import snake_name, task_status

    for name in ("Video-MME", "NExTQA", "PerceptionTest_Val", "TempCompass", "LongVideoBench", "MLVU_dev", "MVBench", "egoschema"):
        assert snake_name(name) == camelcase_to_snakecase(name)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_DATASETS_CACHE", raising=False)
    monkeypatch.delenv("VIDEOMME_DIR", raising=False)
    cfg = all_tasks()["videomme"]
    status = task_status(cfg)
    assert status.items is None and len(status.missing) == 2
    assert "datasets.load_dataset('lmms-eval/Video-MME', split='test', revision='ead1408" in status.missing[0]
    assert status.missing[1].startswith("media folder: VIDEOMME_DIR is not set; set VIDEOMME_DIR to")
    info = tmp_path / "hf" / "datasets" / "lmms-lab___video-mme" / "default" / "0.0.0" / "abc" / "dataset_info.json"
    info.parent.mkdir(parents=True)
    info.write_text(json.dumps({"splits": {"test": {"num_examples": 2700}}}))  # a cache lmms-eval (old org name) made
    (tmp_path / "media" / "data").mkdir(parents=True)
    monkeypatch.setenv("VIDEOMME_DIR", str(tmp_path / "media"))
    status = task_status(cfg)
    assert status.items == 2700 and status.missing == []
    assert main(["ls", "tasks"]) == 0
    out = capsys.readouterr().out
    assert "videomme" in out and "2700 items" in out and "[fixture: --fixtures]" in out
    assert "missing media folder: MVBENCH_DIR is not set" in out and "note: no judge configured" in out
    assert " 553 items  GenEval" in out  # a local file is counted


def test_ls_is_fast_and_imports_no_torch():
    code = "import sys; from omnieval.cli import main; main(['ls', 'tasks']); print('torch' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False False"


# -- end to end with the tiny model ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_every_mcq_task_runs_on_its_fixture_with_omnivideo_tiny(tmp_path):
    out = tmp_path / "out"
    assert main(["run", "--model", "omnivideo-tiny", "--tasks", "video_mcq", "--fixtures", "--output_path", str(out)]) == 0
    data = json.loads((out / "results.json").read_text())
    assert set(data["results"]) == set(MCQ_TASKS)
    for name in MCQ_TASKS:
        res = data["results"][name]
        assert res["mcq_accuracy"]["n"] == len(load_docs(all_tasks()[name], fixture=True))
        assert "mcq_accuracy_ref" in res and ("mcq_disagree" in res or "mcq_accuracy/mcq_disagree" in res)
    assert "official/mcq_accuracy_ref" in data["results"]["videomme"]  # Video-MME's own scorer too
    assert data["model"]["frames"].startswith("uniform_floor num=num_video_frames")
    assert data["configs"]["mvbench"]["frames"]["rule"] == "mvbench_segments"
    # re-running resumes: nothing is generated or scored again
    assert main(["run", "--model", "omnivideo-tiny", "--tasks", "video_mcq", "--fixtures", "--output_path", str(out)]) == 0
    assert json.loads((out / "results.json").read_text())["counters"]["generated_items"] == 0
