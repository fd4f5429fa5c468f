"""Reference Tag2Text captions from vbench 0.1.5's own code under transformers 4.33.2 (the version vbench pins).

Run as a subprocess (see ``call_reference``)::

    PYTHONPATH=<legacy site>:<repo> /work/venv/bin/python tests/reference/tag2text_ref.py spec.json out.json

The legacy site comes from ``tests/reference/legacy_site.py``: transformers 4.33.2 shadows the venv's transformers 5
while torch, numpy and timm come from the venv. The script builds ``vbench.third_party.tag2Text.tag2text``'s
``tag2text_caption(pretrained=<checkpoint>, image_size=384, vit='swin_b')`` exactly as vbench's ``init_submodules``
does, puts it in eval mode and makes the call of ``vbench/scene.py``: every frame through
``vbench.utils.tag2text_transform(384)``, the frames stacked into one batch, then
``model.generate(batch, tag_input=None, return_tag_predict=True)`` with generate's defaults (beam search, 3 beams,
max_length 30, min_length 10, repetition_penalty 1.0, threshold 0.7, prompt 'a picture of ').

Spec keys (JSON object):

* ``vocab_dir`` (required): a directory with a BERT ``vocab.txt``;
  ``BertTokenizer.from_pretrained('bert-base-uncased')`` inside Tag2Text's ``init_tokenizer`` is redirected to it
  (the tokenizer then adds [DEC] and [ENC] as vbench does).
* ``frames_npy``: a ``.npy`` uint8 array [T, H, W, 3] (RGB), i.e. what ``vbench.utils.load_video(path, num_frames=16,
  return_tensor=False, width=384, height=384)`` returns; or ``video``: an .mp4/.gif path loaded with exactly that call.
  Exactly one of the two.
* ``checkpoint``: a file ``{'model': state_dict}`` in the official ``tag2text_swin_14m.pth`` key layout, loaded with
  vbench's ``load_checkpoint_swinbase`` (``strict=False``; the missing/unexpected keys are reported). Omit it (or
  null) for random weights. vbench's loader deletes ``relative_position_index`` / ``attn_mask`` entries (buffers the
  Swin recomputes), so those always appear in ``load.missing``; any other missing key means weights stayed random.
* ``seed`` (int, default 0): ``torch.manual_seed`` before the model is built (the random init when no checkpoint).
* ``save_checkpoint``: path; the model's ``state_dict()`` is saved there as ``{'model': state_dict}`` (after
  ``tag_bias``) before the checkpoint (if any) is loaded, so the native port can load the SAME random weights.
* ``tag_bias`` (float, default 0): added to every bias of the tagging head ``fc.b`` before saving (a weight value,
  not a code change) to steer how many tags cross the 0.7 threshold with random weights (a checkpoint, when given,
  overwrites it).
* ``sizes`` (object, default {} = the real Swin-B / BERT-base sizes). Keys are the field names of omnieval's
  ``Tag2TextConfig``; each overrides a value in vbench's config JSONs (copied to a temp dir; only values change):
  ``swin_embed_dim``, ``swin_depths``, ``swin_num_heads``, ``swin_window_size`` -> config_swinB_384.json
  (``vision_width`` follows as embed_dim * 2**(len(depths)-1));
  ``hidden_size``, ``num_layers``, ``num_heads``, ``intermediate_size``, ``max_position_embeddings``, ``vocab_size``
  -> med_config.json (``hidden_size`` also -> q2l_config.json, which must match for the encoder/tagger weight tying);
  ``tagging_num_layers``, ``tagging_num_heads``, ``tagging_intermediate_size`` -> q2l_config.json;
  ``initializer_range`` -> both BERT JSONs (random-init scale only). ``image_size`` may be given but must be 384.
  tag2text.py hard-codes the BERT width 768 twice (``decoder_config.encoder_width = 768`` and ``num_features = 768``
  of the tagging head); when ``hidden_size`` is not 768 the module is compiled from its source with those two
  literals replaced by ``hidden_size`` — a size, not a logic change.

Output JSON: ``captions`` (list[str], one per frame), ``tags`` (list[str], ' | '-joined tag words per frame),
``output_ids`` (beam-search outputs of ``text_decoder.generate``), ``tag_logits`` ([T, 3429] floats),
``image_embeds`` ({shape, mean, std} of the Swin output incl. the avg-pooled first token), ``load`` ({missing,
unexpected} keys, or null with no checkpoint), ``transformers_version``.

Stand-ins: vbench's tag2Text/vit.py imports ``fairscale...checkpoint_wrapper`` only to wrap ViT blocks for gradient
checkpointing, which the Swin-B captioner never uses; the script registers a minimal ``fairscale`` module whose
``checkpoint_wrapper`` raises if it is ever called. ``BertModel.from_pretrained('bert-base-uncased', config=q2l)``
(the tagging head's start weights, all overwritten by the checkpoint) builds ``BertModel(q2l)`` instead, offline.
Inference runs under ``torch.no_grad()`` (scene.py does not, which changes no value).
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

_T2T_MODULE = "vbench.third_party.tag2Text.tag2text"
_SIZE_KEYS = {
    "swin_embed_dim": ("swin", "embed_dim"), "swin_depths": ("swin", "depths"),
    "swin_num_heads": ("swin", "num_heads"), "swin_window_size": ("swin", "window_size"),
    "hidden_size": ("med", "hidden_size"), "num_layers": ("med", "num_hidden_layers"),
    "num_heads": ("med", "num_attention_heads"), "intermediate_size": ("med", "intermediate_size"),
    "max_position_embeddings": ("med", "max_position_embeddings"), "vocab_size": ("med", "vocab_size"),
    "tagging_num_layers": ("q2l", "num_hidden_layers"), "tagging_num_heads": ("q2l", "num_attention_heads"),
    "tagging_intermediate_size": ("q2l", "intermediate_size"),
}
_CONFIG_FILES = {"swin": "config_swinB_384.json", "med": "med_config.json", "q2l": "q2l_config.json"}
_WIDTH_LITERALS = ("decoder_config.encoder_width = 768", "num_features = 768")


def call_reference(spec: dict[str, Any], workdir: Path, site: Path, timeout: float = 900.0) -> dict[str, Any]:
    """Write ``spec`` to ``workdir``, run this script in the legacy environment of ``site``, return its JSON."""
    try:  # imported as tests' ``reference.tag2text_ref``
        from .legacy_site import run_legacy_script
    except ImportError:  # imported with tests/reference itself on sys.path
        from legacy_site import run_legacy_script

    workdir.mkdir(parents=True, exist_ok=True)
    spec_path, out_path = workdir / "tag2text_spec.json", workdir / "tag2text_out.json"
    spec_path.write_text(json.dumps(spec))
    run_legacy_script(Path(__file__), [str(spec_path), str(out_path)], site, timeout=timeout)
    return json.loads(out_path.read_text())


def _install_fairscale_stand_in() -> None:
    import types

    def checkpoint_wrapper(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("fairscale stand-in: checkpoint_wrapper is not available in the reference harness")

    names = ["fairscale", "fairscale.nn", "fairscale.nn.checkpoint", "fairscale.nn.checkpoint.checkpoint_activations"]
    modules = {name: types.ModuleType(name) for name in names}
    for parent, child in zip(names, names[1:]):
        setattr(modules[parent], child.rsplit(".", 1)[1], modules[child])
    modules[names[-1]].checkpoint_wrapper = checkpoint_wrapper  # type: ignore[attr-defined]
    for name, module in modules.items():
        sys.modules.setdefault(name, module)


def _write_configs(sizes: dict[str, Any], config_dir: Path) -> int:
    """Copy vbench's three config JSONs with ``sizes`` applied into ``config_dir``; return the BERT hidden size."""
    import vbench.third_party.tag2Text as pkg

    src_dir = Path(pkg.__file__).parent
    configs = {key: json.loads((src_dir / name).read_text()) for key, name in _CONFIG_FILES.items()}
    for key, value in sizes.items():
        if key == "image_size":
            if value != 384:
                raise ValueError("vbench's Tag2Text captioner only has a 384 px Swin config")
        elif key == "initializer_range":
            configs["med"][key] = configs["q2l"][key] = value
        elif key in _SIZE_KEYS:
            which, field = _SIZE_KEYS[key]
            configs[which][field] = value
        else:
            raise ValueError(f"unknown size key {key!r}; known: {sorted(_SIZE_KEYS)}")
    swin = configs["swin"]
    swin["vision_width"] = swin["embed_dim"] * 2 ** (len(swin["depths"]) - 1)
    configs["q2l"]["hidden_size"] = configs["med"]["hidden_size"]
    for key, name in _CONFIG_FILES.items():
        (config_dir / name).write_text(json.dumps(configs[key]))
    return int(configs["med"]["hidden_size"])


