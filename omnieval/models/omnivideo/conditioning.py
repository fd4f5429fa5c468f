"""The Wan cross-attention context of Omni-Video (official ``condition_mode="full"``).

Per sample, in this order (OV1 ``OmniVideoMixedConditionModel.forward``)::

    <img_st> visual-context tokens <img_ed>      # edits only: VisualContextAdapter(VAE latents of the source)
    <ipl_st> adapter tokens <ipl_ed>             # DMAdapter(VisionHead(MLLM hidden states)): 256 image / 1024 video
    <prp_st> umT5(prompt) <prp_ed>               # umT5 embedding trimmed to the prompt's tokens

The delimiters are the embeddings stored in ``special_tokens/tokens.pkl``.  With no special-token dict at all
the parts are simply concatenated.  With a dict that lacks a pair, the official code concatenates the adapter or
umT5 part without delimiters but **drops** the visual-context part (it is only added between ``<img_st>`` and
``<img_ed>``); this module does the same (checked against OV1 ``OmniVideoMixedConditionModel.forward``).  The
result is cut to ``max_context_len`` (2560) tokens, then
zero-padded to ``max_context_len`` -- the official model sets Wan's ``text_len`` to ``max_context_len`` and
Wan pads every context with zeros to ``text_len`` before its text embedding (no attention mask).

Null (unconditional) branch, as the official ``generate``: the umT5 part is replaced by ``uncond_context``
(``text_emb`` in ``unconditioned_context/context.pkl``); the adapter part comes from the stored null MLLM
hidden states (``vlm_last_hidden_states``) through the same vision head and adapter; the edit source's
visual tokens are **kept**.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from omnieval.errors import MissingWeightsError

SPECIAL_TOKENS = ("<img_st>", "<img_ed>", "<ipl_st>", "<ipl_ed>", "<prp_st>", "<prp_ed>")
log = logging.getLogger(__name__)
UNCOND_KEYS = ("text_emb_siglip2", "text_emb", "vlm_last_hidden_states")


@dataclass
class UnconditionedContext:
    """The null branch's stored parts (``context.pkl``), as the official loader reshapes them."""

    text_emb: torch.Tensor  # [L, D]  (``text_emb[0]``)
    vlm_hidden_states: torch.Tensor  # [1, L', llm_hidden]
    aligned_emb: torch.Tensor  # [n, 1152] (``text_emb_siglip2[0]``; loaded, unused in "full" mode)

    @classmethod
    def from_pickle_dict(cls, state: dict, *, what: str) -> "UnconditionedContext":
        if not isinstance(state, dict):
            raise MissingWeightsError(f"{what}: expected a dict with keys {list(UNCOND_KEYS)}, got {type(state).__name__}")
        missing = [k for k in UNCOND_KEYS if k not in state]
        if missing:
            raise MissingWeightsError(f"{what}: missing key(s) {missing}; expected keys {list(UNCOND_KEYS)}")
        text = torch.as_tensor(state["text_emb"][0]).float()
        aligned = torch.as_tensor(state["text_emb_siglip2"][0]).float()
        vlm = torch.as_tensor(state["vlm_last_hidden_states"]).float()
        return cls(
            text_emb=text if text.dim() >= 2 else text.unsqueeze(0),
            vlm_hidden_states=vlm if vlm.dim() == 3 else vlm.unsqueeze(0),
            aligned_emb=aligned if aligned.dim() >= 2 else aligned.unsqueeze(0),
        )

    def to_pickle_dict(self) -> dict:
        return {
            "text_emb_siglip2": self.aligned_emb.unsqueeze(0),
            "text_emb": self.text_emb.unsqueeze(0),
            "vlm_last_hidden_states": self.vlm_hidden_states,
        }


def check_special_tokens(tokens: dict, *, what: str, width: int) -> dict[str, torch.Tensor]:
    """Validate ``tokens.pkl``: a dict of ``[k, width]`` tensors (``[width]`` is made ``[1, width]``)."""
    if not isinstance(tokens, dict):
        raise MissingWeightsError(f"{what}: expected a dict of special-token embeddings, got {type(tokens).__name__}")
    out = {}
    for key, value in tokens.items():
        t = torch.as_tensor(value).float()
        t = t.unsqueeze(0) if t.dim() == 1 else t
        if t.dim() != 2 or t.shape[1] != width:
            raise MissingWeightsError(f"{what}: token {key!r} has shape {tuple(t.shape)}, expected [k, {width}]")
        out[key] = t
    return out


def _wrap(parts: list[torch.Tensor], item: torch.Tensor, special: dict[str, torch.Tensor] | None, st: str, ed: str,
          *, delimiters_required: bool = False) -> None:
    if special is not None and st in special and ed in special:
        parts.extend([special[st].to(item), item, special[ed].to(item)])
    elif special is None or not delimiters_required:
        parts.append(item)
    else:
        log.warning("special tokens lack %s/%s: the part they delimit is left out of the context (as the official code)", st, ed)


def build_context(
    *,
    adapter_tokens: torch.Tensor | None,
    prompt_emb: torch.Tensor | None,
    visual_tokens: torch.Tensor | None = None,
    special: dict[str, torch.Tensor] | None,
    max_len: int,
) -> torch.Tensor:
    """One sample's context ``[<= max_len, D]`` (order and delimiters as the module docstring)."""
    parts: list[torch.Tensor] = []
    if visual_tokens is not None:
        _wrap(parts, visual_tokens, special, "<img_st>", "<img_ed>", delimiters_required=True)
    if adapter_tokens is not None:
        _wrap(parts, adapter_tokens, special, "<ipl_st>", "<ipl_ed>")
    if prompt_emb is not None:
        _wrap(parts, prompt_emb, special, "<prp_st>", "<prp_ed>")
    if not parts:
        raise ValueError("no condition available to build a context")
    return torch.cat(parts, dim=0)[:max_len]


def pad_contexts(contexts: list[torch.Tensor], length: int) -> torch.Tensor:
    """Stack ``[L_i, D]`` contexts into ``[B, length, D]``, zero-padded at the end (Wan's ``text_len`` padding)."""
    out = contexts[0].new_zeros(len(contexts), length, contexts[0].shape[1])
    for i, c in enumerate(contexts):
        out[i, : c.shape[0]] = c[:length]
    return out
