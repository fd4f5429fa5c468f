"""Tag2Text's captioner (VBench's ``scene`` dimension), natively: same weights, same captions as vbench 0.1.5's
``tag2text_caption(image_size=384, vit='swin_b')`` + ``generate(image, tag_input=None, return_tag_predict=True)``
running under transformers 4.33.2.

Pipeline (:meth:`Tag2TextCaptioner.generate`), images normalised ``[B, 3, 384, 384]``:

1. Swin-B -> image tokens ``[B, 1 + 144, 1024]`` (average token first, see :mod:`.swin`);
2. tagging head: the 3429 label embeddings cross-attend to the image tokens (2 layers, 4 heads), a per-class
   linear (``fc``: ``(W * x).sum(-1) + b``) gives the tag logits; tags are the classes with
   ``sigmoid(logit) > 0.7`` minus six removed classes, joined by ``' | '`` in class order;
3. tag encoder: ``[ENC] tags [SEP]`` padded / truncated to 40 tokens, cross-attending to the image tokens;
   it shares its first two layers' cross-attention and feed-forward weights with the tagging head;
4. text decoder: prompt ``[DEC] a picture of``, beam search (3 beams, length 10..30 tokens including the
   prompt, see :mod:`.generate`), cross-attending to the tag encoder output;
5. decoding: special tokens dropped, WordPiece ``##`` joined, transformers 4.33's clean-up of spaces before
   punctuation / contractions, then the prompt's characters cut off (``caption[len(prompt):]``).

**VBench quirk kept** (``Tag2TextConfig.vbench_beam_quirk``, on by default): Tag2Text repeats the tag encoder
output per beam and passes it to ``generate`` as a model keyword; transformers 4.x repeats it *again*
(``_expand_inputs_for_generation``) and BLIP's cross-attention keeps the first rows of the too-large batch.
The result: the caption of image ``i`` is conditioned on the tag-encoder output of image ``i // num_beams``
(with 16 frames and 3 beams, VBench's captions describe frames 0..5 only).  ``generate`` returns as tags of
item ``i`` the tags its caption was conditioned on, which is also what vbench returns
(``tag_input[0:B]`` of the beam-repeated list).

Frames (:meth:`Tag2TextCaptioner.caption_frames`): VBench's ``tag2text_transform(384)`` — PIL bilinear resize to
384x384 (identity on frames that are 384x384 already, e.g. decoded at that size), ``[0, 1]``, ImageNet
mean/std.
"""
from __future__ import annotations

