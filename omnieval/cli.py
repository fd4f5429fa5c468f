"""Command line: ``omnieval run | score | export | report | stats | ls | leaderboard | weights``.

Kept import-light (argparse only at module level) so ``omnieval --help`` and ``omnieval ls`` are fast;
heavy libraries load only inside the subcommand that needs them.  User errors
(:class:`~omnieval.errors.OmniEvalError`) print one line and exit with status 2.  ``run`` / ``score`` exit with
status 3 (one line, results still written) when a metric failed on every item with a transient failure (e.g. the
judge endpoint was down); the next run scores those items again.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

DEFAULT_MODEL = "omnivideo-tiny"
DEFAULT_TASKS = "smoke"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="omnieval", description="Reproducible evaluation of unified video models.")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="generate (resumably) and score; writes DIR/results.json")
    run.add_argument("--model", default=None, help=f"registered model name (default: {DEFAULT_MODEL})")
    run.add_argument("--model_args", default="", help="k=v,k2=v2 passed to the model constructor")
    run.add_argument("--tasks", default=None, help=f"comma-separated task or group names (default: {DEFAULT_TASKS})")
    run.add_argument("--limit", type=int, default=None, help="at most N docs per task")
    run.add_argument("--offset", type=int, default=0, help="skip the first N docs of each task")
    run.add_argument("--think", choices=("off", "on", "both"), default=None,
                     help="think mode(s) to run (default: off; 'both' for the embedded default run)")
    run.add_argument("--seed", type=int, default=None, help="override every task's base seed")
    run.add_argument("--output_path", required=True, help="output folder (re-running resumes)")
    run.add_argument("--log_samples", action="store_true", help="also write DIR/samples/<task>.scored.jsonl")
    run.add_argument("--predict_only", action="store_true", help="generate only, do not score")
    run.add_argument("--include_path", action="append", default=[], help="extra folder of task YAML files")
    run.add_argument("--dataset", action="append", default=[], metavar="TASK=PATH",
                     help="replace a task's dataset path (local file or folder, or hub id)")
    run.add_argument("--fixtures", action="store_true",
                     help="run every task on its bundled tiny fixture (dataset.fixture) instead of its dataset")
    _add_failure_args(run)

    score = sub.add_parser("score", help="re-score existing artifacts without loading the model")
    score.add_argument("--output_path", required=True, help="a folder written by `omnieval run` (the only folder written)")
    score.add_argument("--log_samples", action="store_true")
    _add_failure_args(score)

    ex = sub.add_parser("export", help="copy a run's media out in another tool's naming (e.g. VBench's)")
    ex.add_argument("--output_path", required=True, help="a folder written by `omnieval run`")
    ex.add_argument("--task", required=True)
    ex.add_argument("--format", default="vbench", choices=("vbench",))
    ex.add_argument("--dest", required=True, help="destination folder")

    rp = sub.add_parser("report", help="one self-contained HTML page of a run: items, think on/off, scores, failures",
                        description="Builds RUN/report.html (or --out) from a folder written by `omnieval run`, without "
                                    "loading the model; browser-playable video copies go to RUN/report_assets/.")
    rp.add_argument("--output_path", required=True, help="a folder written by `omnieval run`")
    rp.add_argument("--out", default=None, help="HTML file to write (default: OUTPUT_PATH/report.html)")
    rp.add_argument("--embed", action="store_true", help="embed media as data: URLs (up to --max-embed-mb), else link them")
    rp.add_argument("--max-embed-mb", type=float, default=None, dest="max_embed_mb",
                    help="cap on the embedded media's total size in MB (default 64); later files are linked")

    ls = sub.add_parser("ls", help="list tasks (capability, items, what is missing and how to get it), models or metrics")
    ls.add_argument("what", choices=("tasks", "models", "metrics", "groups"))
    ls.add_argument("--include_path", action="append", default=[])

    lb = sub.add_parser("leaderboard", help="render boards (md, csv, tex, one html page) from results folders",
                        description="One table per benchmark in the papers' layout, the think-mode ablation table "
                                    "and, with --compare, a checkpoint comparison; see omnieval/leaderboard/render.py.")
    lb.add_argument("--results", nargs="*", default=[], action=_ResultsAction, dest="runs", metavar="DIR",
                    help="output folders (or results.json files); repeat the flag freely")
    lb.add_argument("--label", action=_LabelAction, dest="runs", metavar="KEY=VALUE[,...]",
                    help="name=TEXT and/or step=N for the results folder given just before it "
                         "(--results runs/a --label step=1000,name=a)")
    lb.add_argument("--published", action="store_true", help="include leaderboards/published/*.csv rows")
    lb.add_argument("--compare", action="store_true",
                    help="checkpoint comparison of the --results folders: side by side, deltas, metric-vs-step plots")
    lb.add_argument("--baseline", default=None, metavar="LABEL_OR_PATH",
                    help="checkpoint the deltas are taken against: its name or results path (implies --compare; "
                         "default: the lowest step)")
    lb.add_argument("--out", required=True, help="folder to write the boards to")

    st = sub.add_parser("stats", help="compute a task's FVD reference statistics once from the official videos (cached)")
    st.add_argument("--task", required=True, help="task whose fvd metric(s) name the reference set and protocol")
    st.add_argument("--real", required=True, metavar="DIR", help="folder holding the official videos and split files")
    st.add_argument("--metric", default=None, help="only the fvd metric with this label")
    st.add_argument("--batch_size", type=int, default=None)
    st.add_argument("--out", default=None, metavar="FILE", help="also copy the .npz here")
    st.add_argument("--include_path", action="append", default=[], help="extra folder of task YAML files")

    w = sub.add_parser("weights", help="list metric weights that are present or missing; --download fetches them")
    w.add_argument("--verify", action="store_true", help="check sha256 checksums of present files")
    w.add_argument("--download", action="store_true",
                   help="fetch missing weights into $OMNIEVAL_WEIGHTS_DIR (default: every manifest entry)")
    w.add_argument("--tasks", nargs="+", default=None, metavar="T",
                   help="only the weights these tasks or groups need (comma- or space-separated)")
    w.add_argument("--ids", nargs="+", default=None, metavar="ID", help="only these manifest ids")
    w.add_argument("--include_path", action="append", default=[], help="extra folder of task YAML files")
    w.add_argument("--allow-unpinned", action="store_true",
                   help="fetch hub entries without a pinned hf_revision at their branch's current commit (printed)")
    return p


def _add_failure_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--retry-failed", "--retry_failed", dest="retry_failed", action="store_true",
                   help="run the work recorded as failed again (otherwise failed items are skipped and counted)")
    p.add_argument("--max-failures", "--max_failures", dest="max_failures", default="0.01", metavar="N|FRACTION",
                   help="stop when a task's failures on this process exceed N (an integer) or FRACTION (0-1, with a "
                        "decimal point) of its work units (default 0.01: small runs stop at the first failure)")


class _ResultsAction(argparse.Action):
    """``--results A B`` appends ``[path, labels]`` entries to ``runs``, in command-line order."""

    def __call__(self, parser, namespace, values, option_string=None):
        runs = list(getattr(namespace, self.dest, None) or [])
        runs += [(str(v), []) for v in values]
        setattr(namespace, self.dest, runs)


class _LabelAction(argparse.Action):
    """``--label k=v`` attaches to the results folder given last before it."""

    def __call__(self, parser, namespace, values, option_string=None):
        runs = list(getattr(namespace, self.dest, None) or [])
        if not runs:
            parser.error(f"--label {values}: give it after the --results folder it describes")
        runs[-1][1].append(values)
        setattr(namespace, self.dest, runs)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from omnieval.errors import OmniEvalError

    try:
        _import_plugins()
        return {"run": cmd_run, "score": cmd_score, "export": cmd_export, "report": cmd_report, "stats": cmd_stats, "ls": cmd_ls,
                "leaderboard": cmd_leaderboard, "weights": cmd_weights}[args.command](args)
    except OmniEvalError as exc:
        print(f"omnieval: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # e.g. `omnieval ls tasks | head`
        sys.stdout = None
        return 0
    except KeyboardInterrupt:
        print("omnieval: interrupted; finished work is saved, re-run the same command to resume", file=sys.stderr)
        return 130


PLUGINS_ENV = "OMNIEVAL_PLUGINS"


def _import_plugins() -> None:
    """Import the modules named in ``$OMNIEVAL_PLUGINS`` (comma-separated), which register models and metrics of
    one's own, so ``torchrun -m omnieval run --model mine`` finds them."""
    import importlib

    from omnieval.errors import ConfigError

    for name in filter(None, (n.strip() for n in os.environ.get(PLUGINS_ENV, "").split(","))):
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(f"{PLUGINS_ENV}: cannot import {name!r} ({exc})") from exc


