"""The labelling web app of `rlhfkit collect serve`: `create_app(store) -> Starlette`.

Server-rendered HTML that works with JavaScript off (plain form POSTs answered with 303 redirects); app.js only
adds keyboard shortcuts, the client time and a disabled-after-first-click guard. The server owns the truth: the
page shows the two responses as "left" and "right" in the order the store randomised for this assignment, the form
posts the screen choice, and the store maps it back to A/B.

Every route is declared in ROUTES with its policy, one of
  public        anyone
  annotator     a logged-in user (cookie `rk_session`); on routes with {slug}, a member of that project
  admin         a logged-in admin (404 for anyone else logged in, so the admin pages do not announce themselves)
  api:<scope>   `Authorization: Bearer <api token>` carrying <scope> (import | export | stats)
and `create_app` refuses to build when a route has none. Another annotator's assignment or judgment, and a project
the user is not a member of, answer 404 (never 403). Store calls are synchronous, so each runs in a worker thread
(at most 8 at once, Web.db_threads) and 50 annotators waiting on SQLite do not block the event loop.
"""
from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import math
import re
import tempfile
import unicodedata
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable
from urllib.parse import parse_qsl

import anyio.to_thread
from anyio import CapacityLimiter
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup, escape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from rlhfkit.collect import security
from rlhfkit.errors import RlhfkitError

log = logging.getLogger("rlhfkit.collect.server")
HERE = Path(__file__).resolve().parent
API_SCOPES = ("import", "export", "stats")
SCREEN_CHOICES = ("left", "right", "tie", "both_bad")
STRENGTHS = ("slightly", "much")
SKIP_REASONS = ("I cannot judge this (topic or language I do not know)", "A response is broken or empty",
                "Harmful or offensive content", "Other (say why in the reason box)")
MAX_REASON_CHARS = 4000
CHOICE_LABELS = {"left": "A better", "right": "B better", "tie": "Tie", "both_bad": "Both bad", "skip": "Skipped"}


_UID = re.compile(r"[A-Za-z0-9_-]{1,100}")  # a well-formed assignment uid in a URL (others: 404 without a lookup)


class HttpError(Exception):
    """Stop handling and answer `status` with `message` (an HTML page, or JSON on API routes)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


@dataclass
class Ctx:
    """What a handler gets: the request, the app's shared state and who is asking (filled in by the policy)."""

    request: Request
    web: "Web"
    user: Any = None            # store User, or None on public routes
    session: Any = None         # store SessionInfo on cookie routes
    token: str | None = None    # the session cookie's value
    project: Any = None         # store Project for routes with {slug}
    form: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    found: Any = None           # on /a/{uid}: Store.assignment_context, read with the session (authorize_session)
    scopes: list[str] = field(default_factory=list)

    async def call(self, fn: Callable, *args, **kwargs):
        """Run a synchronous store call in a worker thread, at most `db_threads` at once (Web.db_limiter)."""
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs), limiter=self.web.db_limiter())


# ----------------------------------------------------------------------------------------------
# rendering: autoescaped Jinja, invisible characters made visible
# ----------------------------------------------------------------------------------------------
def _is_hidden_char(ch: str) -> bool:
    """Bidi controls, zero-width and other format characters, and C0/C1 controls other than tab and newline.
    ZERO WIDTH JOINER (U+200D) is kept: emoji sequences need it and it cannot reorder text."""
    if ch in "\n\t\r" or ch == "\u200d":
        return False
    return unicodedata.category(ch) in ("Cf", "Cc", "Zl", "Zp", "Cs")  # Cs: a lone surrogate


# characters that MAY be hidden (everything but word characters, tab/newline/space and printable ASCII);
# _is_hidden_char decides, so ordinary prose and CJK text never reach the callback
_CANDIDATE = re.compile(r"[^\w\n\t\r !-~]")


def _marker(match: re.Match) -> str:
    ch = match.group(0)
    if not _is_hidden_char(ch):
        return ch
    return f'<span class="ctl" title="hidden character U+{ord(ch):04X}">\u27e8U+{ord(ch):04X}\u27e9</span>'