import ast
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from omnieval.errors import MediaError, MissingWeightsError, OmniEvalError
from omnieval.metrics.vbench.common import load_matching, read_checkpoint
from omnieval.metrics.vbench.tag2text.bert import BertLMHead, BertModel, BertSizes, StepLogits, tie_parameters
from omnieval.metrics.vbench.tag2text.generate import BeamSettings, beam_search
from omnieval.metrics.vbench.tag2text.swin import SwinEncoder

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: classes Tag2Text never reports (vbench's ``delete_tag_index``)
DELETE_TAG_INDEX = (127, 3351, 3265, 3338, 3355, 3359)
#: state-dict entries derived from the sizes (recomputed, ignored when present in a checkpoint)
DERIVED_BUFFERS = ("relative_position_index", "attn_mask", "position_ids")


@dataclass(frozen=True)
class Tag2TextConfig:
    """Sizes (defaults: vbench's ``config_swinB_384.json``, ``med_config.json``, ``q2l_config.json``) and the
    generation settings of vbench's ``generate`` call.  ``hidden_size`` is shared by the tag encoder, the text
    decoder and the tagging head (their weights are tied / fed into each other).

    ``vbench_beam_quirk``: reproduce VBench's caption-``i``-from-image-``i // num_beams`` conditioning (module
    docstring).  ``kv_cache``: decode with cached self-attention keys/values — several times faster, but not the
    reference's arithmetic (logits differ by ~3e-7, so a near-tie between beams could resolve differently); off by
    default, so that captions equal the reference's."""

    image_size: int = 384
    swin_embed_dim: int = 128
    swin_depths: tuple[int, ...] = (2, 2, 18, 2)
    swin_num_heads: tuple[int, ...] = (4, 8, 16, 32)
    swin_window_size: int = 12
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 512
    vocab_size: int = 30524
    tagging_num_layers: int = 2
    tagging_num_heads: int = 4
    tagging_intermediate_size: int = 3072
    num_classes: int = 3429
    threshold: float = 0.7
    delete_tag_index: tuple[int, ...] = DELETE_TAG_INDEX
    prompt: str = "a picture of "
    tag_max_length: int = 40
    num_beams: int = 3
    max_length: int = 30
    min_length: int = 10
    repetition_penalty: float = 1.0
    vbench_beam_quirk: bool = True
    kv_cache: bool = False

    @property
    def vision_width(self) -> int:
        return self.swin_embed_dim * 2 ** (len(self.swin_depths) - 1)

    def bert_sizes(self, encoder_width: int) -> BertSizes:
        return BertSizes(self.hidden_size, self.num_layers, self.num_heads, self.intermediate_size, encoder_width,
                         self.vocab_size, self.max_position_embeddings)

    def tagging_sizes(self) -> BertSizes:
        return BertSizes(self.hidden_size, self.tagging_num_layers, self.tagging_num_heads,
                         self.tagging_intermediate_size, self.vision_width, self.vocab_size, self.max_position_embeddings)


@lru_cache(maxsize=1)
def tag_names() -> tuple[str, ...]:
    """Tag2Text's 3429 tag names, read (not imported) from vbench's ``tag2Text/tag_class.py``."""
    import importlib.util

    spec = importlib.util.find_spec("vbench")
    if spec is None or not spec.submodule_search_locations:
        raise OmniEvalError("vbench_scene: the Tag2Text tag list comes from the vbench package, which is not installed "
                            "(pip install --no-deps vbench==0.1.5)")
    path = Path(list(spec.submodule_search_locations)[0]) / "third_party" / "tag2Text" / "tag_class.py"
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.List) \
                and any(isinstance(t, ast.Name) and t.id == "tra_array" for t in node.targets):
            return tuple(ast.literal_eval(node.value))
    raise OmniEvalError(f"vbench_scene: no tag list (tra_array) in {path}")


