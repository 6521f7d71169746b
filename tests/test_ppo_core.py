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
    # k2 = (logp - ref)^2 / 2 = [0.125, 0.5]
    assert core.kl_per_token(logp, ref, "k2").tolist()[0] == pytest.approx([0.125, 0.5])
    with pytest.raises(ValueError, match="k4.*k1, k2, k3"):
        core.kl_per_token(logp, ref, "k4")


def test_k2_as_a_loss_has_the_gradient_of_the_kl_and_k3_does_not():
    """Tokens sampled from p = softmax(theta), the KL loss averaged over them: its gradient in
    theta is, for k2, the gradient of KL(p || q) itself (Tang & Munos 2025); for k3, that of
    KL(q || p), a different direction when p and q differ."""
    torch.manual_seed(0)
    theta = torch.tensor([0.5, 0.0, -0.5], requires_grad=True)
    logq = torch.log(torch.tensor([0.1, 0.3, 0.6]))

    def exact(kind):
        p = torch.softmax(theta, 0)
        kl = (p * (p.log() - logq)).sum() if kind == "pq" else (logq.exp() * (logq - p.log())).sum()
        return torch.autograd.grad(kl, theta)[0]

    tokens = torch.multinomial(torch.softmax(theta, 0).detach(), 400_000, replacement=True)
    mask = torch.ones(1, tokens.numel(), dtype=torch.bool)
    grads = {}
    for estimator in ("k2", "k3"):
        logp = torch.log_softmax(theta, 0)[tokens][None]
        loss = core.kl_loss(logp, logq[tokens][None], mask, estimator=estimator)
        grads[estimator] = torch.autograd.grad(loss, theta)[0]
    torch.testing.assert_close(grads["k2"], exact("pq"), atol=5e-3, rtol=0)
    torch.testing.assert_close(grads["k3"], exact("qp"), atol=5e-3, rtol=0)
    assert (exact("pq") - exact("qp")).abs().max() > 0.05  # the two really differ here


def test_k3_is_clamped_so_a_far_off_token_stays_finite_and_gives_no_gradient():
    # Token 0: log p = -100, log q = 0, so log(q/p) = 100: unclamped, expm1(100) = inf in float32,
    # the KL loss is inf and its gradient NaN. Clamped (verl's low_var_kl): log(q/p) -> 20, k3 ->
    # min(e^20 - 21, 10) = 10, gradient 0. Token 1: log(q/p) = -0.5 - (-1) = 0.5, inside both clamps:
    # k3 = e^0.5 - 1.5 = 0.148721, d k3 / d log p = 1 - e^0.5 = -0.648721.
    # Token 2: log(q/p) = 5, no overflow but past the cap: e^5 - 6 = 142.41 -> 10, gradient 0.
    logp = torch.tensor([[-100.0, -1.0, -5.0]], requires_grad=True)
    ref = t([[0.0, -0.5, 0.0]])
    k3 = core.kl_per_token(logp, ref, "k3")
    assert k3.tolist()[0] == pytest.approx([10.0, math.exp(0.5) - 1.5, 10.0], rel=1e-6)
    loss = core.kl_loss(logp, ref, torch.ones(1, 3, dtype=torch.bool))  # token-mean of the three
    assert loss.item() == pytest.approx((20.0 + math.exp(0.5) - 1.5) / 3, rel=1e-6)
    loss.backward()
    assert torch.isfinite(logp.grad).all()
    assert logp.grad.tolist()[0] == pytest.approx([0.0, (1 - math.exp(0.5)) / 3, 0.0], abs=1e-6)


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


