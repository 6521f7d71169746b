"""The labeling store: assignment, leases, validation, undo, exports, users, and what concurrency
and a killed process can and cannot do to it."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from rlhf.store import LabelStore, StoreError, check_ranks, guideline_version, ranks_to_tiers
from rlhf.store.backends import _SQLite
from rlhf.store.writer import GroupCommit
from rlhf.data import DataError, load_preferences


class Clock:
    """A settable clock, so lease expiry is tested without sleeping."""

    def __init__(self, t: float = 1_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def candidates(n: int, k: int = 4) -> list[dict]:
    return [{"id": f"item{i}", "prompt": f"prompt {i}", "completions": [f"answer {i}.{j}" for j in range(k)]}
            for i in range(n)]


def rank_as(assignment, tiers: list[list[int]]) -> list[int]:
    """The display-order ranks that mean `tiers` over the original completions."""
    tier_of = {c: t + 1 for t, tier in enumerate(tiers) for c in tier}
    return [tier_of[p] for p in assignment.permutation]


@pytest.fixture
def clock():
    return Clock()


def _postgres_bin(name: str) -> str | None:
    found = shutil.which(name) or sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(found if isinstance(found, str) else found[-1]) if found else None


@pytest.fixture(scope="session")
def pg_server():
    """A throwaway PostgreSQL cluster on a free loopback port for this test session (as the
    `postgres` system user when the tests run as root: the server refuses to run as root)."""
    pytest.importorskip("psycopg", reason="the PostgreSQL store needs psycopg: pip install 'rlhf[postgres]'")
    initdb, pg_ctl = _postgres_bin("initdb"), _postgres_bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql")
    root = tempfile.mkdtemp(prefix="rlhf-pg-")
    as_user = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    data = os.path.join(root, "data")
    subprocess.run([*as_user, initdb, "-N", "-D", data, "-A", "trust", "-U", "postgres"], check=True, capture_output=True)
    subprocess.run([*as_user, pg_ctl, "-D", data, "-l", os.path.join(root, "log"), "-w", "-o",
                    f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=200", "start"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", data, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    """Where a test's store lives: a fresh SQLite file, or a PostgreSQL database emptied first."""
    if request.param == "sqlite":
        return str(tmp_path / "labels.db")
    url = request.getfixturevalue("pg_server")  # skips when PostgreSQL or psycopg is missing
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    return url


@pytest.fixture
def make(db, clock):
    stores = []

    def make(n_items: int = 3, labels_per_item: int = 1, lease: float = 60.0, **kw) -> LabelStore:
        store = LabelStore(db, labels_per_item=labels_per_item, lease_seconds=lease,
                           guideline_version=kw.pop("guideline_version", "g1"), clock=clock, seed=0, **kw)
        store.add_items(candidates(n_items))
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


def assert_consistent(db: str, labels_per_item: int) -> None:
    """Invariants a crash or a race must never break, checked through a fresh store."""
    store = LabelStore(db, labels_per_item=labels_per_item)
    try:
        sql = lambda q: store._exec(store._conn(), q).fetchall()  # noqa: E731
        if store._backend.kind == "sqlite":
            assert sql("PRAGMA integrity_check")[0][0] == "ok"
        per_item = dict(sql("SELECT item_id, count(*) FROM labels GROUP BY item_id"))
        counters = dict(sql("SELECT id, n_labels FROM items"))
        assert all(counters[item] == per_item.get(item, 0) for item in counters), (counters, per_item)
        assert max(per_item.values(), default=0) <= labels_per_item
        assert sql("SELECT item_id, labeler FROM labels GROUP BY item_id, labeler HAVING count(*) > 1") == []
        orphan = sql("SELECT count(*) FROM labels l JOIN assignments a ON a.item_id = l.item_id AND "
                     "a.labeler = l.labeler WHERE a.state NOT IN ('done', 'editing')")[0][0]
        missing = sql("SELECT count(*) FROM assignments a WHERE a.state IN ('done', 'editing') AND NOT EXISTS "
                      "(SELECT 1 FROM labels l WHERE l.item_id = a.item_id AND l.labeler = a.labeler)")[0][0]
        assert (orphan, missing) == (0, 0)
    finally:
        store.close()


