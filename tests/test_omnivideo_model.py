"""omnivideo-tiny end to end (every capability, think off/on) and the generation-side conventions.

Parity notes: the sampler check compares against Wan's FlowUniPC schedule formula (exact, 0 tolerance on
timesteps, 1e-6 on sigmas); the adapters/vision head use torch's ``nn.Transformer`` with the official
parameter names, checked by key names and shapes.  The condition-sequence, null-branch and noise tests pin
behaviour that was compared once against the OV1 code (``OmniVideoMixedConditionModel.forward`` /
``OmniVideoX2XUnified.generate``, same weights: vision head, adapters and contexts exactly equal, sampled
latents within 1.3e-6 relative); the checks here are hand-computable and do not need that code.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from omnieval.errors import ConfigError, MediaError
from omnieval.media import Video
from omnieval.models.base import Generation, make_requests
from omnieval.models.omnivideo.adapter import DMAdapter, VisualContextAdapter, adapt_visual_tokens
from omnieval.models.omnivideo.conditioning import build_context, pad_contexts
from omnieval.models.omnivideo.decoder import combine_guidance, initial_noise, make_scheduler, to_uint8
from omnieval.models.omnivideo.vision_head import QueryTransformerConfig, VisionHead
from omnieval.registry import get_model


@pytest.fixture(scope="module")
def tiny():
    # routing decodes up to 512 tokens per request: off here, exercised in test_routing_is_recorded
    return get_model("omnivideo-tiny").from_args(seed="0", route="false", think_max_new_tokens="16")


def _src_video(t=12):
    return Video(np.random.default_rng(0).integers(0, 255, (t, 40, 48, 3), dtype=np.uint8), fps=8)


@pytest.mark.parametrize("think", [False, True])
def test_every_capability(tiny, think):
    img = tiny.generate_image(make_requests("t2i", ["a red cat", "a dog"], think=think, seeds=[1, 2]))
    vid = tiny.generate_video(make_requests("t2v", ["waves"], think=think, seeds=[3], num_frames=9, fps=12))
    ei = tiny.edit_image(make_requests("edit_image", ["make it blue"], media=[np.zeros((40, 50, 3), np.uint8)], think=think, seeds=[4]))
    ev = tiny.edit_video(make_requests("edit_video", ["add snow"], media=[_src_video()], think=think, seeds=[5]))
    for g in img + ei:
        assert isinstance(g, Generation) and g.output.shape == (32, 32, 3) and g.output.dtype == np.uint8
    assert vid[0].output.shape == (9, 32, 32, 3) and vid[0].output.fps == 12
    assert ev[0].output.shape == (5, 32, 32, 3)
    for g in img + vid + ei + ev:
        assert g.info["think"] is think
        assert g.info["routed_task"] is None and g.info["task_mismatch"] is None
        assert ("rewritten_prompt" in g.info) is think
    answers = tiny.understand(make_requests("understand", ["what?", "why?"], media=[np.zeros((32, 32, 3), np.uint8), _src_video()],
                                            seeds=[0, 1], max_new_tokens=4))
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)


def test_routing_is_recorded_never_overrides():
    m = get_model("omnivideo-tiny").from_args(think_max_new_tokens="8")
    img = m.generate_image(make_requests("t2i", ["a red cat"], seeds=[1]))[0]
    ev = m.edit_image(make_requests("edit_image", ["blue"], media=[np.zeros((40, 50, 3), np.uint8)], seeds=[2]))[0]
    assert img.output.shape == (32, 32, 3) and ev.output.shape == (32, 32, 3)  # the requested task ran
    assert img.info["routed_task"] in ("t2v", "t2i", "understand")
    assert img.info["task_mismatch"] == (img.info["routed_task"] != "t2i")
    assert ev.info["task_mismatch"] == (ev.info["routed_task"] == "understand")


def test_seeded_and_think_changes_output(tiny):
    a = tiny.generate_image(make_requests("t2i", ["a cat"], seeds=[7]))[0].output
    b = tiny.generate_image(make_requests("t2i", ["a cat"], seeds=[7]))[0].output
    c = tiny.generate_image(make_requests("t2i", ["a cat"], seeds=[8]))[0].output
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    t = tiny.generate_image(make_requests("t2i", ["a cat"], think=True, seeds=[7]))[0]
    assert t.info["rewritten_prompt"] != "a cat" or t.info["think_fell_back"]


def test_guidance_form_is_selectable_and_recorded():
    cond, uncond = torch.tensor([2.0]), torch.tensor([1.0])
    assert combine_guidance(cond, uncond, 3.0, "official").item() == 5.0  # cond + s (cond - uncond)
    assert combine_guidance(cond, uncond, 3.0, "textbook").item() == 4.0  # uncond + s (cond - uncond)
    m = get_model("omnivideo-tiny").from_args(guidance_form="textbook", route="false")
    assert m.identity().args["guidance_form"] == "textbook" and m.identity().args["route"] is False
    dec = m.parts.decoder
    cond, null = torch.randn(2, 40, 32).unbind(0)
    latents = [dec.sample(cond, null, shape=(16, 1, 4, 4), seed=0, steps=2, guidance_scale=3.0, guidance_form=form)
               for form in ("official", "textbook")]
    assert (latents[0] - latents[1]).abs().max() > 1e-6
    with pytest.raises(ConfigError):
        get_model("omnivideo-tiny").from_args(guidance_form="weird")


def test_scheduler_matches_wan_flow_unipc_schedule():
    steps, shift = 7, 5.0
    sched = make_scheduler(steps, shift)
    sigma_max = float(np.float32(1 - 1 / 1000))  # Wan: sigmas of a shift-1 1000-step schedule
    base = np.linspace(sigma_max, 0.0, steps + 1)[:-1]
    expected = shift * base / (1 + (shift - 1) * base)
    np.testing.assert_allclose(sched.sigmas[:-1].numpy(), expected, atol=1e-6)
    assert sched.sigmas[-1].item() == 0.0
    assert sched.timesteps.tolist() == (expected * 1000).astype(np.int64).tolist()


def test_condition_sequence_order_truncation_and_padding():
    special = {k: torch.full((1, 4), float(i + 1)) for i, k in enumerate(["<img_st>", "<img_ed>", "<ipl_st>", "<ipl_ed>", "<prp_st>", "<prp_ed>"])}
    vis, ada, txt = torch.full((2, 4), 10.0), torch.full((3, 4), 20.0), torch.full((2, 4), 30.0)
    ctx = build_context(adapter_tokens=ada, prompt_emb=txt, visual_tokens=vis, special=special, max_len=100)
    assert ctx[:, 0].tolist() == [1, 10, 10, 2, 3, 20, 20, 20, 4, 5, 30, 30, 6]
    assert build_context(adapter_tokens=ada, prompt_emb=txt, special=special, max_len=4)[:, 0].tolist() == [3, 20, 20, 20]
    plain = build_context(adapter_tokens=ada, prompt_emb=txt, special=None, max_len=100)
    assert plain[:, 0].tolist() == [20, 20, 20, 30, 30]
    padded = pad_contexts([ctx, plain], 16)
    assert padded.shape == (2, 16, 4) and padded[1, 5:].abs().sum() == 0
    # a special-token dict without <img_st>/<img_ed>: the official code drops the visual part, keeps the others
    no_img = {k: v for k, v in special.items() if not k.startswith("<img")}
    ctx = build_context(adapter_tokens=ada, prompt_emb=txt, visual_tokens=vis, special=no_img, max_len=100)
    assert ctx[:, 0].tolist() == [3, 20, 20, 20, 4, 5, 30, 30, 6]
    only_img = {k: v for k, v in special.items() if k.startswith("<img")}
    ctx = build_context(adapter_tokens=ada, prompt_emb=txt, visual_tokens=vis, special=only_img, max_len=100)
    assert ctx[:, 0].tolist() == [1, 10, 10, 2, 20, 20, 20, 30, 30]


def test_null_branch_keeps_edit_source_and_uses_stored_uncond(tiny, monkeypatch):
    """Official generate(): the null context is [<img_st> same visual tokens <img_ed>] [<ipl_st> adapter(vision head(
    stored null hidden states)) <ipl_ed>] [<prp_st> stored umT5 null embedding <prp_ed>], zero-padded to max_context_len."""
    p, seen = tiny.parts, {}
    monkeypatch.setattr(p.decoder, "sample", lambda cond, null, **kw: seen.update(cond=cond, null=null, kw=kw) or
                        torch.zeros(kw["shape"]))
    tiny.edit_image(make_requests("edit_image", ["blue"], media=[np.zeros((40, 50, 3), np.uint8)], seeds=[4]))
    cond, null, sp = seen["cond"], seen["null"], p.special_tokens
    assert cond.shape == null.shape == (p.max_context_len, sp["<img_st>"].shape[1])
    n_vis = (32 // 8 // 4) ** 2  # 32x32 output -> 4x4 latent -> (1, 4, 4) patches
    n_ada = p.adapter.config.num_queries  # image: the first vision token only
    torch.testing.assert_close(cond[: n_vis + 2], null[: n_vis + 2], rtol=0, atol=0)
    assert torch.equal(null[0], sp["<img_st>"][0]) and torch.equal(null[n_vis + 1], sp["<img_ed>"][0])
    start = n_vis + 2
    assert torch.equal(null[start], sp["<ipl_st>"][0]) and torch.equal(null[start + n_ada + 1], sp["<ipl_ed>"][0])
    with torch.no_grad():
        expect = adapt_visual_tokens(p.adapter, p.vision_head(p.uncond.vlm_hidden_states), True)[0]
    torch.testing.assert_close(null[start + 1: start + 1 + n_ada], expect)
    start += n_ada + 2
    n_txt = p.uncond.text_emb.shape[0]
    torch.testing.assert_close(null[start: start + n_txt + 2], torch.cat([sp["<prp_st>"], p.uncond.text_emb, sp["<prp_ed>"]]))
    assert null[start + n_txt + 2:].abs().sum() == 0
    assert seen["kw"]["noise_device"] == "model" and seen["kw"]["guidance_form"] == "official"


def test_initial_noise_is_the_official_seeded_draw():
    """Official: torch.randn(shape, float32, device, generator=torch.Generator(device).manual_seed(seed))."""
    expect = torch.randn((16, 2, 3, 4), generator=torch.Generator("cpu").manual_seed(1818), dtype=torch.float32)
    assert torch.equal(initial_noise((16, 2, 3, 4), 1818, "cpu"), expect)
    assert not torch.equal(initial_noise((16, 2, 3, 4), 1819, "cpu"), expect)
    cls = get_model("omnivideo-tiny")
    assert cls.identity_from_args().args["noise_device"] == "model"
    assert cls.identity_from_args(noise_device="cpu").key() != cls.identity_from_args().key()
    with pytest.raises(ConfigError, match="noise_device"):
        cls.from_args(noise_device="gpu")


def test_adapter_image_video_rule_and_official_names():
    cfg = QueryTransformerConfig(8, 16, 3, num_layers=1, num_heads=2)
    adapter = DMAdapter(cfg).eval()
    tokens = torch.randn(2, 4, 8)
    assert adapt_visual_tokens(adapter, tokens, is_image=True).shape == (2, 3, 16)
    video = adapt_visual_tokens(adapter, tokens, is_image=False)
    assert video.shape == (2, 12, 16)
    torch.testing.assert_close(video[1, 3:6], adapter(tokens[1:2, 1:2])[0])
    head = VisionHead(QueryTransformerConfig(24, 8, 4, num_layers=1, num_heads=2)).eval()
    assert head(torch.randn(1, 5, 24)).shape == (1, 4, 8)
    names = set(head.state_dict())
    assert {"decoder_query", "fc.0.weight", "fc.2.weight", "visionHeadAdapter.encoder.layers.0.self_attn.in_proj_weight",
            "visionHeadAdapter.decoder.norm.weight"} <= names
    vca = VisualContextAdapter((1, 4, 4), 16, 12, 8)
    assert set(vca.state_dict()) == {"patch_embedding.weight", "patch_embedding.bias", "projection.weight", "projection.bias"}
    assert vca(torch.randn(16, 2, 8, 8)).shape == (1, 2 * 2 * 2, 8)


def test_uint8_conversion_matches_official_savers():
    x = torch.tensor([-1.0, -0.999, 0.0, 0.999, 1.0, 2.0]).view(3, 1, 1, 2)
    img = to_uint8(x, image=True)[0, 0, 0]  # save_image: round
    vid = to_uint8(x, image=False)[0, 0, 0]  # cache_video: truncate
    assert img.tolist() == [0, 128, 255] and vid.tolist() == [0, 127, 255]


def test_non_finite_model_output_is_refused_before_uint8(tiny):
    """Issue 14 §7.3: NaN became 0 in the uint8 conversion, so a NaN guidance scale gave a black image that was
    scored normally."""
    with pytest.raises(MediaError, match="decoded frames contain NaN or infinite values"):
        to_uint8(torch.tensor([0.0, float("nan")]).view(1, 1, 1, 2).expand(3, 1, 1, 2), image=True)
    with pytest.raises(MediaError, match="doc 0 sample 0 think off: decoded frames contain NaN or infinite values"):
        tiny.generate_image(make_requests("t2i", ["x"], seeds=[0], guidance_scale=float("nan")))


def test_bad_requests_are_clear(tiny):
    with pytest.raises(ConfigError, match="multiples"):
        tiny.generate_image(make_requests("t2i", ["x"], seeds=[0], height=20, width=32))
    with pytest.raises(ConfigError, match="4n\\+1"):
        tiny.generate_video(make_requests("t2v", ["x"], seeds=[0], num_frames=6))
    with pytest.raises(MediaError, match="doc 0 sample 0"):
        tiny.edit_video(make_requests("edit_video", ["x"], media=[_src_video(t=3)], seeds=[0], num_frames=9))
    with pytest.raises(MediaError):
        tiny.edit_image(make_requests("edit_image", ["x"], media=[np.zeros((4, 4), np.uint8)], seeds=[0]))
    with pytest.raises(ValueError, match="as many"):
        make_requests("t2i", ["a", "b"], seeds=[0])


def test_identity_records_the_think_template_text():
    from omnieval.models.omnivideo.chat import DEFAULT_THINK_TEMPLATE

    cls = get_model("omnivideo-tiny")
    default = cls.identity_from_args()
    assert default.args["think_template"] == DEFAULT_THINK_TEMPLATE
    custom = cls.identity_from_args(think_template="Rewrite: {prompt}")
    assert custom.args["think_template"] == "Rewrite: {prompt}" and custom.key() != default.key()


def test_identity_depends_on_the_noise_generator_device_only_when_it_matters():
    cls = get_model("omnivideo-tiny")
    assert cls.identity_from_args(device="cpu").key() != cls.identity_from_args(device="cuda:1").key()
    assert cls.identity_from_args(device="cuda:0").key() == cls.identity_from_args(device="cuda:1").key()
    assert (cls.identity_from_args(device="cpu", noise_device="cpu").key()
            == cls.identity_from_args(device="cuda", noise_device="cpu").key())
