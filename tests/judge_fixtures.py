"""A fake OpenAI-compatible judge on 127.0.0.1 for tests (also usable by other test modules).

``FakeJudge(respond)`` answers every POST with ``respond(payload, index)``, which returns one of

* ``ok(content)`` -- a chat completion whose message content is ``content``;
* ``(status, body, headers)`` -- ``body`` a dict (sent as JSON) or bytes;
* ``Drip(body, interval_s, headers_too)`` -- the reply sent one byte every ``interval_s`` seconds (from the status
  line when ``headers_too``, else after complete headers), to test the client's wall-clock deadline.

It records every payload and its headers, tracks the highest number of requests in flight, listens on an
ephemeral port in a daemon thread, and stops itself after ``lifetime_s`` even if a test forgets to.
"""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


def ok(content: str, model: str = "fake-judge"):
    return 200, {"model": model, "choices": [{"message": {"role": "assistant", "content": content}}]}, {}


@dataclass(frozen=True)
class Drip:
    body: bytes = b'{"model": "m", "choices": [{"message": {"content": "{\'pred\': \'yes\', \'score\': 5}"}}]}'
    interval_s: float = 0.2
    headers_too: bool = False


class FakeJudge:
    def __init__(self, respond: Callable[[dict, int], object], delay_s: float = 0.0, lifetime_s: float = 120.0):
        self.respond, self.delay_s = respond, delay_s
        self.payloads: list[dict] = []
        self.headers: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        judge = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with judge.lock:
                    index = len(judge.payloads)
                    judge.payloads.append(payload)
                    judge.headers.append(dict(self.headers) | {"path": self.path})
                    judge.in_flight += 1
                    judge.max_in_flight = max(judge.max_in_flight, judge.in_flight)
                try:
                    if judge.delay_s:
                        time.sleep(judge.delay_s)
                    reply = judge.respond(payload, index)
                    if isinstance(reply, Drip):
                        self._drip(reply)
                    else:
                        self._send(*reply)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up and left
                    pass
                finally:
                    with judge.lock:
                        judge.in_flight -= 1

            def _send(self, status, body, extra):
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                for key, value in extra.items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _drip(self, drip: Drip):
                head = (f"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(drip.body)}\r\n\r\n").encode()
                if not drip.headers_too:
                    self.wfile.write(head)
                    self.wfile.flush()
                for i in range(len(head) if drip.headers_too else 0):
                    self.wfile.write(head[i : i + 1])
                    self.wfile.flush()
                    time.sleep(drip.interval_s)
                for i in range(len(drip.body)):
                    self.wfile.write(drip.body[i : i + 1])
                    self.wfile.flush()
                    time.sleep(drip.interval_s)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self._stopper = threading.Timer(lifetime_s, self.stop)
        self._stopper.daemon = True
        self._stopped = False

    def start(self) -> FakeJudge:
        self.thread.start()
        self._stopper.start()
        return self

    def stop(self) -> None:
        with self.lock:
            if self._stopped:
                return
            self._stopped = True
        self._stopper.cancel()
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def user_text(payload: dict) -> str:
    """The text of the last user message of a payload (string content or the text parts of a list)."""
    content = [m for m in payload["messages"] if m["role"] == "user"][-1]["content"]
    return content if isinstance(content, str) else "".join(p.get("text", "") for p in content)


def predicted(payload: dict, label: str = "Predicted Answer: ") -> str:
    """The predicted answer a Video-ChatGPT-style judge prompt carries."""
    return user_text(payload).split(label)[1].split("\n")[0]
