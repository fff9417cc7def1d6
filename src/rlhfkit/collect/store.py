"""`Store`: every read and write of the collection database, one transaction per operation.

The assignment core (collection notes, "Assignment: the part anchors get wrong"):

    next_assignment, in ONE write transaction:
      1. expire the project's stale leases and release their slots (n_active - 1)
      2. give the user back their own active lease (reload, second tab, back button: same uid)
      3. if a gold item is due (the first `onboarding_gold` assignments, then every `gold_every`-th), serve an
         unseen one
      4. else claim a slot: `UPDATE items SET n_active = n_active + 1 WHERE id = ? AND n_active + n_done <
         overlap AND status = 'open'` on candidates in id order, taking the first whose row count is 1; atomic on
         SQLite (one writer) and on PostgreSQL (the row lock re-checks the condition), so no item is over-assigned
      5. insert the assignment with a random side (`secrets`) and a form nonce; UNIQUE(item, user) is the last
         guard
    submit: the lease must be the user's (else None -> 404) and the nonce the form's; the screen choice maps back
      to A/B with the assignment's `left_is_a`; the judgment is inserted and the counters move in the same
      transaction. A repeat (same nonce) is "duplicate" and adds nothing. A submit after the lease expired is
      stored with late=True and counts as done even if the item then exceeds `overlap`: the only way over it.
    skip: a judgment with choice "skip"; the slot is released for another annotator; `retire_after_skips` skips
      retire the item.

Counters: items.n_active = the item's assignments in state "active"; items.n_done = its judgments other than
skips; items.n_skips = its skips. Gold items are shown to every annotator (they measure the annotator, not the
item), so `overlap` does not limit them and they never become "full".

Concurrency: SQLite write transactions are BEGIN IMMEDIATE with a busy timeout (db.py); PostgreSQL runs READ
COMMITTED with row locks (`SELECT ... FOR UPDATE` on the user for next_assignment, on the assignment for submit)
and conditional updates. A transaction that fails with SQLite "database is locked" or a PostgreSQL
serialization failure / deadlock is retried from the start a few times, so concurrent annotators see no error.

Tokens (login links, sessions, API tokens) are 32 random bytes (`secrets.token_urlsafe(32)`); only their SHA-256
hex digest is stored, so a copy of the database lets nobody log in.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import json
import random
import re
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, fields
from types import SimpleNamespace
from typing import Any, Callable, Iterable, Optional

from sqlalchemy import Integer, and_, bindparam, case, exists, func, select
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.exc import DBAPIError, IntegrityError, NoResultFound

from rlhfkit.collect import db
from rlhfkit.collect.db import (
    api_tokens,
    assignments,
    audit_log,
    items,
    judgment_revisions,
    judgments,
    login_links,
    project_members,
    projects,
    sessions,
    suggestions,
    users,
)
from rlhfkit.errors import RlhfkitError

ROLES = ("admin", "annotator")
API_SCOPES = ("import", "export", "stats")
SCREEN_CHOICES = ("left", "right", "tie", "both_bad")
CANONICAL_CHOICES = ("A", "B", "tie", "both_bad", "skip")
STRENGTHS = ("slightly", "much")
REASON_POLICIES = ("off", "optional", "required")
GOLD_ANSWERS = ("A", "B", "tie")
SUGGESTION_STATUSES = ("agree", "tie", "disagree", "failed")

MAX_REASON_CHARS = 4000
# A transaction that hits a lock (SQLite) or a serialization failure/deadlock (PostgreSQL) is run again.
RETRIES = 12
# Candidate items read per round of slot claims (each claim is one conditional UPDATE).
CLAIM_BATCH = 32

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


# ----------------------------------------------------------------------------------------------
# values handed out
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class User:
    id: int
    name: str
    role: str       # "admin" | "annotator"
    disabled: bool


@dataclass(frozen=True)
class SessionInfo:
    user: User
    csrf: str
    expires_ms: int


@dataclass(frozen=True)
class Project:
    """A labelling project. Option names are the keyword arguments of `Store.create_project`."""

    id: int
    slug: str
    name: str
    overlap: int                 # judgments wanted per item
    lease_seconds: int           # how long an assignment holds its slot
    gold_every: int              # after onboarding, every N-th assignment is a gold item (0 = off)
    onboarding_gold: int         # the first N assignments are gold items
    strength: bool               # ask "slightly / much"
    reason: str                  # "off" | "optional" | "required"
    randomise_sides: bool
    guidelines: str
    per_user_cap: Optional[int]  # most non-gold items one annotator judges (None = no cap)
    retire_after_skips: Optional[int] = None  # an item skipped this many times is retired (None = never)


@dataclass(frozen=True)
class NewItem:
    """A pair to import. prompt: text or messages; response_a/b: text. Hidden fields never reach annotators."""

    prompt: Any                  # str | list[{"role", "content"}]
    response_a: str
    response_b: str
    meta: dict = field(default_factory=dict)
    is_gold: bool = False
    gold_answer: Optional[str] = None    # "A" | "B" | "tie"
    known_label: Optional[str] = None    # hidden "A" | "B" from a preference file
    suggestion: Optional[dict] = None    # hidden AI verdict {"judge", "verdict", "confidence", "status"}
    source: Optional[str] = None         # where the pair came from (file, generator)


@dataclass(frozen=True)
class Assignment:
    uid: str                     # random 128-bit hex, used in URLs
    item_id: int
    project_id: int
    user_id: int
    prompt: Any                  # str | list[dict]
    left: str                    # responses as shown on screen
    right: str
    left_is_a: bool
    state: str                   # "active" | "done" | "skipped" | "expired"
    nonce: str
    expires_ms: int
    is_gold: bool


@dataclass(frozen=True)
class SubmitResult:
    status: str                  # "stored" | "duplicate" (idempotent repeat: no new row) | "late" (stored, flagged)
    judgment_id: int
    choice: str                  # canonical "A" | "B" | "tie" | "both_bad" | "skip"


PROJECT_DEFAULTS = {"overlap": 3, "lease_seconds": 600, "gold_every": 0, "onboarding_gold": 0, "strength": True,
                    "reason": "optional", "randomise_sides": True, "guidelines": "", "per_user_cap": None,
                    "retire_after_skips": None}


# ----------------------------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------------------------
def wall_ms() -> int:
    """Wall-clock time in integer epoch milliseconds."""
    return int(time.time() * 1000)


def token_hash(token: str) -> str:
    """What is stored for a token: its SHA-256 hex digest."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: equal values give equal text (for hashing)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(prompt: Any, response_a: str, response_b: str) -> str:
    """The dedup key of a pair: sha256 of the canonical JSON of the prompt and the two responses. The responses are
    sorted first: (x, y) and (y, x) are the same comparison, and a preference file re-imported with other random
    sides is still recognised."""
    pair = sorted([response_a, response_b])
    return hashlib.sha256(canonical_json({"prompt": prompt, "responses": pair}).encode("utf-8")).hexdigest()


