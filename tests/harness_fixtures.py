"""A deterministic fake model and cheap metrics for testing the harness (runner, store, CLI).

Importing this module registers them; subprocess tests import it before calling the CLI.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from omnieval.media import Video, as_frames
from omnieval.metrics.base import MeanMetric, Metric
from omnieval.models.base import Generation, Model
from omnieval.registry import register_metric, register_model

CALLS_FILE_ENV = "OMNIEVAL_TEST_CALLS_FILE"


def _pixels(seed: int, prompt: str, shape) -> np.ndarray:
    digest = int(hashlib.sha256(f"{seed}:{prompt}".encode()).hexdigest()[:8], 16)
    return np.random.default_rng(digest).integers(0, 256, size=shape, dtype=np.uint8)


@register_model("fake-test", description="deterministic fake model for harness tests")
class FakeModel(Model):
    capabilities = ("understand", "t2i", "t2v", "long_video", "edit_image", "edit_video")
    output_irrelevant_args = Model.output_irrelevant_args + ("delay",)

    def __init__(self, delay: float = 0.0, fail_construct: bool = False, **kwargs):
        if fail_construct:
            raise RuntimeError("the model must not be loaded")
        super().__init__(delay=delay, **kwargs)
        self.delay = float(delay)

    def _log(self, n: int) -> None:
        if self.delay:
            time.sleep(self.delay * n)
        path = os.environ.get(CALLS_FILE_ENV)
        if path:
            with open(path, "a") as f:
                f.write(f"{n}\n")

    def understand(self, requests):
        self._log(len(requests))
        return ["(B) because" if "even" in r.prompt else "A" for r in requests]

    def generate_image(self, requests):
        self._log(len(requests))
        return [Generation(_pixels(r.seed + 1000 * r.think, r.prompt, (r.setting("height", 16), r.setting("width", 16), 3)),
                           {"rewritten_prompt": r.prompt.upper() if r.think else None}) for r in requests]

    def generate_video(self, requests):
        self._log(len(requests))
        return [Video(_pixels(r.seed + 1000 * r.think, r.prompt, (r.setting("num_frames", 4), r.setting("height", 16),
                                                                   r.setting("width", 16), 3)), fps=r.setting("fps", 8))
                for r in requests]

    def edit_image(self, requests):
        self._log(len(requests))
        return [np.ascontiguousarray(255 - r.media) for r in requests]

    def edit_video(self, requests):
        self._log(len(requests))
        return [Video(255 - r.media.frames, r.media.fps) for r in requests]


@dataclass(frozen=True)
class BrightnessOptions:
    scale: float = 1.0


@register_metric("test_brightness", description="mean pixel value / 255 (test metric)", capability="t2i,t2v")
class Brightness(MeanMetric):
    Options = BrightnessOptions

    def score(self, inputs):
        path = os.environ.get(CALLS_FILE_ENV)
        if path:
            with open(path, "a") as f:
                f.write(f"score {len(inputs)}\n")
        return [{"brightness": float(as_frames(x.output).mean() / 255.0 * self.options.scale)} for x in inputs]


@register_metric("test_answer_a", description="fraction of answers starting with A (test metric)", capability="understand")
class AnswerIsA(MeanMetric):
    def score(self, inputs):
        return [{"is_a": float(str(x.output).startswith("A")), "parsed": str(x.output)[:1]} for x in inputs]


@register_metric("test_feature_spread", description="distribution metric over pixel-mean features (test)", capability="t2v")
class FeatureSpread(Metric):
    """Variance of per-item features, folded from running sums (exercises array contributions)."""

    bootstrap = False
    higher_is_better = False

    def contributions(self, inputs):
        return [{"features": as_frames(x.output).reshape(-1, 3).mean(0).astype(np.float64)} for x in inputs]

    def reset(self):
        self.n, self.s, self.ss = 0, np.zeros(3), np.zeros(3)

    def fold(self, c):
        self.n += 1
        self.s += c["features"]
        self.ss += c["features"] ** 2

    def merge(self, other):
        self.n += other.n
        self.s += other.s
        self.ss += other.ss

    def compute(self):
        mean = self.s / self.n
        return {"spread": float((self.ss / self.n - mean**2).sum())}


def write_tasks(folder: Path, media_dir: Path | None = None) -> Path:
    """Write a small group `harness` of tasks (t2i, t2v, understand) with local data into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    prompts = [{"id": f"p{i}", "prompt": f"a red ball number {i}"} for i in range(4)]
    (folder / "prompts.jsonl").write_text("".join(json.dumps(p) + "\n" for p in prompts))
    (folder / "h_t2i.yaml").write_text(
        "task: h_t2i\ngroup: [harness]\ncapability: t2i\ndataset: {path: prompts.jsonl}\n"
        "generation: {height: 8, width: 8, seed: 7, samples_per_prompt: 2, batch_size: 3}\n"
        "think: [off, on]\nmetrics:\n  - name: test_brightness\n")
    (folder / "h_t2v.yaml").write_text(
        "task: h_t2v\ngroup: [harness]\ncapability: t2v\ndataset: {path: prompts.jsonl}\n"
        "generation: {height: 8, width: 8, num_frames: 3, fps: 4, seed: 1}\n"
        "metrics:\n  - name: test_brightness\n  - name: test_feature_spread\n")
    questions = [{"id": f"q{i}", "question": f"is {i} even?" if i % 2 == 0 else f"is {i} odd?", "video": "clip.mp4",
                  "options": ["yes", "no"], "answer": "B"} for i in range(3)]
    (folder / "qa.jsonl").write_text("".join(json.dumps(q) + "\n" for q in questions))
    from omnieval.media import write_video

    write_video(Video(_pixels(0, "clip", (4, 8, 8, 3)), fps=4), folder / "clip.mp4")
    (folder / "h_qa.yaml").write_text(
        "task: h_qa\ngroup: [harness]\ncapability: understand\ndataset: {path: qa.jsonl}\n"
        "fields: {prompt: question, media: video, choices: options, reference: answer}\n"
        "prompt_template: \"{question}\\n{choices_text}\"\nmetrics: [test_answer_a]\n")
    return folder


