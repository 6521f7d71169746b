"""`rlhf label`, `rlhf users` and `rlhf export`: the labeling app's commands.

    rlhf users add alice --db labels.db --role admin       # asks for the password
    rlhf label --db labels.db --candidates candidates.jsonl --labels_per_item 3
    rlhf export --db labels.db --rankings rankings.jsonl --pairs pairs.jsonl
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from rlhf.store import LabelStore, StoreError, guideline_version


def _default_guidelines() -> Optional[str]:
    from rlhf.data import builtin

    try:
        return str(builtin("guidelines"))
    except FileNotFoundError:
        return None


@dataclass
class LabelConfig:
    """Serve the labeling app: labelers log in, rank each prompt's completions (ties allowed), skip
    or flag, and resume where they left off; admins see progress and agreement and export."""

    db: str = field(default="labels.db", metadata={"help": "Labeling database: a SQLite file (created if missing) "
                                                            "or a postgresql:// URL for a team beyond one machine."})
    candidates: Optional[str] = field(default=None, metadata={"help": "Candidates to label (rows of id, prompt, "
                                                                      "completions, as `rlhf sample` writes); ids "
                                                                      "already in the database are skipped."})
    users: Optional[str] = field(default=None, metadata={"help": "Users file to load: CSV lines name,password[,role] "
                                                                 "or JSONL {name, password, role}; role is labeler or admin."})
    port: int = field(default=7860, metadata={"help": "Port to serve on."})
    host: str = field(default="127.0.0.1", metadata={"help": "Address to serve on (0.0.0.0 to reach it from other machines)."})
    labels_per_item: int = field(default=1, metadata={"help": "N: how many distinct labelers rank each item."})
    lease_minutes: float = field(default=15.0, metadata={"help": "Minutes an item stays reserved for the labeler it was "
                                                                 "shown to; after that, another labeler may take it."})
    guidelines: Optional[str] = field(default_factory=_default_guidelines,
                                      metadata={"help": "Labeling guidelines (Markdown) shown to labelers; its version "
                                                        "(`<!-- version: X -->` or a hash) is stored with every label. "
                                                        "Default: the built-in guidelines."})


@dataclass
class ExportConfig:
    """Write the labels of a labeling database as rankings and/or TRL preference pairs."""

    db: str = field(default="labels.db", metadata={"help": "Labeling database (SQLite file or postgresql:// URL)."})
    rankings: Optional[str] = field(default=None, metadata={"help": "Write rankings JSONL here: one row per label with "
                                                                    "prompt, completions, ranking tiers, labeler, flags, "
                                                                    "seconds, item_id, guideline_version."})
    pairs: Optional[str] = field(default=None, metadata={"help": "Write TRL pairs JSONL here (chosen, rejected, and "
                                                                 "prompt in the explicit form; item_id, tier_gap, labeler): "
                                                                 "every strictly ordered pair (a tie orders none)."})
    pairs_form: str = field(default="explicit", metadata={"help": "TRL layout of --pairs: 'explicit' (a prompt column) or "
                                                                  "'implicit' (chosen/rejected hold the whole conversation). "
                                                                  "Message lists when a context has several turns or the form "
                                                                  "is implicit, else strings."})
    include_flagged: bool = field(default=False, metadata={"help": "Also export labels flagged unsafe, low quality or "
                                                                   "not rankable."})


def open_store(db: str, labels_per_item: int = 1, lease_minutes: float = 15.0, guidelines: str | None = None,
               must_exist: bool = False) -> LabelStore:
    from rlhf.data import DataError

    is_url = "://" in db and not db.startswith("sqlite:///")
    if must_exist and not is_url and not Path(db.removeprefix("sqlite:///")).is_file():
        raise DataError(db, None, None, "no labeling database here")
    version = ""
    if guidelines:
        if not Path(guidelines).is_file():
            raise DataError(guidelines, None, None, "guidelines file not found")
        version = guideline_version(guidelines)
    try:
        return LabelStore(db, labels_per_item=labels_per_item, lease_seconds=lease_minutes * 60, guideline_version=version)
    except StoreError as err:
        raise DataError(db, None, None, str(err)) from None


def run_label(config: LabelConfig) -> None:
    """Step 1: open the database; 2: load candidates and users; 3: serve the app until stopped."""
    from rlhf.data import load_candidates

    store = open_store(config.db, config.labels_per_item, config.lease_minutes, config.guidelines)
    if config.candidates:
        candidates = load_candidates(config.candidates)
        added = store.add_items(candidates)
        known = f", {len(candidates) - added} already in the database (skipped)" if added < len(candidates) else ""
        print(f"{config.candidates}: {added} new items{known} ({store.item_count()} in the database)")
    if config.users:
        print(f"{config.users}: {store.load_users_file(config.users)} users loaded")
    if not store.users():
        print("no users yet: add one with `rlhf users add NAME --db DB --role admin`", file=sys.stderr)
    if store.item_count() == 0:
        print("no items yet: pass --candidates FILE (from `rlhf sample`)", file=sys.stderr)
    from labeling_app.app import launch

    launch(store, config)


def run_export(config: ExportConfig) -> None:
    from rlhf.data import DataError

    if not config.rankings and not config.pairs:
        raise DataError(config.db, None, None, "nothing to export: give --rankings PATH and/or --pairs PATH")
    store = open_store(config.db, must_exist=True)
    if config.rankings:
        n = store.export_rankings(config.rankings, include_flagged=config.include_flagged)
        print(f"{config.rankings}: {n} rankings")
    if config.pairs:
        n = store.export_pairs(config.pairs, include_flagged=config.include_flagged, form=config.pairs_form)
        print(f"{config.pairs}: {n} pairs")
    held = store.progress()["flagged"]
    if held and not config.include_flagged:
        print(f"{held} flagged labels left out (--include_flagged to export them)")


def _read_password(given: str | None) -> str:
    import getpass

    if given is not None:
        return given
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if first != getpass.getpass("again: "):
            raise StoreError("the two passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def users_main(argv: list[str]) -> int:
    """`rlhf users add NAME --db DB [--role admin|labeler] [--password PW]` and `rlhf users list --db DB`.
    Without --password, the password is asked for (or read from stdin's first line when piped)."""
    parser = argparse.ArgumentParser(prog="rlhf users", description="Add or list labeling-app users.", allow_abbrev=False)
    sub = parser.add_subparsers(dest="action", required=True)
    add = sub.add_parser("add", help="add a user, or change an existing user's password and role", allow_abbrev=False)
    add.add_argument("name")
    add.add_argument("--db", default="labels.db", help="labeling database (default labels.db)")
    add.add_argument("--role", default="labeler", choices=["labeler", "admin"])
    add.add_argument("--password", default=None, help="the password (default: ask, or read one line from stdin)")
    show = sub.add_parser("list", help="list users and their roles", allow_abbrev=False)
    show.add_argument("--db", default="labels.db", help="labeling database (default labels.db)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, or a usage error argparse already printed
        return int(exit_.code or 0)
    from rlhf.data import DataError

    try:
        store = open_store(args.db, must_exist=args.action == "list")
        if args.action == "add":
            store.add_user(args.name, _read_password(args.password), args.role)
            print(f"{args.name}: {args.role} saved in {args.db}")
        else:
            for user in store.users():
                print(f"{user.name}\t{user.role}")
    except (StoreError, DataError) as err:
        print(f"rlhf users: error: {err}", file=sys.stderr)
        return 2
    return 0
