"""FiVE-Bench: the loader on the bundled fixture (official layout), parity of every scored column with a recording
of FiVE's own ``evaluation/evaluate.py`` + ``metrics_calculator.py`` (``tests/reference/record_five.py`` ->
``tests/data/five_reference.json``: tiny seeded CLIP / SqueezeNet / DINO, FiVE-Acc answered by the same scripted
replies as the fake judge here), judge failures retried, and end-to-end runs (``predictions``; ``omnivideo-tiny``
think both)."""
from __future__ import annotations

import base64
import hashlib
import io
import json
from pathlib import Path

import editing_fixtures as F
import numpy as np
import pytest
from judge_fixtures import FakeJudge, ok, user_text
from PIL import Image

from omnieval.cli import main
from omnieval.errors import ConfigError, MissingWeightsError
from omnieval.media import read_image
from omnieval.tasks import REPO_TASKS_DIR, load_docs, resolve_tasks

TASK_FILE = REPO_TASKS_DIR / "editing" / "five_bench.yaml"
FIXTURE = REPO_TASKS_DIR / "editing" / "fixtures" / "five"
RECORDING = Path(__file__).parent / "data" / "five_reference.json"
#: the recorded columns beyond the task's own (other regions of calculate_metric): metric name and options
EXTRA_COLUMNS = {"psnr": ("five_pixels", {"measure": "psnr", "region": "full"}),
                 "lpips": ("five_pixels", {"measure": "lpips", "region": "full"}),
                 "mse": ("five_pixels", {"measure": "mse", "region": "full"}),
                 "ssim": ("five_pixels", {"measure": "ssim", "region": "full"}),
                 "structure_distance_unedit_part": ("five_structure_distance", {"region": "unedit"}),
                 "structure_distance_edit_part": ("five_structure_distance", {"region": "edit"}),
                 **{f"{m}_edit_part": ("five_pixels", {"measure": m, "region": "edit"}) for m in ("psnr", "lpips", "mse", "ssim")}}
FIVE_ACC = ("five_acc_yes_no", "five_acc_multi_choice", "five_acc_union", "five_acc_inter", "five_acc")


def test_loader_and_missing_data(monkeypatch, tmp_path):
    (cfg,) = resolve_tasks(["five_bench"])
    docs = load_docs(cfg, str(FIXTURE))
    assert [d.id for d in docs] == F.five_edit_folders()
    first = docs[0].fields
    assert first["prompt"] == "A city bus drives down the street as a red truck."  # brackets removed
    assert first["source_prompt"] == "A city bus drives down the street past a bus stop."
    assert (first["editing_type_id"], first["media"], first["mask"]) == ("1", "images/0001_bus", "bmasks/0001_bus")
    assert docs[-1].fields["source_yes_no_question"] == ""
    assert cfg.generation.width == 640 and cfg.generation.height == 352 and cfg.generation.num_frames == 17
    assert (cfg.generation.fps, cfg.generation.num_inference_steps, cfg.generation.guidance_scale) == (8, 40, 3.0)
    assert cfg.think == ("off", "on") and cfg.group_by == ("editing_type_id",)
    monkeypatch.delenv("FIVE_DIR", raising=False)
    with pytest.raises(ConfigError, match=r"needs \$FIVE_DIR.*LIMinghan/FiVE-Fine-Grained-Video-Editing-Benchmark") as err:
        load_docs(cfg)
    assert "\n" not in str(err.value)
    monkeypatch.setenv("FIVE_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match=r"edit1_FiVE.json not found; git clone .*unzip bmasks.zip images.zip videos.zip"):
        load_docs(cfg)


def test_missing_weights_one_line(tmp_path):
    from omnieval.metrics.weights import resolve
    from omnieval.registry import get_metric

    assert get_metric("five_structure_distance")().required_weights() == ["dino-vitb8"]
    assert get_metric("five_pixels")(measure="lpips").required_weights() == ["squeezenet1_1-imagenet"]
    assert get_metric("five_pixels")(measure="psnr").required_weights() == []
    assert get_metric("five_clip")().required_weights() == ["clip-vit-large-patch14"]
    for weight_id, url in (("dino-vitb8", "dino_vitbase8_pretrain.pth"), ("squeezenet1_1-imagenet", "squeezenet1_1-b8a52dc0.pth")):
        with pytest.raises(MissingWeightsError, match=url) as err:
            resolve(weight_id)
        assert "\n" not in str(err.value)


# ---------------------------------------------------------------------------------------------
# Parity with the recording of FiVE's evaluate.py
# ---------------------------------------------------------------------------------------------
def tiny_nets(folder: Path) -> dict[str, Path]:
    return {"clip": F.tiny_hf_clip(folder / "clip"), "squeezenet": F.tiny_squeezenet_file(folder)}


def tiny_swaps(nets: dict[str, Path], judge_url: str):
    def swap(name, options):
        if name == "five_clip":
            return dict(options, backbone_path=str(nets["clip"]), device="cpu")
        if name == "five_pixels":
            return dict(options, lpips_path=str(nets["squeezenet"]), device="cpu")
        if name == "five_structure_distance":
            return dict(options, dino="dino-tiny-random-p8", device="cpu")
        if name == "five_acc":
            return dict(options, base_url=judge_url, model="judge-m", api_key_env="", backoff_s=0.0, max_attempts=1, workers=2)
        return options
    return swap


def task_variant(tmp_path: Path, swap, extra: bool = False, generation: dict | None = None) -> str:
    """The repo's five_bench as ``five_bench_tiny`` (tiny networks, the fake judge), with the recording's extra
    columns when ``extra``."""
    import yaml

    name = F.tiny_task_variant(TASK_FILE, "five_bench", tmp_path / "tasks", option_swaps=swap, generation=generation)
    if extra:
        path = tmp_path / "tasks" / f"{name}.yaml"
        doc = yaml.safe_load(path.read_text())
        doc["metrics"] += [{"name": n, "label": label, "options": swap(n, dict(o))} for label, (n, o) in EXTRA_COLUMNS.items()]
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return name


def write_manifest(pred: Path, task: str) -> None:
    lines = [json.dumps({"task": task, "doc_id": rel, "file": rel}) for rel in F.five_edit_folders()]
    (pred / "manifest.jsonl").write_text("\n".join(lines) + "\n")


def frame_index(pred: Path) -> dict[str, tuple[str, str]]:
    """sha256 of each edited frame's pixels -> (edit folder, file name): what the judge was sent."""
    out = {}
    for rel in F.five_edit_folders():
        for f in sorted((pred / rel).iterdir()):
            out[hashlib.sha256(read_image(f).tobytes()).hexdigest()] = (rel, f.name)
    return out


def sent_frames(payload: dict, index: dict) -> tuple[str, list[str]]:
    parts = [p for p in payload["messages"][0]["content"] if p["type"] == "image_url"]
    hits = []
    for p in parts:
        data = base64.b64decode(p["image_url"]["url"].split(",", 1)[1])
        hits.append(index[hashlib.sha256(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).tobytes()).hexdigest()])
    assert len({rel for rel, _ in hits}) == 1
    return hits[0][0], [name for _, name in hits]