def visible(text: Any) -> Markup:
    """Jinja filter: escape `text` FIRST, then show each hidden character as a visible marker, e.g. U+202E (RIGHT-
    TO-LEFT OVERRIDE) becomes <span class="ctl">⟨U+202E⟩</span>, so model text can neither run markup nor silently
    reorder what the annotator reads. Escaping only touches & < > " ', which are never candidates."""
    escaped = str(escape("" if text is None else str(text)))
    return Markup(_CANDIDATE.sub(_marker, escaped))


def visible_text(text: Any) -> str:
    """Jinja filter for places that cannot hold markup (<title>): hidden characters become plain "⟨U+202E⟩" text;
    autoescape then escapes the result as usual."""
    return "".join(f"\u27e8U+{ord(ch):04X}\u27e9" if _is_hidden_char(ch) else ch
                   for ch in ("" if text is None else str(text)))


def transcript(prompt: Any) -> list[dict]:
    """The prompt as turns: a plain string is one user turn; a message list is shown turn by turn."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    turns = []
    for msg in prompt or []:
        if isinstance(msg, dict):
            content = msg.get("content", "")
            turns.append({"role": str(msg.get("role", "?")),
                          "content": content if isinstance(content, str) else json.dumps(content, indent=1)})
        else:
            turns.append({"role": "?", "content": str(msg)})
    return turns


def number(value: Any) -> str:
    """Jinja filter for the stats tables: floats to 4 significant digits, everything else as text."""
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value).lower()
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def columns(rows: list) -> list[str]:
    """Jinja filter: the union of keys of a list of dicts, in first-seen order (a table's header)."""
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            seen.setdefault(key, None)
    return list(seen)


def make_env() -> Environment:
    """Jinja with autoescape ON for every template (not only *.html) and undefined names as errors."""
    # auto_reload=False: a template is compiled once and not re-checked on disk (a stat per page) while serving
    env = Environment(loader=FileSystemLoader(str(HERE / "templates")), autoescape=True, undefined=StrictUndefined,
                      auto_reload=False)
    env.filters.update(visible=visible, visible_text=visible_text, number=number, columns=columns)
    env.tests["mapping_list"] = lambda v: isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)
    env.globals.update(transcript=transcript, choice_labels=CHOICE_LABELS)
    return env


