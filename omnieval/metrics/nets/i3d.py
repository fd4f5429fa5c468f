"""Inflated Inception-v1 (I3D, Carreira & Zisserman 2017) for FVD, and the stylegan-v TorchScript detector.

:class:`InceptionI3d` has the module layout of piergiaj/pytorch-i3d as used by TATS and cd-fvd, so the
state dict of their ``i3d_pretrained_400.pt`` (Kinetics-400) loads into it exactly (strict).  Its output is
the 400-d pre-softmax logits averaged over time, for input ``B x 3 x T x 224 x 224`` in ``[-1, 1]``.
Convolutions and max-pools use TensorFlow "same" zero padding computed from the input size, like the
reference.
Dropout is omitted (inference only).

Minimum clip length: the temporal strides (2 in ``Conv3d_1a``, ``MaxPool3d_4a`` and ``MaxPool3d_5a``)
followed by the temporal average-pool kernel of 2 need ``ceil(ceil(ceil(T/2)/2)/2) >= 2``, i.e. T >= 9
for this network; the FVD protocols require :data:`MIN_FRAMES` = 10, the limit of the TF-hub/TorchScript
I3D (JunyaoHu/common_metrics_on_video_quality#3), for both detectors.

:meth:`InceptionI3d.fuse` turns a loaded network into an equivalent inference form: batch norm folded
into the convolutions and the three 1x1 convolutions reading each Inception block's input merged into
one.  Values change only by float32 rounding.

The stylegan-v detector (``i3d_torchscript.pt``) is a TorchScript archive, loaded with
``torch.jit.load`` (TorchScript is not pickle: loading it runs no Python code) and called as stylegan-v
does: ``detector(videos, rescale=..., resize=..., return_features=True)``.
"""
from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from omnieval.errors import MissingWeightsError

MIN_FRAMES = 10
NUM_CLASSES = 400


