"""Series and parallel bottleneck adapters on a transformers causal LM (LLM-Adapters, Hu et al. 2023).

The model stays the same `PreTrainedModel` object (so TRL's SFTTrainer, `generate` and Trainer
checkpoints treat it as any model); each adapted sub-block gets a child `bottleneck` holding the
named adapters and a forward hook that adds the active one's output. Several named adapters can
live in one model (PPO keeps a frozen reference and a trainable policy): `set_active_adapter`
switches between them, `disable_adapter()` gives the base model back.

    inject_adapter(model, BottleneckConfig(kind="series"), "policy")
    save(model, "out/")                 # adapter_config.json + adapter_model.safetensors
    load(fresh_base, "out/", "policy")
"""

from __future__ import annotations

import types
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from rlhf.adapters.blocks import find_blocks, find_sub_block
from rlhf.adapters.bottleneck.config import CONFIG_NAME, WEIGHTS_NAME, BottleneckConfig
from rlhf.adapters.bottleneck.layer import BottleneckAdapter, BottleneckLayer

CONFIGS_ATTR = "rlhf_bottleneck_configs"  # on the model: {adapter name: BottleneckConfig}
CHILD = "bottleneck"  # name of the BottleneckLayer under each adapted sub-block


def is_bottleneck_model(model) -> bool:
    return bool(getattr(model, CONFIGS_ATTR, None))


