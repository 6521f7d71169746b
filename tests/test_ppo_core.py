"""rlhf.ppo.core against hand-computed values and naive reference loops (tier a: math only)."""

import math

import pytest
import torch

from rlhf.ppo import core


def t(x, dtype=torch.float32):
    return torch.tensor(x, dtype=dtype)


# --- log-probs and entropy -----------------------------------------------------------------------


def test_logprobs_by_hand():
    # logits [0, ln 3] -> softmax [1/4, 3/4]; at temperature 2 -> [0, ln3/2] -> [1/(1+sqrt3), sqrt3/(1+sqrt3)]
    logits = t([[[0.0, math.log(3.0)], [0.0, math.log(3.0)]]])  # (1, 2, 2)
    tokens = torch.tensor([[1, 0]])
    got = core.logprobs_from_logits(logits, tokens)
    assert torch.allclose(got, t([[math.log(0.75), math.log(0.25)]]))
    got_t2 = core.logprobs_from_logits(logits, tokens, temperature=2.0)
    s3 = math.sqrt(3.0)
    assert torch.allclose(got_t2, t([[math.log(s3 / (1 + s3)), math.log(1 / (1 + s3))]]))


def test_logprobs_match_naive_loop():
    torch.manual_seed(0)
    logits, tokens = torch.randn(3, 5, 7), torch.randint(0, 7, (3, 5))
    got = core.logprobs_from_logits(logits, tokens, temperature=0.7)
    for b in range(3):
        for i in range(5):
            row = logits[b, i] / 0.7
            expected = row[tokens[b, i]] - torch.logsumexp(row, 0)
            assert abs(got[b, i].item() - expected.item()) < 1e-5


def test_entropy_by_hand():
    # uniform over 4 -> ln 4; [1/4, 3/4] -> -(1/4 ln 1/4 + 3/4 ln 3/4) = 0.5623
    logits = t([[[0.0, 0.0, 0.0, 0.0], [0.0, math.log(3.0), -1e9, -1e9]]])
    got = core.entropy_from_logits(logits)
    assert torch.allclose(got, t([[math.log(4.0), -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))]]), atol=1e-5)


def test_logprobs_and_entropy_agree_with_the_separate_functions():
    torch.manual_seed(3)
    logits, tokens = torch.randn(2, 4, 9, requires_grad=True), torch.randint(0, 9, (2, 4))
    logprobs, entropy = core.logprobs_and_entropy(logits, tokens, temperature=0.7)
    assert torch.allclose(logprobs, core.logprobs_from_logits(logits, tokens, 0.7))
    assert torch.allclose(entropy, core.entropy_from_logits(logits, 0.7))
    assert logprobs.requires_grad and not entropy.requires_grad


# --- masked statistics ---------------------------------------------------------------------------


def test_masked_mean_var_whiten_by_hand():
    x = t([[1.0, 2.0, 100.0], [3.0, 4.0, -50.0]])
    mask = torch.tensor([[True, True, False], [True, True, False]])
    # real values 1, 2, 3, 4: mean 2.5; squared deviations 2.25 + .25 + .25 + 2.25 = 5 -> var 5/3 (Bessel)
    assert core.masked_mean(x, mask).item() == pytest.approx(2.5)
    assert core.masked_mean(x, mask, dim=1).tolist() == pytest.approx([1.5, 3.5])
    assert core.masked_var(x, mask).item() == pytest.approx(5 / 3)
    assert core.masked_var(x, mask, unbiased=False).item() == pytest.approx(1.25)
    w = core.masked_whiten(x, mask)
    std = math.sqrt(5 / 3)
    assert w[0, :2].tolist() == pytest.approx([-1.5 / std, -0.5 / std], rel=1e-5)
    assert w[:, 2].tolist() == [0.0, 0.0]  # padding comes back as 0, whatever it held
    kept = core.masked_whiten(x, mask, shift_mean=False)
    assert kept[0, 0].item() == pytest.approx(-1.5 / std + 2.5, rel=1e-5)


def test_whiten_of_constant_is_not_amplified_noise():
    # docs/notes.md#equal-rewards: equal values have no spread; whitening must not invent one
    x = torch.full((2, 3), 0.7)
    w = core.masked_whiten(x, torch.ones(2, 3, dtype=torch.bool))
    assert w.abs().max().item() < 1e-3


# --- KL and rewards ------------------------------------------------------------------------------


