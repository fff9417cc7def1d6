"""`openai:MODEL`: any OpenAI-compatible chat-completions endpoint as a judge (vLLM, Ollama, llama.cpp's server,
hosted APIs), with the standard library's urllib only.

One request per ordered pair: POST {base_url}/chat/completions with the judging prompt (judges/prompt.py) as the
user message, temperature 0 and a few max_tokens. The reply's text is read by `parse_answer`: "A", "B" or "tie"
(with light decoration); anything else is a failed verdict (winner None), never a guess. With `logprobs=True` the
server is asked for the answer token's top log-probs and confidence = P(winner) / (P(A) + P(B)); otherwise None.

Failures and what happens:
    401 / 403                      stop the run with a message about the API key (no retries: they cannot help)
    404                            stop: wrong --base-url or model name
    429, 408, 5xx, timeouts,       retry up to max_retries times, waiting Retry-After when the server sends it, else
    connection errors              backoff * 2**attempt seconds (both capped at max_backoff); then winner None
    other 4xx (e.g. prompt too     winner None at once (that request would fail again)
    long), malformed replies
Requests from all threads share one rate limit (`rate_limit` requests per second, 0 = none).
The API key is read from the environment variable `api_key_env` (default OPENAI_API_KEY); when it is unset no
Authorization header is sent (local servers need none).
"""
from __future__ import annotations

import email.utils
import http.client
import json
import math
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable, Optional

from rlhfkit.judges.base import JudgeError, Verdict
from rlhfkit.judges.prompt import DEFAULT_RUBRIC, parse_answer, prompt_tag, render

DEFAULT_BASE_URL = "https://api.openai.com/v1"
RETRY_STATUSES = {408, 409, 425, 429}


class AuthError(JudgeError):
    """The server refused the API key (401/403)."""


class RateLimiter:
    """At most `rate` calls per second across threads: each `wait()` takes the next free slot, 1/rate apart."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.rate = rate
        self.clock, self.sleep = clock, sleep
        self._next = -math.inf
        self._lock = threading.Lock()

    def wait(self) -> float:
        """Block until this call's slot; returns the seconds waited."""
        if self.rate <= 0:
            return 0.0
        with self._lock:
            now = self.clock()
            start = max(now, self._next)
            self._next = start + 1.0 / self.rate
        delay = start - now
        if delay > 0:
            self.sleep(delay)
        return max(delay, 0.0)


