"""The labeling database: users, items, leases, labels and their history, in one SQL store.

The store is the single source of truth; the web app keeps nothing durable in memory. Identity is
always the name the app took from its server-side session, never one sent by the browser.

Durability and concurrency (SQLite, the default):
- WAL mode with `synchronous=FULL`: every commit fsyncs the WAL before `submit` returns, so a label
  the page reports as saved survives a process crash *and* a power cut. (`NORMAL` survives a crash
  of the process but may lose the last commits on power loss.) An fsync costs about 7 ms here, so
  writes use group commit (`GroupCommit`): one writer thread per process runs every write in its
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

import json
import os
import random
import secrets
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from rlhf.store.backends import SCHEMA, open_backend
from rlhf.store.records import (MAX_COMMENT, Assignment, StoreError, User, check_flags, check_ranks, check_text,
                                ranks_to_tiers)
from rlhf.store.users import DUMMY_HASH, ROLES, check_name, hash_password, read_users_file, verify_password
from rlhf.store.writer import GroupCommit


def _records(cursor) -> list[dict[str, Any]]:
    """Every row of a cursor as a dict keyed by column name (`i.prompt` -> "prompt"), so callers read
    fields by name instead of by position in a long tuple."""
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def _record(cursor) -> dict[str, Any] | None:
    """The first row of a cursor as a dict keyed by column name, or None."""
    row = cursor.fetchone()
    return None if row is None else dict(zip([d[0] for d in cursor.description], row))


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
        self._backend = open_backend(str(path_or_url))
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
        self._writer: GroupCommit | None = None
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
        (fsynced), or raises what it raised (its writes rolled back). See `GroupCommit`."""
        if self._pid != os.getpid():
            self._reset_process_state()
        with self._writer_lock:
            if self._writer is None:
                self._writer = GroupCommit(self._backend)
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
        if not check_name(name):
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
        rows = list(read_users_file(Path(path)))
        for _, row in rows:
            self.add_user(row["name"], row["password"], row["role"])
        return len(rows)

    def authenticate(self, name: str, password: str) -> bool:
        row = self._exec(self._conn(), "SELECT password_hash FROM users WHERE name = ?", (name,)).fetchone()
        if row is None:
            verify_password(password or "", DUMMY_HASH)  # same time for a wrong name as a wrong password
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
        `rlhf.data.load_candidates` returns them; ids already present are skipped (adding the same
        file twice adds nothing; `item_count` shows the total). Returns the number added. Two
        candidates with one id in the same call raise StoreError: one of them would never be labeled.
        A `prompt` given as a message list (a conversation) is stored as its last user message with
        the list as `messages`."""
        from rlhf.data.conversation import last_user_text

        rows, first = [], {}
        for n, cand in enumerate(candidates, start=1):
            completions = cand.get("completions")
            if isinstance(cand.get("prompt"), list) and cand["prompt"]:
                cand = {**cand, "prompt": last_user_text(cand["prompt"]), "messages": cand.get("messages") or cand["prompt"]}
            if not isinstance(cand.get("prompt"), str) or not isinstance(completions, list) or len(completions) < 2 \
                    or not all(isinstance(c, str) for c in completions):
                raise StoreError(f"candidate {n}: needs a string 'prompt' and a list of at least 2 string 'completions'")
            item_id = str(cand.get("id", n))
            if item_id in first:
                raise StoreError(f"candidate {n}: id {item_id!r} repeats the id of candidate {first[item_id]}")
            first[item_id] = n
            rows.append((item_id, cand["prompt"], json.dumps(completions),
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

    _A_COLS = ("a.item_id, a.permutation, a.started_at, a.lease_expires, a.token, a.state, i.prompt, i.completions, "
               "i.messages")

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
        row = _record(self._exec(conn, f"SELECT {self._A_COLS} FROM assignments a JOIN items i ON i.id = a.item_id "
                                       "WHERE a.labeler = ? AND (a.state = 'editing' OR (a.state = 'open' AND "
                                       "a.lease_expires > ?)) ORDER BY a.updated_at DESC LIMIT 1", (labeler, now)))
        return self._assignment(conn, labeler, row) if row else None

    def _assignment(self, conn, labeler: str, row) -> Assignment:
        item_id, state = row["item_id"], row["state"]
        perm, completions = json.loads(row["permutation"]), json.loads(row["completions"])
        previous = None
        if state == "editing":
            prev = self._exec(conn, "SELECT ranks, flags, comment, ranking FROM labels WHERE item_id = ? AND labeler = ?",
                              (item_id, labeler)).fetchone()
            if prev:
                previous = {"ranks": json.loads(prev[0]), "flags": json.loads(prev[1]), "comment": prev[2],
                            "ranking": json.loads(prev[3])}
        return Assignment(item_id=item_id, prompt=row["prompt"], completions=[completions[p] for p in perm],
                          permutation=perm, started_at=row["started_at"], lease_expires=row["lease_expires"],
                          token=row["token"], previous=previous,
                          messages=json.loads(row["messages"]) if row["messages"] else None)

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
        got = _record(self._exec(conn, f"SELECT {self._A_COLS} FROM assignments a JOIN items i ON i.id = a.item_id "
                               "WHERE a.item_id = ? AND a.labeler = ?", (row[0], labeler)))
        return self._assignment(conn, labeler, got)

    # --- submit, skip, undo --------------------------------------------------------------

    def submit(self, labeler: str, item_id: str, token: str, ranks: list[int], flags: Iterable[str] = (),
               comment: str = "") -> dict:
        """Save a ranking of the assigned item; committed before this returns.

        `ranks[i]` is the rank (1 = best, equal = tie, dense 1..m) of the completion at DISPLAY
        position i. Returns {"label_id", "item_id", "ranking" (tiers of original indexes),
        "seconds"}. Submitting the same token again returns the saved label and changes nothing."""
        flags = check_flags(flags)
        comment = check_text(comment, "comment", MAX_COMMENT)

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
        reason = check_text(reason, "reason", 500).strip()
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
            got = _record(self._exec(conn, f"SELECT {self._A_COLS} FROM assignments a JOIN items i ON i.id = a.item_id "
                                   "WHERE a.item_id = ? AND a.labeler = ?", (row[0], labeler)))
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
        """One row per label: the ranking record of docs/architecture.md (`prompt` = the item's whole conversation,
        a string for one user message, else the messages; `completions` in original order, `ranking`
        tiers best first, `labeler`, `flags`, `seconds`) plus `item_id`, `guideline_version`,
        `comment`, `created_at`, `updated_at`, `version`. Flagged labels only with `include_flagged`."""
        from rlhf.data.conversation import normalize_prompt

        rows = _records(self._exec(self._conn(), "SELECT i.prompt, i.completions, i.messages, l.ranking, l.labeler, "
                                   "l.flags, l.seconds, l.item_id, l.guideline_version, l.comment, l.created_at, "
                                   "l.updated_at, l.version FROM labels l JOIN items i ON i.id = l.item_id "
                                   "ORDER BY i.seq, l.id"))
        out = []
        for row in rows:
            flags = json.loads(row["flags"])
            if flags and not include_flagged:
                continue
            conversation = normalize_prompt(json.loads(row["messages"])) if row["messages"] else row["prompt"]
            record = {"prompt": conversation, "completions": json.loads(row["completions"]),
                      "ranking": json.loads(row["ranking"]), "labeler": row["labeler"], "flags": flags,
                      "seconds": row["seconds"], "item_id": row["item_id"],
                      "guideline_version": row["guideline_version"], "comment": row["comment"],
                      "created_at": row["created_at"], "updated_at": row["updated_at"], "version": row["version"]}
            out.append(record)
        return out

    def export_rankings(self, path: str | Path, include_flagged: bool = False) -> int:
        from rlhf.data import write_jsonl

        rows = self.rankings(include_flagged)
        write_jsonl(path, rows)
        return len(rows)

    def pairs(self, include_flagged: bool = False, form: str = "explicit") -> list[dict]:
        """TRL preference rows, one per strictly ordered pair of every label (ties give none), in
        TRL's explicit-prompt (`prompt`, `chosen`, `rejected`) or implicit-prompt form (`chosen`,
        `rejected` holding the conversation), conversational when a context has several turns;
        with `item_id`, `tier_gap` and `labeler` (rlhf.data.preferences.trl_pair_rows)."""
        from rlhf.data.preferences import trl_pair_rows

        return trl_pair_rows(self.rankings(include_flagged), form)

    def export_pairs(self, path: str | Path, include_flagged: bool = False, form: str = "explicit") -> int:
        from rlhf.data import write_jsonl

        rows = self.pairs(include_flagged, form)
        write_jsonl(path, rows)
        return len(rows)

    def flagged(self) -> list[dict]:
        """The admin's review queue: flagged labels and skips (with their reason), newest first."""
        conn = self._conn()
        labels = _records(self._exec(conn, "SELECT l.item_id, l.labeler, l.flags, l.comment, l.updated_at AS at, "
                                           "i.prompt FROM labels l JOIN items i ON i.id = l.item_id WHERE l.flags <> '[]'"))
        skips = _records(self._exec(conn, "SELECT a.item_id, a.labeler, a.reason, a.updated_at AS at, i.prompt "
                                          "FROM assignments a JOIN items i ON i.id = a.item_id WHERE a.state = 'skipped'"))
        out = [{**r, "kind": "flag", "flags": json.loads(r["flags"]), "reason": ""} for r in labels]
        out += [{**r, "kind": "skip", "flags": [], "comment": "", "reason": r["reason"] or ""} for r in skips]
        return sorted(out, key=lambda r: r["at"], reverse=True)

    def agreement(self, include_flagged: bool = False) -> dict:
        """Agreement between labelers over items with at least 2 labels (see `agreement.summarize`):
        pairwise agreement, mean Kendall tau-b, Krippendorff's alpha (ordinal), per labeler."""
        from rlhf.store.agreement import summarize

        by_item: dict[str, dict[str, list[list[int]]]] = {}
        for r in self.rankings(include_flagged):
            by_item.setdefault(r["item_id"], {})[r["labeler"]] = r["ranking"]
        return summarize(by_item)