def label_rows(db: str) -> list[tuple]:
    store = LabelStore(db)
    try:
        return sorted(tuple(r) for r in store._exec(store._conn(), "SELECT id, item_id, labeler FROM labels").fetchall())
    finally:
        store.close()


# --- pure helpers ------------------------------------------------------------------------------


def test_ranks_to_tiers_maps_display_positions_to_original_indexes():
    # shown: [C, A, B] (permutation [2, 0, 1]); ranks C=2, A=1, B=2 -> A > B = C
    assert ranks_to_tiers([2, 1, 2], [2, 0, 1]) == [[0], [1, 2]]


@pytest.mark.parametrize("ranks, problem", [
    ([1, 2, 3], "rank every one of the 4"),  # one unranked
    ([1, 3, 3, 4], "no gaps"),  # rank 2 unused
    ([1, 2, 2, 5], "out of range"),
    ([1, None, 2, 3], "has no rank"),
    ([1, 2.5, 2, 3], "whole number"),
    ([1, True, 2, 3], "whole number"),
    ("1234", "rank every one"),
])
def test_check_ranks_rejects(ranks, problem):
    with pytest.raises(StoreError, match=problem):
        check_ranks(ranks, 4)


def test_check_ranks_accepts_ties_and_numeric_strings():
    assert check_ranks([1, 1, 1, 1], 4) == [1, 1, 1, 1]
    assert check_ranks(["2", 1, 2.0, 3], 4) == [2, 1, 2, 3]


def test_guideline_version(tmp_path):
    path = tmp_path / "g.md"
    path.write_text("# Guidelines\n<!-- version: 2026-11-a -->\nRank helpful first.\n")
    assert guideline_version(path) == "2026-11-a"
    path.write_text("# Guidelines\n\n**Version:** 3.1\n\nRank helpful first.\n")
    assert guideline_version(path) == "3.1"
    path.write_text("# Guidelines\nRank helpful first.\n")
    first = guideline_version(path)
    path.write_text("# Guidelines\nRank honest first.\n")
    assert len(first) == 12 and guideline_version(path) != first  # any edit is a new version


# --- database settings -------------------------------------------------------------------------


def test_sqlite_is_wal_with_full_sync_and_memory_is_refused(tmp_path):
    store = LabelStore(tmp_path / "labels.db")
    assert store._conn().execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._conn().execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    with pytest.raises(StoreError, match="needs a file"):
        LabelStore(":memory:")
    with pytest.raises(StoreError, match="labels_per_item"):
        LabelStore(tmp_path / "x.db", labels_per_item=0)
    store.close()


# --- assignment ------------------------------------------------------------------------------


def test_next_item_is_permuted_stored_and_resumed_after_restart(make, clock):
    store = make(n_items=2)
    a = store.next_item("alice")
    assert a.item_id == "item0" and sorted(a.permutation) == [0, 1, 2, 3]
    assert a.completions == [f"answer 0.{p}" for p in a.permutation]
    assert a.lease_expires == a.started_at + 60 and a.previous is None
    assert store.next_item("alice") == a  # a refresh gets the same item, order and token
    store.close()
    restarted = LabelStore(store.path, labels_per_item=1, lease_seconds=60, clock=clock)
    try:
        assert restarted.next_item("alice") == a  # and so does a new browser after a server restart
    finally:
        restarted.close()


def test_permutation_differs_between_labelers(make):
    store = make(n_items=1, labels_per_item=8)
    perms = {tuple(store.next_item(f"user{i}").permutation) for i in range(8)}
    assert len(perms) > 1  # 8 draws from 24 orders all equal: chance 24**-7


def test_n_distinct_labelers_per_item_and_never_the_same_item_twice(make):
    store = make(n_items=3, labels_per_item=2)
    for who in ("alice", "bob"):
        seen = []
        while (a := store.next_item(who)) is not None:
            seen.append(a.item_id)
            store.submit(who, a.item_id, a.token, [1, 2, 3, 4])
        assert seen == ["item0", "item1", "item2"]
    assert store.next_item("carol") is None  # every item has its N=2 labels
    rows = store.rankings()
    assert sorted((r["item_id"], r["labeler"]) for r in rows) == [
        (i, who) for i in ("item0", "item1", "item2") for who in ("alice", "bob")]
    assert store.progress() == {"items": 3, "labels": 6, "target": 6, "complete_items": 3, "skipped": 0,
                                "flagged": 0, "per_labeler": {"alice": 3, "bob": 3}}