def _placement():
    """This process's shard from the launcher's environment (:mod:`omnieval.launch`), announced when split."""
    from omnieval.launch import placement

    place = placement()
    if place.world_size > 1:
        print(f"omnieval: {place.describe()}", file=sys.stderr)
    return place


def _failure_options(args) -> dict:
    from omnieval.failures import FailureLimit

    FailureLimit.parse(args.max_failures)  # a bad value is a one-line error before anything runs
    return {"retry_failed": args.retry_failed, "max_failures": str(args.max_failures)}


def _run_config(args):
    from omnieval.config import RunConfig, parse_kv
    from omnieval.errors import ConfigError

    embedded_default = args.model is None and args.tasks is None
    overrides = {}
    for item in args.dataset:
        if "=" not in item:
            raise ConfigError(f"--dataset: expected TASK=PATH, got {item!r}")
        task, path = item.split("=", 1)
        overrides[task] = path
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be >= 1, got {args.limit}")
    if args.offset < 0:
        raise ConfigError(f"--offset must be >= 0, got {args.offset}")
    place = _placement()
    return RunConfig(
        output_path=args.output_path,
        model=args.model or DEFAULT_MODEL,
        model_args=parse_kv(args.model_args),
        tasks=tuple(t for t in (args.tasks or DEFAULT_TASKS).split(",") if t),
        limit=args.limit,
        offset=args.offset,
        think=args.think or ("both" if embedded_default else "off"),
        seed=args.seed,
        log_samples=args.log_samples,
        predict_only=args.predict_only,
        include_path=tuple(args.include_path),
        dataset_overrides=overrides,
        fixtures=args.fixtures,
        rank=place.rank,
        world_size=place.world_size,
        **_failure_options(args),
    )


