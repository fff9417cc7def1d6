"""Load and crash benchmark of the labelling web app (`rlhfkit collect serve`, issue 20).

usage:
  python bench/collect_load.py [--annotators 50] [--submits 10000] [--db sqlite|postgresql] [--kill9 [N]]
                               [--seed 0] [--lease-seconds 3] [--overlap 3] [--think-ms 0] [--max-seconds 1800]
                               [--keep]

What runs: the real server, `python -m rlhfkit.cli collect serve --db URL --port P` in its own process, on
127.0.0.1 over a fresh database: an SQLite file (WAL, synchronous=FULL as the store sets it) in a temporary folder,
or with --db postgresql a throw-away PostgreSQL cluster (tests/collect/pg.py: initdb + pg_ctl in a temporary
folder, unix socket there; as root the cluster runs as the `postgres` user). Setup goes through the Store API and
is not timed: one project (overlap 3, a short lease so abandoned leases expire during the run), the annotators
with one-time login links, and just enough items for the submits (a few spare per annotator), so the run only
ends if the slots of abandoned leases really come back.

Then one thread per annotator (each with its own keep-alive httpx connection) logs in through its link and works
through a shared, seeded plan of actions until it is empty:
  normal   GET /p/{slug}/next -> 303 -> GET /a/{uid} (csrf + nonce from the hidden inputs) -> POST /a/{uid} with
           an Origin header and a random choice -> 303
  double   (10% of submits) the same form POSTed twice: half at once on two connections (a double click), half
           one after the other (back button + resubmit); the store's idempotency must keep one row
  late     (5%) the page is opened, the annotator waits past the lease, then POSTs: stored and flagged late
  abandon  (5% extra leases) the page is opened and never answered; the annotator is away for longer than the
           lease, which expires and gives its slot back to the others
With --think-ms T an annotator arrives at a uniform 0..2T ms and reads each pair for a uniform 0..2T ms before
answering; the default 0 (no pause at all) measures the server's capacity: 50 clients that never pause keep a
queue, so latency then is mostly waiting in it.

`next` latency is GET next + GET page (both answered), `submit` latency one POST up to its 303. A submit is
ACKNOWLEDGED when one of its POSTs got a 303. Connection errors are retried with a short backoff (a POST that got
no answer is not acknowledged and is sent again: the store must keep it single); a 5xx answer is counted and the
POST retried up to three times.

--kill9 [N]: N times (default once) the server gets SIGKILL, at k/(N+1) of the submits (once: at half) and when
a POST is in flight, and is started again on the same port and database; the clients retry until it answers.

At the end the database is reconciled with what the clients saw: `lost` = acknowledged submits with no stored
judgment; `duplicated` = stored rows beyond one per (item, annotator) of an acknowledged submit (repeats, and rows
no acknowledged submit accounts for).
Also checked (human-readable lines, and the exit status): every late submit flagged late, no abandoned lease
stored, each item's n_active / n_done counters equal to its active leases / stored judgments.

Output: human-readable lines, then as the LAST line one JSON object: db, annotators, submits (the target),
submits_per_sec (acknowledged submits / seconds from the first login to the last acknowledgement, the annotators'
time away included), p50/p95_next_ms, p50/p95_submit_ms, http_5xx, acknowledged, stored, lost, duplicated, and
with --kill9 also kill9 (SIGKILLs sent) and restarts. Exit status 0 when the run completed and every check holds,
1 otherwise, 2 when the setup failed.
"""
from __future__ import annotations

import argparse
import html
import json
import math
import os
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
HIDDEN = re.compile(r'<input type="hidden" name="(csrf|nonce)" value="([^"]*)">')
CHOICES = ("left", "right", "tie", "both_bad")
CHOICE_WEIGHTS = (45, 45, 7, 3)
AWAY_MARGIN_S = 0.5        # an abandoning / late annotator is away for the lease + this
EMPTY_WAIT_S = 0.2         # "all done" for now (the last slots are leased): wait, then ask again
WORDS = ("the model answer explains a short list of steps with care and some detail about each part of the "
         "question while another response gives only a brief reply that may miss what the user asked for in the "
         "first place or adds facts nobody can check").split()


class Deadline(Exception):
    """--max-seconds has passed: the clients stop where they are."""


