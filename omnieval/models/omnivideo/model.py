"""Registered models ``omnivideo`` (official checkpoint) and ``omnivideo-tiny`` (seeded random, built in code).

Per generation request (OV1 ``tools/inference/generate.py``), one sample at a time with its own seed:

1. Routing: free MLLM decoding on (source, prompt); the generation-trigger token in the output gives the
   routed task (``OmniMLLM.route``).  The official script lets it override the requested task; here the
   requested task always wins and ``info["routed_task"]`` / ``info["task_mismatch"]`` record the route
   (``route=false`` skips this extra decoding; then both are ``None``).
2. Think mode (``think=True``): ``OmniMLLM.think`` rewrites the request (``think_template``); the
   rewritten prompt replaces the request for the MLLM embedding and, with ``think_umt5=rewritten``
   (default), for umT5 as well.  ``info["rewritten_prompt"]`` keeps it.
3. ``OmniMLLM.generation_hidden_states`` (official ``general_emb``: task prefix + forced ``[GEN_VID]``/
   ``[GEN_IMG]``) -> vision head -> DM adapter (image: first visual token; video: all four).
4. Condition sequence and null branch: :mod:`.conditioning`; sampling and decoding: :mod:`.decoder`.

Edit sources: images are centre-cropped/resized to the output size and VAE-encoded (first latent frame);
videos give ``num_frames`` frames taken every ``edit_sampling_rate``-th frame after ``edit_skip_num``
(the rate is lowered until the clip is long enough, as the official reader), then the same preprocessing.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from omnieval.errors import ConfigError, MediaError, OmniEvalError
from omnieval.launch import device_type, resolve_device
from omnieval.media import Video, as_uint8_frames, as_uint8_image
from omnieval.models.base import Generation, Model, ModelIdentity, Request, quick_fingerprint
from omnieval.registry import register_model

if TYPE_CHECKING:  # torch is imported where it is used: computing a model's identity must not need it
    import torch

log = logging.getLogger(__name__)

#: requested capability -> (official task name, is_video, has_source)
TASKS = {
    "t2i": ("t2i", False, False),
    "t2v": ("t2v", True, False),
    "long_video": ("t2v", True, False),
    "edit_image": ("i2i", False, True),
    "edit_video": ("v2v", True, True),
}


@dataclass(frozen=True)
class TaskDefaults:
    height: int
    width: int
    num_frames: int
    fps: float
    steps: int
    guidance: float


OFFICIAL_DEFAULTS = {  # tools/inference/inference.sh
    "t2i": TaskDefaults(480, 480, 1, 8.0, 50, 5.0),
    "t2v": TaskDefaults(480, 832, 81, 16.0, 50, 5.0),
    "i2i": TaskDefaults(480, 480, 1, 8.0, 40, 3.0),
    "v2v": TaskDefaults(352, 640, 17, 8.0, 40, 3.0),
}
TINY_DEFAULTS = {
    "t2i": TaskDefaults(32, 32, 1, 8.0, 3, 5.0),
    "t2v": TaskDefaults(32, 32, 5, 8.0, 3, 5.0),
    "i2i": TaskDefaults(32, 32, 1, 8.0, 3, 3.0),
    "v2v": TaskDefaults(32, 32, 5, 8.0, 3, 3.0),
}


@dataclass(frozen=True)
class Settings:
    """Model arguments that change outputs (all recorded in the model identity)."""

    guidance_form: str = "official"
    noise_device: str = "model"  # "model": initial noise drawn on `device` (official); "cpu": device-independent
    sample_shift: float = 5.0
    think_template: str | None = None  # None: the MLLM's default template
    think_max_new_tokens: int = 256
    think_umt5: str = "rewritten"  # "rewritten" | "original": which prompt umT5 embeds in think mode
    route: bool = True
    route_max_new_tokens: int = 512
    edit_sampling_rate: int = 3
    edit_skip_num: int = 1
    max_context_len: int = 2560
    max_new_tokens: int = 1024
    temperature: float = 0.2
    top_p: float | None = 0.6
    do_sample: bool = True
    dtype: str = "float32"
    device: str | None = None  # None: omnieval.launch.default_device() (cuda:<local rank> under a launcher, else cpu)
    cpu_offload: bool = False

    @classmethod
    def parse(cls, args: dict[str, Any], resolve: bool = True) -> tuple["Settings", dict[str, Any]]:
        """Split ``--model_args`` into typed settings and the rest (strings are converted).  ``resolve``: the device
        becomes the one to load on (:func:`omnieval.launch.resolve_device`; needs torch)."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values, rest = {}, {}
        for key, value in args.items():
            if key not in fields:
                rest[key] = value
                continue
            default = fields[key].default
            values[key] = _convert(key, value, default)
        settings = cls(**values)
        if resolve:
            settings = dataclasses.replace(settings, device=resolve_device(settings.device))
        if settings.guidance_form not in ("official", "textbook"):
            raise ConfigError(f"omnivideo: guidance_form must be 'official' or 'textbook', got {settings.guidance_form!r}")
        if settings.noise_device not in ("model", "cpu"):
            raise ConfigError(f"omnivideo: noise_device must be 'model' or 'cpu', got {settings.noise_device!r}")
        if settings.think_umt5 not in ("rewritten", "original"):
            raise ConfigError(f"omnivideo: think_umt5 must be 'rewritten' or 'original', got {settings.think_umt5!r}")
        if settings.dtype not in ("float32", "bfloat16", "float16"):
            raise ConfigError(f"omnivideo: dtype must be float32, bfloat16 or float16, got {settings.dtype!r}")
        return settings, rest

    @property
    def torch_dtype(self) -> torch.dtype:
        import torch

        return getattr(torch, self.dtype)