#: RunConfig fields that describe one invocation (launch, failure handling), not the run: not saved
_INVOCATION_FIELDS = ("rank", "world_size", "retry_failed", "max_failures")


def cmd_run(args) -> int:
    import dataclasses

    from omnieval.runner import Runner
    from omnieval.store import atomic_write_text

    run = _run_config(args)
    runner = Runner(run)
    with runner.lock("run"):
        saved = {k: v for k, v in dataclasses.asdict(run).items() if k not in _INVOCATION_FIELDS}
        atomic_write_text(Path(run.output_path) / "run_config.json", json.dumps(saved, indent=2) + "\n")
        data = runner.execute()
    return _finish(runner, data)


def _saved_runner(output_path: str, **overrides):
    """A Runner for a folder written by `omnieval run` (its saved run_config.json), never loading the model."""
    import dataclasses

    from omnieval.config import RunConfig
    from omnieval.errors import OmniEvalError
    from omnieval.runner import Runner

    path = Path(output_path) / "run_config.json"
    if not path.is_file():
        raise OmniEvalError(f"{path} not found: this needs a folder written by `omnieval run`")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise OmniEvalError(f"{path}: not valid JSON ({exc}); it is written by `omnieval run`") from exc
    if not isinstance(raw, dict):
        raise OmniEvalError(f"{path}: expected a JSON object, got {type(raw).__name__}")
    unknown = sorted(set(raw) - {f.name for f in dataclasses.fields(RunConfig)})
    if unknown or "output_path" not in raw:
        raise OmniEvalError(f"{path}: not a run configuration (unknown keys {unknown} or no output_path)")
    # the folder given, not the one recorded: a run folder may have been moved or copied since
    raw.update({"predict_only": False, "rank": 0, "world_size": 1, "output_path": str(output_path), **overrides})
    for key in ("tasks", "include_path"):
        raw[key] = tuple(raw.get(key) or ())
    return Runner(RunConfig(**raw))


