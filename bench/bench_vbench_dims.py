"""Seconds per video of every VBench dimension that runs on this machine, at the real network sizes.

    PYTHONPATH=. python bench/bench_vbench_dims.py [--videos 2] [--frames 16] [--size 256] [--threads 2]
                                                   [--dims subject_consistency,dynamic_degree,...]

Every network is built with RANDOM weights at its real architecture size (DINO ViT-B/16, CLIP ViT-B/32 and
ViT-L/14 + LAION head, ViCLIP-L/14, MUSIQ, RAFT, AMT-S, UMT-L/16, Tag2Text Swin-B + BERT, GRiT-B), saved to a temporary directory in the
format the metric loads, and handed to the registered metric through its explicit path options
(``ckpt_path`` / ``clip_path`` / ``head_path`` / ``raft_path`` / ``amt_path``).  Nothing is downloaded.

The videos are in-memory :class:`omnieval.media.Video` objects (a blocky texture translating a few pixels per
frame, plus noise), as the runner hands decoded videos to the metrics: decoding is not timed.  Each item carries
the prompt ``"A person is riding a bike"`` (human_action reads the action from it) and a doc whose
``auxiliary_info`` names an appearance style.

For each dimension the table gives:

* ``build s``: creating the metric (``get_metric(name)(**options)``) and loading its networks from the files;
* ``s / video``: ``metric.update(items)`` + ``metric.compute()`` over all videos, divided by the number of videos
  (networks already loaded; ``*`` marks a row where a network was still built inside the timed part);
* ``value``: the computed number -- meaningless with random weights (``missing`` when every video was skipped,
  e.g. temporal_flickering's static filter rejects moving videos; the RAFT pass is still timed).

Dimensions that cannot run here (if any) are listed with
the reason the metric itself gives when created.  The time to write the random weights is printed separately.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

PROMPT = "A person is riding a bike"
DOC = {"auxiliary_info": {
    "appearance_style": {"appearance_style": "oil painting"},
    "scene": {"scene": {"scene": "kitchen"}},  # VBench_full_info nests it this deep
    "object_class": {"object": "person"},
    "multiple_objects": {"object": "person and bicycle"},
    "color": {"color": "red"},
    "spatial_relationship": {"spatial_relationship": {"object_a": "person", "object_b": "bicycle", "relationship": "on the left of"}},
}}


# ---------------------------------------------------------------------------------------------
# Random-init weights at the real sizes, in the format each metric loads
# ---------------------------------------------------------------------------------------------
def _save_state(model, path: Path) -> Path:
    import torch

    torch.save(model.state_dict(), path)
    return path


def write_dino(directory: Path) -> Path:
    """DINO ViT-B/16 as a timm ``vit_base_patch16_224`` state dict (DINO's key layout)."""
    import timm

    return _save_state(timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=0), directory / "dino_vitbase16_pretrain.pth")


def _write_openai_clip(path: Path, embed: int, layers: int, width: int, patch: int, text_width: int, text_heads: int) -> Path:
    """An openai-clip ``CLIP`` (224 px, 77 tokens, 12 text layers) saved as OpenAI-layout safetensors."""
    import clip.model
    from safetensors.torch import save_file

    model = clip.model.CLIP(embed, 224, layers, width, patch, 77, 49408, text_width, text_heads, 12)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def write_clip_b32(directory: Path) -> Path:
    return _write_openai_clip(directory / "clip_vit_b32_openai.safetensors", 512, 12, 768, 32, 512, 8)


def write_clip_l14(directory: Path) -> Path:
    return _write_openai_clip(directory / "clip_vit_l14_openai.safetensors", 768, 24, 1024, 14, 768, 12)


def write_laion_head(directory: Path) -> Path:
    """LAION aesthetic head: ``Linear(768, 1)`` ``{weight, bias}``."""
    import torch

    return _save_state(torch.nn.Linear(768, 1), directory / "sa_0_4_vit_l_14_linear.pth")