def _convert(key: str, value: Any, default: Any) -> Any:
    if not isinstance(value, str) or isinstance(default, str) or default is None:
        return value
    try:
        if isinstance(default, bool):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        return type(default)(value)
    except ValueError:
        raise ConfigError(f"omnivideo: model arg {key}={value!r} is not a valid {type(default).__name__}") from None


class OmniVideoBase(Model):
    """Shared implementation; subclasses build ``self.mllm`` and ``self.parts``."""

    capabilities: ClassVar[tuple[str, ...]] = ("understand", "t2i", "t2v", "long_video", "edit_image", "edit_video")
    output_irrelevant_args = Model.output_irrelevant_args + ("cpu_offload",)
    #: ``--model_args`` keys besides the :class:`Settings` fields (where the weights come from)
    source_args: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def known_args(cls) -> frozenset[str]:
        return frozenset({f.name for f in dataclasses.fields(Settings)} | set(cls.source_args) | set(cls.output_irrelevant_args))
    task_defaults: ClassVar[dict[str, TaskDefaults]] = OFFICIAL_DEFAULTS

    @classmethod
    def frame_sampling(cls, **kwargs: Any) -> str:
        return ("uniform_floor num=num_video_frames of the MLLM config (VILA's opencv_extract_frames: "
                "linspace(0, T-1, n) truncated, all frames when T < n)")

    def __init__(self, mllm, parts, settings: Settings, **args: Any):
        super().__init__(**args)
        self.mllm, self.parts, self.settings = mllm, parts, settings
        self.args.update({k: v for k, v in dataclasses.asdict(settings).items() if k not in ("device",)})
        for m in parts.modules():
            if next(m.parameters()).dtype != settings.torch_dtype:
                m.to(dtype=settings.torch_dtype)
            m.eval()
        parts.decoder.dtype = settings.torch_dtype
        parts.decoder.device = settings.device
        self._place(settings.device)

    @classmethod
    def identity_from_args(cls, **kwargs: Any) -> ModelIdentity:
        """Identity over the *resolved* settings, so defaults are recorded and spelled-out defaults match."""
        from omnieval.models.omnivideo.chat import DEFAULT_THINK_TEMPLATE

        settings, rest = Settings.parse(kwargs, resolve=False)  # no torch import to recognise finished work
        full = {**rest, **{k: v for k, v in dataclasses.asdict(settings).items() if k != "device"}}
        full["think_template"] = settings.think_template or DEFAULT_THINK_TEMPLATE  # the text used, not "default"
        if settings.noise_device == "model":  # seeded noise then depends on the device type (CPU vs CUDA RNG)
            full["noise_generator"] = device_type(settings.device)
        return super().identity_from_args(**full)

    def _place(self, device: str) -> None:
        target = "cpu" if self.settings.cpu_offload else device
        for m in self.parts.modules():
            m.to(target)

    # -- capabilities ---------------------------------------------------------------------------
    def understand(self, requests: list[Request]) -> list[str]:
        s = self.settings
        return [
            self.mllm.answer([r.media], [r.prompt], max_new_tokens=int(r.setting("max_new_tokens", s.max_new_tokens)),
                             temperature=float(r.setting("temperature", s.temperature)),
                             top_p=_optional_float(r.setting("top_p", s.top_p)),
                             do_sample=bool(r.setting("do_sample", s.do_sample)), seed=r.seed)[0]
            for r in requests
        ]

    def generate_image(self, requests: list[Request]) -> list[Generation]:
        return [self._one(r, None) for r in requests]

    def generate_video(self, requests: list[Request]) -> list[Generation]:
        return [self._one(r, None) for r in requests]

    def edit_image(self, requests: list[Request]) -> list[Generation]:
        return [self._one(r, as_uint8_image(r.media, what=f"edit_image source of {r.what}")) for r in requests]

    def edit_video(self, requests: list[Request]) -> list[Generation]:
        return [self._one(r, r.media if isinstance(r.media, Video) else Video(as_uint8_frames(r.media, what=f"edit_video source of {r.what}")))
                for r in requests]

    # -- internals ------------------------------------------------------------------------------
    def _size(self, task: str, request: Request) -> TaskDefaults:
        d = self.task_defaults[task]
        video = TASKS_BY_OFFICIAL[task]
        frames = int(request.setting("num_frames", d.num_frames)) if video else 1
        out = TaskDefaults(int(request.setting("height", d.height)), int(request.setting("width", d.width)), frames,
                           float(request.setting("fps", d.fps)), int(request.setting("num_inference_steps", d.steps)),
                           float(request.setting("guidance_scale", d.guidance)))
        patch = self.parts.decoder.transformer.config.patch_size
        mult_h, mult_w = self.parts.decoder.vae_stride[1] * patch[1], self.parts.decoder.vae_stride[2] * patch[2]
        if out.height % mult_h or out.width % mult_w:
            raise ConfigError(f"omnivideo: height/width must be multiples of {mult_h}/{mult_w}, got {out.height}x{out.width}")
        if (out.num_frames - 1) % self.parts.decoder.vae_stride[0]:
            raise ConfigError(f"omnivideo: num_frames must be 4n+1, got {out.num_frames}")
        return out

    def _source_frames(self, source, size: TaskDefaults, item: str) -> np.ndarray:
        if not isinstance(source, Video):
            return source[None]
        frames, n = source.frames, size.num_frames
        rate, skip = self.settings.edit_sampling_rate, self.settings.edit_skip_num
        while rate > 0 and len(frames) < n * rate + skip:
            rate -= 1
        if rate == 0:
            raise MediaError(f"{item}: source video has {len(frames)} frames, need at least {n + skip}")
        return frames[skip::rate][:n]

    def _one(self, request: Request, source) -> Generation:
        import torch

        with torch.no_grad():
            return self._generate_one(request, source)

    def _generate_one(self, request: Request, source) -> Generation:
        from omnieval.models.omnivideo.adapter import adapt_visual_tokens
        from omnieval.models.omnivideo.conditioning import build_context, pad_contexts
        from omnieval.models.omnivideo.decoder import to_uint8

        capability, prompt, think, seed = request.capability, request.prompt, bool(request.think), request.seed
        task, is_video, _ = TASKS[capability]
        item = request.what
        if not isinstance(prompt, str):
            raise MediaError(f"{item}: prompt must be a string")
        size = self._size(task, request)
        info: dict[str, Any] = {"think": think, "routed_task": None, "task_mismatch": None}
        if self.settings.route:
            routed = self.mllm.route([prompt], [source] if source is not None else None, seed=seed,
                                     max_new_tokens=self.settings.route_max_new_tokens)[0]
            info["routed_task"] = routed
            info["task_mismatch"] = routed == "understand" if source is not None else routed != task
        gen_prompt = prompt
        if think:
            kwargs = {"template": self.settings.think_template} if self.settings.think_template else {}
            result = self.mllm.think_with_info([prompt], task=capability, max_new_tokens=self.settings.think_max_new_tokens,
                                               seed=seed, **kwargs)[0]
            gen_prompt = result.prompt
            info.update(rewritten_prompt=gen_prompt, think_fell_back=result.fell_back, think_raw=result.raw)
        umt5_prompt = gen_prompt if self.settings.think_umt5 == "rewritten" else prompt
        hidden = self.mllm.generation_hidden_states([gen_prompt], task, [source] if source is not None else None)[0]

        p, dev, dt = self.parts, self.settings.device, self.settings.torch_dtype
        with self._on_device():
            is_image = size.num_frames == 1
            cond_tokens = adapt_visual_tokens(p.adapter, p.vision_head(hidden.unsqueeze(0).to(dev, dt)), is_image)[0]
            null_tokens = adapt_visual_tokens(p.adapter, p.vision_head(p.uncond.vlm_hidden_states.to(dev, dt)), is_image)[0]
            visual = None
            if source is not None:
                latents = p.decoder.encode_source(self._source_frames(source, size, item), size.height, size.width)
                latents = latents[:, :1] if not is_video else latents
                visual = p.visual_adapter(latents.to(dev, dt))[0]
            prompt_emb = p.decoder.encode_prompts([umt5_prompt])[0].to(dev, dt)
            special = {k: v.to(dev, dt) for k, v in p.special_tokens.items()}
            cond = build_context(adapter_tokens=cond_tokens, prompt_emb=prompt_emb, visual_tokens=visual, special=special,
                                 max_len=p.max_context_len)
            null = build_context(adapter_tokens=null_tokens, prompt_emb=p.uncond.text_emb.to(dev, dt), visual_tokens=visual,
                                 special=special, max_len=p.max_context_len)
            ctx = pad_contexts([cond, null], p.max_context_len)
            latents = p.decoder.sample(
                ctx[0], ctx[1], shape=p.decoder.latent_shape(size.num_frames, size.height, size.width), seed=seed,
                steps=size.steps, guidance_scale=size.guidance, shift=self.settings.sample_shift,
                guidance_form=self.settings.guidance_form,  # type: ignore[arg-type]
                noise_device=self.settings.noise_device,  # type: ignore[arg-type]
            )
            frames = to_uint8(p.decoder.decode(latents), image=not is_video, what=item)
        output = Video(frames, fps=size.fps) if is_video else frames[0]
        return Generation(output, info)

    def _on_device(self):
        """With ``cpu_offload``, move the generation modules to ``device`` for one request, then back."""
        import contextlib

        @contextlib.contextmanager
        def ctx():
            if self.settings.cpu_offload and self.settings.device != "cpu":
                for m in self.parts.modules():
                    m.to(self.settings.device)
                try:
                    yield
                finally:
                    for m in self.parts.modules():
                        m.to("cpu")
            else:
                yield

        return ctx()

    def close(self) -> None:
        self.mllm = self.parts = None  # type: ignore[assignment]


