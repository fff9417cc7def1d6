"""Shared helpers of the web tests (test_web*.py, test_access_matrix.py, test_browser.py): a real SQLite Store in
tmp_path with an admin, two member annotators and a non-member, logins through real one-time links, and the
hidden form fields read the way a script would. No tests here."""
from __future__ import annotations

import re
import socket
import threading
import time
from types import SimpleNamespace

import uvicorn
from starlette.testclient import TestClient

from rlhfkit.collect.db import projects, users
from rlhfkit.collect.server import create_app
from rlhfkit.collect.store import NewItem, Store

ORIGIN = "http://testserver"  # TestClient's base URL: the Origin a same-site form POST carries
# an XSS corpus: each entry either runs script (setting window.__xss) or misleads (bidi), if rendered as markup
CORPUS = [
    "<script>window.__xss=1</script>",
    '<img src=x onerror="window.__xss=2">',
    '"><svg onload="window.__xss=3">',
    "javascript:window.__xss=4",
    "{{7*7}} {% if 1 %}jinja{% endif %} ${7*7}",
    "</textarea><script>window.__xss=5</script>",
    "'--><iframe src=javascript:alert(1)></iframe>",
    "\u202egnp.exe\u202c and \u2066isolate\u2069\u200f zero\u200bwidth",
]
XSS = " | ".join(CORPUS)
HIDDEN = re.compile(r'<input type="hidden" name="(csrf|nonce)" value="([^"]*)">')


def make_items(n: int, tag: str = "") -> list[NewItem]:
    return [NewItem(prompt=f"Question {i}{tag}: what is {i} + {i}?", response_a=f"It is {2 * i}.",
                    response_b=f"Maybe {2 * i + 1}?") for i in range(n)]


def make_world(tmp_path, n_items: int = 4, **options) -> SimpleNamespace:
    """Store + project "demo" (overlap 2 unless given) with ann and bob as members, eve a non-member, boss admin."""
    store = Store.open(str(tmp_path / "collect.db"))
    options.setdefault("overlap", 2)
    project = store.create_project("demo", "Demo project", **options)
    boss = store.add_user("boss", "admin")
    ann, bob, eve = store.add_user("ann"), store.add_user("bob"), store.add_user("eve")
    for u in (ann, bob):
        store.add_member(project.id, u.id)
    store.add_items(project.id, make_items(n_items))
    return SimpleNamespace(store=store, project=project, boss=boss, ann=ann, bob=bob, eve=eve)


def make_hostile_world(tmp_path) -> SimpleNamespace:
    """make_world with the XSS corpus in every field a page shows: prompts (text, and a message list with a hostile
    role), responses, guidelines, the project name and ann's name (written into the table directly: Store.add_user
    refuses such names, the templates must cope anyway). Reasons come from the annotator's form."""
    w = make_world(tmp_path, n_items=0, reason="optional", guidelines=f"Guidelines: {XSS}")
    w.store.add_items(w.project.id, [
        NewItem(prompt=f"prompt: {XSS}", response_a=f"answer A: {XSS}", response_b=f"answer B: {XSS}"),
        NewItem(prompt=[{"role": f"role {CORPUS[1]}", "content": f"turn: {XSS}"}, {"role": "user", "content": "ok"}],
                response_a=f"chat A: {XSS}", response_b=f"chat B: {XSS}"),
    ])
    with w.store.engine.begin() as conn:
        conn.execute(users.update().where(users.c.id == w.ann.id).values(name=f"ann {CORPUS[2]} {CORPUS[0]}"))
        conn.execute(projects.update().where(projects.c.id == w.project.id).values(name=f"Project {XSS}"))
    return w


def login(app, store, user) -> TestClient:
    """A TestClient logged in as `user` through a real one-time login link; redirects are not followed."""
    client = TestClient(app, follow_redirects=False)
    r = client.get(f"/login/{store.make_login_link(user.id)}")
    assert r.status_code == 303 and r.headers["location"] == "/", (r.status_code, r.text[:300])
    return client


def hidden_fields(html: str) -> dict[str, str]:
    """The csrf / nonce hidden inputs, in the exact form the spec promises (name before value)."""
    return {name: value for name, value in HIDDEN.findall(html)}


def csrf_of(client: TestClient) -> str:
    """The session's CSRF token, read from the home page's logout form."""
    return hidden_fields(client.get("/").text)["csrf"]


def post(client: TestClient, url: str, data: dict, *, origin: str | None = ORIGIN, **headers):
    if origin is not None:
        headers["origin"] = origin
    return client.post(url, data=data, headers=headers)


def open_next(client: TestClient, slug: str = "demo") -> tuple[str, dict]:
    """GET /p/{slug}/next -> the /a/{uid} URL and the page's hidden fields."""
    r = client.get(f"/p/{slug}/next")
    assert r.status_code == 303, (r.status_code, r.text[:300])
    url = r.headers["location"]
    page = client.get(url)
    assert page.status_code == 200, page.text[:300]
    return url, hidden_fields(page.text)


def label(client: TestClient, choice: str = "left", slug: str = "demo", **extra) -> tuple[str, object]:
    """Open the next item and submit `choice`; returns (the /a/{uid} URL, the POST response)."""
    url, fields = open_next(client, slug)
    return url, post(client, url, {**fields, "choice": choice, **extra})


def app_for(world, **kwargs):
    return create_app(world.store, **kwargs)


class LiveServer:
    """uvicorn serving `app` on a free 127.0.0.1 port from a daemon thread (the socket is bound before the thread
    starts, so there is no port race)."""

    def __init__(self, app):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()