def test_live_lease_holds_the_slot_and_expired_lease_frees_it(make, clock):
    store = make(n_items=1, labels_per_item=1, lease=60)
    a = store.next_item("alice")
    assert store.next_item("bob") is None  # alice's lease holds the only slot
    clock.advance(61)
    b = store.next_item("bob")
    assert b is not None and b.item_id == a.item_id  # alice walked away: bob gets it
    with pytest.raises(StoreError, match="ran out"):
        store.submit("alice", a.item_id, a.token, [1, 2, 3, 4])
    assert store.next_item("alice") is None
    store.submit("bob", b.item_id, b.token, [1, 1, 2, 3])
    assert store.label_count() == 1


def test_lapsed_lease_still_saves_when_nobody_took_the_item(make, clock):
    store = make(n_items=1)
    a = store.next_item("alice")
    clock.advance(3600)
    saved = store.submit("alice", a.item_id, a.token, [1, 2, 3, 4])
    assert saved["seconds"] == 3600 and store.label_count() == 1


def test_lapsed_lease_is_renewed_for_the_same_labeler_with_the_same_order(make, clock):
    store = make(n_items=2)
    a = store.next_item("alice")
    clock.advance(61)
    again = store.next_item("alice")
    assert (again.item_id, again.permutation, again.token) == (a.item_id, a.permutation, a.token)
    assert again.started_at == clock.t


# --- submit ----------------------------------------------------------------------------------


def test_submit_saves_tiers_over_original_indexes(make, clock):
    store = make(n_items=1)
    a = store.next_item("alice")
    clock.advance(14.2)
    saved = store.submit("alice", a.item_id, a.token, rank_as(a, [[2], [1, 3], [0]]), flags=[], comment="close call")
    assert saved["ranking"] == [[2], [1, 3], [0]] and saved["seconds"] == pytest.approx(14.2)
    (row,) = store.rankings()
    assert row["ranking"] == [[2], [1, 3], [0]] and row["completions"] == [f"answer 0.{j}" for j in range(4)]
    assert (row["labeler"], row["guideline_version"], row["comment"]) == ("alice", "g1", "close call")


@pytest.mark.parametrize("who, item, token, ranks, flags, problem", [
    ("bob", "item0", None, [1, 2, 3, 4], [], "not assigned to you"),  # alice's token, bob's session
    ("alice", "item1", None, [1, 2, 3, 4], [], "not assigned to you"),  # another item than the lease
    ("alice", "item0", "forged", [1, 2, 3, 4], [], "not assigned to you"),
    ("alice", "item0", None, [1, 2, 4, 4], [], "no gaps"),
    ("alice", "item0", None, [1, 2, 3], [], "rank every one"),
    ("alice", "item0", None, [1, 2, 3, 4], ["boring"], "unknown flag"),
])
def test_submit_is_validated_on_the_server(make, who, item, token, ranks, flags, problem):
    store = make(n_items=2)
    a = store.next_item("alice")
    with pytest.raises(StoreError, match=problem):
        store.submit(who, item, token or a.token, ranks, flags)
    assert store.label_count() == 0 and store.next_item("alice") == a  # nothing saved, lease intact


def test_repeated_submit_is_a_no_op(make):
    store = make(n_items=2)
    a = store.next_item("alice")
    first = store.submit("alice", a.item_id, a.token, [1, 2, 3, 4])
    again = store.submit("alice", a.item_id, a.token, [4, 3, 2, 1])  # a double click, or a retry after a timeout
    assert again == first and store.label_count() == 1
    assert store.rankings()[0]["ranking"] == first["ranking"]


def test_comment_too_long_is_refused(make):
    store = make()
    a = store.next_item("alice")
    with pytest.raises(StoreError, match="too long"):
        store.submit("alice", a.item_id, a.token, [1, 2, 3, 4], comment="x" * 5000)


# --- skip, flags, undo -----------------------------------------------------------------------