TASKS_BY_OFFICIAL = {official: video for official, video, _ in TASKS.values()}


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


@register_model(
    "omnivideo",
    description="Omni-Video (VILA/Llama-3 MLLM + vision head + adapter -> Wan2.1-T2V-1.3B) from an omni_ckpts/ root",
)
class OmniVideo(OmniVideoBase):
    """``--model omnivideo --model_args checkpoint=<repo root or omni_ckpts/>,dtype=bfloat16,device=cuda``."""

    source_args = ("checkpoint", "root")

    def __init__(self, mllm, parts, settings: Settings, root: Path, **args: Any):
        super().__init__(mllm, parts, settings, **args)
        self.root = root

    @classmethod
    def from_args(cls, **kwargs: Any) -> "OmniVideo":
        from omnieval.models.omnivideo.checkpoint import LAYOUT, checkpoint_root, load_official
        from omnieval.models.omnivideo.mllm import OmniMLLM

        settings, rest = Settings.parse(kwargs)
        path = rest.get("checkpoint") or rest.get("root")
        if not path:
            raise ConfigError("omnivideo: pass --model_args checkpoint=<folder containing omni_ckpts/ or omni_ckpts itself>")
        root = checkpoint_root(path)
        parts = load_official(root, max_context_len=settings.max_context_len)
        mllm = OmniMLLM.from_pretrained(root / LAYOUT["ar_model"], dtype=settings.torch_dtype, device=settings.device)
        return cls(mllm, parts, settings, root, **kwargs)

    @classmethod
    def fingerprint_from_args(cls, **kwargs: Any) -> str:
        """:func:`~omnieval.models.base.quick_fingerprint` of every checkpoint file (name, size, head and tail):
        computed on every run before anything loads, so it must not read ~30 GB."""
        from omnieval.models.omnivideo.checkpoint import checkpoint_root, weight_files

        path = kwargs.get("checkpoint") or kwargs.get("root")
        if not path:
            return "no-checkpoint"
        try:
            root = checkpoint_root(path)
        except OmniEvalError:
            return f"missing:{path}"
        return quick_fingerprint(weight_files(root))

    @property
    def load_report(self) -> dict:
        return self.parts.report.to_dict()