def scored(out: Path, task: str) -> dict[str, dict]:
    rows = [json.loads(x) for x in (out / "samples" / f"{task}.scored.jsonl").read_text().splitlines()]
    return {r["doc_id"]: r["scores"] for r in rows}


@pytest.mark.slow
def test_parity_with_recorded_five_evaluate(tmp_path):
    """Per item (every column, 1e-5 relative; NaN items absent), per edit type (FiVE's 4-decimal ``_avg`` rows) and
    overall (``final_averaged_results.csv``, a mean of those rounded rows): equal within the rounding.  FiVE-Acc: the
    frames and prompt texts of every judge call equal the recorded ``run_each_iter`` messages."""
    from omnieval.metrics.five import table_scale

    rec = json.loads(RECORDING.read_text())
    nets = tiny_nets(tmp_path / "nets")
    assert F.weights_checksum_dir(nets["clip"]) == pytest.approx(rec["checksums"]["clip"], rel=1e-9)
    assert F.weights_checksum(nets["squeezenet"]) == pytest.approx(rec["checksums"]["squeezenet"], rel=1e-9)
    assert F.weights_checksum(F.tiny_dino_p8_file(tmp_path / "nets")) == pytest.approx(rec["checksums"]["dino"], rel=1e-9)
    assert rec["edit_folders"] == F.five_edit_folders()
    pred = F.make_five_edits(tmp_path / "pred")
    with FakeJudge(lambda payload, i: ok(F.five_reply(user_text(payload)))) as judge:
        name = task_variant(tmp_path, tiny_swaps(nets, judge.url), extra=True)
        write_manifest(pred, name)
        out = tmp_path / "out"
        assert main(["run", "--model", "predictions", "--model_args", f"path={pred}", "--tasks", name, "--output_path", str(out),
                     "--include_path", str(tmp_path / "tasks"), "--log_samples", "--dataset", f"{name}={FIXTURE}"]) == 0
    res = json.loads((out / "results.json").read_text())["results"][name]
    samples = scored(out, name)
    header = [h.split("|", 1)[1] for h in rec["final"][0][1:]]
    doc_ids = {t: [d for d in F.five_edit_folders() if d.split("/")[1].startswith(f"{t}_")] for t in rec["per_type"]}
    checked = 0
    for t, table in rec["per_type"].items():
        for row in table["rows"][1:]:
            doc = doc_ids[t][int(row[0])]
            for column, ref in zip(header, row[1:]):
                label = "five_acc" if column.startswith("five_acc") else column
                ours = samples[doc][label].get(column)
                if ref == "nan":
                    assert ours is None, (doc, column, ours)
                else:
                    assert ours == pytest.approx(float(ref) * table_scale(column), rel=1e-5, abs=1e-9), (doc, column)
                    checked += 1
        for column, ref in zip(header, table["avg"][1][1:]):
            key = f"{column}[editing_type_id={t}]"
            if ref == "N/A":
                assert key not in res, key
            else:
                # FiVE prints 4 decimals; per-item values agree to 1e-5 relative (above)
                assert res[key]["value"] == pytest.approx(float(ref), abs=5e-5 + 1e-5 * abs(float(ref))), key
    assert checked >= 7 * len(header) - 40
    for column, ref in zip(header, rec["final"][1][1:]):
        assert res[column]["value"] == pytest.approx(float(ref), abs=1e-4), column
    # FiVE-Acc: the excluded item (3 frames), no failures, and the calls
    assert res["five_acc_excluded"]["value"] == 1 and res["five_acc/judge_failed"]["value"] == 0
    index = frame_index(pred)
    ours = sorted((*sent_frames(p, index), user_text(p)) for p in judge.payloads)
    theirs = sorted((c["video"], c["frames"], c["text"]) for c in rec["five_acc_calls"])
    assert [(a, b, c) for a, b, c in ours] == [(a, b, c) for a, b, c in theirs]
    assert {p["max_tokens"] for p in judge.payloads} == {c["max_new_tokens"] for c in rec["five_acc_calls"]} == {128}
    assert all("temperature" not in p and p["model"] == "judge-m" for p in judge.payloads)