def test_dual_clip_caps_the_loss_of_a_negative_advantage_by_hand():
    # ratios e^ln5 = 5, 2, 5; A = -1, -1, +1; cliprange 0.2, dual_clip 3.
    # token 0: max(5, 1.2) = 5 > cap -A*3 = 3 -> 3, no gradient (the dual clip);
    # token 1: max(2, 1.2) = 2 < 3 -> 2, gradient -A*ratio = 2; token 2 (A > 0): max(-5, -1.2) = -1.2.
    new = torch.tensor([[math.log(5.0), math.log(2.0), math.log(5.0)]], requires_grad=True)
    old, adv = torch.zeros(1, 3), t([[-1.0, -1.0, 1.0]])
    mask = torch.ones(1, 3, dtype=torch.bool)
    loss, stats = core.policy_loss(new, old, adv, mask, cliprange=0.2, dual_clip=3.0)
    assert loss.item() == pytest.approx((3.0 + 2.0 - 1.2) / 3, rel=1e-5)
    assert stats["dual_clipfrac"].item() == pytest.approx(1 / 3)
    loss.backward()
    assert new.grad.tolist()[0] == pytest.approx([0.0, 2.0 / 3, 0.0], abs=1e-6)
    plain, plain_stats = core.policy_loss(new.detach(), old, adv, mask, cliprange=0.2)
    assert plain.item() == pytest.approx((5.0 + 2.0 - 1.2) / 3, rel=1e-5) and "dual_clipfrac" not in plain_stats
    with pytest.raises(ValueError, match="dual_clip must be > 1"):
        core.policy_loss(new, old, adv, mask, dual_clip=1.0)


def test_clip_higher_lets_a_positive_advantage_raise_the_ratio_further_by_hand():
    # ratios 1.25, 1.25, 0.75; A = +1, +2, -1; cliprange 0.2.
    # symmetric (eps_high 0.2): token 0 max(-1.25, -1.2) = -1.2 clipped, no gradient; token 1 -2.4, no
    #   gradient; token 2 (A < 0, ratio below 1 - 0.2): max(0.75, 0.8) = 0.8 clipped, no gradient.
    # eps_high 0.28: 1.25 is inside [0.8, 1.28]: tokens 0 and 1 are unclipped, -1.25 and -2.5 with
    #   gradient -A * ratio = -1.25 and -2.5 (per token, / 3 for the mean); token 2 still clipped below.
    new = torch.tensor([[math.log(1.25), math.log(1.25), math.log(0.75)]], requires_grad=True)
    old, adv = torch.zeros(1, 3), t([[1.0, 2.0, -1.0]])
    mask = torch.ones(1, 3, dtype=torch.bool)
    symmetric, stats = core.policy_loss(new, old, adv, mask, cliprange=0.2)
    assert symmetric.item() == pytest.approx((-1.2 - 2.4 + 0.8) / 3, rel=1e-5)
    assert stats["clipfrac"].item() == pytest.approx(1.0)
    symmetric.backward()
    assert new.grad.tolist()[0] == pytest.approx([0.0, 0.0, 0.0], abs=1e-6)
    new.grad = None
    higher, stats = core.policy_loss(new, old, adv, mask, cliprange=0.2, cliprange_high=0.28)
    assert higher.item() == pytest.approx((-1.25 - 2.5 + 0.8) / 3, rel=1e-5)
    assert stats["clipfrac"].item() == pytest.approx(1 / 3)
    higher.backward()
    assert new.grad.tolist()[0] == pytest.approx([-1.25 / 3, -2.5 / 3, 0.0], abs=1e-6)
    same, _ = core.policy_loss(new.detach(), old, adv, mask, cliprange=0.2, cliprange_high=0.2)
    assert same.item() == pytest.approx(symmetric.item())


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


# --- padding can never leak (NaN/inf planted where response_mask is False) ----------------------


MASK = torch.tensor([[True, True, True, False], [True, True, False, False]])


def plant(x, value):
    """x with `value` written into every padding slot of MASK."""
    return torch.where(MASK, x, torch.full_like(x, value))


