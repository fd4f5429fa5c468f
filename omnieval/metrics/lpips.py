"""LPIPS (Zhang et al. 2018) exactly as torchmetrics' ``LearnedPerceptualImagePatchSimilarity`` computes it, with
the backbone's ImageNet weights taken from the weight manifest instead of torchvision's download.

The network is torchmetrics' own (``_NoTrainLpips``: scaling layer, backbone slices, unit-normalised features,
squared differences, its bundled linear layers ``lpips_models/<net>.pth``, spatial average, sum over layers); only
the backbone's weights are loaded here, from the manifest entry of :data:`BACKBONES` (a torchvision state dict).
Inputs are float ``N x 3 x H x W`` in ``[-1, 1]`` (``normalize=False``); the value of one pair is what
``LearnedPerceptualImagePatchSimilarity(net_type=...)(a, b)`` returns for a batch of one.
"""
from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING

from omnieval.errors import MissingWeightsError, UnknownNameError

if TYPE_CHECKING:
    import torch

#: torchmetrics net type -> manifest id of the torchvision backbone's ImageNet weights (None: seeded random, tests)
BACKBONES = {"squeeze": "squeezenet1_1-imagenet"}


def lpips_weights(net: str, path: str | None = None) -> list[str]:
    """Manifest ids the LPIPS network needs (none when ``path`` gives the backbone file)."""
    if net not in BACKBONES:
        raise UnknownNameError("LPIPS network", net, sorted(BACKBONES))
    return [] if path else [BACKBONES[net]]


@functools.lru_cache(maxsize=2)
def load_lpips(net: str = "squeeze", path: str | None = None, device: str = "cpu") -> torch.nn.Module:
    """torchmetrics' LPIPS network ``net`` with the backbone weights of the manifest (or of ``path``)."""
    import torch
    from torchmetrics.functional.image.lpips import _NoTrainLpips

    from omnieval.metrics.weights import resolve

    file = path or resolve(lpips_weights(net)[0])
    model = _NoTrainLpips(net=net, pnet_rand=True)  # random backbone (no download), torchmetrics' linear layers
    slice_of = {int(name): k for k, part in enumerate(model.net.slices) for name, _ in part.named_children()}
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
        mapped = {}
        for key, value in state.items():
            head, index, rest = (key.split(".", 2) + ["", ""])[:3]
            if head == "features":
                mapped[f"slices.{slice_of[int(index)]}.{index}.{rest}"] = value
        model.net.load_state_dict(mapped, strict=True)
    except (RuntimeError, OSError, ValueError, KeyError) as exc:
        raise MissingWeightsError(f"LPIPS {net}: cannot load the backbone weights {os.fspath(file)}: {exc}".splitlines()[0]) from exc
    return model.eval().to(device)


def lpips(model: torch.nn.Module, a: torch.Tensor, b: torch.Tensor) -> float:
    """LPIPS of one pair of ``1 x 3 x H x W`` images in ``[-1, 1]``."""
    import torch

    for x in (a, b):  # torchmetrics' check for normalize=False
        if x.ndim != 4 or x.shape[1] != 3 or x.min() < -1:
            raise ValueError(f"LPIPS inputs must be N x 3 x H x W in [-1, 1], got {tuple(x.shape)}")
    with torch.inference_mode():
        return float(model(a, b, normalize=False).squeeze())