def test_skip_needs_a_reason_and_never_offers_the_item_again(make):
    store = make(n_items=2)
    a = store.next_item("alice")
    with pytest.raises(StoreError, match="why"):
        store.skip("alice", a.item_id, a.token, "  ")
    store.skip("alice", a.item_id, a.token, "I cannot judge code")
    store.skip("alice", a.item_id, a.token, "I cannot judge code")  # repeated: no-op
    b = store.next_item("alice")
    assert b.item_id == "item1"
    store.submit("alice", b.item_id, b.token, [1, 2, 3, 4])
    assert store.next_item("alice") is None
    assert store.progress("alice") == {"done": 1, "skipped": 1, "available": 0}
    assert store.next_item("bob").item_id == "item0"  # a skip is not a label
    (queued,) = store.flagged()
    assert (queued["kind"], queued["item_id"], queued["reason"]) == ("skip", "item0", "I cannot judge code")
    with pytest.raises(StoreError, match="already skipped"):
        store.submit("alice", a.item_id, a.token, [1, 2, 3, 4])


def test_flagged_labels_stay_out_of_exports_unless_asked(make, tmp_path):
    store = make(n_items=2)
    for flags in (["unsafe"], []):
        a = store.next_item("alice")
        store.submit("alice", a.item_id, a.token, [1, 2, 3, 4], flags=flags, comment="harmful advice" if flags else "")
    assert [r["item_id"] for r in store.rankings()] == ["item1"]
    assert [r["flags"] for r in store.rankings(include_flagged=True)] == [["unsafe"], []]
    assert store.export_pairs(tmp_path / "p.jsonl") == 6 and store.export_pairs(tmp_path / "p.jsonl", True) == 12
    (queued,) = store.flagged()
    assert (queued["kind"], queued["flags"], queued["comment"]) == ("flag", ["unsafe"], "harmful advice")


def test_undo_reopens_the_last_label_and_keeps_the_old_version(make, clock):
    store = make(n_items=3)
    assert store.undo_last("alice") is None  # nothing to undo yet
    a = store.next_item("alice")
    clock.advance(10)
    first = store.submit("alice", a.item_id, a.token, rank_as(a, [[0], [1], [2], [3]]), ["low_quality"], "meh")
    b = store.next_item("alice")  # alice moved on to item1 ...
    edit = store.undo_last("alice")  # ... then pressed undo
    assert (edit.item_id, edit.permutation) == (a.item_id, a.permutation) and edit.token != a.token
    assert edit.previous == {"ranks": rank_as(a, [[0], [1], [2], [3]]), "flags": ["low_quality"], "comment": "meh",
                             "ranking": [[0], [1], [2], [3]]}
    assert store.next_item("alice") == edit  # a refresh resumes the edit
    assert store.next_item("bob").item_id == b.item_id  # item1 was released
    assert store.label_count() == 1  # the old label stands until the new one is saved
    clock.advance(5)
    second = store.submit("alice", edit.item_id, edit.token, rank_as(a, [[3], [0, 1, 2]]))
    assert second["label_id"] == first["label_id"] and second["seconds"] == 15  # time on item adds up
    assert store.submit("alice", a.item_id, a.token, [1, 2, 3, 4]) == second  # the old token: no-op
    (row,) = store.rankings()
    assert (row["ranking"], row["flags"], row["version"]) == ([[3], [0, 1, 2]], [], 2)
    (old,) = store.history(a.item_id, "alice")
    assert (old["version"], old["ranking"], old["comment"], old["replaced_by"]) == (1, [[0], [1], [2], [3]], "meh", "edit")
    assert store.label_count() == 1


def test_skip_of_a_reopened_label_withdraws_it_into_history(make):
    store = make(n_items=1)
    a = store.next_item("alice")
    store.submit("alice", a.item_id, a.token, [1, 2, 3, 4])
    edit = store.undo_last("alice")
    store.skip("alice", edit.item_id, edit.token, "I misread the prompt")
    assert store.label_count() == 0 and store.history(a.item_id, "alice")[0]["replaced_by"] == "skip"
    assert store.next_item("bob").item_id == "item0"  # the slot is free again


# --- exports ---------------------------------------------------------------------------------


