"""Real threads against one database: 8 threads over 2 Store objects (two connection pools, as two server
processes would have) claim slots, submit, double-submit and skip at once. No exception may escape (the store
retries "database is locked"), no item may be over-assigned, and every acknowledged submit is stored once.
test_postgres.py runs `hammer` on PostgreSQL.
"""
from __future__ import annotations

import threading

from sqlalchemy import func, select

from rlhfkit.collect import db
from rlhfkit.collect.store import NewItem, Store

N_THREADS = 8
USERS_PER_THREAD = 2
N_ITEMS = 30
OVERLAP = 3


def hammer(url: str) -> None:
    """Run the threads on the database at url and check the outcome (asserts)."""
    stores = [Store.open(url), Store.open(url)]
    setup = stores[0]
    project = setup.create_project("race", overlap=OVERLAP, lease_seconds=600)
    setup.add_items(project.id, [NewItem(f"q{i}", f"a{i}", f"b{i}") for i in range(N_ITEMS)])
    users = [setup.add_user(f"t{k}") for k in range(N_THREADS * USERS_PER_THREAD)]
    acked: dict = {}     # judgment id -> (item, user, choice) as acknowledged
    errors: list = []
    lock = threading.Lock()
    start = threading.Barrier(N_THREADS)

    def worker(k: int) -> None:
        store = stores[k % 2]
        mine = users[k * USERS_PER_THREAD:(k + 1) * USERS_PER_THREAD]
        try:
            start.wait()
            active = list(mine)
            step = 0
            while active:
                for user in list(active):
                    step += 1
                    a = store.next_assignment(project.id, user.id)
                    if a is None:
                        active.remove(user)
                        continue
                    again = store.next_assignment(project.id, user.id)  # a second tab: the same lease
                    assert again.uid == a.uid
                    if user.id % 8 == 0 and step % 4 == 0:  # two users skip now and then; the rest never do
                        results = [store.skip(a.uid, user.id, nonce=a.nonce, reason="skip")]
                    else:
                        results = [store.submit(a.uid, user.id, "left", nonce=a.nonce) for _ in range(1 + step % 2)]
                    assert results[0].status == "stored"
                    assert all(r.status == "duplicate" and r.judgment_id == results[0].judgment_id
                               for r in results[1:])
                    with lock:
                        acked[results[0].judgment_id] = (a.item_id, user.id, results[0].choice)
        except BaseException as e:  # collected and re-raised in the main thread
            with lock:
                errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(N_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
    assert not any(t.is_alive() for t in threads), "a worker hung"
    if errors:
        raise errors[0]
    rows = setup.item_rows(project.id)
    with setup.engine.connect() as conn:
        n_active = conn.execute(select(func.sum(db.items.c.n_active)).where(db.items.c.project_id == project.id))
        assert n_active.scalar_one() == 0
    assert all(r["n_done"] == OVERLAP and r["status"] == "full" for r in rows)  # filled, never over
    judged = setup.judgment_rows(project.id)
    assert {j["judgment_id"]: (j["item_id"], j["user_id"], j["choice"]) for j in judged} == acked
    assert len({(j["item_id"], j["user_id"]) for j in judged}) == len(judged)
    assert sum(j["choice"] != "skip" for j in judged) == N_ITEMS * OVERLAP
    for s in stores:
        s.close()


def test_threads_on_one_sqlite_file(tmp_path):
    hammer(str(tmp_path / "race.db"))



def test_locked_database_is_retried_not_raised(tmp_path, monkeypatch):
    """With no busy wait at all, another connection holding the write lock makes SQLite answer "database is
    locked" at once; the store runs the transaction again (backing off) instead of failing the request."""
    import sqlite3
    import time

    from rlhfkit.collect import store as store_module

    monkeypatch.setattr(db, "BUSY_TIMEOUT_MS", 0)
    path = tmp_path / "locked.db"
    store = Store.open(str(path))
    seen = []
    retryable = store_module._retryable
    monkeypatch.setattr(store_module, "_retryable", lambda e: seen.append(str(e.orig)) or retryable(e))
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # the write lock, held for 0.3 s
    t = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    start = time.monotonic()
    t.start()
    user = store.add_user("ann")
    t.join()
    assert user.name == "ann" and store.user("ann") == user
    assert time.monotonic() - start >= 0.25 and seen and all("locked" in m for m in seen)
    other.close()
    store.close()
