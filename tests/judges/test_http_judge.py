"""The OpenAI-compatible HTTP judge against a local server on 127.0.0.1: success, timeouts, 429 with Retry-After and
back-off, 5xx, malformed replies (winner None), auth failures (a clear error, no retries), rate limit, threads."""
import math
import socket

import pytest
from chat_server import ChatServer, completion, prefer_longer

from rlhfkit.errors import RlhfkitError
from rlhfkit.judges import JudgeError
from rlhfkit.judges.http import AuthError, OpenAIJudge, RateLimiter, retry_after_seconds
from rlhfkit.judges.label import count, judge_pairs
from rlhfkit.judges.prompt import DEFAULT_RUBRIC


def make(server, sleeps=None, **kw):
    kw.setdefault("backoff", 0.5)
    kw.setdefault("api_key_env", "RLHFKIT_TEST_KEY")
    return OpenAIJudge("judge-model", base_url=server.url, sleep=(sleeps.append if sleeps is not None else None)
                       or (lambda s: None), **kw)


def test_success_and_the_request_it_sends(monkeypatch):
    monkeypatch.setenv("RLHFKIT_TEST_KEY", "sk-test")
    with ChatServer([{"body": completion("B")}]) as server:
        v = make(server).judge("How do I reset it?", "Contact support.", "Open Settings > Security.")
    assert v.winner == "b" and v.confidence is None and v.raw == {"reply": "B"}
    req = server.requests[0]
    assert req["path"] == "/v1/chat/completions"
    assert req["headers"]["Authorization"] == "Bearer sk-test"
    body = req["json"]
    assert body["model"] == "judge-model" and body["temperature"] == 0 and "logprobs" not in body
    text = body["messages"][0]["content"]
    assert "[Response A]\nContact support." in text and "[Response B]\nOpen Settings > Security." in text
    assert DEFAULT_RUBRIC in text
    assert v.judge_id.startswith(f"openai:judge-model@127.0.0.1:{server.url.split(':')[2].split('/')[0]}|prompt-v1-")


def test_no_key_no_authorization_header(monkeypatch):
    monkeypatch.delenv("RLHFKIT_TEST_KEY", raising=False)
    with ChatServer([{"body": completion("A")}]) as server:
        assert make(server).judge("p", "x", "y").winner == "a"
    assert "Authorization" not in server.requests[0]["headers"]


def test_confidence_from_answer_logprobs():
    tops = [{"token": "A", "logprob": math.log(0.6)}, {"token": "B", "logprob": math.log(0.3)},
            {"token": "The", "logprob": math.log(0.1)}]
    with ChatServer([{"body": completion("A", logprobs=tops)}]) as server:
        v = make(server, logprobs=True).judge("p", "x", "y")
    assert server.requests[0]["json"]["logprobs"] is True
    # confidence = P(A) / (P(A) + P(B)) = 0.6 / 0.9
    assert v.winner == "a" and v.confidence == pytest.approx(0.6 / 0.9)


def test_timeout_is_retried():
    sleeps = []
    with ChatServer([{"body": completion("A"), "delay": 1.0}, {"body": completion("B")}]) as server:
        v = make(server, sleeps, timeout=0.25).judge("p", "x", "y")
    assert v.winner == "b" and len(server.requests) == 2
    assert sleeps == [0.5]  # back-off before the first retry: backoff * 2**0


def test_429_waits_retry_after_then_succeeds():
    sleeps = []
    script = [{"status": 429, "headers": {"Retry-After": "3"}, "body": {"error": {"message": "slow down"}}},
              {"body": completion("A")}]
    with ChatServer(script) as server:
        v = make(server, sleeps).judge("p", "x", "y")
    assert v.winner == "a" and len(server.requests) == 2 and sleeps == [3.0]


def test_exponential_back_off_then_give_up():
    sleeps = []
    with ChatServer([{"status": 429}, {"status": 500}, {"status": 503}]) as server:
        v = make(server, sleeps, max_retries=3, backoff=0.5).judge("p", "x", "y")
    # 4 attempts; waits 0.5 * 2**k between them
    assert len(server.requests) == 4 and sleeps == [0.5, 1.0, 2.0]
    assert v.winner is None and "gave up after 4 attempts" in v.raw["error"] and "503" in v.raw["error"]