class NothingLeft(Exception):
    """Nothing free for this annotator for longer than a lease: every item left is one they already had."""


# ----------------------------------------------------------------------------------------------
# database and setup (not timed)
# ----------------------------------------------------------------------------------------------
def make_database(kind: str, tmp: Path):
    """(url, stop) of a fresh database: an SQLite file in `tmp`, or a database on a throw-away PostgreSQL
    cluster (CORE's test fixture, tests/collect/pg.py; RuntimeError with the command's output when it fails)."""
    if kind == "sqlite":
        return str(tmp / "collect.db"), lambda: None
    sys.path.insert(0, str(REPO / "tests" / "collect"))
    from pg import Cluster

    cluster = Cluster()
    try:
        cluster.start()
        return cluster.create_database("load"), cluster.stop
    except BaseException:
        cluster.stop()
        raise


def make_items(n: int, rng: random.Random):
    """n distinct pairs with prompt ~30 words and responses ~40-120 words (about a real page's size)."""
    from rlhfkit.collect.store import NewItem

    def text(lo: int, hi: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))

    return [NewItem(prompt=f"Question {k}: {text(20, 40)}?", response_a=text(40, 120), response_b=text(40, 120),
                    meta={"id": f"load-{k}"}, source="bench/collect_load.py") for k in range(n)]


@dataclass
class World:
    slug: str
    project_id: int
    overlap: int
    links: list[str]       # one one-time login token per annotator
    n_items: int


def setup(url: str, args, rng: random.Random) -> World:
    """Project, annotators (members, with login links) and items, through the Store API."""
    from rlhfkit.collect.store import Store

    store = Store.open(url)
    try:
        project = store.create_project("load", "load benchmark", overlap=args.overlap,
                                       lease_seconds=args.lease_seconds, reason="optional")
        links = []
        for k in range(args.annotators):
            user = store.add_user(f"annotator{k:03d}")
            store.add_member(project.id, user.id)
            links.append(store.make_login_link(user.id))
        # enough slots for every submit, plus a few spare items per annotator for the tail of the run
        n_items = math.ceil(args.submits / args.overlap) + 2 * args.annotators
        report = store.add_items(project.id, make_items(n_items, rng))
        if report["added"] != n_items:
            raise RuntimeError(f"setup: {report} of {n_items} items added")
        return World("load", project.id, args.overlap, links, n_items)
    finally:
        store.close()


