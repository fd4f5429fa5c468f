"""Headless Chromium driven through the DevTools protocol over a pipe (standard library only).

Why this and not selenium/chromedriver or Playwright: ``--remote-debugging-pipe`` makes Chromium read
protocol commands from fd 3 and write replies to fd 4 as NUL-terminated JSON, so a test needs nothing but
Debian's ``chromium`` -- no driver whose version must match the browser, no browser download, no websocket
library, no TCP port.  Clicks go through ``Input.dispatchMouseEvent`` at the element's on-screen position,
i.e. through the page's real event path, and ``Network`` events show every request the page makes.

``python tests/headless.py PAGE.html OUT.png [--width W --height H --selector CSS --viewport --scroll-to CSS]``
takes a screenshot, lazy images and video posters loaded (the README's pictures are made this way).
"""
from __future__ import annotations

import base64
import fcntl
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Self

FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
         "--disable-default-apps", "--disable-extensions", "--mute-audio", "--hide-scrollbars")
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """``$OMNIEVAL_CHROMIUM`` (None when it names no executable) or the first Chromium on PATH."""
    env = os.environ.get("OMNIEVAL_CHROMIUM")
    if env:
        return env if os.access(env, os.X_OK) and Path(env).is_file() else None
    return next((p for p in map(shutil.which, CANDIDATES) if p), None)


class BrowserError(RuntimeError):
    pass


