"""A full VBench pass: vbench 0.1.5's own ``VBench.evaluate`` vs ``omnieval run`` on the same folder, and the limit.

    PYTHONPATH=. python bench/bench_vbench_full.py [--prompts 1] [--samples 2] [--frames 8] [--height 256]
        [--width 256] [--fps 8] [--threads 2] [--dims all|subject_consistency,...] [--repeat 1] [--keep DIR]

The default (every dimension vbench can run here but human_action, 12 videos of 8 frames at 256 x 256) takes about
3 minutes on this machine's 2 cores when they are free, ``--dims all`` (adds human_action, 14 videos) about 4.5,
plus a minute to write the random weights (up to 8 GB, in a temporary folder).  In one process, imports done before
any timing:

1. **Videos.**  A VBench-named folder (``{prompt}-{index}.mp4``, H.264 yuv420p crf 23, lossy like generated
   videos): for every dimension, the first ``--prompts`` prompts of VBench's standard suite that belong to it,
   ``--samples`` videos each.  Prompts keep all their suite dimensions, so one video is scored by several
   dimensions, as in the real suite (subject_consistency / dynamic_degree / motion_smoothness share prompts, so do
   aesthetic_quality / imaging_quality / overall_consistency).  Content: a smooth random texture panning at a
   per-video speed, a textured ellipse moving across it, light noise.
2. **Weights.**  Random-init networks at their real sizes (the builders of ``bench_vbench_dims.py``, seed 0),
   written once in omnieval's layout (``$OMNIEVAL_WEIGHTS_DIR`` with the manifest's file names) and linked or
   converted into vbench's (``$VBENCH_CACHE_DIR``): the same tensors on both sides.  The UMT head is biased
   towards the prompts' Kinetics classes (as in ``tests/test_vbench_human_action_parity.py``) so that
   human_action is not trivially 0.  Work-arounds for running vbench offline (``shared/reference/environment.md``
   section 3): CLIP ViT-B/32 and ViT-L/14 as TorchScript archives (what ``clip.load`` reads in vbench's
   ``local=True`` mode; openai-clip rebuilds the plain model from the archive's state dict), DINO through
   ``torch.hub.load(source='local')`` on a generated ``hubconf.py`` (DINO's repository is not available
   offline: the stand-in is timm's ViT-B/16 with DINO's forward -- CLS after the final norm, position embeddings
   interpolated the DINO way for non-square frames), RAFT / AMT-S / MUSIQ / ViCLIP / UMT files where vbench looks
   for them.  human_action also needs two patches of vbench's environment: a stand-in ``numpy.lib.function_base``
   (numpy 2; never called) and timm's ``vit_large_patch16_224`` entry dropping the ``cache_dir`` argument that
   timm 1.0.31 passes (vbench pins timm <= 1.0.12).
3. **vbench**: ``VBench('cpu', <subset of VBench_full_info.json>, out).evaluate(folder, dimension_list=...,
   local=True, mode='vbench_standard')``; per dimension, the time of its ``compute_<dimension>`` (loading its
   networks, decoding, computing).
4. **omnieval**: ``omnieval run --model predictions --model_args path=FOLDER,naming=vbench --tasks vbench_bench
   --include_path TMP --log_samples`` (in-process, through ``omnieval.cli.main``); ``vbench_bench`` is the
   standard ``tasks/vbench/vbench.yaml`` restricted to the subset and the chosen dimensions (temporal_flickering
   with ``static_filter: false``: vbench's ``evaluate`` does not run the static filter either -- its protocol
   runs ``static_filter.py`` as a separate step).  Timed: the whole run (**end to end from files**: the
   predictions import, every decode, network loading, scoring, aggregation, writing), and per dimension the time
   inside the metric's ``contributions`` (**metric compute on decoded frames**, its network loading included)
   plus the decoding done for it (a run of decodes is charged evenly to the metrics called after it and before
   the next decode; decodes made by the model, i.e. the predictions import, are reported on their own).  This
   measures whatever the runner does: with a runner that decodes each item once for all its metrics, the decode
   column shrinks by itself.
5. **Limit**: each file decoded once (PyAV, as omnieval reads), each network loaded once (CLIP ViT-B/32 shared by
   background_consistency and appearance_style, ViCLIP by temporal_style and overall_consistency), and only the
   network forward passes the dimensions need, in their fastest form here (omnieval's: fused UMT attention,
   RAFT with each frame's features computed once and only the pairs each video needs before its dynamic_degree
   decision is known), on inputs prepared beforehand (untimed), frames batched across videos.  omnieval / limit
   is the harness's overhead over the network work.

Times are wall seconds and CPU seconds of this process (all threads).  On a machine shared with other jobs the CPU
seconds are the steadier measure; ``--repeat N`` runs the three passes N times, interleaved, and keeps the
smallest time of each.

Values: every dimension's value from both sides must agree within the tolerance of its parity test
(``tests/test_vbench_core.py``, ``test_vbench_dims.py``, ``test_vbench_quality_parity.py``,
``test_vbench_human_action_parity.py``), per video too; the exit status is 1 otherwise.  object_class,
multiple_objects, color, spatial_relationship (GRiT: detectron2 is not installable) and scene (Tag2Text: needs
transformers 4.33.2) cannot run under vbench here.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

#: dimensions vbench 0.1.5 runs here (with the work-arounds above), in VBench's leaderboard order
RUNNABLE = ("subject_consistency", "background_consistency", "temporal_flickering", "motion_smoothness",
            "dynamic_degree", "aesthetic_quality", "imaging_quality", "human_action", "temporal_style",
            "appearance_style", "overall_consistency")
#: the default: human_action's UMT-L/16 costs about 20 s per video per pass on one core (add it with --dims all)
DEFAULT_DIMS = tuple(d for d in RUNNABLE if d != "human_action")
#: |omnieval - vbench| allowed per dimension (the parity tests' tolerances)
TOLERANCE = {
    "subject_consistency": 1e-6, "background_consistency": 1e-6, "temporal_flickering": 1e-6,
    "motion_smoothness": 1e-6, "dynamic_degree": 0.0, "aesthetic_quality": 1e-6, "imaging_quality": 1e-7,
    "human_action": 0.0, "temporal_style": 1e-6, "appearance_style": 1e-6, "overall_consistency": 1e-6,
}
#: vbench's per-video values are on another scale for imaging_quality (0-100; omnieval divides by 100)
PER_VIDEO_SCALE = {"imaging_quality": 100.0}
#: omnieval metric options per dimension in the bench task (everything else: the task's defaults)
METRIC_OPTIONS = {"temporal_flickering": {"static_filter": False}}


# ---------------------------------------------------------------------------------------------
# Videos and the prompt subset
# ---------------------------------------------------------------------------------------------
def synthetic_video(seed: int, frames: int, height: int, width: int, fps: float):
    """A smooth random texture panning by a per-video speed, a textured ellipse moving across it, light noise."""
    import cv2

    from omnieval.media import Video

    rng = np.random.default_rng(seed)
    speed = rng.uniform(0.0, 3.0)  # px / frame of the background pan; some videos barely move
    angle = rng.uniform(0, 2 * np.pi)
    pad = int(np.ceil(speed * frames)) + 2
    coarse = rng.uniform(0, 255, size=((height + 2 * pad) // 16 + 2, (width + 2 * pad) // 16 + 2, 3)).astype(np.float32)
    background = cv2.resize(coarse, ((width + 2 * pad) // 16 * 16 + 32, (height + 2 * pad) // 16 * 16 + 32), interpolation=cv2.INTER_CUBIC)
    detail = rng.normal(0, 12, size=background.shape).astype(np.float32)
    background = np.clip(background + cv2.GaussianBlur(detail, (0, 0), 1.5), 0, 255)
    blob_color = rng.uniform(40, 215, size=3)
    radius = np.array([height, width]) * rng.uniform(0.12, 0.25, size=2)
    start = np.array([height, width]) * rng.uniform(0.25, 0.75, size=2)
    velocity = rng.normal(0, 2.0, size=2)
    yy, xx = np.mgrid[0:height, 0:width]
    out = []
    for t in range(frames):
        dy, dx = pad + speed * t * np.sin(angle), pad + speed * t * np.cos(angle)
        frame = background[int(dy) : int(dy) + height, int(dx) : int(dx) + width].copy()
        cy, cx = start + velocity * t
        inside = ((yy - cy) / radius[0]) ** 2 + ((xx - cx) / radius[1]) ** 2 <= 1.0
        frame[inside] = 0.6 * blob_color + 0.4 * frame[inside]
        frame += rng.normal(0, 2.0, size=frame.shape)
        out.append(np.clip(frame, 0, 255).astype(np.uint8))
    return Video(np.stack(out), fps=fps)


@dataclass
class Suite:
    """The prompt subset: VBench's own ``VBench_full_info.json`` entries and omnieval's docs for the same rows."""

    vbench_entries: list[dict]
    docs: list[dict]
    files: list[Path] = field(default_factory=list)


def select_prompts(dims: tuple[str, ...], per_dimension: int, samples: int) -> Suite:
    """The first ``per_dimension`` suite prompts of every dimension in ``dims`` (in suite order), their dimension
    lists restricted to ``dims``."""
    import vbench

    reference = json.loads((Path(vbench.__file__).parent / "VBench_full_info.json").read_text())
    ours = [json.loads(line) for line in (ROOT / "tasks" / "vbench" / "vbench_full_info.jsonl").read_text().splitlines() if line.strip()]
    assert len(ours) == len(reference) and all(o["prompt"] == r["prompt_en"] for o, r in zip(ours, reference))
    chosen: list[int] = []
    for dim in dims:
        rows = [i for i, r in enumerate(reference) if dim in r["dimension"]]
        chosen += [i for i in rows[:per_dimension] if i not in chosen]
    chosen.sort()
    suite = Suite([], [])
    for i in chosen:
        kept = [d for d in reference[i]["dimension"] if d in dims]
        suite.vbench_entries.append(dict(reference[i], dimension=kept))
        suite.docs.append(dict(ours[i], dimension=kept, num_samples=samples))
    return suite


def write_folder(suite: Suite, folder: Path, samples: int, frames: int, height: int, width: int, fps: float) -> None:
    from omnieval.media import write_video
    from omnieval.naming import video_filename

    folder.mkdir(parents=True, exist_ok=True)
    for n, doc in enumerate(suite.docs):
        for index in range(samples):
            video = synthetic_video(1000 * n + index, frames, height, width, fps)
            suite.files.append(write_video(video, folder / video_filename(doc["prompt"], index), codec="libx264"))


def write_task(suite: Suite, dims: tuple[str, ...], directory: Path) -> Path:
    """``vbench_bench``: the standard ``tasks/vbench/vbench.yaml`` on the subset, only ``dims``."""
    import yaml

    directory.mkdir(parents=True, exist_ok=True)
    data = directory / "vbench_bench.jsonl"
    data.write_text("".join(json.dumps(doc) + "\n" for doc in suite.docs))
    from omnieval.config import resolve_includes

    source = ROOT / "tasks" / "vbench" / "vbench.yaml"
    task = resolve_includes(yaml.safe_load(source.read_text()), source)  # its shared part, _vbench_common.yaml
    task.update(task="vbench_bench", group=["vbench_bench"], dataset={"path": str(data)}, think=["off"])
    task.pop("aggregates", None)  # Total/Quality/Semantic need all 16 dimensions
    task["metrics"] = [dict(m, **({"options": METRIC_OPTIONS[m["where"]["dimension"]]} if m["where"]["dimension"] in METRIC_OPTIONS else {}))
                       for m in task["metrics"] if m["where"]["dimension"] in dims]
    (directory / "vbench_bench.yaml").write_text(yaml.safe_dump(task, sort_keys=False))
    return directory


# ---------------------------------------------------------------------------------------------
# Random weights: omnieval's layout, then vbench's
# ---------------------------------------------------------------------------------------------
#: weight key (bench_vbench_dims.WEIGHTS) -> (manifest id, dimensions that need it)
NETWORKS = {
    "dino": ("vbench_dino_vitb16", ("subject_consistency",)),
    "clip_b32": ("vbench_clip_vit_b32", ("background_consistency", "appearance_style")),
    "clip_l14": ("vbench_clip_vit_l14", ("aesthetic_quality",)),
    "laion_head": ("vbench_laion_aesthetic", ("aesthetic_quality",)),
    "viclip": ("vbench_viclip", ("temporal_style", "overall_consistency")),
    "musiq": ("vbench_musiq_spaq", ("imaging_quality",)),
    "raft": ("vbench_raft_things", ("dynamic_degree",)),
    "amt": ("vbench_amt_s", ("motion_smoothness",)),
    "umt": ("vbench_umt_l16", ("human_action",)),
}

DINO_HUBCONF = '''"""Stand-in for facebookresearch/dino's hubconf (not available offline), written by bench_vbench_full.py.

