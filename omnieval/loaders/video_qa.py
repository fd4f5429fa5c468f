"""Open-ended video QA in the official Video-ChatGPT release layouts (the judged benchmarks).

**Zero-shot QA** (``activitynet_qa``, ``msvd_qa``, ``msrvtt_qa``, ``tgif_qa``): the ``GPT_Zero_Shot_QA`` folders
of the Video-ChatGPT / Video-LLaVA evaluation data, which the VILA scripts (``run_qa_{msvd,msrvtt,tgif,activitynet}
.sh``) and Omni-Video's vendored ``model_vqa_video.py`` read::

    <dataset.path>/test_q.json   [{"video_name", "question_id", "question"}, ...]
    <dataset.path>/test_a.json   [{"answer", "type", "question_id"}, ...]   (same order)
    <dataset.path>/<videos>/     all_test/ (ActivityNet), videos/ (MSVD), videos/all/ (MSRVTT), mp4/ (TGIF)

The two lists are joined **by position**, as ``model_vqa_video.py`` does (``answer = gt_answers[index]``); unlike
it, a ``question_id`` present on both sides must agree (a mismatch is an error naming the position).  The video of
an item is ``<video_name>.<ext>`` -- for ActivityNet ``<question_id without its last _n>.<ext>`` (``v_<id>``) --
with the first extension of ``.mp4, .avi, .mov, .mkv`` (VILA's order; ``.webm`` after them) that exists.  A
missing video is an error naming it (option ``skip_missing_videos: true`` drops such items instead, as the VILA
script silently does; the count is printed).  Each doc: ``{id: question_id, question_id, video_name, question,
answer, type, video: "<videos>/<file>"}`` plus any other key of the two entries; ActivityNet docs also get
``category`` (the ActivityNet-QA type name of ``type``: motion, spatial, temporal, yes_no, color, object, location,
number, other).

**Video-ChatGPT generative benchmark** (``videochatgpt``, option ``file``): ``Benchmarking_QA/generic_qa.json``,
``temporal_qa.json`` (``[{"Q", "A", "video_name"}]``) or ``consistency_qa.json`` (``[{"Q1", "Q2", "A",
"video_name"}]``) and ``Test_Videos/``; ``dataset.path`` = the folder holding both.  A video answers several
questions, so the doc id is ``<video_name>_<k>`` with ``k`` its occurrence index (the keys VILA's
``eval_benchmark_*.py`` use).  The video is ``Test_Videos/[v_]<video_name>.<ext>`` (VILA tries both prefixes and
``.mp4, .avi, .mov, .mkv, .webm``; lmms-eval ``.mp4, .MP4, .mkv``).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from omnieval.errors import ConfigError
from omnieval.loaders.files import read_json

EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".MP4")
ACTIVITYNET_TYPES = ("motion", "spatial", "temporal", "yes_no", "color", "object", "location", "number", "other")
DOWNLOAD = ("the GPT_Zero_Shot_QA evaluation data of Video-ChatGPT / Video-LLaVA (see Video-LLaVA's "
            "TRAIN_AND_VALIDATE.md, 'eval' data)")


@dataclass(frozen=True)
class ZeroShotLayout:
    """One benchmark's folder: its video subfolder, how a video is named, and where to get it."""

    name: str
    folder: str          # the folder name in the release (for messages)
    env: str             # the environment variable the task file uses
    videos: str
    video_from_question_id: bool = False
    categories: tuple[str, ...] = ()


LAYOUTS = {
    "activitynet_qa": ZeroShotLayout("ActivityNet-QA", "Activitynet_Zero_Shot_QA", "ACTIVITYNETQA_DIR", "all_test",
                                     video_from_question_id=True, categories=ACTIVITYNET_TYPES),
    "msvd_qa": ZeroShotLayout("MSVD-QA", "MSVD_Zero_Shot_QA", "MSVDQA_DIR", "videos"),
    "msrvtt_qa": ZeroShotLayout("MSRVTT-QA", "MSRVTT_Zero_Shot_QA", "MSRVTTQA_DIR", "videos/all"),
    "tgif_qa": ZeroShotLayout("TGIF-QA", "TGIF_Zero_Shot_QA", "TGIFQA_DIR", "mp4"),
}


