"""MagicBrush: the two tasks end to end (omnivideo-tiny, think both; predictions) and parity with a recording of
MagicBrush's own ``evaluation/image_eval.py`` (``tests/reference/record_magicbrush.py``)."""
from __future__ import annotations

import json
from pathlib import Path

import editing_fixtures as F
import pytest

from omnieval.cli import main
from omnieval.errors import ConfigError
from omnieval.tasks import REPO_TASKS_DIR, load_docs, resolve_tasks

TASK_FILE = REPO_TASKS_DIR / "editing" / "magicbrush.yaml"
FIXTURE = REPO_TASKS_DIR / "editing" / "fixtures" / "magicbrush"
RECORDING = Path(__file__).parent / "data" / "magicbrush_reference.json"
#: our result name -> the key in image_eval.py's evaluation_metrics.json
NAMES = {"edit_l1": "l1", "edit_l2": "l2", "edit_clip_i": "clip-i", "edit_dino": "dino", "edit_clip_t": "clip-t",
         "edit_clip_t_oracle/edit_clip_t": "clip-t_oracle"}


def swaps(clip_file: Path | None, dino_file: Path | None):
    """Metric options with tiny networks: the recorded tiny OpenAI-layout CLIP / DINO, or the built-in tiny ones."""
    def swap(name: str, options: dict) -> dict:
        if name in ("edit_clip_i", "edit_clip_t"):
            return dict(options, backbone=f"open_clip:{F.TINY_OC}/file", backbone_path=str(clip_file), device="cpu") \
                if clip_file else dict(options, backbone="clip-tiny-random", device="cpu")
        if name == "edit_dino":
            return dict(options, dino="dino-tiny-random", **({"dino_path": str(dino_file)} if dino_file else {}))
        return options
    return swap


def test_loader_turns_and_chain():
    cfg = {c.task: c for c in resolve_tasks(["magicbrush"])}
    indep = load_docs(cfg["magicbrush_all_turn"], str(FIXTURE))
    chain = load_docs(cfg["magicbrush_final_turn"], str(FIXTURE / "test"))  # the folder itself or its parent
    assert [d.id for d in indep] == ["2001_t1", "2002_t1", "2002_t2", "2002_t3"]
    d = {x.id: x.fields for x in chain}
    assert d["2002_t3"]["input"] == "images/2002/2002-output2.png" and d["2002_t3"]["reference"] == "images/2002/2002-output3.png"
    assert d["2002_t3"]["chain_prev"] == "2002_t2" and d["2002_t1"]["chain_prev"] is None
    assert [x.fields["chain_prev"] for x in indep] == [None] * 4
    assert [x.fields["is_final"] for x in indep] == [True, False, False, True]
    assert d["2002_t2"]["caption"] == "a red box on picture 2002 after edit 2"


