"""The labeling database: users, items, leases, labels and their history, in one SQL store.

The store is the single source of truth; the web app keeps nothing durable in memory. Identity is
always the name the app took from its server-side session, never one sent by the browser.

Durability and concurrency (SQLite, the default):
- WAL mode with `synchronous=FULL`: every commit fsyncs the WAL before `submit` returns, so a label
  the page reports as saved survives a process crash *and* a power cut. (`NORMAL` survives a crash
  of the process but may lose the last commits on power loss.) An fsync costs about 7 ms here, so
  writes use group commit (`_GroupCommit`): one writer thread per process runs every write in its
  own savepoint and commits the queued ones together. Measured on the 2-core machine, 50 labeler
  threads, 3,000 items: without pauses ~870 submits/s, submit p95 56 ms (NORMAL: ~940/s, 66 ms);
  with ~0.5 s pauses, submit p95 19 ms (NORMAL 7 ms). FULL costs little, so FULL it is.
- Every write transaction starts with `BEGIN IMMEDIATE`, so writers (threads or processes) are
  serialized by the database lock: two labelers can never both take the last free slot of an item.
- Reads use one connection per thread (and per process: a forked child opens its own).
- A process killed mid-transaction leaves nothing behind: SQLite ignores the WAL frames of an
  uncommitted transaction when the next connection opens, and the lock dies with the process.

PostgreSQL (for a labeling team beyond one machine): pass a `postgresql://user:pass@host/db` URL
(needs `pip install 'rlhf[postgres]'`, i.e. psycopg 3). The same SQL runs there; writers are
serialized by a transaction-scoped advisory lock in place of `BEGIN IMMEDIATE`.

Tables: `users`, `items`, `assignments` (one row per item and labeler: the stored permutation, the
lease, and the state open / editing / done / skipped), `labels` (the current label of an item by a
labeler) and `label_history` (every replaced or withdrawn version).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import queue
import random
import re
import secrets
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

FLAGS = ("unsafe", "low_quality", "not_rankable")
ROLES = ("labeler", "admin")
MAX_COMMENT = 4000
_NAME = re.compile(r"^[A-Za-z0-9_.@+-]{1,64}$")
# scrypt at n=2**14, r=8 costs ~16 MiB and tens of milliseconds: paid once per login, not per submit.
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


class StoreError(ValueError):
    """A rejected request; the message is safe to show to the labeler."""


@dataclass(frozen=True)
class User:
    name: str
    role: str  # "labeler" | "admin"


@dataclass(frozen=True)
class Assignment:
    item_id: str
    prompt: str
    completions: list[str]  # in DISPLAY order for this labeler (already permuted)
    permutation: list[int]  # display position -> original completion index
    started_at: float  # server time the lease began (seconds since the epoch)
    lease_expires: float
    token: str  # submit must present it; a repeated submit with the same token is a no-op
    previous: dict | None  # when re-opened by undo: {"ranks", "flags", "comment", "ranking"} to prefill


# --- small pure helpers ----------------------------------------------------------------------


def guideline_version(path: str | Path) -> str:
    """The version a guidelines Markdown file declares (`<!-- version: X -->` or a `Version: X`
    line), else the first 12 hex digits of its sha256, so every edit of the file is a new version."""
    text = Path(path).read_text(encoding="utf-8")
    for pattern in (r"<!--\s*version:\s*(.+?)\s*-->", r"^[\s>*_#-]*version[*_]*\s*:\s*[*_]*\s*(\S+?)[*_]*\s*$"):
        match = re.search(pattern, text, flags=re.IGNORECASE | re.MULTILINE)
        if match:
            return match.group(1).strip()
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def hash_password(password: str, salt: bytes | None = None) -> str:
    """`scrypt$n$r$p$salt$hash` (hex), from hashlib's scrypt with a random 16-byte salt."""
    salt = salt if salt is not None else os.urandom(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, dklen=32, maxmem=64 * 2**20, **_SCRYPT)
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(password.encode("utf-8"), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(digest) // 2, maxmem=64 * 2**20)
    except ValueError:
        return False
    return hmac.compare_digest(got.hex(), digest)


def check_ranks(ranks: Any, k: int) -> list[int]:
    """`ranks[i]` is the rank (1 = best) of the completion shown at position i; equal = tie.
    Returns the ranks as ints, or raises StoreError saying what is wrong, in the labeler's words."""
    if not isinstance(ranks, (list, tuple)) or len(ranks) != k:
        raise StoreError(f"rank every one of the {k} responses before submitting")
    out = []
    for pos, rank in enumerate(ranks):
        if rank is None or rank == "":
            raise StoreError(f"response {pos + 1} has no rank: rank every response")
        if isinstance(rank, bool) or not isinstance(rank, (int, float, str)):
            raise StoreError(f"response {pos + 1}: the rank must be a whole number")
        try:
            value = int(rank)
        except ValueError:
            raise StoreError(f"response {pos + 1}: the rank must be a whole number") from None
        if value != float(rank):
            raise StoreError(f"response {pos + 1}: the rank must be a whole number")
        if not 1 <= value <= k:
            raise StoreError(f"response {pos + 1}: rank {value} is out of range 1..{k}")
        out.append(value)
    missing = sorted(set(range(1, max(out) + 1)) - set(out))
    if missing:
        raise StoreError(f"ranks must have no gaps (1, 2, 3 ... with ties sharing a rank): rank {missing[0]} is unused")
    return out


def ranks_to_tiers(ranks: list[int], permutation: list[int]) -> list[list[int]]:
    """Display-order ranks -> tiers best first over ORIGINAL completion indexes.

    ranks=[2, 1, 2], permutation=[2, 0, 1] -> [[0], [1, 2]]"""
    tiers: list[list[int]] = [[] for _ in range(max(ranks))]
    for pos, rank in enumerate(ranks):
        tiers[rank - 1].append(permutation[pos])
    return [sorted(t) for t in tiers]


def check_flags(flags: Iterable[str]) -> list[str]:
    flags = list(flags or ())
    unknown = [f for f in flags if f not in FLAGS]
    if unknown:
        raise StoreError(f"unknown flag {unknown[0]!r} (use {', '.join(FLAGS)})")
    return sorted(set(flags))


# --- database backends -----------------------------------------------------------------------


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


def _backend(path_or_url: str):
    text = str(path_or_url)
    if text.startswith(("postgresql://", "postgres://")):
        return _Postgres(text)
    if text.startswith("sqlite:///"):
        text = text[len("sqlite:///"):]
    return _SQLite(text)


# --- the store -------------------------------------------------------------------------------


class LabelStore:
    """Users, items, leases and labels for the labeling app (see the module docstring).

    `labels_per_item` (N) distinct labelers label each item; a lease of `lease_seconds` reserves an
    item for one labeler so that N is never exceeded, and expires so a labeler who walks away does
    not block it. `clock` returns the time in seconds (injectable so tests need not sleep)."""

    def __init__(self, path_or_url: str | Path, labels_per_item: int = 1, lease_seconds: float = 900,
                 guideline_version: str = "", clock: Callable[[], float] = time.time, seed: int | None = None):
        if int(labels_per_item) < 1:
            raise StoreError("labels_per_item must be at least 1")
        if float(lease_seconds) <= 0:
            raise StoreError("lease_seconds must be positive")
        self.labels_per_item = int(labels_per_item)
        self.lease_seconds = float(lease_seconds)
        self.guideline_version = guideline_version or ""
        self.clock = clock
        self._rng = random.Random(seed)
        self._backend = _backend(str(path_or_url))
        self.path = self._backend.path
        self._reset_process_state()
        self._backend.setup(self._conn())

        def create(conn):
            self._backend.executescript(conn, self._backend.ddl(SCHEMA))
            self._exec(conn, "INSERT INTO meta (key, value) VALUES ('schema_version', '1') ON CONFLICT (key) DO NOTHING")
        self._write(create)

    # connections: one per thread, and never one inherited across fork()
    def _reset_process_state(self) -> None:
        self._pid = os.getpid()
        self._local = threading.local()
        self._writer: _GroupCommit | None = None
        self._writer_lock = threading.Lock()
        self._conns: list = []
        self._conns_lock = threading.Lock()

    def _conn(self):
        if self._pid != os.getpid():
            self._reset_process_state()
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._backend.connect()
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    def _exec(self, conn, sql: str, params: tuple = ()):
        return conn.execute(self._backend.q(sql), params)

    def _write(self, fn: Callable[[Any], Any]) -> Any:
        """Run `fn(conn)` in a write transaction; returns its result once COMMIT has returned
        (fsynced), or raises what it raised (its writes rolled back). See `_GroupCommit`."""
        if self._pid != os.getpid():
            self._reset_process_state()
        with self._writer_lock:
            if self._writer is None:
                self._writer = _GroupCommit(self._backend)
        return self._writer.run(fn)

    @contextmanager
    def _snapshot(self) -> Iterator[Any]:
        """A read transaction: several SELECTs see one consistent state, without the write lock."""
        conn = self._conn()
        conn.execute("BEGIN" if self._backend.kind == "sqlite" else "BEGIN ISOLATION LEVEL REPEATABLE READ")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    def close(self) -> None:
        if self._pid != os.getpid():
            return
        with self._writer_lock:
            if self._writer is not None:
                self._writer.stop()
                self._writer = None
        with self._conns_lock:
            for conn in self._conns:
                try:
                    conn.close()
                except Exception:  # noqa: BLE001 - closing from another thread is best effort
                    pass
            self._conns.clear()
        self._local = threading.local()

    def __enter__(self) -> "LabelStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- users ---------------------------------------------------------------------------

    def add_user(self, name: str, password: str, role: str = "labeler") -> None:
        """Add a user, or update the password and role of an existing one. The password is stored
        as a salted scrypt hash."""
        if not isinstance(name, str) or not _NAME.match(name):
            raise StoreError(f"user name {name!r} must be 1-64 letters, digits or . _ @ + -")
        if role not in ROLES:
            raise StoreError(f"role {role!r} must be one of {', '.join(ROLES)}")
        if not isinstance(password, str) or not password:
            raise StoreError(f"user {name!r}: the password is empty")
        row = (name, role, hash_password(password), self.clock())
        self._write(lambda conn: self._exec(
            conn, "INSERT INTO users (name, role, password_hash, created_at) VALUES (?, ?, ?, ?) "
                  "ON CONFLICT (name) DO UPDATE SET role = excluded.role, password_hash = excluded.password_hash", row))

    def load_users_file(self, path: str | Path) -> int:
        """Add every user of a users file; returns how many. Two formats:

        - CSV: one `name,password,role` per line (role optional, default labeler; a header line
          `name,password,role`, blank lines and `#` comments are skipped);
        - JSONL (`.jsonl`, or lines starting with `{`): `{"name": ..., "password": ..., "role": ...}`.
        """
        rows = list(_read_users_file(Path(path)))
        for _, row in rows:
            self.add_user(row["name"], row["password"], row["role"])
        return len(rows)

    def authenticate(self, name: str, password: str) -> bool:
        row = self._exec(self._conn(), "SELECT password_hash FROM users WHERE name = ?", (name,)).fetchone()
        if row is None:
            verify_password(password or "", _DUMMY_HASH)  # same time for a wrong name as a wrong password
            return False
        return verify_password(password or "", row[0])

    def get_user(self, name: str) -> User | None:
        row = self._exec(self._conn(), "SELECT name, role FROM users WHERE name = ?", (name,)).fetchone()
        return User(*row) if row else None

    def users(self) -> list[User]:
        return [User(*r) for r in self._exec(self._conn(), "SELECT name, role FROM users ORDER BY name").fetchall()]

    # --- items ---------------------------------------------------------------------------

    def add_items(self, candidates: list[dict]) -> int:
        """Add candidate rows (`id`, `prompt`, `completions`, optional `flags`, `messages`), as
        `rlhf.data.load_candidates` returns them; ids already present are skipped. Returns the
        number added."""
        rows = []
        for n, cand in enumerate(candidates, start=1):
            completions = cand.get("completions")
            if not isinstance(cand.get("prompt"), str) or not isinstance(completions, list) or len(completions) < 2 \
                    or not all(isinstance(c, str) for c in completions):
                raise StoreError(f"candidate {n}: needs a string 'prompt' and a list of at least 2 string 'completions'")
            rows.append((str(cand.get("id", n)), cand["prompt"], json.dumps(completions),
                         json.dumps(cand.get("messages")) if cand.get("messages") else None,
                         json.dumps(list(cand.get("flags") or [])), self.clock()))

        def insert(conn) -> int:
            sql = ("INSERT INTO items (id, prompt, completions, messages, flags, created_at) "
                   "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING")
            return sum(max(self._exec(conn, sql, row).rowcount, 0) for row in rows)
        return self._write(insert)

    def item_count(self) -> int:
        return self._exec(self._conn(), "SELECT count(*) FROM items").fetchone()[0]

    # --- assignment ----------------------------------------------------------------------

    _A_COLS = "a.item_id, a.permutation, a.started_at, a.lease_expires, a.token, a.state, i.prompt, i.completions"

    def next_item(self, labeler: str) -> Assignment | None:
        """This labeler's open assignment (resume after a refresh or a restart), else a newly
        leased item, or None when nothing is left for them."""
        current = self._open_assignment(self._conn(), labeler, self.clock())
        if current is not None:  # the common resume path needs no write lock
            return current

        def lease(conn) -> Assignment | None:
            now = self.clock()
            return self._open_assignment(conn, labeler, now) or self._lease(conn, labeler, now)
        return self._write(lease)

    def _open_assignment(self, conn, labeler: str, now: float) -> Assignment | None:
        row = self._exec(conn, f"SELECT {self._A_COLS} FROM assignments a JOIN items i ON i.id = a.item_id "
                               "WHERE a.labeler = ? AND (a.state = 'editing' OR (a.state = 'open' AND a.lease_expires > ?)) "
                               "ORDER BY a.updated_at DESC LIMIT 1", (labeler, now)).fetchone()
        return self._assignment(conn, labeler, row) if row else None

    def _assignment(self, conn, labeler: str, row) -> Assignment:
        item_id, perm, started, expires, token, state, prompt, completions = row
        perm, completions = json.loads(perm), json.loads(completions)
        previous = None
        if state == "editing":
            prev = self._exec(conn, "SELECT ranks, flags, comment, ranking FROM labels WHERE item_id = ? AND labeler = ?",
                              (item_id, labeler)).fetchone()
            if prev:
                previous = {"ranks": json.loads(prev[0]), "flags": json.loads(prev[1]), "comment": prev[2],
                            "ranking": json.loads(prev[3])}
        return Assignment(item_id=item_id, prompt=prompt, completions=[completions[p] for p in perm],
                          permutation=perm, started_at=started, lease_expires=expires, token=token, previous=previous)

    # How many of an item's N slots are taken for a labeler who has no label on it: the labels
    # (items.n_labels, kept in step with the labels table in the same transactions) plus the live
    # leases of others. Parameters: labeler, now.
    _TAKEN = ("(i.n_labels + (SELECT count(*) FROM assignments t WHERE t.item_id = i.id AND t.labeler <> ? "
              "AND t.state = 'open' AND t.lease_expires > ?))")

    def _lease(self, conn, labeler: str, now: float) -> Assignment | None:
        """Inside a write transaction: lease the first item with a free slot this labeler has not
        labeled or skipped, preferring one whose lease of theirs lapsed (same permutation)."""
        row = self._exec(conn, f"SELECT a.item_id FROM assignments a JOIN items i ON i.id = a.item_id "
                               f"WHERE a.labeler = ? AND a.state = 'open' AND {self._TAKEN} < ? ORDER BY i.seq LIMIT 1",
                         (labeler, labeler, now, self.labels_per_item)).fetchone()
        if row is not None:
            self._exec(conn, "UPDATE assignments SET started_at = ?, lease_expires = ?, updated_at = ? "
                             "WHERE item_id = ? AND labeler = ?", (now, now + self.lease_seconds, now, row[0], labeler))
        else:
            # n_labels < N first: a cheap test that skips complete items before any subquery
            row = self._exec(conn, f"SELECT i.id, i.completions FROM items i WHERE i.n_labels < ? AND NOT EXISTS "
                                   f"(SELECT 1 FROM assignments m WHERE m.item_id = i.id AND m.labeler = ?) "
                                   f"AND {self._TAKEN} < ? ORDER BY i.seq LIMIT 1",
                             (self.labels_per_item, labeler, labeler, now, self.labels_per_item)).fetchone()
            if row is None:
                return None
            k = len(json.loads(row[1]))
            perm = self._rng.sample(range(k), k)
            self._exec(conn, "INSERT INTO assignments (item_id, labeler, state, permutation, token, started_at, "
                             "lease_expires, updated_at) VALUES (?, ?, 'open', ?, ?, ?, ?, ?)",
                       (row[0], labeler, json.dumps(perm), secrets.token_urlsafe(16), now, now + self.lease_seconds, now))
        got = self._exec(conn, f"SELECT {self._A_COLS} FROM assignments a JOIN items i ON i.id = a.item_id "
                               "WHERE a.item_id = ? AND a.labeler = ?", (row[0], labeler)).fetchone()
        return self._assignment(conn, labeler, got)

    # --- submit, skip, undo --------------------------------------------------------------

    def submit(self, labeler: str, item_id: str, token: str, ranks: list[int], flags: Iterable[str] = (),
               comment: str = "") -> dict:
        """Save a ranking of the assigned item; committed before this returns.

        `ranks[i]` is the rank (1 = best, equal = tie, dense 1..m) of the completion at DISPLAY
        position i. Returns {"label_id", "item_id", "ranking" (tiers of original indexes),
        "seconds"}. Submitting the same token again returns the saved label and changes nothing."""
        flags = check_flags(flags)
        comment = _check_text(comment, "comment", MAX_COMMENT)

        def save(conn) -> dict:
            now = self.clock()
            saved = self._saved_by_token(conn, labeler, token)
            if saved is not None:
                return saved
            _, state, perm, started, prior = self._own_assignment(conn, labeler, item_id, token, now)
            if state not in ("open", "editing"):
                raise StoreError("this item was already skipped; load the next item")
            perm = json.loads(perm)
            checked = check_ranks(ranks, len(perm))
            ranking = ranks_to_tiers(checked, perm)
            seconds = round(prior + max(now - started, 0.0), 3)
            values = (json.dumps(ranking), json.dumps(checked), json.dumps(flags), comment, seconds, self.guideline_version)
            if state == "editing":
                self._to_history(conn, item_id, labeler, now, "edit")
                self._exec(conn, "UPDATE labels SET ranking = ?, ranks = ?, flags = ?, comment = ?, seconds = ?, "
                                 "guideline_version = ?, token = ?, version = version + 1, updated_at = ? "
                                 "WHERE item_id = ? AND labeler = ?", (*values, token, now, item_id, labeler))
            else:
                self._exec(conn, "INSERT INTO labels (item_id, labeler, token, ranking, ranks, flags, comment, seconds, "
                                 "guideline_version, version, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)",
                           (item_id, labeler, token, *values, now, now))
                self._exec(conn, "UPDATE items SET n_labels = n_labels + 1 WHERE id = ?", (item_id,))
            self._exec(conn, "UPDATE assignments SET state = 'done', updated_at = ? WHERE item_id = ? AND labeler = ?",
                       (now, item_id, labeler))
            label_id = self._exec(conn, "SELECT id FROM labels WHERE item_id = ? AND labeler = ?",
                                  (item_id, labeler)).fetchone()[0]
            return {"label_id": label_id, "item_id": item_id, "ranking": ranking, "seconds": seconds}
        return self._write(save)

    def _saved_by_token(self, conn, labeler: str, token: str) -> dict | None:
        """The label a token already saved (idempotent submit), or None."""
        row = self._exec(conn, "SELECT id, item_id, labeler, ranking, seconds FROM labels WHERE token = ?", (token,)).fetchone()
        if row is None:  # a token of a version since edited: answer with the current version
            row = self._exec(conn, "SELECT l.id, l.item_id, l.labeler, l.ranking, l.seconds FROM label_history h "
                                   "JOIN labels l ON l.id = h.label_id WHERE h.token = ? LIMIT 1", (token,)).fetchone()
        if row is None or row[2] != labeler:
            return None
        return {"label_id": row[0], "item_id": row[1], "ranking": json.loads(row[3]), "seconds": row[4]}

    def _own_assignment(self, conn, labeler: str, item_id: str, token: str, now: float, need_slot: bool = True) -> tuple:
        """The (item_id, state, permutation, started_at, prior_seconds) this token opened for this
        labeler; a lapsed lease still counts while the item has a free slot (no one took it over)."""
        row = self._exec(conn, "SELECT item_id, state, permutation, started_at, prior_seconds, lease_expires "
                               "FROM assignments WHERE token = ? AND labeler = ?", (token, labeler)).fetchone()
        if row is None or row[0] != item_id:
            raise StoreError("this item is not assigned to you (it may have been reassigned); reload to get your current item")
        if need_slot and row[1] == "open" and row[5] <= now:
            taken = self._exec(conn, f"SELECT {self._TAKEN} FROM items i WHERE i.id = ?", (labeler, now, item_id)).fetchone()[0]
            if taken >= self.labels_per_item:
                raise StoreError("your time on this item ran out and another labeler took it over; load the next item")
        return row[:5]

    def _to_history(self, conn, item_id: str, labeler: str, now: float, why: str) -> None:
        self._exec(conn, "INSERT INTO label_history (label_id, item_id, labeler, token, ranking, ranks, flags, comment, "
                         "seconds, guideline_version, version, created_at, replaced_at, replaced_by) "
                         "SELECT id, item_id, labeler, token, ranking, ranks, flags, comment, seconds, guideline_version, "
                         "version, updated_at, ?, ? FROM labels WHERE item_id = ? AND labeler = ?", (now, why, item_id, labeler))

    def skip(self, labeler: str, item_id: str, token: str, reason: str) -> None:
        """Skip the assigned item with a reason: it is never offered to this labeler again and does
        not count as a label. Skipping an item re-opened by undo withdraws that label (kept in
        history). Skipping again with the same token is a no-op."""
        reason = _check_text(reason, "reason", 500).strip()
        if not reason:
            raise StoreError("say why you skip this item")

        def skip(conn) -> None:
            now = self.clock()
            _, state, *_ = self._own_assignment(conn, labeler, item_id, token, now, need_slot=False)
            if state == "skipped":
                return
            if state == "done":
                raise StoreError("this item is already labeled; use undo to change it")
            if state == "editing":
                self._to_history(conn, item_id, labeler, now, "skip")
                self._exec(conn, "DELETE FROM labels WHERE item_id = ? AND labeler = ?", (item_id, labeler))
                self._exec(conn, "UPDATE items SET n_labels = n_labels - 1 WHERE id = ?", (item_id,))
            self._exec(conn, "UPDATE assignments SET state = 'skipped', reason = ?, updated_at = ? "
                             "WHERE item_id = ? AND labeler = ?", (reason, now, item_id, labeler))
        self._write(skip)

    def undo_last(self, labeler: str) -> Assignment | None:
        """Re-open this labeler's most recent label for editing (None when they have none).

        The label stays in force until the new version is submitted, which moves the old one to
        `label_history`; so an edit that is walked away from loses nothing (it stays their open item
        and holds no slot of anyone else's). Any item they had open is released. The item keeps its permutation; `previous` prefills the form."""

        def reopen(conn) -> Assignment | None:
            now = self.clock()
            row = self._exec(conn, "SELECT a.item_id, a.state FROM assignments a WHERE a.labeler = ? AND a.state = 'editing'",
                             (labeler,)).fetchone()
            if row is None:
                row = self._exec(conn, "SELECT item_id, seconds FROM labels WHERE labeler = ? "
                                       "ORDER BY updated_at DESC, id DESC LIMIT 1", (labeler,)).fetchone()
                if row is None:
                    return None
                self._exec(conn, "UPDATE assignments SET lease_expires = ?, updated_at = ? WHERE labeler = ? AND state = 'open'",
                           (now, now, labeler))
                self._exec(conn, "UPDATE assignments SET state = 'editing', token = ?, started_at = ?, lease_expires = ?, "
                                 "prior_seconds = ?, updated_at = ? WHERE item_id = ? AND labeler = ?",
                           (secrets.token_urlsafe(16), now, now + self.lease_seconds, row[1], now, row[0], labeler))
            got = self._exec(conn, f"SELECT {self._A_COLS} FROM assignments a JOIN items i ON i.id = a.item_id "
                                   "WHERE a.item_id = ? AND a.labeler = ?", (row[0], labeler)).fetchone()
            return self._assignment(conn, labeler, got)
        return self._write(reopen)

    def history(self, item_id: str, labeler: str) -> list[dict]:
        """Every replaced or withdrawn version of one label, oldest first."""
        rows = self._exec(self._conn(), "SELECT version, ranking, flags, comment, seconds, guideline_version, created_at, "
                                        "replaced_at, replaced_by FROM label_history WHERE item_id = ? AND labeler = ? "
                                        "ORDER BY id", (item_id, labeler)).fetchall()
        return [{"version": r[0], "ranking": json.loads(r[1]), "flags": json.loads(r[2]), "comment": r[3],
                 "seconds": r[4], "guideline_version": r[5], "created_at": r[6], "replaced_at": r[7],
                 "replaced_by": r[8]} for r in rows]

    # --- progress and exports ------------------------------------------------------------

    def progress(self, labeler: str | None = None) -> dict:
        """For a labeler: {"done", "skipped", "available"}; for the project (labeler=None):
        {"items", "labels", "target", "complete_items", "skipped", "flagged", "per_labeler"}."""
        with self._snapshot() as conn:
            now = self.clock()
            if labeler is not None:
                counts = dict(self._exec(conn, "SELECT state, count(*) FROM assignments WHERE labeler = ? GROUP BY state",
                                         (labeler,)).fetchall())
                available = self._exec(conn, "SELECT count(*) FROM items i WHERE i.n_labels < ? AND NOT EXISTS (SELECT 1 "
                                             "FROM assignments m WHERE m.item_id = i.id AND m.labeler = ? AND m.state <> 'open') "
                                             f"AND {self._TAKEN} < ?",
                                       (self.labels_per_item, labeler, labeler, now, self.labels_per_item)).fetchone()[0]
                return {"done": counts.get("done", 0) + counts.get("editing", 0), "skipped": counts.get("skipped", 0),
                        "available": available}
            items, labels, complete = self._exec(conn, "SELECT count(*), coalesce(sum(n_labels), 0), coalesce(sum("
                                                       "CASE WHEN n_labels >= ? THEN 1 ELSE 0 END), 0) FROM items",
                                                 (self.labels_per_item,)).fetchone()
            per_labeler = dict(self._exec(conn, "SELECT labeler, count(*) FROM labels GROUP BY labeler "
                                                "ORDER BY labeler").fetchall())
            skipped = self._exec(conn, "SELECT count(*) FROM assignments WHERE state = 'skipped'").fetchone()[0]
            flagged = self._exec(conn, "SELECT count(*) FROM labels WHERE flags <> '[]'").fetchone()[0]
        return {"items": items, "labels": labels, "target": items * self.labels_per_item,
                "complete_items": complete, "skipped": skipped,
                "flagged": flagged, "per_labeler": per_labeler}

    def label_count(self) -> int:
        return self._exec(self._conn(), "SELECT count(*) FROM labels").fetchone()[0]

    def record_export(self, kind: str, admin: str, rows: int) -> None:
        """Note that an admin exported (`rlhf pipeline` with label_mode: app takes an export as
        "labeling is done"): kept in `meta` as the last export, with the store's clock."""
        value = json.dumps({"kind": kind, "admin": admin, "rows": rows, "at": self.clock()})

        def write(conn):
            self._exec(conn, "INSERT INTO meta (key, value) VALUES ('last_export', ?) "
                             "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (value,))

        self._write(write)

    def last_export(self) -> dict | None:
        """The last `record_export` ({"kind", "admin", "rows", "at"}), or None."""
        row = self._exec(self._conn(), "SELECT value FROM meta WHERE key = 'last_export'").fetchone()
        return json.loads(row[0]) if row else None

    def rankings(self, include_flagged: bool = False) -> list[dict]:
        """One row per label: the ranking record of DESIGN.md (`prompt`, `completions` in original
        order, `ranking` tiers best first, `labeler`, `flags`, `seconds`) plus `item_id`,
        `guideline_version`, `comment`, `created_at`, `updated_at`, `version` (and `messages` when
        the item had a conversation). Flagged labels only with `include_flagged`."""
        rows = self._exec(self._conn(), "SELECT i.prompt, i.completions, i.messages, l.ranking, l.labeler, l.flags, l.seconds, "
                                        "l.item_id, l.guideline_version, l.comment, l.created_at, l.updated_at, l.version "
                                        "FROM labels l JOIN items i ON i.id = l.item_id ORDER BY i.seq, l.id").fetchall()
        out = []
        for prompt, completions, messages, ranking, who, flags, seconds, item_id, version, comment, created, updated, n in rows:
            flags = json.loads(flags)
            if flags and not include_flagged:
                continue
            record = {"prompt": prompt, "completions": json.loads(completions), "ranking": json.loads(ranking),
                      "labeler": who, "flags": flags, "seconds": seconds, "item_id": item_id,
                      "guideline_version": version, "comment": comment, "created_at": created, "updated_at": updated,
                      "version": n}
            if messages:
                record["messages"] = json.loads(messages)
            out.append(record)
        return out

    def export_rankings(self, path: str | Path, include_flagged: bool = False) -> int:
        from rlhf.data import write_jsonl

        rows = self.rankings(include_flagged)
        write_jsonl(path, rows)
        return len(rows)

    def pairs(self, include_flagged: bool = False) -> list[dict]:
        """TRL's explicit-prompt preference rows, one per strictly ordered pair of every label (ties
        give none): {"prompt", "chosen", "rejected", "item_id", "tier_gap", "labeler"}."""
        from rlhf.data import ranking_pairs

        out = []
        for r in self.rankings(include_flagged):
            for better, worse, gap in ranking_pairs(r["ranking"]):
                out.append({"prompt": r["prompt"], "chosen": r["completions"][better], "rejected": r["completions"][worse],
                            "item_id": r["item_id"], "tier_gap": gap, "labeler": r["labeler"]})
        return out

    def export_pairs(self, path: str | Path, include_flagged: bool = False) -> int:
        from rlhf.data import write_jsonl

        rows = self.pairs(include_flagged)
        write_jsonl(path, rows)
        return len(rows)

    def flagged(self) -> list[dict]:
        """The admin's review queue: flagged labels and skips (with their reason), newest first."""
        conn = self._conn()
        labels = self._exec(conn, "SELECT l.item_id, l.labeler, l.flags, l.comment, l.updated_at, i.prompt FROM labels l "
                                  "JOIN items i ON i.id = l.item_id WHERE l.flags <> '[]'").fetchall()
        skips = self._exec(conn, "SELECT a.item_id, a.labeler, a.reason, a.updated_at, i.prompt FROM assignments a "
                                 "JOIN items i ON i.id = a.item_id WHERE a.state = 'skipped'").fetchall()
        out = [{"kind": "flag", "item_id": r[0], "labeler": r[1], "flags": json.loads(r[2]), "comment": r[3],
                "reason": "", "at": r[4], "prompt": r[5]} for r in labels]
        out += [{"kind": "skip", "item_id": r[0], "labeler": r[1], "flags": [], "comment": "", "reason": r[2] or "",
                 "at": r[3], "prompt": r[4]} for r in skips]
        return sorted(out, key=lambda r: r["at"], reverse=True)

    def agreement(self, include_flagged: bool = False) -> dict:
        """Agreement between labelers over items with at least 2 labels (see `agreement.summarize`):
        pairwise agreement, mean Kendall tau-b, Krippendorff's alpha (ordinal), per labeler."""
        from labeling_app.agreement import summarize

        by_item: dict[str, dict[str, list[list[int]]]] = {}
        for r in self.rankings(include_flagged):
            by_item.setdefault(r["item_id"], {})[r["labeler"]] = r["ranking"]
        return summarize(by_item)


# --- group commit ----------------------------------------------------------------------------


class _Job:
    __slots__ = ("fn", "result", "error", "done")

    def __init__(self, fn):
        self.fn, self.result, self.error, self.done = fn, None, None, threading.Event()


class _GroupCommit:
    """One writer thread per store and process runs every write, each in its own SAVEPOINT; the
    writes that queue up while one transaction commits share the next one.

    Why: with `synchronous=FULL` a commit costs an fsync (about 7 ms on this kind of machine), so one
    commit per submit caps a server near 150 submits/s and queues 50 labelers behind each other;
    group commit pays one fsync for the whole queue, and no write returns before its commit did.
    A write that raises is rolled back to its savepoint alone; a failed COMMIT fails the batch."""

    MAX_BATCH = 64

    def __init__(self, backend):
        self.backend = backend
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._loop, name="label-store-writer", daemon=True)
        self.thread.start()

    def run(self, fn):
        if threading.current_thread() is self.thread:
            raise RuntimeError("a store write cannot start another write")
        job = _Job(fn)
        self.queue.put(job)
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.result

    def stop(self) -> None:
        self.queue.put(None)
        self.thread.join(timeout=30)

    def _loop(self) -> None:
        conn = None
        while True:
            batch = [self.queue.get()]
            while batch[-1] is not None and len(batch) < self.MAX_BATCH:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            jobs = [job for job in batch if job is not None]
            try:
                conn = conn or self.backend.connect()
                self._commit(conn, jobs)
            except Exception as err:  # noqa: BLE001 - no connection: every job hears why
                self._finish(jobs, err)
            if batch[-1] is None:
                break
        if conn is not None:
            conn.close()
        while True:  # writes queued after close() fail instead of waiting forever
            try:
                job = self.queue.get_nowait()
            except queue.Empty:
                return
            if job is not None:
                self._finish([job], StoreError("the label store is closed"))

    def _commit(self, conn, jobs: list[_Job]) -> None:
        if not jobs:
            return
        try:
            self.backend.begin(conn)
            for job in jobs:
                conn.execute("SAVEPOINT job")
                try:
                    job.result = job.fn(conn)
                except Exception as err:  # noqa: BLE001 - handed to the caller of run()
                    conn.execute("ROLLBACK TO job")
                    job.error = err
                conn.execute("RELEASE job")
            conn.execute("COMMIT")
        except Exception as err:  # noqa: BLE001 - the whole transaction is gone
            try:
                conn.execute("ROLLBACK")
            except Exception:  # noqa: BLE001 - it may have rolled back by itself
                pass
            self._finish(jobs, err)
        else:
            self._finish(jobs, None)

    @staticmethod
    def _finish(jobs: list[_Job], err: Exception | None) -> None:
        for job in jobs:
            if err is not None and job.error is None:
                job.error, job.result = err, None
            job.done.set()


# --- users file ------------------------------------------------------------------------------


def _check_text(value: Any, name: str, limit: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise StoreError(f"the {name} must be text")
    if len(value) > limit:
        raise StoreError(f"the {name} is too long ({len(value)} characters; at most {limit})")
    return value


def _read_users_file(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, {"name", "password", "role"}) for each user of a CSV or JSONL users file,
    validated: a bad row raises DataError naming the file, the line and the field."""
    import csv

    from rlhf.data import DataError

    if not path.is_file():
        raise DataError(path, None, None, "users file not found")
    lines = path.read_text(encoding="utf-8").splitlines()
    first = next((ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")), "")
    as_json = path.suffix == ".jsonl" or first.startswith("{")
    for n, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if as_json:
            try:
                row = json.loads(text)
            except json.JSONDecodeError as err:
                raise DataError(path, n, None, f"not valid JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise DataError(path, n, None, "each line must be a JSON object")
        else:
            parts = [p.strip() for p in next(csv.reader([text]))]
            if [p.lower() for p in parts[:2]] == ["name", "password"]:
                continue  # header line
            if len(parts) not in (2, 3):
                raise DataError(path, n, None, "expected name,password[,role]")
            row = dict(zip(("name", "password", "role"), parts))
        row = {"name": row.get("name"), "password": row.get("password"), "role": row.get("role") or "labeler"}
        if not isinstance(row["name"], str) or not _NAME.match(row["name"]):
            raise DataError(path, n, "name", "must be 1-64 letters, digits or . _ @ + -")
        if not isinstance(row["password"], str) or not row["password"]:
            raise DataError(path, n, "password", "is empty")
        if row["role"] not in ROLES:
            raise DataError(path, n, "role", f"{row['role']!r} must be one of {', '.join(ROLES)}")
        yield n, row


_DUMMY_HASH = "scrypt$16384$8$1$" + "00" * 16 + "$" + "00" * 32
