"""Series and parallel bottleneck adapters (LLM-Adapters, Hu et al. 2023), in PEFT's
config / layer / model split: `config.py` the settings, `layer.py` the module that computes,
`model.py` injection into a transformers model, switching, saving and loading.

Names load on first use, so reading a `BottleneckConfig` does not import torch."""

from __future__ import annotations

from rlhf._lazy import lazy_exports

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


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
