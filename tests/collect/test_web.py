"""The labelling web app over real HTTP (starlette's TestClient, httpx) and a real SQLite Store: login links,
the annotate -> submit -> next loop without JavaScript, idempotent submits, CSRF and Origin checks, caps, rate
limit, the history page's edits, the admin dashboard, the API, and the security headers on every response."""
from __future__ import annotations

import json
import threading

import pytest
from starlette.testclient import TestClient
from test_web_common import ORIGIN, app_for, csrf_of, hidden_fields, label, login, make_world, open_next, post

from rlhfkit.collect import quality, security
from rlhfkit.collect.server import ROUTES, create_app
from rlhfkit.collect.store import NewItem
from rlhfkit.errors import RlhfkitError


@pytest.fixture
def world(tmp_path):
    w = make_world(tmp_path)
    yield w
    w.store.close()


def judgments(world, user=None) -> list[dict]:
    rows = world.store.judgment_rows(world.project.id)
    return [r for r in rows if user is None or r["user_id"] == user.id]


def assert_security_headers(r) -> None:
    assert r.headers["content-security-policy"] == security.CSP
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert "'unsafe-inline'" not in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "same-origin"


# ----------------------------------------------------------------------------------------------
# login, sessions, cookies
# ----------------------------------------------------------------------------------------------
def test_login_link_is_one_time_and_logs_in_its_own_user(world):
    app = app_for(world)
    client = TestClient(app, follow_redirects=False)
    link = world.store.make_login_link(world.bob.id)
    assert client.head(f"/login/{link}").status_code == 200  # a link previewer's HEAD does not use the link up
    r = client.get(f"/login/{link}")
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{security.SESSION_COOKIE}=")
    assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower() and "Path=/" in cookie
    assert "Secure" not in cookie
    home = client.get("/")
    assert home.status_code == 200
    assert '<span class="who">bob</span>' in home.text  # the link's user, not another one
    assert "Demo project" in home.text and '/p/demo/next' in home.text
    # the same link a second time, in a fresh browser: refused, no cookie
    again = TestClient(app, follow_redirects=False).get(f"/login/{link}")
    assert again.status_code == 404 and "set-cookie" not in again.headers
    assert "already used" in again.text


def test_secure_cookies_flag_and_anonymous_401(world):
    app = create_app(world.store, secure_cookies=True)
    client = TestClient(app, follow_redirects=False)
    r = client.get(f"/login/{world.store.make_login_link(world.ann.id)}")
    assert "Secure" in r.headers["set-cookie"]
    anon = TestClient(app, follow_redirects=False).get("/")
    assert anon.status_code == 401 and "login link" in anon.text
    # a forged or stale cookie is treated as no session, and the browser is told to drop it
    forged = TestClient(app, follow_redirects=False, cookies={security.SESSION_COOKIE: "not-a-session"}).get("/")
    assert forged.status_code == 401 and f'{security.SESSION_COOKIE}=""' in forged.headers["set-cookie"]


def test_logout_ends_the_session(world):
    app = app_for(world)
    client = login(app, world.store, world.ann)
    r = post(client, "/logout", {"csrf": csrf_of(client)})
    assert r.status_code == 303
    client.cookies.clear()
    assert client.get("/").status_code == 401
    # the old cookie value is revoked in the store, not only forgotten by the browser
    token = r.request.headers["cookie"].split("=", 1)[1]
    assert world.store.session(token) is None


def test_disabled_user_is_logged_out(world):
    app = app_for(world)
    client = login(app, world.store, world.ann)
    world.store.disable_user("ann")
    assert client.get("/").status_code == 401


def test_login_rate_limit_counts_failures_per_ip(world):
    app = create_app(world.store, login_failures_per_minute=3)
    clock = [1000.0]
    app.state.web.limiter.clock = lambda: clock[0]
    bad = TestClient(app, follow_redirects=False, client=("10.0.0.1", 5000))
    assert [bad.get(f"/login/guess{i}").status_code for i in range(3)] == [404, 404, 404]
    good_link = world.store.make_login_link(world.ann.id)
    blocked = bad.get(f"/login/{good_link}")
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) >= 1
    # another address is not affected, and successful logins never count
    other = TestClient(app, follow_redirects=False, client=("10.0.0.2", 5000))
    for _ in range(5):
        assert other.get(f"/login/{world.store.make_login_link(world.bob.id)}").status_code == 303
    clock[0] += 61  # the window slides: the first address may try again, and the unused link still works
    assert bad.get(f"/login/{good_link}").status_code == 303


