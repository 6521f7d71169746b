"""The ranking loss against values worked out by hand, and against naive pair-by-pair loops."""

import math

import pytest
import torch
import torch.nn.functional as F

from rlhf.reward.loss import pair_nll, pair_stats, ranking_index, ranking_loss, tie_nll

# Completions A, B, C, D with scores 0.0, 1.0, 2.0, 0.5, ranked C > B = D > A.
SCORES = torch.tensor([0.0, 1.0, 2.0, 0.5])
TIERS = [[2], [1, 3], [0]]


def test_pairs_and_ties_of_a_four_way_ranking_with_a_tie():
    index = ranking_index([TIERS])
    pairs = sorted(zip(index.better.tolist(), index.worse.tolist()))
    # C beats B, D and A; B and D each beat A; B = D is no pair.  5 pairs = 2*C(4,2) - ... by hand:
    # C(4,2) = 6 unordered pairs, minus the tied one {B, D}.
    assert pairs == [(1, 0), (2, 0), (2, 1), (2, 3), (3, 0)]
    assert list(zip(index.tie_a.tolist(), index.tie_b.tolist())) == [(1, 3)]
    assert index.pair_group.tolist() == [0] * 5 and index.n_groups == 1


def test_loss_of_the_four_way_ranking_by_hand():
    # d = r_better - r_worse:  C-B = 1.0, C-D = 1.5, C-A = 2.0, B-A = 1.0, D-A = 0.5
    # -log sigmoid(d) = log(1 + e^-d):
    #   d=1.0: log(1 + 0.3678794) = 0.3132617   (twice)
    #   d=1.5: log(1 + 0.2231302) = 0.2014133
    #   d=2.0: log(1 + 0.1353353) = 0.1269280
    #   d=0.5: log(1 + 0.6065307) = 0.4740770
    # sum = 2*0.3132617 + 0.2014133 + 0.1269280 + 0.4740770 = 1.4289417; mean over 5 pairs = 0.2857883
    loss = ranking_loss(SCORES, ranking_index([TIERS]))
    assert loss.item() == pytest.approx(0.2857883, abs=1e-6)


def test_grouped_loss_is_the_mean_of_the_pairwise_losses():
    scores = torch.randn(4, generator=torch.Generator().manual_seed(1))
    pairwise = [-F.logsigmoid(scores[b] - scores[w]) for b, w, _ in [(2, 1, 1), (2, 3, 1), (2, 0, 2), (1, 0, 1), (3, 0, 1)]]
    expected = torch.stack(pairwise).mean()
    assert ranking_loss(scores, ranking_index([TIERS])).item() == pytest.approx(expected.item(), abs=1e-6)


def test_several_rankings_average_per_ranking_then_over_rankings():
    # Rankings of 4, 2 and 3 completions concatenated (9 scores); the third is one big tie (no pair).
    rankings = [TIERS, [[1], [0]], [[0, 1, 2]]]
    scores = torch.randn(9, generator=torch.Generator().manual_seed(2))
    per_ranking, all_pairs, offset = [], [], 0
    for tiers in rankings:  # naive loop: every pair of every ranking, one at a time
        losses = []
        for hi in range(len(tiers)):
            for lo in range(hi + 1, len(tiers)):
                for b in tiers[hi]:
                    for w in tiers[lo]:
                        losses.append(-F.logsigmoid(scores[offset + b] - scores[offset + w]))
        all_pairs += losses
        if losses:
            per_ranking.append(torch.stack(losses).mean())
        offset += sum(map(len, tiers))
    expected = torch.stack(per_ranking).mean()  # the all-tie ranking is left out, not counted as 0
    assert ranking_loss(scores, ranking_index(rankings)).item() == pytest.approx(expected.item(), abs=1e-6)
    # The pair-weighted mean (5 pairs vs 1) differs, so the test tells the two averages apart.
    assert torch.stack(all_pairs).mean().item() != pytest.approx(expected.item(), abs=1e-3)


