"""A small HTTP server on 127.0.0.1 (ephemeral port, daemon thread, stopped by the fixture) for download tests.

It serves in-memory files with optional misbehaviour per path, and a minimal Hugging Face Hub API (enough for
``huggingface_hub`` 2.x ``snapshot_download`` / ``hf_hub_download`` / ``repo_info`` / ``list_repo_files``):

* ``files[path] = bytes``; ``Range: bytes=N-`` is honoured (206) unless the path is in ``ignore_range``;
* a path in ``cut`` sends its full ``Content-Length`` but only half the body on its first GET, then closes;
* ``hub_repos[(repo_type, repo_id)] = (commit, {filename: bytes})`` answers ``/api/{type}s/{repo}/revision/{rev}``,
  ``/api/{type}s/{repo}/tree/{commit}`` and ``[/{type}s]/{repo}/resolve/{commit}/{file}``;
* ``requests``: every request as ``(method, path, Range header)``.
"""
from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse


class FakeServer:
    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.cut: set[str] = set()
        self.ignore_range: set[str] = set()
        self.hub_repos: dict[tuple[str, str], tuple[str, dict[str, bytes]]] = {}
        self.requests: list[tuple[str, str, str | None]] = []
        self._cut_done: set[str] = set()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                server._handle(self, head=False)

            def do_HEAD(self):
                server._handle(self, head=True)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> FakeServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def gets(self, path: str) -> list[str | None]:
        """The Range headers of the GETs of ``path`` (None: no Range)."""
        return [rng for method, p, rng in self.requests if method == "GET" and urlparse(p).path == path]

    # -- request handling ---------------------------------------------------------------------------
    @staticmethod
    def _send(h, code: int, body: bytes = b"", headers: dict | None = None, head: bool = False,
              length: int | None = None) -> None:
        h.send_response(code)
        for key, value in (headers or {}).items():
            h.send_header(key, value)
        h.send_header("Content-Length", str(len(body) if length is None else length))
        h.end_headers()
        if not head:
            h.wfile.write(body)

    def _handle(self, h, head: bool) -> None:
        rng = h.headers.get("Range")
        with self._lock:
            self.requests.append((h.command, h.path, rng))
        path = unquote(urlparse(h.path).path)
        if self._hub(h, path, head):
            return
        if path not in self.files:
            return self._send(h, 404, b"not found", head=head)
        body = self.files[path]
        if path in self.cut and not head:
            with self._lock:
                first = path not in self._cut_done
                self._cut_done.add(path)
            if first:  # promise everything, deliver half, hang up
                self._send(h, 200, body[: len(body) // 2], head=head, length=len(body))
                h.wfile.flush()
                h.close_connection = True
                return
        if rng and path not in self.ignore_range and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[len("bytes="):-1])
            if start >= len(body):
                return self._send(h, 416, b"", {"Content-Range": f"bytes */{len(body)}"}, head=head)
            return self._send(h, 206, body[start:], {"Content-Range": f"bytes {start}-{len(body) - 1}/{len(body)}"},
                              head=head)
        self._send(h, 200, body, head=head)

    def _hub(self, h, path: str, head: bool) -> bool:
        for (repo_type, repo_id), (commit, files) in self.hub_repos.items():
            api = f"/api/{repo_type}s/{repo_id}/"
            if path.startswith(api + "revision/"):
                info = {"id": repo_id, "sha": commit, "siblings": [{"rfilename": f} for f in files]}
                self._send(h, 200, json.dumps(info).encode(), {"Content-Type": "application/json"}, head=head)
                return True
            if path.startswith(api + "tree/"):
                tree = [{"type": "file", "path": f, "size": len(b), "oid": hashlib.sha1(b).hexdigest()}
                        for f, b in files.items()]
                self._send(h, 200, json.dumps(tree).encode(), {"Content-Type": "application/json"}, head=head)
                return True
            prefix = ("" if repo_type == "model" else f"/{repo_type}s") + f"/{repo_id}/resolve/{commit}/"
            if path.startswith(prefix):
                name = path[len(prefix):]
                if name not in files:
                    self._send(h, 404, b"", {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit}, head=head)
                else:
                    body = files[name]
                    self._send(h, 200, body, {"X-Repo-Commit": commit, "ETag": f'"{hashlib.sha1(body).hexdigest()}"'},
                               head=head)
                return True
        return False
