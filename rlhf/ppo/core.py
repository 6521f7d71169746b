"""The PPO math, as pure functions: tensors and floats in, tensors out. No `self`, no config, no I/O.

Read top to bottom against the papers:
  - Ouyang et al. 2022, "Training language models to follow instructions with human feedback"
    (InstructGPT): reward = r(x, y) - beta * KL(pi || pi_sft) per token, PPO with a clipped objective.
  - Huang et al. 2024, "The N+ Implementation Details of RLHF with PPO" (N+): score only at the last
    real token, whitened advantages, clipped value loss, gamma = 1, lambda = 0.95.
  - Ziegler et al. 2019, "Fine-Tuning Language Models from Human Preferences": the adaptive KL controller.
  - Schulman, "Approximating KL divergence" (2020): the k1 and k3 estimators.

Shapes: b = batch, t = response length (padded), v = vocabulary. `response_mask` is True on real
response tokens (the stop token included) and False on padding after it, always.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

# --- log-probs and entropy -------------------------------------------------------------------


def logprobs_from_logits(logits: torch.Tensor, tokens: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Log-probability of each sampled token under softmax(logits / temperature).

    The policy, old and reference log-probs must all use the sampling temperature, or the KL
    penalty and the ratio compare two different distributions (N+ detail).
    logits (b, t, v), tokens (b, t) -> (b, t)"""
    logp = F.log_softmax(logits.float() / temperature, dim=-1)
    return logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def entropy_from_logits(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Entropy of softmax(logits / temperature) at each position. (b, t, v) -> (b, t)"""
    logp = F.log_softmax(logits.float() / temperature, dim=-1)
    return -(logp.exp() * logp).sum(-1)


def logprobs_and_entropy(logits: torch.Tensor, tokens: torch.Tensor, temperature: float = 1.0):
    """Both of the above from one log-softmax: the (b, t, v) tensor is the largest of a PPO step,
    so the training pass makes it once. The entropy is detached (a metric, not a loss term).
    (b, t, v), (b, t) -> logprobs (b, t), entropy (b, t)"""
    logp = F.log_softmax(logits.float() / temperature, dim=-1)
    logprobs = logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    with torch.no_grad():
        entropy = -(logp.exp() * logp).sum(-1)
    return logprobs, entropy


# --- masked statistics -----------------------------------------------------------------------


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of x over positions where mask is True (over `dim`, or all). x, mask (b, t)"""
    mask = mask.to(x.dtype)
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp_min(1.0)
    return (x * mask).sum(dim) / mask.sum(dim).clamp_min(1.0)


def masked_var(x: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance of x over masked positions (Bessel-corrected by default). x, mask (b, t) -> ()"""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    if unbiased:
        n = mask.sum().to(x.dtype)
        var = var * n / (n - 1).clamp_min(1.0)
    return var


def masked_whiten(
    x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, min_std: float = 0.0, eps: float = 1e-8
) -> torch.Tensor:
    """(x - mean) / std over masked positions; padding comes back as 0.

    `min_std` floors the std: when every score in a batch is equal the raw spread is numerical
    noise, and dividing by it would turn noise into unit-size advantages that Adam follows at full
    step (measured: docs/notes.md#equal-rewards). Flooring damps such batches instead. `shift_mean=False` keeps the
    mean (N+ whitens rewards that way). x, mask (b, t) -> (b, t)"""
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    std = torch.sqrt(var + eps).clamp_min(min_std)
    whitened = (x - mean) / std
    if not shift_mean:
        whitened = whitened + mean
    return whitened * mask.to(x.dtype)


# --- KL and rewards --------------------------------------------------------------------------


def kl_per_token(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str = "k1") -> torch.Tensor:
    """Per-token estimate of KL(policy || reference) from the sampled tokens.

    k1 = log p - log q: unbiased, can be negative per token (InstructGPT, N+).
    k3 = (q/p - 1) - log(q/p): unbiased and never negative, lower variance (Schulman 2020).
    (b, t), (b, t) -> (b, t)"""
    log_ratio = logprobs - ref_logprobs
    if estimator == "k1":
        return log_ratio
    if estimator == "k3":
        return torch.expm1(-log_ratio) + log_ratio
    raise ValueError(f"unknown KL estimator {estimator!r} (use 'k1' or 'k3')")


def last_token_index(response_mask: torch.Tensor) -> torch.Tensor:
    """Index of the last real token of each response (0 for an empty one). (b, t) -> (b,)"""
    return (response_mask.long().sum(-1) - 1).clamp_min(0)


def shaped_rewards(
    scores: torch.Tensor, kl: torch.Tensor, response_mask: torch.Tensor, kl_coef: float
) -> torch.Tensor:
    """Per-token reward: -kl_coef * KL at every real token, plus the score at the last real token.

    This is InstructGPT's r(x, y) - beta * log(pi / pi_sft), spread over tokens as in N+.
    scores (b,), kl (b, t), response_mask (b, t) -> rewards (b, t)"""
    rewards = -kl_coef * kl * response_mask.to(kl.dtype)
    last = last_token_index(response_mask)
    return rewards.scatter_add(1, last.unsqueeze(1), scores.to(rewards.dtype).unsqueeze(1))


# --- advantages ------------------------------------------------------------------------------


def gae(
    rewards: torch.Tensor, values: torch.Tensor, response_mask: torch.Tensor, gamma: float = 1.0, lam: float = 0.95
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016), backwards over the response.

    delta_t = r_t + gamma * V_{t+1} - V_t;  A_t = delta_t + gamma * lam * A_{t+1};  returns = A + V.
    Values and rewards past the last real token count as 0, so the episode ends there.
    rewards, values, response_mask (b, t) -> advantages (b, t), returns (b, t)"""
    mask = response_mask.to(values.dtype)
    values, rewards = values * mask, rewards * mask
    t_len = rewards.shape[1]
    next_advantage = torch.zeros_like(rewards[:, 0])
    advantages = []
    for t in reversed(range(t_len)):
        next_value = values[:, t + 1] if t + 1 < t_len else torch.zeros_like(values[:, t])
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        next_advantage = delta + gamma * lam * next_advantage
        advantages.append(next_advantage)
    advantages = torch.stack(advantages[::-1], dim=1) * mask
    return advantages, (advantages + values) * mask


# --- losses ----------------------------------------------------------------------------------


def policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    cliprange: float = 0.2,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO's clipped surrogate, as a loss to minimise (Schulman et al. 2017):

        loss = mean(max(-A * ratio, -A * clip(ratio, 1 - eps, 1 + eps)))

    Returns the loss and detached statistics: clipfrac (share of tokens where the clip was
    active), approx_kl (0.5 * mean(log ratio^2), as in N+), ratio (mean).
    (b, t) each -> (), dict"""
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    loss = masked_mean(torch.maximum(unclipped, clipped), response_mask)
    with torch.no_grad():
        stats = {
            "clipfrac": masked_mean((clipped > unclipped).float(), response_mask),
            "approx_kl": 0.5 * masked_mean(log_ratio**2, response_mask),
            "ratio": masked_mean(ratio, response_mask),
        }
    return loss, stats


def value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    response_mask: torch.Tensor,
    cliprange_value: float = 0.2,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped value loss (N+; OpenAI lm-human-preferences):

        loss = 0.5 * mean(max((V - R)^2, (clip(V, V_old - eps, V_old + eps) - R)^2))

    (b, t) each -> (), {"clipfrac"}"""
    clipped_values = old_values + torch.clamp(values - old_values, -cliprange_value, cliprange_value)
    unclipped_loss = (values - returns) ** 2
    clipped_loss = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(unclipped_loss, clipped_loss), response_mask)
    with torch.no_grad():
        stats = {"clipfrac": masked_mean((clipped_loss > unclipped_loss).float(), response_mask)}
    return loss, stats


def explained_variance(values: torch.Tensor, returns: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """1 - Var(returns - values) / Var(returns): 1 is a perfect critic, 0 no better than a
    constant, negative worse. (b, t) each -> ()"""
    var_returns = masked_var(returns, response_mask)
    return 1.0 - masked_var(returns - values, response_mask) / var_returns.clamp_min(1e-8)


# --- KL controllers --------------------------------------------------------------------------


def adaptive_kl_coef(kl_coef: float, current_kl: float, target_kl: float, horizon: int, n_steps: int) -> float:
    """Ziegler et al. 2019, eq. 2: move beta toward the KL target, proportionally, clipped.

        e = clip(KL / target - 1, -0.2, 0.2);  beta <- beta * (1 + e * n_steps / horizon)"""
    error = min(max(current_kl / target_kl - 1.0, -0.2), 0.2)
    return kl_coef * (1.0 + error * n_steps / horizon)


@dataclass
class FixedKLController:
    """A constant KL coefficient (InstructGPT used a fixed beta = 0.02)."""

    value: float

    def update(self, current_kl: float, n_steps: int) -> float:
        return self.value


@dataclass
class AdaptiveKLController:
    """Holds beta between steps; the rule itself is `adaptive_kl_coef`."""

    value: float
    target: float
    horizon: int

    def update(self, current_kl: float, n_steps: int) -> float:
        self.value = adaptive_kl_coef(self.value, current_kl, self.target, self.horizon, n_steps)
        return self.value
