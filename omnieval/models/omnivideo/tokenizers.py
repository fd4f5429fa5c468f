"""Offline tiny tokenizers for the tiny Omni-Video model (no hub access, built in milliseconds).

* :func:`build_tiny_llm_tokenizer` -- a byte-level BPE (every string is encodable, nothing maps to an
  unknown token) trained deterministically on a small built-in corpus, followed by a block of special
  tokens laid out like Llama-3's reserved block (Llama-3 puts it at id 128000; here it starts right after the
  BPE vocabulary): ``<|begin_of_text|>``, ``<|end_of_text|>``, ``[GEN_IMG]``, ``[GEN_VID]`` (in the slots
  of ``<|reserved_special_token_0|>`` / ``_1|>``, i.e. the official 128002 / 128003 routing ids shifted),
  ``<|start_header_id|>``, ``<|end_header_id|>``, ``<|eot_id|>`` and the paper's ``<BOI> <EOI> <BOV> <EOV>``.
  Like Llama-3's tokenizer it prepends ``<|begin_of_text|>`` to every encoded text; it has no pad token.
* :func:`build_tiny_umt5_tokenizer` -- a Unigram ``T5Tokenizer`` (``<pad>`` 0, ``</s>`` 1, ``<unk>`` 2) over
  lower/upper-case letters, digits, punctuation and a few hundred frequent words, appending ``</s>`` as umT5
  does.  Used by the tiny Wan text encoder.
"""
from __future__ import annotations

import functools
import string
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerBase

#: Llama-3 special-token block, in order (offset 0 == id 128000 in the real tokenizer).
LLAMA3_SPECIAL_BLOCK: tuple[str, ...] = (
    "<|begin_of_text|>",  # 128000
    "<|end_of_text|>",  # 128001
    "[GEN_IMG]",  # 128002: the official code routes to image generation on this id
    "[GEN_VID]",  # 128003: ... and to video generation on this one
    "<|reserved_special_token_2|>",  # 128004
    "<|reserved_special_token_3|>",  # 128005
    "<|start_header_id|>",  # 128006
    "<|end_header_id|>",  # 128007
    "<|reserved_special_token_4|>",  # 128008
    "<|eot_id|>",  # 128009
)
#: Omni-Video's paper tokens (begin/end of image/video), appended after the Llama-3 block.
OMNI_SPECIAL_TOKENS: tuple[str, ...] = ("<BOI>", "<EOI>", "<BOV>", "<EOV>")

_CORPUS = (
    "You are a helpful language and vision assistant. You are able to understand the visual content that the "
    "user provides, and assist the user with a variety of tasks using natural language. "
    "Generate a video about: Generate an image about: Describe this video and its style in a very detailed "
    "manner. What is happening in the video? How many people are there? Answer with the option's letter from "
    "the given choices directly. A cat is sitting on a red sofa next to a window while the sun is setting. "
    "A dog runs across a green field in the morning light, the camera follows it slowly. "
    "Rewritten prompt: reasoning about the scene, lighting, camera motion, colors, objects and style. "
    "An elegant marble mausoleum with Indian architectural brilliance, traditional activity during the "
    "Indian festival of Holi, people throwing colored powder. The quick brown fox jumps over the lazy dog. "
    "0 1 2 3 4 5 6 7 8 9 A B C D yes no left right top bottom small large two three four five "
)


@functools.cache
def _tiny_llm_tokenizer_json(vocab_size: int) -> str:
    """Train the byte-level BPE once per process and keep its JSON (tokenizers objects are mutable)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
        special_tokens=[],
    )
    tok.train_from_iterator([_CORPUS] * 4, trainer=trainer)
    tok.add_special_tokens(list(LLAMA3_SPECIAL_BLOCK) + list(OMNI_SPECIAL_TOKENS))
    bos = LLAMA3_SPECIAL_BLOCK[0]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.token_to_id(bos))]
    )
    return tok.to_str()


def build_tiny_llm_tokenizer(vocab_size: int = 1024) -> "PreTrainedTokenizerBase":
    """A Llama-3-like fast tokenizer: byte-level BPE of at most ``vocab_size`` entries + the special block.

    Deterministic: the same ids on every machine (the built-in corpus yields 640 BPE entries, so
    ``len(tokenizer) == 654`` by default; ``[GEN_IMG]`` is 642 and ``[GEN_VID]`` 643).
    """
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer.from_str(_tiny_llm_tokenizer_json(vocab_size))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|begin_of_text|>",
        eos_token="<|end_of_text|>",
        additional_special_tokens=[t for t in LLAMA3_SPECIAL_BLOCK[2:]] + list(OMNI_SPECIAL_TOKENS),
        padding_side="right",
        model_max_length=4096,
        clean_up_tokenization_spaces=False,
    )


_UMT5_WORDS = (
    "a an the of and in on at to with from by for is are was be this that it its as into over under near "
    "video image photo painting style camera shot scene view close up wide slow fast motion moving running "
    "walking flying sitting standing dancing playing eating drinking looking holding cat dog bird horse fish "
    "man woman person people child car boat tree flower sky sun moon water sea river beach mountain city "
    "street house room table chair window door red green blue yellow white black orange purple pink brown "
    "gray golden bright dark light beautiful elegant detailed realistic cinematic small big large old new "
    "morning evening night day snow rain fire smoke marble indian festival holi colorful powder"
).split()


@functools.cache
def _umt5_pieces() -> tuple[tuple[str, float], ...]:
    pieces: list[tuple[str, float]] = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    seen = {p for p, _ in pieces}
    for rank, word in enumerate(_UMT5_WORDS):  # whole words are cheaper than spelling them out
        piece = "▁" + word
        if piece not in seen:
            seen.add(piece)
            pieces.append((piece, -3.0 - rank * 1e-3))
    chars = string.ascii_letters + string.digits + string.punctuation
    for rank, ch in enumerate(chars):
        for piece in (ch, "▁" + ch):
            if piece not in seen:
                seen.add(piece)
                pieces.append((piece, -8.0 - rank * 1e-3))
    return tuple(pieces)


def build_tiny_umt5_tokenizer() -> "PreTrainedTokenizerBase":
    """A tiny Unigram umT5-style tokenizer (``len(tokenizer)`` is about 250); ``</s>`` is appended."""
    from transformers import T5Tokenizer

    return T5Tokenizer(vocab=list(_umt5_pieces()), extra_ids=0)