# ----------------------------------------------------------------------------------------------
# the server process
# ----------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`rlhfkit collect serve` in a child process; its output goes to `log`."""

    def __init__(self, url: str, log: Path):
        self.db_url, self.log = url, log
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.kills, self.restarts, self.downtime_s = 0, 0, []

    def start(self) -> None:
        cmd = [sys.executable, "-m", "rlhfkit.cli", "collect", "serve", "--db", self.db_url,
               "--host", "127.0.0.1", "--port", str(self.port)]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        self.wait_healthy()

    def wait_healthy(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.base}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"the server did not answer /healthz within {timeout_s:.0f} s:\n{self.log_tail()}")

    def kill9_and_restart(self) -> None:
        """SIGKILL (no shutdown of any kind), then the same command on the same port and database."""
        t0 = time.monotonic()
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.kills += 1
        self.start()
        self.restarts += 1
        self.downtime_s.append(time.monotonic() - t0)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log_tail(self, n: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""


# ----------------------------------------------------------------------------------------------
# what the clients saw
# ----------------------------------------------------------------------------------------------
def make_plan(args, rng: random.Random) -> list[str]:
    """The shuffled actions: `submits` submits (10% double, 5% late, the rest normal) + 5% abandoned leases."""
    n_double, n_late = round(0.10 * args.submits), round(0.05 * args.submits)
    n_abandon = round(0.05 * args.submits)
    plan = (["double"] * n_double + ["late"] * n_late + ["abandon"] * n_abandon
            + ["normal"] * (args.submits - n_double - n_late))
    rng.shuffle(plan)
    return plan


@dataclass
class Tally:
    """Shared by the client threads (every method takes the lock)."""

    plan: list[str]
    lock: threading.Lock = field(default_factory=threading.Lock)
    next_ms: list[float] = field(default_factory=list)     # GET next + GET page, both answered
    submit_ms: list[float] = field(default_factory=list)   # one answered POST
    statuses: Counter = field(default_factory=Counter)     # "POST submit 303" -> n
    events: Counter = field(default_factory=Counter)       # connection errors, empty nexts, failures
    acked: dict[str, str] = field(default_factory=dict)    # uid -> kind of the acknowledged submits
    abandoned: list[str] = field(default_factory=list)     # uids of the leases left unanswered
    errors: list[str] = field(default_factory=list)        # unexpected client failures
    posts: int = 0
    t_last_ack: float = 0.0
    taken: int = 0                                         # actions popped and not yet done
    posting: int = 0                                       # POSTs sent and not yet answered (or failed)

    def pop(self, deadline: float) -> str | None:
        """The next action; None when the plan is done (empty, and nobody holds one that may come back)."""
        while True:
            if time.monotonic() > deadline:
                raise Deadline
            with self.lock:
                if self.plan:
                    self.taken += 1
                    return self.plan.pop()
                if self.taken == 0:
                    return None
            time.sleep(0.05)

    def done(self) -> None:
        with self.lock:
            self.taken -= 1

    def push(self, kind: str) -> None:
        """An action this annotator could not do goes back for the others (done() is still called)."""
        with self.lock:
            self.plan.append(kind)

    def answered(self, method: str, route: str, status: int, ms: float) -> None:
        with self.lock:
            self.statuses[f"{method} {route} {status}"] += 1
            if method == "POST":
                self.posts += 1
                self.submit_ms.append(ms)

    def posts_in_flight(self, delta: int) -> None:
        with self.lock:
            self.posting += delta

    def count(self, event: str) -> None:
        with self.lock:
            self.events[event] += 1

    def add_next(self, ms: float) -> None:
        with self.lock:
            self.next_ms.append(ms)

    def ack(self, uid: str, kind: str) -> None:
        with self.lock:
            self.acked[uid] = kind
            self.t_last_ack = time.monotonic()

    def abandon(self, uid: str) -> None:
        with self.lock:
            self.abandoned.append(uid)

    def error(self, text: str) -> None:
        with self.lock:
            self.errors.append(text)


def hidden_fields(page: str) -> dict[str, str] | None:
    fields = {name: html.unescape(value) for name, value in HIDDEN.findall(page)}
    return fields if set(fields) == {"csrf", "nonce"} else None


# ----------------------------------------------------------------------------------------------
# one annotator
# ----------------------------------------------------------------------------------------------
class Annotator(threading.Thread):
    """Logs in through its link, then takes actions from the shared plan until it is empty (or the deadline)."""

    def __init__(self, k: int, base: str, world: World, tally: Tally, *, seed: int, lease_s: int, think_ms: float,
                 deadline: float):
        super().__init__(name=f"annotator{k:03d}", daemon=True)
        self.base, self.world, self.tally = base, world, tally
        self.link = world.links[k]
        self.rng = random.Random(seed * 100_003 + k)
        self.away_s = lease_s + AWAY_MARGIN_S
        self.think_s = think_ms / 1000
        self.deadline = deadline
        self.client: httpx.Client | None = None
        self.twin: httpx.Client | None = None  # a second connection with the same session, for double clicks

    def run(self) -> None:
        headers = {"origin": self.base}  # what a browser sends with a form POST
        try:
            with httpx.Client(base_url=self.base, follow_redirects=False, timeout=30, headers=headers) as client:
                self.client = client
                time.sleep(self.rng.uniform(0, 2 * self.think_s))  # with a think time people also arrive spread out
                self.login()
                cookie = {"rk_session": client.cookies.get("rk_session")}
                with httpx.Client(base_url=self.base, follow_redirects=False, timeout=30, headers=headers,
                                  cookies=cookie) as twin:
                    self.twin = twin
                    while (kind := self.tally.pop(self.deadline)) is not None:
                        try:
                            self.act(kind)
                        finally:
                            self.tally.done()
        except Deadline:
            self.tally.count("client stopped at --max-seconds")
        except NothingLeft:
            self.tally.count("client finished early: nothing left for it")
        except Exception as e:  # a client bug or a broken server answer: report it, do not hang the run
            self.tally.error(f"{self.name}: {type(e).__name__}: {e}")

    def send(self, client: httpx.Client, method: str, url: str, route: str, **kw) -> tuple[httpx.Response, float]:
        """One request, sent again after a connection error (server down) until it is answered; (response, ms)."""
        delay = 0.05
        while True:
            if time.monotonic() > self.deadline:
                raise Deadline
            t0 = time.perf_counter()
            self.tally.posts_in_flight(method == "POST")
            try:
                r = client.request(method, url, **kw)
            except httpx.TransportError as e:
                self.tally.count(f"{method} {route}: {type(e).__name__} (retried)")
                time.sleep(delay)
                delay = min(2 * delay, 0.5)
                continue
            finally:
                self.tally.posts_in_flight(-(method == "POST"))
            ms = (time.perf_counter() - t0) * 1000
            self.tally.answered(method, route, r.status_code, ms)
            return r, ms

    def login(self) -> None:
        r, _ = self.send(self.client, "GET", f"/login/{self.link}", "login")
        if r.status_code != 303 or not self.client.cookies.get("rk_session"):
            raise RuntimeError(f"login answered {r.status_code} without a session cookie")

    def open_next(self) -> tuple[str, dict[str, str]]:
        """GET next until it leases an item, then its page: (page path, csrf + nonce). NothingLeft when there was
        none for longer than a lease (so no lease that could free a slot for this annotator is still out)."""
        give_up = time.monotonic() + self.away_s + 2
        while True:
            r, ms_next = self.send(self.client, "GET", f"/p/{self.world.slug}/next", "next")
            if r.status_code != 303:  # 200 "all done" for now: the last slots are leased by others
                self.tally.count("next: nothing free, waited" if r.status_code == 200 else "next: unexpected answer")
                if time.monotonic() > give_up:
                    raise NothingLeft
                time.sleep(EMPTY_WAIT_S)
                continue
            path = r.headers["location"]
            page, ms_page = self.send(self.client, "GET", path, "page")
            fields = hidden_fields(page.text) if page.status_code == 200 else None
            if fields is None:
                self.tally.count(f"page: answered {page.status_code} without the form")
                continue
            self.tally.add_next(ms_next + ms_page)
            return path, fields

    def act(self, kind: str) -> None:
        try:
            path, fields = self.open_next()
        except NothingLeft:
            self.tally.push(kind)
            raise
        uid = path.rsplit("/", 1)[1]
        if kind == "abandon":
            self.tally.abandon(uid)
            time.sleep(self.away_s)  # tab closed; the lease expires while the annotator is away
            return
        if kind == "late":
            time.sleep(self.away_s)
        elif self.think_s:
            time.sleep(self.rng.uniform(0, 2 * self.think_s))  # reading the pair: uniform, mean --think-ms
        form = {**fields, "choice": self.rng.choices(CHOICES, CHOICE_WEIGHTS)[0],
                "client_ms": str(self.rng.randint(1500, 40_000))}
        if form["choice"] in ("left", "right") and self.rng.random() < 0.5:
            form["strength"] = self.rng.choice(("slightly", "much"))
        if kind == "double" and self.rng.random() < 0.5:
            acked = self.post_twice_at_once(path, form)
        else:
            acked = self.post(self.client, path, form)
            if kind == "double":
                acked = self.post(self.client, path, form) or acked
        if acked:
            self.tally.ack(uid, kind)
        else:
            self.tally.count(f"{kind} submit never acknowledged")

    def post(self, client: httpx.Client, path: str, form: dict) -> bool:
        """POST the form; True once a 303 came back (acknowledged). A 5xx is retried up to three times."""
        for _ in range(4):
            r, _ms = self.send(client, "POST", path, "submit", data=form)
            if r.status_code == 303:
                return True
            if r.status_code < 500:
                return False
            time.sleep(0.2)
        return False

    def post_twice_at_once(self, path: str, form: dict) -> bool:
        """The same form on two connections at the same moment (a double click)."""
        out: list = []

        def second() -> None:
            try:
                out.append(self.post(self.twin, path, form))
            except Deadline:
                out.append(False)

        t = threading.Thread(target=second, daemon=True)
        t.start()
        first = self.post(self.client, path, form)
        t.join()
        return first or any(out)


# ----------------------------------------------------------------------------------------------
# the run
# ----------------------------------------------------------------------------------------------
def drive(server: Server, world: World, args, tally: Tally) -> float:
    """Start the annotators, SIGKILL + restart the server at the --kill9 points, wait for all; returns the run's
    start time (time.monotonic)."""
    deadline = time.monotonic() + args.max_seconds
    clients = [Annotator(k, server.base, world, tally, seed=args.seed, lease_s=args.lease_seconds,
                         think_ms=args.think_ms, deadline=deadline) for k in range(args.annotators)]
    kill_at = [args.submits * (i + 1) // (args.kill9 + 1) for i in range(args.kill9)]
    t_start = time.monotonic()
    for c in clients:
        c.start()
    while any(c.is_alive() for c in clients):
        if kill_at and len(tally.acked) >= kill_at[0]:
            kill_at.pop(0)
            wait_until = time.monotonic() + 2
            while tally.posting == 0 and time.monotonic() < wait_until:  # kill with a POST in flight
                time.sleep(0.0005)
            server.kill9_and_restart()
            print(f"kill -9 of the server at {len(tally.acked)} acknowledged submits; answering again after "
                  f"{server.downtime_s[-1]:.2f} s", flush=True)
        time.sleep(0.01)
    for c in clients:
        c.join()
    return t_start


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) in ms, rounded to 0.1; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)], 1)


