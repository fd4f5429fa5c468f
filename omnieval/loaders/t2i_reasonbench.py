"""``t2i_reasonbench``: T2I-ReasonBench (Sun et al., 2025; github.com/KaiyueSun98/T2I-ReasonBench) from its release files.

The dataset path is a clone of the repository (or any folder with its layout).  Per dimension the release has a
prompt file and a question/criterion file, both JSON lists in id order 1..200:

=================  =======================================  ==============================================
dimension          prompts/                                  deepseek_evaluation_qs/
=================  =======================================  ==============================================
``idiom``          ``idiom_interpretation.json``             ``evaluation_idiom.json``
``textual_image``  ``textual_image_design.json``             ``evaluation_textual_image.json``
``entity``         ``entity_reasoning.json``                 ``evaluation_entity.json``
``scientific``     ``scientific_reasoning.json``             ``evaluation_scientific.json``
=================  =======================================  ==============================================

Option ``dimensions`` (default all four, in this order).  One record per prompt: ``id`` =
``<dimension>_<id:04d>`` (the official image name without suffix, prefixed), ``dimension``, ``num`` (the official
id), ``prompt`` (from the prompt file: what the model is asked; the judge never sees it), ``tag``, and the
evaluation file's question/criterion dicts under their official keys (``reason_evaluation``,
``entity_evaluation``, ``scientific_evaluation``, ``other_details_evaluation``, ``quality_evaluation``).  The
evaluation file's own ``prompt`` (it differs from the prompt file for a few items) is kept as ``qs_prompt``.
The two files are joined by ``id``; a prompt without its evaluation entry is an error naming it.
"""
from __future__ import annotations

from omnieval.errors import ConfigError
from omnieval.loaders.files import read_json

HINT = ("clone https://github.com/KaiyueSun98/T2I-ReasonBench (prompts/ and deepseek_evaluation_qs/) and set "
        "T2I_REASONBENCH_DIR to it")
#: dimension -> (prompt file, question/criterion file)
FILES = {
    "idiom": ("prompts/idiom_interpretation.json", "deepseek_evaluation_qs/evaluation_idiom.json"),
    "textual_image": ("prompts/textual_image_design.json", "deepseek_evaluation_qs/evaluation_textual_image.json"),
    "entity": ("prompts/entity_reasoning.json", "deepseek_evaluation_qs/evaluation_entity.json"),
    "scientific": ("prompts/scientific_reasoning.json", "deepseek_evaluation_qs/evaluation_scientific.json"),
}
EVALUATION_KEYS = ("reason_evaluation", "entity_evaluation", "scientific_evaluation", "other_details_evaluation",
                   "quality_evaluation")


def _by_id(path, task: str) -> dict[int, dict]:
    data = read_json(path, task)
    if not isinstance(data, list) or not all(isinstance(r, dict) and "id" in r for r in data):
        raise ConfigError(f"task {task}: {path}: expected a JSON list of records with an id")
    return {int(r["id"]): r for r in data}


def read(ctx):
    from omnieval.loaders import Loaded

    dims = ctx.options.get("dimensions", list(FILES))
    dims = [dims] if isinstance(dims, str) else list(dims)
    unknown = [d for d in dims if d not in FILES]
    if unknown or not dims:
        raise ConfigError(f"task {ctx.task}: dataset.options.dimensions {unknown or dims} must be some of {', '.join(FILES)}")
    root = ctx.local
    records = []
    for dim in dims:
        prompt_file, qs_file = (root / f for f in FILES[dim])
        for f in (prompt_file, qs_file):
            if not f.is_file():
                raise ctx.missing(LOADER, f"{f} not found")
        prompts, qs = _by_id(prompt_file, ctx.task), _by_id(qs_file, ctx.task)
        for num, row in sorted(prompts.items()):
            if num not in qs:
                raise ConfigError(f"task {ctx.task}: {dim} prompt {num} has no entry in {qs_file}")
            q = qs[num]
            record = {"id": f"{dim}_{num:04d}", "dimension": dim, "num": num, "prompt": row["prompt"],
                      "tag": row.get("tag"), "qs_prompt": q.get("prompt")}
            record.update({k: q[k] for k in EVALUATION_KEYS if k in q})
            records.append(record)
    return Loaded(records, None)


def _loader():
    from omnieval.loaders import Loader

    return Loader(read, needs=HINT, options=("dimensions",))


LOADER = _loader()
