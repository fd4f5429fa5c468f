"""Chat conventions of the Omni-Video MLLM (VILA ``llama_3`` conversation template), task prefixes of the
official ``general_emb``, and the think-mode template and its parsing rule.

Pure text functions (no torch), so they are cheap to import and test.

The ``llama_3`` template (VILA ``conversation.py``, ``SeparatorStyle.LLAMA_3``)::

    <|begin_of_text|><|start_header_id|>system<|end_header_id|>\\n\\n{system}<|eot_id|>
    <|start_header_id|>user<|end_header_id|>\\n\\n{user}<|eot_id|>
    <|start_header_id|>assistant<|end_header_id|>\\n\\n{answer}<|end_of_text|>

(without line breaks).  With no answer the prompt ends after the assistant header (generation prompt).
The text starts with ``<|begin_of_text|>`` *and* the Llama-3 tokenizer prepends another one, so the
official token sequence begins with two BOS tokens; :func:`split_image_tokens` keeps that behaviour.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

LLAMA3_SYSTEM = (
    "You are a helpful language and vision assistant. You are able to understand the visual content that the "
    "user provides, and assist the user with a variety of tasks using natural language."
)
LLAMA3_BOS_TEXT = "<|begin_of_text|>"
LLAMA3_ROLES = ("<|start_header_id|>user<|end_header_id|>\n\n", "<|start_header_id|>assistant<|end_header_id|>\n\n")
LLAMA3_SEP = "<|eot_id|>"
LLAMA3_SEP2 = "<|end_of_text|>"
CONV_TEMPLATES = ("llama_3",)

#: VILA's media placeholders.
IMAGE_TOKEN = "<image>"
IMAGE_PLACEHOLDER = "<image-placeholder>"
IM_START_TOKEN = "<im_start>"
IM_END_TOKEN = "<im_end>"
IM_PATCH_TOKEN = "<im_patch>"


def llama3_prompt(user: str, answer: str | None = None, system: str = LLAMA3_SYSTEM) -> str:
    """One user turn in the ``llama_3`` template; ``answer=None`` leaves the assistant turn open."""
    text = LLAMA3_BOS_TEXT + "<|start_header_id|>system<|end_header_id|>\n\n" + system + LLAMA3_SEP
    text += LLAMA3_ROLES[0] + user + LLAMA3_SEP
    text += LLAMA3_ROLES[1]
    if answer:
        text += answer + LLAMA3_SEP2
    return text


def conversation_prompt(template: str, user: str, answer: str | None = None) -> str:
    if template != "llama_3":
        raise ValueError(f"unsupported conversation template {template!r}; supported: {', '.join(CONV_TEMPLATES)}")
    return llama3_prompt(user, answer)


def with_image_tokens(question: str, num_images: int, use_im_start_end: bool = False) -> str:
    """Put ``num_images`` image placeholders into a question, as VILA's ``generate`` does.

    ``<image-placeholder>`` occurrences are replaced by the image token; otherwise, if the question has no
    ``<image>`` yet, ``"<image>\\n" * num_images`` is prepended.  With ``use_im_start_end`` the image token is
    wrapped in ``<im_start> ... <im_end>``.
    """
    if num_images == 0:
        return question
    token = IM_START_TOKEN + IMAGE_TOKEN + IM_END_TOKEN if use_im_start_end else IMAGE_TOKEN
    if IMAGE_PLACEHOLDER in question:
        return question.replace(IMAGE_PLACEHOLDER, token)
    if IMAGE_TOKEN not in question:
        return (token + "\n") * num_images + question
    return question


def split_image_tokens(prompt: str, encode, bos_token_id: int | None) -> list[list[int]]:
    """Token ids of the text chunks between ``<image>`` placeholders (VILA ``tokenizer_image_token``).

    ``encode(text) -> list[int]`` must add the tokenizer's special tokens (BOS) like ``tokenizer(text)``.
    If the first chunk starts with BOS, the first token of every *later* chunk is dropped (it is that BOS).
    The media go between consecutive chunks.
    """
    chunks = [list(encode(part)) for part in prompt.split(IMAGE_TOKEN)]
    first = chunks[0]
    offset = 1 if first and bos_token_id is not None and first[0] == bos_token_id else 0
    return [first] + [chunk[offset:] for chunk in chunks[1:]]


# ---------------------------------------------------------------------------------------------
# Generation embedding (official ``VilaARVideoModel.general_emb``)
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EmbedTask:
    """How ``general_emb`` phrases a generation request: prefix, forced answer, source media."""

    prefix: str
    answer: str
    source: str | None  # None | "image" | "video"


#: Official task table; the forced answer is the generation trigger of the text head.
EMBED_TASKS: dict[str, EmbedTask] = {
    "t2v": EmbedTask("Generate a video about:\n", "[GEN_VID]", None),
    "v2v": EmbedTask("<video>\n", "[GEN_VID]", "video"),
    "i2v": EmbedTask("Generate a video from the reference image with the following prompt:\n", "[GEN_VID]", "image"),
    "t2i": EmbedTask("Generate an image about:\n", "[GEN_IMG]", None),
    "i2i": EmbedTask("", "[GEN_IMG]", "image"),
}
#: The official code's long task names, accepted as aliases.
EMBED_TASK_ALIASES = {"vid_gen": "t2v", "vid_edit": "v2v", "i2v_gen": "i2v", "img_gen": "t2i", "img_edit": "i2i"}


def embed_task(task: str) -> EmbedTask:
    key = EMBED_TASK_ALIASES.get(task, task)
    if key not in EMBED_TASKS:
        raise ValueError(f"unknown generation task {task!r}; expected one of {', '.join(EMBED_TASKS)}")
    return EMBED_TASKS[key]


# ---------------------------------------------------------------------------------------------
# Think mode
# ---------------------------------------------------------------------------------------------
#: Words used for ``{task}`` in think templates.
THINK_TASK_WORDS = {
    "t2v": "video",
    "t2i": "image",
    "i2i": "image edit",
    "v2v": "video edit",
    "i2v": "image-to-video",
    "long_video": "long video",
    "edit_image": "image edit",
    "edit_video": "video edit",
}
THINK_ANSWER_MARKER = "Rewritten prompt:"
#: Default think-mode request.  ``{prompt}`` is the user's request and ``{task}`` a word from
#: :data:`THINK_TASK_WORDS`.  The released code has no think step; this wording is ours (documented in
#: results via the model args), following the paper's description: reason about the request, then rewrite it
#: as a more detailed description.
DEFAULT_THINK_TEMPLATE = (
    "A user wants a {task} generated from this request:\n{prompt}\n\n"
    "Think step by step about what the request implies: the subjects, their appearance and actions, the "
    "setting, lighting, colors, camera and style. Then rewrite the request as one detailed description.\n"
    "Answer in the format:\nReasoning: <your reasoning>\n" + THINK_ANSWER_MARKER + " <the detailed description>"
)


def think_request(template: str, prompt: str, task: str) -> str:
    """Fill a think template: ``{prompt}`` (required) and ``{task}`` are replaced literally (no str.format)."""
    if "{prompt}" not in template:
        raise ValueError("think template must contain '{prompt}'")
    return template.replace("{task}", THINK_TASK_WORDS.get(task, task)).replace("{prompt}", prompt)


_MARKER_RE = re.compile(re.escape(THINK_ANSWER_MARKER.rstrip(":")) + r"\s*:", re.IGNORECASE)


def parse_think_output(text: str, original: str) -> tuple[str, bool]:
    """The rewritten prompt in a think-mode answer, and whether we fell back to ``original``.

    Rule: take the text after the *last* ``Rewritten prompt:`` (case-insensitive); without the marker, the
    whole answer.  Strip whitespace and one pair of surrounding quotes.  If nothing is left, return the
    original prompt and ``True``.
    """
    matches = list(_MARKER_RE.finditer(text))
    rewritten = text[matches[-1].end():] if matches else text
    rewritten = rewritten.strip()
    if len(rewritten) >= 2 and rewritten[0] == rewritten[-1] and rewritten[0] in "\"'":
        rewritten = rewritten[1:-1].strip()
    if not rewritten:
        return original, True
    return rewritten, False