def write_viclip(directory: Path) -> Path:
    """vbench's ViCLIP-L/14 saved as ``{'model': state_dict}``.  Several of its parameters are ``torch.empty``:
    every parameter is drawn from N(0, 0.02), then modules with a default init (Linear, LayerNorm, ...) reset."""
    import torch

    from omnieval.metrics.vbench.viclip_dims import ensure_viclip_bpe

    ensure_viclip_bpe()
    from vbench.third_party.ViCLIP.viclip import ViCLIP

    model = ViCLIP(pretrain=None)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.02)
    for module in model.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    path = directory / "ViClip-InternVid-10M-FLT.pth"
    torch.save({"model": model.state_dict()}, path)
    return path


def write_musiq(directory: Path) -> Path:
    """pyiqa's MUSIQ as VBench builds it (one output)."""
    from pyiqa.archs.musiq_arch import MUSIQ

    return _save_state(MUSIQ(pretrained=False, num_class=1), directory / "musiq_spaq_ckpt-358bb6af.pth")


def write_raft(directory: Path) -> Path:
    from vbench_fixtures import random_raft_checkpoint

    return random_raft_checkpoint(directory / "raft-things.pth")


def write_amt(directory: Path) -> Path:
    from vbench_fixtures import random_amt_checkpoint

    return random_amt_checkpoint(directory / "amt-s.pth")


def write_umt(directory: Path) -> Path:
    """vbench's UMT ViT-L/16 (16 frames, tubelet 1, mean pooling, 400 classes): the arguments that shape the
    state dict loaded by :func:`omnieval.metrics.vbench.semantic_dims.umt_classifier`."""
    from vbench.third_party.umt.models.modeling_finetune import vit_large_patch16_224

    model = vit_large_patch16_224(num_classes=400, all_frames=16, tubelet_size=1, use_mean_pooling=True)
    return _save_state(model, directory / "l16_ptk710_ftk710_ftk400_f16_res224.pth")


def write_bert_vocab(directory: Path) -> Path:
    """A 30522-entry BERT-style vocab.txt (the tests' synthetic stand-in for bert-base-uncased)."""
    from test_vbench_tag2text import write_vocab

    write_vocab(directory / "bert-base-uncased")
    return directory / "bert-base-uncased"


def write_tag2text(directory: Path) -> Path:
    """Tag2Text at its real sizes (Swin-B 384, BERT-base tag encoder and decoder) with the tests' random-weight
    recipe (tags pass the threshold, captions vary), saved as ``{"model": state_dict}``."""
    import dataclasses

    import torch
    from test_vbench_tag2text import random_model

    from omnieval.metrics.vbench.tag2text.model import Tag2TextConfig

    real = {f.name: getattr(Tag2TextConfig(), f.name) for f in dataclasses.fields(Tag2TextConfig)}
    model = random_model(write_bert_vocab(directory), **real)
    path = directory / "tag2text_swin_14m.pth"
    torch.save({"model": model.state_dict()}, path)
    return path


def write_grit(directory: Path) -> Path:
    """GRiT-B (ViT-B backbone, CenterNet, 3-stage cascade, BERT text decoder) with the tests' random-weight recipe
    (a few detections per frame with short descriptions), in detectron2's ``{"model": state_dict}`` layout."""
    from test_vbench_grit import GRIT_B_RECIPE, random_grit, save_checkpoint

    from omnieval.metrics.vbench.grit import GRiTConfig

    model = random_grit(GRiTConfig.vbench(), None, **GRIT_B_RECIPE)
    save_checkpoint(model, directory / "grit_b_densecap_objectdet.pth")
    return directory / "grit_b_densecap_objectdet.pth"


def write_grit_vocab(directory: Path) -> Path:
    from test_vbench_grit import write_vocab

    write_vocab(directory / "grit_vocab")
    return directory / "grit_vocab"