def masked_cases():
    """(name, function of (b, t) tensors -> tensors): every masked function of core, on random
    real-token inputs, so the test can plant NaN/inf at padding and compare."""
    kl = torch.tensor([0.1, -0.2, 0.3, 0.0]).repeat(2, 1)
    return {
        "masked_sum": lambda x, y, z: core.masked_sum(x, MASK, dim=1),
        "masked_mean": lambda x, y, z: core.masked_mean(x, MASK),
        "masked_mean_dim": lambda x, y, z: core.masked_mean(x, MASK, dim=1),
        "masked_var": lambda x, y, z: core.masked_var(x, MASK),
        "masked_whiten": lambda x, y, z: core.masked_whiten(x, MASK),
        "shaped_rewards": lambda x, y, z: core.shaped_rewards(t([1.0, -1.0]), x, MASK, 0.1),
        "gae": lambda x, y, z: torch.cat(core.gae(x, y, MASK)),
        "discounted_returns": lambda x, y, z: core.discounted_returns(x, MASK),
        "reinforce_pp": lambda x, y, z: core.reinforce_pp_advantages(x, MASK),
        "policy_loss": lambda x, y, z: core.policy_loss(x, y, z, MASK)[0],
        "policy_loss_seq": lambda x, y, z: core.policy_loss(x, y, z, MASK, loss_agg_mode="seq-mean-token-mean")[0],
        "policy_loss_sum_norm": lambda x, y, z: core.policy_loss(x, y, z, MASK, loss_agg_mode="seq-mean-token-sum-norm")[0],
        "policy_loss_stats": lambda x, y, z: torch.stack(list(core.policy_loss(x, y, z, MASK)[1].values())),
        "kl_loss": lambda x, y, z: core.kl_loss(x, y, MASK),
        "value_loss": lambda x, y, z: core.value_loss(x, y, z, MASK)[0],
        "explained_variance": lambda x, y, z: core.explained_variance(x, y, MASK),
        "compute_advantages_gae": lambda x, y, z: torch.cat(core.compute_advantages("gae", t([1.0, 0.0]), x, MASK, 0.1,
                                                                                   values=y)),
        "compute_advantages_grpo": lambda x, y, z: torch.cat(core.compute_advantages(
            "grpo", t([1.0, 0.0]), x, MASK, 0.1, group_size=2)),
        "compute_advantages_rloo": lambda x, y, z: torch.cat(core.compute_advantages(
            "rloo", t([1.0, 0.0]), x, MASK, 0.1, group_size=2)),
        "compute_advantages_rpp_baseline": lambda x, y, z: torch.cat(core.compute_advantages(
            "reinforce++_baseline", t([1.0, 0.0]), x + kl, MASK, 0.1, group_size=2)),
    }


@pytest.mark.parametrize("name", sorted(masked_cases()))
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_nan_and_inf_at_padding_leave_real_results_unchanged(name, bad):
    """Issue: `x * mask` keeps NaN (NaN * 0 = NaN). Every masked function must give the same,
    finite result at real tokens whatever the padding holds, and 0 at padding where it returns
    a (b, t) tensor."""
    fn = masked_cases()[name]
    torch.manual_seed(0)
    x, y, z = (torch.randn(2, 4) * 0.5 for _ in range(3))
    x0, y0, z0 = (plant(v, 0.0) for v in (x, y, z))
    clean = fn(x0, y0, z0)
    dirty = fn(plant(x, bad), plant(y, bad), plant(z, bad))
    assert torch.isfinite(dirty).all(), f"{name}: padding {bad} leaked into the result"
    assert torch.allclose(clean, dirty, atol=1e-6), f"{name}: padding {bad} changed the real-token result"


def test_nan_at_padding_gives_finite_gradients_to_real_tokens():
    """torch.where alone passes NaN gradients back through what it masked; the losses fill the
    inputs' padding first, so the gradient is exact at real tokens and 0 at padding."""
    torch.manual_seed(0)
    logprobs = plant(torch.randn(2, 4), float("nan")).requires_grad_(True)
    old, adv = plant(torch.randn(2, 4), float("nan")), plant(torch.randn(2, 4), float("inf"))
    loss = core.policy_loss(logprobs, old, adv, MASK)[0] + core.kl_loss(logprobs, old, MASK)
    loss.backward()
    assert torch.isfinite(logprobs.grad).all()
    assert (logprobs.grad[~MASK] == 0).all() and (logprobs.grad[MASK] != 0).all()


# --- loss aggregation ------------------------------------------------------------------------------