def reconcile(url: str, world: World, tally: Tally) -> dict:
    """The database against the acknowledgements (module doc): counts of each kind of mismatch."""
    from sqlalchemy import func, select

    from rlhfkit.collect import db
    from rlhfkit.collect.store import Store

    A, J, I = db.assignments, db.judgments, db.items  # noqa: E741
    store = Store.open(url)
    try:
        stored_rows = [r for r in store.judgment_rows(world.project_id) if r["choice"] != "skip"]
        with store.engine.connect() as conn:
            rows = conn.execute(select(A.c.uid, J.c.item_id, J.c.user_id, J.c.late)
                                .join(A, A.c.id == J.c.assignment_id)
                                .where(J.c.project_id == world.project_id, J.c.choice != "skip")).all()
            leases = {r.uid: r for r in conn.execute(select(A.c.uid, A.c.state, A.c.expires_ms)
                                                     .where(A.c.project_id == world.project_id))}
            active = dict(conn.execute(select(A.c.item_id, func.count()).where(A.c.state == "active")
                                       .group_by(A.c.item_id)).all())
            done = dict(conn.execute(select(J.c.item_id, func.count()).where(J.c.choice != "skip")
                                     .group_by(J.c.item_id)).all())
            counters = conn.execute(select(I.c.id, I.c.n_active, I.c.n_done)
                                    .where(I.c.project_id == world.project_id)).all()
    finally:
        store.close()
    now_ms = int(time.time() * 1000)
    rows_of_uid = Counter(r.uid for r in rows)
    per_pair = Counter((r.item_id, r.user_id) for r in rows)
    late_of_uid = {r.uid: bool(r.late) for r in rows}
    acked = tally.acked
    abandoned = [leases.get(uid) for uid in tally.abandoned]
    return {
        "stored": len(stored_rows), "stored_sql": len(rows),
        "lost": sum(1 for uid in acked if rows_of_uid[uid] == 0),
        # every row but one per (item, annotator) of an acknowledged submit: repeats and unacknowledged rows
        "duplicated": len(rows) - len({(r.item_id, r.user_id) for r in rows if r.uid in acked}),
        "pairs_repeated": sum(n - 1 for n in per_pair.values() if n > 1),
        "late_acked": sum(1 for kind in acked.values() if kind == "late"),
        "late_unflagged": sum(1 for uid, kind in acked.items() if kind == "late" and not late_of_uid.get(uid)),
        "late_flagged_total": sum(late_of_uid.values()),
        "abandoned": len(abandoned),
        "abandoned_stored": sum(1 for uid in tally.abandoned if rows_of_uid[uid]),
        "abandoned_released": sum(1 for a in abandoned if a is not None and a.state == "expired"),
        "abandoned_pending": sum(1 for a in abandoned if a is not None and a.state == "active"
                                 and a.expires_ms <= now_ms),  # expired, released by the next request
        "abandoned_bad": sum(1 for a in abandoned if a is None or (a.state == "active" and a.expires_ms > now_ms)
                             or a.state not in ("active", "expired")),
        "counter_mismatch": sum(1 for c in counters
                                if c.n_active != active.get(c.id, 0) or c.n_done != done.get(c.id, 0)),
        "items_over_overlap": sum(1 for c in counters if c.n_done > world.overlap),
    }