# ----------------------------------------------------------------------------------------------
# annotate -> submit -> next, as a browser without JavaScript does it
# ----------------------------------------------------------------------------------------------
def test_label_loop_without_javascript_maps_sides_back(world):
    app = app_for(world)
    client = login(app, world.store, world.ann)
    seen = []
    for k in range(4):
        url, fields = open_next(client)
        page = client.get(url).text
        assert set(fields) == {"csrf", "nonce"}
        assert f"{k} done of 4" in page
        uid = url.rsplit("/", 1)[1]
        a = world.store.assignment(uid, world.ann.id)
        # the page shows the responses in the store's randomised order
        assert page.index(a.left) < page.index(a.right)
        r = post(client, url, {**fields, "choice": "left", "client_ms": "1234"})
        assert r.status_code == 303 and r.headers["location"] == "/p/demo/next"
        seen.append(a)
    rows = {r["item_id"]: r for r in judgments(world, world.ann)}
    assert len(rows) == 4
    for a in seen:  # "left" is A exactly when the left side showed response A
        assert rows[a.item_id]["screen_choice"] == "left"
        assert rows[a.item_id]["choice"] == ("A" if a.left_is_a else "B")
    done = client.get("/p/demo/next")
    assert done.status_code == 200 and "All done" in done.text and "4 done of 4" in done.text


def test_double_post_back_button_and_second_tab_store_one_judgment(world):
    app = app_for(world)
    tab1 = login(app, world.store, world.ann)
    tab2 = TestClient(app, follow_redirects=False, cookies=tab1.cookies)  # same browser, second tab
    url1, fields1 = open_next(tab1)
    url2, fields2 = open_next(tab2)
    assert url1 == url2 and fields1 == fields2  # the active lease comes back, not a second item
    first = post(tab1, url1, {**fields1, "choice": "left"})
    repeat = post(tab1, url1, {**fields1, "choice": "left"})     # double click
    other_tab = post(tab2, url2, {**fields2, "choice": "right"})  # the stale second tab
    assert [r.status_code for r in (first, repeat, other_tab)] == [303, 303, 303]
    assert all(r.headers["location"] == "/p/demo/next" for r in (first, repeat, other_tab))
    rows = judgments(world, world.ann)
    assert len(rows) == 1 and rows[0]["screen_choice"] == "left"
    # back button: the old page redirects on to the next item instead of offering the form again
    back = tab1.get(url1)
    assert back.status_code == 303 and back.headers["location"] == "/p/demo/next"
    assert len(judgments(world)) == 1


def test_csrf_and_origin_are_checked_and_nothing_is_stored(world):
    app = app_for(world)
    client = login(app, world.store, world.ann)
    url, fields = open_next(client)
    good = {**fields, "choice": "left"}
    cases = {
        "no csrf": post(client, url, {"nonce": fields["nonce"], "choice": "left"}),
        "wrong csrf": post(client, url, {**good, "csrf": "x" * 43}),
        "bob's csrf": post(client, url, {**good, "csrf": csrf_of(login(app, world.store, world.bob))}),
        "other origin": post(client, url, good, origin="http://evil.example"),
        "other port": post(client, url, good, origin="http://testserver:8081"),
        "no origin or referer": post(client, url, good, origin=None),
        "null origin": post(client, url, good, origin="null"),
        "foreign referer": post(client, url, good, origin=None, referer="http://evil.example/a"),
    }
    assert {k: r.status_code for k, r in cases.items()} == {k: 403 for k in cases}
    assert all(r.headers["content-security-policy"] == security.CSP for r in cases.values())
    assert judgments(world) == []
    # the same form with a same-site Referer instead of Origin is accepted
    ok = post(client, url, good, origin=None, referer=f"{ORIGIN}{url}")
    assert ok.status_code == 303 and len(judgments(world)) == 1