def json_safe(value: Any) -> Any:
    """NaN and infinities become null so the JSON is valid; tuples become lists; unknown objects become text."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)


class Web:
    """State shared by the handlers: the store, templates, static files, the login limiter and the caps."""

    def __init__(self, store, *, secure_cookies: bool, form_max_bytes: int, import_max_bytes: int,
                 login_failures_per_minute: int, db_threads: int = 8):
        self.store = store
        # store calls in flight at once: SQLite has one writer and reads take well under a millisecond, so more
        # threads only contend for the GIL and the write lock (50 annotators: ~40 threads, each query a handoff)
        self.db_threads = db_threads
        self._limiters: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self.secure_cookies = secure_cookies
        self.form_max_bytes, self.import_max_bytes = form_max_bytes, import_max_bytes
        self.limiter = security.LoginLimiter(max_failures=login_failures_per_minute)
        self.env = make_env()
        self.static: dict[str, tuple[bytes, str]] = {}
        for name, media in (("app.js", "text/javascript; charset=utf-8"), ("app.css", "text/css; charset=utf-8"),
                            ("favicon.svg", "image/svg+xml")):
            self.static[name] = ((HERE / "static" / name).read_bytes(), media)
        digest = hashlib.sha256(b"".join(data for data, _ in self.static.values())).hexdigest()[:10]
        self.env.globals["static_version"] = digest

    def db_limiter(self) -> CapacityLimiter:
        """The worker-thread limit of the running event loop (one per loop: tests run the app on several)."""
        loop = asyncio.get_running_loop()
        limiter = self._limiters.get(loop)
        if limiter is None:
            limiter = self._limiters[loop] = CapacityLimiter(self.db_threads)
        return limiter

    def page(self, ctx: Ctx, template: str, status: int = 200, **values) -> HTMLResponse:
        values.setdefault("user", ctx.user)
        values.setdefault("csrf", ctx.session.csrf if ctx.session else "")
        html = self.env.get_template(template).render(**values)
        return HTMLResponse(html, status_code=status)

    def error(self, ctx: Ctx, status: int, message: str, *, api: bool = False, headers=None) -> Response:
        if api:
            return JSONResponse({"error": message}, status_code=status, headers=headers)
        html = self.env.get_template("error.html").render(status=status, message=message, user=ctx.user, csrf="")
        return HTMLResponse(html, status_code=status, headers=headers)


# ----------------------------------------------------------------------------------------------
# policies: who may call a route (run before the handler; the handler never sees an unauthorised request)
# ----------------------------------------------------------------------------------------------
def check_policy(policy: Any, where: str) -> None:
    """The app refuses to build with a route whose policy is missing or unknown."""
    ok = policy in ("public", "annotator", "admin") or (
        isinstance(policy, str) and policy.startswith("api:") and policy[4:] in API_SCOPES)
    if not ok:
        raise RlhfkitError(f"route {where}: policy {policy!r} is not public | annotator | admin | api:<scope>")


async def parse_form(ctx: Ctx) -> dict[str, str]:
    """An application/x-www-form-urlencoded body (the only kind our forms send), capped; first value per name."""
    ctype = ctx.request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await security.read_body(ctx.request, ctx.web.form_max_bytes)
    if ctype != "application/x-www-form-urlencoded":
        raise HttpError(415, "forms must be sent as application/x-www-form-urlencoded")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=200)
    except (UnicodeDecodeError, ValueError) as e:
        raise HttpError(400, f"unreadable form: {e}") from None
    form: dict[str, str] = {}
    for key, value in pairs:
        form.setdefault(key, value)
    return form


async def authorize_session(ctx: Ctx, policy: str) -> None:
    """Cookie session -> user; admin role for admin routes; CSRF + Origin on POST; membership for {slug}.
    On a {slug} route the session, the project and the membership come from one store read (session_project),
    on /a/{uid} the session and the assignment's context (session_assignment; own_assignment checks it), fresh
    for every request; everything is checked in the same order as ever."""
    web, request = ctx.web, ctx.request
    ctx.token = request.cookies.get(security.SESSION_COOKIE)
    slug, uid = request.path_params.get("slug"), request.path_params.get("uid")
    info, project, member = None, None, False
    if ctx.token and slug is not None:
        info, project, member = await ctx.call(web.store.session_project, ctx.token, slug)
    elif ctx.token and uid is not None and _UID.fullmatch(uid) is not None:
        info, ctx.found = await ctx.call(web.store.session_assignment, ctx.token, uid,
                                         with_progress=request.method == "GET")
    elif ctx.token:
        info = await ctx.call(web.store.session, ctx.token)
    if info is None or info.user.disabled:
        raise HttpError(401, "You are not logged in: open the login link your admin gave you.")
    ctx.session, ctx.user = info, info.user
    if policy == "admin" and info.user.role != "admin":
        raise HttpError(404, "Not found.")
    if request.method == "POST":
        ctx.form = await parse_form(ctx)
        if not security.origin_ok(request.headers, request.headers.get("host")):
            raise HttpError(403, "This form was not sent from this site (Origin/Referer check failed).")
        if not security.csrf_ok(info.csrf, ctx.form.get("csrf")):
            raise HttpError(403, "The form's security token is missing or out of date: reload the page and retry.")
    if slug is not None:
        ctx.project = project
        if ctx.project is None:
            raise HttpError(404, "Not found.")
        if policy == "annotator" and not member:
            raise HttpError(404, "Not found.")


async def authorize_api(ctx: Ctx, scope: str) -> None:
    """Bearer API token -> user and scopes; the scope must be granted; the project must be the user's (or admin)."""
    web, request = ctx.web, ctx.request
    token = security.bearer_token(request.headers)
    found = await ctx.call(web.store.api_token, token) if token else None
    if found is None or found[0].disabled:
        raise HttpError(401, "missing, unknown, expired or revoked API token (Authorization: Bearer <token>)")
    ctx.user, ctx.scopes = found[0], list(found[1])
    if scope not in ctx.scopes:
        raise HttpError(403, f"this API token lacks the {scope!r} scope")
    slug = request.path_params.get("slug")
    if slug is not None:
        ctx.project = await ctx.call(web.store.project, slug)
        if ctx.project is None or (ctx.user.role != "admin"
                                   and not await ctx.call(web.store.is_member, ctx.project.id, ctx.user.id)):
            raise HttpError(404, f"no project {slug!r}")
    if request.method == "POST":
        ctx.body = await security.read_body(request, web.import_max_bytes)