# ----------------------------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------------------------
def result_line(args, server: Server, tally: Tally, rec: dict, elapsed_s: float) -> dict:
    """The JSON object of the last line (keys as issue 20 names them; NaN, for no samples, becomes null)."""
    def ms(values: list[float], p: float):
        v = percentile(values, p)
        return None if math.isnan(v) else v

    out = {"db": args.db, "annotators": args.annotators, "submits": args.submits,
           "submits_per_sec": round(len(tally.acked) / elapsed_s, 1) if elapsed_s > 0 else None,
           "p50_next_ms": ms(tally.next_ms, 50), "p95_next_ms": ms(tally.next_ms, 95),
           "p50_submit_ms": ms(tally.submit_ms, 50), "p95_submit_ms": ms(tally.submit_ms, 95),
           "http_5xx": sum(n for key, n in tally.statuses.items() if int(key.rsplit(" ", 1)[1]) >= 500),
           "acknowledged": len(tally.acked), "stored": rec["stored"], "lost": rec["lost"],
           "duplicated": rec["duplicated"]}
    if args.kill9:
        out.update(kill9=server.kills, restarts=server.restarts)
    return out


def failures(out: dict, rec: dict, tally: Tally) -> list[str]:
    """Why the run does not pass (empty: it passes)."""
    checks = [
        (not tally.errors, f"{len(tally.errors)} client error(s)"),
        (out["acknowledged"] == out["submits"], f"only {out['acknowledged']} of {out['submits']} submits acknowledged"),
        (out["lost"] == 0, f"{out['lost']} acknowledged judgment(s) lost"),
        (out["duplicated"] == 0, f"{out['duplicated']} duplicated judgment row(s)"),
        (out["http_5xx"] == 0, f"{out['http_5xx']} HTTP 5xx answer(s)"),
        (rec["stored"] == rec["stored_sql"], "judgment_rows disagrees with the judgments table"),
        (rec["late_unflagged"] == 0, f"{rec['late_unflagged']} late submit(s) not flagged late"),
        (rec["abandoned_stored"] == 0, f"{rec['abandoned_stored']} abandoned lease(s) stored a judgment"),
        (rec["abandoned_bad"] == 0, f"{rec['abandoned_bad']} abandoned lease(s) neither expired nor released"),
        (rec["counter_mismatch"] == 0, f"{rec['counter_mismatch']} item(s) whose n_active/n_done disagree with "
                                       "their leases/judgments"),
    ]
    return [why for ok, why in checks if not ok]


