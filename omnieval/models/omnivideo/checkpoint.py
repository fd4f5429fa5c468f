"""Omni-Video checkpoints: the official ``omni_ckpts/`` layout (reader and, for tests, writer).

Layout (OV1 ``SETUP_MODELS.md``; paths fixed relative to ``omni_ckpts/``)::

    wan/wanxiang1_3b/                      Wan2.1-T2V-1.3B: the DiT either as the original WanModel
                                           (config.json + diffusion_pytorch_model*.safetensors) or a diffusers
                                           transformer/ folder; vae/, text_encoder/ and tokenizer/ as diffusers
                                           folders (Wan-AI/Wan2.1-T2V-1.3B-Diffusers) -- or the original files:
                                           Wan2.1_VAE.pth (converted with diffusers' converter; base width read
                                           from the weights), models_t5_umt5-xxl-enc-bf16.pth (Wan's own umT5
                                           encoder, renamed by :mod:`.umt5_convert`) and google/umt5-xxl/
                                           (tokenizer)
    adapter/model.pt                       DM adapter: {'model_state_dict': ...} ('module.' prefixes stripped)
    vision_head/vision_head/pytorch_model.bin   vision head state dict
    transformer/model.pt                   fine-tuned OmniVideoMixedConditionModel state ('module' wrapper
                                           optional): wan_model.* (original Wan names), visual_context_adapter.*,
                                           maybe adapter.* / ar_vision_head.* -- loaded non-strictly like the
                                           official code, missing/unexpected keys REPORTED in ``LoadReport``
    ar_model/checkpoint/                   VILA MLLM (loaded by :class:`~.mllm.OmniMLLM`)
    unconditioned_context/context.pkl      {'text_emb_siglip2', 'text_emb', 'vlm_last_hidden_states'}
    special_tokens/tokens.pkl              {'<img_st>': [1, D], ... six delimiters}

``*.pt``/``*.bin`` go through ``torch.load(weights_only=True)``, the two pickles through
:mod:`omnieval.safe_pickle`; nothing executes code.  A missing or malformed file raises a one-line
:class:`~omnieval.errors.MissingWeightsError` naming the file and the expected layout.  Widths, depths and
query counts of the adapters/vision head are read from the weights' shapes; attention heads are 8 (the
``nn.Transformer`` default the official code uses).
"""
from __future__ import annotations

import json
import logging
import pickle
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from omnieval import safe_pickle
from omnieval.errors import MissingWeightsError
from omnieval.models.omnivideo.adapter import DMAdapter, VisualContextAdapter
from omnieval.models.omnivideo.conditioning import UnconditionedContext, check_special_tokens
from omnieval.models.omnivideo.decoder import WanDecoder
from omnieval.models.omnivideo.umt5_convert import WAN_T5_FILENAME, build_umt5_from_wan, hf_to_wan_t5
from omnieval.models.omnivideo.vision_head import VisionHead, infer_query_config

log = logging.getLogger(__name__)

LAYOUT = {
    "wan": "wan/wanxiang1_3b",
    "adapter": "adapter/model.pt",
    "vision_head": "vision_head/vision_head/pytorch_model.bin",
    "transformer": "transformer/model.pt",
    "ar_model": "ar_model/checkpoint",
    "uncond": "unconditioned_context/context.pkl",
    "special_tokens": "special_tokens/tokens.pkl",
}
LAYOUT_HINT = "expected the Omni-Video omni_ckpts/ layout: " + ", ".join(LAYOUT.values())

# original Wan DiT names -> diffusers names is diffusers' own converter; this is its inverse (T2V keys only)
_TO_ORIGINAL = (
    ("condition_embedder.time_embedder.linear_1", "time_embedding.0"),
    ("condition_embedder.time_embedder.linear_2", "time_embedding.2"),
    ("condition_embedder.text_embedder.linear_1", "text_embedding.0"),
    ("condition_embedder.text_embedder.linear_2", "text_embedding.2"),
    ("condition_embedder.time_proj", "time_projection.1"),
    ("attn2", "cross_attn"),
    ("attn1", "self_attn"),
    (".to_out.0.", ".o."),
    (".to_q.", ".q."),
    (".to_k.", ".k."),
    (".to_v.", ".v."),
    ("ffn.net.0.proj", "ffn.0"),
    ("ffn.net.2", "ffn.2"),
    ("proj_out", "head.head"),
    ("norm2", "norm__swap"),
    ("norm3", "norm2"),
    ("norm__swap", "norm3"),
)

