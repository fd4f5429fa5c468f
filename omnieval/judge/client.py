"""OpenAI-compatible chat client for LLM / VLM judges (standard library only).

:class:`JudgeClient` POSTs ``{"model", "messages", ["temperature"], ["max_tokens"], **extra}`` to
``<base_url>/chat/completions`` -- a hosted API or a local vLLM / SGLang server (see the README, "Judges").
``temperature`` / ``max_tokens`` set to ``None`` are left out of the payload (the server's defaults apply, as in
the VILA scripts, which pass neither).  The API key is read from the environment variable ``api_key_env`` names
(never stored in options, results or the cache); ``api_key_env=""`` sends no Authorization header.

Per call:

* **Deadline.** ``timeout_s`` bounds each HTTP attempt in wall-clock time (connect + send + the whole reply,
  :func:`omnieval.judge.transport.post`), so a server that drips bytes cannot hold a call longer than ``timeout_s``.
  A whole :meth:`JudgeClient.chat` therefore takes at most ``max_attempts * timeout_s`` plus the backoff sleeps.
* **Retries with backoff.** Connection errors, deadlines, HTTP 408/409/425/429/5xx, malformed JSON and empty
  content are retried up to ``max_attempts`` attempts in total, sleeping ``backoff_s * backoff_factor**k``
  (capped at ``max_backoff_s``; a numeric ``Retry-After`` header is honoured up to the cap) between attempts.
  Other HTTP errors (400, 401, 403, 404, ...) are not retried.
* **Outages.** After ``give_up_after`` calls in a row failed, the endpoint is taken as down: later calls fail at
  once (and are asked again by the next run) instead of each waiting through its retries.
* **Validation.** ``chat(messages, accept=parse)`` passes the reply text to the protocol's parser; a parser that
  raises :class:`InvalidReply` (unparseable, or a score outside the protocol's range) makes the reply a failure.
  It is not retried within the call (a greedy judge repeats itself) and not cached, so the next run asks again.
* **Cache.** With a :class:`~omnieval.judge.cache.JudgeCache`, a request whose payload was answered (and accepted)
  before is served from disk without a call.
* **Concurrency.** :meth:`JudgeClient.chat_many` runs ``workers`` calls at once (threads); results keep the
  input order and do not depend on ``workers``; identical requests in one batch are sent once.

A failed call is returned as a :class:`JudgeReply` with ``error`` set -- never raised, never a score.
"""
from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from omnieval.errors import ConfigError
from omnieval.judge import transport
from omnieval.judge.cache import JudgeCache, request_key
from omnieval.judge.messages import check_messages

__all__ = ["InvalidReply", "JudgeClient", "JudgeReply", "JudgeSettings"]

_RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class JudgeSettings:
    """Where and how to call the judge.

    ``base_url``: the server's API root (``.../v1``) or its full ``/chat/completions`` URL.  ``model``: the served
    model name (part of the payload, hence of the cache key and the results).  ``workers``: concurrent calls.
    ``give_up_after``: after this many calls in a row failed (every attempt), the endpoint is taken as down and the
    remaining calls of the process fail at once, without waiting for retries (0: never give up).
    ``extra``: further payload fields sent verbatim (e.g. ``{"seed": 0, "top_p": 1.0}``).
    """

    base_url: str = "https://api.openai.com/v1"
    model: str = "gpt-4o-2024-11-20"
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float | None = 0.0
    max_tokens: int | None = 64
    timeout_s: float = 60.0
    max_attempts: int = 5
    backoff_s: float = 5.0
    backoff_factor: float = 2.0
    max_backoff_s: float = 60.0
    workers: int = 1
    give_up_after: int = 8
    extra: dict = field(default_factory=dict)

    @property
    def url(self) -> str:
        base = self.base_url.rstrip("/")
        return base if base.endswith("/chat/completions") else base + "/chat/completions"

    def check(self, where: str = "judge") -> None:
        """ConfigError (one line) for settings that cannot work."""
        for name in ("base_url", "model", "api_key_env"):
            value = getattr(self, name)
            if "${" in value:
                var = value.split("${", 1)[1].split("}", 1)[0].split(":-", 1)[0]
                raise ConfigError(f"{where}: {name} {value!r} needs environment variable {var}, which is not set "
                                  f"(see the README, 'Judges')")
        if not self.url.startswith(("http://", "https://")):
            raise ConfigError(f"{where}: base_url must be an http(s) URL, got {self.base_url!r}")
        if not self.model:
            raise ConfigError(f"{where}: no judge model named")
        checks = {"max_attempts": self.max_attempts >= 1, "workers": self.workers >= 1, "timeout_s": self.timeout_s > 0,
                  "backoff_s": self.backoff_s >= 0, "backoff_factor": self.backoff_factor >= 1,
                  "max_backoff_s": self.max_backoff_s >= 0, "give_up_after": self.give_up_after >= 0,
                  "max_tokens": self.max_tokens is None or self.max_tokens >= 1,
                  "temperature": self.temperature is None or self.temperature >= 0}
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ConfigError(f"{where}: invalid {bad[0]} = {getattr(self, bad[0])!r}")
        reserved = sorted(set(self.extra) & {"model", "messages"})
        if reserved:
            raise ConfigError(f"{where}: extra may not set {', '.join(reserved)}")
        if self.api_key_env and not os.environ.get(self.api_key_env):
            raise ConfigError(f"{where}: environment variable {self.api_key_env} (the judge API key) is not set; set it "
                              f"(any value, e.g. EMPTY, for a local server started without --api-key), or use "
                              f"api_key_env: '' to send no key")


class InvalidReply(ValueError):
    """Raised by a reply parser: the judge answered, but not in the protocol's format or range."""


@dataclass(frozen=True)
class JudgeReply:
    """One judge call.  ``content``: the reply text (``None`` when no reply arrived); ``parsed``: what the
    ``accept`` parser returned; ``error``: why the call failed (empty on success); ``cached``: served from the
    cache; ``attempts``: HTTP attempts made (0 for a cache hit)."""

    content: str | None
    model: str = ""
    attempts: int = 0
    error: str = ""
    cached: bool = False
    parsed: Any = None

    @property
    def failed(self) -> bool:
        return bool(self.error) or self.content is None


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class _Permanent(Exception):
    """A failure that retrying will not fix (HTTP 4xx other than 408/409/425/429)."""


