"""Where the labeling store keeps its rows: the SQL schema and the two backends (SQLite in WAL
mode, PostgreSQL by URL). See `rlhf.store.store` for the durability and concurrency design."""

from __future__ import annotations

from pathlib import Path
import sqlite3

from rlhf.store.records import StoreError

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY, role TEXT NOT NULL, password_hash TEXT NOT NULL, created_at {float} NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    seq {pk}, id TEXT NOT NULL UNIQUE, n_labels INTEGER NOT NULL DEFAULT 0, created_at {float} NOT NULL,
    prompt TEXT NOT NULL, completions TEXT NOT NULL, messages TEXT, flags TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS assignments (
    item_id TEXT NOT NULL, labeler TEXT NOT NULL, state TEXT NOT NULL, permutation TEXT NOT NULL,
    token TEXT NOT NULL UNIQUE, started_at {float} NOT NULL, lease_expires {float} NOT NULL,
    prior_seconds {float} NOT NULL DEFAULT 0, reason TEXT, updated_at {float} NOT NULL,
    PRIMARY KEY (item_id, labeler));
CREATE INDEX IF NOT EXISTS assignments_by_labeler ON assignments (labeler, state);
CREATE TABLE IF NOT EXISTS labels (
    id {pk}, item_id TEXT NOT NULL, labeler TEXT NOT NULL, token TEXT NOT NULL UNIQUE,
    ranking TEXT NOT NULL, ranks TEXT NOT NULL, flags TEXT NOT NULL, comment TEXT NOT NULL,
    seconds {float} NOT NULL, guideline_version TEXT NOT NULL, version INTEGER NOT NULL,
    created_at {float} NOT NULL, updated_at {float} NOT NULL, UNIQUE (item_id, labeler));
CREATE INDEX IF NOT EXISTS labels_by_labeler ON labels (labeler, updated_at);
CREATE TABLE IF NOT EXISTS label_history (
    id {pk}, label_id INTEGER NOT NULL, item_id TEXT NOT NULL, labeler TEXT NOT NULL, token TEXT NOT NULL,
    ranking TEXT NOT NULL, ranks TEXT NOT NULL, flags TEXT NOT NULL, comment TEXT NOT NULL,
    seconds {float} NOT NULL, guideline_version TEXT NOT NULL, version INTEGER NOT NULL,
    created_at {float} NOT NULL, replaced_at {float} NOT NULL, replaced_by TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS label_history_by_token ON label_history (token);
"""


class _SQLite:
    kind = "sqlite"

    def __init__(self, path: str):
        if path in ("", ":memory:") or path.startswith("file::memory:"):
            raise StoreError("the labeling store needs a file (an in-memory SQLite database is private to one connection)")
        self.path = path
        Path(path).parent.mkdir(parents=True, exist_ok=True)

    def connect(self):
        conn = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 60000")
        conn.execute("PRAGMA synchronous = FULL")  # durable before submit returns (module docstring)
        return conn

    def setup(self, conn) -> None:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise StoreError(f"{self.path}: could not switch SQLite to WAL mode (got {mode!r})")

    def begin(self, conn) -> None:
        conn.execute("BEGIN IMMEDIATE")

    def ddl(self, sql: str) -> str:
        return sql.format(pk="INTEGER PRIMARY KEY AUTOINCREMENT", float="REAL")

    def q(self, sql: str) -> str:
        return sql

    def executescript(self, conn, sql: str) -> None:
        for statement in filter(str.strip, sql.split(";")):
            conn.execute(statement)


class _Postgres:
    """PostgreSQL through psycopg 3; `?` placeholders become `%s`, writers share one advisory lock."""

    kind = "postgresql"
    LOCK_KEY = 0x726C6866  # "rlhf"

    def __init__(self, url: str):
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise StoreError("a PostgreSQL store needs psycopg 3: pip install 'rlhf[postgres]'") from None
        self.path = url

    def connect(self):
        import psycopg

        return psycopg.connect(self.path, autocommit=True)

    def setup(self, conn) -> None:
        pass

    def begin(self, conn) -> None:
        conn.execute("BEGIN")
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (self.LOCK_KEY,))

    def ddl(self, sql: str) -> str:
        return sql.format(pk="BIGSERIAL PRIMARY KEY", float="DOUBLE PRECISION")

    def q(self, sql: str) -> str:
        return sql.replace("?", "%s")

    def executescript(self, conn, sql: str) -> None:
        for statement in filter(str.strip, sql.split(";")):
            conn.execute(statement)


def open_backend(path_or_url: str):
    text = str(path_or_url)
    if text.startswith(("postgresql://", "postgres://")):
        return _Postgres(text)
    if text.startswith("sqlite:///"):
        text = text[len("sqlite:///"):]
    return _SQLite(text)