def test_back_off_is_capped():
    sleeps = []
    with ChatServer([{"status": 429, "headers": {"Retry-After": "1000"}}, {"body": completion("A")}]) as server:
        make(server, sleeps, max_backoff=7.0).judge("p", "x", "y")
    assert sleeps == [7.0]


def test_retry_after_http_date():
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:03 GMT", now=1445412480.0) == pytest.approx(3.0)
    assert retry_after_seconds("2") == 2.0 and retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None


@pytest.mark.parametrize("reply", [
    {"body": b"<html>gateway</html>"},
    {"body": {"object": "chat.completion"}},
    {"body": {"choices": []}},
    {"body": completion(None)},
    {"body": completion("Both responses have merits; A is friendlier but B is correct.")},
    {"status": 400, "body": {"error": {"message": "context length exceeded"}}},
])
def test_malformed_replies_are_failed_verdicts(reply):
    sleeps = []
    with ChatServer([reply]) as server:
        v = make(server, sleeps).judge("p", "x", "y")
    assert v.winner is None and v.confidence is None and "error" in v.raw
    assert len(server.requests) == 1 and sleeps == []  # not retried: the same request would fail again


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failure_stops_with_a_clear_error(status, monkeypatch):
    monkeypatch.delenv("RLHFKIT_TEST_KEY", raising=False)
    with ChatServer([{"status": status, "body": {"error": {"message": "Incorrect API key provided"}}}]) as server:
        judge = make(server)
        with pytest.raises(AuthError) as e:
            judge_pairs(judge, [("p", "x", "y"), ("p", "xx", "y")], concurrency=2)
    assert isinstance(e.value, RlhfkitError) and e.value.exit_code == 2
    msg = str(e.value)
    assert f"HTTP {status}" in msg and "Incorrect API key provided" in msg and "$RLHFKIT_TEST_KEY is not set" in msg
    assert "--api-key-env" in msg
    assert len(server.requests) <= 2  # no retries, and no new questions once one call failed (2 threads)


def test_404_names_base_url_and_model():
    with ChatServer([{"status": 404, "body": {"error": {"message": "model not found"}}}]) as server:
        with pytest.raises(JudgeError, match="check --base-url .* 'judge-model'"):
            make(server).judge("p", "x", "y")


def test_connection_refused_is_retried_then_fails():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    sleeps = []
    judge = OpenAIJudge("m", base_url=f"http://127.0.0.1:{port}/v1", max_retries=2, backoff=0.1,
                        sleep=sleeps.append, api_key_env=None)
    v = judge.judge("p", "x", "y")
    assert v.winner is None and "gave up after 3 attempts" in v.raw["error"] and sleeps == [0.1, 0.2]


def test_bad_base_url():
    with pytest.raises(JudgeError, match="not an http"):
        OpenAIJudge("m", base_url="127.0.0.1:8000")


def test_rate_limiter_spaces_calls():
    t = [0.0]
    sleeps = []

    def sleep(d):
        sleeps.append(d)
        t[0] += d

    limiter = RateLimiter(2.0, clock=lambda: t[0], sleep=sleep)  # 2 requests/s -> one slot every 0.5 s
    for _ in range(4):
        limiter.wait()
    assert sleeps == [0.5, 0.5, 0.5] and t[0] == pytest.approx(1.5)
    assert RateLimiter(0.0).wait() == 0.0


def test_threads_and_both_orders_against_the_server():
    pairs = [("p", "a" * (i + 1), "b" * (6 - i)) for i in range(6)]
    with ChatServer(prefer_longer) as server:
        outcomes, calls = judge_pairs(make(server), pairs, concurrency=4)
    assert calls["judge_calls"] == 12 == len(server.requests)
    assert server.max_in_flight >= 2  # requests really overlapped
    expected = ["b" if i + 1 < 6 - i else "a" if i + 1 > 6 - i else "tie" for i in range(6)]
    assert [o.winner for o in outcomes] == expected
    assert count(outcomes)["disagreements"] == 0
