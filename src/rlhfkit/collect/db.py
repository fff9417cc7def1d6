"""The collection database: schema (SQLAlchemy Core, portable SQL), numbered migrations, and engines.

One SQLite file in WAL mode by default; PostgreSQL by URL (psycopg 3). Times are integer epoch milliseconds
(BigInteger); ids are integers; JSON values (prompts that are message lists, item meta, audit details) are
stored as text. Tokens of every kind are stored only as SHA-256 hex digests.

Write transactions on SQLite start with `BEGIN IMMEDIATE`: a deferred transaction that reads and then writes
gets SQLITE_BUSY in WAL mode as soon as another writer commits in between, and the busy handler cannot help
it. The pysqlite driver's own transaction handling is switched off and SQLAlchemy's `begin` event emits our
BEGIN (the recipe in SQLAlchemy's SQLite dialect documentation, "Enabling Non-Legacy SQLite Transactional
Modes"). Connections from `write_engine(engine)` begin IMMEDIATE; all others begin DEFERRED (readers never
block in WAL mode).

Migrations: `MIGRATIONS` is a list of (version, function) applied in order at start-up by `migrate`, each in
its own transaction that also records the version in `schema_version`. Version 1 creates the tables as
defined below; a later change to the schema adds a new numbered migration with explicit DDL and updates the
table definitions here to match. A new (empty) database is created from those definitions in one step and
recorded at the latest version; the numbered migrations bring older databases up to it.
"""
from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Callable

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    select,
    text,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from rlhfkit.errors import RlhfkitError

metadata = MetaData()

# SQLite waits this long for a lock before "database is locked" (the store also retries the transaction).
BUSY_TIMEOUT_MS = 10_000

# SQLite's durability setting (see _sqlite_hooks); "FULL" trades write throughput for power-cut safety.
SQLITE_SYNCHRONOUS = "NORMAL"

# The write-transaction marker read by the SQLite `begin` hook.
_WRITE_OPTION = "rlhfkit_write"


def _ms() -> Column:
    return Column("created_ms", BigInteger, nullable=False)


# ----------------------------------------------------------------------------------------------
# schema
# ----------------------------------------------------------------------------------------------
schema_version = Table(
    "schema_version", metadata,
    Column("version", Integer, primary_key=True),
    Column("applied_ms", BigInteger, nullable=False),
)

users = Table(
    "users", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", Text, nullable=False, unique=True),
    Column("role", Text, nullable=False),                       # "admin" | "annotator"
    Column("password_hash", Text),                              # optional scrypt hash (unused by login links)
    Column("disabled", Boolean, nullable=False, default=False),
    _ms(),
)

login_links = Table(
    "login_links", metadata,
    Column("id", Integer, primary_key=True),
    Column("token_hash", Text, nullable=False, unique=True),    # sha256 hex of the one-time token
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    Column("used_ms", BigInteger),                              # set once, when the link is used
    _ms(),
)

