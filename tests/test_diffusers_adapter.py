"""The ``diffusers`` adapter on a tiny random WanPipeline saved to disk and loaded back through from_pretrained."""
from __future__ import annotations

import numpy as np
import pytest

from omnieval.models.base import make_requests

torch = pytest.importorskip("torch")


def _tiny_umt5_tokenizer():
    from transformers import T5Tokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + [(f"\u2581{w}", -float(i)) for i, w in enumerate(
        "a red ball cat dog video of the on in blue green sky runs jumps".split())]
    return T5Tokenizer(vocab=pieces, extra_ids=0)


@pytest.fixture(scope="module")
def wan_dir(tmp_path_factory):
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanPipeline, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(0)
    text = UMT5EncoderModel(UMT5Config(vocab_size=38, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
                                       relative_attention_num_buckets=8))
    vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True])
    transformer = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16,
                                        out_channels=16, text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2,
                                        cross_attn_norm=True, qk_norm="rms_norm_across_heads", rope_max_seq_len=32)
    pipe = WanPipeline(tokenizer=_tiny_umt5_tokenizer(), text_encoder=text, vae=vae, transformer=transformer,
                       scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0))
    folder = tmp_path_factory.mktemp("wan")
    pipe.save_pretrained(folder)
    return folder


def test_video_and_image_generation_are_seeded_and_batch_independent(wan_dir):
    from omnieval.models.diffusers_gen import DiffusersGenerator

    model = DiffusersGenerator.from_args(pretrained=str(wan_dir))
    gen = dict(height=16, width=16, num_frames=5, num_inference_steps=2, guidance_scale=5.0, fps=8)
    both = model.generate_video(make_requests("t2v", ["a red ball", "a blue sky"], seeds=[1, 2], **gen))
    alone = model.generate_video(make_requests("t2v", ["a blue sky"], seeds=[2], **gen))
    assert both[0].frames.shape == (5, 16, 16, 3) and both[0].frames.dtype == np.uint8 and both[0].fps == 8
    np.testing.assert_array_equal(both[1].frames, alone[0].frames)
    images = model.generate_image(make_requests("t2i", ["a cat"], seeds=[3], height=16, width=16, num_inference_steps=2))
    assert images[0].shape == (16, 16, 3)
    ident = DiffusersGenerator.identity_from_args(pretrained=str(wan_dir), device="cpu")
    assert ident.fingerprint == model.identity().fingerprint and not ident.fingerprint.startswith(("unresolved", "empty"))


def test_missing_pipeline_is_one_clear_error(tmp_path):
    from omnieval.errors import MissingWeightsError
    from omnieval.models.diffusers_gen import DiffusersGenerator

    with pytest.raises(MissingWeightsError, match="not-a-real/pipeline"):
        DiffusersGenerator(pretrained="not-a-real/pipeline")
    with pytest.raises(MissingWeightsError, match="checkpoint folder not found"):
        DiffusersGenerator(pretrained="./nope-folder")