def pseudonym(salt: str, user_id: int) -> str:
    """The annotator id in exports: "a-" + the first 10 hex of sha256(project salt + user id)."""
    return "a-" + hashlib.sha256(f"{salt}{user_id}".encode("utf-8")).hexdigest()[:10]


def _retryable(error: DBAPIError) -> bool:
    """SQLite lock contention, or a PostgreSQL serialization failure / deadlock: run the transaction again."""
    code = getattr(error.orig, "sqlstate", None)
    if code in ("40001", "40P01"):
        return True
    message = str(error.orig).lower()
    return "database is locked" in message or "database is busy" in message


def _user(row: Row) -> User:
    return User(row.id, row.name, row.role, bool(row.disabled))


def _project(row: Row) -> Project:
    names = [f.name for f in fields(Project)]
    values = {name: getattr(row, name) for name in names}
    for flag in ("strength", "randomise_sides"):
        values[flag] = bool(values[flag])
    return Project(**values)


def _clean_text(value: Optional[str], what: str) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str):
        raise RlhfkitError(f"{what} must be text")
    value = value.strip()
    if len(value) > MAX_REASON_CHARS:
        raise RlhfkitError(f"{what} is too long ({len(value)} characters, at most {MAX_REASON_CHARS})")
    return value or None


def _clean_strength(strength: Optional[str]) -> Optional[str]:
    if strength in (None, ""):
        return None
    if strength not in STRENGTHS:
        raise RlhfkitError(f"strength must be one of {', '.join(STRENGTHS)}, got {strength!r}")
    return strength


def canonical_choice(screen_choice: str, left_is_a: bool) -> str:
    """On-screen choice -> canonical: left is A when left_is_a, else B; tie and both_bad are side-free."""
    if screen_choice == "left":
        return "A" if left_is_a else "B"
    if screen_choice == "right":
        return "B" if left_is_a else "A"
    return screen_choice


def _check_screen_choice(screen_choice: str) -> None:
    if screen_choice not in SCREEN_CHOICES:
        raise RlhfkitError(f"choice must be one of {', '.join(SCREEN_CHOICES)} (or skip), got {screen_choice!r}")


# ----------------------------------------------------------------------------------------------
# statements built once (the per-request reads and the annotation transactions): SQLAlchemy then neither
# rebuilds the expression nor recomputes its cache key on every call; values are bound by name at execution
# ----------------------------------------------------------------------------------------------
_SESSION = (select(sessions.c.csrf, sessions.c.expires_ms, users).join(users, users.c.id == sessions.c.user_id)
            .where(sessions.c.token_hash == bindparam("b_hash"), sessions.c.revoked.is_(False),
                   sessions.c.expires_ms > bindparam("b_now"), users.c.disabled.is_(False)))
_PROJECT_BY_SLUG = select(projects).where(projects.c.slug == bindparam("b_slug"))
_PROJECT_BY_ID = select(projects).where(projects.c.id == bindparam("b_pid"))
_MEMBER = select(project_members.c.user_id).where(project_members.c.project_id == bindparam("b_pid"),
                                                  project_members.c.user_id == bindparam("b_uid"))
_ASSIGNMENT_BY_UID = select(assignments).where(assignments.c.uid == bindparam("b_uid"))
# an assignment with its item's texts (assignment_context)
_ASSIGNMENT_WITH_ITEM = (select(assignments, items.c.prompt, items.c.response_a, items.c.response_b,
                                items.c.is_gold)
                         .join(items, items.c.id == assignments.c.item_id)
                         .where(assignments.c.uid == bindparam("b_uid")))
# a project by id and whether the user is a member of it (assignment_context)
_PROJECT_AND_MEMBER = select(projects, _MEMBER.exists().label("is_member")).where(projects.c.id == bindparam("b_pid"))
_ITEM_TEXTS = (select(items.c.prompt, items.c.response_a, items.c.response_b, items.c.is_gold)
               .where(items.c.id == bindparam("b_item")))
_MINE = and_(judgments.c.project_id == bindparam("b_pid"), judgments.c.user_id == bindparam("b_uid"))
_REGULAR_ITEMS = and_(items.c.project_id == bindparam("b_pid"), items.c.is_gold.is_(False))
_OVERLAP = select(projects.c.overlap).where(projects.c.id == bindparam("b_pid")).scalar_subquery()


def _count_of(*where) -> Any:
    return select(func.count()).where(*where).scalar_subquery()


# Store.progress in one statement, every count from an index (migration 2); overlap NULL: no such project
_PROGRESS = select(
    _OVERLAP.label("overlap"),
    _count_of(_MINE, judgments.c.choice != "skip").label("done_by_user"),
    _count_of(_MINE, judgments.c.choice == "skip").label("skipped_by_user"),
    _count_of(_REGULAR_ITEMS).label("items"),
    _count_of(_REGULAR_ITEMS, items.c.n_done >= _OVERLAP).label("items_complete"),
    _count_of(judgments.c.project_id == bindparam("b_pid"), judgments.c.choice != "skip").label("judgments"))
_LOCK_USER = select(users.c.id, users.c.disabled).where(users.c.id == bindparam("b_uid")).with_for_update()
_RELEASE = (items.update().where(items.c.id == bindparam("b_item"))
            .values(n_active=items.c.n_active - bindparam("b_n")))
_EXPIRE = (assignments.update()
           .where(assignments.c.project_id == bindparam("b_pid"), assignments.c.state == "active",
                  assignments.c.expires_ms <= bindparam("b_now"))
           .values(state="expired", finished_ms=bindparam("b_now"))
           .returning(assignments.c.item_id))
_MINE_ACTIVE = (select(assignments).where(assignments.c.project_id == bindparam("b_pid"),
                                          assignments.c.user_id == bindparam("b_uid"), assignments.c.state == "active")
                .order_by(assignments.c.id).limit(1))
_ROOM = items.c.n_active + items.c.n_done < bindparam("b_overlap")
_CANDIDATES = (select(items.c.id).where(items.c.project_id == bindparam("b_pid"), items.c.status == "open",
                                        items.c.is_gold.is_(False), _ROOM,
                                        ~exists().where(assignments.c.item_id == items.c.id,
                                                        assignments.c.user_id == bindparam("b_uid"),
                                                        assignments.c.project_id == bindparam("b_pid")))
               .order_by(items.c.id).limit(CLAIM_BATCH))
_CLAIM = (items.update().where(items.c.id == bindparam("b_item"), _ROOM, items.c.status == "open")
          .values(n_active=items.c.n_active + 1))
_INSERT_ASSIGNMENT = assignments.insert()
_ASSIGNMENT_FOR_UPDATE = select(assignments).where(assignments.c.uid == bindparam("b_uid")).with_for_update()
_JUDGMENT_OF = select(judgments.c.id, judgments.c.choice).where(judgments.c.assignment_id == bindparam("b_aid"))
_ITEM_GOLD = select(items.c.is_gold, items.c.gold_answer).where(items.c.id == bindparam("b_item"))
_FINISH_ASSIGNMENT = (assignments.update().where(assignments.c.id == bindparam("b_aid"),
                                                 assignments.c.state == bindparam("b_state"))
                      .values(state=bindparam("b_new_state"), finished_ms=bindparam("b_now")))