def test_bad_nonce_bad_choice_caps_and_content_type(world):
    app = create_app(world.store, form_max_bytes=2048)
    client = login(app, world.store, world.ann)
    url, fields = open_next(client)
    assert post(client, url, {**fields, "nonce": "stale", "choice": "left"}).status_code == 400
    assert post(client, url, {**fields, "choice": "A"}).status_code == 400
    assert post(client, url, {**fields, "choice": "left", "strength": "huge"}).status_code == 400
    big = post(client, url, {**fields, "choice": "left", "reason": "x" * 3000})
    assert big.status_code == 413 and big.headers["content-security-policy"] == security.CSP
    as_json = client.post(url, content=json.dumps({**fields, "choice": "left"}),
                          headers={"origin": ORIGIN, "content-type": "application/json"})
    assert as_json.status_code == 415
    assert judgments(world) == []


def test_strength_reason_and_skip(tmp_path):
    w = make_world(tmp_path, n_items=3, reason="required", strength=True, guidelines="Prefer the correct sum.")
    app = app_for(w)
    client = login(app, w.store, w.ann)
    url, fields = open_next(client)
    page = client.get(url).text
    assert 'name="strength" value="slightly"' in page and 'name="strength" value="much"' in page
    assert "<textarea name=\"reason\"" in page and " required>" in page
    assert "<details class=\"guidelines\">" in page and "Prefer the correct sum." in page
    missing = post(client, url, {**fields, "choice": "right", "strength": "much"})
    assert missing.status_code == 400 and "asks for a reason" in missing.text
    assert 'value="much" checked' in missing.text  # the form comes back as it was filled in
    assert post(client, url, {**fields, "choice": "right", "strength": "much", "reason": " sum is right "}
                ).status_code == 303
    url2, fields2 = open_next(client)  # a tie's strength means nothing and is dropped
    assert post(client, url2, {**fields2, "choice": "tie", "strength": "much", "reason": "same"}).status_code == 303
    url3, fields3 = open_next(client)
    assert post(client, url3, {**fields3, "choice": "skip", "skip_reason": "", "reason": ""}).status_code == 400
    assert post(client, url3, {**fields3, "choice": "skip", "skip_reason": "Harmful or offensive content",
                               "reason": "slur in B"}).status_code == 303
    rows = sorted(judgments(w), key=lambda r: r["judgment_id"])
    assert [(r["screen_choice"], r["strength"], r["reason"]) for r in rows] == [
        ("right", "much", "sum is right"), ("tie", None, "same"),
        ("skip", None, "Harmful or offensive content: slur in B")]
    w.store.close()