def test_margin_by_hand_and_equal_to_trls_pair_loss():
    # Two pairs (chosen, rejected) = (1.0, 0.0) with margin 0.5, and (1.0, 0.0) with margin 0:
    #   -log sigmoid(1.0 - 0.0 - 0.5) = log(1 + e^-0.5) = 0.4740770
    #   -log sigmoid(1.0 - 0.0 - 0.0) = log(1 + e^-1.0) = 0.3132617
    #   mean = (0.4740770 + 0.3132617) / 2 = 0.3936693
    scores = torch.tensor([1.0, 0.0, 1.0, 0.0])
    index = ranking_index([[[0], [1]], [[0], [1]]])
    loss = ranking_loss(scores, index, margin=torch.tensor([0.5, 0.0]))
    assert loss.item() == pytest.approx(0.3936693, abs=1e-6)

    # On pairs, the grouped loss is TRL RewardTrainer.compute_loss's formula, line for line:
    # loss = -nn.functional.logsigmoid(rewards_chosen - rewards_rejected - inputs["margin"]).mean()
    g = torch.Generator().manual_seed(3)
    chosen, rejected, margin = torch.randn(16, generator=g), torch.randn(16, generator=g), torch.rand(16, generator=g)
    trl = -F.logsigmoid(chosen - rejected - margin).mean()
    flat = torch.stack([chosen, rejected], dim=1).reshape(-1)  # c0, r0, c1, r1, ...
    ours = ranking_loss(flat, ranking_index([[[0], [1]]] * 16), margin=margin)
    assert ours.item() == pytest.approx(trl.item(), abs=1e-6)


def test_davidson_tie_loss_by_hand():
    # nu = 1.  Strict pairs: -log P(i > j) = log(1 + e^-d + e^(-d/2))
    #   d=1.0: log(1 + 0.3678794 + 0.6065307) = log(1.9744101) = 0.6802697   (twice)
    #   d=1.5: log(1 + 0.2231302 + 0.4723666) = log(1.6954967) = 0.5279757
    #   d=2.0: log(1 + 0.1353353 + 0.3678794) = log(1.5032147) = 0.4076060
    #   d=0.5: log(1 + 0.6065307 + 0.7788008) = log(2.3853314) = 0.8693381
    # Tie B = D, d = 1.0 - 0.5 = 0.5: -log P(tie) = log(e^0.25 + e^-0.25 + 1) - log 1
    #   = log(1.2840254 + 0.7788008 + 1) = log(3.0628262) = 1.1193381
    # 6 terms in the ranking: (2*0.6802697 + 0.5279757 + 0.4076060 + 0.8693381 + 1.1193381) / 6 = 0.7141329
    assert tie_nll(torch.tensor([0.5]), "davidson", 1.0).item() == pytest.approx(1.1193381, abs=1e-6)
    loss = ranking_loss(SCORES, ranking_index([TIERS]), tie_loss="davidson", tie_strength=1.0)
    assert loss.item() == pytest.approx(0.7141329, abs=1e-6)


def test_rao_kupper_tie_loss_by_hand():
    # alpha = 0.5 (theta = e^0.5). Strict pairs: -log sigmoid(d - 0.5) = softplus(0.5 - d)
    #   d=1.0: 0.4740770 (twice), d=1.5: 0.3132617, d=2.0: 0.2014133, d=0.5: log 2 = 0.6931472
    # Tie, d = 0.5: softplus(0) + softplus(1) - log(e^1 - 1) = 0.6931472 + 1.3132617 - 0.5413249 = 1.4650840
    # mean of 6 terms: (2*0.4740770 + 0.3132617 + 0.2014133 + 0.6931472 + 1.4650840) / 6 = 0.6035100
    assert tie_nll(torch.tensor([0.5]), "rao_kupper", 0.5).item() == pytest.approx(1.4650840, abs=1e-6)
    loss = ranking_loss(SCORES, ranking_index([TIERS]), tie_loss="rao_kupper", tie_strength=0.5)
    assert loss.item() == pytest.approx(0.6035100, abs=1e-6)