_INSERT_JUDGMENT = judgments.insert()


def _session(conn: Connection, token: str, now: int) -> Optional[SessionInfo]:
    row = conn.execute(_SESSION, {"b_hash": token_hash(token), "b_now": now}).first()
    return None if row is None else SessionInfo(_user(row), row.csrf, row.expires_ms)


def _project_of(conn: Connection, *, slug: Optional[str] = None, pid: Optional[int] = None) -> Optional[Project]:
    """The project with this slug (or id), or None."""
    if slug is not None:
        row = conn.execute(_PROJECT_BY_SLUG, {"b_slug": slug}).first()
    else:
        row = conn.execute(_PROJECT_BY_ID, {"b_pid": pid}).first()
    return None if row is None else _project(row)


def _is_member(conn: Connection, project_id: int, user_id: int) -> bool:
    return conn.execute(_MEMBER, {"b_pid": project_id, "b_uid": user_id}).first() is not None


def _assignment_context(conn: Connection, uid: str, user_id: int, with_progress: bool, now: int) -> Optional[tuple]:
    """Store.assignment_context on an open connection."""
    row = conn.execute(_ASSIGNMENT_WITH_ITEM, {"b_uid": uid}).first()
    if row is None or row.user_id != user_id:
        return None
    found = _assignment_of(row, row, now)
    prow = conn.execute(_PROJECT_AND_MEMBER, {"b_pid": found.project_id, "b_uid": user_id}).first()
    project = None if prow is None else _project(prow)
    member = prow is not None and bool(prow.is_member)
    progress = _progress(conn, project.id, user_id) if with_progress and member else None
    return found, project, member, progress


def _progress(conn: Connection, project_id: int, user_id: int) -> dict:
    """Store.progress on an open connection: one statement (_PROGRESS). NoResultFound for an unknown project,
    as its former first query (`SELECT overlap ...`).scalar_one() raised."""
    row = conn.execute(_PROGRESS, {"b_pid": project_id, "b_uid": user_id}).one()
    if row.overlap is None:
        raise NoResultFound("No row was found when one was required")
    return {"done_by_user": row.done_by_user, "skipped_by_user": row.skipped_by_user, "items": row.items,
            "items_complete": row.items_complete, "judgments": row.judgments}


