"""The app under a real uvicorn server with concurrent annotators (a small cousin of bench/collect_load.py): 16
people label at once over HTTP with double submits; no 5xx, every acknowledged submit stored exactly once, no item
over its overlap. Plus an expired lease: the page still accepts the answer, which is stored flagged as late."""
from __future__ import annotations

import re
import threading
import time

import httpx
from test_web_common import LiveServer, hidden_fields, login, make_world, open_next, post

from rlhfkit.collect.server import create_app
from rlhfkit.collect.store import NewItem


def annotate(server_url: str, link: str, n: int, double_every: int, out: dict, lock: threading.Lock) -> None:
    """One annotator: log in by link, then n times next -> page -> POST (twice every `double_every`)."""
    statuses, acked = [], []
    with httpx.Client(base_url=server_url, follow_redirects=False, timeout=30) as client:
        r = client.get(f"/login/{link}")
        statuses.append(r.status_code)
        origin = {"origin": server_url}
        for k in range(n):
            r = client.get("/p/demo/next")
            statuses.append(r.status_code)
            if r.status_code != 303:
                break
            url = r.headers["location"]
            page = client.get(url)
            statuses.append(page.status_code)
            fields = hidden_fields(page.text)
            choice = ("left", "right", "tie")[k % 3]
            for _ in range(2 if k % double_every == 0 else 1):
                r = client.post(url, data={**fields, "choice": choice}, headers=origin)
                statuses.append(r.status_code)
            if r.status_code == 303:
                acked.append(url.rsplit("/", 1)[1])
    with lock:
        out["statuses"] += statuses
        out["acked"] += acked


def test_concurrent_annotators_over_uvicorn(tmp_path):
    w = make_world(tmp_path, n_items=40, overlap=3)
    people = [w.store.add_user(f"p{i}") for i in range(16)]
    for u in people:
        w.store.add_member(w.project.id, u.id)
    out, lock = {"statuses": [], "acked": []}, threading.Lock()
    with LiveServer(create_app(w.store)) as server:
        threads = [threading.Thread(target=annotate, args=(server.url, w.store.make_login_link(u.id), 6, 3, out, lock))
                   for u in people]
        start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        elapsed = time.monotonic() - start
    assert not [s for s in out["statuses"] if s >= 500]
    assert set(out["statuses"]) <= {200, 303}, sorted(set(out["statuses"]))
    rows = w.store.judgment_rows(w.project.id)
    assert len(out["acked"]) == 16 * 6 == len(rows)  # every acknowledged submit stored, double submits not twice
    assert len({(r["item_id"], r["user_id"]) for r in rows}) == len(rows)
    for item in w.store.item_rows(w.project.id):
        assert item["n_done"] <= 3
    assert elapsed < 90
    w.store.close()


def test_expired_lease_is_still_accepted_and_flagged_late(tmp_path):
    w = make_world(tmp_path, n_items=0, lease_seconds=1)
    w.store.add_items(w.project.id, [NewItem(prompt="p", response_a="a", response_b="b")])
    app = create_app(w.store)
    ann = login(app, w.store, w.ann)
    url, fields = open_next(ann)
    time.sleep(1.1)
    page = ann.get(url)
    assert page.status_code == 200 and "ran out" in page.text and hidden_fields(page.text) == fields
    r = post(ann, url, {**fields, "choice": "right"})
    assert r.status_code == 303
    (row,) = w.store.judgment_rows(w.project.id)
    assert row["late"] is True and row["screen_choice"] == "right"
    assert re.search(r"1 done of 1", ann.get("/p/demo/next").text)
    w.store.close()