def retry_after_seconds(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """A Retry-After header (seconds, or an HTTP date) -> seconds to wait (>= 0), None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


def _is_loopback(host: Optional[str]) -> bool:
    return host in ("localhost", "127.0.0.1", "::1") or bool(host and host.startswith("127."))


def _snippet(data: bytes, n: int = 300) -> str:
    text = data.decode("utf-8", errors="replace").strip()
    try:  # the usual error shape: {"error": {"message": ...}}
        err = json.loads(text).get("error")
        if isinstance(err, dict) and err.get("message"):
            text = str(err["message"])
        elif isinstance(err, str):
            text = err
    except (ValueError, AttributeError):
        pass
    return text[:n]


class OpenAIJudge:
    concurrent = True

    def __init__(self, model: str, *, rubric: Optional[str] = None, base_url: str = DEFAULT_BASE_URL,
                 api_key_env: Optional[str] = "OPENAI_API_KEY", timeout: float = 60.0, max_retries: int = 5,
                 backoff: float = 1.0, max_backoff: float = 60.0, rate_limit: float = 0.0, max_tokens: int = 16,
                 logprobs: bool = False, sleep: Callable[[float], None] = time.sleep):
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise JudgeError(f"--base-url {base_url!r} is not an http(s) URL (e.g. http://127.0.0.1:8000/v1)")
        if timeout <= 0 or max_retries < 0 or backoff < 0 or rate_limit < 0:
            raise JudgeError("timeout must be > 0; retries, back-off and rate limit >= 0")
        self.model = model
        self.rubric = rubric or DEFAULT_RUBRIC
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.api_key_env = api_key_env
        self.api_key = os.environ.get(api_key_env) if api_key_env else None
        self.timeout, self.max_retries = timeout, max_retries
        self.backoff, self.max_backoff = backoff, max_backoff
        self.max_tokens, self.logprobs = max_tokens, logprobs
        self.sleep = sleep
        self.limiter = RateLimiter(rate_limit, sleep=sleep)
        # loopback servers are reached directly, whatever proxy the environment names
        handlers = [urllib.request.ProxyHandler({})] if _is_loopback(parts.hostname) else []
        self._opener = urllib.request.build_opener(*handlers)
        self.judge_id = f"openai:{model}@{parts.netloc}|{prompt_tag(self.rubric)}"

    # ------------------------------------------------------------------------------------------
    def _request(self, body: bytes) -> urllib.request.Request:
        headers = {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": "rlhfkit-judge"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return urllib.request.Request(self.url, data=body, headers=headers, method="POST")

    def _auth_message(self, status: int, detail: str) -> str:
        if not self.api_key_env:
            key = "no API key is sent (--api-key-env is empty)"
        elif self.api_key:
            key = f"the key in ${self.api_key_env} was refused"
        else:
            key = f"${self.api_key_env} is not set, so no key was sent"
        return (f"judge {self.judge_id}: {self.url} answered HTTP {status} ({detail or 'no detail'}): {key}. "
                f"Put a valid API key in an environment variable and name it with --api-key-env "
                f"(default OPENAI_API_KEY); nothing was retried")

    def judge(self, prompt: Any, response_a: Any, response_b: Any) -> Verdict:
        payload: dict[str, Any] = {"model": self.model, "temperature": 0, "max_tokens": self.max_tokens,
                                   "messages": [{"role": "user",
                                                 "content": render(prompt, response_a, response_b, self.rubric)}]}
        if self.logprobs:
            payload.update(logprobs=True, top_logprobs=5)
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        last = ""
        for attempt in range(self.max_retries + 1):
            self.limiter.wait()
            delay = self.backoff * 2 ** attempt
            try:
                with self._opener.open(self._request(body), timeout=self.timeout) as resp:
                    data = resp.read()
                return self.read_reply(data)
            except urllib.error.HTTPError as e:
                detail = _snippet(e.read() if e.fp is not None else b"")
                if e.code in (401, 403):
                    raise AuthError(self._auth_message(e.code, detail)) from None
                if e.code == 404:
                    raise JudgeError(f"judge {self.judge_id}: {self.url} answered HTTP 404 ({detail or 'not found'});"
                                     f" check --base-url (it usually ends in /v1) and the model name "
                                     f"{self.model!r}") from None
                if e.code not in RETRY_STATUSES and e.code < 500:
                    return Verdict(None, None, {"error": f"HTTP {e.code}: {detail}"}, self.judge_id)
                last = f"HTTP {e.code}: {detail}"
                wait = retry_after_seconds(e.headers.get("Retry-After") if e.headers else None)
                if wait is not None:
                    delay = wait
            except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException, OSError) as e:
                reason = getattr(e, "reason", e)
                last = f"{type(reason).__name__}: {reason}" if str(reason) else type(reason).__name__
            if attempt < self.max_retries:
                self.sleep(min(delay, self.max_backoff))
        return Verdict(None, None, {"error": f"gave up after {self.max_retries + 1} attempts; last: {last}"},
                       self.judge_id)

    def read_reply(self, data: bytes) -> Verdict:
        """A chat-completions response body -> Verdict (winner None when it is not one clear answer)."""
        try:
            reply = json.loads(data)
            choice = reply["choices"][0]
            content = choice["message"]["content"]
            if not isinstance(content, str):
                raise TypeError("content is not text")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            return Verdict(None, None, {"error": "malformed reply", "reply": _snippet(data, 500)}, self.judge_id)
        winner = parse_answer(content)
        raw: dict[str, Any] = {"reply": content[:500]}
        if winner is None:
            raw["error"] = "reply is not A, B or tie"
        confidence = None
        probs = _answer_probs(choice)
        if probs is not None:
            raw.update(p_a=probs[0], p_b=probs[1])
            if winner in ("a", "b") and sum(probs) > 0:
                confidence = probs[0 if winner == "a" else 1] / sum(probs)
        return Verdict(winner, confidence, raw, self.judge_id)


def _answer_probs(choice: dict) -> Optional[tuple[float, float]]:
    """(P(A), P(B)) from the first content token's top_logprobs, when the server returned them."""
    try:
        first = choice["logprobs"]["content"][0]
        tops = first.get("top_logprobs") or [first]
    except (KeyError, IndexError, TypeError, AttributeError):
        return None
    p = {"A": 0.0, "B": 0.0}
    for t in tops:
        if not isinstance(t, dict):
            continue
        tok = str(t.get("token", "")).strip().upper()
        if tok in p and isinstance(t.get("logprob"), (int, float)):
            p[tok] += math.exp(t["logprob"])
    return (p["A"], p["B"]) if p["A"] + p["B"] > 0 else None
