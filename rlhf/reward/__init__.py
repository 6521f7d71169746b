"""The reward-model stage: a scalar reward trained on K-way rankings (ties allowed) or pairs.

    from rlhf.reward import RewardConfig, train_reward, RewardModel
    train_reward(RewardConfig(data="rankings.jsonl", output_dir="runs/rm"))
    RewardModel.load("runs/rm").score(prompts, completions)   # std units

Modules: `config` (RewardConfig), `loss` (the ranking loss, pure functions), `data` (labeler
consensus, split by prompt, agreement), `model` (building, scoring, RewardModel), `trainer`,
`bias` (length-bias figures of any scored pairs), `synthetic` (generated rankings and pairs).
`import rlhf.reward` stays light: each name loads its module on first use.
"""

from __future__ import annotations

from rlhf._lazy import lazy_exports

_EXPORTS = {
    "RewardConfig": "rlhf.reward.config",
    "train_reward": "rlhf.reward.trainer",
    "RewardModel": "rlhf.reward.model",
    "ranking_loss": "rlhf.reward.loss",
    "ranking_index": "rlhf.reward.loss",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
