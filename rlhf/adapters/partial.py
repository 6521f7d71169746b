"""Partial fine-tuning (train the last N transformer blocks + the final norm) and full fine-tuning.

Both change the base weights themselves, so they save the whole model (`save_pretrained`, loadable
as any model folder) plus a small `rlhf_adapter.json` recording how it was trained.

Tied embeddings: with `train_head=True` on a model whose `lm_head` shares its matrix with the input
embedding (SmolLM2, and our tiny test models), training the head would silently train the embedding
too, which partial fine-tuning promises to keep frozen. We untie them: the head gets its own copy of
the matrix (vocab x hidden more parameters, 28M for SmolLM2-135M) and `config.tie_word_embeddings`
becomes False, so the saved folder reloads untied.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from rlhf.adapters.blocks import find_blocks, find_final_norm

MARK_ATTR = "rlhf_adapter"  # on the model: {"adapter": "partial" | "full", ...settings}
RECORD_NAME = "rlhf_adapter.json"


def apply_partial(model: nn.Module, layers: int, train_head: bool = False) -> nn.Module:
    """Freeze everything, then unfreeze the last `layers` blocks, the final norm and (optionally) the head."""
    blocks_name, blocks = find_blocks(model)
    if not 0 <= layers <= len(blocks):
        raise ValueError(f"partial_layers={layers}: the model has {len(blocks)} transformer blocks (use 0..{len(blocks)})")
    if layers == 0 and not train_head:
        raise ValueError("partial_layers=0 without partial_train_head leaves nothing to train")
    model.requires_grad_(False)
    for block in list(blocks)[len(blocks) - layers :]:
        block.requires_grad_(True)
    norm = find_final_norm(model, blocks_name)
    if norm is not None and layers > 0:
        norm.requires_grad_(True)
    if train_head:
        untie_head(model).requires_grad_(True)
    setattr(model, MARK_ATTR, {"adapter": "partial", "partial_layers": layers, "partial_train_head": train_head})
    return model


def untie_head(model: nn.Module) -> nn.Module:
    """Give the output head its own weight when it shares the input embedding's. Returns the head."""
    head, embed = model.get_output_embeddings(), model.get_input_embeddings()
    if head is None:
        raise ValueError(f"{type(model).__name__} has no output head to train")
    if embed is not None and head.weight is embed.weight:
        head.weight = nn.Parameter(head.weight.detach().clone())
        model.config.tie_word_embeddings = False
        text_config = model.config.get_text_config()
        if text_config is not model.config:
            text_config.tie_word_embeddings = False
    return head


def apply_full(model: nn.Module) -> nn.Module:
    model.requires_grad_(True)
    setattr(model, MARK_ATTR, {"adapter": "full"})
    return model


def save(model: nn.Module, path: str | Path) -> None:
    """The whole model (`save_pretrained`) plus `rlhf_adapter.json`."""
    path = Path(path)
    model.save_pretrained(path)
    record = {**getattr(model, MARK_ATTR), "base_model_name_or_path": getattr(model.config, "_name_or_path", None) or None}
    (path / RECORD_NAME).write_text(json.dumps(record, indent=2) + "\n")


def load(model: nn.Module, path: str | Path, is_trainable: bool = False) -> nn.Module:
    """Copy the weights saved in `path` into `model` (same architecture), in place."""
    path = Path(path)
    record = json.loads((path / RECORD_NAME).read_text())
    if record["adapter"] == "partial":
        apply_partial(model, record["partial_layers"], record["partial_train_head"])
    else:
        apply_full(model)
    saved = _read_weights(path)
    result = model.load_state_dict(saved, strict=False)
    # A tied head is absent from the saved file and present in the state dict: not missing.
    loaded = {p.data_ptr() for k, p in model.state_dict().items() if k in saved}
    missing = [k for k in result.missing_keys if model.state_dict()[k].data_ptr() not in loaded]
    if missing or result.unexpected_keys:
        raise ValueError(f"{path}: weights do not fit this model: missing {missing[:3]}, unexpected {result.unexpected_keys[:3]}")
    if not is_trainable:
        model.requires_grad_(False)
    return model


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    index = path / "model.safetensors.index.json"
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.exists() else ["model.safetensors"]
    state: dict[str, torch.Tensor] = {}
    for name in files:
        state.update(load_file(str(path / name)))
    return state
