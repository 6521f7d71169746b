"""Checkpoints that resume exactly: a run killed after step N and resumed ends with the same
weights as one that never stopped (CPU, fixed seed).

A checkpoint holds what changes during training and nothing else: the trainable tensors (LoRA,
value head, critic; or all weights with full fine-tuning), the optimizer's state, the KL
coefficient, the step, and each process's random generators (sampling draws from them). The
frozen base and the reference are rebuilt from the config. Prompt order and minibatch order are
functions of (seed, step), so they need no saving.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import torch

from rlhf.adapters import load_trainable_state, trainable_state
from rlhf.checkpoints import PREFIX, atomic_save, complete_checkpoints
from rlhf.stages import ConfigError

MARKER = "trainer.pt"  # written last, atomically (rlhf.checkpoints)


def checkpoint_dirs(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints, oldest first (a folder without `trainer.pt` was cut off mid-write)."""
    return complete_checkpoints(Path(output_dir) / "checkpoints", MARKER)


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    dirs = checkpoint_dirs(output_dir)
    return dirs[-1] if dirs else None


def rng_state() -> dict:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    try:
        import numpy as np

        state["numpy"] = np.random.get_state()
    except ImportError:
        pass
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if "numpy" in state:
        import numpy as np

        np.random.set_state(state["numpy"])


def save_checkpoint(output_dir, step: int, module, optimizer, extra: dict, accelerator, keep: int) -> Path:
    """Write checkpoint-{step}; every process writes its random state, the main one the rest.
    `trainer.pt` is written last, so a checkpoint without it is incomplete and ignored."""
    path = Path(output_dir) / "checkpoints" / f"{PREFIX}{step}"
    if accelerator.is_main_process:
        path.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    torch.save(rng_state(), path / f"rng_{accelerator.process_index}.pt")
    accelerator.wait_for_everyone()
    sharded = _sharded(module)
    if sharded:  # FSDP2: full tensors gathered to the main process, the same files as unsharded
        from rlhf import fsdp

        names = {name for name, p in module.named_parameters() if p.requires_grad}
        weights = {k: v for k, v in fsdp.full_state_dict(module).items() if k in names}
        optim_state = fsdp.full_optimizer_state(module, optimizer)
    if accelerator.is_main_process:
        torch.save(weights if sharded else trainable_state(module), path / "trainable.pt")
        torch.save(optim_state if sharded else optimizer.state_dict(), path / "optimizer.pt")
        atomic_save({"step": step, **extra}, path / MARKER)
        for old in checkpoint_dirs(output_dir)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return path


def load_checkpoint(path: Path, module, optimizer, accelerator) -> dict:
    """Restore trainable tensors, optimizer and this process's random state. Returns trainer.pt."""
    if _sharded(module):
        _load_sharded(path, module, optimizer, accelerator)
        return _load_rng_and_trainer(path, accelerator)
    load_trainable_state(module, torch.load(path / "trainable.pt", map_location="cpu"), path)
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location="cpu"))
    return _load_rng_and_trainer(path, accelerator)


def _load_rng_and_trainer(path: Path, accelerator) -> dict:
    rng_file = path / f"rng_{accelerator.process_index}.pt"
    if not rng_file.exists():
        raise ConfigError(f"{path} was written by fewer processes (no {rng_file.name}): resume with the same number")
    set_rng_state(torch.load(rng_file, map_location="cpu", weights_only=False))
    return torch.load(path / "trainer.pt", map_location="cpu", weights_only=False)


def _sharded(module) -> bool:
    from rlhf.fsdp import is_sharded

    return is_sharded(module)


def _load_sharded(path: Path, module, optimizer, accelerator) -> None:
    """FSDP2: the main process reads the full tensors, every process loads its shards of them."""
    from rlhf import fsdp

    main = accelerator.is_main_process
    saved = torch.load(path / "trainable.pt", map_location="cpu") if main else {}
    expected = {name for name, p in module.named_parameters() if p.requires_grad}
    if main and set(saved) != expected:
        raise ConfigError(f"{path} does not fit this run (different policy_train, critic or layout?): "
                         f"missing {sorted(expected - set(saved))[:3]}, unexpected {sorted(set(saved) - expected)[:3]}")
    fsdp.load_full_state_dict(module, saved)
    optim_state = torch.load(path / "optimizer.pt", map_location="cpu", weights_only=False) if main else {}
    fsdp.load_full_optimizer_state(module, optimizer, optim_state)
