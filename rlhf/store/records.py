"""The labeling store's records and the checks on what a labeler submits (pure, no database)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

FLAGS = ("unsafe", "low_quality", "not_rankable")
MAX_COMMENT = 4000


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
    messages: list | None = None  # the whole conversation when it is more than the user's `prompt`

    @property
    def conversation(self):
        """The item's conversation: its messages, or the prompt string (one user message)."""
        from rlhf.data.conversation import normalize_prompt

        return normalize_prompt(self.messages) if self.messages else self.prompt

    @property
    def earlier_turns(self) -> list[dict]:
        """The messages before the last user message (system prompt, earlier turns), for display."""
        from rlhf.data.conversation import earlier_turns

        return earlier_turns(self.messages) if self.messages else []



def guideline_version(path: str | Path) -> str:
    """The version a guidelines Markdown file declares (`<!-- version: X -->` or a `Version: X`
    line), else the first 12 hex digits of its sha256, so every edit of the file is a new version.
    A file that is not UTF-8 raises `rlhf.data.DataError` naming the line."""
    from rlhf.data import read_text

    text = read_text(path)
    for pattern in (r"<!--\s*version:\s*(.+?)\s*-->", r"^[\s>*_#-]*version[*_]*\s*:\s*[*_]*\s*(\S+?)[*_]*\s*$"):
        match = re.search(pattern, text, flags=re.IGNORECASE | re.MULTILINE)
        if match:
            return match.group(1).strip()
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


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



def check_text(value: Any, name: str, limit: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise StoreError(f"the {name} must be text")
    if len(value) > limit:
        raise StoreError(f"the {name} is too long ({len(value)} characters; at most {limit})")
    return value