class Browser:
    """One headless Chromium with one page; use as a context manager (the browser and its profile go away)."""

    def __init__(self, binary: str | None = None, width: int = 1280, height: int = 900, timeout: float = 30.0):
        binary = binary or find_chromium()
        if not binary:
            raise BrowserError("no chromium found (apt-get install -y chromium, or set OMNIEVAL_CHROMIUM)")
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="omnieval-chromium-")
        cmd_r, self._cmd_w = os.pipe()
        self._resp_r, resp_w = os.pipe()

        def to_fds_3_and_4():  # runs in the child before exec: fd 3 = commands in, fd 4 = replies out
            a = fcntl.fcntl(cmd_r, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(resp_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 -- open for the browser's lifetime, closed in close()
        self.proc = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={self.profile}", f"--window-size={width},{height}",
             "--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._stderr,
            pass_fds=(3, 4), preexec_fn=to_fds_3_and_4)  # noqa: PLW1509 -- only dup2 calls; no thread of ours runs yet
        os.close(cmd_r)
        os.close(resp_w)
        self._next_id = 0
        self._replies: dict[int, dict] = {}
        self._events: queue.Queue = queue.Queue()
        self.events: list[dict] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.session = None
        try:
            target = self.call("Target.createTarget", url="about:blank")["targetId"]
            self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            for domain in ("Page", "Runtime", "Network"):
                self.call(f"{domain}.enable")
            self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        except Exception:
            self.close()
            raise

    # -- protocol ---------------------------------------------------------------------------------
    def _read(self) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(self._resp_r, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cond:
                    self._replies[-1] = {"error": {"message": "chromium closed the pipe"}}
                    self._cond.notify_all()
                return
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                with self._cond:
                    if "id" in msg:
                        self._replies[msg["id"]] = msg
                    else:
                        self.events.append(msg)
                    self._cond.notify_all()

    def call(self, method: str, **params) -> dict:
        """Send one command (to the page's session once attached) and return its result."""
        with self._cond:
            self._next_id += 1
            mid = self._next_id
        msg = {"id": mid, "method": method, "params": params}
        if self.session and not method.startswith(("Target.", "Browser.")):
            msg["sessionId"] = self.session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        with self._cond:
            while mid not in self._replies and -1 not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BrowserError(f"{method}: no reply within {self.timeout:.0f} s")
                self._cond.wait(left)
            reply = self._replies.pop(mid, None) or self._replies[-1]
        if "error" in reply:
            raise BrowserError(f"{method}: {reply['error'].get('message')}" + (
                f"\nchromium's stderr ends with:\n{self.stderr_tail()}" if mid not in self._replies and reply is not None
                and self.proc.poll() is not None else ""))
        return reply.get("result", {})

    def wait_event(self, method: str, after: int = 0) -> dict:
        deadline = time.monotonic() + self.timeout
        with self._cond:
            while True:
                for ev in self.events[after:]:
                    if ev.get("method") == method:
                        return ev
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BrowserError(f"no {method} within {self.timeout:.0f} s")
                self._cond.wait(left)

    # -- page -------------------------------------------------------------------------------------
    def open(self, url: str) -> None:
        """Navigate and wait for the load event (scripts have run)."""
        mark = len(self.events)
        reply = self.call("Page.navigate", url=url)
        if reply.get("errorText"):
            raise BrowserError(f"{url}: {reply['errorText']}")
        self.wait_event("Page.loadEventFired", after=mark)

    def js(self, expression: str):
        """The value of a JavaScript expression in the page (JSON-serialisable results)."""
        reply = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in reply:
            raise BrowserError(f"{expression[:80]}: {reply['exceptionDetails'].get('exception', {}).get('description')}")
        return reply["result"].get("value")

    def click(self, selector: str) -> None:
        """A real left click at the centre of the first element matching ``selector`` (scrolled into view)."""
        box = self.js(f"""(() => {{ const el = document.querySelector({json.dumps(selector)});
            if (!el) return null; el.scrollIntoView({{block: 'center', inline: 'center'}});
            const r = el.getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2]; }})()""")
        if box is None:
            raise BrowserError(f"no element matches {selector!r}")
        x, y = box
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left" if kind != "mouseMoved" else "none",
                      clickCount=1 if kind != "mouseMoved" else 0)

    def screenshot(self, path: Path, selector: str | None = None, full_page: bool = True) -> Path:
        """A PNG of the page (or of one element's box) written to ``path``."""
        params: dict = {"format": "png"}
        if selector:
            r = self.js(f"""(() => {{ const el = document.querySelector({json.dumps(selector)});
                const r = el.getBoundingClientRect();
                return [r.left + window.scrollX, r.top + window.scrollY, r.width, r.height]; }})()""")
            params["clip"] = {"x": r[0], "y": r[1], "width": r[2], "height": r[3], "scale": 1}
            params["captureBeyondViewport"] = True
        elif full_page:
            params["captureBeyondViewport"] = True
            w, h = self.js("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
            params["clip"] = {"x": 0, "y": 0, "width": w, "height": h, "scale": 1}
        data = base64.b64decode(self.call("Page.captureScreenshot", **params)["data"])
        path = Path(path)
        path.write_bytes(data)
        return path

    def stderr_tail(self, limit: int = 2000) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-limit:]

    def requested_urls(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"]

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                try:
                    self.call("Browser.close")
                except BrowserError:
                    pass
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=10)
        finally:
            for fd in (self._cmd_w, self._resp_r):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._stderr.close()
            shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def launch_browser(**kwargs) -> Browser:
    """A Browser for a test: skipped where Chromium is absent, unless ``CI`` is set (then a missing Chromium fails:
    ``.ci/run`` installs it)."""
    import pytest

    if not find_chromium():
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (CI must have it: .ci/run installs it with apt-get)")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    return Browser(**kwargs)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="screenshot of a local HTML page in headless Chromium")
    ap.add_argument("page")
    ap.add_argument("out")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=900)
    ap.add_argument("--selector", default=None, help="only this element's box")
    ap.add_argument("--viewport", action="store_true", help="only the first screenful")
    ap.add_argument("--scroll-to", default=None, help="scroll this element to the top first (with --viewport)")
    a = ap.parse_args()
    with Browser(width=a.width, height=a.height) as b:
        b.open(Path(a.page).resolve().as_uri())
        # lazy media (the run report's video posters and images) are loaded before the picture is taken
        b.js("document.querySelectorAll('video[data-poster]').forEach(v => v.poster = v.dataset.poster); "
             "document.querySelectorAll('img[loading=lazy]').forEach(i => i.loading = 'eager'); 1")
        b.js("Promise.all(Array.from(document.images).map(i => i.complete ? 1 : new Promise(r => { i.onload = i.onerror = r; }))"
             ".concat(Array.from(document.querySelectorAll('video[poster]')).map(v => new Promise(r => { "
             "const i = new Image(); i.onload = i.onerror = r; i.src = v.poster; }))))")
        if a.scroll_to:
            b.js(f"document.querySelector({json.dumps(a.scroll_to)}).scrollIntoView(); 1")
        time.sleep(3.0)  # video controls draw a loading spinner for a moment after layout
        print(b.screenshot(Path(a.out), selector=a.selector, full_page=not a.viewport))
