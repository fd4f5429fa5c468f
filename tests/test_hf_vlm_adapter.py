"""The ``hf-vlm`` adapter on a tiny random LLaVA saved to disk and loaded back through from_pretrained."""
from __future__ import annotations

import numpy as np
import pytest

from omnieval.models.base import make_requests

torch = pytest.importorskip("torch")

WORDS = "<unk> <s> </s> <image> user assistant : what is in the video ? a cat dog runs yes no".split()
CHAT = ("{% for m in messages %}{{ m['role'] }} :{% for c in m['content'] %}"
        "{% if c['type'] == 'image' %} <image>{% else %} {{ c['text'] }}{% endif %}{% endfor %}{% endfor %}"
        "{% if add_generation_prompt %} assistant :{% endif %}")


@pytest.fixture(scope="module")
def llava_dir(tmp_path_factory):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                        pad_token="<unk>", extra_special_tokens={"image_token": "<image>"})
    processor = LlavaProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16}),
                               tokenizer=tokenizer, patch_size=8, vision_feature_select_strategy="default",
                               chat_template=CHAT, num_additional_image_tokens=1)
    torch.manual_seed(0)
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                                       image_size=16, patch_size=8, projection_dim=16),
        text_config=LlamaConfig(vocab_size=len(WORDS), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                                bos_token_id=1, eos_token_id=2, pad_token_id=0),
        image_token_index=WORDS.index("<image>"), vision_feature_select_strategy="default")
    model = LlavaForConditionalGeneration(config).eval()
    folder = tmp_path_factory.mktemp("llava")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def test_answers_video_questions_deterministically(llava_dir):
    from omnieval.media import Video
    from omnieval.models.hf_vlm import HFVideoVLM

    model = HFVideoVLM.from_args(pretrained=str(llava_dir), num_frames=3)
    video = Video(np.random.default_rng(0).integers(0, 255, (10, 20, 20, 3), dtype=np.uint8), fps=8)
    image = np.zeros((20, 20, 3), np.uint8)
    a = model.understand(make_requests("understand", ["what is in the video ?", "a cat ?"], media=[video, image], max_new_tokens=4))
    b = model.understand(make_requests("understand", ["what is in the video ?", "a cat ?"], media=[video, image], max_new_tokens=4))
    assert a == b and all(isinstance(x, str) for x in a)
    assert len(model.frames(video)) == 3 and len(model.frames(image)) == 1
    sampled = model.understand(make_requests("understand", ["what is in the video ?"], media=[video], max_new_tokens=4, temperature=1.0, top_p=0.9, seeds=[5]))
    assert sampled == model.understand(make_requests("understand", ["what is in the video ?"], media=[video], max_new_tokens=4,
                                                     temperature=1.0, top_p=0.9, seeds=[5]))


def test_missing_checkpoint_is_one_clear_error():
    from omnieval.errors import MissingWeightsError
    from omnieval.models.hf_vlm import HFVideoVLM

    with pytest.raises(MissingWeightsError, match="no-such/vlm"):
        HFVideoVLM(pretrained="no-such/vlm")
