"""Core pieces editing benchmarks need: in-record images (stable hashes), $VAR dataset paths, the loader table,
frame folders, and chained generation (multi-turn editing: turn k edits the model's own turn k-1 output)."""
from __future__ import annotations

import io
import json
from pathlib import Path

import harness_fixtures as hf
import numpy as np
import pytest
from PIL import Image

from omnieval.cli import main
from omnieval.config import load_task_file
from omnieval.errors import ConfigError, UnknownNameError
from omnieval.media import read_image, read_media, write_image
from omnieval.tasks import load_docs


def png_bytes(value: int, size=(8, 8)) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((*size, 3), value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def write_parquet_dataset(folder: Path, rows: dict, image_columns=("image",), split="test") -> Path:
    """A local ``datasets`` folder (parquet under data/) read by the same ``load_dataset`` call as a hub id."""
    import datasets

    features = {k: datasets.Image() if k in image_columns else datasets.Value("int64" if isinstance(v[0], int) else
                                                                                 "bool" if isinstance(v[0], bool) else "string")
                for k, v in rows.items()}
    ds = datasets.Dataset.from_dict(rows, features=datasets.Features(features))
    (folder / "data").mkdir(parents=True, exist_ok=True)
    ds.to_parquet(str(folder / "data" / f"{split}-00000-of-00001.parquet"))
    return folder


def _task(tmp_path, text: str):
    path = tmp_path / "t.yaml"
    path.write_text(text)
    return load_task_file(path)[0]


def test_in_record_images_hash_by_bytes_and_become_files(tmp_path, monkeypatch):
    write_parquet_dataset(tmp_path / "ds", {"idx": [0, 1], "image": [{"bytes": png_bytes(10), "path": None},
                                                                            {"bytes": png_bytes(200), "path": None}],
                                                   "instruction": ["make it red", "make it blue"]})
    cfg = _task(tmp_path, "task: t\ncapability: edit_image\ndataset: {loader: hub, path: ds}\n"
                          "fields: {id: idx, prompt: instruction, media: image}\n")
    first, second = load_docs(cfg), load_docs(cfg)
    assert [d.content_hash for d in first] == [d.content_hash for d in second]
    path = Path(first[0].fields["image"])
    assert path.is_file() and path.read_bytes() == png_bytes(10) and path.suffix == ".png"
    assert read_image(path)[0, 0, 0] == 10
    # a different image gives a different hash; the cache location does not enter the hash
    monkeypatch.setenv("OMNIEVAL_CACHE_DIR", str(tmp_path / "elsewhere"))
    moved = load_docs(cfg)
    assert [d.content_hash for d in moved] == [d.content_hash for d in first]
    assert first[0].content_hash != first[1].content_hash
    assert str(tmp_path / "elsewhere") in moved[0].fields["image"]


def test_decoded_pil_values_hash_by_pixels(tmp_path):
    from omnieval.loaders.inline import materialise_row

    a = Image.fromarray(np.full((4, 4, 3), 7, np.uint8))
    b = Image.fromarray(np.full((4, 4, 3), 7, np.uint8))
    assert str(a) != str(b)  # memory addresses differ ...
    (fa, ha), (fb, hb) = materialise_row({"im": a}, "x"), materialise_row({"im": b}, "x")
    assert ha == hb and fa["im"] == fb["im"]  # ... the hash and the cached file do not
    assert read_image(fa["im"]).tolist() == np.asarray(a).tolist()


def test_dataset_path_env_expansion_and_one_line_errors(tmp_path, monkeypatch):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "p.jsonl").write_text('{"id": "a", "prompt": "x"}\n')
    monkeypatch.setenv("MY_DATA", str(tmp_path / "d"))
    cfg = _task(tmp_path, "task: t\ncapability: t2i\ndataset: {path: \"${MY_DATA}/p.jsonl\"}\n")
    assert [d.id for d in load_docs(cfg)] == ["a"]
    monkeypatch.delenv("MY_DATA")
    with pytest.raises(ConfigError, match=r"needs \$MY_DATA, which is not set") as err:
        load_docs(cfg)
    assert "\n" not in str(err.value)
    mb = _task(tmp_path, "task: mb\ncapability: edit_image\ndataset: {loader: magicbrush, path: $NO_SUCH_DIR_X}\n")
    with pytest.raises(ConfigError, match=r"\$NO_SUCH_DIR_X.*unzip -P MagicBrush") as err:
        load_docs(mb)
    assert "\n" not in str(err.value)


def test_loader_table_errors(tmp_path):
    bad = _task(tmp_path, "task: t\ncapability: t2i\ndataset: {loader: magicbrsh, path: x}\n")
    with pytest.raises(UnknownNameError, match="magicbrush"):
        load_docs(bad)
    typo = _task(tmp_path, "task: t\ncapability: edit_image\ndataset: {loader: magicbrush, path: x, options: {setng: 1}}\n")
    with pytest.raises(ConfigError, match="setng.*setting"):
        load_docs(typo)
    missing = _task(tmp_path, f"task: t\ncapability: edit_image\ndataset: {{loader: five, path: {tmp_path / 'none'}}}\n")
    with pytest.raises(ConfigError, match="FiVE-Fine-Grained-Video-Editing-Benchmark"):
        load_docs(missing)


