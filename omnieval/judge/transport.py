"""One HTTP POST with a wall-clock deadline (standard library only).

``urllib``'s ``timeout`` bounds each socket operation, not the call: a server that sends one byte every 1.5 s
keeps a 60 s-timeout request alive for as long as it likes.  :func:`post` enforces ``deadline_s`` on the whole
exchange (connect, send, headers, body):

* every socket operation gets the time that is left as its timeout;
* a watchdog timer shuts the socket down when the deadline passes, which wakes a ``recv`` blocked inside
  ``http.client`` (reading the status line or headers, where no check between bytes is possible);
* the body is read in chunks with a deadline check between them.

A call that runs past its deadline raises :class:`DeadlineExceeded` at most a few milliseconds late.  Name
resolution (``getaddrinfo``) is not interruptible and is not covered.  Proxies come from the usual environment
variables (``https_proxy``, ``http_proxy``, ``no_proxy``), without proxy authentication.
"""
from __future__ import annotations

import http.client
import socket
import threading
import time
import urllib.request
from dataclasses import dataclass
from typing import Self
from urllib.parse import urlsplit

__all__ = ["DeadlineExceeded", "HTTPException", "HTTPResult", "post"]

HTTPException = http.client.HTTPException

_CHUNK = 1 << 16


class DeadlineExceeded(OSError):
    """The call did not finish within its deadline."""


@dataclass(frozen=True)
class HTTPResult:
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes


class _Watchdog:
    """Shuts the connection's socket down at the deadline (from a timer thread)."""

    def __init__(self, conn: http.client.HTTPConnection, seconds: float):
        self.conn = conn
        self.sock: socket.socket | None = None  # kept: http.client drops conn.sock when the server closes after replying
        self.fired = False
        self._timer = threading.Timer(max(0.0, seconds), self._fire)
        self._timer.daemon = True

    def _fire(self) -> None:
        self.fired = True
        sock = self.sock or self.conn.sock
        if sock is not None:
            try:
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> Self:
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()


def _connection(url: str, timeout: float) -> tuple[http.client.HTTPConnection, str]:
    """A connection for ``url`` (through the environment's proxy unless bypassed) and the request target."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(parts.hostname):
        p = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        proxy_port = p.port or (443 if p.scheme == "https" else 80)
        proxy_cls = http.client.HTTPSConnection if p.scheme == "https" else http.client.HTTPConnection
        conn = proxy_cls(p.hostname, proxy_port, timeout=timeout)
        if https:
            conn.set_tunnel(parts.hostname, port)
            return conn, target
        return conn, url  # plain HTTP through a proxy: absolute-form target
    cls = http.client.HTTPSConnection if https else http.client.HTTPConnection
    return cls(parts.hostname, port, timeout=timeout), target


def post(url: str, body: bytes, headers: dict[str, str], deadline_s: float) -> HTTPResult:
    """POST ``body`` to ``url`` and read the whole response within ``deadline_s`` seconds of wall time.

    Raises :class:`DeadlineExceeded` when the deadline passes, ``OSError`` / ``http.client.HTTPException`` for
    transport failures.  HTTP error statuses are returned, not raised.
    """
    if not deadline_s > 0:
        raise ValueError(f"deadline_s must be > 0, got {deadline_s}")
    end = time.monotonic() + deadline_s
    conn, target = _connection(url, deadline_s)

    def left() -> float:
        remaining = end - time.monotonic()
        if remaining <= 0:
            raise DeadlineExceeded(f"deadline of {deadline_s:g} s exceeded")
        return remaining

    try:
        with _Watchdog(conn, deadline_s) as watchdog:
            try:
                conn.timeout = left()
                conn.connect()
                sock = watchdog.sock = conn.sock
                sock.settimeout(left())
                conn.request("POST", target, body=body, headers=headers)
                sock.settimeout(left())
                response = conn.getresponse()
                chunks = []
                while True:
                    sock.settimeout(left())
                    chunk = response.read1(_CHUNK)
                    if not chunk:
                        break
                    chunks.append(chunk)
                left()
            except (OSError, http.client.HTTPException):
                if watchdog.fired or time.monotonic() >= end:
                    raise DeadlineExceeded(f"deadline of {deadline_s:g} s exceeded") from None
                raise
            if watchdog.fired:
                raise DeadlineExceeded(f"deadline of {deadline_s:g} s exceeded")
        return HTTPResult(response.status, response.reason, {k.lower(): v for k, v in response.getheaders()}, b"".join(chunks))
    finally:
        conn.close()
