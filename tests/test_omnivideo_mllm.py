"""Omni-Video MLLM (omnieval.models.omnivideo.mllm / chat / tokenizers) on tiny random weights.

Exactness: the save -> load round trip must give bit-identical hidden states and identical sampled text
(tolerance 0: same weights, same float32 CPU kernels, same seeds).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from omnieval.errors import MediaError, MissingWeightsError, OmniEvalError
from omnieval.media import Video
from omnieval.models.omnivideo import chat
from omnieval.models.omnivideo.mllm import ROUTE_TASKS, DownSample2x2, MLLMConfig, MultimodalProjector, OmniMLLM
from omnieval.models.omnivideo.tokenizers import build_tiny_llm_tokenizer, build_tiny_umt5_tokenizer

RNG = np.random.default_rng(0)
IMAGE = RNG.integers(0, 256, (40, 50, 3), dtype=np.uint8)
VIDEO = Video(RNG.integers(0, 256, (12, 20, 24, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def model() -> OmniMLLM:
    return OmniMLLM.from_config(MLLMConfig.tiny(), seed=0)


@pytest.fixture(scope="module")
def saved(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("omni_ckpts") / "ar_model" / "checkpoint"
    model.save_pretrained(path)
    return path


def _force_token(model: OmniMLLM, token_id: int):
    """Make the text head always prefer ``token_id`` (returns the hook handle)."""

    def hook(module, inputs, output):
        output = output.clone()
        output[..., token_id] += 1e4
        return output

    return model.llm.lm_head.register_forward_hook(hook)


# -- construction and config ---------------------------------------------------------------------
def test_tiny_build_is_deterministic(model):
    again = OmniMLLM.from_config(MLLMConfig.tiny(), seed=0)
    other = OmniMLLM.from_config(MLLMConfig.tiny(), seed=1)
    ref = model.state_dict()
    assert all(torch.equal(ref[k], v) for k, v in again.state_dict().items())
    assert not torch.equal(ref["llm.lm_head.weight"], other.state_dict()["llm.lm_head.weight"])
    assert model.hidden_size == 64


def test_config_json_round_trip():
    cfg = MLLMConfig.tiny()
    data = json.loads(json.dumps(cfg.to_dict()))
    assert MLLMConfig.from_dict(data) == cfg
    assert cfg.num_video_frames == 8 and cfg.conv_template == "llama_3"
    assert MLLMConfig.llama3_vila_8b().hidden_size == 4096
    with pytest.raises(ValueError, match="unknown key"):
        MLLMConfig.from_dict({**data, "bogus": 1})


# -- tokenizers and chat template ------------------------------------------------------------------
def test_tiny_llm_tokenizer_layout():
    tok = build_tiny_llm_tokenizer()
    cfg = MLLMConfig.tiny()
    assert len(tok) == cfg.llm["vocab_size"]
    assert tok.convert_tokens_to_ids(["[GEN_VID]", "[GEN_IMG]"]) == [cfg.route_token_ids["t2v"], cfg.route_token_ids["t2i"]]
    for special in ("<|eot_id|>", "<|start_header_id|>", "<BOI>", "<EOI>", "<BOV>", "<EOV>"):
        assert len(tok(special, add_special_tokens=False).input_ids) == 1
    ids = tok("Générer un chat 漢字").input_ids
    assert ids[0] == tok.bos_token_id == cfg.llm["bos_token_id"]
    assert tok.decode(ids, skip_special_tokens=True) == "Générer un chat 漢字"  # byte-level: nothing is unknown


def test_tiny_umt5_tokenizer():
    tok = build_tiny_umt5_tokenizer()
    ids = tok("A red cat, walking in the Holi festival!").input_ids
    assert ids[-1] == tok.eos_token_id == 1 and tok.pad_token_id == 0
    assert tok.unk_token_id not in ids
    assert tok.decode(ids, skip_special_tokens=True) == "A red cat, walking in the Holi festival!"


def test_llama3_template_matches_official_text():
    expected = (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful language and vision "
        "assistant. You are able to understand the visual content that the user provides, and assist the user "
        "with a variety of tasks using natural language.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
        "Generate a video about:\na cat<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    assert chat.conversation_prompt("llama_3", "Generate a video about:\na cat") == expected
    assert chat.conversation_prompt("llama_3", "Generate a video about:\na cat", "[GEN_VID]") == expected + "[GEN_VID]<|end_of_text|>"
    with pytest.raises(ValueError):
        chat.conversation_prompt("vicuna_v1", "x")


def test_image_placeholders_and_chunking():
    assert chat.with_image_tokens("What?", 2) == "<image>\n<image>\nWhat?"
    assert chat.with_image_tokens("Look <image-placeholder> here", 1) == "Look <image> here"
    assert chat.with_image_tokens("x", 1, use_im_start_end=True) == "<im_start><image><im_end>\nx"

    def encode(text):  # BOS (1) + one id per character
        return [1] + [ord(c) for c in text]

    # as VILA's tokenizer_image_token: later chunks lose their first (BOS) token
    assert chat.split_image_tokens("ab<image>c<image>", encode, bos_token_id=1) == [[1, 97, 98], [99], []]
    assert chat.split_image_tokens("ab<image>c", lambda t: [ord(c) for c in t], bos_token_id=1) == [[97, 98], [99]]


def test_think_parsing_rule():
    assert chat.parse_think_output("Reasoning: x\nRewritten prompt: A big red cat.", "cat") == ("A big red cat.", False)
    assert chat.parse_think_output('rewritten PROMPT : "two cats"', "cat") == ("two cats", False)
    assert chat.parse_think_output("A cat on a mat", "cat") == ("A cat on a mat", False)
    assert chat.parse_think_output("Reasoning: hmm. Rewritten prompt:   ", "cat") == ("cat", True)
    assert chat.think_request("Make a {task}: {prompt}", "a cat {x}", "t2i") == "Make a image: a cat {x}"
    with pytest.raises(ValueError):
        chat.think_request("no placeholder", "a cat", "t2v")


# -- vision path -----------------------------------------------------------------------------------
def test_downsample_merges_2x2_neighbourhoods():
    # 3x3 grid, value = 10*row + col, one channel; padded to 4x4 with zeros
    grid = torch.tensor([[10.0 * r + c for c in range(3)] for r in range(3)]).reshape(1, 9, 1)
    out = DownSample2x2()(grid)
    assert out.shape == (1, 4, 4)
    # column-pair-major; each token = [(r,k), (r,k+1), (r+1,k), (r+1,k+1)]
    expected = [[0, 1, 10, 11], [20, 21, 0, 0], [2, 0, 12, 0], [22, 0, 0, 0]]
    assert out[0].tolist() == expected
    keys = set(MultimodalProjector("mlp_downsample", 32, 64).state_dict())
    assert keys == {"layers.1.weight", "layers.1.bias", "layers.2.weight", "layers.2.bias", "layers.4.weight", "layers.4.bias"}


def test_video_frame_sampling(model):
    frames = np.arange(12, dtype=np.uint8)[:, None, None, None] * np.ones((1, 4, 4, 3), np.uint8)
    video = Video(frames)
    assert model._frames(video, "v")[:, 0, 0, 0].tolist() == [0, 1, 3, 4, 6, 7, 9, 11]  # linspace(0, T-1, 8) truncated
    assert model._frames(Video(frames[:5]), "v").shape[0] == 5  # shorter videos: every frame
    assert model._frames(IMAGE, "img").shape == (1, 40, 50, 3)
    pixels = model.pixel_values(model._frames(video, "v"))
    assert pixels.shape == (8, 3, 32, 32) and float(pixels.min()) >= -1.0 and float(pixels.max()) <= 1.0
    assert model.encode_images(pixels).shape == (8, 4, 64)  # 4x4 patches -> 2x2 merged tokens
    with pytest.raises(MediaError, match="media\\[0\\]"):
        model.answer([np.zeros((4, 4))], ["?"], max_new_tokens=2)


@pytest.mark.slow
def test_pixel_values_match_siglip_processor(model):
    """VILA "resize" preprocessing = PIL resize to the tower size, then transformers' SiglipImageProcessor.

    Tolerance 1e-6 (float32 rounding of rescale/normalise).
    """
    from PIL import Image
    from transformers import SiglipImageProcessor

    size = model.config.image_size
    proc = SiglipImageProcessor(size={"height": size, "width": size}, resample=3, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    ref = proc.preprocess(Image.fromarray(IMAGE).resize((size, size)), return_tensors="pt")["pixel_values"][0]
    assert torch.allclose(model.pixel_values(IMAGE[None])[0], ref, atol=1e-6, rtol=0)


# -- decoding --------------------------------------------------------------------------------------
def test_answer_is_seeded_and_batch_independent(model):
    media, questions = [IMAGE, VIDEO, None], ["What is this?", "Describe the video.", "Hello"]
    first = model.answer(media, questions, max_new_tokens=12, seed=3)
    assert first == model.answer(media, questions, max_new_tokens=12, seed=3)
    assert model.answer([VIDEO], ["Describe the video."], max_new_tokens=12, seed=3) == first[1:2]
    assert all(isinstance(a, str) for a in first)
    state = torch.get_rng_state()
    model.answer([None], ["Hi"], max_new_tokens=4)
    assert torch.equal(state, torch.get_rng_state())  # the global RNG is untouched


def test_think_returns_rewritten_prompt_or_falls_back(model):
    out = model.think(["a cat on a sofa"], template=chat.DEFAULT_THINK_TEMPLATE, task="t2v", max_new_tokens=12)
    assert len(out) == 1 and isinstance(out[0], str) and out[0].strip()
    eos = model.tokenizer.eos_token_id
    handle = _force_token(model, eos)
    try:
        res = model.think_with_info(["a cat on a sofa"], task="t2i", max_new_tokens=12)
    finally:
        handle.remove()
    assert res[0].raw == "" and res[0].fell_back and res[0].prompt == "a cat on a sofa"


@pytest.mark.parametrize("forced, expected", [("t2v", "t2v"), ("t2i", "t2i"), ("eos", "understand")])
def test_route_reads_trigger_tokens(model, forced, expected):
    token = model.tokenizer.eos_token_id if forced == "eos" else model.config.route_token_ids[forced]
    handle = _force_token(model, token)
    try:
        assert model.route(["a cat playing piano"], seed=0, max_new_tokens=6) == [expected]
    finally:
        handle.remove()
    assert set(model.route(["a cat", "describe"], [None, IMAGE], max_new_tokens=6)) <= set(ROUTE_TASKS)


def test_generation_hidden_states_follow_general_emb(model):
    tok = model.tokenizer
    text = chat.conversation_prompt("llama_3", "Generate a video about:\na cat", "[GEN_VID]")
    (t2v,) = model.generation_hidden_states(["a cat"], "t2v")
    ids = tok(text).input_ids
    assert ids[:2] == [tok.bos_token_id, tok.bos_token_id]  # the official double BOS
    assert t2v.shape == (len(ids), model.hidden_size)
    (t2i,) = model.generation_hidden_states(["a cat"], "img_gen")
    assert t2i.shape[0] == len(tok(chat.conversation_prompt("llama_3", "Generate an image about:\na cat", "[GEN_IMG]")).input_ids)
    # with a source, pad/EOS tokens (here the closing <|end_of_text|>) are dropped and 4 image tokens added
    (i2i,) = model.generation_hidden_states(["make it red"], "i2i", [IMAGE])
    i2i_text = chat.conversation_prompt("llama_3", "<image>\nmake it red", "[GEN_IMG]")
    chunks = chat.split_image_tokens(i2i_text, lambda t: tok(t).input_ids, tok.bos_token_id)
    kept = sum(t != tok.eos_token_id for c in chunks for t in c)
    assert i2i.shape == (kept + 4, model.hidden_size)
    (v2v,) = model.generation_hidden_states(["make it red"], "v2v", [VIDEO])
    first = Video(VIDEO.frames[:1])  # only the first sampled frame reaches the LLM
    (v2v_first,) = model.generation_hidden_states(["make it red"], "v2v", [first])
    assert torch.equal(v2v, v2v_first)
    with pytest.raises(MediaError):
        model.generation_hidden_states(["make it red"], "i2i")
    with pytest.raises(ValueError, match="unknown generation task"):
        model.generation_hidden_states(["x"], "t3v")


def test_multimodal_sequences_are_truncated_like_vila(model):
    model.llm.config.tokenizer_model_max_length = 20
    try:
        (i2i,) = model.generation_hidden_states(["make it red"], "i2i", [IMAGE])
        (t2v,) = model.generation_hidden_states(["make it red"], "t2v")
    finally:
        del model.llm.config.tokenizer_model_max_length
    assert i2i.shape[0] == 20 and t2v.shape[0] > 20  # text-only inputs are not cut


# -- checkpoints -----------------------------------------------------------------------------------
def test_save_load_round_trip_is_identical(model, saved):
    for rel in ("config.json", "llm/config.json", "llm/model.safetensors", "llm/tokenizer_config.json",
                "vision_tower/config.json", "vision_tower/model.safetensors", "vision_tower/preprocessor_config.json",
                "mm_projector/config.json", "mm_projector/model.safetensors"):
        assert (saved / rel).is_file(), rel
    top = json.loads((saved / "config.json").read_text())
    assert top["architectures"] == ["LlavaLlamaModel"] and top["llm_cfg"]["architectures"] == ["LlamaForCausalLM"]
    assert top["mm_projector_cfg"]["mm_projector_type"] == "mlp_downsample"

    loaded = OmniMLLM.from_pretrained(saved.parent.parent)  # the omni_ckpts root works too
    assert loaded.config.route_token_ids == model.config.route_token_ids
    for task, src in (("t2v", None), ("i2i", [IMAGE]), ("v2v", [VIDEO])):
        a = model.generation_hidden_states(["a red cat"], task, src)[0]
        b = loaded.generation_hidden_states(["a red cat"], task, src)[0]
        assert torch.equal(a, b), task
    args = ([IMAGE, VIDEO], ["What is it?", "Describe."])
    assert loaded.answer(*args, max_new_tokens=10, seed=5) == model.answer(*args, max_new_tokens=10, seed=5)

    half = OmniMLLM.from_pretrained(saved, dtype="bfloat16")
    assert half.generation_hidden_states(["a cat"], "t2v")[0].dtype == torch.bfloat16


@pytest.mark.parametrize("missing", ["mm_projector/model.safetensors", "llm/config.json", "llm/tokenizer.json", "config.json"])
def test_missing_file_is_a_clear_error(model, tmp_path, missing):
    model.save_pretrained(tmp_path)
    (tmp_path / missing).unlink()
    if missing == "llm/tokenizer.json":
        (tmp_path / "llm" / "tokenizer_config.json").unlink()
        missing = "llm/tokenizer_config.json"
    with pytest.raises(MissingWeightsError) as err:
        OmniMLLM.from_pretrained(tmp_path)
    message = str(err.value)
    assert str(tmp_path / missing) in message and "\n" not in message
    assert "llm/" in message and "mm_projector/" in message  # names the expected layout


class _RunsCode:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned > /dev/null",))


@pytest.mark.parametrize("folder", ["mm_projector", "llm", "vision_tower"])
def test_malicious_pickle_in_a_bin_is_a_one_line_refusal(model, tmp_path, folder):
    """Issue 14 §7.10: a code-running ``pytorch_model.bin`` was refused by ``weights_only`` -- as a traceback."""
    model.save_pretrained(tmp_path)
    (tmp_path / folder / "model.safetensors").unlink()
    torch.save({"weight": _RunsCode()}, tmp_path / folder / "pytorch_model.bin")
    with pytest.raises(OmniEvalError) as err:
        OmniMLLM.from_pretrained(tmp_path)
    message = str(err.value)
    assert "\n" not in message and str(tmp_path / folder / "pytorch_model.bin") in message, message
    assert "refusing to load it, its pickle names posix.system" in message, message


def test_damaged_bin_is_a_one_line_error(model, tmp_path):
    model.save_pretrained(tmp_path)
    (tmp_path / "llm" / "model.safetensors").unlink()
    (tmp_path / "llm" / "pytorch_model.bin").write_bytes(b"\x80\x02not really a checkpoint")
    with pytest.raises(MissingWeightsError) as err:
        OmniMLLM.from_pretrained(tmp_path)
    assert "\n" not in str(err.value) and str(tmp_path / "llm") in str(err.value), str(err.value)