def guarded(web: Web, policy: str, handler: Callable[[Ctx], Awaitable[Response]]):
    """The starlette endpoint for one route: apply the policy, run the handler, turn failures into pages."""
    api = policy.startswith("api:")

    async def endpoint(request: Request) -> Response:
        ctx = Ctx(request=request, web=web)
        try:
            if policy in ("annotator", "admin"):
                await authorize_session(ctx, policy)
            elif api:
                await authorize_api(ctx, policy[4:])
            return await handler(ctx)
        except HttpError as e:
            response = web.error(ctx, e.status, e.message, api=api)
            if e.status == 401 and ctx.token and not api:
                security.clear_session_cookie(response, secure=web.secure_cookies)
            return response
        except security.BodyTooLarge:
            return web.error(ctx, 413, "request body too large", api=api)
        except RlhfkitError as e:
            return web.error(ctx, 400, str(e), api=api)
        except Exception:  # a bug: log it, answer 500 with the security headers still on
            log.exception("error handling %s %s", request.method, request.url.path)
            return web.error(ctx, 500, "internal error (logged on the server)", api=api)

    endpoint.__name__ = handler.__name__
    return endpoint


# ----------------------------------------------------------------------------------------------
# public
# ----------------------------------------------------------------------------------------------
async def healthz(ctx: Ctx) -> Response:
    return PlainTextResponse("ok")


async def static_file(ctx: Ctx) -> Response:
    """/static/app.js, app.css and favicon.svg from memory (a fixed list: no path is ever joined from the URL)."""
    found = ctx.web.static.get(ctx.request.path_params["name"])
    if found is None:
        raise HttpError(404, "Not found.")
    data, media = found
    return Response(data, media_type=media, headers={"cache-control": "public, max-age=86400"})


async def login(ctx: Ctx) -> Response:
    """Consume a one-time login link, start a session, set the cookie and go home. A HEAD request (link
    previewers, mail scanners) does not consume the link."""
    web = ctx.web
    if ctx.request.method == "HEAD":
        return PlainTextResponse("")
    ip = ctx.request.client.host if ctx.request.client else "?"
    if web.limiter.blocked(ip):
        return web.error(ctx, 429, "Too many failed login attempts from your address: wait a minute.",
                         headers={"retry-after": str(web.limiter.retry_after_s(ip))})
    user = await ctx.call(web.store.use_login_link, ctx.request.path_params["token"])
    if user is None:
        web.limiter.failed(ip)
        raise HttpError(404, "This login link is unknown, expired or already used: ask your admin for a new one.")
    old = ctx.request.cookies.get(security.SESSION_COOKIE)
    if old:
        await ctx.call(web.store.end_session, old)
    token, _csrf = await ctx.call(web.store.new_session, user.id)
    response = RedirectResponse("/", status_code=303)
    security.set_session_cookie(response, token, secure=web.secure_cookies)
    return response


# ----------------------------------------------------------------------------------------------
# annotator
# ----------------------------------------------------------------------------------------------
async def logout(ctx: Ctx) -> Response:
    await ctx.call(ctx.web.store.end_session, ctx.token)
    response = RedirectResponse("/", status_code=303)
    security.clear_session_cookie(response, secure=ctx.web.secure_cookies)
    return response


def progress_view(project, progress: dict) -> dict:
    """The "n done of m" numbers: m is what this user can label (the non-gold items, or the project's per-user
    cap). n counts gold checks too, so with gold items n could pass m: m is then shown as n."""
    total = progress.get("items", 0)
    if getattr(project, "per_user_cap", None):
        total = min(total, project.per_user_cap)
    done = progress.get("done_by_user", 0)
    return {"done": done, "total": max(total, done), **progress}


async def index(ctx: Ctx) -> Response:
    store = ctx.web.store
    projects = await ctx.call(store.projects, ctx.user.id)
    rows = []
    for p in projects:
        rows.append({"project": p, "progress": progress_view(p, await ctx.call(store.progress, p.id, ctx.user.id))})
    return ctx.web.page(ctx, "index.html", rows=rows)