class TagTokenizer:
    """BERT WordPiece tokenizer from a ``bert-base-uncased`` directory plus Tag2Text's ``[DEC]`` (bos, id = vocab
    size) and ``[ENC]`` (id = vocab size + 1) tokens; decoding follows transformers 4.33's slow tokenizer."""

    def __init__(self, directory: str | os.PathLike):
        from transformers import BertTokenizer

        try:
            tok = BertTokenizer.from_pretrained(str(directory))
        except (OSError, ValueError) as exc:
            raise MissingWeightsError(f"{directory}: no BERT vocabulary (vocab.txt) there ({exc})") from exc
        base = len(tok)
        tok.add_special_tokens({"bos_token": "[DEC]"})
        tok.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
        self.tok = tok
        self.bos_id = tok.convert_tokens_to_ids("[DEC]")
        self.enc_id = tok.convert_tokens_to_ids("[ENC]")
        if (self.bos_id, self.enc_id) != (base, base + 1):
            raise OmniEvalError(f"{directory}: [DEC]/[ENC] got ids {self.bos_id}/{self.enc_id}, expected {base}/{base + 1}")
        self.pad_id, self.sep_id = tok.pad_token_id, tok.sep_token_id
        self.special_ids = {tok.pad_token_id, tok.unk_token_id, tok.cls_token_id, tok.sep_token_id, tok.mask_token_id,
                            self.bos_id, self.enc_id}
        self.vocab_size = len(tok)

    def tags(self, texts: Sequence[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``[ENC] text [SEP]`` ids and attention mask, padded / truncated to ``max_length``."""
        enc = self.tok(list(texts), padding="max_length", truncation=True, max_length=max_length, return_tensors="pt")
        ids = enc["input_ids"].clone()
        ids[:, 0] = self.enc_id
        return ids, enc["attention_mask"]

    def prompt(self, prompt: str) -> list[int]:
        """``[DEC]`` + the prompt's word pieces (no ``[SEP]``)."""
        ids = self.tok(prompt)["input_ids"]
        return [self.bos_id] + list(ids[1:-1])

    def decode(self, ids: Sequence[int]) -> str:
        tokens = self.tok.convert_ids_to_tokens([i for i in ids if i not in self.special_ids])
        text = " ".join(tokens).replace(" ##", "").strip()
        for before, after in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                              (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
            text = text.replace(before, after)
        return text


class GroupWiseLinear(nn.Module):
    """One linear unit per class: ``logits[b, c] = sum_d W[0, c, d] * x[b, c, d] + b[0, c]``."""

    def __init__(self, num_classes: int, dim: int):
        super().__init__()
        self.W = nn.Parameter(torch.zeros(1, num_classes, dim))
        self.b = nn.Parameter(torch.zeros(1, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.W * x).sum(-1) + self.b


class Tag2TextCaptioner(nn.Module):
    """Tag2Text Swin-B captioner; parameter names are those of ``tag2text_swin_14m.pth`` (see the module docstring)."""

    def __init__(self, tokenizer: TagTokenizer, config: Tag2TextConfig = Tag2TextConfig()):
        super().__init__()
        if config.tagging_num_layers > config.num_layers:
            raise ValueError("tag2text: the tagging head cannot have more layers than the tag encoder")
        if tokenizer.vocab_size != config.vocab_size:
            raise OmniEvalError(f"tag2text: tokenizer has {tokenizer.vocab_size} tokens, the model {config.vocab_size}")
        self.config, self.tokenizer = config, tokenizer
        self.visual_encoder = SwinEncoder(config.image_size, config.swin_embed_dim, config.swin_depths,
                                          config.swin_num_heads, config.swin_window_size)
        self.text_decoder = BertLMHead(config.bert_sizes(encoder_width=config.hidden_size))
        self.tag_encoder = BertModel(config.bert_sizes(encoder_width=config.vision_width))
        self.vision_multi = BertModel(config.tagging_sizes(), embeddings=False, self_attention=False)
        self.label_embed = nn.Embedding(config.num_classes, config.hidden_size)
        self.fc = GroupWiseLinear(config.num_classes, config.hidden_size)
        for mine, head in zip(self.tag_encoder.encoder.layer, self.vision_multi.encoder.layer):
            for part in ("crossattention", "intermediate", "output"):
                tie_parameters(getattr(mine, part), getattr(head, part))
        names = tag_names()
        if len(names) < config.num_classes:
            raise OmniEvalError(f"tag2text: {config.num_classes} classes but only {len(names)} tag names")
        self.tag_list = names[: config.num_classes]

    # -- loading -----------------------------------------------------------------------------------
    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, tokenizer_dir: str | os.PathLike,
                        config: Tag2TextConfig = Tag2TextConfig(), device: str = "cpu") -> "Tag2TextCaptioner":
        """Build and load ``path`` (a ``{'model': state_dict}`` checkpoint or a bare state dict).

        Every parameter must be present with its shape (``MissingWeightsError`` naming the file otherwise);
        entries the model does not have are ignored, as vbench's ``strict=False`` load does; derived buffers
        (``relative_position_index``, ``attn_mask``, ``position_ids``) are recomputed.  Shared tensors (the tag
        encoder / tagging head ties, LM head / word embeddings, ``decoder.bias`` / ``bias``) take the value of the
        name loaded last, as ``torch.nn.Module.load_state_dict`` does in the reference model."""
        model = cls(TagTokenizer(tokenizer_dir), config)
        model.load_checkpoint(path)
        return model.eval().to(device)

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        load_matching(self, _read_checkpoint(path), path, "Tag2Text", ignore_unexpected=True)

    # -- inference ---------------------------------------------------------------------------------
    @torch.no_grad()
    def tag_logits(self, image_embeds: torch.Tensor) -> torch.Tensor:
        """``[B, num_classes]`` tagging-head logits from the Swin tokens."""
        labels = self.label_embed.weight.unsqueeze(0).repeat(image_embeds.shape[0], 1, 1)
        return self.fc(self.vision_multi.cross_only(labels, image_embeds))

    def tags_from_logits(self, logits: torch.Tensor) -> list[str]:
        keep = (torch.sigmoid(logits) > self.config.threshold).cpu().numpy()
        keep[:, [i for i in self.config.delete_tag_index if i < keep.shape[1]]] = False
        return [" | ".join(self.tag_list[i] for i in np.flatnonzero(row)) for row in keep]

    @torch.no_grad()
    def generate(self, images: torch.Tensor, *, return_details: bool = False) -> Any:
        """``(captions, tags)`` for normalised images ``[B, 3, S, S]`` (``S = config.image_size``); with
        ``return_details`` also a dict with ``image_embeds`` and ``tag_logits``."""
        cfg, nb = self.config, self.config.num_beams
        if images.ndim != 4 or images.shape[1:] != (3, cfg.image_size, cfg.image_size):
            raise MediaError(f"tag2text: expected images [B, 3, {cfg.image_size}, {cfg.image_size}], got {tuple(images.shape)}")
        if not torch.isfinite(images).all():
            raise MediaError("tag2text: images contain NaN or infinite values")
        device = images.device
        batch = images.shape[0]
        image_embeds = self.visual_encoder(images)
        logits = self.tag_logits(image_embeds)
        tags = self.tags_from_logits(logits)

        ids, mask = self.tokenizer.tags([t for t in tags for _ in range(nb)], cfg.tag_max_length)
        tag_states = self.tag_encoder(ids.to(device), mask.to(device), image_embeds.repeat_interleave(nb, dim=0))
        rows = torch.arange(batch * nb, device=device)
        if cfg.vbench_beam_quirk:  # decoder row s reads row s // num_beams of the beam-repeated tag states
            rows = rows // nb
        cross = self.text_decoder.bert.cross_cache(tag_states.index_select(0, rows))

        prompt = torch.tensor([self.tokenizer.prompt(cfg.prompt)] * batch, dtype=torch.long, device=device)
        settings = BeamSettings(eos_token_id=self.tokenizer.sep_id, pad_token_id=self.tokenizer.pad_id, num_beams=nb,
                                max_length=cfg.max_length, min_length=cfg.min_length,
                                repetition_penalty=cfg.repetition_penalty)
        sequences = beam_search(StepLogits(self.text_decoder, cross, cfg.kv_cache), prompt, settings)
        captions = [self.tokenizer.decode(row.tolist())[len(cfg.prompt):] for row in sequences]
        used_tags = [tags[i // nb] for i in range(batch)] if cfg.vbench_beam_quirk else tags
        if return_details:
            return captions, used_tags, {"image_embeds": image_embeds, "tag_logits": logits, "tags": tags}
        return captions, used_tags

    def preprocess(self, frames: np.ndarray) -> torch.Tensor:
        """VBench's ``tag2text_transform``: uint8 ``[T, H, W, 3]`` -> normalised ``[T, 3, S, S]``."""
        import torchvision.transforms.functional as TF
        from PIL import Image

        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
            raise MediaError(f"tag2text: expected frames [T, H, W, 3], got shape {frames.shape}")
        if frames.dtype != np.uint8:
            raise MediaError(f"tag2text: expected uint8 frames, got {frames.dtype}")
        size = self.config.image_size
        return torch.stack([
            TF.normalize(TF.to_tensor(Image.fromarray(f).resize((size, size), Image.BILINEAR)), IMAGENET_MEAN, IMAGENET_STD)
            for f in frames
        ])

    def caption_frames(self, frames: np.ndarray) -> list[str]:
        """One caption per frame (uint8 ``[T, H, W, 3]``), all frames in one batch as VBench does."""
        device = next(self.parameters()).device
        captions, _ = self.generate(self.preprocess(frames).to(device))
        return captions


def _read_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict of a Tag2Text checkpoint, without executing code and without the derived buffers (they are
    recomputed, as vbench's loader deletes them)."""
    return {k: v for k, v in read_checkpoint(path, "Tag2Text").items() if k.rsplit(".", 1)[-1] not in DERIVED_BUFFERS}