WEIGHTS: dict[str, Callable[[Path], Path]] = {
    "dino": write_dino,
    "clip_b32": write_clip_b32,
    "clip_l14": write_clip_l14,
    "laion_head": write_laion_head,
    "viclip": write_viclip,
    "musiq": write_musiq,
    "raft": write_raft,
    "amt": write_amt,
    "umt": write_umt,
    "tag2text": write_tag2text,
    "bert_vocab": write_bert_vocab,
    "grit": write_grit,
    "grit_vocab": write_grit_vocab,
}


class WeightStore:
    """Writes each random checkpoint once (seed 0), on first use; remembers how long it took."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.paths: dict[str, Path] = {}
        self.seconds: dict[str, float] = {}

    def path(self, key: str) -> Path:
        if key not in self.paths:
            import torch

            torch.manual_seed(0)
            start = time.perf_counter()
            self.paths[key] = WEIGHTS[key](self.directory)
            self.seconds[key] = time.perf_counter() - start
        return self.paths[key]

    def report(self) -> None:
        for key, seconds in self.seconds.items():
            size = self.paths[key].stat().st_size / 2**20
            print(f"  random weights {key:<11} {size:8.1f} MB written in {seconds:6.1f} s")


# ---------------------------------------------------------------------------------------------
# Dimensions: metric options (option name -> weight key) and how to load the networks before timing
# ---------------------------------------------------------------------------------------------
def _load_model(metric) -> Any:
    return metric.model()


def _load_network(metric) -> Any:
    return metric.network()


def _load_aesthetic(metric) -> Any:
    return metric.models()


def _load_clip(metric) -> Any:
    from omnieval.metrics.vbench.consistency import cached_clip

    return cached_clip(metric, metric.options.weight_id, metric.options.ckpt_path)


def _load_raft(metric) -> Any:
    from omnieval.metrics.vbench.motion import load_raft

    return metric.cached("raft", lambda: load_raft(metric.options.raft_path))


def _load_amt(metric) -> Any:
    from omnieval.metrics.vbench.motion import load_amt

    return metric.cached("amt", lambda: load_amt(metric.options.amt_path))


@dataclass(frozen=True)
class Dimension:
    """``options``: metric option -> key of :data:`WEIGHTS` whose file it receives; ``load``: builds the metric's
    networks (outside the timed part); ``extra``: further options."""

    options: dict[str, str]
    load: Callable[[Any], Any]
    extra: dict[str, Any] = field(default_factory=dict)

    def metric_options(self, weights: WeightStore) -> dict[str, Any]:
        return {name: str(weights.path(key)) for name, key in self.options.items()} | self.extra


DIMENSIONS: dict[str, Dimension] = {
    "subject_consistency": Dimension({"ckpt_path": "dino"}, _load_model),
    "background_consistency": Dimension({"ckpt_path": "clip_b32"}, _load_model),
    "aesthetic_quality": Dimension({"clip_path": "clip_l14", "head_path": "laion_head"}, _load_aesthetic),
    "appearance_style": Dimension({"ckpt_path": "clip_b32"}, _load_clip),
    "temporal_style": Dimension({"ckpt_path": "viclip"}, _load_model),
    "overall_consistency": Dimension({"ckpt_path": "viclip"}, _load_model),
    "imaging_quality": Dimension({"ckpt_path": "musiq"}, _load_network),
    "temporal_flickering": Dimension({"raft_path": "raft"}, _load_raft),
    "dynamic_degree": Dimension({"raft_path": "raft"}, _load_raft),
    "motion_smoothness": Dimension({"amt_path": "amt"}, _load_amt),
    "human_action": Dimension({"ckpt_path": "umt"}, _load_network),
    "scene": Dimension({"ckpt_path": "tag2text", "vocab_path": "bert_vocab"}, _load_network),
    **{name: Dimension({"ckpt_path": "grit", "vocab_path": "grit_vocab"}, _load_network)
       for name in ("object_class", "multiple_objects", "spatial_relationship", "color")},
}


# ---------------------------------------------------------------------------------------------
# Running and timing
# ---------------------------------------------------------------------------------------------
@dataclass
class Row:
    dimension: str
    build: float
    per_video: float
    value: str
    built_inside: bool


def make_items(count: int, frames: int, size: int) -> list:
    from vbench_fixtures import moving_video

    from omnieval.metrics.base import MetricInput

    return [
        MetricInput(item_id=f"v{i}", output=moving_video(seed=i, frames=frames, size=size, speed=0.5 + 2.0 * i), prompt=PROMPT, doc=DOC)
        for i in range(count)
    ]


def _cache_keys(metric) -> set[str]:
    return set(metric.__dict__.get("_cache", {}))


def run_dimension(name: str, spec: Dimension, weights: WeightStore, items: list) -> Row:
    from omnieval.registry import get_metric

    options = spec.metric_options(weights)
    start = time.perf_counter()
    metric = get_metric(f"vbench_{name}")(**options)
    spec.load(metric)
    build = time.perf_counter() - start
    loaded = _cache_keys(metric)
    start = time.perf_counter()
    metric.update(items)
    result = metric.compute()
    per_video = (time.perf_counter() - start) / len(items)
    value = f"{result[name]:.6f}" if name in result else "missing"
    return Row(name, build, per_video, value, _cache_keys(metric) != loaded)


def unavailable_reason(name: str, scratch: Path) -> str:
    """Why the registered ``vbench_<name>`` cannot run here: the metric's own error when created with a dummy
    checkpoint path (e.g. a missing package), or that this script has no random-weight builder for it."""
    from omnieval.errors import OmniEvalError
    from omnieval.registry import get_metric

    try:
        get_metric(f"vbench_{name}")(ckpt_path=str(scratch / "absent.pth"))
    except (OmniEvalError, ImportError, TypeError) as exc:
        return str(exc).splitlines()[0]
    return "no random-weight builder in this script"


def print_table(rows: list[Row], skipped: dict[str, str]) -> None:
    print(f"\n{'dimension':<24} {'build s':>8} {'s / video':>10}  value (random weights)")
    for row in rows:
        mark = "*" if row.built_inside else " "
        print(f"{row.dimension:<24} {row.build:8.2f} {row.per_video:9.2f}{mark}  {row.value}")
    for name, reason in skipped.items():
        print(f"{name:<24} {'-':>8} {'-':>10}   skipped: {reason}")


def parse_args() -> argparse.Namespace:
    from omnieval.metrics.vbench.common import DIMENSIONS as ALL

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=2)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=256, help="frame height and width (RAFT needs >= 128)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--dims", default=",".join(ALL), help="comma-separated VBench dimensions (default: all 16)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)  # third-party deprecation noise (timm, RAFT autocast)
    warnings.filterwarnings("ignore", category=FutureWarning)
    import torch

    torch.set_num_threads(args.threads)
    dims = [d.strip() for d in args.dims.split(",") if d.strip()]
    items = make_items(args.videos, args.frames, args.size)
    print(f"{args.videos} videos, {args.frames} frames, {args.size}x{args.size} px, random weights, CPU, "
          f"torch threads {torch.get_num_threads()}")
    rows: list[Row] = []
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("VBENCH_CACHE_DIR", str(Path(tmp) / "vbench_cache"))  # ViCLIP's BPE file goes here
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        weights = WeightStore(Path(tmp))
        for name in dims:
            if name not in DIMENSIONS:
                skipped[name] = unavailable_reason(name, Path(tmp))
                continue
            try:
                rows.append(run_dimension(name, DIMENSIONS[name], weights, items))
            except Exception as exc:  # noqa: BLE001 - a dimension that fails to build or run is reported, not fatal
                skipped[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
            print(f"  done {name}", flush=True)
        weights.report()
    print_table(rows, skipped)


if __name__ == "__main__":
    main()