def same_padding(size: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...]) -> list[tuple[int, int]]:
    """TensorFlow "SAME" padding (front, back) per dimension for the given input size."""
    pads = []
    for s, k, st in zip(size, kernel, stride):
        total = max(k - st, 0) if s % st == 0 else max(k - s % st, 0)
        pads.append((total // 2, total - total // 2))
    return pads


def _flat_pad(pads: list[tuple[int, int]]) -> list[int]:
    """``F.pad`` argument (last dimension first) for per-dimension (front, back) pads."""
    return [p for front_back in reversed(pads) for p in front_back]


def _pad_args(pads: list[tuple[int, int]]) -> tuple[list[int] | None, tuple[int, ...]]:
    """(explicit ``F.pad`` argument or None, symmetric padding for the op itself)."""
    if all(f == b for f, b in pads):
        return None, tuple(f for f, _ in pads)
    return _flat_pad(pads), (0, 0, 0)


class Unit3D(nn.Module):
    """Conv3d ("same" padding, no bias) + BatchNorm3d + ReLU; keys ``conv3d.*`` and ``bn.*``."""

    def __init__(self, cin: int, cout: int, kernel=(1, 1, 1), stride=(1, 1, 1), batch_norm: bool = True,
                 relu: bool = True, bias: bool = False):
        super().__init__()
        self.kernel, self.stride, self.relu = tuple(kernel), tuple(stride), relu
        self.conv3d = nn.Conv3d(cin, cout, self.kernel, self.stride, padding=0, bias=bias)
        self.bn = nn.BatchNorm3d(cout, eps=1e-5, momentum=0.001) if batch_norm else None
        self.fused = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        explicit, sym = _pad_args(same_padding(tuple(x.shape[2:]), self.kernel, self.stride))
        if explicit is not None:
            x = F.pad(x, explicit)
        x = F.conv3d(x, self.conv3d.weight, self.conv3d.bias, self.stride, sym)
        if self.bn is not None and not self.fused:
            x = self.bn(x)
        return F.relu_(x) if self.relu else x

    @torch.no_grad()
    def fuse(self) -> None:
        """Fold eval-mode batch norm into the convolution's weight and bias."""
        if self.bn is None or self.fused:
            return
        scale = self.bn.weight / torch.sqrt(self.bn.running_var + self.bn.eps)
        bias = self.bn.bias - self.bn.running_mean * scale
        if self.conv3d.bias is not None:
            bias = bias + self.conv3d.bias * scale
        self.conv3d.weight.mul_(scale.view(-1, 1, 1, 1, 1))
        self.conv3d.bias = nn.Parameter(bias)
        self.fused = True


def max_pool3d_same(x: torch.Tensor, kernel: tuple[int, ...], stride: tuple[int, ...]) -> torch.Tensor:
    """Max-pool with TF "same" zero padding (as the reference), computed separably per dimension.

    Max is exact, so ``max over a k_t x k_h x k_w window`` = max over ``t`` of max over ``h`` of max over
    ``w``; a few element-wise ``maximum`` passes over strided views replace ``max_pool3d``, which on CPU
    also computes argmax indices and is several times slower.
    """
    flat = _flat_pad(same_padding(tuple(x.shape[2:]), kernel, stride))
    if any(flat):
        x = F.pad(x, flat)
    for axis in (4, 3, 2):  # last (contiguous) dimension first
        k, st = kernel[axis - 2], stride[axis - 2]
        if k == 1 and st == 1:
            continue
        n_out = (x.shape[axis] - k) // st + 1
        index = [slice(None)] * 5
        out = None
        for j in range(k):
            index[axis] = slice(j, j + st * (n_out - 1) + 1, st)
            view = x[tuple(index)]
            out = view.clone() if out is None else torch.maximum(out, view, out=out)
        x = out
    return x


class MaxPool3dSame(nn.Module):
    def __init__(self, kernel, stride):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return max_pool3d_same(x, self.kernel, self.stride)


class InceptionModule(nn.Module):
    """Four branches: 1x1 | 1x1 -> 3x3x3 | 1x1 -> 3x3x3 | maxpool 3x3x3 -> 1x1 (keys b0, b1a, b1b, ...)."""

    def __init__(self, cin: int, widths: tuple[int, int, int, int, int, int]):
        super().__init__()
        c0, c1a, c1b, c2a, c2b, c3 = widths
        self.b0 = Unit3D(cin, c0)
        self.b1a = Unit3D(cin, c1a)
        self.b1b = Unit3D(c1a, c1b, kernel=(3, 3, 3))
        self.b2a = Unit3D(cin, c2a)
        self.b2b = Unit3D(c2a, c2b, kernel=(3, 3, 3))
        self.b3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(cin, c3)
        self.stem_split: list[int] | None = None  # set by fuse(); then buffers stem_weight / stem_bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stem_split is not None:
            stem = F.relu_(F.conv3d(x, self.stem_weight, self.stem_bias))
            b0, t1, t2 = torch.split(stem, self.stem_split, dim=1)
        else:
            b0, t1, t2 = self.b0(x), self.b1a(x), self.b2a(x)
        return torch.cat([b0, self.b1b(t1), self.b2b(t2), self.b3b(self.b3a(x))], dim=1)

    @torch.no_grad()
    def fuse(self) -> None:
        for unit in (self.b0, self.b1a, self.b1b, self.b2a, self.b2b, self.b3b):
            unit.fuse()
        units = (self.b0, self.b1a, self.b2a)
        self.register_buffer("stem_weight", torch.cat([u.conv3d.weight for u in units]), persistent=False)
        self.register_buffer("stem_bias", torch.cat([u.conv3d.bias for u in units]), persistent=False)
        self.stem_split = [u.conv3d.out_channels for u in units]


# (name, in channels, widths) of the Inception blocks; pooling layers sit between them.
_BLOCKS_3 = (("Mixed_3b", 192, (64, 96, 128, 16, 32, 32)), ("Mixed_3c", 256, (128, 128, 192, 32, 96, 64)))
_BLOCKS_4 = (
    ("Mixed_4b", 480, (192, 96, 208, 16, 48, 64)),
    ("Mixed_4c", 512, (160, 112, 224, 24, 64, 64)),
    ("Mixed_4d", 512, (128, 128, 256, 24, 64, 64)),
    ("Mixed_4e", 512, (112, 144, 288, 32, 64, 64)),
    ("Mixed_4f", 528, (256, 160, 320, 32, 128, 128)),
)
_BLOCKS_5 = (("Mixed_5b", 832, (256, 160, 320, 32, 128, 128)), ("Mixed_5c", 832, (384, 192, 384, 48, 128, 128)))


class InceptionI3d(nn.Module):
    """I3D returning Kinetics logits ``B x num_classes`` (averaged over time) for ``B x 3 x T x 224 x 224``."""

    def __init__(self, num_classes: int = NUM_CLASSES, in_channels: int = 3):
        super().__init__()
        layers: list[tuple[str, nn.Module]] = [
            ("Conv3d_1a_7x7", Unit3D(in_channels, 64, kernel=(7, 7, 7), stride=(2, 2, 2))),
            ("MaxPool3d_2a_3x3", MaxPool3dSame((1, 3, 3), (1, 2, 2))),
            ("Conv3d_2b_1x1", Unit3D(64, 64)),
            ("Conv3d_2c_3x3", Unit3D(64, 192, kernel=(3, 3, 3))),
            ("MaxPool3d_3a_3x3", MaxPool3dSame((1, 3, 3), (1, 2, 2))),
            *((name, InceptionModule(cin, widths)) for name, cin, widths in _BLOCKS_3),
            ("MaxPool3d_4a_3x3", MaxPool3dSame((3, 3, 3), (2, 2, 2))),
            *((name, InceptionModule(cin, widths)) for name, cin, widths in _BLOCKS_4),
            ("MaxPool3d_5a_2x2", MaxPool3dSame((2, 2, 2), (2, 2, 2))),
            *((name, InceptionModule(cin, widths)) for name, cin, widths in _BLOCKS_5),
        ]
        for name, module in layers:
            self.add_module(name, module)
        self._order = [name for name, _ in layers]
        self.logits = Unit3D(1024, num_classes, batch_norm=False, relu=False, bias=True)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Output of ``Mixed_5c``: ``B x 1024 x T' x 7 x 7`` for 224 x 224 input."""
        for name in self._order:
            x = self._modules[name](x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool3d(self.features(x), kernel_size=(2, 7, 7), stride=1)
        x = self.logits(x)  # B x classes x T'' x 1 x 1
        return x.squeeze(4).squeeze(3).mean(dim=2)

    def fuse(self) -> "InceptionI3d":
        """Fold batch norm and merge the 1x1 stems (in place, eval mode); the state dict no longer loads."""
        self.eval()
        for module in self.modules():
            if module is not self and hasattr(module, "fuse"):
                module.fuse()
        return self

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, fuse: bool = True) -> "InceptionI3d":
        """Load a TATS / cd-fvd ``i3d_pretrained_400.pt`` state dict (``torch.load(weights_only=True)``)."""
        path = Path(path)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            model = cls(num_classes=state["logits.conv3d.weight"].shape[0])
            model.load_state_dict(state, strict=True)
        except (RuntimeError, KeyError, TypeError, OSError, EOFError, pickle.UnpicklingError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise MissingWeightsError(f"{path}: not a usable InceptionI3d (i3d_pretrained_400) state dict: {first}") from exc
        model.eval().requires_grad_(False)
        return model.fuse() if fuse else model


class TorchScriptI3D(nn.Module):
    """The stylegan-v / fvd-comparison TorchScript I3D (``i3d_torchscript.pt``).

    ``forward(videos, rescale, resize)``: ``videos`` ``B x 3 x T x H x W``; with ``rescale=True`` the
    values are uint8-range ``[0, 255]`` and the archive maps them to ``[-1, 1]`` itself; with
    ``resize=True`` it resizes to 224 x 224 itself.  Returns the 400-d pre-softmax features
    (``return_features=True``).
    """

    def __init__(self, module: torch.jit.ScriptModule):
        super().__init__()
        self.module = module

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "TorchScriptI3D":
        path = Path(path)
        try:
            with warnings.catch_warnings():  # torch 2.14 marks TorchScript deprecated; the archive needs it
                warnings.simplefilter("ignore", FutureWarning)
                module = torch.jit.load(str(path), map_location="cpu")
        except (RuntimeError, ValueError, OSError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise MissingWeightsError(f"{path}: not a TorchScript archive (i3d_torchscript.pt): {first}") from exc
        return cls(module.eval())

    def forward(self, x: torch.Tensor, rescale: bool = True, resize: bool = True) -> torch.Tensor:
        return self.module(x, rescale=rescale, resize=resize, return_features=True)