@pytest.mark.parametrize("tie_loss,strength", [("davidson", 0.7), ("rao_kupper", 0.3), ("davidson", 5.0)])
def test_win_lose_and_tie_probabilities_sum_to_one(tie_loss, strength):
    d = torch.linspace(-6, 6, 25, dtype=torch.float64)
    total = (torch.exp(-pair_nll(d, tie_loss, strength)) + torch.exp(-pair_nll(-d, tie_loss, strength))
             + torch.exp(-tie_nll(d, tie_loss, strength)))
    assert torch.allclose(total, torch.ones_like(total), atol=1e-12)


def test_davidson_with_vanishing_nu_is_bradley_terry():
    d = torch.linspace(-4, 4, 9, dtype=torch.float64)
    assert torch.allclose(pair_nll(d, "davidson", 1e-12), -F.logsigmoid(d), atol=1e-9)


def test_ties_change_the_loss_only_when_a_tie_loss_is_chosen():
    index = ranking_index([[[0, 1]]])  # one tie, no pair
    scores = torch.tensor([0.3, -0.2], requires_grad=True)
    plain = ranking_loss(scores, index)
    assert plain.item() == 0.0
    plain.backward()  # a batch of all-tie rankings still backpropagates (zero gradient)
    assert torch.equal(scores.grad, torch.zeros(2))
    tied = ranking_loss(scores, index, tie_loss="davidson")
    # d = 0.5: log(e^0.25 + e^-0.25 + 1) = 1.1193381 (as above)
    assert tied.item() == pytest.approx(1.1193381, abs=1e-6)


def test_gradient_pushes_better_up_and_worse_down():
    scores = SCORES.clone().requires_grad_(True)
    ranking_loss(scores, ranking_index([TIERS])).backward()
    # C (index 2) only wins, A (index 0) only loses
    assert scores.grad[2] < 0 < scores.grad[0]


def test_pair_stats_accuracy_and_margin():
    # pairs d = 1.0, 1.5, 2.0, 1.0, 0.5 -> all correct, mean margin 6.0 / 5 = 1.2
    stats = pair_stats(SCORES, ranking_index([TIERS]))
    assert stats["correct"].mean().item() == 1.0
    assert stats["margin"].mean().item() == pytest.approx(1.2)
    swapped = pair_stats(SCORES.flip(0), ranking_index([TIERS]))  # scores 0.5, 2.0, 1.0, 0.0
    # C-B = 1.0 - 2.0 = -1.0, C-D = 1.0, C-A = 1.0 - 0.5 = 0.5, B-A = 1.5, D-A = -0.5 -> 3 of 5 correct
    assert swapped["correct"].mean().item() == pytest.approx(0.6)


def test_unknown_tie_loss_is_an_error():
    with pytest.raises(ValueError, match="tie_loss"):
        ranking_loss(SCORES, ranking_index([TIERS]), tie_loss="bogus")
    assert math.isfinite(ranking_loss(SCORES, ranking_index([TIERS]), tie_loss="none").item())


def test_center_penalty_is_trls_for_pairs_and_the_mean_for_rankings():
    from rlhf.reward.loss import center_penalty

    # two pairs: TRL's mean((r_c + r_r)^2) = ((1 + 2)^2 + (-1 + 0.5)^2) / 2
    scores = torch.tensor([1.0, 2.0, -1.0, 0.5])
    assert center_penalty(scores, torch.tensor([0, 0, 1, 1]), 2).item() == pytest.approx((9 + 0.25) / 2)
    # a ranking of 4 with mean 1 and a centred one: ((2 * 1)^2 + 0) / 2
    scores = torch.tensor([0.0, 1.0, 2.0, 1.0, -1.0, 1.0])
    assert center_penalty(scores, torch.tensor([0, 0, 0, 0, 1, 1]), 2).item() == pytest.approx(2.0)
