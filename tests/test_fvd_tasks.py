"""Reference-set FVD tasks (UCF-101, MSR-VTT zero-shot): class allocation, split files, the shared pre-step, the
``omnieval stats`` cache, runs through ``omnieval run`` (omnivideo-tiny and predictions) on the bundled official-layout
fixtures, equality with :func:`omnieval.metrics.fvd.compute_fvd`, and protocol separation on leaderboards.

The detector is the small TorchScript stand-in of ``test_fvd`` (features: channel means and mean squares of what the
network receives, plus the call's arguments), so every pixel of the protocol's pre-processing reaches the value.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from omnieval.cli import main
from omnieval.config import load_task_file
from omnieval.errors import ConfigError, MediaError
from omnieval.media import Video, read_video
from omnieval.metrics import fvd
from omnieval.metrics.fvd_reference import ReferenceSet, list_files

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
UCF, MSRVTT = DATA / "ucf101_fixture", DATA / "msrvtt_fixture"
UCF_REF = ReferenceSet(name="ucf101", split="trainlist01", root="UCF-101", list="ucfTrainTestlist/trainlist01.txt")


class _PerClip(torch.nn.Module):
    """A TorchScript stand-in for stylegan-v's I3D whose features depend on each clip alone (not on its batch):
    per-channel mean, mean square and max of the (rescaled) input, the clip's shape and the call's flags."""

    def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False, return_features: bool = False) -> torch.Tensor:
        y = x.float()
        if rescale:
            y = y / 127.5 - 1.0
        b = y.shape[0]
        flat = y.reshape(b, y.shape[1], -1)
        info = torch.tensor([float(rescale), float(resize), float(x.dtype == torch.uint8), float(y.shape[2]),
                             float(y.shape[3]), float(y.shape[4])])
        return torch.cat([flat.mean(2), (flat * flat).mean(2), flat.amax(2), info.expand(b, 6)], dim=1)


@pytest.fixture()
def env(tmp_path, monkeypatch):
    """Stand-in TorchScript I3D as the manifest's i3d_torchscript, a private cache, and a folder for test tasks."""
    ts = tmp_path / "i3d_torchscript.pt"
    torch.jit.script(_PerClip()).save(str(ts))
    monkeypatch.setenv("OMNIEVAL_WEIGHT_I3D_TORCHSCRIPT", str(ts))
    monkeypatch.setenv("OMNIEVAL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MSRVTT_DIR", str(MSRVTT))
    (tmp_path / "tasks").mkdir()
    return tmp_path


def _tiny_task(env: Path, base: str, name: str, dataset: str, **extra: str) -> None:
    """A task that is ``tasks/<base>`` with the tiny model's generation size (omnivideo-tiny cannot make 480 x 832)."""
    lines = [f"include: {REPO / 'tasks' / base}", f"task: {name}", f"dataset: {dataset}",
             "generation: {height: 32, width: 32, num_frames: 17, fps: 8, num_inference_steps: 2}"]
    lines += [f"{k}: {v}" for k, v in extra.items()]
    (env / "tasks" / f"{name}.yaml").write_text("\n".join(lines) + "\n")


def _videos_of(out: Path, task: str, think: str) -> list[Path]:
    rows = [json.loads(line) for line in (out / "samples" / f"{task}.jsonl").read_text().splitlines()]
    return [out / r["artifact"] for r in sorted(rows, key=lambda r: (r["doc_id"], r["sample_index"])) if r["think"] == think]