async def next_item(ctx: Ctx) -> Response:
    store, project = ctx.web.store, ctx.project
    assignment = await ctx.call(store.next_assignment, project.id, ctx.user.id)
    if assignment is not None:
        return RedirectResponse(f"/a/{assignment.uid}", status_code=303)
    progress = progress_view(project, await ctx.call(store.progress, project.id, ctx.user.id))
    return ctx.web.page(ctx, "done.html", project=project, progress=progress)


def own_assignment(ctx: Ctx):
    """(assignment in the URL, its project, the user's progress there on a GET, else None), or 404 when the uid is
    malformed or not this user's (or they left the project). Read with the session by authorize_session
    (Store.session_assignment), fresh for every request."""
    found = ctx.found
    if found is None:
        raise HttpError(404, "Not found.")
    assignment, project, member, progress = found
    if project is None or not member:
        raise HttpError(404, "Not found.")
    return assignment, project, progress


async def render_annotate(ctx: Ctx, assignment, project, *, error: str = "", status: int = 200,
                          progress: dict | None = None) -> Response:
    if progress is None:
        progress = await ctx.call(ctx.web.store.progress, project.id, ctx.user.id)
    return ctx.web.page(ctx, "annotate.html", status=status, a=assignment, project=project,
                        progress=progress_view(project, progress), error=error, form=ctx.form,
                        skip_reasons=SKIP_REASONS)


async def annotate_page(ctx: Ctx) -> Response:
    assignment, project, progress = own_assignment(ctx)
    if assignment.state in ("done", "skipped"):  # back button / old tab: go on to the next item
        return RedirectResponse(f"/p/{project.slug}/next", status_code=303)
    return await render_annotate(ctx, assignment, project, progress=progress)


def clean_reason(text: str | None) -> str | None:
    text = (text or "").strip()
    if len(text) > MAX_REASON_CHARS:
        raise HttpError(400, f"the reason is longer than {MAX_REASON_CHARS} characters")
    return text or None


def parse_choice(form: dict, project) -> tuple[str, str | None, str | None]:
    """(screen choice, strength, reason) from an annotate or edit form, validated against the project's options
    (project None: only the values' form is checked here; the store applies the project's reason policy)."""
    choice = form.get("choice", "")
    if choice not in SCREEN_CHOICES:
        raise HttpError(400, f"choice must be one of {', '.join(SCREEN_CHOICES)}, got {choice[:40]!r}")
    strength = form.get("strength") or None
    if strength is not None and strength not in STRENGTHS:
        raise HttpError(400, f"strength must be slightly or much, got {strength[:40]!r}")
    if choice in ("tie", "both_bad") or (project is not None and not project.strength):
        strength = None
    reason = clean_reason(form.get("reason"))
    if project is not None and project.reason == "off":
        reason = None
    if project is not None and project.reason == "required" and not reason:
        raise HttpError(400, "This project asks for a reason: say briefly why.")
    return choice, strength, reason


def parse_client_ms(value: str | None) -> int | None:
    try:
        ms = int(value or "")
    except ValueError:
        return None
    return ms if 0 <= ms < 2**31 else None


async def annotate_submit(ctx: Ctx) -> Response:
    """Store a judgment (or a skip) and go on: 303 -> /p/{slug}/next, also when this is a repeat of a stored one."""
    store = ctx.web.store
    assignment, project, _ = own_assignment(ctx)
    form, uid = ctx.form, assignment.uid
    nonce = form.get("nonce", "")
    if assignment.state in ("done", "skipped"):  # a repeat (double click, back button, second tab): nothing to do
        return RedirectResponse(f"/p/{project.slug}/next", status_code=303)
    try:
        if form.get("choice") == "skip":
            picked = form.get("skip_reason", "").strip()
            typed = clean_reason(form.get("reason")) or ""
            reason = ": ".join(x for x in (picked, typed) if x)[:MAX_REASON_CHARS]
            if not reason:
                raise HttpError(400, "Say why you skip (pick a reason).")
            result = await ctx.call(store.skip, uid, ctx.user.id, nonce=nonce, reason=reason)
        else:
            choice, strength, reason = parse_choice(form, project)
            result = await ctx.call(store.submit, uid, ctx.user.id, choice, nonce=nonce, strength=strength,
                                    reason=reason, client_ms=parse_client_ms(form.get("client_ms")))
    except HttpError as e:
        if e.status != 400:
            raise
        return await render_annotate(ctx, assignment, project, error=e.message, status=400)
    if result is None:
        raise HttpError(404, "Not found.")
    return RedirectResponse(f"/p/{project.slug}/next", status_code=303)