sessions = Table(
    "sessions", metadata,
    Column("id", Integer, primary_key=True),
    Column("token_hash", Text, nullable=False, unique=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("csrf", Text, nullable=False),                       # per-session CSRF secret (sent in forms)
    Column("expires_ms", BigInteger, nullable=False),
    Column("revoked", Boolean, nullable=False, default=False),
    _ms(),
)

api_tokens = Table(
    "api_tokens", metadata,
    Column("id", Integer, primary_key=True),
    Column("token_hash", Text, nullable=False, unique=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("scopes", Text, nullable=False),                     # comma-separated: import,export,stats
    Column("expires_ms", BigInteger),                           # NULL = no expiry
    Column("revoked", Boolean, nullable=False, default=False),
    _ms(),
)

projects = Table(
    "projects", metadata,
    Column("id", Integer, primary_key=True),
    Column("slug", Text, nullable=False, unique=True),
    Column("name", Text, nullable=False),
    Column("overlap", Integer, nullable=False),                 # judgments wanted per item
    Column("lease_seconds", Integer, nullable=False),
    Column("gold_every", Integer, nullable=False),              # 0 = no periodic gold items
    Column("onboarding_gold", Integer, nullable=False),         # the first N assignments are gold
    Column("strength", Boolean, nullable=False),                # ask "slightly / much"
    Column("reason", Text, nullable=False),                     # "off" | "optional" | "required"
    Column("randomise_sides", Boolean, nullable=False),
    Column("guidelines", Text, nullable=False),
    Column("per_user_cap", Integer),                            # most non-gold items one annotator judges
    Column("retire_after_skips", Integer),                      # an item skipped this often is retired
    Column("salt", Text, nullable=False),                       # random; pseudonymous annotator ids in exports
    _ms(),
)

project_members = Table(
    "project_members", metadata,
    Column("project_id", Integer, ForeignKey("projects.id"), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id"), primary_key=True),
    _ms(),
)

items = Table(
    "items", metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("content_hash", Text, nullable=False),               # sha256 of prompt + the two responses
    Column("prompt", Text, nullable=False),                     # JSON: a string or a message list
    Column("response_a", Text, nullable=False),
    Column("response_b", Text, nullable=False),
    Column("meta", Text, nullable=False),                       # JSON object
    Column("source", Text),
    Column("is_gold", Boolean, nullable=False, default=False),
    Column("gold_answer", Text),                                # "A" | "B" | "tie" for gold items
    Column("known_label", Text),                                # hidden "A" | "B" from a preference file
    Column("n_active", Integer, nullable=False, default=0),     # live leases
    Column("n_done", Integer, nullable=False, default=0),       # judgments other than skips (late ones too)
    Column("n_skips", Integer, nullable=False, default=0),
    Column("status", Text, nullable=False, default="open"),     # "open" | "full" | "retired"
    _ms(),
    UniqueConstraint("project_id", "content_hash", name="uq_items_project_hash"),
)
Index("ix_items_claim", items.c.project_id, items.c.status, items.c.is_gold, items.c.id)
# migration 2: Store.progress counts complete items (n_done >= overlap) from this index, not from the item rows
ix_items_done = Index("ix_items_done", items.c.project_id, items.c.is_gold, items.c.n_done)

suggestions = Table(
    "suggestions", metadata,
    Column("item_id", Integer, ForeignKey("items.id"), primary_key=True),
    Column("judge", Text, nullable=False),
    Column("verdict", Text),                                    # "A" | "B" | "tie" | NULL (no verdict)
    Column("confidence", Float),
    Column("status", Text, nullable=False),                     # "agree" | "tie" | "disagree" | "failed"
)

assignments = Table(
    "assignments", metadata,
    Column("id", Integer, primary_key=True),
    Column("uid", Text, nullable=False, unique=True),           # random 128-bit hex, used in URLs
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("item_id", Integer, ForeignKey("items.id"), nullable=False),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("left_is_a", Boolean, nullable=False),
    Column("state", Text, nullable=False),                      # "active" | "done" | "skipped" | "expired"
    Column("nonce", Text, nullable=False),                      # form nonce: idempotent submits
    Column("expires_ms", BigInteger, nullable=False),
    Column("finished_ms", BigInteger),
    _ms(),
    UniqueConstraint("item_id", "user_id", name="uq_assignments_item_user"),
)
Index("ix_assignments_lease", assignments.c.project_id, assignments.c.state, assignments.c.expires_ms)
Index("ix_assignments_user", assignments.c.user_id, assignments.c.project_id, assignments.c.state)

judgments = Table(
    "judgments", metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("item_id", Integer, ForeignKey("items.id"), nullable=False),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("assignment_id", Integer, ForeignKey("assignments.id"), nullable=False, unique=True),
    Column("choice", Text, nullable=False),                     # canonical "A" | "B" | "tie" | "both_bad" | "skip"
    Column("screen_choice", Text, nullable=False),              # "left" | "right" | "tie" | "both_bad" | "skip"
    Column("left_is_a", Boolean, nullable=False),
    Column("strength", Text),                                   # "slightly" | "much"
    Column("reason", Text),
    Column("late", Boolean, nullable=False, default=False),     # arrived after its lease expired
    Column("gold_correct", Boolean),                            # gold items only
    Column("client_ms", BigInteger),                            # the browser's time on the page, as sent
    Column("elapsed_ms", BigInteger),                           # server: submit - lease start
    Column("revision", Integer, nullable=False, default=0),     # 0 = as submitted; +1 per edit
    Column("updated_ms", BigInteger, nullable=False),
    _ms(),
    UniqueConstraint("item_id", "user_id", name="uq_judgments_item_user"),
)
Index("ix_judgments_project_user", judgments.c.project_id, judgments.c.user_id)
# migration 2: Store.progress counts the user's and the project's judgments from this (covering) index, not the rows
ix_judgments_choice = Index("ix_judgments_progress", judgments.c.project_id, judgments.c.user_id, judgments.c.choice)

judgment_revisions = Table(
    "judgment_revisions", metadata,
    Column("id", Integer, primary_key=True),
    Column("judgment_id", Integer, ForeignKey("judgments.id"), nullable=False),
    Column("revision", Integer, nullable=False),                # the revision number these values had
    Column("choice", Text, nullable=False),
    Column("screen_choice", Text, nullable=False),
    Column("strength", Text),
    Column("reason", Text),
    Column("valid_from_ms", BigInteger, nullable=False),
    Column("replaced_ms", BigInteger, nullable=False),
    UniqueConstraint("judgment_id", "revision", name="uq_revisions_judgment_revision"),
)

audit_log = Table(
    "audit_log", metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer),                                 # NULL for the command line / system
    Column("action", Text, nullable=False),
    Column("detail", Text, nullable=False),                     # JSON object
    _ms(),
)


# ----------------------------------------------------------------------------------------------
# migrations
# ----------------------------------------------------------------------------------------------
def _v1_create_tables(conn: Connection) -> None:
    """Version 1: every table and index above."""
    metadata.create_all(conn, tables=[t for t in metadata.sorted_tables if t.name != "schema_version"])


def _v2_progress_indexes(conn: Connection) -> None:
    """Version 2: the two indexes Store.progress counts from (checkfirst: harmless where they exist). Without
    them every annotate page read all item and judgment rows of the project (~13 ms with 3,500 items on SQLite)."""
    ix_items_done.create(conn, checkfirst=True)
    ix_judgments_choice.create(conn, checkfirst=True)


MIGRATIONS: list[tuple[int, Callable[[Connection], None]]] = [
    (1, _v1_create_tables),
    (2, _v2_progress_indexes),
]
LATEST = MIGRATIONS[-1][0]


def current_version(conn: Connection) -> int:
    """The highest applied migration (0 for an empty database)."""
    schema_version.create(conn, checkfirst=True)
    return conn.execute(select(func.coalesce(func.max(schema_version.c.version), 0))).scalar_one()


def migrate(engine: Engine) -> int:
    """Apply the migrations the database lacks, in order, one transaction each; returns the version reached.

    Two processes starting at once are serialised: SQLite by BEGIN IMMEDIATE, PostgreSQL by a transaction-level
    advisory lock. A database newer than this code is refused rather than used half-understood.
    """
    writer = write_engine(engine)
    while True:
        with writer.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(20202020)"))
            version = current_version(conn)
            if version > LATEST:
                raise RlhfkitError(f"the collection database is at schema version {version}, newer than this "
                                   f"rlhfkit understands ({LATEST}); upgrade rlhfkit")
            pending = [(v, fn) for v, fn in MIGRATIONS if v > version]
            if not pending:
                return version
            v, fn = pending[0]
            if version == 0:  # a new database: the definitions above are the latest schema, made in one step
                fn, v = _v1_create_tables, LATEST
            fn(conn)
            conn.execute(schema_version.insert().values(version=v, applied_ms=int(time.time() * 1000)))


# ----------------------------------------------------------------------------------------------
# engines
# ----------------------------------------------------------------------------------------------
def database_url(url: str) -> str:
    """A path or URL -> an SQLAlchemy URL: a plain path is an SQLite file; postgres(ql):// uses psycopg 3."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith(("postgresql+psycopg://", "sqlite:///")):
        return url
    if "://" in url:
        raise RlhfkitError(f"unsupported database URL {url!r}: give an SQLite file path, sqlite:///PATH or "
                           "postgresql://USER@HOST/DB")
    return f"sqlite:///{Path(url).expanduser()}"


def make_engine(url: str) -> Engine:
    """An engine for an SQLite file (WAL, busy timeout, foreign keys, our own BEGIN) or PostgreSQL (psycopg)."""
    sa_url = database_url(url)
    if sa_url.startswith("sqlite"):
        path = sa_url[len("sqlite:///"):]
        if path in ("", ":memory:"):
            raise RlhfkitError("the collection database must be a file (several connections share it)")
        if not Path(path).parent.exists():
            raise RlhfkitError(f"cannot create the database {path}: folder {Path(path).parent} does not exist")
        engine = create_engine(sa_url, pool_size=20, max_overflow=40, pool_timeout=60,
                               connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000})
        _sqlite_hooks(engine)
        return engine
    # PostgreSQL: READ COMMITTED; the store's conditional updates and row locks carry the invariants
    return create_engine(sa_url, pool_size=20, max_overflow=40, pool_timeout=60, pool_pre_ping=True)


def _sqlite_hooks(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, connection_record):
        dbapi_connection.isolation_level = None  # pysqlite emits no BEGIN of its own; the hook below does
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # WAL + NORMAL: a commit is in the WAL file (the OS's cache) before it returns, so a crashed or killed
        # server loses nothing acknowledged; only a power cut or OS crash can lose the last commits. FULL would
        # fsync at every commit while holding the write lock (~4 ms here), capping writes near 250 a second.
        cursor.execute(f"PRAGMA synchronous={SQLITE_SYNCHRONOUS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # straight to the driver: the same statement without SQLAlchemy's execution machinery (~0.1 ms a call);
        # a driver error is wrapped as SQLAlchemy would wrap it ("database is locked" -> OperationalError, which
        # the store retries)
        statement = "BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE_OPTION) else "BEGIN"
        try:
            conn.connection.driver_connection.execute(statement)
        except sqlite3.Error as e:
            raise DBAPIError.instance(statement, None, e, sqlite3.Error) from e


def write_engine(engine: Engine) -> Engine:
    """The same engine (same pool) whose transactions are write transactions: BEGIN IMMEDIATE on SQLite."""
    return engine.execution_options(**{_WRITE_OPTION: True})