def test_exports_rankings_and_trl_pairs(make, tmp_path, clock):
    store = make(n_items=1, labels_per_item=2)
    a = store.next_item("alice")
    clock.advance(3)
    store.submit("alice", a.item_id, a.token, rank_as(a, [[2], [1, 3], [0]]))  # C > B = D > A
    b = store.next_item("bob")
    store.submit("bob", b.item_id, b.token, rank_as(b, [[0, 1, 2, 3]]))  # all tied: no pairs
    assert store.export_rankings(tmp_path / "r.jsonl") == 2
    first = json.loads((tmp_path / "r.jsonl").read_text().splitlines()[0])
    assert first == {"prompt": "prompt 0", "completions": ["answer 0.0", "answer 0.1", "answer 0.2", "answer 0.3"],
                     "ranking": [[2], [1, 3], [0]], "labeler": "alice", "flags": [], "seconds": 3.0, "item_id": "item0",
                     "guideline_version": "g1", "comment": "", "created_at": clock.t, "updated_at": clock.t, "version": 1}
    rankings, bad = load_preferences(tmp_path / "r.jsonl")  # the reward stage reads it back
    assert bad == [] and [r.ranking for r in rankings] == [[[2], [1, 3], [0]], [[0, 1, 2, 3]]]
    # tiers of sizes 1, 2, 1: 1*2 + 1*1 + 2*1 = 5 pairs; bob's all-tie gives none
    assert store.export_pairs(tmp_path / "p.jsonl") == 5
    pairs = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    got = {(p["chosen"][-1], p["rejected"][-1], p["tier_gap"]) for p in pairs}
    assert got == {("2", "1", 1), ("2", "3", 1), ("2", "0", 2), ("1", "0", 1), ("3", "0", 1)}
    assert set(pairs[0]) == {"prompt", "chosen", "rejected", "item_id", "tier_gap", "labeler"}
    assert len(load_preferences(tmp_path / "p.jsonl")[0]) == 5


def test_agreement_over_items_with_two_labels(make):
    store = make(n_items=2, labels_per_item=2)
    for who in ("alice", "bob"):
        a = store.next_item(who)
        store.submit(who, a.item_id, a.token, rank_as(a, [[0], [1], [2], [3]]))
    c = store.next_item("carol")  # item1 has one label: left out
    store.submit("carol", c.item_id, c.token, [1, 2, 3, 4])
    got = store.agreement()
    assert (got["items"], got["comparisons"], got["pairwise_agreement"], got["kendall_tau_b"]) == (1, 1, 1.0, 1.0)
    assert got["krippendorff_alpha"] == pytest.approx(1.0)


# --- users -----------------------------------------------------------------------------------


def test_users_hashed_authenticated_and_updated(make):
    store = make()
    store.add_user("alice", "correct horse", "admin")
    assert store.authenticate("alice", "correct horse") and not store.authenticate("alice", "wrong")
    assert not store.authenticate("nobody", "correct horse")
    ((stored,),) = store._exec(store._conn(), "SELECT password_hash FROM users WHERE name = 'alice'").fetchall()
    assert stored.startswith("scrypt$") and "correct horse" not in stored  # salted hash only
    store.add_user("alice", "new pass", "labeler")
    assert store.get_user("alice").role == "labeler" and store.authenticate("alice", "new pass")
    assert store.get_user("nobody") is None
    with pytest.raises(StoreError, match="role"):
        store.add_user("bob", "pw", "root")


def test_users_file_csv_and_jsonl(make, tmp_path):
    store = make()
    csv = tmp_path / "users.csv"
    csv.write_text("name,password,role\n# the team\nalice,s3cret,admin\nbob,\"pa,ss\"\n")
    assert store.load_users_file(csv) == 2
    assert store.get_user("bob").role == "labeler" and store.authenticate("bob", "pa,ss")
    jsonl = tmp_path / "users.jsonl"
    jsonl.write_text('{"name": "carol", "password": "x1", "role": "labeler"}\n{"name": "dave", "password": ""}\n')
    with pytest.raises(DataError, match=r"users.jsonl, row 2, field 'password'"):
        store.load_users_file(jsonl)
    assert store.get_user("carol") is None  # a bad file adds nobody
    jsonl.write_text('{"name": "erin", "password": "x1"}\n{"name": "frank", "password"\n')
    with pytest.raises(DataError, match=r"users.jsonl, row 2: not valid JSON"):
        store.load_users_file(jsonl)
    jsonl.write_text('{"name": "erin", "password": "x1"}\n["frank", "x2"]\n')
    with pytest.raises(DataError, match=r"users.jsonl, row 2: each line must be a JSON object"):
        store.load_users_file(jsonl)


# --- group commit ----------------------------------------------------------------------------


