"""The reward model's loss on rankings: pure functions of scores, no model, no I/O.

A ranking of K completions lists tiers best first (`[[2], [1, 3], [0]]` is C > B = D > A). Each
completion is scored once; every two completions in different tiers make a pair (better, worse),
and the Bradley-Terry loss of a pair is

    loss(better, worse) = -log sigmoid(r_better - r_worse - margin)          (TRL's RewardTrainer)

InstructGPT (Ouyang et al. 2022, eq. 1) averages the pair losses of one ranking and then averages
over rankings, so a ranking of K costs K forward passes instead of 2 * C(K, 2).

Ties give no pair by default. With a tie-aware model they add a term; with d = r_i - r_j:

  Davidson (1970), nu > 0 (nu -> 0 is plain Bradley-Terry):
    P(i > j) = 1 / (1 + e^-d + nu e^(-d/2))      -log P = logsumexp(0, -d, log nu - d/2)
    P(i = j) = nu / (e^(d/2) + e^(-d/2) + nu)    -log P = logsumexp(d/2, -d/2, log nu) - log nu
  Rao-Kupper (1967), theta = e^alpha > 1:
    P(i > j) = sigmoid(d - alpha)                -log P = softplus(alpha - d)
    P(i = j) = (theta^2 - 1) e^r_i e^r_j / ((e^r_i + theta e^r_j)(e^r_j + theta e^r_i))
                                                 -log P = softplus(alpha - d) + softplus(alpha + d)
                                                          - log(e^(2 alpha) - 1)
A tie-aware model replaces the strict pairs' loss too (its P(i > j) has room for ties).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

TIE_LOSSES = ("none", "davidson", "rao_kupper")


@dataclass
class RankingIndex:
    """Which flat scores form pairs and ties, for a batch of rankings scored in one pass.

    `better[p]`, `worse[p]` index the flat score vector; `pair_group[p]` is the ranking the pair came
    from; `tie_a`, `tie_b`, `tie_group` likewise for two completions sharing a tier."""

    better: torch.Tensor  # (p,) long
    worse: torch.Tensor  # (p,) long
    pair_group: torch.Tensor  # (p,) long
    tie_a: torch.Tensor  # (t,) long
    tie_b: torch.Tensor  # (t,) long
    tie_group: torch.Tensor  # (t,) long
    n_groups: int

    def to(self, device) -> "RankingIndex":
        moved = {k: v.to(device) if torch.is_tensor(v) else v for k, v in self.__dict__.items()}
        return RankingIndex(**moved)


def ranking_index(rankings: list[list[list[int]]]) -> RankingIndex:
    """Pairs and ties of several rankings whose completions are concatenated in order.

    Ranking g's completion i sits at flat position offset_g + i, where offset_g is the number of
    completions in rankings before g (each ranking places all its completions in its tiers)."""
    better, worse, pair_group, tie_a, tie_b, tie_group = [], [], [], [], [], []
    offset = 0
    for g, tiers in enumerate(rankings):
        for hi, upper in enumerate(tiers):
            for lower in tiers[hi + 1:]:
                for b in upper:
                    for w in lower:
                        better.append(offset + b), worse.append(offset + w), pair_group.append(g)
            for x in range(len(upper)):
                for y in range(x + 1, len(upper)):
                    tie_a.append(offset + upper[x]), tie_b.append(offset + upper[y]), tie_group.append(g)
        offset += sum(len(t) for t in tiers)

    def long(values):
        return torch.tensor(values, dtype=torch.long)

    return RankingIndex(long(better), long(worse), long(pair_group), long(tie_a), long(tie_b), long(tie_group),
                        len(rankings))


def pair_nll(delta: torch.Tensor, tie_loss: str = "none", tie_strength: float = 1.0) -> torch.Tensor:
    """-log P(better beats worse) given delta = r_better - r_worse (- margin).  (p,) -> (p,)"""
    if tie_loss == "none":
        return -F.logsigmoid(delta)
    if tie_loss == "davidson":
        log_nu = torch.full_like(delta, math.log(tie_strength))
        return torch.logsumexp(torch.stack([torch.zeros_like(delta), -delta, log_nu - delta / 2]), dim=0)
    if tie_loss == "rao_kupper":
        return F.softplus(tie_strength - delta)
    raise ValueError(f"unknown tie_loss {tie_loss!r} (use one of {TIE_LOSSES})")


def tie_nll(delta: torch.Tensor, tie_loss: str, tie_strength: float = 1.0) -> torch.Tensor:
    """-log P(tie) given delta = r_i - r_j for two completions in one tier.  (t,) -> (t,)"""
    if tie_loss == "davidson":
        log_nu = math.log(tie_strength)
        terms = torch.stack([delta / 2, -delta / 2, torch.full_like(delta, log_nu)])
        return torch.logsumexp(terms, dim=0) - log_nu
    if tie_loss == "rao_kupper":
        alpha = tie_strength
        # log(e^(2a) - 1) = 2a + log(1 - e^(-2a)), stable for small and large a.
        log_theta2_minus_1 = 2 * alpha + math.log(-math.expm1(-2 * alpha))
        return F.softplus(alpha - delta) + F.softplus(alpha + delta) - log_theta2_minus_1
    raise ValueError(f"tie_loss {tie_loss!r} has no tie term (use 'davidson' or 'rao_kupper')")


def group_mean(values: torch.Tensor, group: torch.Tensor, n_groups: int) -> torch.Tensor:
    """Mean of `values` within each group, then over the groups that have any value.  (n,) -> ()

    A ranking that is one big tie has no pair; it is left out rather than counted as zero loss."""
    sums = torch.zeros(n_groups, dtype=values.dtype, device=values.device).index_add(0, group, values)
    counts = torch.zeros(n_groups, dtype=values.dtype, device=values.device).index_add(
        0, group, torch.ones_like(values))
    present = counts > 0
    if not bool(present.any()):
        return values.sum() * 0.0  # keeps the graph alive for a batch of all-tie rankings
    return (sums[present] / counts[present]).mean()


def ranking_loss(
    scores: torch.Tensor,
    index: RankingIndex,
    margin: torch.Tensor | None = None,
    tie_loss: str = "none",
    tie_strength: float = 1.0,
) -> torch.Tensor:
    """InstructGPT's ranking loss: pair (and tie) losses averaged per ranking, then over rankings.

    scores: (n,) one per completion, rankings concatenated. margin: (n_groups,) per ranking (TRL's
    pair `margin`, 0 for rankings without one), subtracted from every pair's score difference.
    Returns a scalar."""
    if tie_loss not in TIE_LOSSES:
        raise ValueError(f"unknown tie_loss {tie_loss!r} (use one of {TIE_LOSSES})")
    delta = scores[index.better] - scores[index.worse]  # (p,)
    if margin is not None:
        delta = delta - margin[index.pair_group]
    losses, groups = [pair_nll(delta, tie_loss, tie_strength)], [index.pair_group]
    if tie_loss != "none" and index.tie_a.numel():
        losses.append(tie_nll(scores[index.tie_a] - scores[index.tie_b], tie_loss, tie_strength))  # (t,)
        groups.append(index.tie_group)
    return group_mean(torch.cat(losses), torch.cat(groups), index.n_groups)


def pair_stats(scores: torch.Tensor, index: RankingIndex) -> dict[str, torch.Tensor]:
    """Per-pair accuracy (r_better > r_worse, as TRL counts it) and margin (r_better - r_worse).  (p,) each"""
    delta = scores[index.better] - scores[index.worse]
    return {"correct": (delta > 0).float(), "margin": delta}


def center_penalty(scores: torch.Tensor, group: torch.Tensor, n_groups: int) -> torch.Tensor:
    """Eisenstein et al. 2023's reward centring, as TRL's `center_rewards_coefficient` applies it:
    mean over rankings of (2 * mean score of the ranking)^2, which for a pair is TRL's
    (r_chosen + r_rejected)^2. It keeps rewards near 0 without changing which answer wins.
    scores: (n,) flat; group: (n,) ranking of each score. Returns a scalar."""
    sums = torch.zeros(n_groups, dtype=scores.dtype, device=scores.device).index_add(0, group, scores)
    counts = torch.zeros(n_groups, dtype=scores.dtype, device=scores.device).index_add(0, group, torch.ones_like(scores))
    present = counts > 0
    return (2 * sums[present] / counts[present]).square().mean()
