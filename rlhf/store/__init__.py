"""The labeling store: users, items, leases, labels and their history in one SQL database
(SQLite in WAL mode by default, PostgreSQL by URL).

Shared infrastructure: the sampling stage and the simulated labelers write to it, the browser app
(`labeling_app`) reads and writes through it, and it knows nothing of either. Its parts:

- `records`: the rows the store hands out (`User`, `Assignment`) and the checks on a submission;
- `backends`: the SQL schema, SQLite and PostgreSQL;
- `writer`: group commit (one writer thread per process);
- `users`: names, roles, salted scrypt passwords, the users file;
- `agreement`: inter-labeler agreement (pure functions);
- `store`: `LabelStore`, the one class the rest of the toolkit uses.

Importing this package loads no database driver.
"""

from __future__ import annotations

from rlhf._lazy import lazy_exports

_EXPORTS = {
    "LabelStore": "rlhf.store.store",
    "StoreError": "rlhf.store.records",
    "User": "rlhf.store.records",
    "Assignment": "rlhf.store.records",
    "FLAGS": "rlhf.store.records",
    "check_ranks": "rlhf.store.records",
    "ranks_to_tiers": "rlhf.store.records",
    "guideline_version": "rlhf.store.records",
    "ROLES": "rlhf.store.users",
    "hash_password": "rlhf.store.users",
    "verify_password": "rlhf.store.users",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
