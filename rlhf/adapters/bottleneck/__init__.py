"""Series and parallel bottleneck adapters (LLM-Adapters, Hu et al. 2023), in PEFT's
config / layer / model split: `config.py` the settings, `layer.py` the module that computes,
`model.py` injection into a transformers model, switching, saving and loading.

Names load on first use, so reading a `BottleneckConfig` does not import torch."""

from __future__ import annotations

import importlib

_EXPORTS = {
    "BottleneckConfig": "rlhf.adapters.bottleneck.config",
    "BottleneckAdapter": "rlhf.adapters.bottleneck.layer",
    "BottleneckLayer": "rlhf.adapters.bottleneck.layer",
    "active_adapter": "rlhf.adapters.bottleneck.model",
    "disable_adapter": "rlhf.adapters.bottleneck.model",
    "inject_adapter": "rlhf.adapters.bottleneck.model",
    "is_bottleneck_model": "rlhf.adapters.bottleneck.model",
    "load": "rlhf.adapters.bottleneck.model",
    "save": "rlhf.adapters.bottleneck.model",
    "set_active_adapter": "rlhf.adapters.bottleneck.model",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'rlhf.adapters.bottleneck' has no attribute {name!r}")
