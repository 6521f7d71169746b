"""Running reward normalisation (`normalize_reward`): scores -> (score - running mean) / running std.

Why: PPO's step size is tuned for scores of about unit size. A `reward_fn` paying in thousands
makes the value loss grow with the square of the scale and the KL penalty (beta per nat) vanish
beside the score, so the run stops meaning what its settings say. Dividing by the running std of
every score seen so far puts any reward on one scale, as OpenRLHF's `--normalize_reward` and the
running reward scaling of "Implementation Matters in Deep RL" (Engstrom et al. 2020) do. The
statistics are those of all scores seen so far (Chan et al.'s parallel update), so a step's own
batch is included and a resumed run restores them from the checkpoint.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch


@dataclass
class RunningMoments:
    """Count, mean and sum of squared deviations (M2) of every value seen; float64 so that a
    reward of 1e9 keeps its digits."""

    count: float = 0.0
    mean: float = 0.0
    m2: float = 0.0

    def update(self, values: torch.Tensor) -> None:
        """Add a batch (any shape). Chan et al. 1979: combine the batch's moments with the running ones."""
        x = values.detach().double().flatten().cpu()
        n = x.numel()
        if n == 0:
            return
        batch_mean = x.mean().item()
        batch_m2 = ((x - batch_mean) ** 2).sum().item()
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean += delta * n / total
        self.m2 += batch_m2 + delta * delta * self.count * n / total
        self.count = total

    @property
    def std(self) -> float:
        """Population std of everything seen (0 before any value)."""
        return (self.m2 / self.count) ** 0.5 if self.count else 0.0

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, state: dict) -> None:
        self.count, self.mean, self.m2 = float(state["count"]), float(state["mean"]), float(state["m2"])


def normalize_scores(scores: torch.Tensor, moments: RunningMoments, eps: float = 1e-8) -> torch.Tensor:
    """(scores - mean) / std with the running moments (update them first). While every score seen
    was the same (std 0) the result is 0: no reward signal yet, and none invented. (b,) -> (b,)"""
    std = moments.std
    if std <= eps * max(1.0, abs(moments.mean)):
        return torch.zeros_like(scores)
    return ((scores.double() - moments.mean) / std).to(scores.dtype)