# ----------------------------------------------------------------------------------------------
# the store
# ----------------------------------------------------------------------------------------------
class Store:
    """All database access of `rlhfkit collect`. Thread-safe: each call takes its own pooled connection."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._writer = db.write_engine(engine)
        self.dialect = engine.dialect.name  # "sqlite" | "postgresql"
        # SQLite has one writer at a time. Threads of this process queue on a lock, which wakes the next one the
        # moment the last commits; without it they collide in BEGIN IMMEDIATE and SQLite's busy handler sleeps
        # them in steps of up to 100 ms (the p95 of 50 annotators went from ~500 ms to a few ms). Other
        # processes (a CLI import beside the server) still meet the busy timeout. PostgreSQL locks rows itself.
        self._write_lock = threading.Lock() if self.dialect == "sqlite" else contextlib.nullcontext()

    @classmethod
    def open(cls, url: str) -> "Store":
        """Open (and create or migrate) the database at a file path, sqlite:///PATH or postgresql://... URL."""
        engine = db.make_engine(url)
        try:
            db.migrate(engine)
        except DBAPIError as e:
            engine.dispose()
            raise RlhfkitError(f"cannot open the collection database {url}: {e.orig}") from None
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    # -- transactions ----------------------------------------------------------------------------
    def _write(self, fn: Callable[[Connection], Any], *, retry_integrity: bool = False) -> Any:
        """Run fn(conn) in one write transaction, again from the start on lock contention (and, when asked, on a
        unique-constraint race: the rerun reads what the other transaction committed)."""
        delay = 0.002
        for attempt in range(RETRIES):
            try:
                with self._write_lock, self._writer.begin() as conn:
                    return fn(conn)
            except IntegrityError:
                if not retry_integrity or attempt == RETRIES - 1:
                    raise
            except DBAPIError as e:
                if attempt == RETRIES - 1 or not _retryable(e):
                    raise
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 0.25)
        raise AssertionError("unreachable")

    def _read(self, fn: Callable[[Connection], Any]) -> Any:
        delay = 0.002
        for attempt in range(RETRIES):
            try:
                with self.engine.connect() as conn:
                    return fn(conn)
            except DBAPIError as e:
                if attempt == RETRIES - 1 or not _retryable(e):
                    raise
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 0.25)
        raise AssertionError("unreachable")

    # -- users -----------------------------------------------------------------------------------
    def add_user(self, name: str, role: str = "annotator") -> User:
        """A new user. Names are 1-64 characters of letters, digits and . _ @ - (they appear in URLs and logs)."""
        if not isinstance(name, str) or not _NAME.match(name):
            raise RlhfkitError(f"bad user name {name!r}: use 1-64 letters, digits, '.', '_', '@' or '-', "
                               "starting with a letter or digit")
        if role not in ROLES:
            raise RlhfkitError(f"role must be one of {', '.join(ROLES)}, got {role!r}")

        def add(conn: Connection) -> User:
            if conn.execute(select(users.c.id).where(users.c.name == name)).first() is not None:
                raise RlhfkitError(f"user {name!r} already exists")
            uid = conn.execute(users.insert().values(name=name, role=role, disabled=False,
                                                     created_ms=wall_ms())).inserted_primary_key[0]
            return User(uid, name, role, False)

        try:
            return self._write(add)
        except IntegrityError:
            raise RlhfkitError(f"user {name!r} already exists") from None

    def user(self, name: str) -> Optional[User]:
        row = self._read(lambda c: c.execute(select(users).where(users.c.name == name)).first())
        return None if row is None else _user(row)

    def user_by_id(self, user_id: int) -> Optional[User]:
        row = self._read(lambda c: c.execute(select(users).where(users.c.id == user_id)).first())
        return None if row is None else _user(row)

    def users(self) -> list[User]:
        return [_user(r) for r in self._read(lambda c: c.execute(select(users).order_by(users.c.id)).all())]

    def disable_user(self, name: str, now_ms: Optional[int] = None) -> None:
        """Disable a user: sessions and API tokens revoked, unused login links voided, active leases released."""
        now = now_ms if now_ms is not None else wall_ms()

        def disable(conn: Connection) -> None:
            row = conn.execute(select(users.c.id).where(users.c.name == name).with_for_update()).first()
            if row is None:
                raise RlhfkitError(f"no user {name!r}")
            uid = row.id
            conn.execute(users.update().where(users.c.id == uid).values(disabled=True))
            conn.execute(sessions.update().where(sessions.c.user_id == uid).values(revoked=True))
            conn.execute(api_tokens.update().where(api_tokens.c.user_id == uid).values(revoked=True))
            conn.execute(login_links.update().where(login_links.c.user_id == uid, login_links.c.used_ms.is_(None))
                         .values(used_ms=now))
            released = conn.execute(assignments.update()
                                    .where(assignments.c.user_id == uid, assignments.c.state == "active")
                                    .values(state="expired", finished_ms=now)
                                    .returning(assignments.c.item_id)).all()
            _release(conn, [r.item_id for r in released])

        self._write(disable)

    # -- tokens ----------------------------------------------------------------------------------
    def _active_user(self, conn: Connection, user_id: int) -> Row:
        row = conn.execute(select(users).where(users.c.id == user_id)).first()
        if row is None:
            raise RlhfkitError(f"no user with id {user_id}")
        if row.disabled:
            raise RlhfkitError(f"user {row.name!r} is disabled")
        return row

    def make_login_link(self, user_id: int, ttl_s: int = 7 * 86400, now_ms: Optional[int] = None) -> str:
        """A one-time login token (plaintext, returned once; only its hash is stored)."""
        token = secrets.token_urlsafe(32)
        now = now_ms if now_ms is not None else wall_ms()

        def make(conn: Connection) -> None:
            self._active_user(conn, user_id)
            conn.execute(login_links.insert().values(token_hash=token_hash(token), user_id=user_id,
                                                     expires_ms=now + int(ttl_s * 1000), created_ms=now))

        self._write(make)
        return token

    def use_login_link(self, token: str, now_ms: Optional[int] = None) -> Optional[User]:
        """The link's user, consuming the link; None if unknown, used, expired or the user is disabled."""
        now = now_ms if now_ms is not None else wall_ms()
        if not isinstance(token, str) or not token:
            return None

        def use(conn: Connection) -> Optional[User]:
            row = conn.execute(select(users, login_links.c.id.label("link_id"))
                               .join(login_links, users.c.id == login_links.c.user_id)
                               .where(login_links.c.token_hash == token_hash(token),
                                      login_links.c.used_ms.is_(None), login_links.c.expires_ms > now)).first()
            if row is None or row.disabled:
                return None
            taken = conn.execute(login_links.update().where(login_links.c.id == row.link_id,
                                                            login_links.c.used_ms.is_(None)).values(used_ms=now))
            return _user(row) if taken.rowcount == 1 else None

        return self._write(use)

    def new_session(self, user_id: int, ttl_s: int = 12 * 3600, now_ms: Optional[int] = None) -> tuple[str, str]:
        """(session token, CSRF secret) for a logged-in user; only the token's hash is stored."""
        now = now_ms if now_ms is not None else wall_ms()
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)

        def make(conn: Connection) -> None:
            self._active_user(conn, user_id)
            conn.execute(sessions.insert().values(token_hash=token_hash(token), user_id=user_id, csrf=csrf,
                                                  expires_ms=now + int(ttl_s * 1000), revoked=False,
                                                  created_ms=now))

        self._write(make)
        return token, csrf

    def session(self, token: str, now_ms: Optional[int] = None) -> Optional[SessionInfo]:
        """The live session of a token (not revoked, not expired, user enabled), else None."""
        now = now_ms if now_ms is not None else wall_ms()
        if not isinstance(token, str) or not token:
            return None
        return self._read(lambda c: _session(c, token, now))

    def session_project(self, token: str, slug: str,
                        now_ms: Optional[int] = None) -> tuple[Optional[SessionInfo], Optional[Project], bool]:
        """(session, project, is_member) in one read, for a request on a route with {slug}: session() of the
        token, then (only when that session is live) project(slug) and is_member(project, user); (None, None,
        False) for no live session. The web app checks them in the order it always did."""
        now = now_ms if now_ms is not None else wall_ms()
        if not isinstance(token, str) or not token:
            return None, None, False

        def read(conn: Connection) -> tuple:
            info = _session(conn, token, now)
            if info is None:
                return None, None, False
            project = _project_of(conn, slug=slug)
            return info, project, project is not None and _is_member(conn, project.id, info.user.id)

        return self._read(read)

    def end_session(self, token: str) -> None:
        self._write(lambda c: c.execute(sessions.update().where(sessions.c.token_hash == token_hash(token))
                                        .values(revoked=True)))

    def new_api_token(self, user_id: int, scopes: list[str], ttl_s: Optional[int] = None,
                      now_ms: Optional[int] = None) -> str:
        """An API token (Authorization: Bearer) with scopes from import, export, stats; plaintext returned once."""
        now = now_ms if now_ms is not None else wall_ms()
        bad = [s for s in scopes if s not in API_SCOPES]
        if bad or not scopes:
            raise RlhfkitError(f"API token scopes must be some of {', '.join(API_SCOPES)}, got {list(scopes)}")
        token = secrets.token_urlsafe(32)

        def make(conn: Connection) -> None:
            self._active_user(conn, user_id)
            conn.execute(api_tokens.insert().values(
                token_hash=token_hash(token), user_id=user_id, scopes=",".join(sorted(set(scopes))),
                expires_ms=None if ttl_s is None else now + int(ttl_s * 1000), revoked=False, created_ms=now))

        self._write(make)
        return token

    def api_token(self, token: str, now_ms: Optional[int] = None) -> Optional[tuple[User, list[str]]]:
        """(user, scopes) of a live API token, else None."""
        now = now_ms if now_ms is not None else wall_ms()
        if not isinstance(token, str) or not token:
            return None
        live = (api_tokens.c.expires_ms.is_(None)) | (api_tokens.c.expires_ms > now)
        row = self._read(lambda c: c.execute(
            select(api_tokens.c.scopes, users).join(users, users.c.id == api_tokens.c.user_id)
            .where(api_tokens.c.token_hash == token_hash(token), api_tokens.c.revoked.is_(False), live,
                   users.c.disabled.is_(False))).first())
        return None if row is None else (_user(row), row.scopes.split(","))

    # -- projects --------------------------------------------------------------------------------
    def create_project(self, slug: str, name: Optional[str] = None, **options: Any) -> Project:
        """A new project; options are Project fields (PROJECT_DEFAULTS for the rest)."""
        if not isinstance(slug, str) or not _SLUG.match(slug):
            raise RlhfkitError(f"bad project slug {slug!r}: use 1-64 lower-case letters, digits, '-' or '_'")
        values = _project_options(options)
        values.update(slug=slug, name=name or slug, salt=secrets.token_hex(16), created_ms=wall_ms())

        def create(conn: Connection) -> int:
            if conn.execute(select(projects.c.id).where(projects.c.slug == slug)).first() is not None:
                raise RlhfkitError(f"project {slug!r} already exists")
            return conn.execute(projects.insert().values(**values)).inserted_primary_key[0]

        try:
            pid = self._write(create)
        except IntegrityError:
            raise RlhfkitError(f"project {slug!r} already exists") from None
        return self.project_by_id(pid)

    def project(self, slug: str) -> Optional[Project]:
        return self._read(lambda c: _project_of(c, slug=slug))

    def project_by_id(self, pid: int) -> Optional[Project]:
        return self._read(lambda c: _project_of(c, pid=pid))

    def projects(self, user_id: Optional[int] = None) -> list[Project]:
        """All projects (user_id None) or the user's memberships, oldest first."""
        query = select(projects).order_by(projects.c.id)
        if user_id is not None:
            query = query.join(project_members, project_members.c.project_id == projects.c.id).where(
                project_members.c.user_id == user_id)
        return [_project(r) for r in self._read(lambda c: c.execute(query).all())]

    def add_member(self, project_id: int, user_id: int) -> None:
        """Make a user a member of a project (no-op when already one)."""

        def add(conn: Connection) -> None:
            if conn.execute(select(projects.c.id).where(projects.c.id == project_id)).first() is None:
                raise RlhfkitError(f"no project with id {project_id}")
            self._active_user(conn, user_id)
            member = select(project_members.c.user_id).where(project_members.c.project_id == project_id,
                                                             project_members.c.user_id == user_id)
            if conn.execute(member).first() is None:
                conn.execute(project_members.insert().values(project_id=project_id, user_id=user_id,
                                                             created_ms=wall_ms()))

        self._write(add, retry_integrity=True)

    def is_member(self, project_id: int, user_id: int) -> bool:
        return self._read(lambda c: _is_member(c, project_id, user_id))

    # -- items -----------------------------------------------------------------------------------
    def add_items(self, project_id: int, new_items: Iterable[NewItem]) -> dict:
        """Insert pairs, skipping those whose content hash the project already has (or that repeat within the
        batch). Returns {"added": n, "duplicates": n}. A bad item raises RlhfkitError and nothing is added."""
        rows, hidden = [], []
        for k, item in enumerate(new_items):
            rows.append(_item_row(item, k))
            hidden.append(item.suggestion)
        if self.project_by_id(project_id) is None:
            raise RlhfkitError(f"no project with id {project_id}")
        return self._write(lambda conn: _insert_items(conn, project_id, rows, hidden), retry_integrity=True)

    # -- annotation ------------------------------------------------------------------------------
    def next_assignment(self, project_id: int, user_id: int, now_ms: Optional[int] = None) -> Optional[Assignment]:
        """The user's lease on an item of the project: their active one, a due gold item, or a newly claimed slot
        (module doc). None when nothing is left for this user (or the user is disabled)."""
        now = now_ms if now_ms is not None else wall_ms()
        return self._write(lambda conn: _next(conn, project_id, user_id, now), retry_integrity=True)

    def assignment(self, uid: str, user_id: int, now_ms: Optional[int] = None) -> Optional[Assignment]:
        """An assignment of this user (any state; an active one past its expiry reads "expired"); None when the
        uid is unknown or another user's."""
        now = now_ms if now_ms is not None else wall_ms()
        if not isinstance(uid, str):
            return None

        def read(conn: Connection) -> Optional[Assignment]:
            row = conn.execute(_ASSIGNMENT_BY_UID, {"b_uid": uid}).first()
            if row is None or row.user_id != user_id:
                return None
            return _assignment(conn, row, now)

        return self._read(read)

    def assignment_context(self, uid: str, user_id: int, *, with_progress: bool = False,
                           now_ms: Optional[int] = None) -> Optional[tuple[Assignment, Optional[Project], bool,
                                                                          Optional[dict]]]:
        """(assignment, its project, is_member(project, user), progress(project, user) or None) in one read, for
        the annotate routes: assignment(uid, user_id), then project_by_id and is_member of its project, then (when
        asked and the user is a member) progress. None exactly when assignment() would give None."""
        now = now_ms if now_ms is not None else wall_ms()
        if not isinstance(uid, str):
            return None
        return self._read(lambda c: _assignment_context(c, uid, user_id, with_progress, now))

    def session_assignment(self, token: str, uid: str, *, with_progress: bool = False,
                           now_ms: Optional[int] = None) -> tuple[Optional[SessionInfo], Optional[tuple]]:
        """(session(token), assignment_context(uid, that session's user, with_progress)) in one read, for the
        annotate routes; the context is read only for a live session: (None, None) otherwise."""
        now = now_ms if now_ms is not None else wall_ms()
        if not isinstance(token, str) or not token:
            return None, None

        def read(conn: Connection) -> tuple:
            info = _session(conn, token, now)
            if info is None or not isinstance(uid, str):
                return info, None
            return info, _assignment_context(conn, uid, info.user.id, with_progress, now)

        return self._read(read)

    def submit(self, uid: str, user_id: int, screen_choice: str, *, nonce: str, strength: Optional[str] = None,
               reason: Optional[str] = None, client_ms: Optional[int] = None,
               now_ms: Optional[int] = None) -> Optional[SubmitResult]:
        """Store the user's judgment on an assignment (module doc). None when the uid is not this user's;
        RlhfkitError on a bad nonce, choice, strength, or a missing reason the project requires."""
        now = now_ms if now_ms is not None else wall_ms()
        _check_screen_choice(screen_choice)
        answer = {"screen_choice": screen_choice, "strength": _clean_strength(strength),
                  "reason": _clean_text(reason, "reason"), "client_ms": _client_ms(client_ms)}
        return self._write(lambda conn: _finish(conn, uid, user_id, nonce, answer, now), retry_integrity=True)

    def skip(self, uid: str, user_id: int, *, nonce: str, reason: Optional[str] = None,
             now_ms: Optional[int] = None) -> Optional[SubmitResult]:
        """Skip an assignment: a judgment with choice "skip"; the slot goes back for another annotator."""
        now = now_ms if now_ms is not None else wall_ms()
        answer = {"screen_choice": "skip", "strength": None, "reason": _clean_text(reason, "reason"),
                  "client_ms": None}
        return self._write(lambda conn: _finish(conn, uid, user_id, nonce, answer, now), retry_integrity=True)

    def revise(self, judgment_id: int, user_id: int, screen_choice: str, *, strength: Optional[str] = None,
               reason: Optional[str] = None, now_ms: Optional[int] = None) -> bool:
        """Edit one's own judgment; the old values go to judgment_revisions. False when it is not theirs."""
        now = now_ms if now_ms is not None else wall_ms()
        _check_screen_choice(screen_choice)
        answer = {"screen_choice": screen_choice, "strength": _clean_strength(strength),
                  "reason": _clean_text(reason, "reason")}
        return self._write(lambda conn: _revise(conn, judgment_id, user_id, answer, now))

    def history(self, project_id: int, user_id: int, limit: int = 50) -> list[dict]:
        """The user's judgments in the project, newest first."""
        query = (select(judgments, items.c.prompt, items.c.response_a, items.c.response_b, items.c.is_gold)
                 .join(items, items.c.id == judgments.c.item_id)
                 .where(judgments.c.project_id == project_id, judgments.c.user_id == user_id)
                 .order_by(judgments.c.created_ms.desc(), judgments.c.id.desc()).limit(int(limit)))
        return [{"judgment_id": r.id, "item_id": r.item_id, "prompt": json.loads(r.prompt),
                 "response_a": r.response_a, "response_b": r.response_b, "choice": r.choice,
                 "screen_choice": r.screen_choice, "left_is_a": bool(r.left_is_a), "strength": r.strength,
                 "reason": r.reason, "created_ms": r.created_ms, "revision": r.revision, "late": bool(r.late),
                 "is_gold": bool(r.is_gold)}
                for r in self._read(lambda c: c.execute(query).all())]

    def progress(self, project_id: int, user_id: int) -> dict:
        """{"done_by_user": the user's judgments (not skips), "skipped_by_user", "items": non-gold items,
        "items_complete": non-gold items with overlap judgments, "judgments": all judgments (not skips)}."""

        return self._read(lambda c: _progress(c, project_id, user_id))

    # -- reads for quality and export ------------------------------------------------------------
    def item_rows(self, project_id: int) -> list[dict]:
        """One dict per item of the project, in id order (the contract with quality.py and export.py)."""
        query = (select(items, suggestions.c.judge, suggestions.c.verdict, suggestions.c.confidence,
                        suggestions.c.status.label("s_status"))
                 .outerjoin(suggestions, suggestions.c.item_id == items.c.id)
                 .where(items.c.project_id == project_id).order_by(items.c.id))
        out = []
        for r in self._read(lambda c: c.execute(query).all()):
            suggestion = None if r.judge is None else {"judge": r.judge, "verdict": r.verdict,
                                                       "confidence": r.confidence, "status": r.s_status}
            out.append({"item_id": r.id, "prompt": json.loads(r.prompt), "response_a": r.response_a,
                        "response_b": r.response_b, "meta": json.loads(r.meta), "is_gold": bool(r.is_gold),
                        "gold_answer": r.gold_answer, "known_label": r.known_label, "suggestion": suggestion,
                        "source": r.source, "status": r.status, "n_done": r.n_done})
        return out

    def judgment_rows(self, project_id: int) -> list[dict]:
        """One dict per (item, annotator) judgment, latest revision, in id order; annotators pseudonymous."""

        def read(conn: Connection) -> list:
            salt = conn.execute(select(projects.c.salt).where(projects.c.id == project_id)).scalar_one_or_none()
            rows = conn.execute(select(judgments, items.c.is_gold, items.c.gold_answer)
                                .join(items, items.c.id == judgments.c.item_id)
                                .where(judgments.c.project_id == project_id).order_by(judgments.c.id)).all()
            return [(salt, r) for r in rows]

        return [{"judgment_id": r.id, "item_id": r.item_id, "user_id": r.user_id,
                 "annotator": pseudonym(salt, r.user_id), "choice": r.choice, "left_is_a": bool(r.left_is_a),
                 "screen_choice": r.screen_choice,
                 "strength": r.strength, "reason": r.reason, "late": bool(r.late), "elapsed_ms": r.elapsed_ms,
                 "created_ms": r.created_ms, "revision": r.revision, "is_gold": bool(r.is_gold),
                 "gold_answer": r.gold_answer}
                for salt, r in self._read(read)]

    def audit(self, user_id: Optional[int], action: str, detail: dict) -> None:
        """Append to the audit log (who did what: imports, exports, user changes, logins)."""
        payload = json.dumps(detail, sort_keys=True, default=str)
        self._write(lambda c: c.execute(audit_log.insert().values(user_id=user_id, action=action, detail=payload,
                                                                  created_ms=wall_ms())))

    def audit_rows(self, limit: int = 100) -> list[dict]:
        """The newest audit entries."""
        query = select(audit_log).order_by(audit_log.c.id.desc()).limit(int(limit))
        return [{"id": r.id, "user_id": r.user_id, "action": r.action, "detail": json.loads(r.detail),
                 "created_ms": r.created_ms} for r in self._read(lambda c: c.execute(query).all())]


