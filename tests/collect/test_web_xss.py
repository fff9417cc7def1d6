"""Model text, reasons, guidelines and names are data, never markup: an XSS corpus put into every field a page
renders comes back escaped on every page (the raw payload absent, its escaped form present), and the parsed pages
hold no tag, event handler or javascript: URL that the templates did not write themselves. test_browser.py runs
the same corpus in a real Chromium with a sentinel."""
from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from markupsafe import escape
from test_web_common import CORPUS, XSS, hidden_fields, login, make_hostile_world, open_next, post

from rlhfkit.collect.server import create_app, visible

# the tags our templates write; anything else in a page came from data
OUR_TAGS = {"html", "head", "meta", "title", "link", "script", "body", "header", "nav", "a", "span", "form", "input",
            "button", "main", "h1", "h2", "p", "div", "details", "summary", "section", "article", "fieldset",
            "legend", "label", "textarea", "kbd", "select", "option", "ul", "li", "table", "thead", "tbody", "tr",
            "th", "td", "small", "code"}


class Tags(HTMLParser):
    """Every start tag with its attributes."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def assert_inert(html: str, where: str) -> None:
    for payload in CORPUS:
        if any(ch in payload for ch in "<>\"'"):
            assert payload not in html, (where, payload)
    for tag, attrs in Tags(html).tags:
        assert tag in OUR_TAGS, (where, tag, attrs)
        assert not any(name.startswith("on") for name in attrs), (where, tag, attrs)
        assert "style" not in attrs, (where, tag, attrs)  # the CSP allows no inline style either
        assert not any((v or "").strip().lower().startswith("javascript:") for v in attrs.values()), (where, attrs)
        if tag == "script":
            assert attrs.get("src", "").startswith("/static/app.js?"), (where, attrs)
    assert html.count("<script") == 1, where
    # hidden characters are shown as markers everywhere but inside a textarea, whose text is the editable value
    shown = re.sub(r"<textarea[^>]*>.*?</textarea>", "", html, flags=re.S)
    assert "\u202e" not in shown and "\u2066" not in shown and "\u200b" not in shown, where


def escaped(payload: str) -> str:
    """How a payload without hidden characters must appear: HTML-escaped (markupsafe, not our filter)."""
    return str(escape(payload))


@pytest.fixture
def hostile(tmp_path):
    w = make_hostile_world(tmp_path)
    yield w
    w.store.close()


def test_store_refuses_markup_in_user_names(store):
    from rlhfkit.errors import RlhfkitError

    for payload in CORPUS[:3]:
        with pytest.raises(RlhfkitError, match="bad user name"):
            store.add_user(payload)


def test_xss_corpus_is_escaped_on_every_page(hostile):
    w = hostile
    app = create_app(w.store)
    ann = login(app, w.store, w.ann)
    pages = {"home": ann.get("/").text}
    for k in range(2):
        url, fields = open_next(ann)
        page = ann.get(url).text
        pages[f"annotate {k}"] = page
        assert escaped(f"answer A: {CORPUS[0]}") in page or escaped(f"chat A: {CORPUS[0]}") in page
        assert escaped(CORPUS[1]) in page and escaped(CORPUS[6]) in page
        assert "{{7*7}} {% if 1 %}jinja{% endif %} ${7*7}" in page  # shown as typed, never evaluated
        r = post(ann, url, {**fields, "choice": "left", "reason": f"reason: {XSS}"})
        assert r.status_code == 303
    pages["done"] = ann.get("/p/demo/next").text
    pages["history"] = ann.get("/p/demo/history").text
    admin = login(app, w.store, w.boss)
    pages["admin"] = admin.get("/admin").text
    pages["admin project"] = admin.get("/admin/p/demo").text
    for where, html in pages.items():
        assert_inert(html, where)
    # every field made it to a page, escaped
    ann_name = escaped(f"ann {CORPUS[2]} {CORPUS[0]}")
    for where in ("home", "annotate 0", "history", "done"):
        assert f'<span class="who">{ann_name}</span>' in pages[where], where
    assert f'<td class="name">{ann_name}</td>' in pages["admin"]
    assert f'<td class="name">{ann_name}</td>' in pages["admin project"]
    assert escaped("Guidelines: " + CORPUS[0]) in pages["annotate 0"] and escaped(CORPUS[0]) in pages["admin project"]
    assert f'<div class="role">{escaped("role " + CORPUS[1])}</div>' in pages["annotate 1"]
    assert escaped(f"reason: {CORPUS[0]}") in pages["history"]
    assert escaped(f"Project {CORPUS[0]}") in pages["admin"]
    # the reason also goes back into the edit form's textarea, exactly (round trip), and its "</textarea>"
    # cannot end the element early
    assert f'maxlength="4000">{escaped("reason: " + XSS)}</textarea>' in pages["history"]
    # bidi and zero-width characters are shown as visible markers
    marker = '<span class="ctl" title="hidden character U+202E">\u27e8U+202E\u27e9</span>gnp.exe'
    assert marker in pages["annotate 0"] and marker in pages["history"]
    for code in ("202C", "2066", "2069", "200F", "200B"):
        assert f"\u27e8U+{code}\u27e9" in pages["annotate 0"]


def test_visible_filter_by_hand():
    assert str(visible('<b>"x" & \'y\'</b>')) == "&lt;b&gt;&#34;x&#34; &amp; &#39;y&#39;&lt;/b&gt;"
    assert str(visible("a\u202eb")) == 'a<span class="ctl" title="hidden character U+202E">\u27e8U+202E\u27e9</span>b'
    # newlines and tabs stay; a lone surrogate (from a JSON \\ud800 escape) is marked, not a crash at encoding
    assert str(visible("x\n\ty")) == "x\n\ty"
    assert "\u27e8U+D800\u27e9" in str(visible("bad \ud800 text"))
    # ordinary non-ASCII text, emoji with a zero width joiner, and CJK pass unchanged
    text = "café — 你好 👩\u200d💻"
    assert str(visible(text)) == text
    assert str(visible(None)) == ""


def test_hidden_fields_format_is_what_scripts_read(hostile):
    app = create_app(hostile.store)
    ann = login(app, hostile.store, hostile.ann)
    url, fields = open_next(ann)
    html = ann.get(url).text
    assert f'<input type="hidden" name="csrf" value="{fields["csrf"]}">' in html
    assert f'<input type="hidden" name="nonce" value="{fields["nonce"]}">' in html
    assert hidden_fields(html) == fields
