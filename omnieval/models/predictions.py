"""``predictions``: score media and answers produced elsewhere, without running a model.

Two ways to say which file answers which request (``--model_args path=DIR[,manifest=FILE][,naming=...]``):

``naming=manifest`` (default): ``DIR/manifest.jsonl`` (or ``manifest=FILE``), one line per output::

    {"task": "vbench_t2v", "doc_id": "42", "sample_index": 0, "think": "off", "file": "videos/42-0.mp4"}
    {"task": "mvbench", "doc_id": "7", "response": "(B) the man is running"}

  ``task``, ``sample_index`` (default 0, a whole number) and ``think`` (default ``off``) are optional; ``file``
  is relative to ``DIR`` (where the default manifest lives) and must stay inside it: absolute paths, ``..`` and
  symlinks resolving outside ``DIR`` are refused, as are two lines for the same (task, doc, sample, think);
  understanding tasks give ``response`` instead of ``file``.

``naming=official``: the output names of the official Omni-Video scripts (``tools/inference/generate.py``)::

    {task}_{W*H}_{solver}_seed{seed}_cfg{g}_steps{s}_frames{f}[_rank{r}]_{prompt[:50]}_{timestamp}.png|.mp4

  A request matches a file when the task kind (t2v/t2i/i2i/v2v), the seed and the first 50 characters of the
  prompt agree (spaces and ``/`` compared as ``_``, since file names cannot hold ``/``).  If several files
  match (several timestamps), the newest is used and the choice is recorded in the sample info.

``naming=vbench``: a VBench-style folder of ``{prompt}-{index}.mp4`` files (what VBench's own sampling
scripts write, and what ``omnieval export --format vbench`` writes).  A request matches the file whose name
gives its prompt (``/`` cannot occur in file names) and its sample index.  Think-on outputs, if any, come from
a second such folder, ``think_path=DIR``.

A request with no matching file is an error naming the doc, sample and think mode, so nothing is silently
scored on a subset.  Whatever the naming, a file that resolves outside ``path=`` (or ``think_path=``) is refused.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from omnieval.capabilities import CAPABILITIES
from omnieval.errors import ConfigError, MediaError
from omnieval.media import Video, read_media
from omnieval.models.base import Generation, Model, Request, quick_fingerprint
from omnieval.registry import register_model

OFFICIAL_NAME = re.compile(
    r"^(?P<task>t2v|t2i|i2i|v2v|i2v)_(?P<size>\d+\*\d+)_(?P<solver>[^_]+)_seed(?P<seed>-?\d+)_cfg(?P<cfg>[\d.]+)"
    r"_steps(?P<steps>\d+)_frames(?P<frames>\d+)(?:_rank(?P<rank>\d+))?_(?P<prompt>.*?)_(?P<timestamp>\d{8}_\d{6}|\d+)$"
)
OFFICIAL_KIND = {"t2v": "t2v", "long_video": "t2v", "t2i": "t2i", "edit_image": "i2i", "edit_video": "v2v"}


def _norm_prompt(text: str) -> str:
    return re.sub(r"[\s/]+", "_", text.strip())[:50].lower()


@register_model("predictions", description="score pre-generated media / answers from a folder + manifest or official Omni-Video file names")
class Predictions(Model):
    capabilities = tuple(CAPABILITIES)

    @classmethod
    def frame_sampling(cls, **kwargs: Any) -> str:
        return "none (answers are read from files)"

    def __init__(self, path: str | None = None, manifest: str | None = None, naming: str = "manifest",
                 think_path: str | None = None, **kwargs: Any):
        if not path:
            raise ConfigError("predictions: give the folder of outputs with --model_args path=DIR")
        super().__init__(path=path, manifest=manifest, naming=naming, think_path=think_path, **kwargs)
        self.root = Path(path)
        if not self.root.is_dir():
            raise ConfigError(f"predictions: folder not found: {self.root}")
        if naming == "manifest":
            self.entries = self._read_manifest(Path(manifest) if manifest else self.root / "manifest.jsonl")
        elif naming == "official":
            self.entries = {}
            self.official = self._scan_official()
        elif naming == "vbench":
            self.entries = {}
            self.vbench = {"off": _scan_vbench(self.root), "on": _scan_vbench(Path(think_path)) if think_path else {}}
        else:
            raise ConfigError(f"predictions: naming must be 'manifest', 'official' or 'vbench', got {naming!r}")
        self.naming = naming

    @classmethod
    def fingerprint_from_args(cls, path: str = "", manifest: str | None = None, **kwargs: Any) -> str:
        root = Path(path)
        files = [p for p in root.rglob("*") if p.is_file()] if root.is_dir() else []
        return quick_fingerprint(files, sample_bytes=1 << 16) if files else "empty"

    # -- lookup -------------------------------------------------------------------------------------
    def _read_manifest(self, path: Path) -> dict[tuple, dict]:
        """Manifest lines by ``(task, doc_id, sample_index, think)``.  Refused, naming the line: a duplicate of an
        earlier line's output, a ``sample_index`` that is not a whole number >= 0, a ``think`` that is not on/off,
        and a ``file`` that is absolute, contains ``..`` or resolves (through symlinks) outside ``path=``."""
        if not path.is_file():
            raise ConfigError(f"predictions: manifest not found: {path}")
        entries: dict[tuple, dict] = {}
        lines: dict[tuple, int] = {}
        try:
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"predictions: {path} is not UTF-8 text") from exc
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            where = f"predictions: {path}:{n}"
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{where}: invalid JSON ({exc.msg})") from exc
            if not isinstance(rec, dict) or "doc_id" not in rec or not (isinstance(rec.get("file"), str) or "response" in rec):
                raise ConfigError(f"{where}: needs doc_id and file (a path) or response")
            key = (rec.get("task"), str(rec["doc_id"]), _sample_index(rec.get("sample_index", 0), where),
                   _think(rec.get("think", "off"), where))
            if key in entries:
                task = f"task {key[0]} " if key[0] is not None else ""
                raise ConfigError(f"{where}: duplicate output for {task}doc {key[1]} sample {key[2]} think {key[3]} "
                                  f"(also at line {lines[key]})")
            if "response" not in rec:
                rec["__path__"] = str(self._inside(self.root / _relative(rec["file"], where), where, rec["file"]))
            entries[key], lines[key] = rec, n
        return entries

    def _inside(self, path: Path, where: str, name: str | Path, roots: tuple[Path, ...] | None = None) -> Path:
        """``path`` if it resolves (symlinks followed) inside ``path=`` (or ``roots``), else a one-line error."""
        real = path.resolve()
        allowed = [r.resolve() for r in (roots or (self.root,))]
        if not any(real == r or r in real.parents for r in allowed):
            raise ConfigError(f"{where}: file {str(name)!r} resolves to {real}, outside the predictions folder "
                             f"{' or '.join(map(str, allowed))}")
        return path

    def _scan_official(self) -> list[dict]:
        found = []
        for p in sorted(self.root.rglob("*")):
            m = OFFICIAL_NAME.match(p.stem) if p.suffix.lower() in (".mp4", ".png", ".jpg") else None
            if m:
                found.append(dict(m.groupdict(), file=str(p)))
        return found

    def _lookup(self, task: str, capability: str, doc_id: str, index: int, think: bool, prompt: str, seed: int) -> Generation:
        mode = "on" if think else "off"
        what = f"task {task} doc {doc_id} sample {index} think {mode}"
        if self.naming == "manifest":
            rec = self.entries.get((task, doc_id, index, mode)) or self.entries.get((None, doc_id, index, mode))
            if rec is None:
                raise MediaError(f"predictions: no output for {what} in the manifest")
            if "response" in rec:
                return Generation(str(rec["response"]), {"source_file": None})
            path = Path(rec["__path__"])  # checked when the manifest was read
            return Generation(read_media(path), {"source_file": str(path)})
        if self.naming == "vbench":
            path = self.vbench[mode].get((prompt, index))
            if path is None:
                where = "think_path" if think else "path"
                raise MediaError(f"predictions: no {prompt[:60]!r}-{index}.mp4 in the VBench-style {where} folder for {what}")
            roots = (self.root, Path(self.args["think_path"])) if self.args.get("think_path") else None
            self._inside(path, f"predictions: {what}", path.name, roots)
            return Generation(read_media(path), {"source_file": str(path)})
        kind, want = OFFICIAL_KIND.get(capability), _norm_prompt(prompt)
        matches = [e for e in self.official if e["task"] == kind and int(e["seed"]) == seed and _norm_prompt(e["prompt"]) == want]
        if not matches:
            raise MediaError(f"predictions: no official-named {kind} file with seed {seed} and prompt {prompt[:50]!r} for {what}")
        best = max(matches, key=lambda e: e["timestamp"])
        self._inside(Path(best["file"]), f"predictions: {what}", Path(best["file"]).name)
        return Generation(read_media(best["file"]), {"source_file": best["file"], "candidates": len(matches)})

    def _answer(self, requests: list[Request]) -> list[Generation]:
        out = []
        for r in requests:
            g = self._lookup(r.task, r.capability, str(r.doc_id), int(r.sample_index), r.think, r.prompt, int(r.seed))
            kind = CAPABILITIES[r.capability].output
            if kind != "text" and isinstance(g.output, Video) != (kind == "video"):
                raise MediaError(f"predictions: {g.info.get('source_file')} is not a{'' if kind == 'video' else 'n'} {kind}")
            out.append(g)
        return out

    # every capability is a lookup
    understand = generate_image = generate_video = edit_image = edit_video = _answer


def _scan_vbench(folder: Path) -> dict[tuple[str, int], Path]:
    from omnieval.naming import parse_filename

    if not folder.is_dir():
        raise ConfigError(f"predictions: folder not found: {folder}")
    found = {}
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() in (".mp4", ".avi", ".mov", ".mkv", ".webm", ".gif", ".png", ".jpg"):
            prompt, index = parse_filename(p.name)
            if index is not None:
                found[(prompt, index)] = p
    return found


def _think(value, where: str) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if value in ("on", "off"):
        return value
    raise ConfigError(f"{where}: think must be on/off (or true/false), got {value!r}")


def _sample_index(value, where: str) -> int:
    """A whole number >= 0: an int, an integral float (``2.0``) or a string of digits (``"2"``); never a bool."""
    if isinstance(value, bool):
        index = None
    elif isinstance(value, int):
        index = value
    elif isinstance(value, float) and value.is_integer():
        index = int(value)
    elif isinstance(value, str) and value.strip().isdigit():
        index = int(value)
    else:
        index = None
    if index is None or index < 0:
        raise ConfigError(f"{where}: sample_index must be a whole number >= 0, got {value!r}")
    return index


def _relative(name: str, where: str) -> Path:
    """A manifest ``file``: relative to the predictions folder, without ``..``."""
    path = Path(name)
    if path.is_absolute() or ".." in path.parts or not name.strip():
        raise ConfigError(f"{where}: file {name!r} must be a relative path inside the predictions folder (path=), "
                          f"without '..'")
    return path
