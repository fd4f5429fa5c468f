"""``omnieval weights --download``: resumable, verified downloads from a local HTTP server (127.0.0.1), safe
archive unpacking, hub entries through the real ``huggingface_hub`` pointed at the same server (HF_ENDPOINT),
and the task -> weights selection."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

import pytest
from http_fixtures import FakeServer

from omnieval.cli import main
from omnieval.download import DownloadError, download, extract
from omnieval.metrics import fetch as F
from omnieval.metrics import weights as W

COMMIT = "c0ffee" + "0" * 34


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def payload(n: int, seed: int = 0) -> bytes:
    return bytes((i * 31 + seed) % 251 for i in range(n))


@pytest.fixture
def server():
    srv = FakeServer().start()
    yield srv
    srv.stop()


@pytest.fixture
def wdir(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "weights"
    monkeypatch.setenv("OMNIEVAL_WEIGHTS_DIR", str(d))
    return d


@pytest.fixture
def hub(server, monkeypatch):
    """huggingface_hub talks to the local server (HF_ENDPOINT, read by omnieval at call time), online."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    return server


def use_manifest(monkeypatch, *specs: W.WeightSpec) -> None:
    monkeypatch.setattr(W, "_MANIFEST", {s.id: s for s in specs})


def entry(wid: str, **kw) -> W.WeightSpec:
    kw.setdefault("filename", f"{wid}.bin")
    return W.WeightSpec(id=wid, source=f"https://example.org/{wid}", **kw)


def quiet(**kw) -> F.FetchOptions:
    lines: list[str] = []
    opts = F.FetchOptions(show_progress=False, backoff=0.0, log=lines.append, error=lines.append, **kw)
    opts.lines = lines
    return opts


# ---------------------------------------------------------------------------------------------
# Plain URLs
# ---------------------------------------------------------------------------------------------
def test_download_verifies_sha256(server, wdir, monkeypatch):
    data = payload(300_000)
    server.files["/w/a.pth"] = data
    use_manifest(monkeypatch, entry("a", url=server.url + "/w/a.pth", sha256=sha(data)))
    [res] = F.fetch_all(None, quiet())
    assert res.state == "downloaded" and (wdir / "a.bin").read_bytes() == data
    assert not list(wdir.glob("*.part"))
    assert W.resolve("a") == wdir / "a.bin"
    [again] = F.fetch_all(None, quiet())  # present -> not fetched again
    assert again.state == "present" and len(server.gets("/w/a.pth")) == 1


def test_unknown_sha256_is_reported_not_invented(server, wdir, monkeypatch):
    data = payload(1000)
    server.files["/w/u.pth"] = data
    use_manifest(monkeypatch, entry("u", url=server.url + "/w/u.pth"))
    opts = quiet()
    F.fetch_all(None, opts)
    assert any(sha(data) in line and "not in the manifest" in line for line in opts.lines)


def test_sha256_mismatch_deletes_and_says_so_in_one_line(server, wdir, monkeypatch, capsys):
    server.files["/w/bad.pth"] = payload(5000)
    use_manifest(monkeypatch, entry("bad", url=server.url + "/w/bad.pth", sha256="0" * 64))
    assert main(["weights", "--download"]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]  # (stderr also has progress)
    assert len(err) == 1 and "sha256 mismatch" in err[0] and "deleted" in err[0] and "0" * 64 in err[0]
    assert not any(p.is_file() for p in wdir.rglob("*"))  # neither the file nor a .part


def test_resume_after_connection_cut_half_way(server, wdir, monkeypatch):
    data = payload(400_000, seed=3)
    server.files["/w/big.pth"] = data
    server.cut.add("/w/big.pth")
    use_manifest(monkeypatch, entry("big", url=server.url + "/w/big.pth", sha256=sha(data)))
    opts = quiet()
    [res] = F.fetch_all(None, opts)
    assert res.state == "downloaded" and (wdir / "big.bin").read_bytes() == data
    assert server.gets("/w/big.pth") == [None, f"bytes={len(data) // 2}-"]  # second request continues
    assert any("will resume" in line for line in opts.lines)


def test_resume_a_part_left_by_an_earlier_run(server, tmp_path):
    data = payload(10_000)
    server.files["/f"] = data
    dest = tmp_path / "f.bin"
    (tmp_path / "f.bin.part").write_bytes(data[:4000])
    download(server.url + "/f", dest, sha256=sha(data), log=lambda _: None, show_progress=False, backoff=0)
    assert dest.read_bytes() == data and server.gets("/f") == ["bytes=4000-"]


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    data = payload(10_000, seed=7)
    server.files["/f"] = data
    server.ignore_range.add("/f")
    dest = tmp_path / "f.bin"
    (tmp_path / "f.bin.part").write_bytes(b"x" * 4000)  # a stale part: must not be kept
    lines: list[str] = []
    download(server.url + "/f", dest, sha256=sha(data), log=lines.append, show_progress=False, backoff=0)
    assert dest.read_bytes() == data and server.gets("/f") == ["bytes=4000-"]
    assert any("ignored the Range" in line for line in lines)


