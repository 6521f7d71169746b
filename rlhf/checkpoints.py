"""One way to make checkpoints crash-safe, for every stage: the file that marks a checkpoint complete
is written last and atomically, and a resume takes the newest *complete* checkpoint.

A process killed during a save leaves a folder holding some files but not the marker; such a folder
is skipped (and, on resume, removed with a message, so it is not later mistaken for a newer
checkpoint). Markers: PPO's `trainer.pt`, the reward stage's single `state.pt` (written atomically,
so it is its own marker), and Hugging Face Trainer's `trainer_state.json` (SFT, written after the
weights, optimizer, scheduler and random states; it must also parse, as it is not written
atomically).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

PREFIX = "checkpoint-"


def atomic_save(obj, path: str | Path) -> Path:
    """`torch.save` to a temporary name, then rename: a reader never sees half a file."""
    import torch

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)
    return path


def is_complete(folder: Path, marker: str) -> bool:
    """The marker file exists (and parses, for a JSON marker)."""
    file = folder / marker
    if not file.is_file():
        return False
    if file.suffix == ".json":
        try:
            json.loads(file.read_text())
        except (ValueError, OSError):
            return False
    return True


def checkpoint_folders(root: str | Path) -> list[Path]:
    """`checkpoint-N` folders under `root`, oldest (smallest N) first."""
    root = Path(root)
    found = [p for p in root.glob(f"{PREFIX}*") if p.is_dir() and p.name[len(PREFIX):].isdigit()] if root.is_dir() else []
    return sorted(found, key=lambda p: int(p.name[len(PREFIX):]))


def complete_checkpoints(root: str | Path, marker: str) -> list[Path]:
    """Complete `checkpoint-N` folders under `root`, oldest first."""
    return [p for p in checkpoint_folders(root) if is_complete(p, marker)]


def newest_complete_checkpoint(root: str | Path, marker: str, stage: str = "rlhf") -> Path | None:
    """The newest complete checkpoint under `root`, or None. Incomplete folders newer than it (a save
    cut off by a kill) are removed, with a message naming them."""
    complete = complete_checkpoints(root, marker)
    newest = complete[-1] if complete else None
    newest_step = int(newest.name[len(PREFIX):]) if newest else -1
    for folder in checkpoint_folders(root):
        if not is_complete(folder, marker) and int(folder.name[len(PREFIX):]) > newest_step:
            print(f"[{stage}] {folder} is incomplete (no {marker}: its save was cut off); removed it and "
                  f"resume from {newest or 'the start'}")
            shutil.rmtree(folder, ignore_errors=True)
    return newest