# ----------------------------------------------------------------------------------------------
# projects and items: validation
# ----------------------------------------------------------------------------------------------
def _project_options(options: dict) -> dict:
    """Project options -> column values, defaults filled in; RlhfkitError for an unknown or bad option."""
    unknown = sorted(set(options) - set(PROJECT_DEFAULTS))
    if unknown:
        raise RlhfkitError(f"unknown project option(s) {', '.join(unknown)}; known: {', '.join(PROJECT_DEFAULTS)}")
    values = dict(PROJECT_DEFAULTS)
    for key, value in options.items():  # None means "the default" (for the caps the default is None anyway)
        if value is not None:
            values[key] = value
    minimum = {"overlap": 1, "lease_seconds": 1, "gold_every": 0, "onboarding_gold": 0}
    for key, low in minimum.items():
        v = values[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise RlhfkitError(f"{key} must be an integer >= {low}, got {v!r}")
    for key in ("per_user_cap", "retire_after_skips"):
        v = values[key]
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise RlhfkitError(f"{key} must be an integer >= 1 (or unset), got {v!r}")
    if values["reason"] not in REASON_POLICIES:
        raise RlhfkitError(f"reason must be one of {', '.join(REASON_POLICIES)}, got {values['reason']!r}")
    if not isinstance(values["guidelines"], str):
        raise RlhfkitError("guidelines must be text")
    for key in ("strength", "randomise_sides"):
        values[key] = bool(values[key])
    return values


def _check_prompt(prompt: Any, where: str) -> None:
    if isinstance(prompt, str):
        return
    ok = isinstance(prompt, list) and prompt and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in prompt)
    if not ok:
        raise RlhfkitError(f"{where}: prompt must be text or a non-empty list of {{role, content}} messages")