def test_loss_aggregation_modes_by_hand():
    # row 0: losses 1, 2, 3 (3 real tokens); row 1: 4, 5 (2 real tokens); padding holds 100s.
    loss = t([[1.0, 2.0, 3.0, 100.0], [4.0, 5.0, 100.0, 100.0]])
    # token-mean: (1+2+3+4+5) / 5 = 3
    assert core.aggregate_loss(loss, MASK, "token-mean").item() == pytest.approx(3.0)
    # seq-mean-token-mean: mean(6/3, 9/2) = mean(2, 4.5) = 3.25
    assert core.aggregate_loss(loss, MASK, "seq-mean-token-mean").item() == pytest.approx(3.25)
    # seq-mean-token-sum-norm with budget 10: mean(6/10, 9/10) = 0.75; default budget = t = 4: 15/8
    assert core.aggregate_loss(loss, MASK, "seq-mean-token-sum-norm", norm_length=10).item() == pytest.approx(0.75)
    assert core.aggregate_loss(loss, MASK, "seq-mean-token-sum-norm").item() == pytest.approx(15 / 8)
    with pytest.raises(ValueError, match="loss_agg_mode"):
        core.aggregate_loss(loss, MASK, "token-sum")


def test_kl_loss_is_k3_by_hand():
    # log p - log q = ln 2 at every token: k3 = (q/p - 1) - log(q/p) = (0.5 - 1) + ln 2 = ln 2 - 0.5
    logprobs, ref = torch.full((2, 4), math.log(0.5)), torch.full((2, 4), math.log(0.25))
    assert core.kl_loss(logprobs, ref, MASK).item() == pytest.approx(math.log(2) - 0.5, abs=1e-6)


# --- critic-free estimators --------------------------------------------------------------------------