def test_group_commit_isolates_a_failing_write_in_its_batch(tmp_path):
    backend = _SQLite(str(tmp_path / "g.db"))
    writer = GroupCommit(backend)
    try:
        writer.run(lambda c: c.execute("CREATE TABLE t (x INTEGER UNIQUE)"))
        gate, results = threading.Event(), {}

        def call(name, fn):
            try:
                results[name] = writer.run(fn)
            except Exception as err:  # noqa: BLE001
                results[name] = err

        def insert(x):
            return lambda c: c.execute("INSERT INTO t VALUES (?)", (x,)).rowcount

        def insert_then_fail(c):
            c.execute("INSERT INTO t VALUES (99)")
            raise StoreError("rejected")

        entered = threading.Event()

        def hold(conn):
            entered.set()
            return gate.wait(5)

        threads = [threading.Thread(target=call, args=("gate", hold))]
        threads[0].start()
        assert entered.wait(5)  # the writer is inside the gate's transaction: the next three queue up
        for name, fn in (("a", insert(1)), ("bad", insert_then_fail), ("b", insert(2))):
            threads.append(threading.Thread(target=call, args=(name, fn)))
            threads[-1].start()
        deadline = time.time() + 5
        while writer.queue.qsize() < 3 and time.time() < deadline:
            time.sleep(0.01)
        assert writer.queue.qsize() == 3  # so they run in one batch, one transaction
        gate.set()
        for t in threads:
            t.join()
        assert results["a"] == 1 and results["b"] == 1 and isinstance(results["bad"], StoreError)
        conn = sqlite3.connect(tmp_path / "g.db")
        assert [x for (x,) in conn.execute("SELECT x FROM t ORDER BY x")] == [1, 2]  # 99 rolled back alone
        conn.close()
    finally:
        writer.stop()


# --- concurrency -----------------------------------------------------------------------------

N_ITEMS, N_PER_ITEM, N_WRITERS = 15, 3, 20


def _label_until_done(store: LabelStore, who: str, seed: int) -> list[tuple[int, str, str]]:
    """A labeler's session: label (sometimes skip, sometimes double-submit) until nothing is left.
    Returns the labels the store confirmed as (label_id, item_id, labeler)."""
    rng, confirmed = random.Random(seed), []
    while (a := store.next_item(who)) is not None:
        if rng.random() < 0.1:
            store.skip(who, a.item_id, a.token, "not my field")
            continue
        ranks = [rng.randint(1, 2) for _ in a.completions]
        ranks = [1 + sorted(set(ranks)).index(r) for r in ranks]  # dense
        saved = store.submit(who, a.item_id, a.token, ranks)
        if rng.random() < 0.2:
            assert store.submit(who, a.item_id, a.token, ranks) == saved  # a double click
        confirmed.append((saved["label_id"], saved["item_id"], who))
    return confirmed


def _check_after_race(db: str, confirmed: list[tuple[int, str, str]]) -> None:
    assert_consistent(db, N_PER_ITEM)
    stored = label_rows(db)
    assert sorted(confirmed) == stored  # every confirmed label present, once; nothing unconfirmed
    per_item = {}
    for _, item, _ in stored:
        per_item[item] = per_item.get(item, 0) + 1
    assert per_item == {f"item{i}": N_PER_ITEM for i in range(N_ITEMS)}  # all filled, none past N


def _fill(db: str, n_items: int, labels_per_item: int) -> None:
    with LabelStore(db, labels_per_item=labels_per_item) as store:
        store.add_items(candidates(n_items))


def test_twenty_threads_share_one_store(db):
    _fill(db, N_ITEMS, N_PER_ITEM)
    store = LabelStore(db, labels_per_item=N_PER_ITEM, lease_seconds=600)
    confirmed, errors = [], []

    def labeler(i):
        try:
            confirmed.extend(_label_until_done(store, f"t{i}", seed=i))
        except Exception as err:  # noqa: BLE001 - reported by the assert below
            errors.append(err)

    threads = [threading.Thread(target=labeler, args=(i,)) for i in range(N_WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store.close()
    assert errors == []
    _check_after_race(db, confirmed)


def _process_labeler(db, i, out):
    store = LabelStore(db, labels_per_item=N_PER_ITEM, lease_seconds=600)
    out.put(_label_until_done(store, f"p{i}", seed=100 + i))
    store.close()


def test_twenty_processes_share_one_database(db):
    _fill(db, N_ITEMS, N_PER_ITEM)
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_process_labeler, args=(db, i, out)) for i in range(N_WRITERS)]
    for p in procs:
        p.start()
    confirmed = [label for _ in procs for label in out.get(timeout=60)]
    for p in procs:
        p.join(timeout=30)
    assert [p.exitcode for p in procs] == [0] * N_WRITERS
    _check_after_race(db, confirmed)


