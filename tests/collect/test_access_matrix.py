"""Route x role access matrix over real HTTP and a real SQLite Store: every route of the app, every kind of caller,
the exact status code each gets, and nothing stored or changed by a refused request. A new route fails
`test_matrix_covers_every_route` until it has a row here.

Roles: anon (no cookie, no token); member (ann: member of "demo", owns the assignment and the judgment in the
URLs); other (bob: member, owns neither); nonmember (eve); admin (boss: admin, NOT a member of "demo"); tok_all
(boss's API token with import, export, stats); tok_stats (boss's token with stats only); tok_eve (eve's token with
all scopes: not a member of the project). Cookie users send their own valid CSRF token and a same-site Origin, so
a refusal here is about who they are, not about a missing token.
"""
from __future__ import annotations

import json

import pytest
from starlette.testclient import TestClient
from test_web_common import ORIGIN, make_world

from rlhfkit.collect import security
from rlhfkit.collect.server import ROUTES, create_app

ROLES = ("anon", "member", "other", "nonmember", "admin", "tok_all", "tok_stats", "tok_eve")
IMPORT_BODY = json.dumps({"prompt": "new prompt", "chosen": "good", "rejected": "bad"}) + "\n"

# (method, route template, concrete path): {role: status}, in ROLES order
MATRIX = {
    ("GET", "/healthz", "/healthz"): (200, 200, 200, 200, 200, 200, 200, 200),
    ("GET", "/static/{name}", "/static/app.js"): (200, 200, 200, 200, 200, 200, 200, 200),
    ("GET", "/login/{token}", "/login/not-a-link"): (404, 404, 404, 404, 404, 404, 404, 404),
    ("POST", "/logout", "/logout"): (401, 303, 303, 303, 303, 401, 401, 401),
    ("GET", "/", "/"): (401, 200, 200, 200, 200, 401, 401, 401),
    ("GET", "/p/{slug}/next", "/p/demo/next"): (401, 303, 303, 404, 404, 401, 401, 401),
    ("GET", "/a/{uid}", "/a/{uid}"): (401, 200, 404, 404, 404, 401, 401, 401),
    ("POST", "/a/{uid}", "/a/{uid}"): (401, 303, 404, 404, 404, 401, 401, 401),
    ("GET", "/p/{slug}/history", "/p/demo/history"): (401, 200, 200, 404, 404, 401, 401, 401),
    ("POST", "/j/{judgment_id:int}", "/j/{jid}"): (401, 303, 404, 404, 404, 401, 401, 401),
    ("GET", "/admin", "/admin"): (401, 404, 404, 404, 200, 401, 401, 401),
    ("GET", "/admin/p/{slug}", "/admin/p/demo"): (401, 404, 404, 404, 200, 401, 401, 401),
    ("GET", "/api/p/{slug}/stats", "/api/p/demo/stats"): (401, 401, 401, 401, 401, 200, 200, 404),
    ("GET", "/api/p/{slug}/export", "/api/p/demo/export"): (401, 401, 401, 401, 401, 200, 403, 404),
    ("POST", "/api/p/{slug}/items", "/api/p/demo/items"): (401, 401, 401, 401, 401, 200, 403, 404),
}
CELLS = [(key, role, codes[i]) for key, codes in MATRIX.items() for i, role in enumerate(ROLES)]


def test_matrix_covers_every_route(tmp_path):
    w = make_world(tmp_path)
    app = create_app(w.store)
    served = {(method, route.path) for route in app.routes for method in route.methods - {"HEAD"}}
    assert served == {(m, t) for m, t, _ in MATRIX}
    assert {(m, p) for m, p, _, _ in ROUTES} == served
    assert all(len(codes) == len(ROLES) for codes in MATRIX.values())
    w.store.close()


def snapshot(w) -> tuple:
    """What a refused request must not change: judgments (with revisions), items, the user's lease."""
    rows = w.store.judgment_rows(w.project.id)
    return (sorted((r["judgment_id"], r["choice"], r["revision"], r["reason"]) for r in rows),
            len(w.store.item_rows(w.project.id)), w.store.assignment(w.uid, w.ann.id).state)


