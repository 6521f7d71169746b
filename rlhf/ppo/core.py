"""The PPO math, as pure functions: tensors and floats in, tensors out. No `self`, no config, no I/O.

Read top to bottom against the papers:
  - Ouyang et al. 2022, "Training language models to follow instructions with human feedback"
    (InstructGPT): reward = r(x, y) - beta * KL(pi || pi_sft) per token, PPO with a clipped objective.
  - Huang et al. 2024, "The N+ Implementation Details of RLHF with PPO" (N+): score only at the last
    real token, whitened advantages, clipped value loss, gamma = 1, lambda = 0.95.
  - Ziegler et al. 2019, "Fine-Tuning Language Models from Human Preferences": the adaptive KL controller.
  - Schulman, "Approximating KL divergence" (2020): the k1, k2 and k3 estimators.
  - Critic-free estimators (a group of G completions per prompt, no value model):
    Shao et al. 2024 (DeepSeekMath, GRPO); Liu et al. 2025, "Understanding R1-Zero-like Training"
    (Dr. GRPO); Ahmadian et al. 2024, "Back to Basics" (RLOO); Hu 2025, "REINFORCE++".

Shapes: b = batch, t = response length (padded), v = vocabulary, G = completions per prompt (a
group: rows [k*G, (k+1)*G) share prompt k). `response_mask` is True on real response tokens (the
stop token included) and False on padding after it, always.

Padding is masked with `torch.where`, never by multiplying: a NaN or inf sitting in a padding slot
(an overflow in a forward pass) would survive `x * 0` and spread to the whole batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

AllReduce = Callable[[torch.Tensor], torch.Tensor]
"""Sums a tensor over the processes of a distributed run and returns the sum (every process gets
the same), e.g. `lambda t: accelerator.reduce(t, reduction="sum")`. The batch statistics that take
one (whitening, REINFORCE++'s normalisation) are then those of all processes' rollouts together,
as verl and OpenRLHF compute them, so a run on two processes of batch b normalises as one process
of batch 2b would. None: this process's batch alone (TRL's PPOTrainer whitens per process)."""

# --- log-probs and entropy -------------------------------------------------------------------


ROWS_PER_CHUNK = 4  # rows of a (b, t, v) tensor handled at once where no gradient needs the whole


def logprobs_from_logits(logits: torch.Tensor, tokens: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Log-probability of each sampled token under softmax(logits / temperature).

    The policy, old and reference log-probs must all use the sampling temperature, or the KL
    penalty and the ratio compare two different distributions (N+ detail).
    Without gradients (reference and old log-probs) it runs ROWS_PER_CHUNK rows at a time, so the
    (b, t, v) log-softmax never exists whole: the same values, a fraction of the memory.
    logits (b, t, v), tokens (b, t) -> (b, t)"""
    if logits.requires_grad and torch.is_grad_enabled():
        return _gather_logprobs(logits, tokens, temperature)
    return torch.cat([_gather_logprobs(part, tok, temperature)
                      for part, tok in zip(logits.split(ROWS_PER_CHUNK), tokens.split(ROWS_PER_CHUNK))])


