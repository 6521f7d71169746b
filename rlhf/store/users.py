"""Labeling-app users: names, roles, salted scrypt passwords and the users file (CSV or JSONL)."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from pathlib import Path
from typing import Iterator

ROLES = ("labeler", "admin")
_NAME = re.compile(r"^[A-Za-z0-9_.@+-]{1,64}$")
# scrypt at n=2**14, r=8 costs ~16 MiB and tens of milliseconds: paid once per login, not per submit.
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def check_name(name) -> bool:
    """True when `name` is a valid user name (1-64 letters, digits or . _ @ + -)."""
    return isinstance(name, str) and bool(_NAME.match(name))


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


def read_users_file(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, {"name", "password", "role"}) for each user of a CSV or JSONL users file,
    validated: a bad row raises DataError naming the file, the line and the field."""
    import csv

    from rlhf.data import DataError, decode_lines, json_line

    if not path.is_file():
        raise DataError(path, None, None, "users file not found")
    lines = [line for _, line in decode_lines(path)]
    first = next((ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")), "")
    as_json = path.suffix == ".jsonl" or first.startswith("{")
    for n, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if as_json:
            row = json_line(path, n, text)
        else:
            parts = [p.strip() for p in next(csv.reader([text]))]
            if [p.lower() for p in parts[:2]] == ["name", "password"]:
                continue  # header line
            if len(parts) not in (2, 3):
                raise DataError(path, n, None, "expected name,password[,role]")
            row = dict(zip(("name", "password", "role"), parts))
        row = {"name": row.get("name"), "password": row.get("password"), "role": row.get("role") or "labeler"}
        if not check_name(row["name"]):
            raise DataError(path, n, "name", "must be 1-64 letters, digits or . _ @ + -")
        if not isinstance(row["password"], str) or not row["password"]:
            raise DataError(path, n, "password", "is empty")
        if row["role"] not in ROLES:
            raise DataError(path, n, "role", f"{row['role']!r} must be one of {', '.join(ROLES)}")
        yield n, row


DUMMY_HASH = "scrypt$16384$8$1$" + "00" * 16 + "$" + "00" * 32