def _item_row(item: NewItem, k: int) -> dict:
    """A NewItem -> the items row (without project_id); RlhfkitError naming the item (0-based k) if bad."""
    where = f"item {k}"
    if not isinstance(item, NewItem):
        raise RlhfkitError(f"{where}: expected a NewItem, got {type(item).__name__}")
    _check_prompt(item.prompt, where)
    for key in ("response_a", "response_b"):
        if not isinstance(getattr(item, key), str):
            raise RlhfkitError(f"{where}: {key} must be text")
    if item.response_a.strip() == item.response_b.strip():
        raise RlhfkitError(f"{where}: response_a and response_b are identical: no preference to collect")
    if item.is_gold and item.gold_answer not in GOLD_ANSWERS:
        raise RlhfkitError(f"{where}: a gold item needs gold_answer A, B or tie, got {item.gold_answer!r}")
    if not item.is_gold and item.gold_answer is not None:
        raise RlhfkitError(f"{where}: gold_answer is set but the item is not gold")
    if item.known_label not in (None, "A", "B"):
        raise RlhfkitError(f"{where}: known_label must be A or B, got {item.known_label!r}")
    if not isinstance(item.meta, dict):
        raise RlhfkitError(f"{where}: meta must be an object")
    _check_suggestion(item.suggestion, where)
    return {"content_hash": content_hash(item.prompt, item.response_a, item.response_b),
            "prompt": json.dumps(item.prompt, ensure_ascii=False), "response_a": item.response_a,
            "response_b": item.response_b, "meta": json.dumps(item.meta, ensure_ascii=False, default=str),
            "source": item.source, "is_gold": bool(item.is_gold), "gold_answer": item.gold_answer,
            "known_label": item.known_label}