WAN_VAE_FILENAME = "Wan2.1_VAE.pth"
# diffusers AutoencoderKLWan names -> original WanVAE_ names (inverse of diffusers' convert_wan_vae_to_diffusers)
_VAE_RESNET = {"norm1.gamma": "residual.0.gamma", "conv1": "residual.2", "norm2.gamma": "residual.3.gamma",
               "conv2": "residual.6", "conv_shortcut": "shortcut"}
_VAE_FIXED = {"quant_conv": "conv1", "post_quant_conv": "conv2", "encoder.conv_in": "encoder.conv1",
              "decoder.conv_in": "decoder.conv1", "encoder.norm_out.gamma": "encoder.head.0.gamma",
              "decoder.norm_out.gamma": "decoder.head.0.gamma", "encoder.conv_out": "encoder.head.2",
              "decoder.conv_out": "decoder.head.2"}


@dataclass
class LoadReport:
    """Keys a non-strict load left out (``missing``) or could not place (``unexpected``), per file."""

    missing: dict[str, list[str]] = field(default_factory=dict)
    unexpected: dict[str, list[str]] = field(default_factory=dict)

    def add(self, what: str, missing: list[str], unexpected: list[str]) -> None:
        if missing:
            self.missing.setdefault(what, []).extend(missing)
        if unexpected:
            self.unexpected.setdefault(what, []).extend(unexpected)
        if missing or unexpected:
            log.warning("%s: %d missing key(s) %s, %d unexpected key(s) %s", what, len(missing), missing[:5],
                        len(unexpected), unexpected[:5])

    def to_dict(self) -> dict:
        return {"missing": self.missing, "unexpected": self.unexpected}


@dataclass
class OmniVideoParts:
    """Everything on the generation side (the MLLM is loaded separately)."""

    vision_head: VisionHead
    adapter: DMAdapter
    visual_adapter: VisualContextAdapter
    decoder: WanDecoder
    special_tokens: dict[str, torch.Tensor]
    uncond: UnconditionedContext
    max_context_len: int = 2560
    report: LoadReport = field(default_factory=LoadReport)

    def modules(self) -> list[torch.nn.Module]:
        d = self.decoder
        return [self.vision_head, self.adapter, self.visual_adapter, d.transformer, d.vae, d.text_encoder]