async def sides_of(ctx: Ctx, project_id: int, rows: list[dict]) -> dict[int, bool]:
    """judgment_id -> left_is_a for the history rows (from the rows themselves when the store gives it)."""
    if all("left_is_a" in r for r in rows):
        return {r["judgment_id"]: bool(r["left_is_a"]) for r in rows}
    wanted = {r["judgment_id"] for r in rows}
    judged = await ctx.call(ctx.web.store.judgment_rows, project_id)
    return {j["judgment_id"]: bool(j["left_is_a"]) for j in judged if j["judgment_id"] in wanted}


SCREEN_OF = {True: {"A": "left", "B": "right"}, False: {"A": "right", "B": "left"}}


async def history(ctx: Ctx) -> Response:
    """The user's own judgments, shown with the sides as they saw them, each with an edit form."""
    project = ctx.project
    rows = await ctx.call(ctx.web.store.history, project.id, ctx.user.id)
    sides = await sides_of(ctx, project.id, rows)
    entries = []
    for r in rows:
        left_is_a = sides.get(r["judgment_id"], True)
        screen = SCREEN_OF[left_is_a].get(r["choice"], r["choice"])
        entries.append({**r, "left": r["response_a"] if left_is_a else r["response_b"],
                        "right": r["response_b"] if left_is_a else r["response_a"], "screen_choice": screen})
    return ctx.web.page(ctx, "history.html", project=project, entries=entries)


async def revise(ctx: Ctx) -> Response:
    """Edit one of the user's judgments (the store keeps the old one as a revision); 404 when not theirs.
    The history page's forms also send `slug` (where to go back to); without it the edit still works and
    redirects home."""
    store, form = ctx.web.store, ctx.form
    project = None
    if form.get("slug"):
        slug = form["slug"]
        project = await ctx.call(store.project, slug) if re.fullmatch(r"[a-z0-9_-]{1,64}", slug) else None
        if project is None or not await ctx.call(store.is_member, project.id, ctx.user.id):
            raise HttpError(404, "Not found.")
    choice, strength, reason = parse_choice(form, project)
    ok = await ctx.call(store.revise, ctx.request.path_params["judgment_id"], ctx.user.id, choice,
                        strength=strength, reason=reason)
    if not ok:
        raise HttpError(404, "Not found.")
    return RedirectResponse(f"/p/{project.slug}/history" if project else "/", status_code=303)


# ----------------------------------------------------------------------------------------------
# admin
# ----------------------------------------------------------------------------------------------
async def admin_home(ctx: Ctx) -> Response:
    store = ctx.web.store
    projects = await ctx.call(store.projects, None)
    rows = [{"project": p, "progress": await ctx.call(store.progress, p.id, ctx.user.id)} for p in projects]
    users = await ctx.call(store.users)
    return ctx.web.page(ctx, "admin.html", rows=rows, users=users)


def project_stats(items: list[dict], judgments: list[dict]) -> tuple[Any, str]:
    """quality.project_stats(items, judgments), or (None, why) when it cannot be computed."""
    try:
        from rlhfkit.collect import quality
    except ImportError as e:
        return None, f"quality statistics are not available ({e})"
    try:
        return quality.project_stats(items, judgments), ""
    except RlhfkitError as e:
        return None, str(e)


async def admin_project(ctx: Ctx) -> Response:
    """Counts, per-annotator numbers and the quality statistics of one project, rendered as escaped tables."""
    store, project = ctx.web.store, ctx.project
    items = await ctx.call(store.item_rows, project.id)
    judgments = await ctx.call(store.judgment_rows, project.id)
    stats, why = await ctx.call(project_stats, items, judgments)
    status_counts: dict[str, int] = {}
    for it in items:
        status_counts[it["status"]] = status_counts.get(it["status"], 0) + 1
    names = {u.id: u.name for u in await ctx.call(store.users)}
    per_user: dict[str, dict] = {}
    for j in judgments:
        row = per_user.setdefault(names.get(j["user_id"], str(j["user_id"])),
                                  {"annotator": j["annotator"], "judgments": 0, "skips": 0, "late": 0})
        row["judgments"] += 1
        row["skips"] += j["choice"] == "skip"
        row["late"] += bool(j["late"])
    return ctx.web.page(ctx, "admin_project.html", project=project, n_items=len(items), n_judgments=len(judgments),
                        status_counts=status_counts, per_user=per_user, stats=json_safe(stats), stats_error=why)


