"""PPO of a policy against a reward model: `PPOConfig`, `PPOTrainer`, `run_ppo` (the `rlhf ppo` command).

    core.py        the math, pure functions (log-probs, whitening, KL, GAE, clipped losses, KL control)
    config.py      PPOConfig, every setting documented once
    policy.py      policy + reference (+ the check that the reference is the SFT model) + critic
    rollout.py     generation with log-probs and values from the same pass; scoring
    trainer.py     PPOTrainer: the numbered steps
    checkpoint.py  exact resume;  metrics.py  JSONL, TensorBoard, PNG curves

Importing this package is light: torch and transformers load with the names that need them.
"""

from __future__ import annotations

from rlhf._lazy import lazy_exports

_EXPORTS = {
    "PPOConfig": "rlhf.ppo.config",
    "PPOTrainer": "rlhf.ppo.trainer",
    "NonFiniteError": "rlhf.ppo.trainer",
    "run_ppo": "rlhf.ppo.trainer",
    "ReferenceMismatchError": "rlhf.ppo.policy",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