def _check_suggestion(s: Optional[dict], where: str) -> None:
    if s is None:
        return
    if not isinstance(s, dict) or not isinstance(s.get("judge"), str) or not s["judge"]:
        raise RlhfkitError(f"{where}: a suggestion is an object with a judge id")
    if s.get("verdict") not in (None, "A", "B", "tie"):
        raise RlhfkitError(f"{where}: suggestion verdict must be A, B, tie or null, got {s.get('verdict')!r}")
    if s.get("status") not in SUGGESTION_STATUSES:
        raise RlhfkitError(f"{where}: suggestion status must be one of {', '.join(SUGGESTION_STATUSES)}")
    c = s.get("confidence")
    if c is not None and (isinstance(c, bool) or not isinstance(c, (int, float))):
        raise RlhfkitError(f"{where}: suggestion confidence must be a number or null")


def _insert_items(conn: Connection, project_id: int, rows: list[dict], hidden: list) -> dict:
    """Insert the rows whose hash is new to the project; suggestions beside them."""
    hashes = [r["content_hash"] for r in rows]
    known: set = set()
    for start in range(0, len(hashes), 500):
        chunk = hashes[start:start + 500]
        known.update(conn.execute(select(items.c.content_hash).where(
            items.c.project_id == project_id, items.c.content_hash.in_(chunk))).scalars())
    now = wall_ms()
    fresh, fresh_hidden = [], []
    for row, suggestion in zip(rows, hidden):
        if row["content_hash"] in known:
            continue
        known.add(row["content_hash"])
        fresh.append({**row, "project_id": project_id, "n_active": 0, "n_done": 0, "n_skips": 0,
                      "status": "open", "created_ms": now})
        fresh_hidden.append(suggestion)
    ids: dict = {}
    if fresh:
        returned = conn.execute(items.insert().returning(items.c.id, items.c.content_hash), fresh).all()
        ids = {r.content_hash: r.id for r in returned}
    notes = [{"item_id": ids[row["content_hash"]], "judge": s["judge"], "verdict": s.get("verdict"),
              "confidence": None if s.get("confidence") is None else float(s["confidence"]), "status": s["status"]}
             for row, s in zip(fresh, fresh_hidden) if s is not None]
    if notes:
        conn.execute(suggestions.insert(), notes)
    return {"added": len(fresh), "duplicates": len(rows) - len(fresh)}


# ----------------------------------------------------------------------------------------------
# annotation: the transactions behind next_assignment, submit/skip and revise
# ----------------------------------------------------------------------------------------------
def _release(conn: Connection, item_ids: list[int]) -> None:
    """Give back one slot per listed item id (an id listed twice gives back two); ids in order (fewer deadlocks)."""
    for item_id, n in sorted(Counter(item_ids).items()):
        conn.execute(_RELEASE, {"b_item": item_id, "b_n": n})


def _expire_stale(conn: Connection, project_id: int, now: int) -> None:
    """Step 1: leases of the project past their expiry become "expired" and release their slots. The UPDATE
    returns exactly the rows it changed, so two concurrent sweeps never release the same slot twice."""
    expired = conn.execute(_EXPIRE, {"b_pid": project_id, "b_now": now}).all()
    _release(conn, [r.item_id for r in expired])


def _next(conn: Connection, project_id: int, user_id: int, now: int) -> Optional[Assignment]:
    # the user's row lock serialises one user's concurrent requests on PostgreSQL (two tabs: one lease)
    user = conn.execute(_LOCK_USER, {"b_uid": user_id}).first()
    if user is None or user.disabled:
        return None
    project = _project_of(conn, pid=project_id)
    if project is None:
        raise RlhfkitError(f"no project with id {project_id}")
    # 1. expire stale leases, release their slots
    _expire_stale(conn, project_id, now)
    # 2. the user's own active lease
    mine = conn.execute(_MINE_ACTIVE, {"b_pid": project_id, "b_uid": user_id}).first()
    if mine is not None:
        return _assignment(conn, mine, now)
    # 3. a due gold item, else 4. a claimed slot
    item_id = None
    if _gold_due(conn, project, user_id):
        item_id = _claim_gold(conn, project_id, user_id)
    if item_id is None:
        item_id = _claim_slot(conn, project, user_id)
    if item_id is None:
        return None
    # 5. the assignment: random side, form nonce; UNIQUE(item, user) is the last guard
    left_is_a = secrets.randbelow(2) == 0 if project.randomise_sides else True
    values = {"uid": secrets.token_hex(16), "project_id": project_id, "item_id": item_id, "user_id": user_id,
              "left_is_a": left_is_a, "state": "active", "nonce": secrets.token_urlsafe(16),
              "expires_ms": now + project.lease_seconds * 1000, "created_ms": now}
    conn.execute(_INSERT_ASSIGNMENT, values)
    return _assignment(conn, SimpleNamespace(**values), now)


def _unseen(user_id: int, project_id: int):
    """SQL condition: the user has never been assigned this item."""
    return ~exists().where(assignments.c.item_id == items.c.id, assignments.c.user_id == user_id,
                           assignments.c.project_id == project_id)


def _gold_due(conn: Connection, project: Project, user_id: int) -> bool:
    """Whether the user's next assignment should be gold: the first `onboarding_gold` ones, then every
    `gold_every`-th (counted over every item served to the user in this project, whatever its state)."""
    if project.onboarding_gold == 0 and project.gold_every == 0:
        return False
    served = conn.execute(select(func.count()).where(assignments.c.project_id == project.id,
                                                     assignments.c.user_id == user_id)).scalar_one()
    if served < project.onboarding_gold:
        return True
    return project.gold_every > 0 and (served - project.onboarding_gold + 1) % project.gold_every == 0


def _claim_gold(conn: Connection, project_id: int, user_id: int) -> Optional[int]:
    """An unseen gold item of the project (lowest id); gold items are not limited by overlap."""
    item_id = conn.execute(select(items.c.id).where(items.c.project_id == project_id, items.c.is_gold.is_(True),
                                                    items.c.status != "retired", _unseen(user_id, project_id))
                           .order_by(items.c.id).limit(1)).scalar_one_or_none()
    if item_id is not None:
        conn.execute(items.update().where(items.c.id == item_id).values(n_active=items.c.n_active + 1))
    return item_id


def _under_cap(conn: Connection, project: Project, user_id: int) -> bool:
    if project.per_user_cap is None:
        return True
    taken = conn.execute(select(func.count()).select_from(assignments.join(items, items.c.id == assignments.c.item_id))
                         .where(assignments.c.project_id == project.id, assignments.c.user_id == user_id,
                                items.c.is_gold.is_(False), assignments.c.state.in_(("active", "done")))).scalar_one()
    return taken < project.per_user_cap