# ----------------------------------------------------------------------------------------------
# API (Bearer tokens)
# ----------------------------------------------------------------------------------------------
async def api_stats(ctx: Ctx) -> Response:
    store, project = ctx.web.store, ctx.project
    items = await ctx.call(store.item_rows, project.id)
    judgments = await ctx.call(store.judgment_rows, project.id)
    stats, why = await ctx.call(project_stats, items, judgments)
    if stats is None:
        raise HttpError(503 if "not available" in why else 400, why)
    return JSONResponse(json_safe(stats))


# query parameter -> (keyword of export.export_project, parser); judge_outcomes (a server path) is deliberately absent
EXPORT_QUERY: dict[str, tuple[str, Callable[[str], Any]]] = {
    "aggregate": ("policy", str), "min_votes": ("min_votes", int), "min_agreement": ("min_agreement", float),
    "exclude_annotators_below_gold": ("exclude_annotators_below_gold", float),
    "margin": ("margin", lambda v: None if v.lower() == "none" else v), "format": ("fmt", str),
}
EXPORT_FILES = {"preferences": "output", "judgments": "judgments", "provenance": "provenance"}


def export_options(query) -> tuple[dict, str]:
    """GET /api/p/{slug}/export query -> (keyword arguments of export_project, which file to send back)."""
    options: dict[str, Any] = {}
    for key, value in query.items():
        if key == "file":
            continue
        if key not in EXPORT_QUERY:
            raise HttpError(400, f"unknown export option {key!r}; known: file, {', '.join(EXPORT_QUERY)}")
        name, parse = EXPORT_QUERY[key]
        try:
            options[name] = parse(value)
        except ValueError:
            raise HttpError(400, f"export option {key}={value[:40]!r} is not a number") from None
    which = query.get("file", "preferences")
    if which not in EXPORT_FILES:
        raise HttpError(400, f"file must be one of {', '.join(EXPORT_FILES)}, got {which[:40]!r}")
    return options, which


def run_export(store, project, options: dict, which: str) -> bytes:
    """Write the export into a temporary folder with export.export_project and return one of its files."""
    from rlhfkit.collect import export

    with tempfile.TemporaryDirectory(prefix="rlhfkit-export-") as tmp:
        summary = export.export_project(store, project, Path(tmp) / f"{project.slug}.jsonl", **options)
        return Path(summary[EXPORT_FILES[which]]).read_bytes()


async def api_export(ctx: Ctx) -> Response:
    """The project's preference file (or ?file=judgments|provenance), built with the query's aggregation policy."""
    options, which = export_options(ctx.request.query_params)
    data = await ctx.call(run_export, ctx.web.store, ctx.project, options, which)
    media, ext = ("application/json", "json") if which == "provenance" else ("application/x-ndjson", "jsonl")
    name = f"{ctx.project.slug}.{which}.{ext}" if which != "preferences" else f"{ctx.project.slug}.jsonl"
    return Response(data, media_type=media, headers={"content-disposition": f'attachment; filename="{name}"'})


IMPORT_KINDS = ("candidates", "preferences", "labels")


def run_import(store, project, user_id: int, body: bytes, kind: str | None, gold: bool) -> dict:
    """JSONL records -> importer.read_items -> store.add_items, as `rlhfkit collect import` does: the valid records
    are imported and every bad one is reported as "request.jsonl:LINE: field: message"."""
    from rlhfkit.collect import importer

    with tempfile.TemporaryDirectory(prefix="rlhfkit-import-") as tmp:
        path = Path(tmp) / "request.jsonl"
        path.write_bytes(body)
        result = importer.read_items(str(path), kind=kind, gold=gold)
        report = store.add_items(project.id, result.items) if result.items else {"added": 0, "duplicates": 0}
        errors = [str(e).replace(str(path), path.name) for e in result.errors]
    store.audit(user_id, "api_import", {"project": project.slug, "kind": result.kind, **report, "errors": len(errors)})
    return {"kind": result.kind, "records": result.records, "items": len(result.items), **report, "errors": errors}