timm's ViT-B/16 (DINO's architecture: qkv bias, LayerNorm eps 1e-6) with DINO's forward: the CLS token after the
final norm, position embeddings interpolated DINO's way (bicubic, +0.1) when the frame is not 224 x 224."""
dependencies = ["torch", "timm"]


def dino_vitb16(pretrained=True, path=None, **kwargs):
    import timm
    import torch

    from omnieval.metrics.vbench.consistency import dino_features

    class DinoViT(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.vit = timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=0)

        def forward(self, x):
            return dino_features(self.vit, x)

    model = DinoViT()
    if pretrained:
        model.vit.load_state_dict(torch.load(path, map_location="cpu"), strict=True)
    return model
'''


def clip_jit_archive(safetensors_path: Path, target: Path) -> Path:
    """A TorchScript archive holding the CLIP state dict (what vbench's ``clip.load(<file>)`` reads)."""
    import clip.model
    import torch
    from safetensors.torch import load_file

    model = clip.model.build_model(load_file(str(safetensors_path))).float().eval()
    size = model.visual.input_resolution
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, (torch.zeros(1, 3, size, size), clip.tokenize(["a"])), check_trace=False)
    target.parent.mkdir(parents=True, exist_ok=True)
    traced.save(str(target))
    return target


def _link(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        target.unlink()
    os.link(source, target)
    return target


def vbench_layout(paths: dict[str, Path], cache: Path) -> None:
    """Put the same weights where vbench 0.1.5 looks for them with ``local=True``."""
    import torch

    from omnieval.metrics.vbench.viclip_dims import ensure_viclip_bpe

    placed = {
        "raft": cache / "raft_model" / "models" / "raft-things.pth",
        "amt": cache / "amt_model" / "amt-s.pth",
        "musiq": cache / "pyiqa_model" / "musiq_spaq_ckpt-358bb6af.pth",
        "laion_head": cache / "aesthetic_model" / "emb_reader" / "sa_0_4_vit_l_14_linear.pth",
        "viclip": cache / "ViCLIP" / "ViClip-InternVid-10M-FLT.pth",
        "umt": cache / "umt_model" / "l16_ptk710_ftk710_ftk400_f16_res224.pth",
    }
    for key, target in placed.items():
        if key in paths:
            _link(paths[key], target)
    if "dino" in paths:
        hub = cache / "dino_model" / "facebookresearch_dino_main"
        hub.mkdir(parents=True, exist_ok=True)
        (hub / "hubconf.py").write_text(DINO_HUBCONF)
        _link(paths["dino"], cache / "dino_model" / "dino_vitbase16_pretrain.pth")
    if "clip_b32" in paths:
        clip_jit_archive(paths["clip_b32"], cache / "clip_model" / "ViT-B-32.pt")
    if "clip_l14" in paths:
        clip_jit_archive(paths["clip_l14"], cache / "clip_model" / "ViT-L-14.pt")
    if "viclip" in paths:
        ensure_viclip_bpe()
    del torch


def bias_umt_head(path: Path, prompts: list[str]) -> None:
    """Make human_action non-trivial with random weights (the recipe of test_vbench_human_action_parity.py): the
    Kinetics classes named by ``prompts`` get bias 1.75 (sigmoid 0.85 is logit 1.735) and head rows with std 0.3,
    every other class bias -2 and rows with std 0.05, so some videos pass the 0.85 threshold and some do not."""
    import torch

    from omnieval.metrics.vbench.semantic_dims import action_label, kinetics_400_names

    state = torch.load(path, map_location="cpu", weights_only=True)
    names = kinetics_400_names()
    labels = sorted({names.index(action_label(p)) for p in prompts if action_label(p) in names})
    gen = torch.Generator().manual_seed(1)
    weight = 0.05 * torch.randn(state["head.weight"].shape, generator=gen)
    bias = torch.full_like(state["head.bias"], -2.0)
    weight[labels] = 0.3 * torch.randn(len(labels), weight.shape[1], generator=gen)
    bias[labels] = 1.75
    state["head.weight"], state["head.bias"] = weight, bias
    torch.save(state, path)


def write_weights(dims: tuple[str, ...], weights_dir: Path, cache: Path, action_prompts: list[str]) -> dict[str, float]:
    """Random weights for ``dims`` (seed 0 each), in both layouts; returns seconds per network."""
    import torch
    from bench_vbench_dims import WEIGHTS

    from omnieval.metrics.weights import spec

    weights_dir.mkdir(parents=True, exist_ok=True)
    paths, seconds = {}, {}
    for key, (weight_id, users) in NETWORKS.items():
        if not set(users) & set(dims):
            continue
        start = time.perf_counter()
        torch.manual_seed(0)
        written = WEIGHTS[key](weights_dir)
        if key == "umt":
            bias_umt_head(written, action_prompts)
        paths[key] = _link(written, weights_dir / spec(weight_id).filename) if written.name != spec(weight_id).filename else written
        seconds[key] = time.perf_counter() - start
    start = time.perf_counter()
    vbench_layout(paths, cache)
    seconds["vbench layout"] = time.perf_counter() - start
    return seconds


# ---------------------------------------------------------------------------------------------
# vbench's environment patches (human_action only)
# ---------------------------------------------------------------------------------------------
def patch_vbench_for_human_action() -> None:
    import types

    import timm.models._registry as timm_registry

    try:
        __import__("numpy.lib.function_base")
    except ImportError:
        stand_in = types.ModuleType("numpy.lib.function_base")

        def disp(*_a, **_k):
            raise RuntimeError("numpy.lib.function_base stand-in: disp is not part of the human_action evaluation")

        stand_in.disp = disp
        sys.modules["numpy.lib.function_base"] = stand_in
    from vbench.third_party.umt.models import modeling_finetune

    builder = modeling_finetune.vit_large_patch16_224

    def without_cache_dir(pretrained=False, **kwargs):
        kwargs.pop("cache_dir", None)
        return builder(pretrained=pretrained, **kwargs)

    timm_registry._model_entrypoints["vit_large_patch16_224"] = without_cache_dir


# ---------------------------------------------------------------------------------------------
# Timing helpers
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Span:
    """Seconds of wall clock and of this process's CPU time (all threads).  On a machine shared with other jobs
    the CPU seconds are the steadier measure of the work done; the wall seconds are what a user waits."""

    wall: float = 0.0
    cpu: float = 0.0

    def __add__(self, other: "Span") -> "Span":
        return Span(self.wall + other.wall, self.cpu + other.cpu)

    def __sub__(self, other: "Span") -> "Span":
        return Span(self.wall - other.wall, self.cpu - other.cpu)

    def __truediv__(self, n: float) -> "Span":
        return Span(self.wall / n, self.cpu / n)


def now() -> Span:
    return Span(time.perf_counter(), time.process_time())


def ratio(a: Span, b: Span) -> Span:
    return Span(a.wall / max(b.wall, 1e-9), a.cpu / max(b.cpu, 1e-9))


def total(spans) -> Span:
    return sum(spans, Span())


def split_decodes(events: list[tuple[str, Span, Any]]) -> tuple[dict[str, Span], dict[str, Span], Span]:
    """Per dimension: time inside ``contributions`` and decode time charged to it, and the decode time spent by
    the model (the predictions import).  A run of decodes is charged evenly to the metrics called after it and
    before the next decode."""
    compute: dict[str, Span] = {}
    decode: dict[str, Span] = {}
    model_decode = Span()
    run, callers, in_calls = Span(), [], False
    for kind, span, what in events + [("decode", Span(), False)]:
        if kind == "decode":
            if what:
                model_decode += span
                continue
            if in_calls:  # a decode after some calls closes the previous run
                for name in callers:
                    decode[name] = decode.get(name, Span()) + run / len(callers)
                run, callers, in_calls = Span(), [], False
            run += span
        else:
            compute[what] = compute.get(what, Span()) + span
            callers.append(what)
            in_calls = True
    return compute, decode, model_decode


@contextlib.contextmanager
def instrument_omnieval(dims: tuple[str, ...], events: list):
    """Time every ``read_video`` (flagging those made by a model) and every VBench metric's ``contributions``."""
    import omnieval.media as media
    from omnieval.registry import get_metric

    originals: list[tuple[Any, str, Any]] = []

    def wrap(owner, name, make):
        originals.append((owner, name, owner.__dict__.get(name, None)))
        setattr(owner, name, make(getattr(owner, name)))

    def timed_read(read):
        def read_video(*args, **kwargs):
            start = now()
            out = read(*args, **kwargs)
            events.append(("decode", now() - start, _called_by_model()))
            return out
        return read_video

    def timed_contributions(contributions, dim):
        def wrapper(self, inputs):
            start = now()
            out = contributions(self, inputs)
            events.append(("compute", now() - start, dim))
            return out
        return wrapper

    wrap(media, "read_video", timed_read)
    for dim in dims:
        cls = get_metric(f"vbench_{dim}")
        wrap(cls, "contributions", lambda f, dim=dim: timed_contributions(f, dim))
    try:
        yield
    finally:
        for owner, name, original in reversed(originals):
            if original is None:
                delattr(owner, name)
            else:
                setattr(owner, name, original)


def _called_by_model() -> bool:
    frame = sys._getframe(2)
    while frame is not None:
        if f"omnieval{os.sep}models{os.sep}" in frame.f_code.co_filename:
            return True
        frame = frame.f_back
    return False


@contextlib.contextmanager
def instrument_vbench(dims: tuple[str, ...], seconds: dict[str, Span]):
    """Time every ``vbench.<dimension>.compute_<dimension>`` that ``VBench.evaluate`` calls."""
    import importlib

    saved = []
    for dim in dims:
        module = importlib.import_module(f"vbench.{dim}")
        original = getattr(module, f"compute_{dim}")

        def timed(*args, _original=original, _dim=dim, **kwargs):
            start = now()
            try:
                return _original(*args, **kwargs)
            finally:
                seconds[_dim] = seconds.get(_dim, Span()) + (now() - start)

        setattr(module, f"compute_{dim}", timed)
        saved.append((module, f"compute_{dim}", original))
    try:
        yield
    finally:
        for module, name, original in saved:
            setattr(module, name, original)


# ---------------------------------------------------------------------------------------------
# The three runs
# ---------------------------------------------------------------------------------------------
@dataclass
class SideResult:
    total: Span
    per_dimension: dict[str, Span]
    values: dict[str, float]
    per_video: dict[str, dict[str, float]]  # dimension -> file name -> value (omnieval's scale)
    extra: dict[str, Any] = field(default_factory=dict)


def run_vbench(suite: Suite, dims: tuple[str, ...], folder: Path, work: Path, out: Path) -> SideResult:
    from vbench import VBench

    info = work / "vbench_subset_full_info.json"
    info.write_text(json.dumps(suite.vbench_entries))
    seconds: dict[str, Span] = {}
    log = io.StringIO()
    with instrument_vbench(dims, seconds), contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        start = now()
        bench = VBench("cpu", str(info), str(out))
        bench.evaluate(videos_path=str(folder), name="bench", dimension_list=list(dims), local=True, mode="vbench_standard")
        elapsed = now() - start
    results = json.loads((out / "bench_eval_results.json").read_text())
    values = {dim: float(results[dim][0]) for dim in dims}
    per_video = {dim: {Path(r["video_path"]).name: float(r["video_results"]) / PER_VIDEO_SCALE.get(dim, 1.0)
                       for r in results[dim][1]} for dim in dims}
    return SideResult(elapsed, seconds, values, per_video)


def run_omnieval(dims: tuple[str, ...], folder: Path, tasks: Path, out: Path) -> SideResult:
    from omnieval.cli import main as omnieval_main

    argv = ["run", "--model", "predictions", "--model_args", f"path={folder},naming=vbench", "--tasks", "vbench_bench",
            "--include_path", str(tasks), "--output_path", str(out), "--log_samples"]
    events: list = []
    log = io.StringIO()
    with instrument_omnieval(dims, events), contextlib.redirect_stdout(log):
        start = now()
        status = omnieval_main(argv)
        elapsed = now() - start
    if status != 0:
        raise RuntimeError(f"omnieval run failed ({status}): {log.getvalue()[-2000:]}")
    compute, decode, model_decode = split_decodes(events)
    data = json.loads((out / "results.json").read_text())
    values = {dim: _metric_value(data["results"]["vbench_bench"], dim) for dim in dims}
    per_video: dict[str, dict[str, float]] = {dim: {} for dim in dims}
    for line in (out / "samples" / "vbench_bench.scored.jsonl").read_text().splitlines():
        rec = json.loads(line)
        name = Path(rec["info"]["source_file"]).name
        for label, contribution in rec["scores"].items():
            dim = label.removeprefix("vbench_")
            if dim in contribution:
                per_video[dim][name] = float(contribution[dim])
    per_dimension = {dim: compute.get(dim, Span()) + decode.get(dim, Span()) for dim in dims}
    extra = {"compute": compute, "decode": decode, "model_decode": model_decode, "timing": data.get("timing", {}),
             "decodes": sum(1 for kind, _, _ in events if kind == "decode"), "command": "omnieval " + " ".join(argv)}
    return SideResult(elapsed, per_dimension, values, per_video, extra)


def _metric_value(metrics: dict, dim: str) -> float:
    """The dimension's value in ``results.json``: the entry named ``dim`` (``<label>/<dim>`` or ``<dim>``)."""
    for key, entry in metrics.items():
        if key == dim or key.endswith("/" + dim):
            return float(entry["value"] if isinstance(entry, dict) else entry)
    raise KeyError(f"no value for {dim} in results.json ({sorted(metrics)})")


# ---------------------------------------------------------------------------------------------
# The limit: decode once, load once, forward passes only (batched across videos)
# ---------------------------------------------------------------------------------------------
#: network -> loader(weight path of its manifest id(s)) ; shared networks are loaded once
def _loaders() -> dict[str, Callable[[], Any]]:
    from omnieval.metrics.vbench import clip_dims, consistency, motion, quality_dims, semantic_dims, viclip_dims
    from omnieval.metrics.weights import resolve

    return {
        "dino": lambda: consistency.load_dino_vitb16(resolve("vbench_dino_vitb16")),
        "clip_b32": lambda: consistency.load_openai_clip(resolve("vbench_clip_vit_b32")),
        "clip_l14": lambda: (consistency.load_openai_clip(resolve("vbench_clip_vit_l14")),
                             clip_dims.load_aesthetic_head(resolve("vbench_laion_aesthetic"))),
        "viclip": lambda: viclip_dims.load_viclip(resolve("vbench_viclip")),
        "musiq": lambda: quality_dims.musiq_network(resolve("vbench_musiq_spaq")),
        "raft": lambda: motion.load_raft(str(resolve("vbench_raft_things")), "cpu"),
        "amt": lambda: motion.load_amt(str(resolve("vbench_amt_s")), "cpu"),
        "umt": lambda: semantic_dims.load_umt(resolve("vbench_umt_l16")),
    }


def _batches(x, size: int):
    return [x[i : i + size] for i in range(0, len(x), size)]


Job = Callable[[], Any]


def _image_jobs(forward, prepare, frames, batch):
    import torch

    x = torch.cat([prepare(f) for f in frames])
    return [lambda b=b: forward(b) for b in _batches(x, batch)]


def _subject_jobs(dino, videos, docs) -> list[Job]:
    from omnieval.metrics.vbench import consistency as C

    return _image_jobs(lambda b: C.dino_features(dino, b), C.dino_input, [v.frames for v in videos], C.BATCH)


def _background_jobs(clip_model, videos, docs) -> list[Job]:
    from omnieval.metrics.vbench import consistency as C

    return _image_jobs(clip_model.encode_image, C.clip_input, [v.frames for v in videos], C.BATCH)


def _aesthetic_jobs(models, videos, docs) -> list[Job]:
    import torch.nn.functional as F

    from omnieval.metrics.vbench import consistency as C

    clip_model, head = models
    return _image_jobs(lambda b: head(F.normalize(clip_model.encode_image(b).float(), dim=-1)), C.clip_input,
                       [v.frames for v in videos], C.BATCH)


def _appearance_jobs(clip_model, videos, docs) -> list[Job]:
    import clip

    from omnieval.metrics.vbench import consistency as C
    from omnieval.metrics.vbench.clip_dims import pil_clip_preprocess

    styles = sorted({d["auxiliary_info"]["appearance_style"]["appearance_style"] for d in docs})
    text = clip.tokenize(styles)
    return (_image_jobs(clip_model.encode_image, pil_clip_preprocess, [v.frames for v in videos], C.BATCH)
            + [lambda: clip_model.encode_text(text)])


def _viclip_jobs(viclip, videos, docs) -> list[Job]:
    from omnieval.metrics.vbench import consistency as C
    from omnieval.metrics.vbench.viclip_dims import vbench_middle_indices

    clips = [C.preprocess(v.frames[vbench_middle_indices(8, len(v))], 224, interpolation="bicubic", crop=True,
                          mean=C.CLIP_MEAN, std=C.CLIP_STD, quantized=True)[None] for v in videos]
    return [lambda c=c: viclip.encode_vision(c, test=True) for c in clips] + [lambda p=d["prompt"]: viclip.encode_text(p) for d in docs]


def _imaging_jobs(musiq, videos, docs) -> list[Job]:
    from omnieval.metrics.vbench.quality_dims import musiq_input

    return _image_jobs(musiq, musiq_input, [v.frames for v in videos], 1)  # one frame per call: fastest here


def _dynamic_jobs(raft, videos, docs) -> list[Job]:
    """The RAFT pairs each video needs before its dynamic_degree decision is known (found by an untimed run)."""
    from omnieval.metrics.vbench import motion

    jobs: list[Job] = []
    for video in videos:
        _, needed = motion.dynamic_decision(video, raft)
        frames = video.frames[:: motion.dynamic_interval(video.fps)]
        pairs = [(i, i + 1) for i in range(len(frames) - 1)][:needed]
        flows = motion._pair_flows(raft, frames, pairs)
        jobs += [lambda a=a, flows=flows: flows(a, a + 4) for a in range(0, len(pairs), 4)]
    return jobs


def _smoothness_jobs(amt, videos, docs) -> list[Job]:
    import torch
    from vbench.third_party.amt.utils.utils import InputPadder

    from omnieval.metrics.vbench.motion import AMT_BATCH

    jobs: list[Job] = []
    for video in videos:
        kept = torch.from_numpy(np.ascontiguousarray(video.frames[0::2])).permute(0, 3, 1, 2).float().div(255.0)
        kept = InputPadder(kept.shape, 16).pad(kept)
        for a in range(0, len(kept) - 1, AMT_BATCH):
            first, second = kept[a : a + AMT_BATCH][: len(kept) - 1 - a], kept[a + 1 : a + 1 + AMT_BATCH]
            embt = torch.full((len(first), 1, 1, 1), 0.5)
            jobs.append(lambda f=first, s=second, e=embt: amt(f, s, e, scale_factor=1.0, eval=True))
    return jobs


def _action_jobs(umt, videos, docs) -> list[Job]:
    from omnieval.metrics.vbench.semantic_dims import umt_clip

    clips = [umt_clip(v.frames) for v in videos]
    return [lambda c=c: umt(c) for c in clips]


#: dimension -> (network, builder of its forward calls on the dimension's videos)
LIMIT_JOBS: dict[str, tuple[str | None, Callable[..., list[Job]] | None]] = {
    "subject_consistency": ("dino", _subject_jobs),
    "background_consistency": ("clip_b32", _background_jobs),
    "temporal_flickering": (None, None),
    "motion_smoothness": ("amt", _smoothness_jobs),
    "dynamic_degree": ("raft", _dynamic_jobs),
    "aesthetic_quality": ("clip_l14", _aesthetic_jobs),
    "imaging_quality": ("musiq", _imaging_jobs),
    "human_action": ("umt", _action_jobs),
    "temporal_style": ("viclip", _viclip_jobs),
    "appearance_style": ("clip_b32", _appearance_jobs),
    "overall_consistency": ("viclip", _viclip_jobs),
}


def run_limit(suite: Suite, dims: tuple[str, ...]) -> dict[str, Any]:
    """Decode every file once, load each network once, run only the forward passes (see the module docstring)."""
    import torch

    from omnieval.media import read_video

    start = now()
    decoded = {p.name: read_video(p) for p in suite.files}
    decode_s = now() - start
    loaders = _loaders()
    networks, load_s = {}, {}
    for dim in dims:
        key = LIMIT_JOBS[dim][0]
        if key and key not in networks:
            start = now()
            networks[key] = loaders[key]()
            load_s[key] = now() - start
    forward_s = {}
    from omnieval.naming import video_filename

    for dim in dims:
        docs = [d for d in suite.docs if dim in d["dimension"]]
        videos = [decoded[video_filename(d["prompt"], i)] for d in docs for i in range(d["num_samples"])]
        key, build = LIMIT_JOBS[dim]
        with torch.inference_mode():
            jobs = build(networks[key], videos, docs) if build else []
            start = now()
            for job in jobs:
                job()
            forward_s[dim] = now() - start
    del networks
    return {"decode": decode_s, "load": load_s, "forward": forward_s,
            "total": decode_s + total(load_s.values()) + total(forward_s.values())}


def _best(spans: list[Span]) -> Span:
    return Span(min(s.wall for s in spans), min(s.cpu for s in spans))


def best_side(runs: list[SideResult]) -> SideResult:
    """Per time, the smallest over repeated runs (the least disturbed by other jobs); values from the first run."""
    first = runs[0]
    per_dimension = {d: _best([r.per_dimension.get(d, Span()) for r in runs]) for d in first.per_dimension}
    extra = dict(first.extra)
    for key in ("compute", "decode"):
        if key in extra:
            extra[key] = {d: _best([r.extra[key].get(d, Span()) for r in runs]) for d in extra[key]}
    return SideResult(_best([r.total for r in runs]), per_dimension, first.values, first.per_video, extra)


def best_limit(runs: list[dict]) -> dict:
    out = {"decode": _best([r["decode"] for r in runs])}
    for key in ("load", "forward"):
        out[key] = {k: _best([r[key][k] for r in runs]) for k in runs[0][key]}
    out["total"] = out["decode"] + total(out["load"].values()) + total(out["forward"].values())
    return out


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
def compare(dims, vb: SideResult, om: SideResult) -> dict[str, tuple[float, float, bool]]:
    """Per dimension: (|value diff|, max per-video |diff| (inf if the two sides scored different videos), within
    tolerance)."""
    out = {}
    for dim in dims:
        diff = abs(vb.values[dim] - om.values[dim])
        a, b = vb.per_video[dim], om.per_video[dim]
        per_video = max((abs(a[n] - b[n]) for n in a), default=0.0) if set(a) == set(b) else float("inf")
        out[dim] = (diff, per_video, max(diff, per_video) <= TOLERANCE[dim] + 1e-12)
    return out


def _fmt(span: Span) -> str:
    return f"{span.wall:7.2f} {span.cpu:7.2f}"


def _x(r: Span) -> str:
    return f"{r.wall:5.2f}x {r.cpu:5.2f}x"


def report(args, suite: Suite, dims, vb: SideResult, om: SideResult, limit: dict, weights_s: dict, load: tuple) -> bool:
    videos_per_dim = {dim: sum(d["num_samples"] for d in suite.docs if dim in d["dimension"]) for dim in dims}
    print(f"\n{len(suite.files)} videos ({args.frames} frames, {args.height}x{args.width}, {args.fps:g} fps, H.264 crf 23), "
          f"{len(suite.docs)} prompts, random weights at real sizes, CPU, torch threads {args.threads}; "
          f"load average before / after: {load[0]:.2f} / {load[1]:.2f}")
    print(f"random weights written in {sum(weights_s.values()):.1f} s (not timed)")
    print(f"omnieval command: {om.extra['command']}")
    print("times: wall s / CPU s (all threads of this process); ratios: vbench / omnieval, wall / CPU")
    checks = compare(dims, vb, om)
    compute, decode = om.extra["compute"], om.extra["decode"]
    print(f"\n{'dimension':<23}{'videos':>6} {'vbench wall/cpu':>15} {'omnieval wall/cpu':>17} {'ratio wall/cpu':>14} "
          f"{'compute':>8}{'decode':>8} {'limit fwd':>9} {'compute/limit':>13}  value vbench / omnieval, |diff| (per video), tol")
    ok_all = True
    for dim in dims:
        diff, per_video, ok = checks[dim]
        ok_all &= ok
        v, o = vb.per_dimension.get(dim, Span()), om.per_dimension[dim]
        c, lim = compute.get(dim, Span()), limit["forward"].get(dim, Span())
        to_limit = f"{ratio(c, lim).cpu:12.2f}x" if lim.cpu > 1e-3 else f"{'-':>13}"
        print(f"{dim:<23}{videos_per_dim[dim]:>6} {_fmt(v):>15} {_fmt(o):>17} {_x(ratio(v, o)):>14} {c.wall:8.2f}"
              f"{decode.get(dim, Span()).wall:8.2f} {lim.wall:9.2f} {to_limit}  {vb.values[dim]:.7f} / {om.values[dim]:.7f}, "
              f"{diff:.1e} ({per_video:.1e}), {TOLERANCE[dim]:g}{'' if ok else '  MISMATCH'}")
    timing = om.extra["timing"]
    print(f"\nend to end from files: vbench evaluate {_fmt(vb.total)} s, omnieval run {_fmt(om.total)} s, "
          f"ratio {_x(ratio(vb.total, om.total))} (target >= 1.5x)")
    print(f"  omnieval run: predictions import {timing.get('generate_s', 0.0):.2f} s wall (decoding {om.extra['model_decode'].wall:.2f} s), "
          f"metric compute {total(compute.values()).wall:.2f} s, decoding for the metrics {total(decode.values()).wall:.2f} s "
          f"({om.extra['decodes']} decodes of {len(suite.files)} files in all, the import's included)")
    print(f"metric compute on decoded frames (inside contributions, network loading included): omnieval "
          f"{_fmt(total(compute.values()))} s")
    load_total, forward_total = total(limit["load"].values()), total(limit["forward"].values())
    print(f"limit: {_fmt(limit['total'])} s = decode each file once {limit['decode'].wall:.2f} + load each network once "
          f"{load_total.wall:.2f} ({', '.join(f'{k} {v.wall:.1f}' for k, v in limit['load'].items())}) + forward passes "
          f"{forward_total.wall:.2f} (the forward passes the dimensions need, fastest form, batched across videos)")
    print(f"omnieval / limit: end to end {_x(ratio(om.total, limit['total']))}, metric compute "
          f"{_x(ratio(total(compute.values()), load_total + forward_total))} (target <= 1.10x); "
          f"vbench / limit: {_x(ratio(vb.total, limit['total']))}")
    slower = [d for d in dims if ratio(vb.per_dimension.get(d, Span()), om.per_dimension[d]).cpu < 1.0]
    print(f"dimensions slower than vbench (CPU): {', '.join(slower) if slower else 'none'}")
    print(f"values equal within tolerance: {'yes' if ok_all else 'NO'}")
    return ok_all


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=1, help="suite prompts per dimension")
    parser.add_argument("--samples", type=int, default=2, help="videos per prompt (1-5: vbench reads indices 0-4)")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--height", type=int, default=256, help="RAFT and AMT-S need >= 128")
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--fps", type=float, default=8.0)
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (1 gives the steadiest CPU "
                        "seconds on a machine shared with other jobs: no thread waits for a descheduled partner)")
    parser.add_argument("--dims", default=",".join(DEFAULT_DIMS),
                        help=f"comma-separated, or 'all' ({', '.join(RUNNABLE)}; default: all but human_action)")
    parser.add_argument("--repeat", type=int, default=1, help="run the three passes this many times (interleaved); "
                        "report the smallest time of each (the least disturbed by other jobs)")
    parser.add_argument("--keep", default=None, help="work in this folder and keep it (default: a temporary one, "
                        "removed at the end); it holds about 8 GB of random weights with --dims all")
    args = parser.parse_args()
    args.dims = RUNNABLE if args.dims == "all" else tuple(d.strip() for d in args.dims.split(",") if d.strip())
    unknown = [d for d in args.dims if d not in RUNNABLE]
    if unknown:
        parser.error(f"cannot run under vbench here: {', '.join(unknown)} (runnable: {', '.join(RUNNABLE)})")
    if not 1 <= args.samples <= 5:
        parser.error("--samples must be 1..5 (vbench's standard mode reads indices 0-4)")
    return args


def main() -> int:
    args = parse_args()
    dims = tuple(d for d in RUNNABLE if d in args.dims)
    with contextlib.ExitStack() as stack:
        work = Path(args.keep) if args.keep else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        work.mkdir(parents=True, exist_ok=True)
        os.environ["VBENCH_CACHE_DIR"] = str(work / "vbench_cache")  # before vbench is imported
        os.environ["OMNIEVAL_WEIGHTS_DIR"] = str(work / "weights")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ["OMNIEVAL_DEVICE"] = "cpu"
        warnings.filterwarnings("ignore")
        import logging

        logging.disable(logging.WARNING)
        import torch

        torch.set_num_threads(args.threads)
        from omnieval.metrics.vbench.viclip_dims import ensure_viclip_bpe

        ensure_viclip_bpe()  # before vbench's ViCLIP module is imported (it would try to download it)
        # imports of both sides, before any timing
        import importlib

        import vbench  # noqa: F401

        import omnieval.cli  # noqa: F401
        from omnieval.metrics.vbench import clip_dims, consistency, flicker, motion, quality_dims, semantic_dims, viclip_dims  # noqa: F401

        if "human_action" in dims:
            patch_vbench_for_human_action()
        for dim in dims:
            importlib.import_module(f"vbench.{dim}")
        suite = select_prompts(dims, args.prompts, args.samples)
        folder = work / "videos"
        if folder.exists():
            shutil.rmtree(folder)
        write_folder(suite, folder, args.samples, args.frames, args.height, args.width, args.fps)
        tasks = write_task(suite, dims, work / "tasks")
        print(f"{len(suite.files)} videos in {folder}; writing random weights ...", flush=True)
        action_prompts = [d["prompt"] for d in suite.docs if "human_action" in d["dimension"]]
        weights_s = write_weights(dims, work / "weights", work / "vbench_cache", action_prompts)
        load_before = os.getloadavg()[0]
        vbs, oms, limits = [], [], []
        for r in range(args.repeat):  # interleaved, so that other jobs on the machine disturb all three alike
            for out in ("vbench_out", "omnieval_out"):
                shutil.rmtree(work / f"{out}{r}", ignore_errors=True)
            print(f"[{r + 1}/{args.repeat}] vbench evaluate ...", flush=True)
            vbs.append(run_vbench(suite, dims, folder, work, work / f"vbench_out{r}"))
            print(f"  {vbs[-1].total.wall:.1f} s\n[{r + 1}/{args.repeat}] omnieval run ...", flush=True)
            oms.append(run_omnieval(dims, folder, tasks, work / f"omnieval_out{r}"))
            print(f"  {oms[-1].total.wall:.1f} s\n[{r + 1}/{args.repeat}] limit ...", flush=True)
            limits.append(run_limit(suite, dims))
            print(f"  {limits[-1]['total'].wall:.1f} s", flush=True)
        vb, om, limit = best_side(vbs), best_side(oms), best_limit(limits)
        ok = report(args, suite, dims, vb, om, limit, weights_s, (load_before, os.getloadavg()[0]))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
