"""Web security for `rlhfkit collect serve`: headers, cookies, CSRF, origin checks, body caps, login rate limit.

Everything here is small and framework-light on purpose, so a reviewer can check it in one sitting:
- `SecurityHeaders`: a pure ASGI middleware that puts the strict CSP (no inline script or style), nosniff,
  a same-origin referrer policy and `Cache-Control: no-store` (unless the response chose one) on EVERY response,
  errors and static files included.
- the session cookie `rk_session` (HttpOnly, SameSite=Lax, Secure over HTTPS); the store keeps only its hash.
- `csrf_ok` + `origin_ok`: every cookie-authenticated POST carries the session's CSRF token and an Origin (or
  Referer) whose host is the server's own; API routes use Bearer tokens (no ambient authority), so they need neither.
- `read_body`: reads a request body up to a cap (413 beyond it), whether or not Content-Length is sent.
- `LoginLimiter`: in-memory per-IP limit on FAILED login-link attempts, so guessing is throttled while a room of
  annotators logging in from one NAT address (or a load test on 127.0.0.1) is not.
"""
from __future__ import annotations

import hmac
import time
from collections import deque
from urllib.parse import urlsplit

SESSION_COOKIE = "rk_session"
SESSION_TTL_S = 12 * 3600
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'; base-uri 'none'; "
       "frame-ancestors 'none'; form-action 'self'")
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
_OURS = {name for name, _ in SECURITY_HEADERS}
FORM_MAX_BYTES = 64 * 1024          # annotate / edit / logout forms
IMPORT_MAX_BYTES = 32 * 1024 * 1024  # POST /api/p/{slug}/items (JSONL), configurable in create_app


class SecurityHeaders:
    """ASGI middleware: add the security headers to every HTTP response (replacing any the app set itself)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in _OURS]
                if not any(k.lower() == b"cache-control" for k, _ in headers):
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers + SECURITY_HEADERS}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def set_session_cookie(response, token: str, *, secure: bool, max_age: int = SESSION_TTL_S) -> None:
    """The session cookie: HttpOnly (no script reads it), SameSite=Lax (not sent on cross-site POSTs)."""
    response.set_cookie(SESSION_COOKIE, token, max_age=max_age, path="/", secure=secure, httponly=True,
                        samesite="lax")


def clear_session_cookie(response, *, secure: bool) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", secure=secure, httponly=True, samesite="lax")


def csrf_ok(expected: str, given: str | None) -> bool:
    """Constant-time comparison of the session's CSRF token with the form's."""
    return bool(expected) and bool(given) and hmac.compare_digest(expected.encode(), given.encode())


def origin_ok(headers, host: str | None) -> bool:
    """True when the Origin header (or, without one, the Referer) names this server's host[:port].

    A POST with neither is refused: every browser that matters sends Origin on form POSTs, and a
    non-browser client can send it too. `host` is the request's Host header.
    """
    if not host:
        return False
    source = headers.get("origin") or headers.get("referer")
    if not source or source == "null":
        return False
    netloc = urlsplit(source).netloc
    return bool(netloc) and netloc.lower() == host.lower()


def bearer_token(headers) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    value = headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class BodyTooLarge(Exception):
    """The request body is over its cap (answered with 413)."""


async def read_body(request, cap: int) -> bytes:
    """The request body, at most `cap` bytes; BodyTooLarge beyond it (checked on Content-Length and while reading,
    so a chunked upload without a length cannot get past the cap)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > cap:
                raise BodyTooLarge()
        except ValueError:
            raise BodyTooLarge() from None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise BodyTooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


class LoginLimiter:
    """At most `max_failures` failed login-link attempts per client IP in a sliding window of `window_s` seconds;
    while an IP is over it, every attempt from it (even with a valid link) is answered 429. In memory: a restart
    forgets it, which is fine for a throttle."""

    def __init__(self, max_failures: int = 10, window_s: float = 60.0, clock=time.monotonic):
        self.max_failures, self.window_s, self.clock = max_failures, window_s, clock
        self._failures: dict[str, deque] = {}

    def _recent(self, ip: str) -> deque:
        now = self.clock()
        q = self._failures.get(ip)
        if q is None:
            return deque()
        while q and now - q[0] > self.window_s:
            q.popleft()
        if not q:
            del self._failures[ip]
        return q

    def blocked(self, ip: str) -> bool:
        return len(self._recent(ip)) >= self.max_failures

    def retry_after_s(self, ip: str) -> int:
        q = self._recent(ip)
        return max(1, int(self.window_s - (self.clock() - q[0])) + 1) if q else 1

    def failed(self, ip: str) -> None:
        if len(self._failures) > 10_000:  # keep memory bounded under a spray of addresses
            for key in list(self._failures)[:5_000]:
                del self._failures[key]
        self._failures.setdefault(ip, deque()).append(self.clock())
