"""Finding the transformer blocks of a causal LM, their sub-blocks and the final norm.

Names differ between architectures (Llama `model.layers[i].mlp`, GPT-2 `transformer.h[i].mlp`,
GPT-NeoX `gpt_neox.layers[i].mlp`), so we look for the repeated blocks by shape, then for the
sub-block by the few names the common architectures use.
"""

from __future__ import annotations

from torch import nn

SUB_BLOCK_NAMES = {
    "mlp": ("mlp", "feed_forward", "ffn", "block_sparse_moe"),
    "attn": ("self_attn", "attn", "attention", "self_attention"),
}
FINAL_NORM_NAMES = ("norm", "ln_f", "final_layernorm", "final_layer_norm", "norm_f")


def find_blocks(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """(dotted name, ModuleList) of the repeated transformer blocks: the longest ModuleList,
    preferring one whose length equals `config.num_hidden_layers`."""
    config = getattr(model, "config", None)
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    n_layers = getattr(text_config, "num_hidden_layers", None)
    lists = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.ModuleList) and len(m)]
    if not lists:
        raise ValueError(f"{type(model).__name__}: found no list of transformer blocks")
    exact = [item for item in lists if len(item[1]) == n_layers]
    return max(exact or lists, key=lambda item: len(item[1]))


def find_sub_block(block: nn.Module, placement: str) -> nn.Module:
    """The attention (`placement="attn"`) or MLP (`"mlp"`) sub-module of one transformer block."""
    for name in SUB_BLOCK_NAMES[placement]:
        module = getattr(block, name, None)
        if isinstance(module, nn.Module):
            return module
    children = ", ".join(name for name, _ in block.named_children())
    raise ValueError(
        f"no {placement} sub-block in {type(block).__name__} (looked for {', '.join(SUB_BLOCK_NAMES[placement])}; "
        f"it has {children})"
    )


def find_final_norm(model: nn.Module, blocks_name: str) -> nn.Module | None:
    """The norm applied after the last block: a sibling of the block list with a known name."""
    parent = model.get_submodule(blocks_name.rpartition(".")[0]) if "." in blocks_name else model
    for name in FINAL_NORM_NAMES:
        module = getattr(parent, name, None)
        if isinstance(module, nn.Module):
            return module
    return None
