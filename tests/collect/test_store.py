"""Store unit tests, small enough to check by hand, on SQLite and PostgreSQL (`any_store`).

The clock is passed explicitly (now_ms) so lease expiry is exact: T0 is an arbitrary start, leases are 10 s.
"""
from __future__ import annotations

import hashlib
import sqlite3

import pytest
from sqlalchemy import func, select, text

from rlhfkit.collect import db
from rlhfkit.collect.store import NewItem, Store, canonical_choice, content_hash, pseudonym
from rlhfkit.errors import RlhfkitError

T0 = 1_800_000_000_000
LEASE_MS = 10_000


def make(store: Store, n_items: int = 1, n_users: int = 3, **options):
    """A project with n_items plain pairs and n_users member annotators."""
    options.setdefault("lease_seconds", LEASE_MS // 1000)
    project = store.create_project("p", **options)
    store.add_items(project.id, [NewItem(f"prompt {i}", f"answer a{i}", f"answer b{i}") for i in range(n_items)])
    people = [store.add_user(f"u{i}") for i in range(n_users)]
    for u in people:
        store.add_member(project.id, u.id)
    return project, people


def count(store: Store, table) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


# ----------------------------------------------------------------------------------------------
# assignment
# ----------------------------------------------------------------------------------------------
def test_overlap_two_three_users_third_gets_none(any_store):
    project, (u0, u1, u2) = make(any_store, overlap=2)
    a0 = any_store.next_assignment(project.id, u0.id, now_ms=T0)
    a1 = any_store.next_assignment(project.id, u1.id, now_ms=T0)
    assert a0 is not None and a1 is not None and a0.item_id == a1.item_id and a0.uid != a1.uid
    assert any_store.next_assignment(project.id, u2.id, now_ms=T0) is None
    # a finished judgment still holds its slot: 1 done + 1 active = overlap
    assert any_store.submit(a0.uid, u0.id, "left", nonce=a0.nonce, now_ms=T0 + 1000).status == "stored"
    assert any_store.next_assignment(project.id, u2.id, now_ms=T0 + 1000) is None
    # and a user never gets the same item twice
    assert any_store.next_assignment(project.id, u0.id, now_ms=T0 + 1000) is None
    any_store.submit(a1.uid, u1.id, "right", nonce=a1.nonce, now_ms=T0 + 2000)
    row = any_store.item_rows(project.id)[0]
    assert (row["n_done"], row["status"]) == (2, "full")


def test_lease_expiry_releases_the_slot(any_store):
    project, (u0, u1, _) = make(any_store, overlap=1)
    a0 = any_store.next_assignment(project.id, u0.id, now_ms=T0)
    assert any_store.next_assignment(project.id, u1.id, now_ms=T0 + LEASE_MS - 1) is None  # still leased
    a1 = any_store.next_assignment(project.id, u1.id, now_ms=T0 + LEASE_MS)  # expired exactly now
    assert a1 is not None and a1.item_id == a0.item_id
    assert any_store.assignment(a0.uid, u0.id, now_ms=T0 + LEASE_MS).state == "expired"
    assert any_store.next_assignment(project.id, u0.id, now_ms=T0 + LEASE_MS) is None  # u1 holds the only slot


def test_second_tab_and_reload_return_the_same_lease(any_store):
    project, (u0, _, _) = make(any_store, n_items=3)
    a = any_store.next_assignment(project.id, u0.id, now_ms=T0)
    b = any_store.next_assignment(project.id, u0.id, now_ms=T0 + 500)
    assert (b.uid, b.nonce, b.left_is_a, b.item_id) == (a.uid, a.nonce, a.left_is_a, a.item_id)
    assert count(any_store, db.assignments) == 1


def test_double_submit_stores_one_row(any_store):
    project, (u0, _, _) = make(any_store)
    a = any_store.next_assignment(project.id, u0.id, now_ms=T0)
    first = any_store.submit(a.uid, u0.id, "tie", nonce=a.nonce, now_ms=T0 + 100)
    again = any_store.submit(a.uid, u0.id, "left", nonce=a.nonce, now_ms=T0 + 200)
    assert first.status == "stored" and first.choice == "tie"
    assert again.status == "duplicate" and again.judgment_id == first.judgment_id and again.choice == "tie"
    assert count(any_store, db.judgments) == 1
    assert any_store.item_rows(project.id)[0]["n_done"] == 1


def test_late_submit_is_stored_flagged_and_may_exceed_overlap(any_store):
    project, (u0, u1, _) = make(any_store, overlap=1)
    a0 = any_store.next_assignment(project.id, u0.id, now_ms=T0)
    a1 = any_store.next_assignment(project.id, u1.id, now_ms=T0 + LEASE_MS + 1000)  # u0's lease expired
    late = any_store.submit(a0.uid, u0.id, "left", nonce=a0.nonce, now_ms=T0 + LEASE_MS + 2000)
    on_time = any_store.submit(a1.uid, u1.id, "left", nonce=a1.nonce, now_ms=T0 + LEASE_MS + 3000)
    assert (late.status, on_time.status) == ("late", "stored")
    rows = {r["user_id"]: r for r in any_store.judgment_rows(project.id)}
    assert rows[u0.id]["late"] is True and rows[u1.id]["late"] is False
    assert rows[u0.id]["elapsed_ms"] == LEASE_MS + 2000
    item = any_store.item_rows(project.id)[0]
    assert (item["n_done"], item["status"]) == (2, "full")  # over overlap 1 only through the late one


def test_late_submit_before_any_sweep(any_store):
    """The lease ran out but no next_assignment ran since: the submit itself notices and releases the slot."""
    project, (u0, u1, _) = make(any_store, overlap=2)
    a0 = any_store.next_assignment(project.id, u0.id, now_ms=T0)
    assert any_store.submit(a0.uid, u0.id, "right", nonce=a0.nonce, now_ms=T0 + LEASE_MS).status == "late"
    with any_store.engine.connect() as conn:
        n_active, n_done = conn.execute(select(db.items.c.n_active, db.items.c.n_done)).one()
    assert (n_active, n_done) == (0, 1)
    assert any_store.next_assignment(project.id, u1.id, now_ms=T0 + LEASE_MS) is not None


def test_screen_choice_maps_back_to_canonical_on_both_sides(any_store):
    project, (u0, u1) = make(any_store, n_items=30, n_users=2, overlap=2)
    seen_sides = set()
    for user, click in ((u0, "left"), (u1, "right")):
        while (a := any_store.next_assignment(project.id, user.id, now_ms=T0)) is not None:
            item = next(r for r in any_store.item_rows(project.id) if r["item_id"] == a.item_id)
            a_b = (item["response_a"], item["response_b"])
            assert (a.left, a.right) == (a_b if a.left_is_a else a_b[::-1])
            result = any_store.submit(a.uid, user.id, click, nonce=a.nonce, now_ms=T0)
            clicked_a = (click == "left") == a.left_is_a
            assert result.choice == ("A" if clicked_a else "B")
            seen_sides.add(a.left_is_a)
    assert seen_sides == {True, False}  # 60 fair coin flips, all equal with probability 2^-59
    rows = any_store.judgment_rows(project.id)
    assert len(rows) == 60
    assert all(r["choice"] == canonical_choice(r["screen_choice"], r["left_is_a"]) for r in rows)
    assert canonical_choice("left", False) == "B" and canonical_choice("right", False) == "A"
    assert canonical_choice("both_bad", False) == "both_bad"


def test_always_left_gives_about_half_a(store):
    """Sides are random per assignment, so an annotator who always clicks left gives A about half the time:
    200 fair coins land in [60, 140] except with probability ~1e-8."""
    project, (u0,) = make(store, n_items=200, n_users=1, overlap=1)
    n_a = 0
    while (a := store.next_assignment(project.id, u0.id, now_ms=T0)) is not None:
        n_a += store.submit(a.uid, u0.id, "left", nonce=a.nonce, now_ms=T0).choice == "A"
    assert len(store.judgment_rows(project.id)) == 200 and 60 <= n_a <= 140


def test_sides_fixed_when_not_randomised(any_store):
    project, (u0, _, _) = make(any_store, n_items=5, randomise_sides=False)
    while (a := any_store.next_assignment(project.id, u0.id, now_ms=T0)) is not None:
        assert a.left_is_a and a.left.startswith("answer a")
        any_store.submit(a.uid, u0.id, "left", nonce=a.nonce, now_ms=T0)


def test_submit_checks_owner_nonce_and_choice(any_store):
    project, (u0, u1, _) = make(any_store)
    a = any_store.next_assignment(project.id, u0.id, now_ms=T0)
    assert any_store.submit(a.uid, u1.id, "left", nonce=a.nonce, now_ms=T0) is None  # not u1's: 404
    assert any_store.assignment(a.uid, u1.id) is None
    assert any_store.submit("f" * 32, u0.id, "left", nonce=a.nonce, now_ms=T0) is None
    with pytest.raises(RlhfkitError, match="nonce"):
        any_store.submit(a.uid, u0.id, "left", nonce="stale", now_ms=T0)
    with pytest.raises(RlhfkitError, match="choice"):
        any_store.submit(a.uid, u0.id, "A", nonce=a.nonce, now_ms=T0)
    with pytest.raises(RlhfkitError, match="strength"):
        any_store.submit(a.uid, u0.id, "left", nonce=a.nonce, strength="very", now_ms=T0)
    assert count(any_store, db.judgments) == 0
    r = any_store.submit(a.uid, u0.id, "both_bad", nonce=a.nonce, strength="much", reason=" both wrong ",
                         client_ms=4200, now_ms=T0 + 5000)
    j = any_store.judgment_rows(project.id)[0]
    assert (r.choice, j["strength"], j["reason"], j["elapsed_ms"]) == ("both_bad", "much", "both wrong", 5000)


def test_required_reason(any_store):
    project, (u0, _, _) = make(any_store, reason="required")
    a = any_store.next_assignment(project.id, u0.id, now_ms=T0)
    with pytest.raises(RlhfkitError, match="reason"):
        any_store.submit(a.uid, u0.id, "left", nonce=a.nonce, reason="  ", now_ms=T0)
    assert any_store.submit(a.uid, u0.id, "left", nonce=a.nonce, reason="clearer", now_ms=T0).status == "stored"


# ----------------------------------------------------------------------------------------------
# skip, retire, gold, cap
# ----------------------------------------------------------------------------------------------
def test_skip_releases_the_slot_and_is_a_judgment(any_store):
    project, (u0, u1, _) = make(any_store, overlap=1)
    a0 = any_store.next_assignment(project.id, u0.id, now_ms=T0)
    s = any_store.skip(a0.uid, u0.id, nonce=a0.nonce, reason="not my language", now_ms=T0 + 10)
    assert (s.status, s.choice) == ("stored", "skip")
    assert any_store.skip(a0.uid, u0.id, nonce=a0.nonce, reason="x", now_ms=T0 + 20).status == "duplicate"
    assert any_store.submit(a0.uid, u0.id, "left", nonce=a0.nonce, now_ms=T0 + 30).choice == "skip"  # back button
    a1 = any_store.next_assignment(project.id, u1.id, now_ms=T0 + 40)
    assert a1 is not None and a1.item_id == a0.item_id
    assert any_store.next_assignment(project.id, u0.id, now_ms=T0 + 40) is None  # never served again to u0
    rows = any_store.judgment_rows(project.id)
    assert [(r["choice"], r["screen_choice"], r["reason"]) for r in rows] == [("skip", "skip", "not my language")]
    assert any_store.progress(project.id, u0.id) == {"done_by_user": 0, "skipped_by_user": 1, "items": 1,
                                                     "items_complete": 0, "judgments": 0}


def test_retire_after_k_skips(any_store):
    project, (u0, u1, u2) = make(any_store, overlap=3, retire_after_skips=2)
    for user in (u0, u1):
        a = any_store.next_assignment(project.id, user.id, now_ms=T0)
        any_store.skip(a.uid, user.id, nonce=a.nonce, reason="unclear", now_ms=T0)
    assert any_store.item_rows(project.id)[0]["status"] == "retired"
    assert any_store.next_assignment(project.id, u2.id, now_ms=T0) is None


def test_gold_onboarding_then_every_n(any_store):
    project = any_store.create_project("g", overlap=2, onboarding_gold=2, gold_every=3, lease_seconds=10)
    any_store.add_items(project.id, [NewItem(f"q{i}", f"a{i}", f"b{i}") for i in range(10)])
    any_store.add_items(project.id, [NewItem(f"gold {i}", f"good {i}", f"bad {i}", is_gold=True, gold_answer="A")
                                     for i in range(4)])
    users = [any_store.add_user(n) for n in ("ann", "bob")]
    for user in users:
        flags = []
        while (a := any_store.next_assignment(project.id, user.id, now_ms=T0)) is not None:
            flags.append(a.is_gold)
            click = "left" if a.left_is_a else "right"  # always the right answer (A)
            any_store.submit(a.uid, user.id, click, nonce=a.nonce, now_ms=T0)
        # served #1, #2: onboarding gold; then every 3rd of the rest (#5, #8) is gold; #11 would be, but the
        # 4 gold items are used up, so a regular one comes instead: 4 gold + 10 regular
        assert flags == [True, True, False, False, True, False, False, True] + [False] * 6
    rows = any_store.judgment_rows(project.id)
    gold = [r for r in rows if r["is_gold"]]
    assert len(gold) == 8 and all(r["choice"] == r["gold_answer"] == "A" for r in gold)
    assert sum(not r["is_gold"] for r in rows) == 20
    assert all(r["status"] == "open" for r in any_store.item_rows(project.id) if r["is_gold"])


def test_gold_items_go_to_everyone_whatever_the_overlap(any_store):
    project = any_store.create_project("g", overlap=1, onboarding_gold=1)
    any_store.add_items(project.id, [NewItem("check", "right", "wrong", is_gold=True, gold_answer="A"),
                                     NewItem("q", "x", "y")])
    for name in ("ann", "bob", "cy"):
        user = any_store.add_user(name)
        a = any_store.next_assignment(project.id, user.id, now_ms=T0)
        assert a.is_gold and a.prompt == "check"
        wrong = "right" if a.left_is_a else "left"
        any_store.submit(a.uid, user.id, wrong, nonce=a.nonce, now_ms=T0)
    gold = any_store.item_rows(project.id)[0]
    assert (gold["n_done"], gold["status"]) == (3, "open")
    assert [r["choice"] for r in any_store.judgment_rows(project.id)] == ["B", "B", "B"]


def test_per_user_cap(any_store):
    project, (u0, u1, _) = make(any_store, n_items=5, overlap=1, per_user_cap=2)
    done = 0
    while (a := any_store.next_assignment(project.id, u0.id, now_ms=T0)) is not None:
        any_store.submit(a.uid, u0.id, "left", nonce=a.nonce, now_ms=T0)
        done += 1
    assert done == 2
    assert any_store.next_assignment(project.id, u1.id, now_ms=T0) is not None


# ----------------------------------------------------------------------------------------------
# revisions, history, progress
# ----------------------------------------------------------------------------------------------
def test_revise_keeps_the_old_values(any_store):
    project, (u0, u1, _) = make(any_store)
    a = any_store.next_assignment(project.id, u0.id, now_ms=T0)
    jid = any_store.submit(a.uid, u0.id, "left", nonce=a.nonce, reason="first", now_ms=T0 + 1).judgment_id
    assert any_store.revise(jid, u1.id, "right", now_ms=T0 + 2) is False
    assert any_store.revise(jid, u0.id, "right", strength="slightly", reason="second", now_ms=T0 + 3) is True
    j = any_store.judgment_rows(project.id)[0]
    assert (j["screen_choice"], j["choice"], j["revision"]) == ("right", "B" if a.left_is_a else "A", 1)
    with any_store.engine.connect() as conn:
        old = conn.execute(select(db.judgment_revisions)).one()
    assert (old.revision, old.screen_choice, old.reason, old.replaced_ms) == (0, "left", "first", T0 + 3)
    h = any_store.history(project.id, u0.id)
    assert [(x["judgment_id"], x["revision"], x["reason"], x["prompt"]) for x in h] == [(jid, 1, "second", "prompt 0")]
    assert any_store.item_rows(project.id)[0]["n_done"] == 1  # an edit moves no counter


def test_revise_of_a_skip_is_refused(any_store):
    project, (u0, _, _) = make(any_store)
    a = any_store.next_assignment(project.id, u0.id, now_ms=T0)
    jid = any_store.skip(a.uid, u0.id, nonce=a.nonce, reason="?", now_ms=T0).judgment_id
    with pytest.raises(RlhfkitError, match="skip"):
        any_store.revise(jid, u0.id, "left", now_ms=T0)


def test_progress_counts(any_store):
    project, (u0, u1, _) = make(any_store, n_items=3, overlap=2)
    for user in (u0, u1):
        a = any_store.next_assignment(project.id, user.id, now_ms=T0)
        any_store.submit(a.uid, user.id, "left", nonce=a.nonce, now_ms=T0)
    a = any_store.next_assignment(project.id, u0.id, now_ms=T0)
    any_store.submit(a.uid, u0.id, "tie", nonce=a.nonce, now_ms=T0)
    assert any_store.progress(project.id, u0.id) == {"done_by_user": 2, "skipped_by_user": 0, "items": 3,
                                                     "items_complete": 1, "judgments": 3}


# ----------------------------------------------------------------------------------------------
# items and rows for quality/export
# ----------------------------------------------------------------------------------------------
def test_add_items_dedup_counts(any_store):
    project = any_store.create_project("d")
    messages = [{"role": "user", "content": "hi"}]
    first = [NewItem("q", "x", "y"), NewItem("q", "y", "x"), NewItem("q", "x", "z"), NewItem(messages, "x", "y"),
             NewItem("q", "x", "z")]
    assert any_store.add_items(project.id, first) == {"added": 3, "duplicates": 2}
    assert any_store.add_items(project.id, [NewItem("q", "z", "x"), NewItem("new", "x", "y")]) == \
        {"added": 1, "duplicates": 1}
    other = any_store.create_project("e")
    assert any_store.add_items(other.id, first) == {"added": 3, "duplicates": 2}  # unique per project only
    assert content_hash("q", "x", "y") == content_hash("q", "y", "x") != content_hash("q", "x", "z")


def test_add_items_bad_item_adds_nothing(any_store):
    project = any_store.create_project("d")
    bad = [NewItem("q", "x", "y"), NewItem("q", "same", " same "), NewItem("r", "x", "y")]
    with pytest.raises(RlhfkitError, match="item 1: response_a and response_b are identical"):
        any_store.add_items(project.id, bad)
    with pytest.raises(RlhfkitError, match="gold_answer"):
        any_store.add_items(project.id, [NewItem("q", "x", "y", is_gold=True)])
    assert any_store.item_rows(project.id) == []


def test_item_and_judgment_rows_shapes(any_store):
    project = any_store.create_project("s", overlap=1)
    suggestion = {"judge": "rm:/tmp/rm", "verdict": "B", "confidence": 0.75, "status": "agree"}
    any_store.add_items(project.id, [NewItem([{"role": "user", "content": "hi"}], "x", "y", meta={"id": "7"},
                                             known_label="A", suggestion=suggestion, source="prefs.jsonl")])
    u = any_store.add_user("ann")
    a = any_store.next_assignment(project.id, u.id, now_ms=T0)
    any_store.submit(a.uid, u.id, "left", nonce=a.nonce, now_ms=T0 + 250)
    item = any_store.item_rows(project.id)[0]
    assert item == {"item_id": a.item_id, "prompt": [{"role": "user", "content": "hi"}], "response_a": "x",
                    "response_b": "y", "meta": {"id": "7"}, "is_gold": False, "gold_answer": None,
                    "known_label": "A", "suggestion": suggestion, "source": "prefs.jsonl", "status": "full",
                    "n_done": 1}
    j = any_store.judgment_rows(project.id)[0]
    salt = any_store.engine.connect().execute(select(db.projects.c.salt)).scalar_one()
    expected_id = "a-" + hashlib.sha256(f"{salt}{u.id}".encode()).hexdigest()[:10]
    assert j == {"judgment_id": j["judgment_id"], "item_id": a.item_id, "user_id": u.id, "annotator": expected_id,
                 "choice": "A" if a.left_is_a else "B", "left_is_a": a.left_is_a, "screen_choice": "left",
                 "strength": None, "reason": None, "late": False, "elapsed_ms": 250, "created_ms": T0 + 250,
                 "revision": 0, "is_gold": False, "gold_answer": None}
    assert pseudonym(salt, u.id) == expected_id and pseudonym("other salt", u.id) != expected_id


# ----------------------------------------------------------------------------------------------
# users, links, sessions, API tokens
# ----------------------------------------------------------------------------------------------
def test_login_link_is_one_time_and_expires(any_store):
    u = any_store.add_user("ann", "admin")
    token = any_store.make_login_link(u.id, ttl_s=60, now_ms=T0)
    assert any_store.use_login_link(token, now_ms=T0 + 1) == u
    assert any_store.use_login_link(token, now_ms=T0 + 2) is None  # used
    old = any_store.make_login_link(u.id, ttl_s=60, now_ms=T0)
    assert any_store.use_login_link(old, now_ms=T0 + 60_000) is None  # expired
    assert any_store.use_login_link("nonsense") is None


def test_login_link_logs_in_its_own_user(any_store):
    """Link ids and user ids differ: the link must log in the user it was made for (not the one whose id equals
    the link's id)."""
    ann, bob, cy = (any_store.add_user(n) for n in ("ann", "bob", "cy"))
    for _ in range(3):
        any_store.make_login_link(ann.id)
    links = {u: any_store.make_login_link(u.id) for u in (cy, bob, ann)}
    for user, token in links.items():
        assert any_store.use_login_link(token) == user
    token, _ = any_store.new_session(bob.id)
    assert any_store.session(token).user == bob
    assert any_store.api_token(any_store.new_api_token(cy.id, ["stats"]))[0] == cy


def test_sessions_and_api_tokens(any_store):
    u = any_store.add_user("ann")
    token, csrf = any_store.new_session(u.id, ttl_s=100, now_ms=T0)
    info = any_store.session(token, now_ms=T0 + 1)
    assert (info.user, info.csrf, info.expires_ms) == (u, csrf, T0 + 100_000)
    assert any_store.session(token, now_ms=T0 + 100_000) is None
    any_store.end_session(token)
    assert any_store.session(token, now_ms=T0 + 1) is None
    api = any_store.new_api_token(u.id, ["export", "stats"], now_ms=T0)
    assert any_store.api_token(api) == (u, ["export", "stats"])
    with pytest.raises(RlhfkitError, match="scopes"):
        any_store.new_api_token(u.id, ["admin"])


def test_disable_user_revokes_everything_and_releases_leases(any_store):
    project, (u0, u1, _) = make(any_store, overlap=1)
    token, _ = any_store.new_session(u0.id)
    api = any_store.new_api_token(u0.id, ["stats"])
    link = any_store.make_login_link(u0.id)
    any_store.next_assignment(project.id, u0.id, now_ms=T0)
    any_store.disable_user("u0", now_ms=T0 + 1)
    assert any_store.user("u0").disabled
    assert any_store.session(token) is None and any_store.api_token(api) is None
    assert any_store.use_login_link(link) is None
    assert any_store.next_assignment(project.id, u0.id, now_ms=T0 + 2) is None
    assert any_store.next_assignment(project.id, u1.id, now_ms=T0 + 2) is not None  # u0's slot was released
    with pytest.raises(RlhfkitError, match="disabled"):
        any_store.make_login_link(u0.id)


def test_bad_names_and_duplicates(any_store):
    any_store.add_user("ann")
    with pytest.raises(RlhfkitError, match="already exists"):
        any_store.add_user("ann")
    for bad in ("", "a b", "<script>", "x" * 65):
        with pytest.raises(RlhfkitError, match="bad user name"):
            any_store.add_user(bad)
    with pytest.raises(RlhfkitError, match="role"):
        any_store.add_user("bob", "root")
    any_store.create_project("p")
    with pytest.raises(RlhfkitError, match="already exists"):
        any_store.create_project("p")
    with pytest.raises(RlhfkitError, match="slug"):
        any_store.create_project("Bad Slug")
    with pytest.raises(RlhfkitError, match="overlap"):
        any_store.create_project("q", overlap=0)
    with pytest.raises(RlhfkitError, match="unknown project option"):
        any_store.create_project("q", overlapp=2)


def test_memberships(any_store):
    p, q = any_store.create_project("p"), any_store.create_project("q")
    u = any_store.add_user("ann")
    any_store.add_member(q.id, u.id)
    any_store.add_member(q.id, u.id)  # idempotent
    assert [x.slug for x in any_store.projects(u.id)] == ["q"]
    assert [x.slug for x in any_store.projects()] == ["p", "q"]
    assert any_store.is_member(q.id, u.id) and not any_store.is_member(p.id, u.id)


def _all_rows_text(store: Store) -> str:
    """Every value of every table, as text (a dump that works on both databases)."""
    parts = []
    with store.engine.connect() as conn:
        for table in db.metadata.sorted_tables:
            for row in conn.execute(select(table)):
                parts.extend(str(v) for v in row)
    return "\n".join(parts)


def test_tokens_are_stored_hashed_only(any_store, tmp_path):
    u = any_store.add_user("ann", "admin")
    plain = [any_store.make_login_link(u.id), any_store.new_session(u.id)[0],
             any_store.new_api_token(u.id, ["import"])]
    used = any_store.make_login_link(u.id)
    any_store.use_login_link(used)
    plain.append(used)
    dump = _all_rows_text(any_store)
    if any_store.dialect == "sqlite":
        path = any_store.engine.url.database
        dump += "\n".join(sqlite3.connect(path).iterdump())
    for token in plain:
        assert len(token) >= 43  # 32 random bytes, urlsafe base64
        assert token not in dump
        assert hashlib.sha256(token.encode()).hexdigest() in dump


def test_reopen_keeps_data_and_schema_version(tmp_path):
    path = str(tmp_path / "c.db")
    s = Store.open(path)
    s.add_user("ann")
    s.close()
    s = Store.open(f"sqlite:///{path}")
    assert [u.name for u in s.users()] == ["ann"]
    with s.engine.connect() as conn:
        assert conn.execute(text("SELECT version FROM schema_version")).scalars().all() == [db.LATEST]
        assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
    s.close()


def test_bad_database_urls(tmp_path):
    with pytest.raises(RlhfkitError, match="unsupported database URL"):
        Store.open("mysql://x/y")
    with pytest.raises(RlhfkitError, match="does not exist"):
        Store.open(str(tmp_path / "missing" / "c.db"))