def _gather_logprobs(logits: torch.Tensor, tokens: torch.Tensor, temperature: float) -> torch.Tensor:
    return F.log_softmax(logits.float() / temperature, dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


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
    with torch.no_grad():  # row chunks: exp(logp) * logp would be two more (b, t, v) tensors
        entropy = torch.cat([-(part.exp() * part).sum(-1) for part in logp.detach().split(ROWS_PER_CHUNK)])
    return logprobs, entropy


# --- masked statistics -----------------------------------------------------------------------


def masked_fill_padding(x: torch.Tensor, mask: torch.Tensor, value: float = 0.0) -> torch.Tensor:
    """x at real positions, `value` at padding, whatever x holds there (NaN and inf included).
    x, mask (b, t) -> (b, t)"""
    return torch.where(mask.bool(), x, torch.as_tensor(value, dtype=x.dtype, device=x.device))


def masked_sum(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Sum of x over positions where mask is True (over `dim`, or all). x, mask (b, t)"""
    x = masked_fill_padding(x, mask)
    return x.sum() if dim is None else x.sum(dim)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None,
                all_reduce: AllReduce | None = None) -> torch.Tensor:
    """Mean of x over positions where mask is True (over `dim`, or all). x, mask (b, t).
    With `all_reduce` (and dim None) the mean of every process's positions together."""
    if all_reduce is not None and dim is None:
        total = all_reduce(torch.stack([masked_sum(x, mask), mask.to(x.dtype).sum()]))
        return total[0] / total[1].clamp_min(1.0)
    count = mask.to(x.dtype).sum() if dim is None else mask.to(x.dtype).sum(dim)
    return masked_sum(x, mask, dim) / count.clamp_min(1.0)


def masked_var(x: torch.Tensor, mask: torch.Tensor, unbiased: bool = True,
               all_reduce: AllReduce | None = None) -> torch.Tensor:
    """Variance of x over masked positions (Bessel-corrected by default); with `all_reduce`, over
    every process's positions together (two reductions: the mean, then the squared deviations).
    x, mask (b, t) -> ()"""
    mean = masked_mean(x, mask, all_reduce=all_reduce)
    var = masked_mean((x - mean) ** 2, mask, all_reduce=all_reduce)
    if unbiased:
        n = mask.sum().to(x.dtype)
        if all_reduce is not None:
            n = all_reduce(n.reshape(1))[0]
        var = var * n / (n - 1).clamp_min(1.0)
    return var


def masked_whiten(
    x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, min_std: float = 0.0, eps: float = 1e-8,
    all_reduce: AllReduce | None = None,
) -> torch.Tensor:
    """(x - mean) / std over masked positions; padding comes back as 0.

    `min_std` floors the std (default 0: no floor beyond `eps`). The trainer does not rely on it
    for batches whose rewards are all equal (docs/notes.md#equal-rewards): it skips the policy
    update of such a step instead (`PPOConfig.min_reward_std`). `shift_mean=False` keeps the mean
    (N+ whitens rewards that way). `all_reduce` takes the mean and std over every process's
    batch together (see `AllReduce`). x, mask (b, t) -> (b, t)"""
    mean, var = masked_mean(x, mask, all_reduce=all_reduce), masked_var(x, mask, all_reduce=all_reduce)
    std = torch.sqrt(var + eps).clamp_min(min_std)
    whitened = (x - mean) / std
    if not shift_mean:
        whitened = whitened + mean
    return masked_fill_padding(whitened, mask)


# --- KL and rewards --------------------------------------------------------------------------


KL_ESTIMATORS = ("k1", "k2", "k3")
K3_LOG_RATIO_CLAMP = 20.0  # |log(q/p)| fed to exp(): e^20 ~ 4.9e8, finite in float32 and bf16
K3_CLAMP = 10.0  # the largest k3 a token counts for (verl's low_var_kl); reached at log(q/p) ~ 2.6


def kl_per_token(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str = "k1") -> torch.Tensor:
    """Per-token estimate of KL(policy || reference) from the sampled tokens.

    k1 = log p - log q: unbiased, can be negative per token (InstructGPT, N+). Not clamped (as
    verl's "kl"; OpenRLHF clamps every estimator to [-10, 10]).
    k2 = (log p - log q)^2 / 2: biased, never negative, low variance (Schulman 2020; verl's "mse").
    As a loss term (`kl_loss`) its gradient is, in expectation over tokens sampled from p, the
    gradient of KL(p || q) itself, which k3's is not (it follows KL(q || p)): Tang & Munos 2025,
    "On a few pitfalls in KL divergence gradient estimation for RL".
    k3 = (q/p - 1) - log(q/p): unbiased and never negative, lower variance (Schulman 2020).
    Clamped as verl's low_var_kl: log(q/p) to [-20, 20] before the exponential, then k3 to at
    most K3_CLAMP. Unclamped, a token the policy has made far less likely than the reference
    (log(q/p) > 88 in float32) gives exp() = inf: the KL loss is inf and its gradient NaN (a clamp
    after the exponential still leaves 0 * inf = NaN in backward), and from log(q/p) ~ 10 on one
    token's e^(log q/p) gradient outweighs the batch. A token past the cap adds K3_CLAMP and no
    gradient. (b, t), (b, t) -> (b, t)"""
    log_ratio = logprobs - ref_logprobs
    if estimator == "k1":
        return log_ratio
    if estimator == "k2":
        return 0.5 * log_ratio.square()
    if estimator == "k3":
        ref_over_policy = (-log_ratio).clamp(-K3_LOG_RATIO_CLAMP, K3_LOG_RATIO_CLAMP)  # log(q/p)
        return (torch.expm1(ref_over_policy) - ref_over_policy).clamp(max=K3_CLAMP)
    raise ValueError(f"unknown KL estimator {estimator!r} (use one of {', '.join(KL_ESTIMATORS)})")


def last_token_index(response_mask: torch.Tensor) -> torch.Tensor:
    """Index of the last real token of each response (0 for an empty one). (b, t) -> (b,)"""
    return (response_mask.long().sum(-1) - 1).clamp_min(0)


def shaped_rewards(
    scores: torch.Tensor, kl: torch.Tensor, response_mask: torch.Tensor, kl_coef: float
) -> torch.Tensor:
    """Per-token reward: -kl_coef * KL at every real token, plus the score at the last real token.

    This is InstructGPT's r(x, y) - beta * log(pi / pi_sft), spread over tokens as in N+.
    scores (b,), kl (b, t), response_mask (b, t) -> rewards (b, t)"""
    rewards = masked_fill_padding(-kl_coef * kl, response_mask)
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
    values, rewards = masked_fill_padding(values, response_mask), masked_fill_padding(rewards, response_mask)
    t_len = rewards.shape[1]
    next_advantage = torch.zeros_like(rewards[:, 0])
    advantages = []
    for t in reversed(range(t_len)):
        next_value = values[:, t + 1] if t + 1 < t_len else torch.zeros_like(values[:, t])
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        next_advantage = delta + gamma * lam * next_advantage
        advantages.append(next_advantage)
    advantages = masked_fill_padding(torch.stack(advantages[::-1], dim=1), response_mask)
    return advantages, masked_fill_padding(advantages + values, response_mask)


# --- critic-free advantages ---------------------------------------------------------------------

ADVANTAGE_ESTIMATORS = ("gae", "grpo", "dr_grpo", "rloo", "reinforce++", "reinforce++_baseline")
GROUP_ESTIMATORS = ("grpo", "dr_grpo", "rloo", "reinforce++_baseline")  # need G >= 2 completions per prompt
# Whose advantages are whitened over the batch, so that rewards without spread become noise scaled
# to unit size (the trainer's min_reward_std guard); the others give exactly 0 then.
WHITENED_ESTIMATORS = ("gae", "reinforce++", "reinforce++_baseline")


def as_groups(x: torch.Tensor, group_size: int) -> torch.Tensor:
    """(b,) -> (b / G, G): row k holds the G completions of prompt k. Raises ValueError when b is
    not a whole number of groups."""
    if group_size < 1 or x.shape[0] % group_size:
        raise ValueError(f"{x.shape[0]} completions cannot be cut into whole groups of {group_size}")
    return x.reshape(-1, group_size)


def _need_a_group(group_size: int, name: str) -> None:
    """A group estimator compares a completion with the others of its prompt: with G = 1 there
    are none (grpo's Bessel std of one value is NaN, the centred reward always 0)."""
    if group_size < 2:
        raise ValueError(f"{name} needs at least 2 completions per prompt (num_generations >= 2), got {group_size}")


def _centered(groups: torch.Tensor) -> torch.Tensor:
    """r - group mean, exactly 0 in a group whose rewards are all equal (the mean of equal floats
    can differ from them in the last bit). (n, G) -> (n, G)"""
    centered = groups - groups.mean(-1, keepdim=True)
    no_spread = (groups == groups[:, :1]).all(-1, keepdim=True)
    return torch.where(no_spread, torch.zeros_like(centered), centered)


SCALE_REWARDS = ("group", "batch", "none")


def grpo_advantages(rewards: torch.Tensor, group_size: int, scale_rewards: str = "group", eps: float = 1e-6,
                    all_reduce: AllReduce | None = None) -> torch.Tensor:
    """GRPO's outcome advantage (Shao et al. 2024, DeepSeekMath sec. 4.1.2): each completion's
    reward minus its group's mean, divided by a std (Bessel-corrected, as torch.std and verl;
    eps = 1e-6 as verl). Every token of a completion gets this value. `scale_rewards` (TRL's name
    and values) picks the std:
      group  the group's own (DeepSeekMath; TRL's default, with eps 1e-4; OpenRLHF group_norm 1e-9);
      batch  that of every reward of the batch, every process's with `all_reduce` (as TRL gathers
             them): groups keep their spreads relative to each other, where the group std makes a
             spread of 0.1 count as much as one of 1 (Liu et al. 2025, "Part I: Tricks or Traps?",
             found it the more robust);
      none   no division: Dr. GRPO (see `dr_grpo_advantages`).
    A group whose rewards are all equal gets exactly 0: it carries no learning signal.
    Raises ValueError for G < 2 or an unknown `scale_rewards`.
    rewards (b,) -> advantages (b,)"""
    if scale_rewards not in SCALE_REWARDS:
        raise ValueError(f"unknown scale_rewards {scale_rewards!r} (use one of {', '.join(SCALE_REWARDS)})")
    _need_a_group(group_size, "Dr. GRPO" if scale_rewards == "none" else "GRPO")
    groups = as_groups(rewards.float(), group_size)
    centered = _centered(groups)
    if scale_rewards == "group":
        centered = centered / (groups.std(-1, keepdim=True) + eps)
    elif scale_rewards == "batch":
        centered = centered / (_batch_std(groups.reshape(-1), all_reduce) + eps)
    return centered.reshape(-1)


def _batch_std(x: torch.Tensor, all_reduce: AllReduce | None = None) -> torch.Tensor:
    """Bessel-corrected std of x (n,), over every process's values with `all_reduce`; 0 for one
    value. Shifted by this process's first value before the squares, so large equal rewards
    (1000.0 each) give 0 and not float noise; with `all_reduce` the shift is every process's
    first value's mean, the same number everywhere. -> ()"""
    if all_reduce is None:
        shift = x[0]
    else:
        first = all_reduce(torch.stack([x[0], x.new_ones(())]))
        shift = first[0] / first[1]
    d = x - shift
    sums = torch.stack([d.sum(), (d * d).sum(), x.new_tensor(float(x.numel()))])
    if all_reduce is not None:
        sums = all_reduce(sums)
    total, squares, n = sums
    if n < 2:
        return x.new_zeros(())
    return ((squares - total * total / n) / (n - 1)).clamp_min(0.0).sqrt()


def dr_grpo_advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """Dr. GRPO (Liu et al. 2025, "Understanding R1-Zero-like Training", sec. 3.2): r - group mean,
    no division by the group's std, which over-weights groups that are nearly all right or all
    wrong (the paper's "question-level difficulty bias"). Pair it with loss_agg_mode
    'seq-mean-token-sum-norm' (no per-completion length normalisation). (b,) -> (b,)"""
    return grpo_advantages(rewards, group_size, scale_rewards="none")


def rloo_advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """REINFORCE leave-one-out (Kool et al. 2019; Ahmadian et al. 2024, "Back to Basics", eq. 6):
    r_i minus the mean of the other G - 1 rewards of its group, which equals
    G / (G - 1) * (r_i - group mean). An unbiased baseline: r_i's own sample is not in it.
    Exactly 0 for a group of equal rewards. As `compute_advantages` calls it, r_i is the score
    minus beta * the completion's summed KL (the paper's sequence reward; TRL's RLOOTrainer, and
    verl's rloo with the KL in the reward); OpenRLHF's rloo takes the baseline of the scores alone
    and adds the KL per token as a reward-to-go. rewards (b,) -> advantages (b,)"""
    _need_a_group(group_size, "RLOO")
    groups = as_groups(rewards.float(), group_size)
    return (_centered(groups) * (group_size / (group_size - 1))).reshape(-1)


def discounted_returns(rewards: torch.Tensor, response_mask: torch.Tensor, gamma: float = 1.0) -> torch.Tensor:
    """G_t = r_t + gamma * G_{t+1}, backwards over each response; 0 at padding.
    With gamma = 1 every token's return is the rest of the completion's reward: the score minus
    the KL penalty still to come. rewards, response_mask (b, t) -> returns (b, t)"""
    rewards = masked_fill_padding(rewards, response_mask)
    running = torch.zeros_like(rewards[:, 0])
    returns = []
    for t in reversed(range(rewards.shape[1])):
        running = rewards[:, t] + gamma * running
        returns.append(running)
    return masked_fill_padding(torch.stack(returns[::-1], dim=1), response_mask)


def reinforce_pp_advantages(rewards: torch.Tensor, response_mask: torch.Tensor, gamma: float = 1.0,
                            all_reduce: AllReduce | None = None) -> torch.Tensor:
    """REINFORCE++ (Hu 2025, sec. 3): per-token rewards (score at the last token - beta * KL at
    every token), their returns, normalised over the batch: (G_t - mean) / std, the std
    Bessel-corrected with eps inside the sqrt (verl's masked_whiten; OpenRLHF: the biased var,
    floored at 1e-8). The batch statistics replace the critic's baseline. The batch is this
    process's completions, or with `all_reduce` every process's together (as verl and OpenRLHF).
    rewards, response_mask (b, t) -> advantages (b, t)"""
    return masked_whiten(discounted_returns(rewards, response_mask, gamma), response_mask, all_reduce=all_reduce)


def outcome_advantages(estimator: str, rewards: torch.Tensor, group_size: int, scale_rewards: str | None = "group",
                       all_reduce: AllReduce | None = None) -> torch.Tensor:
    """The per-completion advantage of the outcome estimators (`scale_rewards`: grpo's std, see
    `grpo_advantages`; None = 'group'). rewards (b,) -> (b,)"""
    if estimator == "grpo":
        return grpo_advantages(rewards, group_size, scale_rewards or "group", all_reduce=all_reduce)
    table = {"dr_grpo": dr_grpo_advantages, "rloo": rloo_advantages}
    return table[estimator](rewards, group_size)


def compute_advantages(
    estimator: str,
    scores: torch.Tensor,
    kl: torch.Tensor,
    response_mask: torch.Tensor,
    kl_coef: float,
    group_size: int = 1,
    values: torch.Tensor | None = None,
    gamma: float = 1.0,
    lam: float = 0.95,
    whiten_rewards: bool = False,
    all_reduce: AllReduce | None = None,
    scale_rewards: str | None = "group",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The advantage step of every estimator, from the scores and per-token KL.

      gae                   score at the end - kl_coef * KL per token -> GAE against `values` ->
                            whitened (InstructGPT, N+)
      grpo, dr_grpo, rloo   the completion's total reward (score - kl_coef * its KL; kl_coef = 0 when
                            the KL is a loss term) -> group baseline -> the same value on every token
      reinforce++           per-token rewards -> returns -> normalised over the batch
      reinforce++_baseline  the same, after subtracting each group's mean score (Hu 2025; as
                            OpenRLHF: the KL stays per token. verl subtracts the group mean of the
                            total reward, KL included, and puts that one value on every token)

    The batch statistics (gae's whitening, REINFORCE++'s normalisation, grpo's std with
    `scale_rewards="batch"`) are over this process's rows, or every process's with `all_reduce`;
    the group statistics need none (a group is whole on one process).

    scores (b,), kl (b, t), response_mask (b, t), values (b, t) for gae
    -> rewards (b, t) (per-token rewards as shaped, before any whitening), advantages (b, t),
       returns (b, t) (the critic's targets for gae; equal to the advantages otherwise)"""
    if estimator not in ADVANTAGE_ESTIMATORS:
        raise ValueError(f"unknown advantage_estimator {estimator!r} (use one of {', '.join(ADVANTAGE_ESTIMATORS)})")
    if estimator == "reinforce++_baseline":
        scores = dr_grpo_advantages(scores, group_size)  # score - group mean
    rewards = shaped_rewards(scores, kl, response_mask, kl_coef)
    if estimator == "gae":
        if values is None:
            raise ValueError("advantage_estimator='gae' needs the critic's values")
        shaped = masked_whiten(rewards, response_mask, shift_mean=False, all_reduce=all_reduce) \
            if whiten_rewards else rewards
        advantages, returns = gae(shaped, values, response_mask, gamma, lam)
        return rewards, masked_whiten(advantages, response_mask, all_reduce=all_reduce), returns
    if estimator.startswith("reinforce++"):
        advantages = reinforce_pp_advantages(rewards, response_mask, gamma, all_reduce)
        return rewards, advantages, advantages
    per_completion = outcome_advantages(estimator, masked_sum(rewards, response_mask, dim=1), group_size,
                                        scale_rewards, all_reduce)
    advantages = masked_fill_padding(per_completion.unsqueeze(1).expand_as(rewards), response_mask)
    return rewards, advantages, advantages


# --- losses ----------------------------------------------------------------------------------


LOSS_AGG_MODES = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm")


def aggregate_loss(loss_mat: torch.Tensor, response_mask: torch.Tensor, mode: str = "token-mean",
                   norm_length: float | None = None, token_count: float | torch.Tensor | None = None) -> torch.Tensor:
    """Per-token losses -> one number, under verl's names for the three common choices:

      token-mean               every real token of the batch weighs the same (N+, verl, DAPO);
      seq-mean-token-mean      mean over each completion's tokens, then over completions
                               (DeepSeekMath's GRPO: 1/G sum_i 1/|o_i| sum_t);
      seq-mean-token-sum-norm  each completion's token sum divided by one constant, `norm_length`
                               (the generation budget), then the mean over completions (Dr. GRPO:
                               no per-completion length normalisation, so no length bias; TRL's
                               loss_type="dr_grpo"). verl sums over completions instead of
                               averaging, and divides by the batch's padded width, so its loss
                               is b times this and its divisor changes with the longest answer.

    `token_count`: what token-mean divides the token sum by, when these rows are one micro-batch of
    a larger optimizer step (see `micro_batch_token_count`); default the rows' own real tokens.
    loss_mat, response_mask (b, t) -> ()"""
    if mode == "token-mean":
        if token_count is not None:
            return masked_sum(loss_mat, response_mask) / token_count
        return masked_mean(loss_mat, response_mask)
    if mode == "seq-mean-token-mean":
        return masked_mean(loss_mat, response_mask, dim=1).mean()
    if mode == "seq-mean-token-sum-norm":
        norm = float(norm_length) if norm_length is not None else float(response_mask.shape[1])
        return (masked_sum(loss_mat, response_mask, dim=1) / norm).mean()
    raise ValueError(f"unknown loss_agg_mode {mode!r} (use one of {', '.join(LOSS_AGG_MODES)})")


def micro_batch_token_count(step_tokens: float, micro_batches: int) -> float:
    """The `token_count` each of `micro_batches` micro-batches passes to a token-mean when the
    optimizer step's loss is the mean of theirs (each divided by `micro_batches` before backward):
    then the step's loss is sum(all its token losses) / step_tokens, every token of the step
    weighing the same. Each micro-batch's own mean would weigh the tokens of a micro-batch of short
    completions more than those of one of long completions, and the update would change with how
    the step is cut into micro-batches (the gradient-accumulation normalisation bug)."""
    return max(float(step_tokens), 1.0) / micro_batches


def policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    cliprange: float = 0.2,
    loss_agg_mode: str = "token-mean",
    norm_length: float | None = None,
    token_count: float | torch.Tensor | None = None,
    dual_clip: float | None = None,
    cliprange_high: float | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO's clipped surrogate, as a loss to minimise (Schulman et al. 2017):

        loss = agg(max(-A * ratio, -A * clip(ratio, 1 - eps, 1 + eps_high)))

    eps = `cliprange`; eps_high = `cliprange_high`, default eps (symmetric, as PPO). A larger
    eps_high is DAPO's Clip-Higher (Yu et al. 2025: 0.28 with eps 0.2; TRL's epsilon_high, verl's
    clip_ratio_high): a token the rollout policy found unlikely may gain more probability in one
    step before its gradient stops, which keeps exploration (entropy) from collapsing.

    With `dual_clip` = c > 1 (dual-clip PPO, Ye et al. 2020, "Mastering Complex Control in MOBA
    Games with Deep RL"; OpenRLHF's `--dual_clip`, verl's `clip_ratio_c`), a token with A < 0 costs
    at most -A * c: otherwise its loss grows without bound with the ratio (a token the policy now
    makes far likelier than when it was sampled), and a few such tokens can outweigh the batch.
    The capped tokens give no gradient. None (TRL, N+) leaves the ratio unbounded there.

    `agg` is `aggregate_loss` (token-mean by default, over `token_count` tokens when given). Padding of every input is
    replaced by 0 first, so a NaN there reaches neither the loss nor its gradient.
    Returns the loss and detached statistics: clipfrac (share of tokens where the clip was
    active), approx_kl (0.5 * mean(log ratio^2), as in N+), ratio (mean).
    (b, t) each -> (), dict"""
    logprobs, old_logprobs, advantages = (masked_fill_padding(x, response_mask)
                                          for x in (logprobs, old_logprobs, advantages))
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    high = cliprange if cliprange_high is None else cliprange_high
    clipped = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + high)
    per_token = torch.maximum(unclipped, clipped)
    if dual_clip is not None:
        if dual_clip <= 1.0:
            raise ValueError(f"dual_clip must be > 1 (it caps the loss of a negative advantage at -A * dual_clip); "
                             f"got {dual_clip}")
        cap = -advantages * dual_clip
        capped = (advantages < 0) & (per_token > cap)
        per_token = torch.where(advantages < 0, torch.minimum(per_token, cap), per_token)
    loss = aggregate_loss(per_token, response_mask, loss_agg_mode, norm_length, token_count)
    with torch.no_grad():
        stats = {
            "clipfrac": masked_mean((clipped > unclipped).float(), response_mask),
            "approx_kl": 0.5 * masked_mean(log_ratio**2, response_mask),
            "ratio": masked_mean(ratio, response_mask),
        }
        if dual_clip is not None:
            stats["dual_clipfrac"] = masked_mean(capped.float(), response_mask)
    return loss, stats


def kl_loss(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, response_mask: torch.Tensor,
            loss_agg_mode: str = "token-mean", norm_length: float | None = None,
            estimator: str = "k3", token_count: float | torch.Tensor | None = None) -> torch.Tensor:
    """KL(policy || reference) as a loss term instead of a reward penalty (GRPO, DeepSeekMath
    eq. 3-4: the k3 estimator by default, unbiased and never negative, clamped per token as verl
    clamps it; k2 gives the gradient of the KL itself: see `kl_per_token`), aggregated like the
    policy loss.
    Its gradient reaches the policy directly rather than through the advantages.
    (b, t) each -> ()"""
    logprobs, ref_logprobs = masked_fill_padding(logprobs, response_mask), masked_fill_padding(ref_logprobs, response_mask)
    return aggregate_loss(kl_per_token(logprobs, ref_logprobs, estimator), response_mask, loss_agg_mode, norm_length,
                          token_count)


def value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    response_mask: torch.Tensor,
    cliprange_value: float = 0.2,
    token_count: float | torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped value loss (N+; OpenAI lm-human-preferences):

        loss = 0.5 * mean(max((V - R)^2, (clip(V, V_old - eps, V_old + eps) - R)^2))

    A token mean, over `token_count` tokens when given (see `micro_batch_token_count`).
    (b, t) each -> (), {"clipfrac"}"""
    values, old_values, returns = (masked_fill_padding(x, response_mask) for x in (values, old_values, returns))
    clipped_values = old_values + torch.clamp(values - old_values, -cliprange_value, cliprange_value)
    unclipped_loss = (values - returns) ** 2
    clipped_loss = (clipped_values - returns) ** 2
    loss = 0.5 * aggregate_loss(torch.maximum(unclipped_loss, clipped_loss), response_mask, "token-mean",
                                token_count=token_count)
    with torch.no_grad():
        stats = {"clipfrac": masked_mean((clipped_loss > unclipped_loss).float(), response_mask)}
    return loss, stats


def explained_variance(values: torch.Tensor, returns: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """1 - Var(returns - values) / Var(returns): 1 is a perfect critic, 0 no better than a
    constant, negative worse. (b, t) each -> ()"""
    values, returns = masked_fill_padding(values, response_mask), masked_fill_padding(returns, response_mask)
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