def bottleneck_layers(model: nn.Module) -> list[tuple[str, BottleneckLayer]]:
    """(dotted name, layer) of every BottleneckLayer in the model."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, BottleneckLayer)]


def inject_adapter(
    model: nn.Module, config: BottleneckConfig, adapter_name: str = "default", trainable: bool = True
) -> nn.Module:
    """Add one named adapter to every transformer block and make it the active one.

    `trainable=True` makes its tensors the only trainable ones (as PEFT's `set_adapter`);
    `trainable=False` adds it frozen and leaves other adapters' flags alone (a PPO reference)."""
    if not adapter_name.isidentifier():
        raise ValueError(f"adapter name {adapter_name!r} must be a Python identifier (it becomes a module name)")
    configs = dict(getattr(model, CONFIGS_ATTR, None) or {})
    if adapter_name in configs:
        raise ValueError(f"the model already has a bottleneck adapter named {adapter_name!r}")
    # Step 1: base weights frozen; earlier adapters too when the new one is the one to train.
    keep = set() if trainable else {id(p) for _, layer in bottleneck_layers(model) for p in layer.parameters()}
    for p in model.parameters():
        if id(p) not in keep:
            p.requires_grad_(False)
    # Step 2: one adapter per block, on the base's device, in fp32 unless the base is fp64.
    hidden = model.config.get_text_config().hidden_size
    _, blocks = find_blocks(model)
    for block in blocks:
        sub_block = find_sub_block(block, config.placement)
        layer = _layer_of(sub_block)
        ref = next(sub_block.parameters())
        dtype = torch.float64 if ref.dtype == torch.float64 else torch.float32
        adapter = BottleneckAdapter(hidden, config.bottleneck_size, config.kind, config.nonlinearity, config.scaling)
        layer[adapter_name] = adapter.to(device=ref.device, dtype=dtype).requires_grad_(trainable)
    # Step 3: record the config, activate, and give the model PeftModel's `disable_adapter()`.
    if config.base_model_name_or_path is None:
        config = BottleneckConfig(**{**config.__dict__, "base_model_name_or_path": _base_name(model)})
    configs[adapter_name] = config
    setattr(model, CONFIGS_ATTR, configs)
    model.disable_adapter = types.MethodType(disable_adapter, model)
    set_active_adapter(model, adapter_name)
    return model


def _layer_of(sub_block: nn.Module) -> BottleneckLayer:
    """The sub-block's BottleneckLayer, created and hooked on first use."""
    layer = getattr(sub_block, CHILD, None)
    if layer is None:
        layer = BottleneckLayer()
        sub_block.add_module(CHILD, layer)
        sub_block.register_forward_hook(layer.hook, with_kwargs=True)
    return layer


def _base_name(model) -> str | None:
    return getattr(model.config, "_name_or_path", None) or getattr(model, "name_or_path", None) or None


def set_active_adapter(model: nn.Module, adapter_name: str | None) -> None:
    """Make `adapter_name` the adapter every forward pass uses; None runs the base model.
    Trainability (requires_grad) is not touched: which adapter computes and which one learns are
    separate choices."""
    configs = getattr(model, CONFIGS_ATTR, None) or {}
    if adapter_name is not None and adapter_name not in configs:
        raise ValueError(f"no bottleneck adapter named {adapter_name!r}; the model has {sorted(configs)}")
    for _, layer in bottleneck_layers(model):
        layer.active_adapter = adapter_name


def active_adapter(model: nn.Module) -> str | None:
    layers = bottleneck_layers(model)
    return layers[0][1].active_adapter if layers else None


@contextmanager
def disable_adapter(model: nn.Module):
    """Inside this block the model computes the base model's outputs."""
    layers = [layer for _, layer in bottleneck_layers(model)]
    before = [layer.disabled for layer in layers]
    for layer in layers:
        layer.disabled = True
    try:
        yield model
    finally:
        for layer, flag in zip(layers, before):
            layer.disabled = flag


def adapter_state_dict(model: nn.Module, adapter_name: str) -> dict[str, torch.Tensor]:
    """The adapter's tensors keyed without its name (`model.layers.0.mlp.bottleneck.down.weight`),
    so a saved adapter loads under any name, as PEFT does."""
    state = {}
    for path, layer in bottleneck_layers(model):
        if adapter_name in layer:
            for key, tensor in layer[adapter_name].state_dict().items():
                state[f"{path}.{key}"] = tensor.detach().cpu().contiguous()
    return state


def save(model: nn.Module, path: str | Path, adapter_name: str | None = None) -> None:
    """Write `adapter_config.json` and `adapter_model.safetensors` of one adapter (the active one
    by default) and nothing of the base model."""
    adapter_name = adapter_name or active_adapter(model)
    configs = getattr(model, CONFIGS_ATTR, None) or {}
    if adapter_name not in configs:
        raise ValueError(f"no bottleneck adapter named {adapter_name!r} to save; the model has {sorted(configs)}")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    configs[adapter_name].save(path)
    save_file(adapter_state_dict(model, adapter_name), str(path / WEIGHTS_NAME), metadata={"format": "pt"})


def load(model: nn.Module, path: str | Path, adapter_name: str = "default", is_trainable: bool = False) -> nn.Module:
    """Add the adapter saved in `path` to `model` under `adapter_name` and make it active.
    With `is_trainable=False` its tensors are frozen (inference, or a PPO reference)."""
    path = Path(path)
    if not (path / CONFIG_NAME).exists() or not (path / WEIGHTS_NAME).exists():
        raise FileNotFoundError(f"{path}: a bottleneck adapter folder needs {CONFIG_NAME} and {WEIGHTS_NAME}")
    inject_adapter(model, BottleneckConfig.load(path), adapter_name, trainable=is_trainable)
    saved = load_file(str(path / WEIGHTS_NAME))
    expected = {}
    for layer_path, layer in bottleneck_layers(model):
        if adapter_name in layer:
            for key, param in layer[adapter_name].named_parameters():
                expected[f"{layer_path}.{key}"] = param
    missing, unexpected = sorted(set(expected) - set(saved)), sorted(set(saved) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"{path / WEIGHTS_NAME} does not fit this model (different architecture or layer count?): "
            f"missing {missing[:3]}{'...' if len(missing) > 3 else ''}, unexpected {unexpected[:3]}"
        )
    with torch.no_grad():
        for key, param in expected.items():
            if saved[key].shape != param.shape:
                raise ValueError(f"{path / WEIGHTS_NAME}: {key} has shape {tuple(saved[key].shape)}, the model needs {tuple(param.shape)}")
            param.copy_(saved[key])
    return model
