"""``hf-vlm``: a transformers image-text-to-text model answering questions about videos from sampled frames.

``--model hf-vlm --model_args pretrained=llava-hf/llava-onevision-qwen2-0.5b-ov-hf,num_frames=8``

* ``pretrained``: local folder or cached hub id, loaded with ``AutoProcessor`` +
  ``AutoModelForImageTextToText`` (``trust_remote_code`` only if the user sets it).
* Frames: the frames a task's ``frames:`` spec sampled (:mod:`omnieval.frames`), all of them; for a task without
  one, ``num_frames`` (default 8) sampled from each video with ``frame_policy`` (default ``uniform``: ``linspace(0,
  T-1, n)`` rounded; ``uniform_floor`` truncates as lmms-eval / VILA / Video-MME do), decoding only those.  They are
  passed as that many images in one user turn, in order, before the question.  An image input is one frame.
* Decoding: the task's ``max_new_tokens`` / ``temperature`` / ``top_p``; ``temperature`` 0 or unset means
  greedy.  With sampling, ``torch.manual_seed(seed)`` is set per request.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from omnieval.errors import MissingWeightsError
from omnieval.frames import is_task_sampled
from omnieval.launch import resolve_device
from omnieval.media import Video, as_frames, sample_frame_indices
from omnieval.models.base import Model, Request
from omnieval.models.hub import folder_fingerprint, resolve_checkpoint, torch_dtype
from omnieval.registry import register_model


@register_model("hf-vlm", description="transformers image-text-to-text model answering video questions from sampled frames")
class HFVideoVLM(Model):
    capabilities = ("understand",)
    supports_think = False

    def __init__(self, pretrained: str, num_frames: int = 8, frame_policy: str = "uniform", dtype: str | None = "float32",
                 device: str | None = None, trust_remote_code: bool = False, **kwargs: Any):
        device = resolve_device(device)  # none given: cuda:<local rank> when CUDA is available, else cpu
        super().__init__(pretrained=pretrained, num_frames=num_frames, frame_policy=frame_policy, dtype=dtype, device=device,
                         trust_remote_code=trust_remote_code, **kwargs)
        from transformers import AutoModelForImageTextToText, AutoProcessor

        folder = resolve_checkpoint(pretrained, "hf-vlm")
        try:
            self.processor = AutoProcessor.from_pretrained(str(folder), trust_remote_code=trust_remote_code)
            self.model = AutoModelForImageTextToText.from_pretrained(str(folder), dtype=torch_dtype(dtype),
                                                                     trust_remote_code=trust_remote_code).to(device).eval()
        except (OSError, ValueError) as exc:
            raise MissingWeightsError(f"hf-vlm {pretrained!r}: {str(exc).splitlines()[0]}") from exc
        self.device = device
        self.num_frames, self.frame_policy = int(num_frames), frame_policy

    @classmethod
    def fingerprint_from_args(cls, pretrained: str = "", **kwargs: Any) -> str:
        return folder_fingerprint(pretrained)

    @classmethod
    def frame_sampling(cls, num_frames: int = 8, frame_policy: str = "uniform", **kwargs: Any) -> str:
        return f"{frame_policy} num={num_frames} (media.sample_frame_indices)"

    def frames(self, media) -> list[np.ndarray]:
        """The frames shown to the model: all the frames a task's ``frames:`` spec sampled, else ``num_frames`` by
        ``frame_policy`` (decoding only those), else the image."""
        if is_task_sampled(media):
            return list(media.frames)
        if isinstance(media, Video):
            return list(media.sample(sample_frame_indices(len(media), self.num_frames, self.frame_policy)))
        return list(as_frames(media))

    def understand(self, requests: list[Request]) -> list[str]:
        import torch
        from PIL import Image

        answers = []
        for r in requests:
            images = [Image.fromarray(f) for f in self.frames(r.media)]
            messages = [{"role": "user", "content": [{"type": "image"} for _ in images] + [{"type": "text", "text": r.prompt}]}]
            prompt = self.processor.apply_chat_template(messages, add_generation_prompt=True)
            inputs = self.processor(images=images, text=prompt, return_tensors="pt").to(self.device)
            temperature, top_p = r.setting("temperature"), r.setting("top_p")
            sample = bool(temperature)
            kwargs = {"max_new_tokens": int(r.setting("max_new_tokens", 64)), "do_sample": sample}
            if sample:
                kwargs.update(temperature=float(temperature), top_p=float(top_p) if top_p else None)
                torch.manual_seed(int(r.seed))
            with torch.inference_mode():
                out = self.model.generate(**inputs, **kwargs)
            new_tokens = out[:, inputs["input_ids"].shape[1]:]
            answers.append(self.processor.batch_decode(new_tokens, skip_special_tokens=True)[0].strip())
        return answers