def test_kl_estimators_by_hand():
    logp, ref = t([[-1.0, -2.0]]), t([[-1.5, -1.0]])
    # k1 = logp - ref = [0.5, -1.0]
    assert core.kl_per_token(logp, ref, "k1").tolist()[0] == pytest.approx([0.5, -1.0])
    # k3 = exp(ref - logp) - 1 - (ref - logp): [e^-0.5 - 1 + 0.5, e^1 - 1 - 1]
    expected = [math.exp(-0.5) - 0.5, math.e - 2.0]
    assert core.kl_per_token(logp, ref, "k3").tolist()[0] == pytest.approx(expected, rel=1e-6)
    assert (core.kl_per_token(torch.randn(50), torch.randn(50), "k3") >= 0).all()
    with pytest.raises(ValueError, match="k2"):
        core.kl_per_token(logp, ref, "k2")


def test_k1_and_k3_estimate_the_true_kl():
    # E_p[k1] = E_p[k3] = KL(p || q) for tokens sampled from p
    torch.manual_seed(0)
    p, q = torch.tensor([0.5, 0.3, 0.2]), torch.tensor([0.2, 0.3, 0.5])
    true_kl = (p * (p / q).log()).sum().item()
    tokens = torch.multinomial(p, 200_000, replacement=True)
    logp, logq = p.log()[tokens], q.log()[tokens]
    assert core.kl_per_token(logp, logq, "k1").mean().item() == pytest.approx(true_kl, abs=5e-3)
    assert core.kl_per_token(logp, logq, "k3").mean().item() == pytest.approx(true_kl, abs=5e-3)


def test_shaped_rewards_by_hand():
    scores = t([2.0, -1.0])
    kl = t([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])
    mask = torch.tensor([[True, True, True], [True, False, False]])
    got = core.shaped_rewards(scores, kl, mask, kl_coef=0.5)
    # row 0: -0.05, -0.1, -0.15 + 2 (last real token is index 2)
    # row 1: only token 0 is real: -0.2 + (-1); padding gets nothing
    assert got.tolist()[0] == pytest.approx([-0.05, -0.1, 1.85])
    assert got.tolist()[1] == pytest.approx([-1.2, 0.0, 0.0])


# --- GAE ----------------------------------------------------------------------------------------


def naive_gae(rewards, values, lengths, gamma, lam):
    """The textbook loop, one sequence at a time, over its real tokens only."""
    advantages = torch.zeros_like(rewards)
    for b, n in enumerate(lengths):
        last = 0.0
        for i in reversed(range(n)):
            next_value = values[b, i + 1].item() if i + 1 < n else 0.0
            delta = rewards[b, i].item() + gamma * next_value - values[b, i].item()
            last = delta + gamma * lam * last
            advantages[b, i] = last
    return advantages


def test_gae_by_hand():
    # one sequence of 2 real tokens + 1 pad; gamma = 0.9, lam = 0.5
    rewards, values = t([[1.0, 2.0, 99.0]]), t([[0.5, 1.0, 99.0]])
    mask = torch.tensor([[True, True, False]])
    adv, ret = core.gae(rewards, values, mask, gamma=0.9, lam=0.5)
    # t=1: delta = 2 + 0 - 1 = 1 -> A1 = 1
    # t=0: delta = 1 + 0.9*1 - 0.5 = 1.4 -> A0 = 1.4 + 0.9*0.5*1 = 1.85
    assert adv.tolist()[0] == pytest.approx([1.85, 1.0, 0.0])
    assert ret.tolist()[0] == pytest.approx([2.35, 2.0, 0.0])


def test_gae_matches_naive_loop():
    torch.manual_seed(1)
    lengths = [5, 3, 1, 6]
    mask = torch.arange(6)[None, :] < torch.tensor(lengths)[:, None]
    rewards, values = torch.randn(4, 6) * mask, torch.randn(4, 6) * mask
    adv, ret = core.gae(rewards, values, mask, gamma=0.97, lam=0.9)
    exp_adv = naive_gae(rewards, values, lengths, 0.97, 0.9)
    assert torch.allclose(adv, exp_adv, atol=1e-5)
    assert torch.allclose(ret, (exp_adv + values) * mask, atol=1e-5)


def test_gae_lambda_one_gamma_one_is_reward_to_go_minus_value():
    rewards, values = t([[0.0, 0.0, 3.0]]), t([[1.0, 2.0, 0.5]])
    adv, ret = core.gae(rewards, values, torch.ones(1, 3, dtype=torch.bool), gamma=1.0, lam=1.0)
    assert ret.tolist()[0] == pytest.approx([3.0, 3.0, 3.0])
    assert adv.tolist()[0] == pytest.approx([2.0, 1.0, 2.5])


