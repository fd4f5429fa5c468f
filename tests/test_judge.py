"""The OpenAI-compatible judge client and the ``judge_score`` metric, against a local fake server.

Every server listens on 127.0.0.1 (port 0) in a thread; no test touches the network.  Parity with
lmms-eval 0.7.3 ``tasks/activitynetqa/utils.py`` (exact: same request payload, same parsed (pred, score),
aggregates equal within 1e-9) is in the ``slow`` test.
"""
from __future__ import annotations

import base64
import importlib.util
import io
import json
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from judge_fixtures import Drip, FakeJudge, ok, predicted

from omnieval.errors import ConfigError
from omnieval.judge import JudgeCache, image_part, user_message
from omnieval.judge.reviews import InvalidReply, parse_review
from omnieval.metrics.base import RETRY, MetricInput
from omnieval.metrics.judge import (
    ACTIVITYNET_QA,
    JudgeClient,
    JudgeScore,
    JudgeSettings,
    parse_activitynet_review,
)
from omnieval.registry import get_metric


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
    with FakeJudge(lambda p, i: ok("  {'pred': 'yes', 'score': 5}\n")) as server:
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
    with FakeJudge(respond) as server:
        reply = client(server.url, sleeps, backoff_factor=2.0).chat(MESSAGES)
    assert reply.content == "{'pred': 'no', 'score': 1}" and reply.attempts == 4
    assert len(server.payloads) == 4
    assert sleeps == [0.5, 1.0, 2.0]


def test_always_failing_server_is_bounded_and_reported():
    sleeps = Sleeps()
    with FakeJudge(lambda p, i: (503, {"error": "down"}, {})) as server:
        reply = client(server.url, sleeps, max_attempts=3, backoff_s=10.0, max_backoff_s=15.0).chat(MESSAGES)
    assert reply.failed and reply.content is None and reply.attempts == 3
    assert "503" in reply.error
    assert len(server.payloads) == 3 and sleeps == [10.0, 15.0]  # capped; no sleep after the last attempt


def test_an_endpoint_that_keeps_failing_is_given_up_on():
    sleeps = Sleeps()
    with FakeJudge(lambda p, i: (503, {"error": "down"}, {})) as server:
        c = client(server.url, sleeps, max_attempts=2, give_up_after=3)
        replies = c.chat_many([[{"role": "user", "content": str(k)}] for k in range(10)])
    assert all(r.failed for r in replies) and len(server.payloads) == 6 and len(sleeps) == 3  # 3 calls x 2 attempts
    assert [r.attempts for r in replies] == [2, 2, 2] + [0] * 7 and "taken as down after 3 failed calls" in replies[-1].error
    with FakeJudge(lambda p, i: (503, {}, {}) if i < 2 else ok("{}")) as server:  # a success resets the count
        c = client(server.url, max_attempts=1, give_up_after=3)
        assert [r.failed for r in c.chat_many([[{"role": "user", "content": str(k)}] for k in range(5)])] == [True, True, False, False, False]


def test_permanent_errors_are_not_retried_and_retry_after_is_honoured():
    with FakeJudge(lambda p, i: (401, {"error": "bad key"}, {})) as server:
        reply = client(server.url).chat(MESSAGES)
    assert reply.failed and reply.attempts == 1 and "401" in reply.error and len(server.payloads) == 1

    sleeps = Sleeps()
    with FakeJudge(lambda p, i: (429, {}, {"Retry-After": "3"}) if i == 0 else ok("{}")) as server:
        reply = client(server.url, sleeps).chat(MESSAGES)
    assert reply.content == "{}" and sleeps == [3.0]


def test_connection_refused_and_timeout():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    reply = client(f"http://127.0.0.1:{port}/v1", max_attempts=2).chat(MESSAGES)
    assert reply.failed and reply.attempts == 2 and reply.error

    with FakeJudge(lambda p, i: ok("late"), delay_s=0.5) as server:
        reply = client(server.url, max_attempts=1, timeout_s=0.1).chat(MESSAGES)
    assert reply.failed and "timed out" in reply.error.lower()