# --- a process killed mid-transaction --------------------------------------------------------


def _raw_writer_killed_before_commit(path, ready_fd):
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO labels (item_id, labeler, token, ranking, ranks, flags, comment, seconds, "
                 "guideline_version, version, created_at, updated_at) VALUES ('item0', 'ghost', 'tok', '[[0],[1,2,3]]', "
                 "'[1,2,2,2]', '[]', '', 1, '', 1, 0, 0)")
    conn.execute("UPDATE items SET n_labels = n_labels + 1 WHERE id = 'item0'")
    # ~8 MB more: more than SQLite's page cache, so uncommitted pages spill into the WAL file
    conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", ((f"pad{i}", "x" * 4000) for i in range(2000)))
    os.write(ready_fd, b"1")
    time.sleep(60)


def _store_killed_mid_write(tmp_path, target) -> str:
    """A store of two items, then `target(path, ready_fd)` in a forked process, SIGKILLed as soon as
    it signals that it is inside its write; the store's path."""
    path = str(tmp_path / "kill.db")
    store = LabelStore(path)
    store.add_items(candidates(2))
    store.close()
    read_fd, write_fd = os.pipe()
    proc = multiprocessing.get_context("fork").Process(target=target, args=(path, write_fd))
    proc.start()
    assert os.read(read_fd, 1) == b"1"
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    os.close(read_fd)
    os.close(write_fd)
    assert proc.exitcode == -signal.SIGKILL
    return path


def test_process_killed_inside_begin_immediate_leaves_no_trace(tmp_path):
    path = _store_killed_mid_write(tmp_path, _raw_writer_killed_before_commit)
    assert os.path.getsize(path + "-wal") > 4_000_000  # the dead transaction's pages did reach the WAL
    store = LabelStore(path)  # opens fine, and the dead process's lock is gone
    try:
        assert_consistent(path, 1)
        assert store.label_count() == 0 and store._conn().execute("SELECT count(*) FROM meta").fetchone()[0] == 1
        a = store.next_item("alice")
        assert store.submit("alice", a.item_id, a.token, [1, 2, 3, 4])["item_id"] == "item0"
    finally:
        store.close()


class _StallOnCommit:
    """A connection that signals and hangs at COMMIT, so the test can kill the process there."""

    def __init__(self, backend, ready_fd):
        self.backend, self.ready_fd, self.kind = backend, ready_fd, backend.kind

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def connect(self):
        conn, ready_fd = self.backend.connect(), self.ready_fd

        class Conn:
            def execute(self, sql, *args):
                if sql == "COMMIT":
                    os.write(ready_fd, b"1")
                    time.sleep(60)
                return conn.execute(sql, *args)

            def close(self):
                conn.close()
        return Conn()


def _submit_killed_before_commit(path, ready_fd):
    store = LabelStore(path)
    a = store.next_item("alice")
    with open(path + ".token", "w") as fh:
        json.dump([a.item_id, a.token], fh)
    store.close()
    store._backend = _StallOnCommit(store._backend, ready_fd)
    store.submit("alice", a.item_id, a.token, [1, 2, 3, 4])


def test_process_killed_in_submit_before_commit_loses_only_that_label(tmp_path):
    path = _store_killed_mid_write(tmp_path, _submit_killed_before_commit)
    item_id, token = json.load(open(path + ".token"))
    store = LabelStore(path)
    try:
        assert_consistent(path, 1)
        assert store.label_count() == 0
        resumed = store.next_item("alice")  # the unsubmitted item is still alice's, and can be saved
        assert (resumed.item_id, resumed.token) == (item_id, token)
        store.submit("alice", item_id, token, [1, 2, 3, 4])
        assert store.label_count() == 1
    finally:
        store.close()


def _label_forever(db, fd):
    store = LabelStore(db, labels_per_item=3)
    for i in range(10**6):
        who = f"k{i % 7}"
        a = store.next_item(who)
        if a is not None:
            saved = store.submit(who, a.item_id, a.token, [1, 2, 3, 4])
            os.write(fd, json.dumps(saved["label_id"]).encode() + b"\n")  # "the page says saved"