def cmd_score(args) -> int:
    """Score what ``--output_path`` holds and write its results.  The saved run_config.json says what the run
    is, never where: the folder on the command line is the only one read and written."""
    place = _placement()
    runner = _saved_runner(args.output_path, rank=place.rank, world_size=place.world_size, **_failure_options(args),
                           **({"log_samples": True} if args.log_samples else {}))
    data = runner.execute(generate=False)
    return _finish(runner, data)


def _failed_everywhere(runner) -> int:
    """Exit status 3 with one line when a metric failed on every item with a transient failure (a contribution
    marked RETRY, e.g. the judge endpoint was down; such items are scored again by the next run)."""
    if not runner.all_failed:
        return 0
    more = f" (and {len(runner.all_failed) - 1} more)" if len(runner.all_failed) > 1 else ""
    print(f"omnieval: error: {runner.all_failed[0]}{more}", file=sys.stderr)
    return 3


def cmd_export(args) -> int:
    from omnieval.export import export_run

    runner = _saved_runner(args.output_path)
    written = export_run(runner.plan(), runner.store, args.task, Path(args.dest), args.format)
    print(f"exported {len(written)} files to {args.dest}")
    return 0


def cmd_report(args) -> int:
    from omnieval.report.render import write_report
    from omnieval.report.urls import DEFAULT_MAX_EMBED_MB

    runner = _saved_runner(args.output_path)
    max_mb = DEFAULT_MAX_EMBED_MB if args.max_embed_mb is None else args.max_embed_mb
    print(write_report(runner, Path(args.out) if args.out else None, embed=args.embed, max_embed_mb=max_mb))
    return 0


def _finish(runner, data: dict) -> int:
    """Print the results table when this process saw every task complete; otherwise say what is missing.  A
    shard of a split run that finishes before the others exits 0 (the last one writes the complete results);
    a single process that leaves work missing (``score`` on a folder with items never generated) exits 2.
    Exit 3 when a metric of a task this process published complete failed on every item (:func:`_failed_everywhere`)."""
    from omnieval.leaderboard.render import results_table

    if runner.run.predict_only:
        return 0
    incomplete = [st for st in runner.statuses.values() if not st.complete]
    results_path = Path(runner.run.output_path) / "results.json"
    if not incomplete:
        print(results_table(data))
        c = data.get("counters", {})
        failed = sum(st.failures().count for st in runner.statuses.values())
        print(f"\nresults: {results_path}  (generated {c.get('generated_items', 0)} items in "
              f"{c.get('generation_calls', 0)} calls, scored {c.get('scored_items', 0)} in {c.get('scoring_calls', 0)} "
              f"calls{f'; {failed} failed work units, listed under failures' if failed else ''})")
        return _failed_everywhere(runner)
    if runner.run.world_size > 1:
        for st in incomplete:
            print(f"omnieval: shard {runner.run.rank} of {runner.run.world_size} done; {st.summary_line()}; the last shard "
                  f"to finish writes the complete {results_path} (or run `omnieval score --output_path "
                  f"{runner.run.output_path}`)", file=sys.stderr)
        return _failed_everywhere(runner)
    st = incomplete[0]
    m = st.missing()
    if st.missing_outputs:
        it = st.missing_outputs[0]
        what = (f"{m.items} of {m.total_items} work items have no generated output in {runner.run.output_path} "
                f"(first: doc {it.doc.id}, sample {it.sample_index}, think {it.think}); run `omnieval run` with the same "
                f"settings to make them")
    else:
        it = st.missing_scores[0][0]
        what = f"{m.scores} scores are missing (first: doc {it.doc.id}, sample {it.sample_index}, think {it.think})"
    print(f"omnieval: error: task {st.plan.cfg.task}: {what}; {results_path} lists them under `missing`", file=sys.stderr)
    return 2