@pytest.mark.parametrize("headers_too", [False, True])
def test_timeout_is_a_wall_clock_deadline_against_a_dripping_server(headers_too):
    """One byte every 0.15 s: the full reply would take > 10 s; every socket read succeeds within its timeout, so
    only a wall-clock deadline ends the call.  Status line dripped too: the watchdog wakes ``http.client``."""
    drip = Drip(interval_s=0.15, headers_too=headers_too)
    assert len(drip.body) * drip.interval_s > 10
    with FakeJudge(lambda p, i: drip) as server:
        t0 = time.monotonic()
        reply = client(server.url, max_attempts=2, timeout_s=0.6).chat(MESSAGES)
        elapsed = time.monotonic() - t0
    assert reply.failed and "timed out" in reply.error and "deadline of 0.6 s" in reply.error
    assert reply.attempts == 2 and len(server.payloads) == 2
    assert 1.1 < elapsed < 2.5  # two attempts of 0.6 s each, no sleep (injected), small slack


def test_plain_http_goes_through_the_environment_proxy(monkeypatch):
    with FakeJudge(lambda p, i: ok("{}")) as proxy:
        monkeypatch.setenv("http_proxy", proxy.url.rsplit("/v1", 1)[0])
        reply = client("http://judge.invalid/v1").chat(MESSAGES)
    assert not reply.failed and proxy.headers[0]["path"] == "http://judge.invalid/v1/chat/completions"


def test_concurrency_keeps_order_and_overlaps_calls():
    n = 8
    with FakeJudge(lambda p, i: ok(f"{{'pred': 'yes', 'score': {int(p['messages'][0]['content']) % 6}}}"), delay_s=0.3) as server:
        c = client(server.url, workers=n)
        t0 = time.monotonic()
        replies = c.chat_many([[{"role": "user", "content": str(k)}] for k in range(n)])
        elapsed = time.monotonic() - t0
    assert [r.content for r in replies] == [f"{{'pred': 'yes', 'score': {k % 6}}}" for k in range(n)]
    assert server.max_in_flight >= 4 and elapsed < 0.3 * n / 2
    assert c.calls == n


def test_cache_serves_repeats_without_calls_and_keeps_only_valid_replies(tmp_path):
    def accept(text):
        return parse_review(text, extract="brace")

    table = {"good": ok("{'pred': 'yes', 'score': 4}"), "bad": ok("{'pred': 'yes', 'score': 99}")}
    with FakeJudge(lambda p, i: table[p["messages"][0]["content"]]) as server:
        c = client(server.url)
        c.cache = JudgeCache(tmp_path / "judge_cache")
        first = c.chat_many([[{"role": "user", "content": w}] for w in ("good", "bad")], accept=accept)
        assert [r.failed for r in first] == [False, True] and first[0].parsed.score == 4 and not first[0].cached
        assert "outside the protocol's range" in first[1].error and first[1].content == "{'pred': 'yes', 'score': 99}"
        again = client(server.url)  # a new process: reads the cache files written before
        again.cache = JudgeCache(tmp_path / "judge_cache")
        second = again.chat_many([[{"role": "user", "content": w}] for w in ("good", "bad")], accept=accept)
    assert second[0].cached and second[0].attempts == 0 and second[0].parsed.score == 4 and second[0].model == "fake-judge"
    assert second[1].failed and not second[1].cached  # an invalid reply is asked again, never served from the cache
    assert len(server.payloads) == 3 and again.calls == 1 and again.cache_hits == 1
    files = list((tmp_path / "judge_cache").glob("replies-*.jsonl"))
    assert len(files) == 1 and len(files[0].read_text().splitlines()) == 1
    with open(files[0], "a") as f:
        f.write('{"key": "torn')  # a crash mid-write
    assert len(JudgeCache(tmp_path / "judge_cache")) == 1
    # the cache key is the full payload: another judge model or temperature is another request
    k = [JudgeClient(JudgeSettings(api_key_env="", **kw)).payload(MESSAGES) for kw in ({}, {"model": "x"}, {"temperature": 0.5})]
    from omnieval.judge import request_key
    assert len({request_key(p) for p in k}) == 3