@register_model(
    "omnivideo-tiny",
    description="Omni-Video architecture with tiny seeded random weights, built in code (smoke tests; outputs are noise)",
)
class OmniVideoTiny(OmniVideoBase):
    """Everything random from ``seed`` (default 0); default generation 32x32, 5 frames, 3 steps."""

    task_defaults = TINY_DEFAULTS
    source_args = ("seed",)

    def __init__(self, mllm, parts, settings: Settings, seed: int = 0, **args: Any):
        super().__init__(mllm, parts, settings, **args)
        self.seed = seed

    #: decoding budgets of the tiny model: a random LLM rarely emits end-of-text, so the real model's 512-token
    #: routing and 256-token think budgets would only cost time
    tiny_decoding = {"route_max_new_tokens": 8, "think_max_new_tokens": 8}

    @classmethod
    def from_args(cls, **kwargs: Any) -> "OmniVideoTiny":
        kwargs = {**cls.tiny_decoding, **kwargs}
        settings, rest = Settings.parse(kwargs)
        seed = int(rest.get("seed", 0))
        mllm = build_tiny_mllm(seed)
        parts = build_tiny_parts(seed, llm_hidden_size=mllm.hidden_size, max_context_len=settings.max_context_len)
        return cls(mllm, parts, settings, **{**kwargs, "seed": seed})

    @classmethod
    def identity_from_args(cls, **kwargs: Any):
        return super().identity_from_args(**{**cls.tiny_decoding, **kwargs})

    @classmethod
    def fingerprint_from_args(cls, seed: Any = 0, **kwargs: Any) -> str:
        from omnieval.models.omnivideo.mllm_config import MLLMConfig

        payload = json.dumps({"config": tiny_config(), "mllm": MLLMConfig.tiny().to_dict(), "seed": int(seed)}, sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------------
# tiny random model (tests, smoke runs)
# ------------------------------------------------------------------------------------------------
def tiny_config() -> dict:
    """Shapes of ``omnivideo-tiny``'s generation side (the MLLM's come from ``MLLMConfig.tiny``)."""
    return {
        "query_transformer": {"width": 32, "num_layers": 1, "num_heads": 8, "ffn_mult": 4},
        "vision_head_queries": 4,
        "adapter_queries": 16,
        "wan": dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16, out_channels=16,
                    text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True,
                    qk_norm="rms_norm_across_heads", rope_max_seq_len=32),
        "vae": dict(base_dim=4, z_dim=16),  # Wan2.1 structure (so it can be written as Wan2.1_VAE.pth), tiny width
        "umt5": dict(d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4, relative_attention_num_buckets=8),
        "uncond_lengths": {"text_emb": 6, "vlm_last_hidden_states": 9},
    }