# ------------------------------------------------------------------------------------------------
# key conversion
# ------------------------------------------------------------------------------------------------
def wan_to_diffusers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Original Wan DiT names -> diffusers ``WanTransformer3DModel`` names (diffusers' converter)."""
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    return convert_wan_transformer_to_diffusers(dict(state))


def diffusers_to_wan(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`wan_to_diffusers` for text-to-video checkpoints."""
    out = {}
    for key, value in state.items():
        new = key
        if new == "scale_shift_table":
            new = "head.modulation"
        elif new.endswith(".scale_shift_table"):
            new = new[: -len("scale_shift_table")] + "modulation"
        for a, b in _TO_ORIGINAL:
            new = new.replace(a, b)
        out[new] = value
    return out


def _vae_resnet_name(prefix: str, rest: str) -> str:
    for a, b in _VAE_RESNET.items():
        if rest == a or rest.startswith(a + "."):
            return f"{prefix}.{b}{rest[len(a):]}"
    return f"{prefix}.{rest}"


def diffusers_vae_to_wan(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``AutoencoderKLWan`` names -> the original ``Wan2.1_VAE.pth`` names (inverse of diffusers' converter).

    Only for the Wan2.1 structure the converter hard-codes: 4 levels and ``num_res_blocks=2`` (decoder
    ``upsamples`` = 3 resnets + 1 upsampler per level, the shortcut at index 4); any base width.
    """
    out = {}
    for key, value in state.items():
        stem, _, leaf = key.rpartition(".")
        if stem in _VAE_FIXED or key in _VAE_FIXED:
            new = _VAE_FIXED[key] if key in _VAE_FIXED else f"{_VAE_FIXED[stem]}.{leaf}"
        elif m := re.fullmatch(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.+)", key):
            new = _vae_resnet_name(f"{m[1]}.middle.{2 * int(m[2])}", m[3])
        elif m := re.fullmatch(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)", key):
            new = f"{m[1]}.middle.1.{m[2]}"
        elif m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.(.+)", key):
            new = _vae_resnet_name(f"encoder.downsamples.{m[1]}", m[2])
        elif m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
            new = _vae_resnet_name(f"decoder.upsamples.{4 * int(m[1]) + int(m[2])}", m[3])
        elif m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.(.+)", key):
            new = f"decoder.upsamples.{4 * int(m[1]) + 3}.{m[2]}"
        else:
            raise ValueError(f"no original Wan VAE name for {key!r}")
        out[new] = value
    return out


def _check_wan21_vae_structure(vae) -> None:
    """``Wan2.1_VAE.pth`` carries no config: the loader rebuilds ``AutoencoderKLWan(base_dim=...)`` with every
    other setting at its default (= Wan2.1), so a VAE that differs elsewhere cannot be written in that format."""
    import inspect

    params = inspect.signature(type(vae).__init__).parameters
    differ = sorted(k for k, p in params.items() if k in vae.config and k != "base_dim"  # json: tuple == list
                    and p.default is not inspect.Parameter.empty and json.dumps(vae.config[k]) != json.dumps(p.default))
    if differ:
        raise ValueError(f"this VAE cannot be written as {WAN_VAE_FILENAME}: {', '.join(differ)} differ from Wan2.1's "
                         f"(only base_dim may differ)")


def wan_config_to_diffusers(cfg: dict) -> dict:
    """Original ``WanModel`` config.json -> ``WanTransformer3DModel`` config."""
    try:
        dim, heads = int(cfg["dim"]), int(cfg["num_heads"])
        return dict(
            patch_size=tuple(cfg.get("patch_size", (1, 2, 2))), num_attention_heads=heads, attention_head_dim=dim // heads,
            in_channels=int(cfg.get("in_dim", 16)), out_channels=int(cfg.get("out_dim", 16)),
            text_dim=int(cfg.get("text_dim", 4096)), freq_dim=int(cfg.get("freq_dim", 256)), ffn_dim=int(cfg["ffn_dim"]),
            num_layers=int(cfg["num_layers"]), cross_attn_norm=bool(cfg.get("cross_attn_norm", True)),
            qk_norm="rms_norm_across_heads" if cfg.get("qk_norm", True) else None, eps=float(cfg.get("eps", 1e-6)),
        )
    except KeyError as exc:
        raise MissingWeightsError(f"Wan config.json lacks key {exc}; expected an original WanModel config") from None


def diffusers_config_to_wan(cfg: dict) -> dict:
    heads, head_dim = int(cfg["num_attention_heads"]), int(cfg["attention_head_dim"])
    return {
        "_class_name": "WanModel", "model_type": "t2v", "patch_size": list(cfg["patch_size"]), "text_len": 512,
        "in_dim": cfg["in_channels"], "dim": heads * head_dim, "ffn_dim": cfg["ffn_dim"], "freq_dim": cfg["freq_dim"],
        "text_dim": cfg["text_dim"], "out_dim": cfg["out_channels"], "num_heads": heads, "num_layers": cfg["num_layers"],
        "window_size": [-1, -1], "qk_norm": cfg["qk_norm"] is not None, "cross_attn_norm": cfg["cross_attn_norm"],
        "eps": cfg["eps"],
    }


# ------------------------------------------------------------------------------------------------
# reading
# ------------------------------------------------------------------------------------------------
def checkpoint_root(root: str | Path) -> Path:
    """``root`` itself or its ``omni_ckpts/`` subfolder (the official repo root works too)."""
    root = Path(root).expanduser()
    if (root / "omni_ckpts").is_dir():
        root = root / "omni_ckpts"
    if not root.is_dir():
        raise MissingWeightsError(f"Omni-Video checkpoint folder not found: {root}; {LAYOUT_HINT}")
    return root


def _need(root: Path, key: str) -> Path:
    path = root / LAYOUT[key]
    if not path.exists():
        raise MissingWeightsError(f"missing Omni-Video file {path}; {LAYOUT_HINT}")
    return path


def _torch_load(path: Path) -> dict:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as exc:
        raise MissingWeightsError(f"cannot read {path} with torch.load(weights_only=True): {str(exc).splitlines()[0]}") from None
    if not isinstance(obj, dict):
        raise MissingWeightsError(f"{path}: expected a state dict, got {type(obj).__name__}")
    return obj


def _strip_module(state: dict) -> dict:
    return {k.removeprefix("module."): v for k, v in state.items()}


def _load_strict(module: torch.nn.Module, state: dict, path: Path) -> None:
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
        raise MissingWeightsError(f"{path}: weights do not match the expected architecture ({first})") from None


def _load_query_module(cls, path: Path, state: dict, transformer_key: str):
    try:
        cfg = infer_query_config(state, transformer_key)
    except (KeyError, ValueError, IndexError):
        raise MissingWeightsError(f"{path}: not a {cls.__name__} state dict (no fc/decoder_query/{transformer_key} keys)") from None
    try:
        module = cls(cfg)
    except (AssertionError, ValueError) as exc:
        raise MissingWeightsError(f"{path}: inconsistent {cls.__name__} shapes ({exc})") from None
    _load_strict(module, state, path)
    return module


def _load_transformer(wan: Path) -> torch.nn.Module:
    from diffusers import WanTransformer3DModel

    if (wan / "transformer" / "config.json").is_file():
        return WanTransformer3DModel.from_pretrained(wan / "transformer")
    cfg_path = wan / "config.json"
    if not cfg_path.is_file():
        raise MissingWeightsError(f"no Wan DiT in {wan}: expected config.json + diffusion_pytorch_model*.safetensors "
                                  f"(original WanModel) or a diffusers transformer/ folder")
    model = WanTransformer3DModel(**wan_config_to_diffusers(json.loads(cfg_path.read_text())))
    state = _read_safetensors_dir(wan, "diffusion_pytorch_model")
    _load_strict(model, wan_to_diffusers(state), wan / "diffusion_pytorch_model.safetensors")
    return model


def _read_safetensors_dir(folder: Path, stem: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    files = sorted(folder.glob(f"{stem}*.safetensors"))
    if not files:
        raise MissingWeightsError(f"missing {folder / (stem + '.safetensors')} (original Wan DiT weights)")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(load_file(f))
    return state


def _load_vae(wan: Path) -> torch.nn.Module:
    from diffusers import AutoencoderKLWan

    if (wan / "vae" / "config.json").is_file():
        return AutoencoderKLWan.from_pretrained(wan / "vae")
    pth = wan / WAN_VAE_FILENAME
    if pth.is_file():  # the original Wan2.1 VAE: diffusers' default architecture, base width from the weights
        from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

        state = _torch_load(pth)
        if "encoder.conv1.weight" not in state:
            raise MissingWeightsError(f"{pth}: not an original Wan2.1 VAE state dict (no encoder.conv1.weight)")
        vae = AutoencoderKLWan(base_dim=int(state["encoder.conv1.weight"].shape[0]))
        _load_strict(vae, convert_wan_vae_to_diffusers(state), pth)
        return vae
    raise MissingWeightsError(f"no Wan VAE in {wan}: expected vae/ (diffusers) or {WAN_VAE_FILENAME} (original Wan2.1)")


def _load_text_encoder(wan: Path):
    from transformers import AutoTokenizer, UMT5EncoderModel

    pth = wan / WAN_T5_FILENAME
    if (wan / "text_encoder" / "config.json").is_file():
        encoder = UMT5EncoderModel.from_pretrained(wan / "text_encoder")
    elif pth.is_file():
        try:
            encoder = build_umt5_from_wan(_strip_module(_torch_load(pth)))
        except (KeyError, ValueError, IndexError) as exc:
            raise MissingWeightsError(f"{pth}: not Wan2.1's umT5 encoder state dict ({exc}); expected keys "
                                      f"token_embedding.weight, blocks.N.{{norm1,attn.q/k/v/o,pos_embedding.embedding,"
                                      f"norm2,ffn.gate.0,ffn.fc1,ffn.fc2}}.weight, norm.weight") from None
        except RuntimeError as exc:
            raise MissingWeightsError(f"{pth}: umT5 weights have inconsistent shapes "
                                      f"({str(exc).splitlines()[-1].strip()})") from None
    else:
        raise MissingWeightsError(f"no umT5 encoder in {wan}: expected text_encoder/ (diffusers) or "
                                  f"{WAN_T5_FILENAME} (original Wan2.1)")
    for sub in ("tokenizer", "google/umt5-xxl"):
        if (wan / sub).is_dir():
            return encoder, AutoTokenizer.from_pretrained(wan / sub)
    raise MissingWeightsError(f"no umT5 tokenizer in {wan}: expected tokenizer/ or google/umt5-xxl/")


def _load_mixed_state(parts: OmniVideoParts, path: Path) -> None:
    """``transformer/model.pt`` into the four sub-modules, non-strictly, reporting every key left over."""
    state = _torch_load(path)
    state = state.get("module", state) if isinstance(state.get("module"), dict) else state
    groups: dict[str, dict] = {"wan_model": {}, "adapter": {}, "ar_vision_head": {}, "visual_context_adapter": {}}
    stray = []
    for key, value in _strip_module(state).items():
        head, _, rest = key.partition(".")
        (groups[head].__setitem__(rest, value) if head in groups else stray.append(key))
    targets = {
        "wan_model": parts.decoder.transformer, "adapter": parts.adapter,
        "ar_vision_head": parts.vision_head, "visual_context_adapter": parts.visual_adapter,
    }
    for name, module in targets.items():
        sub = wan_to_diffusers(groups[name]) if name == "wan_model" and groups[name] else groups[name]
        if not sub:
            parts.report.add(f"{path}:{name}", [f"{name}.* (all)"] if name in ("wan_model", "visual_context_adapter") else [], [])
            continue
        try:
            res = module.load_state_dict(sub, strict=False)
        except RuntimeError as exc:
            raise MissingWeightsError(f"{path}: {name} weights have wrong shapes ({str(exc).splitlines()[-1].strip()})") from None
        parts.report.add(f"{path}:{name}", list(res.missing_keys), list(res.unexpected_keys))
    parts.report.add(str(path), [], stray)


def load_official(root: str | Path, *, max_context_len: int = 2560, patch_size=(1, 4, 4)) -> OmniVideoParts:
    """Load the generation side from ``omni_ckpts/`` (float32, CPU; cast/move afterwards)."""
    root = checkpoint_root(root)
    wan = _need(root, "wan")
    tokens_path, uncond_path = _need(root, "special_tokens"), _need(root, "uncond")
    adapter_path, head_path, mixed_path = _need(root, "adapter"), _need(root, "vision_head"), _need(root, "transformer")

    transformer = _load_transformer(wan)
    text_encoder, tokenizer = _load_text_encoder(wan)
    decoder = WanDecoder(transformer=transformer, vae=_load_vae(wan), text_encoder=text_encoder, tokenizer=tokenizer)
    text_dim = int(transformer.config.text_dim)

    adapter_state = _torch_load(adapter_path)
    if "model_state_dict" not in adapter_state:
        raise MissingWeightsError(f"{adapter_path}: expected a dict with key 'model_state_dict'")
    adapter = _load_query_module(DMAdapter, adapter_path, _strip_module(adapter_state["model_state_dict"]), "adapter")
    head = _load_query_module(VisionHead, head_path, _strip_module(_torch_load(head_path)), "visionHeadAdapter")
    tcfg = transformer.config
    visual = VisualContextAdapter(tuple(patch_size), int(tcfg.in_channels), int(tcfg.num_attention_heads * tcfg.attention_head_dim), text_dim)

    parts = OmniVideoParts(
        vision_head=head, adapter=adapter, visual_adapter=visual, decoder=decoder,
        special_tokens=check_special_tokens(safe_pickle.restricted_load(tokens_path), what=str(tokens_path), width=text_dim),
        uncond=UnconditionedContext.from_pickle_dict(safe_pickle.restricted_load(uncond_path), what=str(uncond_path)),
        max_context_len=max_context_len,
    )
    _load_mixed_state(parts, mixed_path)
    if parts.uncond.text_emb.shape[-1] != text_dim:
        raise MissingWeightsError(f"{uncond_path}: text_emb width {parts.uncond.text_emb.shape[-1]} != Wan text_dim {text_dim}")
    for m in parts.modules():
        m.eval()
    return parts


def weight_files(root: str | Path) -> list[Path]:
    """Every file of the generation side and the MLLM (for the checkpoint fingerprint), sorted."""
    root = checkpoint_root(root)
    files = []
    for rel in LAYOUT.values():
        p = root / rel
        files.extend(sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p] if p.is_file() else [])
    return files


# ------------------------------------------------------------------------------------------------
# writing (tests: tiny random weights in the official layout and formats)
# ------------------------------------------------------------------------------------------------
def save_official(root: str | Path, parts: OmniVideoParts, mllm=None, *, original_formats: Iterable[str] = ("t5", "vae")) -> Path:
    """Write ``parts`` (and ``mllm`` via its ``save_pretrained``) as ``root/omni_ckpts/`` in the official formats.

    The Wan DiT goes twice, in original names: ``wan/wanxiang1_3b`` (config.json + safetensors) and, with the
    visual context adapter, under ``wan_model.``/``visual_context_adapter.`` in ``transformer/model.pt``
    wrapped in ``{'module': ...}``.  VAE and umT5 are written in the release's original formats by default;
    leave one out of ``original_formats`` to write it as a diffusers/transformers folder instead: ``"t5"`` writes
    Wan's ``models_t5_umt5-xxl-enc-bf16.pth`` (Wan names, the
    tensors' own dtype -- float32 for the tiny model, although the real file is bf16) and the tokenizer as
    ``google/umt5-xxl/``; ``"vae"`` writes ``Wan2.1_VAE.pth`` (original names; needs the Wan2.1 VAE structure,
    see :func:`diffusers_vae_to_wan`; ``omnivideo-tiny``'s VAE has it, at base width 4).
    """
    from safetensors.torch import save_file

    original = set(original_formats)
    if original - {"t5", "vae"}:
        raise ValueError(f"original_formats: unknown {sorted(original - {'t5', 'vae'})} (use 't5', 'vae')")
    out = Path(root) / "omni_ckpts"
    wan = out / LAYOUT["wan"]
    wan.mkdir(parents=True, exist_ok=True)
    d = parts.decoder
    wan_state = diffusers_to_wan({k: v.contiguous() for k, v in d.transformer.state_dict().items()})
    (wan / "config.json").write_text(json.dumps(diffusers_config_to_wan(dict(d.transformer.config)), indent=1))
    save_file(wan_state, wan / "diffusion_pytorch_model.safetensors")
    if "vae" in original:
        _check_wan21_vae_structure(d.vae)
        torch.save(diffusers_vae_to_wan(d.vae.state_dict()), wan / WAN_VAE_FILENAME)
    else:
        d.vae.save_pretrained(wan / "vae")
    if "t5" in original:
        torch.save(hf_to_wan_t5(d.text_encoder.state_dict()), wan / WAN_T5_FILENAME)
        d.tokenizer.save_pretrained(wan / "google" / "umt5-xxl")
    else:
        d.text_encoder.save_pretrained(wan / "text_encoder")
        d.tokenizer.save_pretrained(wan / "tokenizer")

    for key in ("adapter", "vision_head", "transformer", "uncond", "special_tokens"):
        (out / LAYOUT[key]).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model_state_dict": parts.adapter.state_dict(), "epoch": 0, "step": 0}, out / LAYOUT["adapter"])
    torch.save(parts.vision_head.state_dict(), out / LAYOUT["vision_head"])
    mixed = {f"wan_model.{k}": v for k, v in wan_state.items()}
    mixed.update({f"visual_context_adapter.{k}": v for k, v in parts.visual_adapter.state_dict().items()})
    torch.save({"module": mixed}, out / LAYOUT["transformer"])
    (out / LAYOUT["uncond"]).write_bytes(pickle.dumps(parts.uncond.to_pickle_dict()))
    (out / LAYOUT["special_tokens"]).write_bytes(pickle.dumps({k: v.clone() for k, v in parts.special_tokens.items()}))
    if mllm is not None:
        mllm.save_pretrained(out / LAYOUT["ar_model"])
    return out
