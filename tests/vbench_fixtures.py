"""Test helpers for the VBench dimensions: tiny video files and random-init checkpoints of vbench's networks.

Everything is made locally (no download).  Videos are H.264 yuv444p crf 0 (lossless) written with PyAV, so cv2,
decord and PyAV decode the same frames.  Checkpoints follow environment.md section 3: RAFT's state dict saved as
``raft-things.pth`` (with DataParallel ``module.`` prefixes, like the released file), AMT-S as
``{'state_dict': ...}`` in ``amt-s.pth``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from omnieval.media import Video, write_video


def moving_video(seed: int, frames: int = 16, size: int = 64, fps: float = 8.0, speed: float = 1.5) -> Video:
    """A smooth random texture translating by ``speed`` px/frame, plus noise (non-trivial flicker and motion)."""
    rng = np.random.default_rng(seed)
    big = size * 2
    base = rng.integers(0, 256, size=(big // 8, big // 8, 3)).astype(np.float32)
    base = np.kron(base, np.ones((8, 8, 1), np.float32))  # blocky texture, big x big
    out = []
    for t in range(frames):
        dx = int(round(t * speed)) % size
        crop = base[dx : dx + size, dx : dx + size]
        noise = rng.normal(0, 4, size=crop.shape)
        out.append(np.clip(crop + noise, 0, 255).astype(np.uint8))
    return Video(np.stack(out), fps=fps)


def write_videos(directory: Path, names: list[str], crf: int = 0, **kwargs) -> list[Path]:
    """Write one :func:`moving_video` per name (``seed`` = index, ``speed`` 0.5 + 2 * index) to ``directory/name``;
    ``crf`` 0 is lossless."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, name in enumerate(names):
        video = moving_video(seed=i, speed=0.5 + 2.0 * i, **kwargs)
        paths.append(write_video(video, directory / name, crf=crf))
    return paths


def random_raft_checkpoint(path: Path, seed: int = 0) -> Path:
    """vbench's RAFT (things configuration), random weights, saved like the released ``raft-things.pth``."""
    import torch
    from easydict import EasyDict
    from vbench.third_party.RAFT.core.raft import RAFT

    torch.manual_seed(seed)
    model = RAFT(EasyDict(small=False, mixed_precision=False, alternate_corr=False))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"module." + k: v for k, v in model.state_dict().items()}, path)
    return path


def random_amt_checkpoint(path: Path, seed: int = 0) -> Path:
    """AMT-S built from vbench's config, random weights, saved as ``{'state_dict': ...}``."""
    import torch

    from omnieval.metrics.vbench.motion import build_amt

    torch.manual_seed(seed)
    model = build_amt()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": model.state_dict()}, path)
    return path