def naive_group_advantages(rewards, g, kind):
    """Reference loop, one completion at a time, straight from the papers' formulas."""
    out = []
    for i, r in enumerate(rewards):
        group = rewards[i // g * g: i // g * g + g]
        mean = sum(group) / g
        if kind == "rloo":
            out.append(r - (sum(group) - r) / (g - 1))
            continue
        std = math.sqrt(sum((x - mean) ** 2 for x in group) / (g - 1))
        out.append((r - mean) / (std + 1e-6) if kind == "grpo" else r - mean)
    return out


def test_grpo_advantages_by_hand():
    # group [1, 0, 0, 1]: mean 0.5, Bessel std = sqrt(4 * 0.25 / 3) = 1/sqrt(3) -> +-0.5*sqrt(3) = +-0.8660
    # group [2, 2, 2, 2]: no spread -> exactly 0 (not NaN, not noise)
    rewards = t([1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 2.0])
    got = core.grpo_advantages(rewards, 4)
    h = 0.5 * math.sqrt(3) / (1 + 1e-6 * math.sqrt(3))  # the eps in the denominator
    assert torch.allclose(got, t([h, -h, -h, h, 0, 0, 0, 0]), atol=1e-6)
    assert (got[4:] == 0).all()


def test_grpo_batch_scale_divides_by_the_batch_std_by_hand():
    # groups [1, 0, 0, 0] and [1, 1, 1, 0]: centred [.75, -.25, -.25, -.25] and [.25, .25, .25, -.75].
    # batch: 4 ones and 4 zeros, mean 0.5, Bessel var 8 * 0.25 / 7 = 2/7 -> divide by sqrt(2/7);
    # group: each group's Bessel std is sqrt(0.75 / 3) = 0.5 -> divide by 0.5; none: as they are.
    rewards = t([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0])
    centred = t([0.75, -0.25, -0.25, -0.25, 0.25, 0.25, 0.25, -0.75])
    batch = core.grpo_advantages(rewards, 4, scale_rewards="batch")
    assert torch.allclose(batch, centred / (math.sqrt(2 / 7) + 1e-6), atol=1e-6)
    assert torch.allclose(core.grpo_advantages(rewards, 4, scale_rewards="group"), centred / (0.5 + 1e-6), atol=1e-6)
    assert torch.equal(core.grpo_advantages(rewards, 4, scale_rewards="none"), core.dr_grpo_advantages(rewards, 4))
    # a batch of equal large rewards: exactly 0, no float noise from the squares, no NaN
    assert torch.equal(core.grpo_advantages(torch.full((8,), 1000.1), 4, scale_rewards="batch"), torch.zeros(8))
    # groups [0, 0, 0, 0.1] and [0, 0, 0, 1]: the group std scales both to the same advantages (a
    # spread of 0.1 counts as much as one of 1); the batch std keeps them 10 to 1
    rewards = t([0.0, 0.0, 0.0, 0.1, 0.0, 0.0, 0.0, 1.0])
    group, batch = (core.grpo_advantages(rewards, 4, scale_rewards=s) for s in ("group", "batch"))
    assert group[3].item() == pytest.approx(group[7].item(), rel=1e-4)
    assert batch[7].item() == pytest.approx(10 * batch[3].item(), rel=1e-4)
    with pytest.raises(ValueError, match="unknown scale_rewards"):
        core.grpo_advantages(rewards, 4, scale_rewards="global")


def test_dr_grpo_advantages_by_hand():
    # group [3, 1]: mean 2 -> [1, -1] (no std division); group [0.1, 0.1, ...] equal -> exactly 0
    got = core.dr_grpo_advantages(t([3.0, 1.0, 0.1, 0.1]), 2)
    assert torch.equal(got, t([1.0, -1.0, 0.0, 0.0]))


def test_rloo_advantages_by_hand():
    # group [1, 0, 0]: 1 - (0+0)/2 = 1; 0 - (1+0)/2 = -0.5 (twice); G/(G-1) * (r - mean) agrees:
    # 1.5 * (1 - 1/3) = 1, 1.5 * (0 - 1/3) = -0.5.  G = 2: [5, 3] -> [2, -2]
    assert torch.allclose(core.rloo_advantages(t([1.0, 0.0, 0.0]), 3), t([1.0, -0.5, -0.5]))
    assert torch.allclose(core.rloo_advantages(t([5.0, 3.0]), 2), t([2.0, -2.0]))
    with pytest.raises(ValueError, match="at least 2"):
        core.rloo_advantages(t([1.0, 2.0]), 1)


@pytest.mark.parametrize("kind", ["grpo", "dr_grpo", "rloo"])
@pytest.mark.parametrize("g", [2, 3, 4])
def test_group_advantages_match_naive_loop(kind, g):
    torch.manual_seed(g)
    rewards = torch.randn(5 * g)
    rewards[:g] = 0.3  # one all-equal group
    got = core.outcome_advantages(kind, rewards, g)
    expected = t(naive_group_advantages(rewards.tolist(), g, kind))
    assert torch.allclose(got, expected, atol=1e-5)
    assert (got[:g] == 0).all() and torch.isfinite(got).all()


@pytest.mark.parametrize("kind", ["grpo", "dr_grpo", "rloo"])
def test_all_equal_groups_give_exactly_zero(kind):
    # 0.1 * 3 / 3 != 0.1 in floating point: the mean of equal rewards can miss them by one bit.
    for value in (0.1, 1 / 3, -7.77, 0.0, 1e6):
        for g in (2, 3, 7):
            got = core.outcome_advantages(kind, torch.full((2 * g,), value), g)
            assert torch.equal(got, torch.zeros(2 * g)), (kind, value, g)


@pytest.mark.parametrize("kind", ["grpo", "dr_grpo", "rloo"])
def test_group_estimators_refuse_a_group_of_one(kind):
    # G = 1: grpo divided 0 by the Bessel std of one value (NaN) and returned [nan, nan]; dr_grpo
    # returned [0, 0], a batch with no signal, without a word.
    with pytest.raises(ValueError, match="at least 2 completions per prompt"):
        core.outcome_advantages(kind, t([1.0, 2.0]), 1)


def test_groups_must_be_whole():
    with pytest.raises(ValueError, match="whole groups of 4"):
        core.grpo_advantages(torch.zeros(6), 4)


def test_discounted_returns_by_hand_and_naive_loop():
    # gamma 0.5, row 0 rewards [1, 2, 4] -> returns [1 + 0.5*(2 + 0.5*4), 2 + 0.5*4, 4] = [3, 4, 4]
    rewards = t([[1.0, 2.0, 4.0, 9.0], [1.0, 1.0, 9.0, 9.0]])
    got = core.discounted_returns(rewards, MASK, gamma=0.5)
    assert torch.allclose(got, t([[3.0, 4.0, 4.0, 0.0], [1.5, 1.0, 0.0, 0.0]]))
    torch.manual_seed(0)
    x, mask = torch.randn(3, 6), torch.rand(3, 6) > 0.3
    mask = torch.cumprod(mask.long(), 1).bool()
    mask[:, 0] = True
    got = core.discounted_returns(x, mask, 0.9)
    for b in range(3):
        for i in range(6):
            expected = sum(0.9 ** (j - i) * x[b, j].item() for j in range(i, 6) if mask[b, j]) if mask[b, i] else 0.0
            assert abs(got[b, i].item() - expected) < 1e-5


def test_reinforce_pp_normalises_returns_over_the_batch():
    # KL 0, scores 1 and 0 at the last tokens: returns [[1,1,1,pad],[0,0,pad,pad]], 5 real tokens,
    # mean 0.6, Bessel var = (3*0.16 + 2*0.36)/4 = 0.3 -> (1-0.6)/sqrt(0.3), (0-0.6)/sqrt(0.3)
    rewards, adv, returns = core.compute_advantages("reinforce++", t([1.0, 0.0]), torch.zeros(2, 4), MASK, 0.1)
    s = math.sqrt(0.3)
    assert torch.allclose(adv, t([[0.4 / s] * 3 + [0.0], [-0.6 / s] * 2 + [0.0, 0.0]]), atol=1e-4)
    assert torch.equal(adv, returns)


def test_reinforce_pp_baseline_subtracts_the_group_mean_first():
    # scores [3, 1] (G=2) -> [1, -1] at the last tokens; KL 0.5 per token with beta 0.2 -> -0.1 per token.
    # row 0 (3 tokens): rewards [-0.1, -0.1, 0.9], returns [0.7, 0.8, 0.9]; row 1 (2): [-0.1, -1.1] -> [-1.2, -1.1]
    kl = torch.full((2, 4), 0.5)
    rewards, adv, _ = core.compute_advantages("reinforce++_baseline", t([3.0, 1.0]), kl, MASK, 0.2, group_size=2)
    assert torch.allclose(rewards, t([[-0.1, -0.1, 0.9, 0.0], [-0.1, -1.1, 0.0, 0.0]]))
    returns = t([0.7, 0.8, 0.9, -1.2, -1.1])
    expected = (returns - returns.mean()) / returns.std()
    assert torch.allclose(adv[MASK], expected, atol=1e-4) and (adv[~MASK] == 0).all()


def test_outcome_estimators_put_the_kl_in_the_completion_reward():
    # rloo, beta 0.5, KL per completion [2, 0] (row 0: 3 tokens of 2/3): totals [1 - 1, 1 - 0] = [0, 1]
    # -> leave-one-out, G = 2: [0 - 1, 1 - 0] = [-1, 1] on every real token
    kl = t([[2 / 3, 2 / 3, 2 / 3, 5.0], [0.0, 0.0, 5.0, 5.0]])
    _, adv, _ = core.compute_advantages("rloo", t([1.0, 1.0]), kl, MASK, 0.5, group_size=2)
    assert torch.allclose(adv, t([[-1.0, -1.0, -1.0, 0.0], [1.0, 1.0, 0.0, 0.0]]), atol=1e-6)
    # grpo with the KL as a loss term (beta 0 in the reward): equal scores -> exactly 0 everywhere
    _, adv, _ = core.compute_advantages("grpo", t([1.0, 1.0]), kl, MASK, 0.0, group_size=2)
    assert torch.equal(adv, torch.zeros(2, 4))


def test_compute_advantages_gae_is_the_old_step():
    """The gae branch reproduces the trainer's former step 4 (shaped rewards -> GAE -> whiten)."""
    torch.manual_seed(0)
    scores, kl, values = torch.randn(2), torch.randn(2, 4) * 0.1, torch.randn(2, 4)
    kl, values = core.masked_fill_padding(kl, MASK), core.masked_fill_padding(values, MASK)
    rewards = core.shaped_rewards(scores, kl, MASK, 0.05)
    advantages, returns = core.gae(rewards, values, MASK, 1.0, 0.95)
    got = core.compute_advantages("gae", scores, kl, MASK, 0.05, values=values)
    assert torch.equal(got[0], rewards) and torch.equal(got[1], core.masked_whiten(advantages, MASK))
    assert torch.equal(got[2], returns)
    with pytest.raises(ValueError, match="unknown advantage_estimator"):
        core.compute_advantages("ppo", scores, kl, MASK, 0.05, values=values)