def build_tiny_mllm(seed: int):
    from omnieval.models.omnivideo.mllm import MLLMConfig, OmniMLLM

    return OmniMLLM.from_config(MLLMConfig.tiny(), seed=seed)


def build_tiny_parts(seed: int, *, llm_hidden_size: int, max_context_len: int = 2560):
    """Generation side of ``omnivideo-tiny``: every weight drawn from ``seed`` (global RNG untouched)."""
    import torch
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    from omnieval.models.omnivideo.adapter import DMAdapter, VisualContextAdapter
    from omnieval.models.omnivideo.checkpoint import OmniVideoParts
    from omnieval.models.omnivideo.conditioning import SPECIAL_TOKENS, UnconditionedContext
    from omnieval.models.omnivideo.decoder import WanDecoder
    from omnieval.models.omnivideo.tokenizers import build_tiny_umt5_tokenizer
    from omnieval.models.omnivideo.vision_head import QueryTransformerConfig, VisionHead

    cfg = tiny_config()
    q = cfg["query_transformer"]
    width, text_dim = q["width"], cfg["wan"]["text_dim"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = VisionHead(QueryTransformerConfig(llm_hidden_size, width, cfg["vision_head_queries"], q["num_layers"],
                                                 q["num_heads"], q["ffn_mult"]))
        adapter = DMAdapter(QueryTransformerConfig(width, text_dim, cfg["adapter_queries"], q["num_layers"], q["num_heads"],
                                                   q["ffn_mult"]))
        for module in (head, adapter):
            torch.nn.init.normal_(module.decoder_query, std=0.02)
        transformer = WanTransformer3DModel(**cfg["wan"])
        wan_dim = cfg["wan"]["num_attention_heads"] * cfg["wan"]["attention_head_dim"]
        visual = VisualContextAdapter((1, 4, 4), cfg["wan"]["in_channels"], wan_dim, text_dim)
        vae = AutoencoderKLWan(**cfg["vae"])
        tokenizer = build_tiny_umt5_tokenizer()
        text_encoder = UMT5EncoderModel(UMT5Config(vocab_size=len(tokenizer), **cfg["umt5"]))
        special = {name: torch.randn(1, text_dim) for name in SPECIAL_TOKENS}
        lens = cfg["uncond_lengths"]
        uncond = UnconditionedContext(
            text_emb=torch.randn(lens["text_emb"], text_dim),
            vlm_hidden_states=torch.randn(1, lens["vlm_last_hidden_states"], llm_hidden_size),
            aligned_emb=torch.randn(1, width),
        )
    decoder = WanDecoder(transformer=transformer, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer)
    parts = OmniVideoParts(head, adapter, visual, decoder, special, uncond, max_context_len=max_context_len)
    for m in parts.modules():
        m.eval()
    return parts