# --- losses -------------------------------------------------------------------------------------


def test_policy_loss_clipping_by_hand():
    # ratios e^0.5 = 1.6487 (A = +1: clipped at 1.2) and e^-0.5 = 0.6065 (A = -1: clipped at 0.8)
    old = t([[0.0, 0.0, 0.0]])
    new = t([[0.5, -0.5, 0.1]])
    adv = t([[1.0, -1.0, 2.0]])
    mask = torch.tensor([[True, True, True]])
    loss, stats = core.policy_loss(new, old, adv, mask, cliprange=0.2)
    # token 0: max(-1.6487, -1.2) = -1.2 (clipped); token 1: max(0.6065, 0.8) = 0.8 (clipped)
    # token 2: ratio e^0.1 = 1.1052 inside the range: -2.2103
    expected = (-1.2 + 0.8 - 2 * math.exp(0.1)) / 3
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert stats["clipfrac"].item() == pytest.approx(2 / 3)
    assert stats["approx_kl"].item() == pytest.approx(0.5 * (0.25 + 0.25 + 0.01) / 3, rel=1e-5)


def test_policy_loss_gradient_is_advantage_weighted_and_masked():
    new = torch.zeros(1, 3, requires_grad=True)
    adv = t([[2.0, -1.0, 5.0]])
    mask = torch.tensor([[True, True, False]])
    loss, _ = core.policy_loss(new, torch.zeros(1, 3), adv, mask)
    loss.backward()
    # at ratio 1, d loss / d logp = -A / n_real
    assert new.grad.tolist()[0] == pytest.approx([-1.0, 0.5, 0.0])


def test_policy_loss_matches_naive_loop():
    torch.manual_seed(2)
    new, old, adv = torch.randn(3, 4) * 0.3, torch.randn(3, 4) * 0.3, torch.randn(3, 4)
    mask = torch.rand(3, 4) > 0.3
    mask[0, 0] = True
    loss, _ = core.policy_loss(new, old, adv, mask, cliprange=0.1)
    terms = []
    for b in range(3):
        for i in range(4):
            if mask[b, i]:
                ratio = math.exp(new[b, i] - old[b, i])
                clipped = min(max(ratio, 0.9), 1.1)
                terms.append(max(-adv[b, i].item() * ratio, -adv[b, i].item() * clipped))
    assert loss.item() == pytest.approx(sum(terms) / len(terms), rel=1e-5)


def test_value_loss_by_hand():
    values, old, returns = t([[1.0, 0.0]]), t([[0.5, 0.0]]), t([[2.0, 0.1]])
    mask = torch.tensor([[True, True]])
    loss, stats = core.value_loss(values, old, returns, mask, cliprange_value=0.2)
    # token 0: unclipped (1-2)^2 = 1; clipped V = 0.7 -> (0.7-2)^2 = 1.69 -> max 1.69 (clip active)
    # token 1: V = old = 0 -> 0.01 both
    assert loss.item() == pytest.approx(0.5 * (1.69 + 0.01) / 2)
    assert stats["clipfrac"].item() == pytest.approx(0.5)


def test_explained_variance():
    returns = t([[1.0, 2.0, 3.0, 4.0]])
    mask = torch.ones(1, 4, dtype=torch.bool)
    assert core.explained_variance(returns, returns, mask).item() == pytest.approx(1.0)
    assert core.explained_variance(torch.full((1, 4), 2.5), returns, mask).item() == pytest.approx(0.0, abs=1e-6)


# --- KL controllers -----------------------------------------------------------------------------


def test_adaptive_kl_by_hand():
    # KL 9 vs target 6: error = 0.5 -> clipped 0.2; beta * (1 + 0.2 * 100/1000) = 0.1 * 1.02
    assert core.adaptive_kl_coef(0.1, 9.0, 6.0, 1000, 100) == pytest.approx(0.102)
    # KL 5.7 vs 6: error -0.05 -> beta * (1 - 0.05 * 0.1)
    assert core.adaptive_kl_coef(0.1, 5.7, 6.0, 1000, 100) == pytest.approx(0.1 * (1 - 0.005))
    ctl = core.AdaptiveKLController(0.1, target=6.0, horizon=1000)
    for _ in range(10):
        ctl.update(100.0, 100)
    assert ctl.value == pytest.approx(0.1 * 1.02**10)
    fixed = core.FixedKLController(0.05)
    assert fixed.update(100.0, 100) == 0.05 and fixed.value == 0.05