def test_message_list_prompt_is_a_transcript_with_roles(tmp_path):
    w = make_world(tmp_path, n_items=0)
    prompt = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi\u202e there"},
              {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Bye?"}]
    w.store.add_items(w.project.id, [NewItem(prompt=prompt, response_a="Bye.", response_b="Goodbye!")])
    client = login(app_for(w), w.store, w.ann)
    url, _ = open_next(client)
    page = client.get(url).text
    turns = page[page.index('<section class="transcript"'):page.index("</section>")]
    assert turns.count('<div class="turn">') == 4
    roles = [part.split("</div>")[0] for part in turns.split('<div class="role">')[1:]]
    assert roles == ["system", "user", "assistant", "user"]
    assert "Hi\u202e" not in page  # the override is shown, not obeyed
    assert 'Hi<span class="ctl" title="hidden character U+202E">\u27e8U+202E\u27e9</span> there' in page
    w.store.close()


def test_history_shows_own_judgments_and_edits_become_revisions(world):
    app = app_for(world)
    ann = login(app, world.store, world.ann)
    url, r = label(ann, "left", reason="first thought")
    a = world.store.assignment(url.rsplit("/", 1)[1], world.ann.id)
    page = ann.get("/p/demo/history")
    assert page.status_code == 200
    assert page.text.index(a.left) < page.text.index(a.right)  # sides as the annotator saw them
    assert 'value="left" class="current"' in page.text
    (jid,) = [row["judgment_id"] for row in judgments(world, world.ann)]
    csrf = hidden_fields(page.text)["csrf"]
    edit = post(ann, f"/j/{jid}", {"csrf": csrf, "slug": "demo", "choice": "right", "reason": "second thought"})
    assert edit.status_code == 303 and edit.headers["location"] == "/p/demo/history"
    (row,) = judgments(world, world.ann)
    assert (row["screen_choice"], row["choice"], row["reason"], row["revision"]) == (
        "right", "B" if a.left_is_a else "A", "second thought", 1)
    # the spec's form (csrf, choice, strength, reason) without the page's extra "slug" works too, and goes home
    bare = post(ann, f"/j/{jid}", {"csrf": csrf, "choice": "tie", "reason": "third"})
    assert bare.status_code == 303 and bare.headers["location"] == "/"
    assert judgments(world, world.ann)[0]["revision"] == 2
    assert post(ann, f"/j/{jid}", {"csrf": csrf, "slug": "demo", "choice": "sideways"}).status_code == 400
    # bob can neither see nor edit it
    bob = login(app, world.store, world.bob)
    assert "second thought" not in bob.get("/p/demo/history").text
    for form in ({"slug": "demo", "choice": "left"}, {"choice": "left"}):
        assert post(bob, f"/j/{jid}", {"csrf": csrf_of(bob), **form}).status_code == 404
    assert judgments(world, world.ann)[0]["revision"] == 2


def test_admin_dashboard_shows_counts_users_and_quality(world):
    app = app_for(world)
    for user in (world.ann, world.bob):
        client = login(app, world.store, user)
        for _ in range(4):
            label(client, "left")
    admin = login(app, world.store, world.boss)
    home = admin.get("/admin")
    assert home.status_code == 200
    for name in ("boss", "ann", "bob", "eve"):
        assert f'<td class="name">{name}</td>' in home.text
    assert '<a href="/admin/p/demo">demo</a>' in home.text
    page = admin.get("/admin/p/demo").text
    stats = quality.project_stats(world.store.item_rows(world.project.id), world.store.judgment_rows(world.project.id))
    assert '<div class="stats">' in page
    for key in stats:  # every top-level number group of quality.project_stats is on the page
        assert f"<th>{key}</th>" in page
    assert "<th>judgments</th><td>8</td>" in page
    assert '<td class="name">ann</td>' in page and '<td class="name">bob</td>' in page


def test_api_stats_export_and_import(world):
    app = app_for(world)
    for user in (world.ann, world.bob):
        client = login(app, world.store, user)
        for _ in range(4):
            label(client, "tie" if user is world.bob else "left")
    token = world.store.new_api_token(world.boss.id, ["stats", "export", "import"])
    api = TestClient(app, headers={"authorization": f"Bearer {token}"})
    stats = api.get("/api/p/demo/stats")
    assert stats.status_code == 200 and stats.headers["content-security-policy"] == security.CSP
    expected = quality.project_stats(world.store.item_rows(world.project.id),
                                     world.store.judgment_rows(world.project.id))
    assert stats.json()["judgments"] == json.loads(json.dumps(expected["judgments"]))
    per = api.get("/api/p/demo/export", params={"aggregate": "per-judgment"})
    assert per.status_code == 200 and per.headers["content-type"].startswith("application/x-ndjson")
    records = [json.loads(line) for line in per.text.splitlines()]
    # ann said "left" on 4 items (4 A/B votes), bob said tie on the same 4 (never pairs): 4 records
    assert len(records) == 4 and all({"prompt", "chosen", "rejected"} <= set(r) for r in records)
    prov = api.get("/api/p/demo/export", params={"file": "provenance", "aggregate": "majority"})
    assert prov.status_code == 200 and prov.json()["policy"]["policy"] == "majority"
    assert api.get("/api/p/demo/export", params={"aggregate": "nonsense"}).status_code == 400
    assert api.get("/api/p/demo/export", params={"judge_outcomes": "/etc/passwd"}).status_code == 400
    body = "".join(json.dumps({"prompt": f"new {i}", "chosen": f"good {i}", "rejected": f"bad {i}"}) + "\n"
                   for i in range(3))
    imported = api.post("/api/p/demo/items", content=body + body.splitlines(keepends=True)[0])
    assert imported.status_code == 200, imported.text
    report = imported.json()
    assert (report["kind"], report["records"], report["added"], report["duplicates"]) == ("preferences", 4, 3, 1)
    assert len(world.store.item_rows(world.project.id)) == 7
    # one bad record among good ones: the good one is imported, the bad one reported with its line, 422
    mixed = api.post("/api/p/demo/items", content='{"prompt": "y", "chosen": "c", "rejected": "r"}\n{"prompt": "x"}\n')
    assert mixed.status_code == 422 and mixed.json()["added"] == 1
    assert mixed.json()["errors"][0].startswith("request.jsonl:2") and "/tmp" not in mixed.text
    assert len(world.store.item_rows(world.project.id)) == 8
    assert api.post("/api/p/demo/items", content=b"").status_code == 400
    assert api.post("/api/p/demo/items", params={"kind": "evil"}, content=body).status_code == 400
    candidates = json.dumps({"id": "c1", "prompt": "p", "response_a": "x", "response_b": "y", "generator": "g"})
    assert api.post("/api/p/demo/items", content=candidates + "\n").json()["kind"] == "candidates"


def test_api_import_cap(world):
    app = create_app(world.store, import_max_bytes=1000)
    token = world.store.new_api_token(world.boss.id, ["import"])
    api = TestClient(app, headers={"authorization": f"Bearer {token}"})
    body = json.dumps({"prompt": "p" * 2000, "chosen": "a", "rejected": "b"}) + "\n"
    assert api.post("/api/p/demo/items", content=body).status_code == 413
    assert len(world.store.item_rows(world.project.id)) == 4


# ----------------------------------------------------------------------------------------------
# headers, routes, threads
# ----------------------------------------------------------------------------------------------
def test_security_headers_on_every_response(world):
    def boom(ctx):
        raise ValueError("a bug")

    app = create_app(world.store, routes=ROUTES + [("GET", "/boom", "public", boom)], login_failures_per_minute=1)
    anon = TestClient(app, follow_redirects=False, raise_server_exceptions=False)
    client = login(app, world.store, world.ann)
    url, fields = open_next(client)
    responses = [
        anon.get("/healthz"), anon.get("/static/app.js"), anon.get("/static/app.css"), anon.get("/static/x.js"),
        anon.get("/nowhere"), anon.post("/healthz"), anon.get("/"), anon.get("/login/nope"), anon.get("/login/n2"),
        anon.get("/boom"), client.get("/"), client.get(url), client.get("/admin"), post(client, url, {"choice": "x"}),
        anon.get("/api/p/demo/stats"), post(client, url, {**fields, "choice": "tie"}),
    ]
    statuses = [r.status_code for r in responses]
    assert statuses == [200, 200, 200, 404, 404, 405, 401, 404, 429, 500, 200, 200, 404, 403, 401, 303]
    for r in responses:
        assert_security_headers(r)
    assert responses[1].headers["content-type"].startswith("text/javascript")
    assert "a bug" not in responses[9].text  # the 500 page says nothing about the code
    assert client.get("/").headers["cache-control"] == "no-store"  # pages with personal data are not cached


def test_every_route_declares_a_policy_and_a_route_without_one_is_refused(world):
    app = app_for(world)
    assert len(app.routes) == len(ROUTES)
    for route in app.routes:
        assert route.policy in ("public", "annotator", "admin") or route.policy.split(":")[1] in (
            "import", "export", "stats"), route.path
    handler = ROUTES[0][3]
    for bad in ([("GET", "/x", None, handler)], [("GET", "/x", "", handler)], [("GET", "/x", "api:delete", handler)],
                [("GET", "/x", handler)]):
        with pytest.raises(RlhfkitError, match="policy|expected"):
            create_app(world.store, routes=bad)


class ThreadRecorder:
    """Wraps the store and records which thread each call runs on."""

    def __init__(self, store):
        self.store, self.threads = store, []

    def __getattr__(self, name):
        fn = getattr(self.store, name)

        def call(*args, **kwargs):
            self.threads.append(threading.current_thread())
            return fn(*args, **kwargs)

        return call


def test_store_calls_run_in_the_threadpool(world):
    recorder = ThreadRecorder(world.store)
    app = create_app(recorder)
    client = login(app, world.store, world.ann)
    label(client, "left")
    client.get("/p/demo/history")
    assert len(recorder.threads) >= 8
    assert threading.main_thread() not in recorder.threads
    # starlette's threadpool (anyio worker threads), never the event loop's own thread
    assert all("worker" in t.name.lower() for t in recorder.threads), {t.name for t in recorder.threads}