def test_five_acc_reading_and_frames():
    """The reply prefixes and the frame stride as FiVE's get_score / run_each_iter (their cases, by hand)."""
    from omnieval.metrics.five_acc import (
        item_values,
        judged_frames,
        prompt,
        read_answers,
    )

    assert judged_frames(40, 4) == [2, 6, 10, 14, 18, 22, 26, 30, 34, 38]
    assert judged_frames(17, 4) == [2, 6, 10, 14] and judged_frames(9, 4) == [2, 6] and judged_frames(3, 4) is None
    assert read_answers(" B) a truck", "No.", "Yes") == (1, 1)
    assert read_answers("a", "Not really", "yes") == (1, 0)            # "no" is a prefix of "not": counted as no
    assert read_answers("b", None, "Yeah") == (0, 1)                   # "yea" != "yes"
    assert item_values(1, 0) == dict(zip(FIVE_ACC, (1.0, 0.0, 1.0, 0.0, 0.5)))
    assert prompt("yes_no", "Q?") == "Answer the following question using only 'YES' or 'NO:\nQ?"
    assert prompt("multi_choice", "Q?") == "Select the correct answer from the given choices, onlyt output the answer:\nQ?"


def test_judge_failures_are_retried_not_scored(tmp_path):
    """A judge outage: items are marked for retry (judge_failed), never scored; the next run asks again and scores."""
    state = {"down": True}

    def respond(payload, index):
        if state["down"]:
            return 503, {"error": "overloaded"}, {}
        return ok(F.five_reply(user_text(payload)))

    pred = F.make_five_edits(tmp_path / "pred")
    with FakeJudge(respond) as judge:
        swap = tiny_swaps({}, judge.url)
        name = F.tiny_task_variant(TASK_FILE, "five_bench", tmp_path / "tasks",
                                   option_swaps=lambda n, o: swap(n, o) if n == "five_acc" else o)
        import yaml

        path = tmp_path / "tasks" / f"{name}.yaml"
        doc = yaml.safe_load(path.read_text())
        doc["metrics"] = [m for m in doc["metrics"] if m["name"] == "five_acc"]
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        write_manifest(pred, name)
        out = tmp_path / "out"
        args = ["run", "--model", "predictions", "--model_args", f"path={pred}", "--tasks", name, "--output_path", str(out),
                "--include_path", str(tmp_path / "tasks"), "--dataset", f"{name}={FIXTURE}"]
        assert main(args) == 0  # not status 3: the 3-frame item is excluded (never judged), not failed
        res = json.loads((out / "results.json").read_text())["results"][name]
        assert res["judge_failed"]["value"] == 6 and "five_acc" not in res
        state["down"] = False
        assert main(args) == 0
        res = json.loads((out / "results.json").read_text())["results"][name]
    assert res["judge_failed"]["value"] == 0 and res["five_acc_excluded"]["value"] == 1
    # per type: 1: (1, 0); 2: 1; 3: excluded; 4: 0.5; 5: 0.5; 6: 0.5 -> macro over the five typed values
    assert res["five_acc"]["value"] == pytest.approx(np.mean([0.5, 1.0, 0.5, 0.5, 0.5]))
    assert res["five_acc[editing_type_id=1]"]["value"] == pytest.approx(0.5)