def _claim_slot(conn: Connection, project: Project, user_id: int) -> Optional[int]:
    """Step 4: the first candidate item whose conditional increment of n_active changes one row."""
    if not _under_cap(conn, project, user_id):
        return None
    values = {"b_pid": project.id, "b_uid": user_id, "b_overlap": project.overlap}
    for _ in range(100):  # rounds: on PostgreSQL other annotators may take a whole batch meanwhile
        ids = conn.execute(_CANDIDATES, values).scalars().all()
        if not ids:
            return None
        for item_id in ids:
            claimed = conn.execute(_CLAIM, {"b_item": item_id, "b_overlap": project.overlap})
            if claimed.rowcount == 1:
                return item_id
    return None


def _assignment(conn: Connection, row: Any, now: int) -> Assignment:
    """An assignments row (or the values just inserted) -> Assignment, with the item's texts on their sides."""
    return _assignment_of(row, conn.execute(_ITEM_TEXTS, {"b_item": row.item_id}).one(), now)


def _assignment_of(row: Any, item: Any, now: int) -> Assignment:
    """An assignments row and its item's texts (prompt, response_a, response_b, is_gold) -> Assignment."""
    left, right = (item.response_a, item.response_b) if row.left_is_a else (item.response_b, item.response_a)
    state = "expired" if row.state == "active" and row.expires_ms <= now else row.state
    return Assignment(row.uid, row.item_id, row.project_id, row.user_id, json.loads(item.prompt), left, right,
                      bool(row.left_is_a), state, row.nonce, row.expires_ms, bool(item.is_gold))


def _client_ms(value: Optional[int]) -> Optional[int]:
    if value in (None, ""):
        return None
    try:
        ms = int(value)
    except (TypeError, ValueError):
        return None  # the browser's own timing is advisory: a garbled value is dropped, the judgment is not
    return ms if 0 <= ms < 10 ** 13 else None


def _finish(conn: Connection, uid: str, user_id: int, nonce: str, answer: dict, now: int) -> Optional[SubmitResult]:
    """Submit or skip (answer["screen_choice"] == "skip") one assignment; module doc for the rules."""
    a = conn.execute(_ASSIGNMENT_FOR_UPDATE, {"b_uid": uid}).first()
    if a is None or a.user_id != user_id:
        return None
    if not isinstance(nonce, str) or not hmac.compare_digest(nonce.encode(), a.nonce.encode()):
        raise RlhfkitError("this form is out of date (its nonce does not match the assignment); reload the page")
    done = conn.execute(_JUDGMENT_OF, {"b_aid": a.id}).first()
    if done is not None:
        return SubmitResult("duplicate", done.id, done.choice)
    item = conn.execute(_ITEM_GOLD, {"b_item": a.item_id}).one()
    prow = conn.execute(_PROJECT_BY_ID, {"b_pid": a.project_id}).one()
    skip = answer["screen_choice"] == "skip"
    if not skip and prow.reason == "required" and not answer["reason"]:
        raise RlhfkitError("this project asks for a reason with every judgment")
    choice = "skip" if skip else canonical_choice(answer["screen_choice"], bool(a.left_is_a))
    was_active = a.state == "active"
    late = not was_active or a.expires_ms <= now
    moved = conn.execute(_FINISH_ASSIGNMENT, {"b_aid": a.id, "b_state": a.state,
                                              "b_new_state": "skipped" if skip else "done", "b_now": now})
    if moved.rowcount != 1:
        raise RlhfkitError("the assignment changed while it was being submitted; submit again")
    _count(conn, a.item_id, prow, was_active=was_active, skip=skip)
    gold_correct = None if skip or not item.is_gold else choice == item.gold_answer
    jid = conn.execute(_INSERT_JUDGMENT, dict(
        project_id=a.project_id, item_id=a.item_id, user_id=user_id, assignment_id=a.id, choice=choice,
        screen_choice=answer["screen_choice"], left_is_a=bool(a.left_is_a), strength=answer["strength"],
        reason=answer["reason"], late=late, gold_correct=gold_correct, client_ms=answer["client_ms"],
        elapsed_ms=now - a.created_ms, revision=0, updated_ms=now, created_ms=now)).inserted_primary_key[0]
    return SubmitResult("late" if late else "stored", jid, choice)


def _count(conn: Connection, item_id: int, prow: Row, *, was_active: bool, skip: bool) -> None:
    """Move the item's counters for one finished assignment (and its status: full, or retired after K skips)."""
    retire = skip and prow.retire_after_skips is not None
    params = {"b_item": item_id}
    if retire:
        params["b_retire"] = prow.retire_after_skips
    elif not skip:
        params["b_overlap"] = prow.overlap
    conn.execute(_count_statement(was_active, skip, retire), params)


@functools.lru_cache(maxsize=None)
def _count_statement(was_active: bool, skip: bool, retire: bool):
    """The UPDATE of _count for one case, built once (values bound at execution: b_item, b_overlap, b_retire)."""
    values: dict = {}
    if was_active:
        values["n_active"] = items.c.n_active - 1
    if skip:
        values["n_skips"] = items.c.n_skips + 1
        if retire:
            values["status"] = case((and_(items.c.status == "open",
                                          items.c.n_skips + 1 >= bindparam("b_retire", type_=Integer)), "retired"),
                                    else_=items.c.status)
    else:
        values["n_done"] = items.c.n_done + 1
        values["status"] = case((and_(items.c.status == "open", items.c.is_gold.is_(False),
                                      items.c.n_done + 1 >= bindparam("b_overlap", type_=Integer)), "full"),
                                else_=items.c.status)
    return items.update().where(items.c.id == bindparam("b_item")).values(**values)


def _revise(conn: Connection, judgment_id: int, user_id: int, answer: dict, now: int) -> bool:
    j = conn.execute(select(judgments).where(judgments.c.id == judgment_id).with_for_update()).first()
    if j is None or j.user_id != user_id:
        return False
    if j.choice == "skip":
        raise RlhfkitError("a skipped item cannot be edited into a judgment (its slot went to someone else)")
    reason_policy = conn.execute(select(projects.c.reason).where(projects.c.id == j.project_id)).scalar_one()
    if reason_policy == "required" and not answer["reason"]:
        raise RlhfkitError("this project asks for a reason with every judgment")
    item = conn.execute(select(items.c.is_gold, items.c.gold_answer).where(items.c.id == j.item_id)).one()
    choice = canonical_choice(answer["screen_choice"], bool(j.left_is_a))
    conn.execute(judgment_revisions.insert().values(
        judgment_id=j.id, revision=j.revision, choice=j.choice, screen_choice=j.screen_choice, strength=j.strength,
        reason=j.reason, valid_from_ms=j.updated_ms, replaced_ms=now))
    conn.execute(judgments.update().where(judgments.c.id == j.id).values(
        choice=choice, screen_choice=answer["screen_choice"], strength=answer["strength"], reason=answer["reason"],
        gold_correct=choice == item.gold_answer if item.is_gold else None, revision=j.revision + 1,
        updated_ms=now))
    return True