def test_cut_connection_and_range_ignored_still_completes(server, tmp_path):
    data = payload(50_000, seed=9)
    server.files["/f"] = data
    server.cut.add("/f")
    server.ignore_range.add("/f")
    download(server.url + "/f", tmp_path / "f.bin", sha256=sha(data), log=lambda _: None, show_progress=False,
             backoff=0)
    assert (tmp_path / "f.bin").read_bytes() == data and len(server.gets("/f")) == 2


def test_unreachable_server_gives_up_in_one_line(tmp_path):
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DownloadError, match=r"f\.bin: download from .* did not complete after 2 attempts \(last: .*\)$"):
        download(f"http://127.0.0.1:{port}/f", tmp_path / "f.bin", log=lambda _: None, attempts=2, backoff=0,
                 show_progress=False)
    assert not list(tmp_path.iterdir())


def test_http_error_is_one_line(server, wdir, monkeypatch):
    use_manifest(monkeypatch, entry("gone", url=server.url + "/nothing"))
    with pytest.raises(DownloadError, match=r"gone: HTTP 404 .* from http://127\.0\.0\.1"):
        F.fetch(W.spec("gone"), quiet())


def test_entry_without_source_is_not_downloadable(wdir, monkeypatch):
    use_manifest(monkeypatch, entry("byhand"))
    opts = quiet()
    [res] = F.fetch_all(None, opts)
    assert res.state == "failed" and "get it by hand from https://example.org/byhand" in res.note


# ---------------------------------------------------------------------------------------------
# Archives
# ---------------------------------------------------------------------------------------------
def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def tar_bytes(add) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        add(tf)
    return buf.getvalue()


def test_archive_member_becomes_the_weight(server, wdir, monkeypatch):
    inner = payload(2000)
    archive = zip_bytes({"models/raft-things.pth": inner, "models/other.pth": b"x"})
    server.files["/models.zip"] = archive
    use_manifest(monkeypatch, entry("raft", filename="raft-things.pth", url=server.url + "/models.zip",
                                    sha256=sha(archive), archive="zip", archive_member="models/raft-things.pth"))
    [res] = F.fetch_all(None, quiet())
    assert res.state == "downloaded" and (wdir / "raft-things.pth").read_bytes() == inner
    assert not (wdir / ".downloads").exists() or not any((wdir / ".downloads").iterdir())
    assert W.status(verify=True)[0].checksum_ok is None  # sha256 is the archive's, not the member's


def test_archive_with_parent_member_is_refused(server, wdir, monkeypatch, tmp_path):
    archive = zip_bytes({"models/ok.pth": b"ok", "../evil.txt": b"pwned"})
    server.files["/evil.zip"] = archive
    use_manifest(monkeypatch, entry("evil", url=server.url + "/evil.zip", archive="zip", archive_member="models/ok.pth"))
    with pytest.raises(DownloadError, match=r"refusing member '\.\./evil\.txt'"):
        F.fetch(W.spec("evil"), quiet())
    assert not (tmp_path / "evil.txt").exists() and not (wdir / "evil.txt").exists()
    assert not any(p.is_file() for p in wdir.rglob("*"))  # archive and partial unpack removed


def test_tar_refuses_absolute_paths_and_links_out(tmp_path):
    def absolute(tf):
        info = tarfile.TarInfo("/etc/evil")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))

    def link_out(tf):
        info = tarfile.TarInfo("inside/link")
        info.type, info.linkname = tarfile.SYMTYPE, "../../outside"
        tf.addfile(info)

    def abs_link(tf):
        info = tarfile.TarInfo("link")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(info)

    for name, add, message in [("abs", absolute, "absolute member path"), ("out", link_out, "points outside"),
                               ("abslink", abs_link, "absolute path")]:
        path = tmp_path / f"{name}.tar.gz"
        path.write_bytes(tar_bytes(add))
        with pytest.raises(DownloadError, match=message):
            extract(path, tmp_path / name)
        assert not any((tmp_path / name).iterdir())  # nothing written


