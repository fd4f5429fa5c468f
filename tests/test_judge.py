"""The OpenAI-compatible judge client and the ``judge_score`` metric, against a local fake server.

Every server listens on 127.0.0.1 (port 0) in a thread; no test touches the network.  Parity with
lmms-eval 0.7.3 ``tasks/activitynetqa/utils.py`` (exact: same request payload, same parsed (pred, score),
aggregates equal within 1e-9) is in the ``slow`` test.
"""
from __future__ import annotations

import importlib.util
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

import pytest

from omnieval.errors import ConfigError
from omnieval.metrics.base import MetricInput
from omnieval.metrics.judge import ACTIVITYNET_QA, JudgeClient, JudgeScore, JudgeSettings, parse_activitynet_review
from omnieval.registry import get_metric

# (status, body, extra headers); body is a dict (sent as JSON) or raw bytes
Reply = tuple[int, "dict | bytes", dict]


def ok(content: str, model: str = "fake-judge") -> Reply:
    return 200, {"model": model, "choices": [{"message": {"role": "assistant", "content": content}}]}, {}


class FakeServer:
    """Answers POSTs with ``respond(payload, call_index)``; records payloads and headers."""

    def __init__(self, respond: Callable[[dict, int], Reply], delay_s: float = 0.0):
        self.respond, self.delay_s = respond, delay_s
        self.payloads: list[dict] = []
        self.headers: list[dict] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server API
                payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    index = len(server.payloads)
                    server.payloads.append(payload)
                    server.headers.append(dict(self.headers) | {"path": self.path})
                if server.delay_s:
                    time.sleep(server.delay_s)
                status, body, extra = server.respond(payload, index)
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                try:
                    self.send_response(status)
                    for key, value in extra.items():
                        self.send_header(key, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                    pass

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def __enter__(self) -> "FakeServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def client(url: str, sleeps: Sleeps | None = None, **settings) -> JudgeClient:
    settings = {"base_url": url, "model": "judge-x", "api_key_env": "", "backoff_s": 0.5, "max_attempts": 4} | settings
    return JudgeClient(JudgeSettings(**settings), sleep=sleeps if sleeps is not None else Sleeps())


MESSAGES = [{"role": "user", "content": "hi"}]


def test_success_payload_and_key(monkeypatch):
    monkeypatch.setenv("MY_JUDGE_KEY", "sk-test")
    with FakeServer(lambda p, i: ok("  {'pred': 'yes', 'score': 5}\n")) as server:
        reply = client(server.url, api_key_env="MY_JUDGE_KEY", max_tokens=32).chat(MESSAGES)
    assert not reply.failed and reply.attempts == 1 and reply.error == ""
    assert reply.content == "{'pred': 'yes', 'score': 5}" and reply.model == "fake-judge"
    assert server.payloads == [{"model": "judge-x", "messages": MESSAGES, "temperature": 0.0, "max_tokens": 32}]
    assert server.headers[0]["Authorization"] == "Bearer sk-test"
    assert server.headers[0]["path"] == "/v1/chat/completions"


def test_missing_key_is_a_start_up_error(monkeypatch):
    monkeypatch.delenv("NO_SUCH_JUDGE_KEY", raising=False)
    with pytest.raises(ConfigError, match="NO_SUCH_JUDGE_KEY"):
        JudgeClient(JudgeSettings(api_key_env="NO_SUCH_JUDGE_KEY"))
    with pytest.raises(ConfigError, match="max_attempts"):
        JudgeClient(JudgeSettings(api_key_env="", max_attempts=0))


def test_fails_then_succeeds_with_backoff():
    def respond(payload, index):
        if index == 0:
            return 500, {"error": "boom"}, {}
        if index == 1:
            return 200, b"not json", {}
        if index == 2:
            return ok("   ")  # empty content is retried too
        return ok("{'pred': 'no', 'score': 1}")

    sleeps = Sleeps()
    with FakeServer(respond) as server:
        reply = client(server.url, sleeps, backoff_factor=2.0).chat(MESSAGES)
    assert reply.content == "{'pred': 'no', 'score': 1}" and reply.attempts == 4
    assert len(server.payloads) == 4
    assert sleeps == [0.5, 1.0, 2.0]


def test_always_failing_server_is_bounded_and_reported():
    sleeps = Sleeps()
    with FakeServer(lambda p, i: (503, {"error": "down"}, {})) as server:
        reply = client(server.url, sleeps, max_attempts=3, backoff_s=10.0, max_backoff_s=15.0).chat(MESSAGES)
    assert reply.failed and reply.content is None and reply.attempts == 3
    assert "503" in reply.error
    assert len(server.payloads) == 3 and sleeps == [10.0, 15.0]  # capped; no sleep after the last attempt


def test_permanent_errors_are_not_retried_and_retry_after_is_honoured():
    with FakeServer(lambda p, i: (401, {"error": "bad key"}, {})) as server:
        reply = client(server.url).chat(MESSAGES)
    assert reply.failed and reply.attempts == 1 and "401" in reply.error and len(server.payloads) == 1

    sleeps = Sleeps()
    with FakeServer(lambda p, i: (429, {}, {"Retry-After": "3"}) if i == 0 else ok("{}")) as server:
        reply = client(server.url, sleeps).chat(MESSAGES)
    assert reply.content == "{}" and sleeps == [3.0]


def test_connection_refused_and_timeout():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    reply = client(f"http://127.0.0.1:{port}/v1", max_attempts=2).chat(MESSAGES)
    assert reply.failed and reply.attempts == 2 and reply.error

    with FakeServer(lambda p, i: ok("late"), delay_s=0.5) as server:
        reply = client(server.url, max_attempts=1, timeout_s=0.1).chat(MESSAGES)
    assert reply.failed and "timed out" in reply.error.lower()


def test_template_fill_and_hash():
    messages = ACTIVITYNET_QA.messages(question="What {pred}?", answer="a dog", pred="dog")
    user = messages[1]["content"]
    assert "Question: What {pred}?\nCorrect Answer: a dog\nPredicted Answer: dog\n\n" in user
    assert "{'pred': 'yes', 'score': 4.8}" in user  # literal braces of the template survive
    assert len(ACTIVITYNET_QA.sha256) == 64
    assert ACTIVITYNET_QA.sha256 != type(ACTIVITYNET_QA)("x", ACTIVITYNET_QA.system, ACTIVITYNET_QA.user + " ").sha256


REVIEWS = [
    "{'pred': 'yes', 'score': 4}",
    "{'pred': 'no', 'score': 0}",
    "Sure! {'pred': 'Yes', 'score': 4.8} hope this helps",
    "{'pred': 'no', 'score': '3'}",
    "{'pred': 'partially', 'score': 2}",
    "{\"pred\": \"yes\", \"score\": 5}",
    "{'pred': 'yes'}",
    "{'pred': 'yes', 'score': 'high'}",
    "yes, 5",
    "{'pred': yes, 'score': 5}",
    "{'pred': 'no', 'score': 1",
    "",
]


def test_parse_reviews():
    parsed = [parse_activitynet_review(r) for r in REVIEWS]
    assert parsed[:6] == [("yes", 4), ("no", 0), ("yes", 4), ("no", 3), ("partially", 2), ("yes", 5)]
    assert parsed[6:10] == [None] * 4 and parsed[10] == ("no", 1) and parsed[11] is None


def _canned(payload: dict, index: int) -> Reply:
    """Judge replies keyed by the predicted answer in the prompt."""
    pred = payload["messages"][1]["content"].split("Predicted Answer: ")[1].split("\n")[0]
    table = {
        "a dog": ok("{'pred': 'yes', 'score': 5}"),
        "a cat": ok("{'pred': 'no', 'score': 1}"),
        "maybe": ok("{'pred': 'unsure', 'score': 3}"),
        "gibberish": ok("I refuse to answer in the format."),
    }
    return table.get(pred, (500, {"error": "judge crashed"}, {}))


def _items(preds):
    return [MetricInput(item_id=f"v{i}", output=p, reference="a dog", doc={"question": "What animal is shown?"}) for i, p in enumerate(preds)]


@pytest.mark.parametrize("workers", [1, 3])
def test_judge_score_metric(workers):
    preds = ["a dog", "a cat", "maybe", "gibberish", "crash", "a dog"]
    with FakeServer(_canned) as server:
        metric = get_metric("judge_score")(base_url=server.url, api_key_env="", max_attempts=2, backoff_s=0.0, workers=workers)
        assert isinstance(metric, JudgeScore)
        contributions = metric.contributions(_items(preds))
    assert [c["judge_failed"] for c in contributions] == [0.0, 0.0, 0.0, 1.0, 1.0, 0.0]
    assert contributions[3]["judge_raw"] == "I refuse to answer in the format." and contributions[3]["judge_error"] == "unparseable judge output"
    assert contributions[4]["judge_raw"] == "" and "500" in contributions[4]["judge_error"] and contributions[4]["judge_attempts"] == 2
    assert "judge_score" not in contributions[4]  # a failure is not a zero
    assert contributions[2]["judge_pred"] == "unsure" and "judge_yes_rate" not in contributions[2]
    assert all(c["judge_prompt_sha256"] == ACTIVITYNET_QA.sha256 for c in contributions)
    assert contributions[0]["judge_model"] == "fake-judge"
    for c in contributions:
        metric.fold(c)
    values = metric.compute()
    assert values == {"judge_yes_rate": pytest.approx(100 * 2 / 3), "judge_score": pytest.approx(14 / 4), "judge_failed": 2.0}
    assert metric.options_dict()["prompt_sha256"] == ACTIVITYNET_QA.sha256
    assert metric.options_dict()["temperature"] == 0.0
    assert len(server.payloads) == 7  # one retry for the crashing item, none for the rest


def test_judge_score_merge_and_bad_input():
    with FakeServer(_canned) as server:
        a = JudgeScore(base_url=server.url, api_key_env="", backoff_s=0.0)
        b = a.fresh()
        a.update(_items(["a dog", "a cat"]))
        b.update(_items(["a dog"]))
    a.merge(b)
    assert a.compute() == {"judge_yes_rate": pytest.approx(200 / 3), "judge_score": pytest.approx(11 / 3), "judge_failed": 0.0}
    with pytest.raises(ConfigError, match="v9"):
        a.contributions([MetricInput(item_id="v9", output="x", reference="y", doc={})])
    with pytest.raises(ConfigError, match="template"):
        JudgeScore(api_key_env="", template="nope")


def _load_lmms_activitynetqa(monkeypatch, tmp_path, url):
    pytest.importorskip("loguru")
    spec = importlib.util.find_spec("lmms_eval")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("lmms-eval not installed (pip install --no-deps lmms-eval)")
    path = Path(next(iter(spec.submodule_search_locations))) / "tasks" / "activitynetqa" / "utils.py"
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("OPENAI_API_URL", url + "/chat/completions")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-parity")
    monkeypatch.delenv("MODEL_VERSION", raising=False)
    module_spec = importlib.util.spec_from_file_location("lmms_activitynetqa_utils", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_parity_with_lmms_eval_activitynetqa(monkeypatch, tmp_path):
    """Same request payload (exact), same parsed (pred, score) (exact), same aggregates (1e-9) as lmms-eval."""
    with FakeServer(lambda p, i: ok("{'pred': 'yes', 'score': 4}")) as server:
        reference = _load_lmms_activitynetqa(monkeypatch, tmp_path, server.url)
        content, _ = reference.get_eval("What is the man doing?", "riding a bike", "He rides a bicycle", 64)
        assert content == "{'pred': 'yes', 'score': 4}"
        metric = JudgeScore(base_url=server.url, api_key_env="OPENAI_API_KEY")
        metric.contributions([MetricInput(item_id="p", output="He rides a bicycle", reference="riding a bike", doc={"question": "What is the man doing?"})])
    assert server.payloads[1] == server.payloads[0]
    assert server.headers[1]["Authorization"] == server.headers[0]["Authorization"]

    parseable = [r for r in REVIEWS if parse_activitynet_review(r) is not None]
    for review in REVIEWS:
        expected = reference.parse_score(review)  # logs its parse errors; returns None for them
        assert parse_activitynet_review(review) == (tuple(expected) if expected else None), review

    records = [{"Correctness": p, "score": s} for p, s in map(parse_activitynet_review, parseable)]
    metric = JudgeScore(api_key_env="")
    for p, s in map(parse_activitynet_review, parseable):
        metric.fold({"judge_failed": 0.0, "judge_score": float(s)} | ({"judge_yes_rate": float(p == "yes")} if p in ("yes", "no") else {}))
    values = metric.compute()
    assert values["judge_yes_rate"] == pytest.approx(reference.activitynetqa_aggregate_accuracy(records, None), abs=1e-9)
    assert values["judge_score"] == pytest.approx(reference.activitynetqa_aggregate_score(records, None), abs=1e-9)
