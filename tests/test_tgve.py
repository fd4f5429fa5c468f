"""Text-guided video editing (LOVEU-TGVE-2023 and V2VBench layouts): loaders, end to end with omnivideo-tiny (think
both), and parity with a recording of LOVEU's ``run_eval.py`` functions and V2VBench's evaluators
(``tests/reference/record_tgve.py``, transformers 4.x) on a tiny CLIP -- which needs ``preprocess: pil``."""
from __future__ import annotations

import json
from pathlib import Path

import editing_fixtures as F
import numpy as np
import pytest

from omnieval.cli import main
from omnieval.errors import ConfigError
from omnieval.tasks import REPO_TASKS_DIR, load_docs, resolve_tasks

TASK_FILE = REPO_TASKS_DIR / "editing" / "tgve.yaml"
FIXTURES = REPO_TASKS_DIR / "editing" / "fixtures"
RECORDING = Path(__file__).parent / "data" / "tgve_reference.json"


def test_loaders_and_missing_data(monkeypatch, tmp_path):
    loveu, v2v = resolve_tasks(["loveu_tgve", "v2vbench"])
    docs = load_docs(loveu, str(FIXTURES / "loveu_tgve"))
    assert [d.id for d in docs] == F.loveu_edit_folders()
    assert docs[0].fields["prompt"] == "Several goldfish swim in a tank, van gogh style."
    assert docs[4].fields["subset"] == "videvo_480p" and docs[4].fields["source_caption"] == "A drone flies over a lake."
    vdocs = load_docs(v2v, str(FIXTURES / "v2vbench"))
    assert [d.id for d in vdocs] == F.v2v_edit_folders() and vdocs[0].fields["prompt"] == "a superman hikes through the desert"
    monkeypatch.delenv("LOVEU_TGVE_DIR", raising=False)
    with pytest.raises(ConfigError, match=r"needs \$LOVEU_TGVE_DIR.*loveu-tgve-2023.zip"):
        load_docs(loveu)
    monkeypatch.setenv("V2VBENCH_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match="Wenhao-Sun/V2VBench"):
        load_docs(v2v)


@pytest.mark.slow
def test_end_to_end_omnivideo_tiny_think_both(tmp_path):
    def swap(name, options):
        return dict(options, backbone="clip-tiny-random", device="cpu")
    gen = dict(F.TINY_GENERATION, num_frames=5)
    names = [F.tiny_task_variant(TASK_FILE, t, tmp_path / "tasks", option_swaps=swap, generation=gen) for t in ("loveu_tgve", "v2vbench")]
    out = tmp_path / "out"
    assert main(["run", "--model", "omnivideo-tiny", "--model_args", "route=false,think_max_new_tokens=4", "--tasks", ",".join(names),
                 "--think", "both", "--output_path", str(out), "--include_path", str(tmp_path / "tasks"), "--limit", "2",
                 "--dataset", f"{names[0]}={FIXTURES / 'loveu_tgve'}", "--dataset", f"{names[1]}={FIXTURES / 'v2vbench'}"]) == 0
    res = json.loads((out / "results.json").read_text())["results"]
    for think in ("", "@think"):
        assert {"clip_t", "clip_frame_consistency", "pick_score/clip_t"} <= set(res[names[0] + think])
        assert {"clip_text_alignment/clip_t", "clip_consistency/clip_frame_consistency", "pick_score/clip_t"} <= set(res[names[1] + think])


def test_parity_with_recorded_loveu_and_v2vbench(tmp_path):
    """Per item and mean, 1e-5 (float32 features): clip_t = clip_score_text / ClipTextAlignment, frame consistency
    = clip_score_frame (all pairs) / ClipConsistency (consecutive, pooler output), pick_score = pick_score / PickScore."""
    rec = json.loads(RECORDING.read_text())
    model = F.tiny_hf_clip(tmp_path / "tinyclip")
    assert F.weights_checksum_dir(model) == pytest.approx(rec["checksum"], rel=1e-9)
    edited = {"loveu_tgve": (F.make_edited_videos(tmp_path / "pred", F.loveu_edit_folders()), F.loveu_edit_folders()),
              "v2vbench": (F.make_edited_videos(tmp_path / "pred", F.v2v_edit_folders(), suffix=".png"), F.v2v_edit_folders())}
    lines = [json.dumps({"task": f"{t}_tiny", "doc_id": rel, "file": rel}) for t, (_, rels) in edited.items() for rel in rels]
    (tmp_path / "pred" / "manifest.jsonl").write_text("\n".join(lines) + "\n")

    def swap(name, options):
        return dict(options, backbone_path=str(model), device="cpu")
    names = [F.tiny_task_variant(TASK_FILE, t, tmp_path / "tasks", option_swaps=swap) for t in ("loveu_tgve", "v2vbench")]
    out = tmp_path / "out"
    assert main(["run", "--model", "predictions", "--model_args", f"path={tmp_path / 'pred'}", "--tasks", ",".join(names),
                 "--output_path", str(out), "--include_path", str(tmp_path / "tasks"), "--log_samples",
                 "--dataset", f"{names[0]}={FIXTURES / 'loveu_tgve'}", "--dataset", f"{names[1]}={FIXTURES / 'v2vbench'}"]) == 0
    res = json.loads((out / "results.json").read_text())["results"]
    checks = {"loveu": (names[0], {"clip_t": ("clip_t", "clip_score_text"),
                                   "clip_frame_consistency": ("clip_frame_consistency", "clip_score_frame"),
                                   "pick_score": ("pick_score/clip_t", "pick_score")}),
              "v2vbench": (names[1], {"clip_text_alignment": ("clip_text_alignment/clip_t", "clip_text_alignment"),
                                      "clip_consistency": ("clip_consistency/clip_frame_consistency", "clip_consistency"),
                                      "pick_score": ("pick_score/clip_t", "pick_score")})}
    for bench, (task, metrics) in checks.items():
        samples = {json.loads(x)["doc_id"]: json.loads(x)["scores"]
                   for x in (out / "samples" / f"{task}.scored.jsonl").read_text().splitlines()}
        for label, (result_name, ref_name) in metrics.items():
            ref = {k: v[ref_name] for k, v in rec[bench].items()}
            key = {"clip_t": "clip_t", "pick_score": "clip_t", "clip_text_alignment": "clip_t"}.get(label, "clip_frame_consistency")
            for doc_id, value in ref.items():
                assert samples[doc_id][label][key] == pytest.approx(value, abs=1e-5), (bench, label, doc_id)
            assert res[task][result_name]["value"] == pytest.approx(np.mean(list(ref.values())), abs=1e-5), (bench, label)


def test_pil_preprocessing_matters():
    """The torchvision backend (transformers 5's default) moves CLIP-T; ``preprocess: pil`` is what the references ran."""
    from omnieval.media import Video
    from omnieval.metrics.base import MetricInput
    from omnieval.registry import get_metric

    rng = np.random.default_rng(0)
    video = Video(np.stack([F.smooth_image(rng, (37, 53)) for _ in range(3)]))
    values = {}
    for pre in ("default", "pil"):
        m = get_metric("clip_t")(backbone="clip-tiny-random", device="cpu", preprocess=pre)
        m.update([MetricInput("x", video, prompt="a red square")])
        values[pre] = m.compute()["clip_t"]
    assert values["default"] != pytest.approx(values["pil"], abs=1e-6)
