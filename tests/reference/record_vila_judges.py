"""Record the VILA judge scripts Omni-Video vendors, for ``tests/data/vila_judges_reference.json``.

    PYTHONPATH=<repo> python tests/reference/record_vila_judges.py tests/data/vila_judges_reference.json [MIRROR]

``MIRROR`` is the git directory of a snapshot of SAIS-FUXI/Omni-Video (default: the ``fetch`` mirror,
``/work/.mirror/SAIS-FUXI+Omni-Video/repo``).  The scripts are read from
``previous_version/Omni-Video1/nets/third_party/llava/eval/video/`` at run time into a temporary folder (nothing of
them is kept in this repository) and run there unchanged, in this process:

* ``eval_video_qa.py`` (the MSVD / MSRVTT / TGIF / ActivityNet-QA judge) and ``eval_benchmark_{1..5}_*.py`` (the
  Video-ChatGPT benchmark dimensions), each through its own ``main()`` with a predictions file we write;
* ``openai`` is a stub module: ``AzureOpenAI(...)`` raises (so ``eval_video_qa`` falls back to ``client = openai``),
  ``BadRequestError`` is an ``Exception``, and ``chat.completions.create(model, messages)`` records its arguments and
  answers from a table keyed by the predicted answer in the prompt (a ``BadRequestError`` for the ``BADREQUEST``
  answer);
* ``multiprocessing.pool.Pool`` is replaced in the scripts' namespace by an in-process pool, so the stub sees every
  call (the scripts' logic is unchanged: ``starmap`` runs the same ``annotate`` on the same parts).

Recorded per script and input set: the ``model``, keyword arguments and system message of the judge calls (the same
for every call of a run) and the instruction text that ends every user message (``user_tail``); per item its input,
the rest of the user message of its first judge call (``user_head``; the message is ``user_head + user_tail``), the canned reply, what
the script stored for it (its ``[response_dict, qa_set]`` file, or nothing); then the aggregate lines the script
prints.  Two input sets per script: ``agree`` (replies every convention reads the same way) and
``edge`` (replies where omnieval's strict reading differs: text around the dict, a missing key, an out-of-range
score, ``BadRequestError``).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import types
from pathlib import Path

MIRROR = Path("/work/.mirror/SAIS-FUXI+Omni-Video/repo")
SOURCE = "previous_version/Omni-Video1/nets/third_party/llava/eval/video"
SCRIPTS = ["utils.py", "eval_video_qa.py", "eval_benchmark_1_correctness.py", "eval_benchmark_2_detailed_orientation.py",
           "eval_benchmark_3_context.py", "eval_benchmark_4_temporal.py", "eval_benchmark_5_consistency.py"]

# canned judge replies keyed by the predicted answer the prompt carries
QA_REPLIES = {
    "a dog": "{'pred': 'yes', 'score': 5}",
    "a cat": "{'pred': 'no', 'score': 0}",
    "a puppy": "{'pred': 'yes', 'score': 4.8}",
    "an animal": "{'pred': 'partially', 'score': 2}",
    "dog": "{'pred': 'Yes', 'score': '3'}",
    "two dogs": "  {'pred': 'no', 'score': 1}\n",
    # edge
    "sure": "Sure! {'pred': 'yes', 'score': 4}",
    "no score": "{'pred': 'yes'}",
    "too high": "{'pred': 'yes', 'score': 99}",
    "negative": "{'pred': 'no', 'score': -7}",
    "not a dict": "yes, 5",
}
QA_SETS = {"agree": ["a dog", "a cat", "a puppy", "an animal", "dog", "two dogs", "a dog"],
           "edge": ["a dog", "sure", "no score", "too high", "negative", "not a dict"]}
BENCH_REPLIES = {
    "p4": "{'score': 4}", "p48": "{'score': 4.8}", "p0": "{'score': 0}", "p5": "{'score': 5}", "p3str": "{'score': '3'}",
    # edge
    "p99": "{'score': 99}", "pneg": "{'score': -1}", "pnoscore": "{'pred': 'yes'}", "BADREQUEST": None,
}
BENCH_SETS = {"agree": ["p4", "p48", "p0", "p5", "p3str"], "edge": ["p4", "p99", "pneg", "BADREQUEST"]}
BENCH_EDGE_EXTRA = {"eval_benchmark_2_detailed_orientation.py": ["pnoscore"]}  # the only one that reads a missing key


def _stub_openai(calls: list, table: dict, label: str):
    mod = types.ModuleType("openai")

    class BadRequestError(Exception):
        pass

    class AzureOpenAI:
        def __init__(self, *a, **k):
            raise RuntimeError("no Azure in the recording")

    def create(model, messages, **kwargs):
        user = messages[-1]["content"]
        pred = re.search(label + r"(.*)\n", user).group(1)
        calls.append({"model": model, "messages": messages, "kwargs": kwargs, "pred": pred})
        reply = table[pred]
        if reply is None:
            raise BadRequestError("canned bad request")
        msg = types.SimpleNamespace(content=reply)
        return types.SimpleNamespace(choices=[types.SimpleNamespace(message=msg)])

    mod.BadRequestError, mod.AzureOpenAI = BadRequestError, AzureOpenAI
    mod.chat = types.SimpleNamespace(completions=types.SimpleNamespace(create=create))
    mod.api_key = None
    return mod


class _InlinePool:
    def __init__(self, *a, **k):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def starmap(self, fn, args):
        return [fn(*a) for a in args]


def _materialise(mirror: Path, root: Path) -> None:
    pkg = root / "llava" / "eval" / "video"
    pkg.mkdir(parents=True)
    for p in (root / "llava", root / "llava" / "eval", pkg):
        (p / "__init__.py").write_text("")
    for name in SCRIPTS:
        text = subprocess.run(["git", "-C", str(mirror), "show", f"HEAD:{SOURCE}/{name}"], check=True,
                              capture_output=True, text=True).stdout
        (pkg / name).write_text(text)


def _run(module_name: str, argv: list[str], table: dict, label: str) -> tuple[list, str]:
    import importlib

    calls: list = []
    sys.modules["openai"] = _stub_openai(calls, table, label)
    for name in [m for m in sys.modules if m.startswith("llava")]:
        del sys.modules[name]
    mod = importlib.import_module(module_name)
    mod.Pool = _InlinePool
    out = io.StringIO()
    old_argv = sys.argv
    sys.argv = [module_name, *argv]
    try:
        with contextlib.redirect_stdout(out):
            mod.main()
    finally:
        sys.argv = old_argv
    return calls, out.getvalue()


def _first_calls(calls: list) -> dict:
    first: dict = {}
    for c in calls:
        first.setdefault(c["pred"], c)
    return first


def _compact(items: list[dict]) -> dict:
    """The items with the one system message of the run pulled out (it is the same for every call)."""
    systems = {it["messages"][0]["content"] for it in items}
    assert len(systems) == 1 and all(it["messages"][0]["role"] == "system" and len(it["messages"]) == 2 for it in items)
    models = {it.pop("model") for it in items}
    kwargs = {json.dumps(it.pop("call_kwargs")) for it in items}
    assert len(models) == 1 and len(kwargs) == 1
    users = [it.pop("messages")[1]["content"] for it in items]
    tail = os.path.commonprefix([u[::-1] for u in users])[::-1]
    tail = tail[tail.index("\n\n") + 2:]  # the instructions after the item's own lines
    for it, user in zip(items, users):
        it["user_head"] = user[: len(user) - len(tail)]
    return {"model": models.pop(), "call_kwargs": json.loads(kwargs.pop()), "system": systems.pop(), "user_tail": tail,
            "items": items}


def _stored(folder: Path) -> dict:
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def _printed(text: str) -> dict:
    out = {}
    for line in text.splitlines():
        m = re.match(r"^(Yes count|No count|Accuracy|Average score[^:]*):\s*(.*)$", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def record_qa(work: Path) -> dict:
    result = {}
    for set_name, preds in QA_SETS.items():
        d = work / f"qa_{set_name}"
        d.mkdir()
        items = [{"id": f"q{i}", "question": "what animal is in the video", "answer": "a dog", "pred": p} for i, p in enumerate(preds)]
        (d / "merge.jsonl").write_text("".join(json.dumps(it) + "\n" for it in items))
        calls, printed = _run("llava.eval.video.eval_video_qa", ["--pred_path", str(d / "merge.jsonl"), "--output_dir",
                              str(d / "gpt"), "--output_json", str(d / "results.json"), "--num_tasks", "1"],
                              QA_REPLIES, "Predicted Answer: ")
        first, stored = _first_calls(calls), _stored(d / "gpt")
        result[set_name] = {
            **_compact([{"input": it, "model": first[it["pred"]]["model"], "messages": first[it["pred"]]["messages"],
                         "call_kwargs": first[it["pred"]]["kwargs"], "reply": QA_REPLIES[it["pred"]],
                         "stored": stored.get(it["id"])} for it in items]),
            "printed": _printed(printed)}
    return result


def record_benchmarks(work: Path) -> dict:
    result = {}
    for script in SCRIPTS[2:]:
        consistency = "consistency" in script
        result[script] = {}
        for set_name, preds in BENCH_SETS.items():
            preds = preds + (BENCH_EDGE_EXTRA.get(script, []) if set_name == "edge" else [])
            d = work / f"{script[:-3]}_{set_name}"
            d.mkdir()
            items = []
            for i, p in enumerate(preds):
                video = f"vid{i // 2}"  # two questions per video: keys video_0, video_1 as in the benchmark
                if consistency:
                    items.append({"video_name": video, "Q1": f"What is shown {i}?", "Q2": f"What can be seen {i}?",
                                  "A": "A dog running.", "pred1": p, "pred2": f"second answer {i}"})
                else:
                    items.append({"video_name": video, "Q": f"What happens {i}?", "A": "A dog runs.", "pred": p})
            (d / "out").mkdir()
            (d / "pred.jsonl").write_text("".join(json.dumps(it) + "\n" for it in items))
            label = "Predicted Answer to Question 1: " if consistency else "Predicted Answer: "
            calls, printed = _run(f"llava.eval.video.{script[:-3]}", [
                "--pred_path", str(d / "pred.jsonl"), "--output_dir", str(d / "gpt"), "--output_json",
                str(d / "out" / "results.json"), "--api_key", "sk-record", "--num_tasks", "1", "--model", "gpt-3.5-turbo-0125"],
                BENCH_REPLIES, label)
            first, stored = _first_calls(calls), _stored(d / "gpt")
            keys, seen = [], {}
            for it in items:
                k = seen[it["video_name"]] = seen.get(it["video_name"], -1) + 1
                keys.append(f"{it['video_name']}_{k}")
            pred_key = "pred1" if consistency else "pred"
            result[script][set_name] = {
                **_compact([{"input": it, "key": key, "model": first[it[pred_key]]["model"],
                             "messages": first[it[pred_key]]["messages"], "call_kwargs": first[it[pred_key]]["kwargs"],
                             "reply": BENCH_REPLIES[it[pred_key]], "stored": stored.get(key)}
                            for it, key in zip(items, keys)]),
                "printed": _printed(printed)}
    return result


def record(out: Path, mirror: Path = MIRROR) -> None:
    commit = subprocess.run(["git", "-C", str(mirror), "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "src"
        _materialise(mirror, root)
        sys.path.insert(0, str(root))
        os.environ["OPENAI_API_KEY"] = "sk-record"
        for var in ("AZURE_OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT"):
            os.environ.pop(var, None)
        work = Path(tmp) / "work"
        work.mkdir()
        data = {"source": {"repo": "SAIS-FUXI/Omni-Video", "commit": commit, "folder": SOURCE},
                "eval_video_qa": record_qa(work), "benchmarks": record_benchmarks(work)}
    out.write_text(json.dumps(data, indent=None, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    record(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else MIRROR)
