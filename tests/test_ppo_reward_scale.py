"""PPO numbers that keep their meaning: a reward's scale does not decide whether the policy learns
(running reward normalisation, policy and critic clipped apart), a configuration that could never
update the policy is refused, and a reward_fn returning the wrong thing is named."""

import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from ppo_tiny import PROMPTS, token_reward  # noqa: E402

from rlhf.ppo import NonFiniteError, PPOConfig, PPOTrainer  # noqa: E402
from rlhf.ppo.reward_norm import RunningMoments, normalize_scores  # noqa: E402
from rlhf.ppo.rollout import reward_fn_scores  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py




def config(tmp_path, policy, **overrides):
    settings = dict(policy=str(policy), output_dir=str(tmp_path / "run"), steps=4, batch_size=8, max_new_tokens=12,
                    learning_rate=3e-3, ppo_epochs=2, num_minibatches=2, save_steps=0, progress=False, device="cpu",
                    kl_coef=0.1)
    return PPOConfig(**{**settings, **overrides})


def scaled(factor):
    return lambda prompts, completions: [factor * s for s in token_reward(prompts, completions)]


# --- the normaliser (pure) ---------------------------------------------------------------------


def test_running_moments_match_the_moments_of_everything_seen():
    torch.manual_seed(0)
    batches = [torch.randn(5) * 3 + 7, torch.randn(1), torch.randn(11) * 1e6]
    moments = RunningMoments()
    for b in batches:
        moments.update(b)
    everything = torch.cat(batches).double()
    assert moments.count == 17
    assert moments.mean == pytest.approx(everything.mean().item(), rel=1e-12)
    assert moments.std == pytest.approx(everything.std(unbiased=False).item(), rel=1e-12)
    # The same scores at any scale normalise to the same numbers.
    small, large = RunningMoments(), RunningMoments()
    small.update(batches[0])
    large.update(batches[0] * 1e6)
    assert torch.allclose(normalize_scores(batches[0], small), normalize_scores(batches[0] * 1e6, large), atol=1e-6)
    assert torch.equal(normalize_scores(torch.ones(3), _seen(torch.ones(3))), torch.zeros(3))  # no spread, no signal


def _seen(values):
    m = RunningMoments()
    m.update(values)
    return m


# --- a reward scaled by 1e6 learns as at unit scale ---------------------------------------------


@pytest.mark.slow
def test_reward_scaled_by_a_million_learns_as_at_unit_scale(tiny_sft_dir, tmp_path):
    """Same seed, same policy, the chosen-word reward at scale 1 and 1e6 (normalize_reward on by
    default with a reward_fn): the scores, in units of the reward, follow the same curve."""
    steps = 12
    unit = PPOTrainer(config(tmp_path / "unit", tiny_sft_dir, steps=steps), reward_fn=scaled(1.0), prompts=PROMPTS).train()
    big = PPOTrainer(config(tmp_path / "big", tiny_sft_dir, steps=steps), reward_fn=scaled(1e6), prompts=PROMPTS).train()
    unit_scores = [h["reward/score"] for h in unit]
    big_scores = [h["reward/score"] / 1e6 for h in big]
    first, last = sum(unit_scores[:3]) / 3, sum(unit_scores[-3:]) / 3
    assert last > first + 0.5, f"unit scale did not learn: {unit_scores}"
    big_first, big_last = sum(big_scores[:3]) / 3, sum(big_scores[-3:]) / 3
    assert big_last - big_first == pytest.approx(last - first, abs=0.5), (unit_scores, big_scores)
    assert sum(h["ppo/approx_kl"] for h in big) == pytest.approx(sum(h["ppo/approx_kl"] for h in unit), rel=0.5)
    assert big[-1]["reward/norm_std"] == pytest.approx(1e6 * unit[-1]["reward/norm_std"], rel=1e-6)