# -- data ---------------------------------------------------------------------------------------------------
def test_ucf101_classes_and_allocation():
    rows = [json.loads(line) for line in (REPO / "tasks" / "ucf101" / "ucf101_classes.jsonl").read_text().splitlines()]
    names = [r["class_name"] for r in rows]
    assert len(rows) == 101 and names == sorted(names, key=str.lower) and [r["id"] for r in rows] == [str(i) for i in range(1, 102)]
    assert names[36] == "HandstandPushups" and rows[0]["prompt"] == "Apply Eye Makeup" and rows[-1]["prompt_lower"] == "yo yo"
    for column, total in (("n_2048", 2048), ("n_10000", 10000)):
        counts = [r[column] for r in rows]
        base, extra = divmod(total, 101)
        assert sum(counts) == total and set(counts) <= {base, base + 1}
        # the documented even spread: class i gets an extra video where floor((i+1) r / 101) > floor(i r / 101)
        assert counts == [base + ((i + 1) * extra // 101 - i * extra // 101) for i in range(101)]
    tasks = {c.task: c for f in (REPO / "tasks" / "ucf101").glob("ucf101_*.yaml") for c in load_task_file(f)}
    assert tasks["ucf101_fvd"].fields.num_samples == "n_2048" and tasks["ucf101_fvd_10k"].fields.num_samples == "n_10000"
    assert tasks["ucf101_fvd_10k"].metrics[0].options["protocol"] == {"max_videos": 10000}
    assert all(c.think == ("off", "on") for c in tasks.values())


def test_split_file_listing_and_errors(tmp_path):
    files = list_files(UCF, UCF_REF)
    assert [n for n, _ in files] == [line.split()[0] for line in (UCF / "ucfTrainTestlist" / "trainlist01.txt").read_text().splitlines()]
    # the list spells one file HandstandPushups; on disk it is v_HandStandPushups (the official quirk)
    assert files[3][1].name == "v_HandStandPushups_g09_c01.avi" and all(p.is_file() for _, p in files)
    assert not any("_g01_" in n or "_g02_" in n for n, _ in files)  # test-split videos are not in the reference set
    broken = tmp_path / "lists"
    broken.mkdir()
    (broken / "trainlist01.txt").write_text("YoYo/v_YoYo_g99_c01.avi 101\n")
    with pytest.raises(MediaError, match=r"v_YoYo_g99_c01.avi .*not found under .*UCF-101 \(UCF101.rar"):
        list_files(UCF, ReferenceSet(name="ucf101", split="x", root="UCF-101", list=str(broken / "trainlist01.txt"),
                                     download="UCF101.rar"))
    msrvtt = list_files(MSRVTT, ReferenceSet(name="msrvtt", split="test", list="test_videodatainfo.json", list_format="msrvtt"))
    assert [n for n, _ in msrvtt] == ["video7010.mp4", "video7011.mp4", "video7012.mp4"]  # the validate video is dropped


def test_pre_step_conventions():
    clip = np.random.default_rng(0).integers(0, 256, (2, 30, 40, 3), dtype=np.uint8)
    tats = fvd.pre_step(clip, fvd.get_protocol("tats_i3d"))
    sg = fvd.pre_step(clip, fvd.get_protocol("styleganv_256"))
    assert tats.shape == (2, 128, 128, 3) and sg.shape == (2, 256, 256, 3) and tats.dtype == sg.dtype == np.uint8
    # TATS: short side to 128 (long side ceil(40 * 128 / 30) = 171), bilinear on [0, 1] floats, crop, truncate
    x = torch.nn.functional.interpolate(torch.from_numpy(clip).permute(0, 3, 1, 2).float() / 255, size=(128, 171),
                                        mode="bilinear", align_corners=False)[:, :, :, 21:149]
    np.testing.assert_array_equal(tats, (x.permute(0, 2, 3, 1) * 255).to(torch.uint8).numpy())
    # stylegan-v: torchvision resize (PIL Lanczos, long side int(40 * 256 / 30) = 341) then center_crop (rounded offset)
    from PIL import Image
    frame = np.asarray(Image.fromarray(clip[1]).resize((341, 256), Image.LANCZOS))[:, 42:298]
    np.testing.assert_array_equal(sg[1], frame)
    assert fvd.pre_step(clip, fvd.get_protocol("styleganv_16f")) is clip  # no pre-step in the other presets
    assert fvd.get_protocol("tats_i3d").reference_hash() != fvd.get_protocol("tats_i3d", pre_resize=None).reference_hash()


# -- UCF-101 through omnieval run ---------------------------------------------------------------------------
@pytest.mark.slow
def test_ucf101_run_needs_stats_then_equals_compute_fvd(env, capsys):
    _tiny_task(env, "ucf101/ucf101_fvd.yaml", "ucf101_fvd_tiny", f"{{path: {UCF / 'classes.jsonl'}}}")
    run = ["run", "--tasks", "ucf101_fvd_tiny", "--include_path", str(env / "tasks"), "--output_path", str(env / "out"),
           "--think", "both"]
    assert main(run) == 2  # no reference statistics yet: one line, before anything is generated
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "omnieval stats --task ucf101_fvd_tiny --real DIR" in err and "UCF101.rar" in err
    assert not (env / "out" / "samples").exists()

    assert main(["stats", "--task", "ucf101_fvd_tiny", "--include_path", str(env / "tasks"), "--real", str(UCF)]) == 0
    line = capsys.readouterr().out
    assert "reference ucf101/trainlist01" in line and ": 6 videos" in line
    assert len(list((env / "cache" / "fvd").glob("fvd_ref_ucf101-trainlist01_*.npz"))) == 1

    assert main(run) == 0
    results = json.loads((env / "out" / "results.json").read_text())
    info = results["metric_options"]["ucf101_fvd_tiny"]["fvd"]["info"]
    real = [p for _, p in list_files(UCF, UCF_REF)]
    for think, key in (("off", "ucf101_fvd_tiny"), ("on", "ucf101_fvd_tiny@think")):
        fake = _videos_of(env / "out", "ucf101_fvd_tiny", think)
        assert len(fake) == 6 and all(read_video(p).frames.shape == (17, 32, 32, 3) for p in fake)
        expected = fvd.compute_fvd(real, fake, preset="styleganv_256")
        assert expected > 0
        assert results["results"][key]["fvd"]["value"] == pytest.approx(expected, rel=1e-9)
        assert info[think]["n_generated"] == 6 and info[think]["n_reference"] == 6
        assert info[think]["preset"] == "styleganv_256" and info[think]["reference_set"] == "ucf101/trainlist01"
        assert info[think]["comparable_as"].startswith(f"fvd:{fvd.get_protocol('styleganv_256').hash()}:ucf101/trainlist01:")
    assert "fvd" in results["ablations"]["ucf101_fvd_tiny"]  # think on/off feeds the ablation table


def test_ucf101_predictions_and_other_reference_set_refused(env, tmp_path, capsys):
    """The real task through `predictions` (the test-split clips as "generated" videos); statistics of another set refused."""
    pred = tmp_path / "pred"
    pred.mkdir()
    tests = [line.strip() for line in (UCF / "ucfTrainTestlist" / "testlist01.txt").read_text().splitlines()]
    lines = []
    for doc, rel in zip(("1", "37", "101"), tests):
        shutil.copy(UCF / "UCF-101" / rel, pred / Path(rel).name)  # manifest files live inside path=
        for s in range(2):
            lines.append({"doc_id": doc, "sample_index": s, "think": "off", "file": Path(rel).name})
    (pred / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert main(["stats", "--task", "ucf101_fvd", "--real", str(UCF)]) == 0
    capsys.readouterr()
    out = env / "pred_out"
    args = ["run", "--model", "predictions", "--model_args", f"path={pred}", "--tasks", "ucf101_fvd",
            "--dataset", f"ucf101_fvd={UCF / 'classes.jsonl'}", "--output_path", str(out)]
    assert main(args) == 0
    value = json.loads((out / "results.json").read_text())["results"]["ucf101_fvd"]["fvd"]["value"]
    fake = [pred / x["file"] for x in lines]
    assert value == pytest.approx(fvd.compute_fvd([p for _, p in list_files(UCF, UCF_REF)], fake, preset="styleganv_256"), rel=1e-9)

    # statistics made from another set under the same protocol must not be used for this one
    other = tmp_path / "other.yaml"
    other.write_text(f"include: {REPO / 'tasks/ucf101/ucf101_fvd.yaml'}\ntask: other_set\n"
                     "metrics:\n  - name: fvd\n    options: {preset: styleganv_256, reference: {name: kinetics, split: val, root: UCF-101}}\n")
    assert main(["stats", "--task", "other_set", "--include_path", str(tmp_path), "--real", str(UCF)]) == 0
    npz = next((env / "cache" / "fvd").glob("fvd_ref_kinetics-val_*.npz"))
    metric = fvd.FVD(preset="styleganv_256", reference={"name": "ucf101", "split": "trainlist01"}, reference_stats=str(npz))
    metric.fold({"features": np.ones(15, np.float32)})
    with pytest.raises(ConfigError, match="statistics of kinetics/val, not of ucf101/trainlist01"):
        metric.compute()


def test_msrvtt_zeroshot_run(env, monkeypatch):
    """MSR-VTT: one seeded caption per test video; CLIPSIM = clip_t at scale 1 (plain cosine); FVD against the test videos."""
    from omnieval.tasks import load_docs

    cfg = load_task_file(REPO / "tasks" / "msrvtt" / "msrvtt_zeroshot.yaml")[0]
    docs = load_docs(cfg)
    assert [d.id for d in docs] == ["video7010", "video7011", "video7012"]
    for d in docs:  # the seeded choice is one of the video's captions, and stable
        assert d.fields["prompt"].endswith(f"({d.id} caption {d.fields['sen_id'] - {'video7010': 130003, 'video7011': 130006, 'video7012': 130009}[d.id]})")
    assert [d.fields["sen_id"] for d in docs] == [d.fields["sen_id"] for d in load_docs(cfg)]
    monkeypatch.delenv("MSRVTT_DIR")
    with pytest.raises(ConfigError, match=r"needs \$MSRVTT_DIR, which is not set; download MSR-VTT's test annotations"):
        load_docs(cfg)
    monkeypatch.setenv("MSRVTT_DIR", str(MSRVTT))

    _tiny_task(env, "msrvtt/msrvtt_zeroshot.yaml", "msrvtt_tiny", "{options: {captions: one_per_video, caption_choice: seeded, seed: 0, split: test}}",
               metrics="[{name: clip_t, label: clipsim, options: {backbone: clip-tiny-random, scale: 1.0}}, "
                       "{name: fvd, options: {preset: styleganv_256, protocol: {max_real: null, max_videos: null}, "
                       "reference: {name: msrvtt, split: test, root: '.', list: test_videodatainfo.json, list_format: msrvtt}}}]")
    assert main(["stats", "--task", "msrvtt_tiny", "--include_path", str(env / "tasks"), "--real", str(MSRVTT)]) == 0
    out = env / "out"
    assert main(["run", "--tasks", "msrvtt_tiny", "--include_path", str(env / "tasks"), "--output_path", str(out),
                 "--think", "both"]) == 0
    results = json.loads((out / "results.json").read_text())
    fake = _videos_of(out, "msrvtt_tiny", "off")
    real = sorted((MSRVTT / "TestVideo").glob("*.mp4"))
    value = results["results"]["msrvtt_tiny"]["fvd"]["value"]
    assert value == pytest.approx(fvd.compute_fvd(real, fake, preset="styleganv_256", max_real=None, max_videos=None), rel=1e-9)
    from omnieval.metrics.clip import clip_t
    clipsim = clip_t([read_video(p) for p in fake], [d.fields["prompt"] for d in docs], "clip-tiny-random", scale=1.0)
    assert results["results"]["msrvtt_tiny"]["clipsim/clip_t"]["value"] == pytest.approx(clipsim, abs=1e-6)
    assert -1.0 <= clipsim <= 1.0
    assert set(results["ablations"]["msrvtt_tiny"]) == {"clipsim/clip_t", "fvd"}


# -- leaderboards keep protocols apart -------------------------------------------------------------------------
def _fake_results(path: Path, task: str, value: float, tag: str, model: str = "m") -> Path:
    path.mkdir(parents=True)
    info = {"comparable_as": tag}
    data = {"schema_version": 2, "model": {"name": model, "args": {}, "fingerprint": "x"},
            "results": {task: {"fvd": {"value": value, "higher_is_better": False}},
                        f"{task}@think": {"fvd": {"value": value - 1, "higher_is_better": False}}},
            "ablations": {task: {"fvd": {"off": value, "on": value - 1, "delta": -1.0, "higher_is_better": False}}},
            "metric_options": {task: {"fvd": {"name": "fvd", "options": {}, "info": {"off": info, "on": info}}}}}
    (path / "results.json").write_text(json.dumps(data))
    return path


def test_leaderboards_never_compare_fvds_of_different_protocols(tmp_path):
    from omnieval.leaderboard.render import render_boards

    a = _fake_results(tmp_path / "a", "ucf101_fvd", 300.0, "fvd:p1:ucf101/trainlist01:f1", "A")
    b = _fake_results(tmp_path / "b", "ucf101_fvd", 200.0, "fvd:p2:ucf101/trainlist01:f1", "B")
    c = _fake_results(tmp_path / "c", "ucf101_fvd", 250.0, "fvd:p1:ucf101/trainlist01:f1", "C")
    render_boards([a, b, c], tmp_path / "board")
    md = (tmp_path / "board" / "board.md").read_text()
    tables = re.findall(r"### (ucf101_fvd[^\n]*)\n\n[^\n]*\n\n((?:\|[^\n]*\n)+)", md)
    assert len(tables) == 2  # one table per protocol
    titles = [t for t, _ in tables]
    assert "protocol p1" in titles[0] and "protocol p2" in titles[1]
    assert "A" in tables[0][1] and "C" in tables[0][1] and "B" not in tables[0][1] and "B" in tables[1][1]
    abl = (tmp_path / "board" / "ablations.md").read_text()
    assert "fvd [protocol p1, reference ucf101/trainlist01" in abl and "fvd [protocol p2, reference" in abl
    with pytest.raises(ConfigError, match="different protocols or reference sets"):
        render_boards([(a, ["step=1"]), (b, ["step=2"])], tmp_path / "ck", compare=True)
    render_boards([(a, ["step=1"]), (c, ["step=2"])], tmp_path / "ck2", compare=True)  # same protocol: fine
    single = _fake_results(tmp_path / "d", "ucf101_fvd", 1.0, "fvd:p1:ucf101/trainlist01:f1")
    render_boards([single, c], tmp_path / "same")
    assert (tmp_path / "same" / "board.md").read_text().count("### ucf101_fvd") == 1


def test_fixture_videos_decode():
    for p in list((UCF / "UCF-101").rglob("*.avi")) + list((MSRVTT / "TestVideo").glob("*.mp4")):
        v = read_video(p)
        assert len(v) == 20 and isinstance(v, Video)
