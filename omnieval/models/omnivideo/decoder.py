"""Wan2.1-T2V decoder of Omni-Video through diffusers classes, with the official sampling loop.

Parts: ``WanTransformer3DModel`` (DiT), ``AutoencoderKLWan`` (3D causal VAE, stride (4, 8, 8)),
``UMT5EncoderModel`` + its tokenizer (umT5-XXL, ``text_len`` 512).

Conventions, all as OV1 ``OmniVideoX2XUnified.generate`` / ``generate.py``:

* Noise: ``torch.randn([16, (F-1)//4+1, H//8, W//8], generator=torch.Generator(device).manual_seed(seed))``
  in float32, one generator per sample.  ``noise_device="model"`` (default) draws it on the decoder's device,
  as the official ``generate`` (``torch.Generator(device=self.device)``), so a CUDA run reproduces the official
  noise for a seed; ``"cpu"`` draws it on the CPU (the same numbers on any device, not the official ones on CUDA).
* Sampler: diffusers ``UniPCMultistepScheduler`` (flow prediction, order 2, bh2, final sigma 0) given Wan's
  ``FlowUniPCMultistepScheduler`` sigmas explicitly: ``linspace(0.999, 0, steps+1)[:-1]`` shifted by
  ``shift * s / (1 + (shift-1) * s)`` (``sample_shift`` 5.0); timesteps ``int64(1000 * sigma)``.
* Guidance: ``"official"`` ``pred = cond + s*(cond - uncond)`` (OV1), or ``"textbook"``
  ``pred = uncond + s*(cond - uncond)``.
* umT5 prompt embedding: text cleaned like Wan's tokenizer (``ftfy`` when installed, html unescape,
  whitespace collapsed), padded to 512, trimmed to its real length (EOS included).
* Edit source (image or video frames, uint8): centre-cropped to the target aspect ratio, resized to
  ``H x W`` (PIL bilinear), scaled to [-1, 1], VAE-encoded to the posterior **mean**, normalised with the
  VAE's ``latents_mean``/``latents_std``.
* Output: VAE decode clamped to [-1, 1], then uint8 as the official savers: images ``round(255*(x+1)/2)``
  (``torchvision.utils.save_image``), videos ``floor(255*(x+1)/2)`` (``cache_video``).
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from omnieval.errors import MediaError

GuidanceForm = Literal["official", "textbook"]
NoiseDevice = Literal["model", "cpu"]
#: Wan's FlowUniPC sigma_max: float32(1 - 1/num_train_timesteps); sigma_min is 0
WAN_SIGMA_MAX = float(np.float32(1 - 1 / 1000))


def wan_sigmas(steps: int) -> np.ndarray:
    """Unshifted sigmas of Wan's ``FlowUniPCMultistepScheduler.set_timesteps`` (shift is applied by diffusers)."""
    return np.linspace(WAN_SIGMA_MAX, 0.0, steps + 1)[:-1].copy()


def make_scheduler(steps: int, shift: float):
    from diffusers import UniPCMultistepScheduler

    sched = UniPCMultistepScheduler(
        num_train_timesteps=1000, solver_order=2, prediction_type="flow_prediction", use_flow_sigmas=True,
        flow_shift=shift, solver_type="bh2", predict_x0=True, lower_order_final=True, final_sigmas_type="zero",
    )
    sched.set_timesteps(sigmas=wan_sigmas(steps))
    return sched


def combine_guidance(cond: torch.Tensor, uncond: torch.Tensor, scale: float, form: GuidanceForm) -> torch.Tensor:
    if form == "official":
        return cond + scale * (cond - uncond)
    if form == "textbook":
        return uncond + scale * (cond - uncond)
    raise ValueError(f"unknown guidance form {form!r} (use 'official' or 'textbook')")


def initial_noise(shape: tuple[int, ...], seed: int, device: str | torch.device = "cpu") -> torch.Tensor:
    """Float32 standard-normal noise from a generator on ``device`` seeded with ``seed`` (official convention)."""
    generator = torch.Generator(device).manual_seed(int(seed))
    return torch.randn(shape, generator=generator, dtype=torch.float32, device=generator.device)


def clean_prompt(text: str) -> str:
    """Wan's tokenizer cleaning (``clean='whitespace'``): ftfy + double html unescape, whitespace collapsed."""
    try:
        import ftfy

        text = ftfy.fix_text(text)
    except ImportError:  # pragma: no cover - ftfy is optional
        pass
    text = html.unescape(html.unescape(text)).strip()
    return re.sub(r"\s+", " ", text).strip()


def center_crop_resize(frames: np.ndarray, height: int, width: int) -> torch.Tensor:
    """uint8 ``T x H x W x 3`` -> float ``[3, T, height, width]`` in [-1, 1] (official edit preprocessing)."""
    from PIL import Image

    out = []
    for frame in frames:
        h, w = frame.shape[:2]
        ratio = width / height
        ch, cw = (int(w / ratio), w) if w < h * ratio else (h, int(h * ratio))
        top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
        img = Image.fromarray(frame).crop((left, top, left + cw, top + ch)).resize((width, height), Image.BILINEAR)
        out.append(torch.from_numpy(np.array(img)).float().div(255.0))
    video = torch.stack(out).permute(3, 0, 1, 2)
    return video.mul(2.0).sub(1.0)