def test_missing_data_is_one_line(tmp_path, monkeypatch):
    cfg = resolve_tasks(["magicbrush_all_turn"])[0]
    monkeypatch.delenv("MAGICBRUSH_DIR", raising=False)
    with pytest.raises(ConfigError, match=r"needs \$MAGICBRUSH_DIR.*unzip -P MagicBrush") as err:
        load_docs(cfg)
    assert "\n" not in str(err.value)
    monkeypatch.setenv("MAGICBRUSH_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match=r"no MagicBrush test set at .*unzip -P MagicBrush"):
        load_docs(cfg)


def test_end_to_end_omnivideo_tiny_think_both(tmp_path):
    """Both tasks with omnivideo-tiny (think off/on): the chained final-turn task feeds turn k-1's output to turn k."""
    tasks = tmp_path / "tasks"
    names = [F.tiny_task_variant(TASK_FILE, t, tasks, option_swaps=swaps(None, None), generation=F.TINY_GENERATION)
             for t in ("magicbrush_all_turn", "magicbrush_final_turn")]
    out = tmp_path / "out"
    args = ["run", "--model", "omnivideo-tiny", "--model_args", "route=false,think_max_new_tokens=4", "--tasks", ",".join(names),
            "--think", "both", "--output_path", str(out), "--include_path", str(tasks)]
    for name in names:
        args += ["--dataset", f"{name}={FIXTURE}"]
    assert main(args) == 0
    res = json.loads((out / "results.json").read_text())
    for name in names:
        for think in ("", "@think"):
            values = res["results"][f"{name}{think}" if think else name]
            assert set(NAMES) <= set(values), values.keys()
    final = res["results"]["magicbrush_final_turn_tiny"]["edit_l1"]
    assert final["n"] == 2  # one scored item per session: its last turn
    assert res["results"]["magicbrush_all_turn_tiny"]["edit_l1"]["n"] == 4
    info = res["metric_options"]["magicbrush_all_turn_tiny"]["edit_l1"]["info"]["off"]
    assert info["items_with_other_size"] == 4 and "bicubic" in info["convention"]
    samples = [json.loads(x) for x in (out / "samples" / "magicbrush_final_turn_tiny.jsonl").read_text().splitlines()]
    assert len(samples) == 8  # 4 turns x think off/on, all generated (turns 1-2 of the chain are inputs)


def test_parity_with_recorded_image_eval(tmp_path):
    """``predictions`` of the parity fixture through both tasks = image_eval.py's final_turn / all_turn values.

    Tolerance: 1e-6 for L1/L2 (float32 losses), 1e-5 for CLIP/DINO cosines (float32 features)."""
    rec = json.loads(RECORDING.read_text())
    assert [tuple(s) for s in rec["sessions"]] == F.MB_SESSIONS
    data = F.make_magicbrush_tree(tmp_path / "data" / "test")
    gen = F.make_magicbrush_generated(tmp_path / "generated")
    F.magicbrush_manifest(gen)
    clip_file, dino_file = F.tiny_openai_clip(tmp_path / "nets"), F.tiny_dino_file(tmp_path / "nets")
    assert F.weights_checksum(clip_file) == pytest.approx(rec["checksums"]["clip"], rel=1e-9)
    assert F.weights_checksum(dino_file) == pytest.approx(rec["checksums"]["dino"], rel=1e-9)
    tasks = tmp_path / "tasks"
    swap = swaps(clip_file, dino_file)
    names = {F.tiny_task_variant(TASK_FILE, t, tasks, suffix="", option_swaps=swap): key
             for t, key in (("magicbrush_all_turn", "all_turn"), ("magicbrush_final_turn", "final_turn"))}
    # same task names as the repo's: a separate folder given as the only task source would clash, so rename
    for name in list(names):
        (tasks / f"{name}.yaml").rename(tasks / f"p_{name}.yaml")
        text = (tasks / f"p_{name}.yaml").read_text().replace(f"task: {name}", f"task: p_{name}")
        (tasks / f"p_{name}.yaml").write_text(text)
    manifest = (gen / "manifest.jsonl").read_text().replace('"task": "magicbrush', '"task": "p_magicbrush')
    (gen / "manifest.jsonl").write_text(manifest)
    out = tmp_path / "out"
    args = ["run", "--model", "predictions", "--model_args", f"path={gen}", "--tasks", ",".join(f"p_{n}" for n in names),
            "--output_path", str(out), "--include_path", str(tasks)]
    for name in names:
        args += ["--dataset", f"p_{name}={data.parent}"]
    assert main(args) == 0
    res = json.loads((out / "results.json").read_text())["results"]
    for name, setting in names.items():
        ours = res[f"p_{name}"]
        assert ours["edit_l1"]["n"] == len(rec["pairs"][setting])
        for result, key in NAMES.items():
            tol = 1e-6 if key in ("l1", "l2") else 1e-5
            assert ours[result]["value"] == pytest.approx(rec["metrics"][setting][key], abs=tol), (setting, key)