def cmd_ls(args) -> int:
    if args.what in ("tasks", "groups"):
        from omnieval.tasks import all_tasks, groups

        if args.what == "groups":
            for name, members in sorted(groups(tuple(args.include_path)).items()):
                print(f"{name:28s} {', '.join(members)}")
            return 0
        from omnieval.availability import task_status

        for name, cfg in sorted(all_tasks(tuple(args.include_path)).items()):
            status = task_status(cfg)
            items = "?" if status.items is None else str(status.items)
            fixture = "  [fixture: --fixtures]" if cfg.dataset.fixture else ""
            print(f"{name:24s} {cfg.capability:11s} {items:>6s} items  {cfg.description}{fixture}")
            for line in status.missing:
                print(f"{'':24s} missing {line}")
            for line in status.notes:
                print(f"{'':24s} note: {line}")
        return 0
    from omnieval.registry import METRICS, MODELS, get_model

    registry = MODELS if args.what == "models" else METRICS
    for name, entry in sorted(registry.catalog().items()):
        caps = ",".join(get_model(name).capabilities) if args.what == "models" else entry.capability
        print(f"{name:32s} {caps:28s} {entry.description}")
    return 0


def cmd_leaderboard(args) -> int:
    from omnieval.leaderboard.render import render_boards

    written = render_boards([(Path(p), labels) for p, labels in args.runs], Path(args.out), include_published=args.published,
                            compare=args.compare, baseline=args.baseline)
    for path in written:
        print(path)
    return 0


def cmd_stats(args) -> int:
    from omnieval.fvd_stats import task_stats

    for s in task_stats(args.task, args.real, metric=args.metric, include_path=tuple(args.include_path),
                        batch_size=args.batch_size, out=args.out):
        print(f"{s['task']} {s['metric']}: preset {s['preset']} (protocol {s['protocol_hash']}, real side {s['reference_hash']}), "
              f"reference {s['reference_set']} files {s['files_sha256']}: {s['n']} videos -> {s['path']}")
    return 0


def _split_names(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    return [name for value in values for name in value.split(",") if name]


def _selected_weights(args) -> list[str] | None:
    """Manifest ids picked by --tasks / --ids (None: all of them)."""
    from omnieval.metrics import weights

    tasks, ids = _split_names(args.tasks), _split_names(args.ids)
    if tasks is None and ids is None:
        return None
    selected: list[str] = []
    if tasks is not None:
        from omnieval.tasks import resolve_tasks

        selected += weights.required_for_tasks(resolve_tasks(tasks, tuple(args.include_path)))
    for wid in ids or ():
        selected.append(weights.spec(wid).id)  # unknown id -> one-line error with suggestions
    return list(dict.fromkeys(selected))


def cmd_download(args) -> int:
    from omnieval.metrics.fetch import FetchOptions, fetch_all
    from omnieval.metrics.weights import weights_dir

    ids = _selected_weights(args)
    if ids == []:
        print(f"the selected tasks need no metric weights (weights dir: {weights_dir()})")
        return 0
    results = fetch_all(ids, FetchOptions(allow_unpinned=args.allow_unpinned))
    counts = {state: sum(r.state == state for r in results) for state in ("downloaded", "present", "failed")}
    print(f"\n{counts['downloaded']} downloaded, {counts['present']} already present, {counts['failed']} failed "
          f"(weights dir: {weights_dir()})")
    return 1 if counts["failed"] else 0


def cmd_weights(args) -> int:
    from omnieval.metrics import weights

    if args.download:
        return cmd_download(args)
    selected = _selected_weights(args)
    rows = [st for st in weights.status(verify=args.verify) if selected is None or st.spec.id in selected]
    missing = 0
    for st in rows:
        state = "present" if st.present else "MISSING"
        if st.checksum_ok is False:
            state = "BAD-SHA256"
        missing += not st.present
        print(f"{st.spec.id:36s} {state:10s} {st.path or st.spec.env_var + ' / ' + str(weights.weights_dir() / st.spec.filename)}")
        if not st.present:
            print(f"{'':36s} source: {st.spec.source}")
    print(f"\n{len(rows) - missing} present, {missing} missing (weights dir: {weights.weights_dir()})")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