def caller(app, w, role: str) -> tuple[TestClient, str]:
    """A client for the role and the CSRF token its forms carry ("" without a session)."""
    client = TestClient(app, follow_redirects=False)
    users = {"member": w.ann, "other": w.bob, "nonmember": w.eve, "admin": w.boss}
    tokens = {"tok_all": (w.boss, ["import", "export", "stats"]), "tok_stats": (w.boss, ["stats"]),
              "tok_eve": (w.eve, ["import", "export", "stats"])}
    if role in users:
        token, csrf = w.store.new_session(users[role].id)
        client.cookies.set(security.SESSION_COOKIE, token)
        return client, csrf
    if role in tokens:
        user, scopes = tokens[role]
        client.headers["authorization"] = f"Bearer {w.store.new_api_token(user.id, scopes)}"
    return client, ""


def send(client: TestClient, method: str, path: str, template: str, csrf: str, w):
    if method == "GET":
        return client.get(path)
    if template.startswith("/api/"):
        return client.post(path, content=IMPORT_BODY)
    form = {"csrf": csrf}
    if template == "/a/{uid}":
        form.update(nonce=w.nonce, choice="left")
    elif template.startswith("/j/"):
        form.update(slug="demo", choice="right", reason="changed")
    return client.post(path, data=form, headers={"origin": ORIGIN})


@pytest.mark.parametrize("key,role,expected", CELLS, ids=[f"{k[0]} {k[2]} {r}" for k, r, _ in CELLS])
def test_access(tmp_path, key, role, expected):
    method, template, path = key
    w = make_world(tmp_path, n_items=3)
    # ann holds one judged item (jid) and one active lease (uid)
    first = w.store.next_assignment(w.project.id, w.ann.id)
    w.jid = w.store.submit(first.uid, w.ann.id, "left", nonce=first.nonce).judgment_id
    lease = w.store.next_assignment(w.project.id, w.ann.id)
    w.uid, w.nonce = lease.uid, lease.nonce
    app = create_app(w.store)
    client, csrf = caller(app, w, role)
    before = snapshot(w)
    r = send(client, method, path.format(uid=w.uid, jid=w.jid), template, csrf, w)
    assert r.status_code == expected, (role, method, path, r.text[:300])
    assert r.headers["content-security-policy"] == security.CSP
    if expected >= 400:
        assert snapshot(w) == before  # refused: nothing stored, nothing edited, the lease untouched
    if expected == 303 and template == "/a/{uid}":
        assert len(w.store.judgment_rows(w.project.id)) == 2
    if expected == 303 and template.startswith("/j/"):
        (row,) = [j for j in w.store.judgment_rows(w.project.id) if j["judgment_id"] == w.jid]
        assert (row["revision"], row["reason"]) == (1, "changed")
    w.store.close()


def test_idor_unguessable_and_foreign_ids_look_the_same(tmp_path):
    """bob probing ann's assignment and judgment gets exactly what a made-up id gets: 404, same page."""
    w = make_world(tmp_path, n_items=3)
    a = w.store.next_assignment(w.project.id, w.ann.id)
    jid = w.store.submit(a.uid, w.ann.id, "left", nonce=a.nonce).judgment_id
    lease = w.store.next_assignment(w.project.id, w.ann.id)
    app = create_app(w.store)
    bob, csrf = caller(app, w, "other")
    foreign = bob.get(f"/a/{lease.uid}")
    made_up = bob.get(f"/a/{'0' * 32}")
    assert foreign.status_code == made_up.status_code == 404 and foreign.text == made_up.text
    for uid in (lease.uid, a.uid):  # active and done assignments alike
        r = bob.post(f"/a/{uid}", data={"csrf": csrf, "nonce": lease.nonce, "choice": "right"},
                     headers={"origin": ORIGIN})
        assert r.status_code == 404
    r = bob.post(f"/j/{jid}", data={"csrf": csrf, "slug": "demo", "choice": "right"}, headers={"origin": ORIGIN})
    assert r.status_code == 404
    rows = w.store.judgment_rows(w.project.id)
    assert [(j["user_id"], j["screen_choice"], j["revision"]) for j in rows] == [(w.ann.id, "left", 0)]
    assert w.store.assignment(lease.uid, w.ann.id).state == "active"
    w.store.close()
