"""rlhf: the whole RLHF loop on one machine.

SFT with adapters -> K candidates per prompt -> humans (or simulated labelers) rank them in a
browser -> a reward model on the rankings -> PPO of the policy against it -> evaluation.

`import rlhf` is light: every name below loads its module on first use.
"""

from __future__ import annotations

from rlhf._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    # models
    "load_model_and_tokenizer": "rlhf.adapters",
    "load_causal_lm": "rlhf.adapters",
    "load_tokenizer": "rlhf.models",
    "tiny_causal_lm": "rlhf.models",
    "tiny_tokenizer": "rlhf.models",
    "ModelNotFoundError": "rlhf.models",
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
    # stages
    "SFTConfig": "rlhf.sft",
    "run_sft": "rlhf.sft",
    "SampleConfig": "rlhf.sample",
    "run_sample": "rlhf.sample",
    "RewardConfig": "rlhf.reward",
    "RewardModel": "rlhf.reward",
    "train_reward": "rlhf.reward",
    "PPOConfig": "rlhf.ppo",
    "PPOTrainer": "rlhf.ppo",
    "run_ppo": "rlhf.ppo",
    "SimulateConfig": "rlhf.labelers",
    "SimulatedLabeler": "rlhf.labelers",
    "run_simulate": "rlhf.labelers",
    "DPOStageConfig": "rlhf.dpo",
    "run_dpo": "rlhf.dpo",
    "EvalConfig": "rlhf.eval",
    "run_eval": "rlhf.eval",
    "run_pipeline": "rlhf.pipeline",
    "save_tiny_model": "rlhf.models",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
