"""``diffusers``: any Diffusers text-to-image, text-to-video or image-editing pipeline as a baseline.

``--model diffusers --model_args pretrained=Wan-AI/Wan2.1-T2V-1.3B-Diffusers,dtype=bfloat16,device=cuda``

* ``pretrained``: a local pipeline folder (``save_pretrained`` layout) or a hub id in the local cache.
* ``pipeline``: a Diffusers pipeline class name (``WanPipeline``, ``LTXPipeline``, ``CogVideoXPipeline``,
  ``StableDiffusionPipeline``, ``StableDiffusionInstructPix2PixPipeline``, ...); default: the class named in
  the folder's ``model_index.json`` (``DiffusionPipeline.from_pretrained``).
* ``dtype`` (float32/bfloat16/float16), ``device`` (cpu/cuda; default :func:`omnieval.launch.default_device`),
  ``cpu_offload`` (model CPU offload).

Conventions: outputs are requested as ``output_type="np"`` (float in [0, 1]) and rounded to uint8; each
request gets its own ``torch.Generator`` seeded with the work item's seed, so a sample does not depend on
the batch it was generated in.  Task settings (height, width, num_frames, num_inference_steps,
guidance_scale, negative_prompt) are passed only when the pipeline's ``__call__`` accepts them.  A
text-to-image request to a video pipeline generates one frame.  Think mode is not supported.
"""
from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from omnieval.errors import ConfigError, MissingWeightsError
from omnieval.launch import resolve_device
from omnieval.media import Video, as_uint8_image
from omnieval.models.base import Model, Request
from omnieval.models.hub import folder_fingerprint, resolve_checkpoint, torch_dtype
from omnieval.registry import register_model

PIPELINE_SETTINGS = ("height", "width", "num_frames", "num_inference_steps", "guidance_scale", "negative_prompt")


@register_model("diffusers", description="any Diffusers T2I / T2V / image-editing pipeline (local folder or cached hub id)")
class DiffusersGenerator(Model):
    capabilities = ("t2i", "t2v", "long_video", "edit_image")
    supports_think = False

    def __init__(self, pretrained: str, pipeline: str | None = None, dtype: str | None = "float32", device: str | None = None,
                 cpu_offload: bool = False, **kwargs: Any):
        device = resolve_device(device)  # none given: cuda:<local rank> when CUDA is available, else cpu
        super().__init__(pretrained=pretrained, pipeline=pipeline, dtype=dtype, device=device, cpu_offload=cpu_offload, **kwargs)
        import diffusers

        folder = resolve_checkpoint(pretrained, "diffusers pipeline")
        cls = diffusers.DiffusionPipeline
        if pipeline:
            cls = getattr(diffusers, pipeline, None)
            if cls is None:
                raise ConfigError(f"diffusers has no pipeline class {pipeline!r}")
        try:
            self.pipe = cls.from_pretrained(str(folder), dtype=torch_dtype(dtype))
        except (OSError, ValueError) as exc:
            raise MissingWeightsError(f"diffusers pipeline {pretrained!r}: {str(exc).splitlines()[0]}") from exc
        if cpu_offload:
            self.pipe.enable_model_cpu_offload()
        else:
            self.pipe.to(device)
        self.pipe.set_progress_bar_config(disable=True)
        self.device = device
        self.accepts = set(inspect.signature(self.pipe.__call__).parameters)

    @classmethod
    def fingerprint_from_args(cls, pretrained: str = "", **kwargs: Any) -> str:
        return folder_fingerprint(pretrained)

    # -- helpers ---------------------------------------------------------------------------------
    def _call(self, requests: list[Request], **inputs):
        """One pipeline call for a batch of requests of one task (same settings), a generator per request."""
        import torch

        if any(r.think for r in requests):
            raise ConfigError("the diffusers adapter has no think mode (run with --think off)")
        first = requests[0]
        kwargs = {k: first.setting(k) for k in PIPELINE_SETTINGS if k in self.accepts and first.setting(k) is not None}
        kwargs.update(inputs.pop("overrides", {}))
        generator_device = "cpu" if self.device == "cpu" else self.device
        generators = [torch.Generator(generator_device).manual_seed(int(r.seed)) for r in requests]
        out = self.pipe(prompt=[r.prompt for r in requests], generator=generators, output_type="np", **kwargs, **inputs)
        return out.frames if hasattr(out, "frames") else out.images

    # -- capabilities -----------------------------------------------------------------------------
    def generate_image(self, requests: list[Request]):
        overrides = {"num_frames": 1} if "num_frames" in self.accepts else {}
        out = np.asarray(self._call(requests, overrides=overrides))
        if out.ndim == 5:  # a video pipeline: (B, F, H, W, 3), keep the first frame
            out = out[:, 0]
        return [as_uint8_image(img, what=f"diffusers output for {r.what}") for r, img in zip(requests, out)]

    def generate_video(self, requests: list[Request]):
        frames = self._call(requests)
        return [Video(np.asarray(f), fps=float(r.setting("fps", 8))) for r, f in zip(requests, frames)]

    def edit_image(self, requests: list[Request]):
        from PIL import Image

        pil = [Image.fromarray(as_uint8_image(r.media, what=f"edit source of {r.what}")) for r in requests]
        out = np.asarray(self._call(requests, image=pil))
        return [as_uint8_image(img, what=f"diffusers edit for {r.what}") for r, img in zip(requests, out)]
