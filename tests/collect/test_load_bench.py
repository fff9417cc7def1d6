"""Smoke test of bench/collect_load.py: the real benchmark script, a tiny load (4 annotators, 120 submits, lease 1 s),
on SQLite, on SQLite with a kill -9 of the server in the middle, and on PostgreSQL with a kill -9 (a throw-away
cluster the script starts itself; when it cannot start, the script exits 2 and the test fails). Each run must
reconcile: nothing lost, nothing duplicated, no 5xx, every acknowledged submit stored. Plus the reconciliation
itself on a hand-made case, so a checker that always says 0 would be caught."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "bench" / "collect_load.py"
KEYS = {"db", "annotators", "submits", "submits_per_sec", "p50_next_ms", "p95_next_ms", "p50_submit_ms",
        "p95_submit_ms", "http_5xx", "acknowledged", "stored", "lost", "duplicated"}


def run_bench(*args: str) -> tuple[dict, str]:
    cmd = [sys.executable, str(SCRIPT), "--annotators", "4", "--submits", "120", "--lease-seconds", "1",
           "--max-seconds", "90", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=150, cwd=REPO)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    lines = proc.stdout.strip().splitlines()
    return json.loads(lines[-1]), proc.stdout


def check(result: dict, db: str) -> None:
    assert result["db"] == db and result["annotators"] == 4 and result["submits"] == 120
    assert result["lost"] == 0 and result["duplicated"] == 0 and result["http_5xx"] == 0
    assert result["stored"] == result["acknowledged"] == 120
    assert result["submits_per_sec"] > 0
    assert 0 < result["p50_next_ms"] <= result["p95_next_ms"]
    assert 0 < result["p50_submit_ms"] <= result["p95_submit_ms"]


def test_sqlite_run_reconciles():
    result, out = run_bench("--db", "sqlite", "--seed", "1")
    assert set(result) == KEYS
    check(result, "sqlite")
    # 5% late (6 of 120) all stored and flagged; 6 abandoned leases, none stored
    assert "late: 6 late submits, 6 flagged" in out
    assert "abandoned: 6 leases" in out and ", 0 stored;" in out


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_kill9_loses_nothing_acknowledged(db):
    result, out = run_bench("--db", db, "--kill9", "--seed", "2")
    assert set(result) == KEYS | {"kill9", "restarts"}
    check(result, db)
    assert result["kill9"] == 1 and result["restarts"] == 1
    at = re.search(r"kill -9 of the server at (\d+) acknowledged submits", out)
    assert at and 60 <= int(at.group(1)) <= 70, out  # at half the submits (then the next POST in flight)
    assert "(retried)" in out  # the clients did meet the dead server and sent their requests again


def test_reconcile_counts_lost_and_unacknowledged_rows(tmp_path):
    """Two stored judgments; the tally claims one of them and an ack that never reached the database."""
    sys.path.insert(0, str(SCRIPT.parent))
    import collect_load

    from rlhfkit.collect.store import NewItem, Store

    url = str(tmp_path / "c.db")
    store = Store.open(url)
    project = store.create_project("load", overlap=2, lease_seconds=60)
    store.add_items(project.id, [NewItem(prompt="p", response_a="a", response_b="b")])
    uids = []
    for name in ("u1", "u2"):
        user = store.add_user(name)
        store.add_member(project.id, user.id)
        a = store.next_assignment(project.id, user.id)
        assert store.submit(a.uid, user.id, "left", nonce=a.nonce).status == "stored"
        uids.append(a.uid)
    store.close()
    world = collect_load.World("load", project.id, 2, [], 1)
    tally = collect_load.Tally(plan=[])
    tally.acked = {uids[0]: "normal", "f" * 32: "late"}
    rec = collect_load.reconcile(url, world, tally)
    assert rec["stored"] == rec["stored_sql"] == 2
    assert rec["lost"] == 1          # the ack of "fff...": nothing stored
    assert rec["duplicated"] == 1    # uids[1]'s row: stored, never acknowledged
    assert rec["late_unflagged"] == 1 and rec["counter_mismatch"] == 0
