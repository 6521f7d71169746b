"""What an SFT output folder holds, and how every stage gets the SFT policy from it.

One answer for PPO, DPO, the reward stage, sampling and eval. `sft_output_kind(name)` reads the
folder's files only (no model loads); `load_sft_output` loads the base and puts the adapter on top,
unmerged, so each stage decides what to do with it:

| kind              | the folder holds                                          | PPO                 | DPO             | reward model |
|-------------------|-----------------------------------------------------------|---------------------|-----------------|--------------|
| plain             | a whole model (base, partial/full SFT), hub id, GGUF      | fresh LoRA on it    | fresh LoRA      | as is        |
| mergeable         | a PEFT adapter that folds into the weights (LoRA, DoRA, IA3) | merged, fresh LoRA | merged, fresh LoRA | merged    |
| prompt-learning   | a PEFT soft prompt (prompt / prefix tuning)               | trainable copy      | trained further | error        |
| series / parallel | our bottleneck adapter                                    | trainable copy      | frozen, fresh LoRA | error     |

    model = load_causal_lm("runs/sft")              # any policy: plain folder or adapter folder
    model, kind = load_sft_output("runs/sft", adapter_name="reference")
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from rlhf.models import adapter_base, load_plain_causal_lm, load_tokenizer, pick_device, pick_dtype

PLAIN = "plain"
MERGEABLE = "mergeable"
PROMPT_LEARNING = "prompt-learning"
SFT_OUTPUT_KINDS = (PLAIN, MERGEABLE, PROMPT_LEARNING, "series", "parallel")
# PEFT types whose update merge_and_unload folds into the base weights (DoRA and rsLoRA are LORA).
MERGEABLE_PEFT = ("LORA", "IA3", "ADALORA", "LOHA", "LOKR")
# PEFT types that prepend virtual tokens: nothing to merge, and the adapter cannot be switched off.
PROMPT_LEARNING_PEFT = ("PROMPT_TUNING", "PREFIX_TUNING", "P_TUNING", "MULTITASK_PROMPT_TUNING")


def adapter_type(path: str | os.PathLike) -> str | None:
    """'series'/'parallel', a PEFT type ('LORA', 'PROMPT_TUNING', ...) or None for a folder without
    `adapter_config.json` (a model folder; partial/full SFT saves whole models)."""
    file = Path(path) / "adapter_config.json"
    if not file.exists():
        return None
    config = json.loads(file.read_text())
    return config.get("rlhf_adapter") or str(config.get("peft_type") or "").upper() or None


def sft_output_kind(name: str | os.PathLike | None) -> str:
    """One of `SFT_OUTPUT_KINDS` for a model name or SFT output folder (see the module table).
    Raises ValueError for an adapter type this toolkit does not know how to hold."""
    kind = adapter_type(name) if name else None
    if kind is None:
        return PLAIN
    if kind in ("series", "parallel"):
        return kind
    if kind in MERGEABLE_PEFT:
        return MERGEABLE
    if kind in PROMPT_LEARNING_PEFT:
        return PROMPT_LEARNING
    raise ValueError(f"{name}: adapter type {kind!r} is not supported (LoRA, DoRA, rsLoRA, QLoRA, IA3, prompt or "
                     "prefix tuning, series, parallel, or a whole model folder)")


def load_sft_output(name: str | os.PathLike | None, device: str | None = None, dtype=None,
                    adapter_name: str = "default"):
    """(model, kind): the SFT policy as its stage saved it, the adapter (if any) loaded frozen and
    unmerged under `adapter_name` on its base. kind is `sft_output_kind(name)`."""
    kind = sft_output_kind(name)  # first: an unsupported adapter fails before any weights load
    return load_causal_lm(name, device=device, dtype=dtype, adapter_name=adapter_name), kind


def load_causal_lm(name: str | os.PathLike | None = None, device: str | None = None, dtype=None,
                   adapter_name: str = "default", **kwargs):
    """Any policy as one model: a folder, hub id, GGUF file, the embedded default (None), or a
    folder holding a PEFT or rlhf adapter (its base loaded, the adapter on top, frozen, active
    under `adapter_name`). Raises `rlhf.models.ModelNotFoundError` for a name that is none of those."""
    path = Path(str(name)) if name else None
    if path is None or not (path / "adapter_config.json").exists():
        return load_plain_causal_lm(name, device=device, dtype=dtype, **kwargs)
    from rlhf.adapters import load_adapter

    device = pick_device(device)
    base = load_causal_lm(adapter_base(path), device=device, dtype=dtype or pick_dtype(device), **kwargs)
    return load_adapter(base, path, adapter_name=adapter_name)


def load_model_and_tokenizer(name: str | os.PathLike | None = None, device: str | None = None, dtype=None):
    """`(load_causal_lm(name), load_tokenizer(name))`."""
    return load_causal_lm(name, device=device, dtype=dtype), load_tokenizer(name)
