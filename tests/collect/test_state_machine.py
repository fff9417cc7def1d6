"""A hypothesis state machine over users x items x (next, submit, double submit, skip, expire by the clock, edit,
second tab, someone else's uid), checking the store's invariants after every step:

- no duplicate (item, user) among assignments or judgments
- n_active / n_done / n_skips equal recounts from the assignments and judgments tables
- no item over `overlap`: active leases + judgments that were on time <= overlap (only late ones go over)
- the status is "full" exactly when n_done >= overlap (no retirement configured here)
- every acknowledged submit is present exactly once, with the choice last acknowledged (edits included)
- the store agrees with a model of it: second tab -> same uid, late flag iff the clock passed the lease

`StoreMachine` is parametrised by how it opens its store, so test_postgres.py runs the same machine on PostgreSQL.
Each example gets a new project and new users, so one database serves many examples.
"""
from __future__ import annotations

import itertools
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from sqlalchemy import func, select

from rlhfkit.collect import db
from rlhfkit.collect.store import NewItem, Store

T0 = 1_800_000_000_000
LEASE_S = 30
N_USERS = 4
N_ITEMS = 5
_ids = itertools.count()


class StoreMachine(RuleBasedStateMachine):
    """Subclasses set `open_store()` (called once per example; may return a shared store)."""

    store: Store

    def open_store(self) -> Store:  # pragma: no cover - overridden
        raise NotImplementedError

    @initialize(overlap=st.integers(1, 3))
    def setup(self, overlap):
        self.store = self.open_store()
        k = next(_ids)
        self.overlap = overlap
        self.project = self.store.create_project(f"sm{k}", overlap=overlap, lease_seconds=LEASE_S)
        self.store.add_items(self.project.id, [NewItem(f"q{k}-{i}", f"a{i}", f"b{i}") for i in range(N_ITEMS)])
        self.users = [self.store.add_user(f"sm{k}-u{i}").id for i in range(N_USERS)]
        self.now = T0
        self.seen = {}       # uid -> Assignment as first handed out (insertion order: uids are random, so
        #                      rules draw by position, which keeps hypothesis's replays deterministic)
        self.acked = {}      # (item_id, user_id) -> (judgment_id, canonical choice)
        self.judged = {}     # uid -> judgment id

    # -- helpers ---------------------------------------------------------------------------------
    def _active_uid(self, user):
        """The user's lease the model expects next_assignment to return (unexpired, unjudged)."""
        for uid, a in self.seen.items():
            if a.user_id == user and uid not in self.judged and a.expires_ms > self.now:
                return uid
        return None

    def _mine(self, user):
        return [uid for uid, a in self.seen.items() if a.user_id == user]

    def _record(self, uid, user, result):
        a = self.seen[uid]
        if uid in self.judged:
            assert result.status == "duplicate" and result.judgment_id == self.judged[uid]
            return
        assert result.status == ("late" if self.now >= a.expires_ms else "stored")
        self.judged[uid] = result.judgment_id
        self.acked[(a.item_id, user)] = (result.judgment_id, result.choice)

    # -- rules -----------------------------------------------------------------------------------
    @rule(u=st.integers(0, N_USERS - 1))
    def next(self, u):
        user = self.users[u]
        expected = self._active_uid(user)
        a = self.store.next_assignment(self.project.id, user, now_ms=self.now)
        if expected is not None:
            assert a is not None and a.uid == expected  # reload / back button / second tab
        if a is not None:
            assert a.state == "active" and a.user_id == user
            self.seen.setdefault(a.uid, a)

    @rule(u=st.integers(0, N_USERS - 1))
    def second_tab(self, u):
        user = self.users[u]
        a = self.store.next_assignment(self.project.id, user, now_ms=self.now)
        b = self.store.next_assignment(self.project.id, user, now_ms=self.now)
        assert (a is None and b is None) or (a.uid == b.uid and a.nonce == b.nonce)
        if a is not None:
            self.seen.setdefault(a.uid, a)

    @precondition(lambda self: self.seen)
    @rule(data=st.data(), choice=st.sampled_from(["left", "right", "tie", "both_bad"]), twice=st.booleans())
    def submit(self, data, choice, twice):
        uid = data.draw(st.sampled_from(list(self.seen)))
        a = self.seen[uid]
        for _ in range(2 if twice else 1):  # a double click or a repeated POST
            self._record(uid, a.user_id, self.store.submit(uid, a.user_id, choice, nonce=a.nonce, now_ms=self.now))

    @precondition(lambda self: self.seen)
    @rule(data=st.data())
    def skip(self, data):
        uid = data.draw(st.sampled_from(list(self.seen)))
        a = self.seen[uid]
        self._record(uid, a.user_id, self.store.skip(uid, a.user_id, nonce=a.nonce, reason="r", now_ms=self.now))

    @precondition(lambda self: self.seen)
    @rule(data=st.data(), other=st.integers(0, N_USERS - 1))
    def someone_elses_uid(self, data, other):
        uid = data.draw(st.sampled_from(list(self.seen)))
        a = self.seen[uid]
        if self.users[other] != a.user_id:
            assert self.store.submit(uid, self.users[other], "left", nonce=a.nonce, now_ms=self.now) is None
            assert self.store.assignment(uid, self.users[other]) is None

    @precondition(lambda self: self.acked)
    @rule(data=st.data(), choice=st.sampled_from(["left", "right", "tie", "both_bad"]))
    def edit(self, data, choice):
        key = data.draw(st.sampled_from(list(self.acked)))
        jid, old = self.acked[key]
        ok = self.store.revise(jid, key[1], choice, now_ms=self.now) if old != "skip" else None
        if ok is not None:
            assert ok is True
            left_is_a = next(a.left_is_a for a in self.seen.values() if (a.item_id, a.user_id) == key)
            new = {"left": "A" if left_is_a else "B", "right": "B" if left_is_a else "A"}.get(choice, choice)
            self.acked[key] = (jid, new)

    @rule(seconds=st.sampled_from([1, 10, LEASE_S - 1, LEASE_S, 2 * LEASE_S]))
    def tick(self, seconds):
        self.now += seconds * 1000

    # -- invariants ------------------------------------------------------------------------------
    @invariant()
    def database_is_consistent(self):
        if not hasattr(self, "project"):
            return
        pid = self.project.id
        a, j, i = db.assignments, db.judgments, db.items
        with self.store.engine.connect() as conn:
            for table in (a, j):
                dupes = conn.execute(select(table.c.item_id, table.c.user_id).where(table.c.project_id == pid)
                                     .group_by(table.c.item_id, table.c.user_id).having(func.count() > 1)).all()
                assert dupes == []
            rows = conn.execute(select(i).where(i.c.project_id == pid)).all()
            active = dict(conn.execute(select(a.c.item_id, func.count()).where(a.c.project_id == pid,
                          a.c.state == "active").group_by(a.c.item_id)).all())
            by_choice = conn.execute(select(j.c.item_id, j.c.choice, j.c.late, func.count())
                                     .where(j.c.project_id == pid).group_by(j.c.item_id, j.c.choice, j.c.late)).all()
            judgments = conn.execute(select(j.c.id, j.c.item_id, j.c.user_id, j.c.choice)
                                     .where(j.c.project_id == pid)).all()
        done, skips, on_time = {}, {}, {}
        for item_id, choice, late, n in by_choice:
            is_skip = choice == "skip"
            target = skips if is_skip else done
            target[item_id] = target.get(item_id, 0) + n
            if not is_skip and not late:
                on_time[item_id] = on_time.get(item_id, 0) + n
        for r in rows:
            assert r.n_active == active.get(r.id, 0)
            assert r.n_done == done.get(r.id, 0)
            assert r.n_skips == skips.get(r.id, 0)
            assert r.n_active + on_time.get(r.id, 0) <= self.overlap  # only late judgments go over overlap
            assert (r.status == "full") == (r.n_done >= self.overlap)
        stored = {(row.item_id, row.user_id): (row.id, row.choice) for row in judgments}
        assert len(judgments) == len(stored) == len(self.acked)
        assert stored == self.acked  # every acknowledged submit once, with its latest choice

    def teardown(self):
        self.close_store()

    def close_store(self):
        pass


class SqliteMachine(StoreMachine):
    """One SQLite file per example."""

    def open_store(self) -> Store:
        self._dir = tempfile.TemporaryDirectory()
        return Store.open(str(Path(self._dir.name) / "c.db"))

    def close_store(self):
        if hasattr(self, "store"):
            self.store.close()
            self._dir.cleanup()


SqliteMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=30, deadline=None, database=None,
                                           suppress_health_check=[HealthCheck.too_slow])
TestSqliteStateMachine = SqliteMachine.TestCase
