"""The labelling app in a real browser: Debian's headless Chromium driven by playwright's sync API (never
`playwright install`: it downloads), against a real uvicorn server in a background thread on 127.0.0.1 and a real
SQLite Store. Login by link, labelling by keyboard only and by mouse, reload / back / double click / two tabs, the
page with JavaScript off, the XSS corpus with a sentinel, phone and desktop layouts, and the issue's Done line:
two annotators label 20 pairs."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from test_web_common import CORPUS, LiveServer, make_hostile_world, make_items, make_world

from rlhfkit.collect.db import judgments as judgments_table
from rlhfkit.collect.server import create_app
from rlhfkit.collect.store import NewItem

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
REPO = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def ensure_chromium() -> None:
    if not Path(CHROMIUM).exists() and shutil.which("apt-get") and os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=False, capture_output=True)
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: this test needs Debian's chromium (`apt-get install -y chromium`; "
                    "`make test` installs it)")


@pytest.fixture(scope="module")
def browser():
    ensure_chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is missing: pip install -e '.[dev]' (do not run `playwright install`)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Watch:
    """Dialogs, console errors (CSP violations among them) and page errors seen by a page."""

    def __init__(self, page):
        self.dialogs, self.problems = [], []
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        page.on("console", lambda m: m.type in ("error", "warning") and self.problems.append(m.text))
        page.on("pageerror", lambda e: self.problems.append(str(e)))


def open_page(browser, url: str, **context_options):
    context = browser.new_context(**context_options)
    context.set_default_timeout(10_000)
    page = context.new_page()
    return context, page, Watch(page)


def log_in(page, server, store, user) -> None:
    page.goto(f"{server.url}/login/{store.make_login_link(user.id)}")
    assert page.url == f"{server.url}/", page.url


def press_and_wait(page, key: str) -> None:
    with page.expect_navigation():
        page.keyboard.press(key)


def click_and_wait(page, selector: str) -> None:
    with page.expect_navigation():
        page.click(selector)


def rows(w, user=None) -> list[dict]:
    out = w.store.judgment_rows(w.project.id)
    return [r for r in out if user is None or r["user_id"] == user.id]


def client_ms(w, judgment_id: int):
    with w.store.engine.connect() as conn:
        return conn.execute(judgments_table.select().where(judgments_table.c.id == judgment_id)).one().client_ms


def uid_of(page) -> str:
    assert "/a/" in page.url, page.url
    return page.url.rsplit("/", 1)[1]


@pytest.fixture
def world(tmp_path):
    w = make_world(tmp_path, n_items=6, overlap=2, reason="optional", strength=True,
                   guidelines="Prefer the response with the right sum.")
    with LiveServer(create_app(w.store)) as server:
        w.server = server
        yield w
    w.store.close()


# ----------------------------------------------------------------------------------------------
def test_keyboard_only_labelling(browser, world):
    w = world
    context, page, watch = open_page(browser, w.server.url)
    log_in(page, w.server, w.store, w.ann)
    assert "Demo project" in page.inner_text("main")
    page.goto(f"{w.server.url}/p/demo/next")
    assert page.inner_text("#progress") == "0 done of 6"
    before = page.url
    page.keyboard.press("Control+1")  # shortcuts take no modifier keys: this one is left to the browser
    page.keyboard.press("Alt+2")
    page.wait_for_timeout(300)
    assert page.url == before and rows(w, w.ann) == []
    uids = []
    for k, key in enumerate(["1", "2", "3", "4"]):
        uids.append(uid_of(page))
        press_and_wait(page, key)
        assert page.inner_text("#progress") == f"{k + 1} done of 6"
    # typing in the reason box: "1" is text, not a shortcut; Tab leaves the box and "2" submits with the reason
    uids.append(uid_of(page))
    page.focus("textarea[name=reason]")
    page.keyboard.type("1 is off by one")
    assert uid_of(page) == uids[-1] and page.input_value("textarea[name=reason]") == "1 is off by one"
    page.keyboard.press("Tab")
    press_and_wait(page, "2")
    # "s" opens the skip box and focuses its reason; Tab to the Skip button, Enter
    uids.append(uid_of(page))
    page.keyboard.press("s")
    assert page.evaluate("document.getElementById('skip').open") is True
    assert page.evaluate("document.activeElement.id") == "skip_reason"
    page.keyboard.press("Tab")
    press_and_wait(page, "Enter")
    assert "All done" in page.inner_text("main")
    got = {r["item_id"]: r for r in rows(w, w.ann)}
    items = [w.store.assignment(uid, w.ann.id).item_id for uid in uids]
    assert [got[i]["screen_choice"] for i in items] == ["left", "right", "tie", "both_bad", "right", "skip"]
    assert got[items[4]]["reason"] == "1 is off by one"
    assert got[items[5]]["reason"].startswith("I cannot judge this")
    assert all(client_ms(w, got[i]["judgment_id"]) >= 0 for i in items[:5])  # app.js sent the time on the page
    assert watch.dialogs == [] and watch.problems == []
    context.close()


def test_mouse_labelling_with_strength_and_reason(browser, world):
    w = world
    context, page, watch = open_page(browser, w.server.url)
    log_in(page, w.server, w.store, w.bob)
    page.click("a.go")  # the project link on the home page
    uid = uid_of(page)
    page.click("text=Guidelines")
    assert page.is_visible("text=Prefer the response with the right sum.")
    page.check("input[name=strength][value=much]")
    page.fill("textarea[name=reason]", "B adds up")
    click_and_wait(page, "button[value=right]")
    (row,) = rows(w, w.bob)
    assert (row["screen_choice"], row["strength"], row["reason"]) == ("right", "much", "B adds up")
    assert row["item_id"] == w.store.assignment(uid, w.bob.id).item_id
    # history: the judgment is listed and can be edited by mouse; the edit is a revision
    page.click("text=my judgments")
    page.click(f"#j{row['judgment_id']} button[value=tie]")
    page.wait_for_url("**/p/demo/history")
    (row,) = rows(w, w.bob)
    assert (row["screen_choice"], row["revision"]) == ("tie", 1)
    assert watch.dialogs == [] and watch.problems == []
    context.close()


def test_reload_back_double_click_and_two_tabs_store_one_judgment_each(browser, world):
    w = world
    context, page, watch = open_page(browser, w.server.url)
    log_in(page, w.server, w.store, w.ann)
    page.goto(f"{w.server.url}/p/demo/next")
    first = uid_of(page)
    nonce = page.get_attribute("input[name=nonce]", "value")
    page.reload()
    assert uid_of(page) == first and page.get_attribute("input[name=nonce]", "value") == nonce
    # double click: the second click is ignored by app.js and would be a no-op on the server anyway
    with page.expect_navigation():
        page.dblclick("button[value=left]")
    second = uid_of(page)
    assert second != first and len(rows(w, w.ann)) == 1
    # back: the done item's page sends us on to the current one; submitting there labels the current item
    page.go_back()
    page.wait_for_load_state()
    assert uid_of(page) == second
    click_and_wait(page, "button[value=right]")
    third = uid_of(page)
    # two tabs on the same lease: the second tab's late click adds nothing
    tab2 = context.new_page()
    tab2.goto(f"{w.server.url}/p/demo/next")
    assert uid_of(tab2) == third
    click_and_wait(page, "button[value=tie]")
    click_and_wait(tab2, "button[value=both_bad]")
    assert uid_of(tab2) == uid_of(page)  # both tabs are now on the same next lease
    got = rows(w, w.ann)
    assert len(got) == 3 and len({r["item_id"] for r in got}) == 3
    by_item = {r["item_id"]: r["screen_choice"] for r in got}
    assert [by_item[w.store.assignment(u, w.ann.id).item_id] for u in (first, second, third)] == [
        "left", "right", "tie"]
    assert watch.dialogs == [] and watch.problems == []
    context.close()


def test_javascript_disabled_still_submits(browser, world):
    w = world
    context, page, watch = open_page(browser, w.server.url, java_script_enabled=False)
    log_in(page, w.server, w.store, w.ann)
    page.goto(f"{w.server.url}/p/demo/next")
    first = uid_of(page)
    page.check("input[name=strength][value=slightly]")
    page.fill("textarea[name=reason]", "no script here")
    click_and_wait(page, "button[value=left]")
    with page.expect_navigation():  # without app.js a double click sends two POSTs: still one judgment
        page.dblclick("button[value=right]")
    page.click("#skip summary")  # open the skip box (a <details>: no script needed)
    page.select_option("select[name=skip_reason]", index=1)
    click_and_wait(page, "button[value=skip]")
    got = sorted(rows(w, w.ann), key=lambda r: r["judgment_id"])
    assert [(r["screen_choice"], r["strength"], r["reason"]) for r in got] == [
        ("left", "slightly", "no script here"), ("right", None, None), ("skip", None, "A response is broken or empty")]
    assert got[0]["item_id"] == w.store.assignment(first, w.ann.id).item_id
    assert client_ms(w, got[0]["judgment_id"]) is None  # no script ran to fill it in
    assert watch.dialogs == []
    context.close()


def test_xss_corpus_renders_as_literal_text(browser, tmp_path):
    w = make_hostile_world(tmp_path)
    with LiveServer(create_app(w.store)) as server:
        context, page, watch = open_page(browser, server.url)
        page.add_init_script("window.__xss = undefined;")
        log_in(page, server, w.store, w.ann)
        seen = []
        for _ in range(2):
            page.goto(f"{server.url}/p/demo/next")
            assert page.evaluate("window.__xss") is None
            left = page.inner_text("#left .text")
            assert CORPUS[0] in left and CORPUS[1] in left and CORPUS[2] in left  # literal text on screen
            assert "\u27e8U+202E\u27e9gnp.exe" in left and "\u202e" not in left
            page.click(".guidelines summary")
            assert CORPUS[0] in page.inner_text(".guidelines .text")
            seen.append(page.inner_text(".transcript"))
            page.fill("textarea[name=reason]", f"reason {CORPUS[0]} {CORPUS[5]}")
            click_and_wait(page, "button[value=left]")
        assert any(f"role {CORPUS[1]}".upper() in t.upper() for t in seen)  # the role label, as text
        for path in ("/", "/p/demo/history", "/p/demo/next"):
            page.goto(f"{server.url}{path}")
            assert page.evaluate("window.__xss") is None, path
            assert page.locator("img, svg, iframe").count() == 0, path
        assert CORPUS[2] in page.inner_text(".who")
        page.goto(f"{server.url}/p/demo/history")
        assert page.input_value("textarea[name=reason] >> nth=0") == f"reason {CORPUS[0]} {CORPUS[5]}"
        admin_ctx, admin, admin_watch = open_page(browser, server.url)
        admin.add_init_script("window.__xss = undefined;")
        log_in(admin, server, w.store, w.boss)
        for path in ("/admin", "/admin/p/demo"):
            admin.goto(f"{server.url}{path}")
            assert admin.evaluate("window.__xss") is None, path
            assert CORPUS[0] in admin.inner_text("main")
        for wt in (watch, admin_watch):
            assert wt.dialogs == []
            assert not [p for p in wt.problems if "Content Security Policy" in p or "Refused" in p], wt.problems
        context.close()
        admin_ctx.close()
    w.store.close()


def realistic_world(tmp_path):
    w = make_world(tmp_path, n_items=0, reason="optional", strength=True,
                   guidelines="Pick the answer a careful support agent would send. Ties are fine when both are "
                              "equally good; use 'both bad' when neither should be sent.")
    prompt = [{"role": "system", "content": "You are a helpful customer-support assistant."},
              {"role": "user", "content": "My order arrived with the wrong size. What should I do?"}]
    w.store.add_items(w.project.id, [NewItem(
        prompt=prompt,
        response_a="I'm sorry about that! You can exchange it for free: open Orders, choose the item, and select "
                   "\"Exchange\". A prepaid return label is emailed to you, and the right size ships as soon as the "
                   "courier scans your parcel.",
        response_b="Contact support.")] + make_items(11))
    return w


def test_screenshots_desktop_side_by_side_phone_stacked(browser, tmp_path):
    w = realistic_world(tmp_path)
    with LiveServer(create_app(w.store)) as server:
        for width, height in ((1280, 800), (390, 844)):
            context, page, watch = open_page(browser, server.url, viewport={"width": width, "height": height})
            log_in(page, server, w.store, w.ann)
            page.goto(f"{server.url}/p/demo/next")
            left, right = page.locator("#left").bounding_box(), page.locator("#right").bounding_box()
            if width == 1280:  # side by side, same row
                assert right["x"] >= left["x"] + left["width"] and abs(right["y"] - left["y"]) < 2
            else:  # stacked under ~700 px, and nothing wider than the screen
                assert right["y"] >= left["y"] + left["height"] and abs(right["x"] - left["x"]) < 2
                assert page.evaluate("document.documentElement.scrollWidth") <= width
            shot = tmp_path / f"annotate-{width}.png"
            page.screenshot(path=str(shot), full_page=True)
            data = shot.read_bytes()
            assert data[:8] == PNG_MAGIC and len(data) > 10_000
            if width == 1280 and os.environ.get("RLHFKIT_UPDATE_SCREENSHOTS") == "1":
                (REPO / "docs" / "img").mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(REPO / "docs" / "img" / "collect-annotate.png"))
            assert watch.problems == []
            context.close()
    w.store.close()


def test_two_annotators_label_20_pairs_in_a_real_browser(browser, tmp_path):
    """The issue's Done line: two people, 20 pairs, overlap 2; one by keyboard, one by mouse, interleaved."""
    w = make_world(tmp_path, n_items=20, overlap=2, reason="optional")
    with LiveServer(create_app(w.store)) as server:
        ann_ctx, ann, ann_watch = open_page(browser, server.url)
        bob_ctx, bob, bob_watch = open_page(browser, server.url)
        log_in(ann, server, w.store, w.ann)
        log_in(bob, server, w.store, w.bob)
        ann.goto(f"{server.url}/p/demo/next")
        bob.goto(f"{server.url}/p/demo/next")
        for k in range(20):
            press_and_wait(ann, "1234"[k % 4])
            click_and_wait(bob, ("button[value=left]", "button[value=right]")[k % 2])
        for page in (ann, bob):
            assert "All done" in page.inner_text("main") and page.inner_text("#progress") == "20 done of 20"
        assert ann_watch.problems == [] and bob_watch.problems == []
        ann_ctx.close()
        bob_ctx.close()
    got = rows(w)
    assert len(got) == 40
    per_item = {}
    for r in got:
        per_item.setdefault(r["item_id"], set()).add(r["user_id"])
    assert len(per_item) == 20 and all(users == {w.ann.id, w.bob.id} for users in per_item.values())
    progress = w.store.progress(w.project.id, w.ann.id)
    assert progress["items_complete"] == 20 and progress["judgments"] == 40
    assert {it["status"] for it in w.store.item_rows(w.project.id)} == {"full"}
    w.store.close()