@pytest.mark.parametrize("reply,expected", [
    ("{'pred': 'yes', 'score': 5}", ("yes", 5)),
    ("{'pred': 'no', 'score': 0}", ("no", 0)),
    ("{'pred': 'yes', 'score': 4.8}", ("yes", 4)),
    ("{'pred': 'yes', 'score': 99}", "outside"),
    ("{'pred': 'no', 'score': -7}", "outside"),
    ("{'pred': 'no', 'score': 5.5}", "outside"),
    ("{'pred': 'no', 'score': float('nan')}", "literal"),
    ("{'pred': 'no', 'score': 1e999}", "not a number"),
    ("{'pred': 'no', 'score': 'high'}", "not a number"),
    ("{'pred': 3, 'score': 2}", "not a string"),
    ("{'pred': 'yes'}", "no 'score'"),
])
def test_scores_outside_the_range_are_failures(reply, expected):
    if isinstance(expected, tuple):
        r = parse_review(reply)
        assert (r.pred, r.score) == expected
    else:
        with pytest.raises(InvalidReply, match=expected):
            parse_review(reply)


def test_image_messages_are_png_data_urls(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    part = image_part(image)
    url = part["image_url"]["url"]
    assert part["type"] == "image_url" and url.startswith("data:image/png;base64,")
    decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))
    assert np.array_equal(decoded, image)  # lossless, not resized
    small = Image.open(io.BytesIO(base64.b64decode(image_part(image, max_side=15)["image_url"]["url"].split(",", 1)[1])))
    assert small.size == (15, 10)  # longer side to 15, aspect kept
    assert image_part(image, format="JPEG")["image_url"]["url"].startswith("data:image/jpeg;base64,")
    with pytest.raises(Exception, match="uint8"):
        image_part(image.astype(np.float32))

    conversation = [{"role": "system", "content": "judge"}, user_message(image, "Is it red?"),
                    {"role": "assistant", "content": "No."}, user_message("Score it.")]
    with FakeJudge(lambda p, i: ok("{'score': 3}")) as server:
        reply = client(server.url).chat(conversation)
    sent = server.payloads[0]["messages"]
    assert not reply.failed and [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert sent[1]["content"] == [part, {"type": "text", "text": "Is it red?"}] and sent[3]["content"] == "Score it."
    with pytest.raises(ValueError, match="message 0"):
        client(server.url).chat([{"role": "robot", "content": "x"}])


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


def _canned(payload: dict, index: int):
    """Judge replies keyed by the predicted answer in the prompt."""
    pred = predicted(payload)
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
    with FakeJudge(_canned) as server:
        metric = get_metric("judge_score")(base_url=server.url, api_key_env="", max_attempts=2, backoff_s=0.0, workers=workers)
        assert isinstance(metric, JudgeScore)
        contributions = metric.contributions(_items(preds))
    assert [c["judge_failed"] for c in contributions] == [0.0, 0.0, 0.0, 1.0, 1.0, 0.0]
    assert contributions[3]["judge_raw"] == "I refuse to answer in the format."
    assert contributions[3]["judge_error"] == "invalid judge reply: no '{' in the reply"
    assert [RETRY in c for c in contributions] == [False, False, False, True, True, False]  # failures are asked again
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
    assert len(server.payloads) == 6  # "a dog" asked once for both items; one retry for the crashing item


def test_judge_score_merge_and_bad_input():
    with FakeJudge(_canned) as server:
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
    with FakeJudge(lambda p, i: ok("{'pred': 'yes', 'score': 4}")) as server:
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


# -- through `omnieval run` ------------------------------------------------------------------------
SMOKE_VIDEO = Path(__file__).resolve().parent.parent / "tasks" / "smoke" / "media" / "red_square_right.mp4"
JUDGED_TASK = """
task: judged_tmp
capability: understand
dataset: {path: docs.jsonl}
fields: {id: id, prompt: question, media: video, reference: answer}
generation: {max_new_tokens: 8, temperature: 0.0}
metrics:
  - name: judge_score
    options: {base_url: "${FAKE_JUDGE_URL}", model: judge-x, api_key_env: "", backoff_s: 0.0, max_attempts: 2, workers: 2, percent: %s}
"""


def _judged_run(tmp_path: Path, preds: list[str], percent: bool = True) -> list[str]:
    tasks = tmp_path / "tasks"
    tasks.mkdir(exist_ok=True)
    (tasks / "judged_tmp.yaml").write_text(JUDGED_TASK % ("true" if percent else "false"))
    docs = [{"id": f"d{i}", "question": "what animal is shown", "answer": "a dog", "video": str(SMOKE_VIDEO)} for i in range(len(preds))]
    (tasks / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (tmp_path / "preds").mkdir(exist_ok=True)
    (tmp_path / "preds" / "manifest.jsonl").write_text("".join(json.dumps({"doc_id": f"d{i}", "response": p}) + "\n" for i, p in enumerate(preds)))
    return ["run", "--model", "predictions", "--model_args", f"path={tmp_path / 'preds'}", "--tasks", "judged_tmp",
            "--include_path", str(tasks), "--output_path", str(tmp_path / "out")]


def test_outage_then_recovery_through_omnieval_run(tmp_path, monkeypatch, capsys):
    """Judge down: every item fails, the run exits 3 with one line and stores no score; judge back: the same command
    re-judges exactly the failed items; re-running, re-scoring and changing a non-request option make no judge call."""
    from omnieval.cli import main

    state = {"down": True}

    def respond(payload, index):
        return (503, {"error": "down"}, {}) if state["down"] else _canned(payload, index)

    with FakeJudge(respond) as server:
        monkeypatch.setenv("FAKE_JUDGE_URL", server.url)
        argv = _judged_run(tmp_path, ["a dog", "a cat", "a dog"])
        assert main(argv) == 3
        err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]  # (progress lines aside)
        assert len(err) == 1 and "judge_score failed on all 3 items" in err[0] and "503" in err[0]
        first = json.loads((tmp_path / "out" / "results.json").read_text())["results"]["judged_tmp"]
        assert first["judge_failed"]["value"] == 3.0 and "judge_score" not in first
        assert len(server.payloads) == 4  # 2 distinct requests ("a dog" twice) x 2 attempts

        state["down"] = False
        assert main(argv) == 0
        second = json.loads((tmp_path / "out" / "results.json").read_text())["results"]["judged_tmp"]
        assert second["judge_score"]["value"] == pytest.approx(11 / 3) and second["judge_failed"]["value"] == 0.0
        assert second["judge_yes_rate"]["value"] == pytest.approx(200 / 3) and len(server.payloads) == 6

        assert main(argv) == 0 and main(["score", "--output_path", str(tmp_path / "out")]) == 0
        assert len(server.payloads) == 6  # stored scores: no call
        argv = _judged_run(tmp_path, ["a dog", "a cat", "a dog"], percent=False)  # new score keys, same requests
        assert main(argv) == 0
        third = json.loads((tmp_path / "out" / "results.json").read_text())
        assert len(server.payloads) == 6 and third["counters"]["scored_items"] == 3  # re-scored from the reply cache
        assert third["results"]["judged_tmp"]["judge_yes_rate"]["value"] == pytest.approx(2 / 3)
    assert list((tmp_path / "out" / "judge_cache").glob("replies-*.jsonl"))