def test_zip_refuses_symlink_members(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    path = tmp_path / "l.zip"
    path.write_bytes(buf.getvalue())
    with pytest.raises(DownloadError, match="symbolic link member 'link'"):
        extract(path, tmp_path / "out")


def test_tar_inner_link_and_whole_archive_as_directory(server, wdir, monkeypatch):
    def add(tf):
        info = tarfile.TarInfo("pkg/a.txt")
        info.size = 2
        tf.addfile(info, io.BytesIO(b"hi"))
        link = tarfile.TarInfo("pkg/b.txt")
        link.type, link.linkname = tarfile.SYMTYPE, "a.txt"
        tf.addfile(link)

    server.files["/pkg.tar.gz"] = tar_bytes(add)
    use_manifest(monkeypatch, entry("pkg", filename="pkgdir", url=server.url + "/pkg.tar.gz", archive="tar.gz"))
    F.fetch(W.spec("pkg"), quiet())
    assert (wdir / "pkgdir" / "pkg" / "a.txt").read_text() == "hi"
    assert (wdir / "pkgdir" / "pkg" / "b.txt").read_text() == "hi"


# ---------------------------------------------------------------------------------------------
# Hugging Face Hub (real huggingface_hub against the local server)
# ---------------------------------------------------------------------------------------------
def test_hub_snapshot_at_pinned_revision(hub, wdir, monkeypatch):
    files = {"config.json": b"{}", "model.safetensors": payload(3000), "pytorch_model.bin": payload(3000, 1),
             "tf_model.h5": b"unwanted"}
    hub.hub_repos[("model", "org/clip")] = (COMMIT, files)
    use_manifest(monkeypatch, entry("clip", kind="hf", filename="org/clip", hf_repo="org/clip", hf_revision=COMMIT,
                                    hf_files=("config.json", ("model.safetensors", "pytorch_model.bin"))))
    [res] = F.fetch_all(None, quiet())
    got = sorted(p.name for p in (wdir / "org" / "clip").iterdir())
    assert res.state == "downloaded" and got == ["config.json", "model.safetensors"]  # first choice, no extras
    assert (wdir / "org" / "clip" / "model.safetensors").read_bytes() == files["model.safetensors"]
    assert not (wdir / "org" / "clip.part").exists()
    assert all(COMMIT in p for _, p, _ in hub.requests if "/resolve/" in p)  # every file at the pinned commit


def test_hub_single_file_checked_and_renamed(hub, wdir, monkeypatch):
    data = payload(5000, 4)
    hub.hub_repos[("space", "someone/app")] = (COMMIT, {"ckpt/t2t.pth": data})
    use_manifest(monkeypatch,
                 entry("t2t", filename="tag2text.pth", hf_repo="someone/app", hf_repo_type="space", hf_revision=COMMIT,
                       hf_filename="ckpt/t2t.pth", sha256=sha(data)),
                 entry("t2t_bad", filename="bad.pth", hf_repo="someone/app", hf_repo_type="space", hf_revision=COMMIT,
                       hf_filename="ckpt/t2t.pth", sha256="1" * 64))
    results = {r.id: r for r in F.fetch_all(None, quiet())}
    assert results["t2t"].state == "downloaded" and (wdir / "tag2text.pth").read_bytes() == data
    assert results["t2t_bad"].state == "failed" and "sha256 mismatch" in results["t2t_bad"].note
    assert not (wdir / "bad.pth").exists() and not (wdir / "bad.pth.part").exists()


def test_unpinned_hub_entry_is_refused_unless_allowed(hub, wdir, monkeypatch):
    hub.hub_repos[("model", "org/amt")] = (COMMIT, {"amt-s.pth": b"amt"})
    use_manifest(monkeypatch, entry("amt", filename="amt-s.pth", hf_repo="org/amt", hf_filename="amt-s.pth"))
    with pytest.raises(DownloadError, match="no pinned hf_revision .* --allow-unpinned") as info:
        F.fetch(W.spec("amt"), quiet())
    assert "\n" not in str(info.value) and not hub.requests
    opts = quiet(allow_unpinned=True)
    F.fetch(W.spec("amt"), opts)
    assert (wdir / "amt-s.pth").read_bytes() == b"amt"
    assert any(f"hf_revision: {COMMIT}" in line for line in opts.lines)  # the commit to pin is printed


def test_hub_offline_is_one_line(hub, wdir, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    use_manifest(monkeypatch, entry("x", hf_repo="org/x", hf_revision=COMMIT, hf_filename="x.pth"))
    with pytest.raises(DownloadError, match="HF_HUB_OFFLINE is set"):
        F.fetch(W.spec("x"), quiet())


def test_hub_missing_file_is_one_line(hub, wdir, monkeypatch):
    hub.hub_repos[("model", "org/y")] = (COMMIT, {"a.pth": b"a"})
    use_manifest(monkeypatch, entry("y", hf_repo="org/y", hf_revision=COMMIT, hf_filename="missing.pth"))
    with pytest.raises(DownloadError, match=r"y: cannot fetch org/y@c0ffee000000 .*") as info:
        F.fetch(W.spec("y"), quiet())
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------------------------
# Which weights: tasks -> metrics -> required_weights(), and the CLI
# ---------------------------------------------------------------------------------------------
def fake_real_manifest(server) -> dict[str, W.WeightSpec]:
    """Every real manifest id, served by the local server as a small file (url + sha256)."""
    out = {}
    for s in W.manifest().values():
        data = s.id.encode() * 10
        server.files[f"/m/{s.id}"] = data
        out[s.id] = dataclasses.replace(s, kind="file", filename=f"{s.id}.bin", url=f"{server.url}/m/{s.id}",
                                        sha256=sha(data), archive=None, archive_member=None, hf_repo=None,
                                        hf_revision=None, hf_filename=None, hf_files=())
    return out


def write_task(folder: Path) -> Path:
    folder.mkdir()
    (folder / "dl.yaml").write_text(
        "task: dl_fid\ncapability: t2i\ndescription: needs the FID network\ndataset: {path: prompts.jsonl}\n"
        "generation: {height: 32, width: 32, seed: 1}\nmetrics:\n  - name: fid\n  - name: clip_score\n"
        "    options: {backbone: clip-tiny-random}\n")
    return folder


def test_required_for_tasks_builds_the_metrics(tmp_path):
    from omnieval.tasks import resolve_tasks

    tasks = write_task(tmp_path / "tasks")
    assert W.required_for_tasks(resolve_tasks(["smoke"])) == []
    assert W.required_for_tasks(resolve_tasks(["dl_fid", "smoke"], (str(tasks),))) == ["inception-v3-compat"]
    vbench = W.required_for_tasks(resolve_tasks(["vbench"]))  # constructors that resolve early do not stop it
    assert {"vbench_raft_things", "vbench_grit", "bert-base-uncased", "vbench_musiq_spaq"} <= set(vbench)
    assert len(vbench) == len(set(vbench))


def test_required_for_tasks_uses_the_callers_builder(tmp_path):
    """The runner passes its own cached metric factory; a constructor that resolves early does not raise."""
    from omnieval.registry import get_metric
    from omnieval.tasks import resolve_tasks

    built = []

    def build(metric_spec):
        built.append(metric_spec.name)
        return get_metric(metric_spec.name)(**metric_spec.options)

    ids = W.required_for_tasks(resolve_tasks(["vbench"]), build=build)
    assert "vbench_imaging_quality" in built and "vbench_musiq_spaq" in ids


def test_cli_tasks_download_only_what_they_need(server, wdir, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(W, "_MANIFEST", fake_real_manifest(server))
    assert main(["weights", "--download", "--tasks", "smoke"]) == 0
    assert "need no metric weights" in capsys.readouterr().out and not server.requests
    tasks = write_task(tmp_path / "tasks")
    assert main(["weights", "--download", "--tasks", "smoke,dl_fid", "--include_path", str(tasks)]) == 0
    out = capsys.readouterr().out
    assert [p for _, p, _ in server.requests] == ["/m/inception-v3-compat"]
    assert (wdir / "inception-v3-compat.bin").is_file() and "1 downloaded, 0 already present, 0 failed" in out
    assert main(["weights", "--tasks", "dl_fid", "--include_path", str(tasks)]) == 0  # listing, filtered
    listing = capsys.readouterr().out
    assert "inception-v3-compat" in listing and "present" in listing and "vbench_grit" not in listing


def test_cli_download_by_ids_and_unknown_id(server, wdir, monkeypatch, capsys):
    monkeypatch.setattr(W, "_MANIFEST", fake_real_manifest(server))
    assert main(["weights", "--download", "--ids", "dino-vitb16", "vbench_grit"]) == 0
    assert (wdir / "dino-vitb16.bin").is_file() and (wdir / "vbench_grit.bin").is_file()
    assert main(["weights", "--download", "--ids", "vbench_grid"]) == 2
    assert "unknown weight 'vbench_grid'; did you mean vbench_grit" in capsys.readouterr().err.splitlines()[-1]


def test_real_manifest_sources():
    """Every real entry is downloadable or says why not; hub entries are pinned or explicitly null."""
    specs = W.manifest()
    not_downloadable = sorted(s.id for s in specs.values() if not s.downloadable)
    assert not_downloadable == ["geneval_mmdet_mask2former_swin_s_config"]
    for s in specs.values():
        if s.hf_repo and s.hf_revision:
            assert F.COMMIT.fullmatch(s.hf_revision), s.id
        if s.sha256:
            assert len(s.sha256) == 64 and int(s.sha256, 16) >= 0, s.id
    assert specs["inception-v3-compat"].sha256.startswith("6726825d")  # torch.hub-style prefix in the file name
    assert specs["vbench_musiq_spaq"].sha256.startswith("358bb6af")


def test_manifest_schema_errors_name_the_entry():
    with pytest.raises(Exception, match="weight entry 'z': archive needs a url"):
        entry("z", archive="zip")
    with pytest.raises(Exception, match="weight entry 'z': a kind: file hub entry needs hf_filename"):
        entry("z", hf_repo="a/b")
