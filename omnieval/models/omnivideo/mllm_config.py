"""The Omni-Video MLLM's configuration: plain data, importable without torch or transformers (the runner
fingerprints ``omnivideo-tiny`` from it before deciding whether anything needs to be loaded)."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

ROUTE_TASKS = ("t2v", "t2i", "understand")
#: Official routing ids (``generate.py``): 128003 -> video generation, 128002 -> image generation.
OFFICIAL_ROUTE_TOKEN_IDS = {"t2v": 128003, "t2i": 128002}

# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------
@dataclass
class MLLMConfig:
    """Everything that defines the MLLM except its weights (JSON-serialisable via :meth:`to_dict`).

    ``llm`` and ``vision_tower`` are keyword arguments of ``transformers.LlamaConfig`` and
    ``transformers.SiglipVisionConfig`` (for a loaded checkpoint: its ``config.json`` entries).
    """

    llm: dict[str, Any]
    vision_tower: dict[str, Any]
    mm_projector_type: str = "mlp_downsample"
    mm_vision_select_layer: int = -2
    mm_vision_select_feature: str = "cls_patch"
    image_aspect_ratio: str = "resize"
    image_mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    image_std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    image_resample: int = 3  # PIL.Image.BICUBIC
    num_video_frames: int = 8
    conv_template: str = "llama_3"
    mm_use_im_start_end: bool = False
    mm_use_im_patch_token: bool = False
    #: generated token id -> routed task (``route``); the official ids unless the tokenizer differs
    route_token_ids: dict[str, int] = field(default_factory=lambda: dict(OFFICIAL_ROUTE_TOKEN_IDS))

    @property
    def hidden_size(self) -> int:
        return int(self.llm["hidden_size"])

    @property
    def mm_hidden_size(self) -> int:
        return int(self.vision_tower["hidden_size"])

    @property
    def image_size(self) -> int:
        return int(self.vision_tower["image_size"])

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "MLLMConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"MLLMConfig: unknown key(s) {sorted(unknown)}")
        data = dict(data)
        for key in ("image_mean", "image_std"):
            if key in data:
                data[key] = tuple(float(v) for v in data[key])
        return cls(**data)

    @classmethod
    def tiny(cls) -> "MLLMConfig":
        """Tiny dimensions for tests (builds in well under a second); vocabulary of the tiny tokenizer."""
        return cls(
            llm=dict(
                vocab_size=654, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, max_position_embeddings=4096, rope_theta=500000.0, rms_norm_eps=1e-5,
                bos_token_id=640, eos_token_id=641, tie_word_embeddings=False,
            ),
            vision_tower=dict(
                hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32,
                patch_size=8, hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6,
            ),
            route_token_ids={"t2v": 643, "t2i": 642},  # [GEN_VID], [GEN_IMG] of the tiny tokenizer
        )

    @classmethod
    def llama3_vila_8b(cls) -> "MLLMConfig":
        """Released dimensions (Llama-3-8B + SigLIP so400m-patch14-384, ``mlp_downsample``), for reference."""
        return cls(
            llm=dict(
                vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=8192, rope_theta=500000.0,
                rms_norm_eps=1e-5, bos_token_id=128000, eos_token_id=128001, tie_word_embeddings=False,
            ),
            vision_tower=dict(
                hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
                image_size=384, patch_size=14, hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6,
            ),
        )