def test_labels_confirmed_before_a_sigkill_are_all_there(db):
    _fill(db, 300, 3)
    read_fd, write_fd = os.pipe()
    proc = multiprocessing.get_context("fork").Process(target=_label_forever, args=(db, write_fd))
    proc.start()
    time.sleep(0.5 + random.random() * 0.5)  # kill at an arbitrary point of a submit
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    os.close(write_fd)
    with os.fdopen(read_fd) as fh:
        confirmed = [int(line) for line in fh.read().splitlines()]
    assert confirmed, "the child saved nothing before it was killed"
    assert_consistent(db, 3)
    stored = {label_id for label_id, _, _ in label_rows(db)}
    assert set(confirmed) <= stored and len(stored) - len(confirmed) <= 1  # at most the one in flight


# --- commands: rlhf users / export / label ---------------------------------------------------


def test_cli_users_and_export(tmp_path, monkeypatch, capsys):
    import io

    from rlhf.cli import main

    db = str(tmp_path / "cli.db")
    assert main(["users", "add", "alice", "--db", db, "--role", "admin", "--password", "pw1"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("from-a-pipe\n"))  # not a tty: one line of stdin
    assert main(["users", "add", "bob", "--db", db]) == 0
    assert main(["users", "list", "--db", db]) == 0
    assert capsys.readouterr().out.splitlines()[-2:] == ["alice\tadmin", "bob\tlabeler"]
    assert main(["users", "list", "--db", str(tmp_path / "missing.db")]) == 2
    assert main(["users", "add", "carol", "--db", db, "--role", "root", "--password", "x"]) == 2  # argparse: exit 2
    store = LabelStore(db)
    try:
        assert store.authenticate("bob", "from-a-pipe")
        store.add_items(candidates(2))
        for flags in ([], ["not_rankable"]):
            a = store.next_item("bob")
            store.submit("bob", a.item_id, a.token, [1, 2, 2, 3], flags)
    finally:
        store.close()
    capsys.readouterr()
    assert main(["export", "--db", db, "--rankings", str(tmp_path / "r.jsonl"), "--pairs", str(tmp_path / "p.jsonl")]) == 0
    out = capsys.readouterr().out
    assert "1 rankings" in out and "5 pairs" in out and "1 flagged labels left out" in out
    assert main(["export", "--db", db, "--include_flagged", "--rankings", str(tmp_path / "r.jsonl")]) == 0
    assert len((tmp_path / "r.jsonl").read_text().splitlines()) == 2
    assert main(["export", "--db", db]) == 2  # nothing asked for: a clear error
    assert "nothing to export" in capsys.readouterr().err


def test_run_label_loads_candidates_and_users_then_launches(tmp_path, monkeypatch):
    import sys
    import types

    from labeling_app.cli import LabelConfig, run_label
    from rlhf.cli import parse_config
    from rlhf.data import write_jsonl

    launched = {}
    fake = types.ModuleType("labeling_app.app")
    fake.launch = lambda store, config, **kw: launched.update(store=store, config=config)
    monkeypatch.setitem(sys.modules, "labeling_app.app", fake)
    write_jsonl(tmp_path / "cands.jsonl", candidates(3))
    (tmp_path / "users.csv").write_text("alice,pw,admin\nbob,pw\n")
    (tmp_path / "g.md").write_text("<!-- version: 7 -->\n# Rules\n")
    config = parse_config(LabelConfig, ["--db", str(tmp_path / "l.db"), "--candidates", str(tmp_path / "cands.jsonl"),
                                        "--users", str(tmp_path / "users.csv"), "--labels_per_item", "2",
                                        "--lease_minutes", "0.5", "--guidelines", str(tmp_path / "g.md")], "rlhf label", "")
    run_label(config)
    store = launched["store"]
    assert launched["config"] is config and store.item_count() == 3 and len(store.users()) == 2
    assert (store.labels_per_item, store.lease_seconds, store.guideline_version) == (2, 30.0, "7")
    a = store.next_item("bob")
    store.submit("bob", a.item_id, a.token, [1, 2, 3, 4])
    assert store.rankings()[0]["guideline_version"] == "7"
    run_label(config)  # a restart: the same candidates add nothing
    assert launched["store"].item_count() == 3