def _import_tag2text(hidden_size: int) -> Any:
    """vbench's tag2text module; compiled with the two hard-coded 768 widths set to ``hidden_size`` when needed."""
    import importlib
    import importlib.util

    if hidden_size == 768:
        return importlib.import_module(_T2T_MODULE)
    spec = importlib.util.find_spec(_T2T_MODULE)
    assert spec is not None and spec.origin is not None
    source = Path(spec.origin).read_text()
    for literal in _WIDTH_LITERALS:
        if source.count(literal) != 1:
            raise RuntimeError(f"expected exactly one {literal!r} in {spec.origin}")
        source = source.replace(literal, literal.replace("768", str(hidden_size)))
    module = importlib.util.module_from_spec(spec)
    sys.modules[_T2T_MODULE] = module
    exec(compile(source, spec.origin, "exec"), module.__dict__)  # noqa: S102 - vbench's own file, sizes patched
    return module


def _patch_offline_loading(t2t: Any, vocab_dir: str) -> None:
    """Tokenizer from ``vocab_dir``; the tagging BERT's hub start weights replaced by its config-built init."""
    from vbench.third_party.tag2Text import med

    base_tokenizer = t2t.BertTokenizer

    class LocalVocabTokenizer(base_tokenizer):  # type: ignore[misc, valid-type]
        @classmethod
        def from_pretrained(cls, name: str, *args: Any, **kwargs: Any) -> Any:
            if name != "bert-base-uncased":
                raise ValueError(f"unexpected tokenizer {name!r}")
            return base_tokenizer.from_pretrained(vocab_dir, *args, **kwargs)

    def bert_from_config(cls: type, name: str, config: Any = None, **kwargs: Any) -> Any:
        if name != "bert-base-uncased" or config is None:
            raise ValueError(f"unexpected from_pretrained({name!r})")
        return cls(config, **kwargs)

    t2t.BertTokenizer = LocalVocabTokenizer
    med.BertModel.from_pretrained = classmethod(bert_from_config)


