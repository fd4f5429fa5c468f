"""The Omni-Video MLLM: a VILA model (SigLIP vision tower + multimodal projector + Llama-3 LM with its text
head) in plain ``transformers`` modules, with the official code's prompting, decoding and embedding rules.

Architecture (VILA ``LlavaLlamaModel``, which Omni-Video's ``VilaARVideoModel`` loads):

* vision tower: ``transformers.SiglipVisionModel``; features = hidden states of layer
  ``mm_vision_select_layer`` (-2: the penultimate block, before the post-layernorm), all tokens
  (``mm_vision_select_feature="cls_patch"``; ``"patch"`` drops the first token);
* projector (``mm_projector_type``): ``mlp_downsample`` (VILA-1.5: merge each 2x2 patch neighbourhood into
  one token of 4x width, zero-padding an odd grid, then LayerNorm -> Linear -> GELU -> Linear), ``linear``,
  ``mlpNx_gelu`` or ``identity``;
* LLM: ``transformers`` causal LM (Llama-3-8B in the release, hidden 4096) with the text head.

Image preprocessing (VILA ``process_images`` with ``image_aspect_ratio="resize"`` and the SigLIP processor):
RGB uint8 -> PIL bicubic resize to ``image_size`` x ``image_size`` (no crop, aspect ratio not kept; ``"pad"``
first pads to a square with the mean colour) -> ``/255`` -> ``(x - mean) / std`` (0.5 / 0.5 for SigLIP).
Each image (or video frame) becomes one ``<image>`` placeholder filled with its projected tokens.

Frame sampling:

* understanding / routing (official ``opencv_extract_frames``): ``num_video_frames`` (8) frames at
  ``linspace(0, T-1, n)`` truncated to int; a video with fewer frames uses all of them;
* ``v2v`` embedding (official ``general_emb``): the source's 8 frames are read at ``linspace(0, T-2, 8)``, but
  the prompt holds a single ``<image>`` placeholder and VILA fills placeholders in order, so only the *first*
  sampled frame (frame 0) reaches the LLM.  We reproduce that (and so encode frame 0 only).

Decoding:

* :meth:`OmniMLLM.answer` uses the paper's understanding settings by default: sampling, temperature 0.2,
  top-p 0.6, up to 1024 new tokens.  The released code (``VilaARVideoModel``) samples with temperature 0.2,
  **top-p None (1.0)** and **512** new tokens; pass ``top_p=None, max_new_tokens=512`` to reproduce it.
  ``top_k`` is 50 in both (the ``transformers`` default the official code runs with).
* :meth:`OmniMLLM.route` decodes exactly like the released ``generate.py`` (temperature 0.2, top-p None,
  512 tokens) and reports the task from the generation-trigger token ids in the output.
* Generation stops at ``<|eot_id|>`` (the template separator, VILA's keyword criterion) or at the LLM's EOS.
* Sampling is seeded: each request re-seeds a private RNG with ``seed`` (the global torch RNG is left as it
  was), so an output does not depend on the other requests in the batch.  Requests run one at a time, as in
  the official code.

Checkpoints: :meth:`OmniMLLM.from_pretrained` reads the VILA HF layout the release ships as
``omni_ckpts/ar_model/checkpoint/`` (``config.json`` + ``llm/`` + ``vision_tower/`` + ``mm_projector/``,
each a ``save_pretrained`` folder); :meth:`OmniMLLM.save_pretrained` writes the same layout.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from transformers import StoppingCriteria

from omnieval import safe_pickle
from omnieval.errors import MediaError, MissingWeightsError
from omnieval.frames import is_task_sampled
from omnieval.media import Video, as_uint8_image
from omnieval.models.omnivideo import chat
from omnieval.models.omnivideo.mllm_config import OFFICIAL_ROUTE_TOKEN_IDS, ROUTE_TASKS, MLLMConfig  # noqa: F401 - re-exported

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerBase

log = logging.getLogger(__name__)

_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
_LAYOUT = "<root>/config.json + llm/ (config.json, tokenizer, weights) + vision_tower/ (config.json, weights) + mm_projector/ (config.json, weights)"


# ---------------------------------------------------------------------------------------------
# Projector
# ---------------------------------------------------------------------------------------------
class DownSample2x2(nn.Module):
    """Merge each 2x2 neighbourhood of a square token grid into one token of 4x width (VILA-1.5).

    ``(n, s*s, c) -> (n, ceil(s/2)**2, 4c)``; an odd grid is zero-padded at the bottom/right.  The output
    grid is traversed column-pair-major and each merged token holds
    ``[(r, k), (r, k+1), (r+1, k), (r+1, k+1)]`` channel blocks, as in VILA's ``DownSampleBlock``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, c = x.shape
        side = int(round(length**0.5))
        grid = x.reshape(n, side, side, c)
        pad_r, pad_c = side % 2, side % 2
        if pad_r or pad_c:
            grid = nn.functional.pad(grid, (0, 0, 0, pad_c, 0, pad_r))
        rows, cols = grid.shape[1], grid.shape[2]
        grid = grid.reshape(n, rows, cols // 2, 2 * c)  # neighbouring columns side by side
        grid = grid.transpose(1, 2)  # (n, cols/2, rows, 2c)
        grid = grid.reshape(n, cols // 2, rows // 2, 4 * c)  # neighbouring rows side by side
        return grid.reshape(n, -1, 4 * c)


class MultimodalProjector(nn.Module):
    """VILA's ``MultimodalProjector``: state-dict keys ``layers.<i>.*`` as in ``mm_projector/``."""

    def __init__(self, projector_type: str, mm_hidden_size: int, hidden_size: int):
        super().__init__()
        self.projector_type = projector_type
        if projector_type == "identity":
            self.layers: nn.Module = nn.Identity()
        elif projector_type == "linear":
            self.layers = nn.Linear(mm_hidden_size, hidden_size)
        elif projector_type == "mlp_downsample":
            self.layers = nn.Sequential(
                DownSample2x2(),
                nn.LayerNorm(4 * mm_hidden_size),
                nn.Linear(4 * mm_hidden_size, hidden_size),
                nn.GELU(),
                nn.Linear(hidden_size, hidden_size),
            )
        elif match := re.fullmatch(r"mlp(\d+)x_gelu", projector_type):
            mods: list[nn.Module] = [nn.Linear(mm_hidden_size, hidden_size)]
            for _ in range(1, int(match.group(1))):
                mods += [nn.GELU(), nn.Linear(hidden_size, hidden_size)]
            self.layers = nn.Sequential(*mods)
        else:
            raise ValueError(f"unknown mm_projector_type {projector_type!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


# ---------------------------------------------------------------------------------------------
# Think-mode result
# ---------------------------------------------------------------------------------------------
@dataclass
class ThinkResult:
    """``prompt``: the rewritten prompt (the original one if ``fell_back``); ``raw``: the decoded answer."""

    prompt: str
    raw: str
    fell_back: bool


class _StopOnToken(StoppingCriteria):
    """Stopping criterion: stop once ``token_id`` was generated (batch of one)."""

    def __init__(self, token_id: int):
        self.token_id = token_id

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        return (input_ids[:, -1] == self.token_id).to(torch.bool)


# ---------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------
class OmniMLLM(nn.Module):
    """VILA-style MLLM of Omni-Video (see the module docstring for every convention)."""

    def __init__(self, config: MLLMConfig, tokenizer: "PreTrainedTokenizerBase", llm: nn.Module,
                 vision_tower: nn.Module, mm_projector: MultimodalProjector):
        super().__init__()
        self.config = config
        self.tokenizer = tokenizer
        self.llm = llm
        self.vision_tower = vision_tower
        self.mm_projector = mm_projector
        self._prepare_tokenizer()
        self.eval()

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: MLLMConfig, seed: int = 0) -> "OmniMLLM":
        """Random weights (``transformers`` initialisation under ``torch.manual_seed(seed)``) and the offline
        tiny tokenizer; deterministic.  ``config.llm['vocab_size']`` must cover the tokenizer."""
        from transformers import LlamaConfig, LlamaForCausalLM, SiglipVisionConfig, SiglipVisionModel

        from omnieval.models.omnivideo.tokenizers import build_tiny_llm_tokenizer

        tokenizer = build_tiny_llm_tokenizer()
        if len(tokenizer) > int(config.llm["vocab_size"]):
            raise ValueError(f"MLLMConfig.llm vocab_size {config.llm['vocab_size']} < tiny tokenizer size {len(tokenizer)}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            llm = LlamaForCausalLM(LlamaConfig(**config.llm))
            vision = SiglipVisionModel(SiglipVisionConfig(**config.vision_tower))
            projector = MultimodalProjector(config.mm_projector_type, config.mm_hidden_size, config.hidden_size)
        return cls(config, tokenizer, llm, vision, projector)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, dtype: str | torch.dtype | None = None, device: str | torch.device = "cpu") -> "OmniMLLM":
        """Load a VILA-format checkpoint: ``omni_ckpts/ar_model/checkpoint`` (or the ``omni_ckpts`` root, or a
        folder written by :meth:`save_pretrained`).  ``dtype`` defaults to float32.  Weights are read with
        safetensors or ``torch.load(weights_only=True)``; a missing file raises :class:`MissingWeightsError`."""
        from transformers import AutoModelForCausalLM, AutoTokenizer, SiglipVisionModel

        root = _checkpoint_root(Path(path))
        top = _read_json(root / "config.json")
        torch_dtype = _as_dtype(dtype)
        llm_dir, vt_dir, mm_dir = root / "llm", root / "vision_tower", root / "mm_projector"
        llm_cfg, vt_cfg, mm_cfg = (_read_json(d / "config.json") for d in (llm_dir, vt_dir, mm_dir))
        for folder in (llm_dir, vt_dir, mm_dir):
            _require_weights(folder)
        if not any((llm_dir / name).is_file() for name in ("tokenizer_config.json", "tokenizer.json")):
            raise MissingWeightsError(f"Omni-Video MLLM checkpoint {root}: missing {llm_dir / 'tokenizer_config.json'}; expected {_LAYOUT}")

        for folder in (llm_dir, vt_dir, mm_dir):  # code-running pickles: one line, before anything is unpickled
            safe_pickle.check_checkpoint(folder, "Omni-Video MLLM checkpoint")
        config = _config_from_vila(top, llm_cfg, vt_cfg, mm_cfg, _read_json(vt_dir / "preprocessor_config.json", required=False))
        with _one_line_errors(llm_dir):
            tokenizer = AutoTokenizer.from_pretrained(str(llm_dir), padding_side="right", local_files_only=True)
            llm = AutoModelForCausalLM.from_pretrained(str(llm_dir), dtype=torch_dtype, local_files_only=True)
        with _one_line_errors(vt_dir):
            vision = SiglipVisionModel.from_pretrained(str(vt_dir), dtype=torch_dtype, local_files_only=True)
        projector = MultimodalProjector(config.mm_projector_type, config.mm_hidden_size, config.hidden_size)
        projector.load_state_dict(_load_state_dict(mm_dir), strict=True)
        model = cls(config, tokenizer, llm, vision, projector.to(torch_dtype))
        return model.to(device)

    def save_pretrained(self, path: str | os.PathLike) -> None:
        """Write the VILA layout: ``config.json`` (``LlavaLlamaModel``), ``llm/`` (weights + tokenizer),
        ``vision_tower/`` (weights + ``preprocessor_config.json``), ``mm_projector/``; safetensors."""
        from safetensors.torch import save_file

        root = Path(path)
        llm_dir, vt_dir, mm_dir = root / "llm", root / "vision_tower", root / "mm_projector"
        for folder in (llm_dir, vt_dir, mm_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.llm.save_pretrained(str(llm_dir), safe_serialization=True)
        self.tokenizer.save_pretrained(str(llm_dir))
        self.vision_tower.save_pretrained(str(vt_dir), safe_serialization=True)
        size = self.config.image_size
        _write_json(vt_dir / "preprocessor_config.json", {
            "do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": list(self.config.image_mean),
            "image_std": list(self.config.image_std), "image_processor_type": "SiglipImageProcessor",
            "processor_class": "SiglipProcessor", "resample": self.config.image_resample, "rescale_factor": 1 / 255,
            "size": {"height": size, "width": size},
        })
        mm_cfg = {"architectures": ["MultimodalProjector"], "mm_projector_type": self.config.mm_projector_type, "model_type": "v2l_projector"}
        _write_json(mm_dir / "config.json", mm_cfg)
        state = {k: v.detach().contiguous().cpu() for k, v in self.mm_projector.state_dict().items()}
        save_file(state, str(mm_dir / "model.safetensors"), metadata={"format": "pt"})
        c = self.config
        _write_json(root / "config.json", {
            "architectures": ["LlavaLlamaModel"], "model_type": "llava_llama",
            "llm_cfg": _read_json(llm_dir / "config.json"), "vision_tower_cfg": _read_json(vt_dir / "config.json"),
            "mm_projector_cfg": mm_cfg, "hidden_size": c.hidden_size, "mm_hidden_size": c.mm_hidden_size,
            "image_aspect_ratio": c.image_aspect_ratio, "mm_vision_select_layer": c.mm_vision_select_layer,
            "mm_vision_select_feature": c.mm_vision_select_feature, "mm_use_im_start_end": c.mm_use_im_start_end,
            "mm_use_im_patch_token": c.mm_use_im_patch_token, "num_video_frames": c.num_video_frames,
            "model_dtype": str(self.dtype), "resume_path": None, "s2": False,
            "omnieval": {"conv_template": c.conv_template, "route_token_ids": c.route_token_ids},
        })

    def _prepare_tokenizer(self) -> None:
        """VILA ``load_pretrained_model``: add ``<im_patch>`` / ``<im_start> <im_end>`` when configured and
        resize the embeddings to ``len(tokenizer)``.  New rows get the mean of the old ones (the official code
        leaves them randomly initialised, which is not reproducible)."""
        added = []
        if self.config.mm_use_im_patch_token:
            added.append(chat.IM_PATCH_TOKEN)
        if self.config.mm_use_im_start_end:
            added += [chat.IM_START_TOKEN, chat.IM_END_TOKEN]
        if added:
            self.tokenizer.add_tokens(added, special_tokens=True)
        rows = self.llm.get_input_embeddings().weight.shape[0]
        if added and len(self.tokenizer) != rows:
            self.llm.resize_token_embeddings(len(self.tokenizer), mean_resizing=False)
            for emb in (self.llm.get_input_embeddings(), self.llm.get_output_embeddings()):
                if emb is not None and len(self.tokenizer) > rows:
                    with torch.no_grad():
                        emb.weight[rows:] = emb.weight[:rows].mean(0, keepdim=True)
            self.config.llm["vocab_size"] = len(self.tokenizer)

    # -- properties ------------------------------------------------------------------------------
    @property
    def hidden_size(self) -> int:
        return self.config.hidden_size

    @property
    def device(self) -> torch.device:
        return self.llm.get_input_embeddings().weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.llm.get_input_embeddings().weight.dtype

    # -- vision ----------------------------------------------------------------------------------
    def pixel_values(self, frames: np.ndarray) -> torch.Tensor:
        """``T x H x W x 3`` uint8 -> ``T x 3 x S x S`` normalised tensor (module docstring)."""
        from PIL import Image

        size = self.config.image_size
        mean = np.asarray(self.config.image_mean, dtype=np.float32)
        std = np.asarray(self.config.image_std, dtype=np.float32)
        out = []
        for frame in frames:
            img = Image.fromarray(frame)
            if self.config.image_aspect_ratio == "pad":
                img = _expand_to_square(img, tuple(int(m * 255) for m in self.config.image_mean))
            img = img.resize((size, size), resample=Image.Resampling(self.config.image_resample))
            arr = np.asarray(img, dtype=np.float32) * np.float32(1 / 255)
            out.append(((arr - mean) / std).transpose(2, 0, 1))
        return torch.from_numpy(np.stack(out)).to(self.device, self.dtype)

    @torch.no_grad()
    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Vision tower (selected layer and tokens) + projector: ``T x 3 x S x S -> T x N x hidden``."""
        outputs = self.vision_tower(pixel_values, output_hidden_states=True)
        feats = outputs.hidden_states[self.config.mm_vision_select_layer]
        if self.config.mm_vision_select_feature == "patch":
            feats = feats[:, 1:]
        elif self.config.mm_vision_select_feature != "cls_patch":
            raise ValueError(f"unknown mm_vision_select_feature {self.config.mm_vision_select_feature!r}")
        return self.mm_projector(feats)

    def _frames(self, item: Any, what: str, *, last_offset: int = 1) -> np.ndarray:
        """Frames the model sees for one media item: an image -> 1 frame; a video -> ``num_video_frames``
        at ``linspace(0, T - last_offset, n)`` truncated (all frames when ``T < n``); the frames a task's ``frames:``
        spec sampled -> all of them."""
        if is_task_sampled(item):
            return item.frames
        if isinstance(item, Video):
            total = len(item)
            num = self.config.num_video_frames
            if total < num:
                return item.frames
            idx = np.linspace(0, max(total - last_offset, 0), num).astype(int)
            return item.sample(idx)  # a file-backed video decodes only these frames
        try:
            return as_uint8_image(item, what=what)[None]
        except MediaError:
            raise
        except Exception as exc:  # noqa: BLE001 - anything else is bad input too
            raise MediaError(f"{what}: expected an H x W x 3 image or a Video, got {type(item).__name__}") from exc

    # -- prompts -> embeddings -------------------------------------------------------------------
    def _encode_text(self, text: str) -> list[int]:
        return list(self.tokenizer(text).input_ids)

    def _inputs_embeds(self, prompt: str, features: Sequence[torch.Tensor], drop_ids: set[int] = frozenset()) -> torch.Tensor:
        """``1 x L x hidden`` input embeddings: text chunks between ``<image>`` placeholders, each
        placeholder filled with the next entry of ``features`` (``N x hidden``); tokens in ``drop_ids``
        are removed (VILA drops attention-masked tokens when media are present) and, with media, the
        sequence is cut to the LLM config's ``tokenizer_model_max_length`` when it has one (as VILA)."""
        chunks = chat.split_image_tokens(prompt, self._encode_text, self.tokenizer.bos_token_id)
        if len(chunks) - 1 > len(features):
            raise MediaError(f"prompt has {len(chunks) - 1} image placeholders but {len(features)} media were given")
        embed = self.llm.get_input_embeddings()
        parts = []
        for i, ids in enumerate(chunks):
            ids = [t for t in ids if t not in drop_ids]
            parts.append(embed(torch.tensor(ids, dtype=torch.long, device=self.device)))
            if i < len(chunks) - 1:
                parts.append(features[i].to(parts[-1].dtype))
        embeds = torch.cat(parts, 0)
        limit = getattr(self.llm.config, "tokenizer_model_max_length", None)
        if features and limit and embeds.shape[0] > limit:  # VILA truncates multimodal sequences
            log.warning("multimodal input of %d tokens truncated to %d", embeds.shape[0], limit)
            embeds = embeds[:limit]
        return embeds[None]

    def _media_features(self, frames: np.ndarray | None) -> list[torch.Tensor]:
        if frames is None:
            return []
        return list(self.encode_images(self.pixel_values(frames)))

    # -- decoding --------------------------------------------------------------------------------
    def _stop_ids(self) -> list[int]:
        """EOS ids of the LLM's generation config (``llm/generation_config.json``) or config, plus
        ``<|eot_id|>`` (VILA's keyword stop)."""
        gen_cfg = getattr(self.llm, "generation_config", None)
        eos = getattr(gen_cfg, "eos_token_id", None)
        if eos is None:
            eos = self.llm.config.eos_token_id
        ids = list(eos) if isinstance(eos, (list, tuple)) else ([eos] if eos is not None else [])
        eot = self.tokenizer.convert_tokens_to_ids(chat.LLAMA3_SEP)
        if isinstance(eot, int) and eot != self.tokenizer.unk_token_id and eot not in ids:
            ids.append(eot)
        return ids

    @torch.no_grad()
    def _generate(self, inputs_embeds: torch.Tensor, *, max_new_tokens: int, temperature: float, top_p: float | None,
                  do_sample: bool, seed: int, stop_token: int | None = None) -> list[int]:
        from transformers import GenerationConfig, StoppingCriteriaList

        stop = self._stop_ids()
        sample = bool(do_sample and temperature > 0)
        gen_cfg = GenerationConfig(
            max_new_tokens=max_new_tokens, do_sample=sample, num_beams=1, eos_token_id=stop,
            pad_token_id=stop[0] if stop else None, bos_token_id=self.tokenizer.bos_token_id,
            **({"temperature": temperature, "top_p": 1.0 if top_p is None else top_p, "top_k": 50} if sample else {}),
        )
        criteria = StoppingCriteriaList([_StopOnToken(stop_token)] if stop_token is not None else [])
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            out = self.llm.generate(
                inputs_embeds=inputs_embeds.to(self.dtype),
                attention_mask=torch.ones(inputs_embeds.shape[:2], dtype=torch.long, device=self.device),
                generation_config=gen_cfg, stopping_criteria=criteria,
            )
        return out[0].tolist()

    def _decode(self, ids: list[int]) -> str:
        text = self.tokenizer.decode(ids, skip_special_tokens=True).strip()
        if text.endswith(chat.LLAMA3_SEP):
            text = text[: -len(chat.LLAMA3_SEP)]
        return text.strip()

    def _chat_inputs(self, question: str, item: Any, what: str) -> torch.Tensor:
        """Embeddings of one user turn (with its media, if any) and an open assistant turn."""
        frames = None if item is None else self._frames(item, what)
        if frames is not None:
            question = chat.with_image_tokens(question, len(frames), self.config.mm_use_im_start_end)
        prompt = chat.conversation_prompt(self.config.conv_template, question)
        return self._inputs_embeds(prompt, self._media_features(frames))

    # -- public API ------------------------------------------------------------------------------
    def answer(self, media: list, questions: list[str], *, max_new_tokens: int = 1024, temperature: float = 0.2,
               top_p: float | None = 0.6, do_sample: bool = True, seed: int = 0) -> list[str]:
        """Answer ``questions[i]`` about ``media[i]`` (an image, a :class:`Video`, or None for text only).

        Paper defaults (top-p 0.6, temperature 0.2, 1024 tokens); the release uses top-p None and 512.
        """
        if len(media) != len(questions):
            raise ValueError(f"answer: {len(media)} media for {len(questions)} questions")
        out = []
        for i, (item, question) in enumerate(zip(media, questions)):
            embeds = self._chat_inputs(question, item, what=f"media[{i}]")
            ids = self._generate(embeds, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, do_sample=do_sample, seed=seed)
            out.append(self._decode(ids))
        return out

    def think_with_info(self, prompts: list[str], *, template: str = chat.DEFAULT_THINK_TEMPLATE, task: str = "t2v",
                        max_new_tokens: int = 256, seed: int = 0) -> list[ThinkResult]:
        """Think mode with details: the request ``template`` (``{prompt}``, ``{task}``) is answered with the
        paper's decoding (temperature 0.2, top-p 0.6); the rewritten prompt is parsed with
        :func:`chat.parse_think_output` (text after the last ``Rewritten prompt:``, else the whole answer;
        the original prompt if that is empty -- logged and flagged ``fell_back``)."""
        results = []
        for i, prompt in enumerate(prompts):
            request = chat.think_request(template, prompt, task)
            embeds = self._chat_inputs(request, None, what=f"prompt[{i}]")
            raw = self._decode(self._generate(embeds, max_new_tokens=max_new_tokens, temperature=0.2, top_p=0.6, do_sample=True, seed=seed))
            rewritten, fell_back = chat.parse_think_output(raw, prompt)
            if fell_back:
                log.warning("think mode: empty rewrite for prompt %d, using the original prompt", i)
            results.append(ThinkResult(rewritten, raw, fell_back))
        return results

    def think(self, prompts: list[str], *, template: str = chat.DEFAULT_THINK_TEMPLATE, task: str = "t2v",
              max_new_tokens: int = 256, seed: int = 0) -> list[str]:
        """Rewritten prompts (see :meth:`think_with_info`)."""
        return [r.prompt for r in self.think_with_info(prompts, template=template, task=task, max_new_tokens=max_new_tokens, seed=seed)]

    def route(self, prompts: list[str], media: list | None = None, *, seed: int = 0, max_new_tokens: int = 512) -> list[str]:
        """Task the model picks for each prompt, as the released ``generate.py``: free decoding of the bare
        prompt (plus media) with temperature 0.2, top-p None, 512 tokens; ``"t2v"`` if the video trigger id
        is among the generated ids, else ``"t2i"`` if the image trigger id is, else ``"understand"``.
        (The release then turns a generation route with a source file into i2i / v2v by file type.)
        Decoding stops early at the video trigger, which cannot change the result."""
        media = [None] * len(prompts) if media is None else media
        if len(media) != len(prompts):
            raise ValueError(f"route: {len(media)} media for {len(prompts)} prompts")
        video_id, image_id = self.config.route_token_ids["t2v"], self.config.route_token_ids["t2i"]
        out = []
        for i, (prompt, item) in enumerate(zip(prompts, media)):
            embeds = self._chat_inputs(prompt, item, what=f"media[{i}]")
            ids = self._generate(embeds, max_new_tokens=max_new_tokens, temperature=0.2, top_p=None, do_sample=True, seed=seed, stop_token=video_id)
            out.append("t2v" if video_id in ids else "t2i" if image_id in ids else "understand")
        return out

    @torch.no_grad()
    def generation_hidden_states(self, prompts: list[str], task: str, source: list | None = None) -> list[torch.Tensor]:
        """Last-layer hidden states (after the final norm), ``L_i x hidden_size`` per prompt, in the model's
        dtype and device -- the official ``general_emb``.

        The user turn is the task prefix + prompt (``t2v`` "Generate a video about:\\n", ``t2i`` "Generate an
        image about:\\n", ``v2v`` "<video>\\n" after the source's first frame, ``i2i`` the source image and no
        prefix, ``i2v`` its own prefix); the assistant turn is forced to ``[GEN_VID]`` / ``[GEN_IMG]``
        followed by ``<|end_of_text|>``.  As officially, tokens equal to the pad id (the EOS id when the
        tokenizer has no pad token) are attention-masked; with a source they are removed from the sequence
        instead (VILA's multimodal packing), so ``L_i`` counts only the kept tokens.
        """
        spec = chat.embed_task(task)
        if spec.source is not None and (source is None or len(source) != len(prompts)):
            raise MediaError(f"task {task!r} needs one source image/video per prompt")
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        out = []
        for i, prompt in enumerate(prompts):
            frames = None
            if spec.source is not None:
                frames = self._frames(source[i], what=f"source[{i}]", last_offset=2)[:1]  # only frame 0 is used
            question = spec.prefix + prompt
            if frames is not None:
                image = chat.IM_START_TOKEN + chat.IMAGE_TOKEN + chat.IM_END_TOKEN if self.config.mm_use_im_start_end else chat.IMAGE_TOKEN
                question = image + "\n" + question
            text = chat.conversation_prompt(self.config.conv_template, question, spec.answer)
            if frames is not None:
                embeds = self._inputs_embeds(text, self._media_features(frames), drop_ids={pad} if pad is not None else set())
                mask = None
            else:
                ids = torch.tensor(self._encode_text(text), device=self.device)
                embeds = self.llm.get_input_embeddings()(ids)[None]
                keep = ids.ne(pad) if pad is not None else torch.ones_like(ids, dtype=torch.bool)
                mask = None if bool(keep.all()) else keep.long()[None]
            hidden = self.llm.model(inputs_embeds=embeds, attention_mask=mask).last_hidden_state
            out.append(hidden[0])
        return out


# ---------------------------------------------------------------------------------------------
# Checkpoint helpers
# ---------------------------------------------------------------------------------------------
def _checkpoint_root(path: Path) -> Path:
    for candidate in (path, path / "ar_model" / "checkpoint", path / "checkpoint"):
        if (candidate / "config.json").is_file():
            return candidate
    raise MissingWeightsError(f"Omni-Video MLLM checkpoint: missing {path / 'config.json'}; expected {_LAYOUT} (omni_ckpts/ar_model/checkpoint/)")


def _read_json(path: Path, required: bool = True) -> dict[str, Any]:
    if not path.is_file():
        if not required:
            return {}
        raise MissingWeightsError(f"Omni-Video MLLM checkpoint: missing {path}; expected {_LAYOUT}")
    return json.loads(path.read_text(encoding="utf-8"))


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")


@contextlib.contextmanager
def _one_line_errors(folder: Path):
    """A checkpoint folder transformers cannot load (damaged, truncated or refused weights) -> one line."""
    try:
        yield
    except (OSError, ValueError, RuntimeError, pickle.UnpicklingError) as exc:
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise MissingWeightsError(f"Omni-Video MLLM checkpoint {folder}: cannot load it: {first}") from exc


def _require_weights(folder: Path) -> None:
    if not any((folder / name).is_file() for name in _WEIGHT_FILES):
        raise MissingWeightsError(f"Omni-Video MLLM checkpoint: missing {folder / _WEIGHT_FILES[0]}; expected {_LAYOUT}")


def _load_state_dict(folder: Path) -> dict[str, torch.Tensor]:
    """Projector weights: ``model.safetensors`` or ``pytorch_model.bin`` (``weights_only=True``)."""
    if (folder / "model.safetensors").is_file():
        from safetensors.torch import load_file

        return load_file(str(folder / "model.safetensors"))
    if (folder / "pytorch_model.bin").is_file():
        from omnieval.models.omnivideo.checkpoint import _torch_load

        return _torch_load(folder / "pytorch_model.bin")
    raise MissingWeightsError(f"Omni-Video MLLM checkpoint: missing {folder / 'model.safetensors'} (sharded projector weights are not supported)")


def _config_from_vila(top: dict, llm_cfg: dict, vt_cfg: dict, mm_cfg: dict, preprocessor: dict) -> MLLMConfig:
    extra = top.get("omnieval") or {}
    size = preprocessor.get("size") or {}
    vision = {k: v for k, v in vt_cfg.items() if not k.startswith("_") and k not in ("architectures", "transformers_version")}
    if size.get("height"):
        vision["image_size"] = int(size["height"])
    return MLLMConfig(
        llm={k: v for k, v in llm_cfg.items() if not k.startswith("_") and k not in ("architectures", "transformers_version")},
        vision_tower=vision,
        mm_projector_type=mm_cfg.get("mm_projector_type") or "mlp_downsample",
        mm_vision_select_layer=int(top.get("mm_vision_select_layer") or -2),
        mm_vision_select_feature=top.get("mm_vision_select_feature") or "cls_patch",
        image_aspect_ratio=top.get("image_aspect_ratio") or "resize",
        image_mean=tuple(float(v) for v in preprocessor.get("image_mean", (0.5, 0.5, 0.5))),
        image_std=tuple(float(v) for v in preprocessor.get("image_std", (0.5, 0.5, 0.5))),
        image_resample=int(preprocessor.get("resample", 3)),
        num_video_frames=int(top.get("num_video_frames") or 8),
        conv_template=extra.get("conv_template", "llama_3"),
        mm_use_im_start_end=bool(top.get("mm_use_im_start_end", False)),
        mm_use_im_patch_token=bool(top.get("mm_use_im_patch_token", True)),  # VILA's LlavaConfig default
        route_token_ids={k: int(v) for k, v in (extra.get("route_token_ids") or OFFICIAL_ROUTE_TOKEN_IDS).items()},
    )


def _as_dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    name = str(dtype).removeprefix("torch.")
    if name not in ("float32", "float16", "bfloat16"):
        raise ValueError(f"unsupported dtype {dtype!r}; use float32, bfloat16 or float16")
    return getattr(torch, name)


def _expand_to_square(img, fill: tuple[int, ...]):
    from PIL import Image

    w, h = img.size
    if w == h:
        return img
    side = max(w, h)
    canvas = Image.new(img.mode, (side, side), fill)
    canvas.paste(img, ((side - w) // 2, (side - h) // 2))
    return canvas