def to_uint8(x: torch.Tensor, *, image: bool, what: str = "output") -> np.ndarray:
    """``[3, T, H, W]`` in [-1, 1] -> uint8 ``T x H x W x 3`` (rounding for images, truncation for videos).

    Non-finite values are refused (a :class:`MediaError` naming ``what``): casting NaN to uint8 gives 0, which
    would turn a diverged sample (e.g. a NaN guidance scale) into a black image that is scored normally."""
    if not torch.isfinite(x).all():
        raise MediaError(f"{what}: decoded frames contain NaN or infinite values (diverged sampling; check "
                         f"guidance_scale and the other generation settings)")
    y = (x.clamp(-1, 1).float() + 1) / 2 * 255
    y = (y + 0.5).clamp(0, 255) if image else y
    return y.to(torch.uint8).permute(1, 2, 3, 0).cpu().numpy()


@dataclass
class WanDecoder:
    """The diffusers parts of Wan2.1 plus the sampling settings that are not per request."""

    transformer: "torch.nn.Module"
    vae: "torch.nn.Module"
    text_encoder: "torch.nn.Module"
    tokenizer: object
    text_len: int = 512
    vae_stride: tuple[int, int, int] = (4, 8, 8)
    dtype: torch.dtype = torch.float32
    device: str = "cpu"

    @property
    def z_dim(self) -> int:
        return int(self.vae.config.z_dim)

    def _latent_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.vae.config
        mean = torch.tensor(cfg.latents_mean, dtype=torch.float32).view(-1, 1, 1, 1)
        std = torch.tensor(cfg.latents_std, dtype=torch.float32).view(-1, 1, 1, 1)
        return mean, std

    @torch.no_grad()
    def encode_prompts(self, prompts: list[str]) -> list[torch.Tensor]:
        """umT5 embeddings ``[L_i, text_dim]`` (float32), trimmed to each prompt's tokens."""
        tok = self.tokenizer(
            [clean_prompt(p) for p in prompts], padding="max_length", max_length=self.text_len, truncation=True,
            add_special_tokens=True, return_attention_mask=True, return_tensors="pt",
        )
        mask = tok.attention_mask.to(self.device)
        hidden = self.text_encoder(tok.input_ids.to(self.device), mask).last_hidden_state
        return [h[: int(n)].float() for h, n in zip(hidden, mask.sum(dim=1))]

    @torch.no_grad()
    def encode_source(self, frames: np.ndarray, height: int, width: int) -> torch.Tensor:
        """uint8 ``T x H x W x 3`` -> normalised latent mean ``[z, (T-1)//4+1, height//8, width//8]``."""
        video = center_crop_resize(frames, height, width).unsqueeze(0).to(self.device, self.vae.dtype)
        mu = self.vae.encode(video).latent_dist.mode()[0].float().cpu()
        mean, std = self._latent_stats()
        return (mu - mean) / std

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Normalised latents ``[z, f, h, w]`` -> ``[3, F, H, W]`` in [-1, 1]."""
        mean, std = self._latent_stats()
        z = (latents.float().cpu() * std + mean).unsqueeze(0).to(self.device, self.vae.dtype)
        return self.vae.decode(z, return_dict=False)[0][0].float().clamp(-1, 1).cpu()

    def latent_shape(self, num_frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        st, sh, sw = self.vae_stride
        return (self.z_dim, (num_frames - 1) // st + 1, height // sh, width // sw)

    @torch.no_grad()
    def sample(
        self,
        cond_context: torch.Tensor,
        null_context: torch.Tensor,
        *,
        shape: tuple[int, int, int, int],
        seed: int,
        steps: int,
        guidance_scale: float,
        shift: float = 5.0,
        guidance_form: GuidanceForm = "official",
        noise_device: NoiseDevice = "model",
    ) -> torch.Tensor:
        """Denoise one sample.  Contexts are ``[text_len', D]`` (already padded); returns latents ``[z, f, h, w]``."""
        latents = initial_noise(shape, seed, self.device if noise_device == "model" else "cpu").cpu()
        sched = make_scheduler(steps, shift)
        contexts = torch.stack([cond_context, null_context]).to(self.device, self.dtype)
        for t in sched.timesteps:
            inp = latents.unsqueeze(0).expand(2, *shape).to(self.device, self.dtype)
            out = self.transformer(
                hidden_states=inp, timestep=t.expand(2).to(self.device), encoder_hidden_states=contexts, return_dict=False
            )[0].float().cpu()
            pred = combine_guidance(out[0], out[1], guidance_scale, guidance_form)
            latents = sched.step(pred.unsqueeze(0), t, latents.unsqueeze(0), return_dict=False)[0][0]
        return latents