class JudgeClient:
    """OpenAI-compatible chat client with deadlines, bounded retries, a reply cache and a thread pool.

    ``sleep`` is injectable (tests record the backoff instead of waiting).  ``calls`` counts HTTP attempts and
    ``cache_hits`` replies served from the cache (both thread-safe).
    """

    def __init__(self, settings: JudgeSettings, *, cache: JudgeCache | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        settings.check()
        self.settings = settings
        self.cache = cache
        self._sleep = sleep
        self._lock = threading.Lock()
        self.calls = 0
        self.cache_hits = 0
        self._failures_in_a_row = 0
        self._last_error = ""

    def payload(self, messages: Sequence[dict[str, Any]]) -> dict[str, Any]:
        s = self.settings
        out: dict[str, Any] = {"model": s.model, "messages": list(messages)}
        if s.temperature is not None:
            out["temperature"] = s.temperature
        if s.max_tokens is not None:
            out["max_tokens"] = s.max_tokens
        out.update(s.extra)
        return out

    # -- one call ---------------------------------------------------------------------------------
    def chat(self, messages: Sequence[dict[str, Any]], accept: Callable[[str], Any] | None = None) -> JudgeReply:
        """Send one conversation; retry transient failures; validate with ``accept``; never raise for a failure."""
        payload = self.payload(check_messages(messages))
        key = request_key(payload)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                reply = self._validated(hit["content"], hit.get("reply_model", ""), 0, accept, cached=True)
                if not reply.failed:
                    with self._lock:
                        self.cache_hits += 1
                    return reply
        reply = self._call(payload)
        if reply.failed:
            return reply
        reply = self._validated(reply.content or "", reply.model, reply.attempts, accept)
        if self.cache is not None and not reply.failed:
            self.cache.put(key, self.settings.model, reply.content or "", reply.model)
        return reply

    def chat_many(self, conversations: Sequence[Sequence[dict[str, Any]]], accept: Callable[[str], Any] | None = None,
                  workers: int | None = None) -> list[JudgeReply]:
        """:meth:`chat` for each conversation, ``workers`` (default ``settings.workers``) at a time, in order.
        Identical requests are sent once and share the reply (so the number of calls does not depend on timing)."""
        workers = self.settings.workers if workers is None else workers
        keys = [request_key(self.payload(check_messages(c))) for c in conversations]
        unique = list(dict(zip(keys, conversations)).items())
        if workers <= 1 or len(unique) < 2:
            replies = [self.chat(c, accept) for _, c in unique]
        else:
            with ThreadPoolExecutor(max_workers=min(workers, len(unique))) as pool:
                replies = list(pool.map(lambda kc: self.chat(kc[1], accept), unique))
        by_key = {k: r for (k, _), r in zip(unique, replies)}
        return [by_key[k] for k in keys]

    @staticmethod
    def _validated(content: str, model: str, attempts: int, accept, cached: bool = False) -> JudgeReply:
        if accept is None:
            return JudgeReply(content, model, attempts, cached=cached)
        try:
            parsed = accept(content)
        except InvalidReply as exc:
            return JudgeReply(content, model, attempts, error=f"invalid judge reply: {exc}", cached=cached)
        return JudgeReply(content, model, attempts, cached=cached, parsed=parsed)

    def _call(self, payload: dict[str, Any]) -> JudgeReply:
        s = self.settings
        with self._lock:
            down = s.give_up_after and self._failures_in_a_row >= s.give_up_after
        if down:
            return JudgeReply(None, "", 0, f"judge endpoint taken as down after {self._failures_in_a_row} failed calls in a "
                                           f"row (last: {self._last_error}); not called")
        reply = self._attempts(payload)
        with self._lock:
            if reply.failed:
                self._failures_in_a_row += 1
                self._last_error = reply.error
            else:
                self._failures_in_a_row = 0
        return reply

    def _attempts(self, payload: dict[str, Any]) -> JudgeReply:
        s = self.settings
        error = ""
        for attempt in range(1, s.max_attempts + 1):
            try:
                content, model = self._post(payload)
                return JudgeReply(content, model, attempt)
            except _Retryable as exc:
                error = str(exc)
                if attempt < s.max_attempts:
                    delay = min(s.max_backoff_s, s.backoff_s * s.backoff_factor ** (attempt - 1))
                    if exc.retry_after is not None:
                        delay = min(s.max_backoff_s, max(delay, exc.retry_after))
                    self._sleep(delay)
            except _Permanent as exc:
                return JudgeReply(None, "", attempt, str(exc))
        return JudgeReply(None, "", s.max_attempts, f"{error} (after {s.max_attempts} attempts)")

    def _post(self, payload: dict[str, Any]) -> tuple[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.settings.api_key_env:
            headers["Authorization"] = f"Bearer {os.environ.get(self.settings.api_key_env, '')}"
        with self._lock:
            self.calls += 1
        body = json.dumps(payload).encode("utf-8")
        try:
            result = transport.post(self.settings.url, body, headers, self.settings.timeout_s)
        except transport.DeadlineExceeded as exc:
            raise _Retryable(f"timed out: {exc}") from None
        except (OSError, transport.HTTPException) as exc:  # refused, reset, DNS, socket timeout
            raise _Retryable(f"{type(exc).__name__}: {exc}") from None
        if result.status >= 400 or result.status < 200:
            message = f"HTTP {result.status} {result.reason}"
            if result.status in _RETRY_STATUS:
                raise _Retryable(message, _retry_after(result.headers.get("retry-after")))
            raise _Permanent(message)
        try:
            data = json.loads(result.body)
            content = data["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise _Retryable(f"malformed response: {result.body[:200]!r}") from None
        if not isinstance(content, str) or not content.strip():
            raise _Retryable("empty content")
        return content.strip(), str(data.get("model", ""))


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