def test_a_large_value_loss_does_not_shrink_the_policy_step(tiny_sft_dir, tmp_path):
    """Without normalisation the critic's gradient grows with the reward's scale; the policy's is
    clipped on its own, so its update keeps its size (one shared clip made it ~0: approx-KL 1e-9)."""
    steps = {}
    for name, factor in (("unit", 1.0), ("big", 1e6)):
        trainer = PPOTrainer(config(tmp_path / name, tiny_sft_dir, normalize_reward=False), reward_fn=scaled(factor),
                             prompts=PROMPTS)
        steps[name] = trainer.step()
    unit, big = steps["unit"], steps["big"]
    assert big["ppo/approx_kl"] > 0.1 * unit["ppo/approx_kl"], (unit["ppo/approx_kl"], big["ppo/approx_kl"])
    assert big["ppo/critic_grad_norm"] > 1e3 * unit["ppo/critic_grad_norm"]
    assert big["ppo/policy_updated"] == 1.0
    ratio = big["ppo/policy_update_norm"] / unit["ppo/policy_update_norm"]
    assert 0.2 < ratio < 5.0, (unit["ppo/policy_update_norm"], big["ppo/policy_update_norm"])


# --- configurations that could never update the policy -------------------------------------------


def test_batch_size_one_is_refused_with_the_reason():
    with pytest.raises(ValueError, match=r"batch_size=1 never updates the policy.*min_reward_std"):
        PPOConfig(batch_size=1)
    assert PPOConfig(batch_size=1, min_reward_std=0.0).batch_size == 1  # the skip rule is off: allowed


def test_warmup_covering_every_step_is_refused():
    with pytest.raises(ValueError, match=r"value_warmup_steps=5 >= steps=5"):
        PPOConfig(steps=5, value_warmup_steps=5)


# --- reward_fn returning the wrong thing ----------------------------------------------------------


@pytest.mark.parametrize("returned, error, words", [
    (None, TypeError, "returned NoneType"),
    ("0.5", TypeError, "returned str"),
    ({"score": 1.0}, TypeError, "returned dict"),
    (0.5, TypeError, "returned float"),
    (["a", "b", "c"], TypeError, "not numbers"),
    ([1.0, 2.0], ValueError, r"shape \(2,\)"),
    ([[1.0], [2.0], [3.0]], ValueError, r"shape \(3, 1\)"),
])
def test_wrong_reward_fn_return_is_named(returned, error, words):
    with pytest.raises(error, match=rf"reward_fn must return one finite number per completion \(3 here.*{words}"):
        reward_fn_scores(returned, 3)


def test_reward_fn_return_accepts_lists_tuples_arrays_and_tensors():
    import numpy as np

    for value in ([1, 2.5, 3], (1, 2.5, 3), np.array([1, 2.5, 3]), torch.tensor([1, 2.5, 3], dtype=torch.float64)):
        assert torch.equal(reward_fn_scores(value, 3), torch.tensor([1.0, 2.5, 3.0]))


def test_trainer_checks_the_reward_fn_every_step(tiny_model_dir, tmp_path):
    """In the trainer: a dict names reward_fn before any update; NaN stops with the hint too."""
    trainer = PPOTrainer(config(tmp_path, tiny_model_dir, batch_size=4, max_new_tokens=4, ppo_epochs=1),
                         reward_fn=lambda p, c: {"score": 1.0}, prompts=PROMPTS)
    before = {n: p.detach().clone() for n, p in trainer.policy.named_parameters() if p.requires_grad}
    with pytest.raises(TypeError, match="reward_fn must return one finite number per completion"):
        trainer.step()
    trainer.reward_fn = lambda p, c: [math.nan] * len(c)
    with pytest.raises(NonFiniteError, match="reward is not finite.*reward_fn must return one finite number"):
        trainer.step()
    assert all(torch.equal(p, before[n]) for n, p in trainer.policy.named_parameters() if n in before)