def test_frame_folder_reads_as_video(tmp_path):
    folder = tmp_path / "clip"
    folder.mkdir()
    for i in (2, 0, 1):
        write_image(np.full((6, 4, 3), 10 * i, np.uint8), folder / f"{i:05d}.png")
    (folder / "notes.txt").write_text("x")
    video = read_media(folder)
    assert video.frames.shape == (3, 6, 4, 3) and [int(f[0, 0, 0]) for f in video.frames] == [0, 10, 20]


# ---------------------------------------------------------------------------------------------
# Chained generation
# ---------------------------------------------------------------------------------------------
CHAIN_TASK = ("task: chain\ncapability: edit_image\ndataset: {path: turns.jsonl}\n"
              "fields: {id: id, prompt: instruction, media: image, chain: prev}\n"
              "generation: {seed: 3}\nthink: [off, on]\nmetrics: [test_brightness]\n")


def _chain_fixture(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_image(np.full((8, 8, 3), 30, np.uint8), folder / "s.png")
    write_image(np.full((8, 8, 3), 90, np.uint8), folder / "u.png")
    rows = [{"id": "a1", "image": "s.png", "instruction": "one", "prev": None},
            {"id": "a2", "image": "s.png", "instruction": "two", "prev": "a1"},
            {"id": "a3", "image": "s.png", "instruction": "three", "prev": "a2"},
            {"id": "b1", "image": "u.png", "instruction": "single", "prev": None}]
    (folder / "turns.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "chain.yaml").write_text(CHAIN_TASK)
    return folder


def _artifacts(out: Path) -> dict[tuple[str, str], np.ndarray]:
    recs = [json.loads(line) for line in (out / "samples" / "chain.jsonl").read_text().splitlines()]
    return {(r["doc_id"], r["think"]): read_image(out / r["artifact"]) for r in recs}


def test_chained_items_edit_the_previous_output(tmp_path):
    tasks = _chain_fixture(tmp_path / "tasks")
    out = tmp_path / "out"
    assert main(["run", "--model", "fake-test", "--tasks", "chain", "--think", "both", "--output_path", str(out),
                 "--include_path", str(tasks)]) == 0
    arts = _artifacts(out)
    # the fake model inverts its input: turn 1 = 255-30, turn 2 = inverse of turn 1 = 30, turn 3 = 225
    for think in ("off", "on"):
        assert [int(arts[(d, think)][0, 0, 0]) for d in ("a1", "a2", "a3", "b1")] == [225, 30, 225, 165]


def test_chain_resume_and_limit(tmp_path, monkeypatch):
    """A run stopped after turn 1 resumes with turn 2 from the stored turn-1 output; --limit keeps predecessors."""
    from omnieval.models.base import ModelIdentity
    from omnieval.planning import plan_items

    tasks = _chain_fixture(tmp_path / "tasks")
    out = tmp_path / "out"
    calls = tmp_path / "calls"
    monkeypatch.setenv(hf.CALLS_FILE_ENV, str(calls))
    # --offset 3 --limit 1 selects b1 only; --offset 2 --limit 1 selects a3 and brings a1, a2 along
    assert main(["run", "--model", "fake-test", "--tasks", "chain", "--output_path", str(out), "--include_path", str(tasks),
                 "--offset", "2", "--limit", "1", "--predict_only"]) == 0
    assert [line for line in calls.read_text().split() if line] == ["1", "1", "1"]  # three waves, one item each
    arts = _artifacts(out)
    assert sorted(d for d, _ in arts) == ["a1", "a2", "a3"]
    # drop turn 3's record: the next run regenerates exactly that item, from the stored turn-2 output
    lines = (out / "samples" / "chain.jsonl").read_text().splitlines()
    kept = [line for line in lines if json.loads(line)["doc_id"] != "a3"]
    (out / "samples" / "chain.jsonl").write_text("\n".join(kept) + "\n")
    calls.write_text("")
    assert main(["run", "--model", "fake-test", "--tasks", "chain", "--output_path", str(out), "--include_path", str(tasks)]) == 0
    assert [line for line in calls.read_text().split() if line and not line.startswith("score")][:2] == ["1", "1"]  # b1, a3
    arts = _artifacts(out)
    assert int(arts[("a3", "off")][0, 0, 0]) == 225 and int(arts[("b1", "off")][0, 0, 0]) == 165

    # keys: a later turn's key depends on its predecessor's key; sharding never splits a chain
    cfg = load_task_file(tasks / "chain.yaml")[0]
    docs = load_docs(cfg)
    ident = ModelIdentity("fake-test", {}, "x")
    items = plan_items(cfg, docs, ident, ["off", "on"], None)
    by = {(it.doc.id, it.think): it for it in items}
    assert by[("a2", "on")].after == by[("a1", "on")].key and by[("a1", "off")].after is None
    from omnieval import shards
    from omnieval.capabilities import capability
    from omnieval.planning import TaskPlan

    plan = TaskPlan(cfg, capability("edit_image"), tuple(docs), tuple(items), ())
    blocks = shards.blocks(plan, 1, together=plan.together())
    for block in blocks:  # a block holds whole chains, generated in waves of increasing turn
        keys = {it.key for it in block}
        assert all(it.after is None or it.after in keys for it in block)
        waves = shards.waves(block)
        assert sorted(it.key for wave in waves for it in wave) == sorted(keys)
        for k, wave in enumerate(waves):
            assert all((it.after is None) == (k == 0) for it in wave)
            assert all(it.after in {w.key for w in waves[k - 1]} for it in wave if k)
    per_rank = [shards.shard(blocks, r, 3) for r in range(3)]
    assert sorted(it.key for s in per_rank for b in s for it in b) == sorted(it.key for it in items)