@pytest.mark.slow
def test_end_to_end_omnivideo_tiny_think_both(tmp_path):
    """The task as written (every metric), tiny networks, the fake judge, the model edits the fixture think off/on."""
    nets = tiny_nets(tmp_path / "nets")
    with FakeJudge(lambda payload, i: ok(F.five_reply(user_text(payload)))) as judge:
        name = task_variant(tmp_path, tiny_swaps(nets, judge.url), generation=dict(F.TINY_GENERATION, num_frames=9))
        out = tmp_path / "out"
        assert main(["run", "--model", "omnivideo-tiny", "--model_args",
                     "route=false,think_max_new_tokens=4,edit_sampling_rate=1,edit_skip_num=0", "--tasks", name,
                     "--think", "both", "--output_path", str(out), "--include_path", str(tmp_path / "tasks"),
                     "--dataset", f"{name}={FIXTURE}"]) == 0
    data = json.loads((out / "results.json").read_text())
    for key in (name, f"{name}@think"):
        values = data["results"][key]
        for column in ("structure_distance", "psnr_unedit_part", "lpips_unedit_part", "mse_unedit_part", "ssim_unedit_part",
                       "clip_similarity_source_image", "clip_similarity_target_image",
                       "clip_similarity_target_image_edit_part", *FIVE_ACC):
            assert column in values and np.isfinite(values[column]["value"]), (key, column)
        assert "structure_distance[editing_type_id=6]" in values
        assert values["five_acc/judge_failed"]["value"] == 0
    assert "five_acc" in data["ablations"][name] and "structure_distance" in data["ablations"][name]
    info = data["metric_options"][name]["structure_distance"]["info"]["off"]
    assert info["items_with_other_size"] == 7  # 32x32 edits resized to the 48x64 / 40x56 sources


def test_macro_mean_over_groups():
    """Mean per group, then over groups; a group without a value for a key is left out of that key's mean (FiVE's
    N/A per-type cell); counted keys are sums; without ``macro_over`` the plain mean over items."""
    from omnieval.metrics.base import MetricInput
    from omnieval.registry import get_metric

    metric = get_metric("five_acc")(base_url="http://127.0.0.1:9/v1", api_key_env="")
    rows = [("1", {"five_acc": 1.0}), ("1", {"five_acc": 0.0}), ("2", {"five_acc": 1.0}), ("3", {}), ("3", {"judge_failed": 1.0})]
    for group, values in rows:
        metric.fold({**metric.group_of(MetricInput("x", None, doc={"editing_type_id": group})), **values})
    assert metric.compute() == {"judge_failed": 1.0, "five_acc_excluded": 0.0, "five_acc": 0.75}
    plain = get_metric("five_acc")(base_url="http://127.0.0.1:9/v1", api_key_env="", macro_over=None)
    for _, values in rows:
        plain.fold(values)
    assert plain.compute()["five_acc"] == pytest.approx(2 / 3)


def test_bad_masks_name_the_file(tmp_path):
    import shutil

    from omnieval.errors import MediaError
    from omnieval.media import Video
    from omnieval.metrics.base import MetricInput
    from omnieval.registry import get_metric

    data = tmp_path / "five"
    shutil.copytree(FIXTURE, data)
    video = Video(np.zeros((3, 48, 64, 3), np.uint8))
    metric = get_metric("five_pixels")(measure="psnr")

    def item():
        return MetricInput("0001_bus/x", video, doc={"__media_root__": str(data), "media": "images/0001_bus",
                                                     "mask": "bmasks/0001_bus", "editing_type_id": "1"})

    Image.new("RGB", (64, 48)).save(data / "bmasks" / "0001_bus" / "00001.jpg")
    with pytest.raises(MediaError, match=r"bmasks/0001_bus/00001.jpg has shape \(48, 64, 3\); evaluate.py needs single-channel"):
        metric.update([item()])
    (data / "bmasks" / "0001_bus" / "00009.jpg").unlink()
    Image.new("L", (64, 48)).save(data / "bmasks" / "0001_bus" / "00001.jpg")
    with pytest.raises(MediaError, match=r"FiVE mask not found: .*bmasks/0001_bus/00009.jpg"):
        metric.update([item()])
