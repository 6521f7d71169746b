"""rlhf: the whole RLHF loop on one machine.

SFT with adapters -> K candidates per prompt -> humans (or simulated labelers) rank them in a
browser -> a reward model on the rankings -> PPO of the policy against it -> evaluation.

`import rlhf` is light: every name below loads its module on first use.
"""

from __future__ import annotations

from rlhf._lazy import lazy_exports
from rlhf.stages import STAGES

__version__ = "0.1.0"

_EXPORTS = {
    # models
    "load_model_and_tokenizer": "rlhf.adapters",
    "load_causal_lm": "rlhf.adapters",
    "load_tokenizer": "rlhf.models",
    "tiny_causal_lm": "rlhf.models",
    "tiny_tokenizer": "rlhf.models",
    "ModelNotFoundError": "rlhf.models",
    "save_tiny_model": "rlhf.models",
    # data
    "DataError": "rlhf.data",
    "Ranking": "rlhf.data",
    "load_demonstrations": "rlhf.data",
    "load_prompts": "rlhf.data",
    "load_preferences": "rlhf.data",
    # adapters
    "AdapterConfig": "rlhf.adapters",
    "apply_adapter": "rlhf.adapters",
    "load_adapter": "rlhf.adapters",
    "save_adapter": "rlhf.adapters",
    # stores
    "LabelStore": "rlhf.store",
}

# every stage's config, run function and classes, from the one registry
_EXPORTS.update({name: stage.module for stage in STAGES for name in stage.exports})

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