class _VideoIndex:
    """The file names of one folder (listed once), looked up by stem with an ordered list of extensions."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.names = {p.name for p in folder.iterdir()} if folder.is_dir() else set()

    def find(self, stems: list[str]) -> str | None:
        for stem in stems:
            for ext in EXTENSIONS:
                if stem + ext in self.names:
                    return stem + ext
        return None


def _drop_or_fail(ctx, missing: list[tuple[str, str]], total: int, what: str) -> None:
    if not missing:
        return
    first_id, first = missing[0]
    if not ctx.options.get("skip_missing_videos", False):
        raise ConfigError(f"task {ctx.task}: {len(missing)} of {total} videos not found (first: {first}.* for {what} "
                          f"{first_id}); put them there, or set dataset.options.skip_missing_videos: true to drop those "
                          f"items as the VILA scripts do")
    print(f"omnieval: task {ctx.task}: {len(missing)} of {total} items dropped, their videos are missing "
          f"(first: {first}.*)", file=sys.stderr)


def read_zero_shot(ctx, layout: ZeroShotLayout, loader):
    from omnieval.loaders import Loaded

    root = ctx.local
    q_path, a_path = root / ctx.options.get("questions", "test_q.json"), root / ctx.options.get("answers", "test_a.json")
    for path in (q_path, a_path):
        if not path.is_file():
            raise ctx.missing(loader, f"{path} not found")
    questions, answers = read_json(q_path, ctx.task), read_json(a_path, ctx.task)
    if not isinstance(questions, list) or not isinstance(answers, list):
        raise ConfigError(f"task {ctx.task}: {q_path.name} and {a_path.name} must each hold a list of entries")
    if len(questions) != len(answers):
        raise ConfigError(f"task {ctx.task}: {q_path.name} has {len(questions)} entries but {a_path.name} has "
                          f"{len(answers)}; they are joined by position")
    videos_dir = ctx.options.get("videos", layout.videos)
    index = _VideoIndex(root / videos_dir)
    if not index.names:
        raise ctx.missing(loader, f"video folder {root / videos_dir} is missing or empty")
    rows, missing = [], []
    for n, (q, a) in enumerate(zip(questions, answers)):
        if not isinstance(q, dict) or not isinstance(a, dict):
            raise ConfigError(f"task {ctx.task}: entry {n} of {q_path.name} / {a_path.name} is not a JSON object")
        lacking = [k for k in ("question_id", "question") if k not in q] + (["answer"] if "answer" not in a else [])
        if lacking:
            raise ConfigError(f"task {ctx.task}: entry {n} lacks {', '.join(lacking)}")
        qid = str(q["question_id"])
        if "question_id" in a and str(a["question_id"]) != qid:
            raise ConfigError(f"task {ctx.task}: entry {n}: question_id {qid!r} in {q_path.name} but "
                              f"{a['question_id']!r} in {a_path.name}; the files are joined by position")
        stem = qid.rsplit("_", 1)[0] if layout.video_from_question_id else str(q.get("video_name", ""))
        found = index.find([stem])
        if found is None:
            missing.append((qid, str(index.folder / stem)))
            continue
        row = {**a, **q, "question_id": qid, "video": f"{videos_dir}/{found}"}
        if layout.categories and str(a.get("type", "")).isdigit() and int(a["type"]) < len(layout.categories):
            row["category"] = layout.categories[int(a["type"])]
        rows.append(row)
    _drop_or_fail(ctx, missing, len(questions), "question")
    return Loaded(rows, root)


VCG_FILES = {"generic_qa.json": ("Q", "A"), "temporal_qa.json": ("Q", "A"), "consistency_qa.json": ("Q1", "Q2", "A")}


def read_videochatgpt(ctx):
    from omnieval.loaders import Loaded

    root = ctx.local
    name = ctx.options.get("file", "generic_qa.json")
    if name not in VCG_FILES:
        raise ConfigError(f"task {ctx.task}: dataset.options.file must be one of {', '.join(VCG_FILES)}, got {name!r}")
    path = root / "Benchmarking_QA" / name
    if not path.is_file():
        path = root / name
    if not path.is_file():
        raise ctx.missing(VIDEOCHATGPT, f"{root / 'Benchmarking_QA' / name} not found")
    entries = read_json(path, ctx.task)
    if not isinstance(entries, list):
        raise ConfigError(f"task {ctx.task}: {path}: expected a list of entries")
    index = _VideoIndex(root / "Test_Videos")
    if not index.names:
        raise ctx.missing(VIDEOCHATGPT, f"video folder {root / 'Test_Videos'} is missing or empty")
    rows, missing, seen = [], [], {}
    for n, e in enumerate(entries):
        lacking = [k for k in ("video_name", *VCG_FILES[name]) if not isinstance(e, dict) or k not in e]
        if lacking:
            raise ConfigError(f"task {ctx.task}: {path.name}: entry {n} lacks {', '.join(lacking)}")
        video_name = str(e["video_name"])
        k = seen[video_name] = seen.get(video_name, -1) + 1
        found = index.find([video_name, f"v_{video_name}"])
        if found is None:
            missing.append((f"{video_name}_{k}", str(index.folder / video_name)))
            continue
        rows.append({**e, "id": f"{video_name}_{k}", "video_name": video_name, "video": f"Test_Videos/{found}"})
    _drop_or_fail(ctx, missing, len(entries), "item")
    return Loaded(rows, root)


def _zero_shot_loader(key: str):
    from omnieval.loaders import Loader

    layout = LAYOUTS[key]

    def read(ctx):
        return read_zero_shot(ctx, layout, loader)

    loader = Loader(read, options=("questions", "answers", "videos", "skip_missing_videos"), needs=(
        f"download {DOWNLOAD} and set ${layout.env} to its {layout.folder} folder (holding test_q.json, "
        f"test_a.json and {layout.videos}/)"))
    return loader


def _videochatgpt_loader():
    from omnieval.loaders import Loader

    return Loader(read_videochatgpt, options=("file", "skip_missing_videos"), needs=(
        "download the Video-ChatGPT benchmark (github.com/mbzuai-oryx/Video-ChatGPT, 'Quantitative Evaluation': "
        "Benchmarking_QA/*.json and Test_Videos/) and set $VIDEOCHATGPT_DIR to the folder holding both"))


LOADERS = {key: _zero_shot_loader(key) for key in LAYOUTS}
VIDEOCHATGPT = _videochatgpt_loader()