def print_report(args, world: World, server: Server, tally: Tally, rec: dict, elapsed_s: float) -> None:
    kinds = Counter(tally.acked.values())
    print(f"run: {elapsed_s:.1f} s to the last acknowledgement; {len(tally.acked)} of {args.submits} submits "
          f"acknowledged ({dict(sorted(kinds.items()))}) with {tally.posts} POSTs; {len(tally.abandoned)} leases "
          f"abandoned; {world.n_items} items, overlap {world.overlap}, lease {args.lease_seconds} s")
    print(f"latency ms: next p50 {percentile(tally.next_ms, 50)} p95 {percentile(tally.next_ms, 95)} "
          f"p99 {percentile(tally.next_ms, 99)} max {percentile(tally.next_ms, 100)} (n={len(tally.next_ms)}); "
          f"submit p50 {percentile(tally.submit_ms, 50)} p95 {percentile(tally.submit_ms, 95)} "
          f"p99 {percentile(tally.submit_ms, 99)} max {percentile(tally.submit_ms, 100)} (n={len(tally.submit_ms)})")
    print("http: " + ", ".join(f"{k}: {n}" for k, n in sorted(tally.statuses.items())))
    if tally.events:
        print("events: " + ", ".join(f"{k}: {n}" for k, n in sorted(tally.events.items())))
    if server.kills:
        print(f"kill -9: {server.kills}, restarts: {server.restarts}, down for "
              + ", ".join(f"{s:.2f} s" for s in server.downtime_s))
    print(f"database: {rec['stored']} judgments stored; lost {rec['lost']}, duplicated {rec['duplicated']} "
          f"(repeated (item, annotator) pairs {rec['pairs_repeated']}); late: {rec['late_acked']} late submits, "
          f"{rec['late_acked'] - rec['late_unflagged']} flagged ({rec['late_flagged_total']} judgments flagged late "
          f"in all); abandoned: {rec['abandoned']} leases, {rec['abandoned_released']} expired and released, "
          f"{rec['abandoned_pending']} expired (released on the next request), {rec['abandoned_stored']} stored; "
          f"items with counters off: {rec['counter_mismatch']}; items over the overlap (late submits): "
          f"{rec['items_over_overlap']}")
    tracebacks = server.log_tail(10**9).count("Traceback")
    print(f"server log: {tracebacks} traceback(s) ({server.log})")
    for e in tally.errors[:10]:
        print(f"client error: {e}")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Load and kill -9 benchmark of `rlhfkit collect serve` (module doc).")
    p.add_argument("--annotators", type=int, default=50, help="concurrent annotators (one thread and connection each)")
    p.add_argument("--submits", type=int, default=10_000, help="acknowledged submits to reach")
    p.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    p.add_argument("--kill9", type=int, nargs="?", const=1, default=0, metavar="N",
                   help="SIGKILL the server N times (default 1, at half the submits) and restart it")
    p.add_argument("--seed", type=int, default=0, help="seed of the plan, the items and the choices")
    p.add_argument("--lease-seconds", type=int, default=3, help="the project's lease (short: leases expire in the run)")
    p.add_argument("--overlap", type=int, default=3, help="annotators per item")
    p.add_argument("--think-ms", type=float, default=0,
                   help="mean time an annotator reads a pair before answering (uniform 0..2x; 0: answer at once, "
                        "the server's capacity under 50 clients that never pause)")
    p.add_argument("--max-seconds", type=float, default=1800, help="stop the clients after this long")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (database, server log)")
    args = p.parse_args(argv)
    for name in ("annotators", "submits", "lease_seconds", "overlap"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.think_ms < 0:
        p.error("--think-ms must be >= 0")
    if args.kill9 < 0:
        p.error("--kill9 must be >= 0")
    if args.overlap > args.annotators:
        p.error("--overlap cannot exceed --annotators (each item needs that many different people)")
    return args


def cpu_seconds() -> tuple[float, float]:
    """(user + system CPU seconds of this process, of its finished children: the server processes)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def _terminate(signum, frame) -> None:
    raise SystemExit(128 + signum)  # SIGTERM: run the finally blocks, so the server and the cluster stop too


def main(argv=None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    rng = random.Random(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="rk-load-"))
    stop_db, server, keep = (lambda: None), None, args.keep
    try:
        try:
            url, stop_db = make_database(args.db, tmp)
            world = setup(url, args, rng)
            server = Server(url, tmp / "server.log")
            server.start()
        except Exception as e:  # no PostgreSQL, a port taken, a server that does not start: say so, exit 2
            print(f"setup failed: {type(e).__name__}: {e}", file=sys.stderr)
            keep = True
            return 2
        print(f"setup: {args.db} at {url}; server {server.base} (pid {server.proc.pid}); {args.annotators} "
              f"annotators, {args.submits} submits; folder {tmp}", flush=True)
        tally = Tally(make_plan(args, rng))
        cpu0 = cpu_seconds()
        t_start = drive(server, world, args, tally)
        server.stop()
        cpu = [b - a for a, b in zip(cpu0, cpu_seconds())]
        print(f"cpu: {cpu[0]:.1f} s in the clients (this process), {cpu[1]:.1f} s in the server processes, over "
              f"{time.monotonic() - t_start:.1f} s", flush=True)
        rec = reconcile(url, world, tally)
        elapsed = (tally.t_last_ack or time.monotonic()) - t_start
        out = result_line(args, server, tally, rec, elapsed)
        print_report(args, world, server, tally, rec, elapsed)
        why = failures(out, rec, tally)
        print("FAILED: " + "; ".join(why) if why else "passed: every acknowledged judgment stored exactly once")
        keep = keep or bool(why)
        print(json.dumps(out), flush=True)
        return 1 if why else 0
    finally:
        if server is not None:
            server.stop()
        stop_db()
        if keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