def write_batch_task(folder: Path) -> Path:
    """Add task ``c_t2i`` (13 docs, CLIPScore on the built-in tiny CLIP + brightness) to a :func:`write_tasks` folder.
    A batched network: an item's CLIPScore moves (~1e-5) with the other items of its batch, so sharding and resuming
    tests on it see any change of batch composition."""
    prompts = [{"id": f"p{i}", "prompt": f"a red ball number {i} on a {['table', 'road', 'hill'][i % 3]}"} for i in range(13)]
    (folder / "many.jsonl").write_text("".join(json.dumps(p) + "\n" for p in prompts))
    (folder / "c_t2i.yaml").write_text(
        "task: c_t2i\ncapability: t2i\ndataset: {path: many.jsonl}\ngeneration: {height: 32, width: 32, seed: 7}\n"
        "metrics:\n  - {name: clip_score, options: {backbone: clip-tiny-random, clamp: false}}\n"
        "  - {name: test_brightness}\n")
    return folder


def read_records(out: Path, kind: str, unique: bool = True) -> dict[str, dict]:
    """Every record of ``kind`` (samples, scores, failures) in an output folder, checking that no file has a torn
    last line and (``unique``) that no key is recorded twice."""
    found: dict[str, dict] = {}
    for path in sorted((Path(out) / kind).glob("*.jsonl")):
        raw = path.read_bytes()
        assert raw.endswith(b"\n"), f"torn last line in {path}"
        for line in raw.decode().splitlines():
            rec = json.loads(line)
            assert not unique or rec["key"] not in found, f"duplicate record {rec['key']} in {path}"
            found[rec["key"]] = rec
    return found


@dataclass(frozen=True)
class ConstantOptions:
    name: str = "value"
    value: float = 0.5


@register_metric("test_constant", description="reports a fixed value per item under a chosen name (test)")
class Constant(MeanMetric):
    Options = ConstantOptions

    def score(self, inputs):
        return [{self.options.name: self.options.value} for _ in inputs]