async def api_import(ctx: Ctx) -> Response:
    """Import JSONL (candidates, preference or `rlhfkit label` records; ?kind= to force one, ?gold=1 for gold
    items). 200 with the report; 422 with the same report when some records were bad (the good ones are in)."""
    if not ctx.body.strip():
        raise HttpError(400, "empty body: send JSONL records (one JSON object a line)")
    kind = ctx.request.query_params.get("kind") or None
    if kind is not None and kind not in IMPORT_KINDS:
        raise HttpError(400, f"kind must be one of {', '.join(IMPORT_KINDS)}, got {kind[:40]!r}")
    gold = ctx.request.query_params.get("gold", "").lower() in ("1", "true", "yes")
    report = await ctx.call(run_import, ctx.web.store, ctx.project, ctx.user.id, ctx.body, kind, gold)
    if report["errors"]:
        report["error"] = f"{len(report['errors'])} bad record(s); first: {report['errors'][0]}"
    return JSONResponse(json_safe(report), status_code=422 if report["errors"] else 200)


# ----------------------------------------------------------------------------------------------
# the route table (every route with its policy) and the app factory
# ----------------------------------------------------------------------------------------------
ROUTES: list[tuple[str, str, str, Callable]] = [
    ("GET", "/healthz", "public", healthz),
    ("GET", "/static/{name}", "public", static_file),
    ("GET", "/login/{token}", "public", login),
    ("POST", "/logout", "annotator", logout),
    ("GET", "/", "annotator", index),
    ("GET", "/p/{slug}/next", "annotator", next_item),
    ("GET", "/a/{uid}", "annotator", annotate_page),
    ("POST", "/a/{uid}", "annotator", annotate_submit),
    ("GET", "/p/{slug}/history", "annotator", history),
    ("POST", "/j/{judgment_id:int}", "annotator", revise),
    ("GET", "/admin", "admin", admin_home),
    ("GET", "/admin/p/{slug}", "admin", admin_project),
    ("GET", "/api/p/{slug}/stats", "api:stats", api_stats),
    ("GET", "/api/p/{slug}/export", "api:export", api_export),
    ("POST", "/api/p/{slug}/items", "api:import", api_import),
]


def create_app(store, *, secure_cookies: bool = False, form_max_bytes: int = security.FORM_MAX_BYTES,
               import_max_bytes: int = security.IMPORT_MAX_BYTES, login_failures_per_minute: int = 10,
               routes: list[tuple] | None = None) -> Starlette:
    """The web app over `store` (a collect.store.Store). `secure_cookies=True` behind HTTPS. `routes` replaces
    ROUTES (tests use it to check that a route without a policy is refused)."""
    web = Web(store, secure_cookies=secure_cookies, form_max_bytes=form_max_bytes,
              import_max_bytes=import_max_bytes, login_failures_per_minute=login_failures_per_minute)
    built = []
    for row in ROUTES if routes is None else routes:
        if len(row) != 4:
            raise RlhfkitError(f"route {row!r}: expected (method, path, policy, handler)")
        method, path, policy, handler = row
        check_policy(policy, f"{method} {path}")
        route = Route(path, endpoint=guarded(web, policy, handler), methods=[method])
        route.policy = policy  # read by the access tests, and by the check below
        built.append(route)

    async def unmatched(request: Request, exc) -> Response:
        status = getattr(exc, "status_code", 404)
        message = "Method not allowed." if status == 405 else "Not found."
        return web.error(Ctx(request=request, web=web), status, message,
                         api=request.url.path.startswith("/api/"))

    app = Starlette(routes=built, middleware=[Middleware(security.SecurityHeaders)],
                    exception_handlers={404: unmatched, 405: unmatched})
    missing = [getattr(r, "path", r) for r in app.routes if getattr(r, "policy", None) is None]
    if missing:
        raise RlhfkitError(f"routes without a policy: {missing}")
    app.state.web = web
    return app