def _frames(spec: dict[str, Any]) -> Any:
    import numpy as np
    from vbench.utils import load_video

    if ("frames_npy" in spec) == ("video" in spec):
        raise ValueError("give exactly one of frames_npy and video")
    if "video" in spec:  # the call of vbench/scene.py
        return load_video(spec["video"], num_frames=16, return_tensor=False, width=384, height=384)
    frames = np.load(spec["frames_npy"])
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames_npy must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
    return frames


def run(spec: dict[str, Any]) -> dict[str, Any]:
    _install_fairscale_stand_in()
    import torch
    import transformers
    from vbench.utils import tag2text_transform

    record: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        config_dir = Path(tmp)
        hidden = _write_configs(dict(spec.get("sizes", {})), config_dir)
        t2t = _import_tag2text(hidden)
        t2t.CUR_DIR = str(config_dir)  # read by __init__ and load_checkpoint_swinbase for the Swin config
        _patch_offline_loading(t2t, spec["vocab_dir"])
        torch.manual_seed(int(spec.get("seed", 0)))
        model = t2t.tag2text_caption(pretrained="", image_size=384, vit="swin_b",
                                     med_config=str(config_dir / "med_config.json"))
        with torch.no_grad():
            model.fc.b.add_(float(spec.get("tag_bias", 0.0)))
        if spec.get("save_checkpoint"):
            torch.save({"model": model.state_dict()}, spec["save_checkpoint"])
        record["load"] = None
        if spec.get("checkpoint"):
            model, msg = t2t.load_checkpoint_swinbase(model, spec["checkpoint"],
                                                      {"image_size": 384, "vit": "swin_b"})
            record["load"] = {"missing": list(msg.missing_keys), "unexpected": list(msg.unexpected_keys)}
    model.eval()

    frames = _frames(spec)
    transform = tag2text_transform(384)
    batch = torch.cat([transform(frame).unsqueeze(0) for frame in frames])

    captured: dict[str, Any] = {}
    model.visual_encoder.register_forward_hook(lambda _m, _i, out: captured.__setitem__("embeds", out))
    model.fc.register_forward_hook(lambda _m, _i, out: captured.__setitem__("logits", out))
    decoder_generate = model.text_decoder.generate

    def recording_generate(*args: Any, **kwargs: Any) -> Any:
        out = decoder_generate(*args, **kwargs)
        captured["output_ids"] = out
        return out

    model.text_decoder.generate = recording_generate
    with torch.no_grad():
        captions, tags = model.generate(batch, tag_input=None, return_tag_predict=True)

    embeds = captured["embeds"]
    record.update(
        captions=list(captions), tags=list(tags), output_ids=captured["output_ids"].tolist(),
        tag_logits=captured["logits"].tolist(),
        image_embeds={"shape": list(embeds.shape), "mean": embeds.mean().item(), "std": embeds.std().item()},
        transformers_version=transformers.__version__,
    )
    return record


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: tag2text_ref.py spec.json out.json", file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[0]).read_text())
    result = run(spec)
    Path(argv[1]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
