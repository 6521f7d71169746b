"""Length bias of a reward model: pure functions of pair scores and answer lengths, no model, no I/O.

A reward model can reach a fair accuracy by preferring the longer answer when its training labels
happen to (Singhal et al. 2023, "A Long Way to Go: Investigating Length Correlations in RLHF"), and
PPO then learns to write longer, not better. `length_bias` reports what to check:

- `model_prefers_longer` beside `labels_prefer_longer`: the share of pairs (answers of unequal
  length) where the model scores the longer answer higher, and where the label chose it. A model
  far above its labels learned length.
- `accuracy_chosen_longer` / `accuracy_chosen_shorter`: accuracy on the pairs where the label chose
  the longer / the shorter answer. A length-biased model is good on the first and poor on the second.
- `length_matched_accuracy`: accuracy on pairs whose answers have nearly the same length: the two
  token counts differ by at most `tolerance` (default 10%) of the longer one, or by at most
  `min_tokens` (default 2) tokens. Length cannot explain a result there.
- `pearson` / `spearman`: correlation of score with length (tokens) over every scored answer.

    from rlhf.reward.bias import length_bias
    length_bias(chosen_scores, rejected_scores, chosen_lengths, rejected_lengths)

Lists or 1-D tensors in, a JSON-ready dict out (a figure with no pair to count is None).
"""

from __future__ import annotations

from typing import Sequence

import torch

LENGTH_TOLERANCE = 0.1  # length-matched: token counts within 10% of the longer answer ...
MIN_TOKENS = 2  # ... or within 2 tokens (short answers)


def _vector(values, name: str) -> torch.Tensor:
    out = torch.as_tensor(values if torch.is_tensor(values) else list(values), dtype=torch.float64).flatten().cpu()
    if not bool(torch.isfinite(out).all()):
        raise ValueError(f"length_bias: {name} holds a non-finite value")
    return out


def _share(mask: torch.Tensor) -> float | None:
    return mask.double().mean().item() if mask.numel() else None


def pearson(x, y) -> float | None:
    """Pearson correlation of two equal-length sequences; None with fewer than 2 values or no spread."""
    x, y = _vector(x, "x"), _vector(y, "y")
    if x.numel() != y.numel():
        raise ValueError(f"pearson: {x.numel()} x values but {y.numel()} y values")
    if x.numel() < 2:
        return None
    x, y = x - x.mean(), y - y.mean()
    denominator = (x.square().sum() * y.square().sum()).sqrt()
    return (x @ y / denominator).item() if denominator > 0 else None


def ranks(values) -> torch.Tensor:
    """Ranks from 1, ties sharing the mean of their places: [3, 1, 3] -> [2.5, 1, 2.5].  (n,) -> (n,)"""
    v = _vector(values, "values")
    order = torch.argsort(v, stable=True)
    out = torch.empty_like(v)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
            j += 1
        out[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(x, y) -> float | None:
    """Spearman rank correlation (Pearson of the tie-averaged ranks); None as for `pearson`."""
    x, y = _vector(x, "x"), _vector(y, "y")
    if x.numel() != y.numel():
        raise ValueError(f"spearman: {x.numel()} x values but {y.numel()} y values")
    return pearson(ranks(x), ranks(y)) if x.numel() >= 2 else None


def length_matched(chosen_lengths, rejected_lengths, tolerance: float = LENGTH_TOLERANCE,
                   min_tokens: int = MIN_TOKENS) -> torch.Tensor:
    """Which pairs count as length-matched (see the module doc).  (p,), (p,) -> (p,) bool"""
    a, b = _vector(chosen_lengths, "chosen_lengths"), _vector(rejected_lengths, "rejected_lengths")
    gap = (a - b).abs()
    return (gap <= tolerance * torch.maximum(a, b)) | (gap <= min_tokens)


def length_bias(chosen_scores: Sequence[float] | torch.Tensor, rejected_scores: Sequence[float] | torch.Tensor,
                chosen_lengths: Sequence[int] | torch.Tensor, rejected_lengths: Sequence[int] | torch.Tensor,
                tolerance: float = LENGTH_TOLERANCE, min_tokens: int = MIN_TOKENS) -> dict:
    """Length-bias figures of a reward model on p labelled pairs (see the module doc).

    chosen_scores, rejected_scores: (p,) the model's scores of the preferred and the other answer;
    chosen_lengths, rejected_lengths: (p,) their lengths in tokens. A pair is counted correct when
    chosen > rejected (TRL's accuracy). Raises ValueError on unequal sizes or a non-finite value."""
    sc, sr = _vector(chosen_scores, "chosen_scores"), _vector(rejected_scores, "rejected_scores")
    lc, lr = _vector(chosen_lengths, "chosen_lengths"), _vector(rejected_lengths, "rejected_lengths")
    if not sc.numel() == sr.numel() == lc.numel() == lr.numel():
        raise ValueError(f"length_bias: sizes differ: {sc.numel()} chosen scores, {sr.numel()} rejected scores, "
                         f"{lc.numel()} chosen lengths, {lr.numel()} rejected lengths")
    correct = sc > sr
    unequal = lc != lr
    chosen_longer = lc > lr
    longer_score = torch.where(chosen_longer, sc, sr)[unequal]
    shorter_score = torch.where(chosen_longer, sr, sc)[unequal]
    matched = length_matched(lc, lr, tolerance, min_tokens)
    scores, lengths = torch.cat([sc, sr]), torch.cat([lc, lr])
    return {
        "pairs": int(sc.numel()), "accuracy": _share(correct),
        "unequal_length_pairs": int(unequal.sum()),
        "model_prefers_longer": _share(longer_score > shorter_score),
        "labels_prefer_longer": _share(chosen_longer[unequal]),
        "accuracy_chosen_longer": _share(correct[chosen_longer]),
        "accuracy_chosen_shorter": _share(correct[unequal & ~chosen_longer]),
        "length_matched_pairs": int(matched.sum()), "length_matched_accuracy": _share(correct[matched]),
        "length_tolerance": tolerance, "length_min_tokens": min_tokens,
        "pearson": pearson(scores, lengths), "spearman": spearman(scores, lengths),
        "mean_chosen_tokens": lc.mean().item() if lc.numel() else None,
        "mean_rejected_tokens": lr.mean().item() if lr.numel() else None,
    }


def completion_token_lengths(tokenizer, completions: Sequence) -> list[int]:
    """Length in tokens of each completion alone (no prompt, no chat template). A completion given as
    a list of messages counts the text of all of them."""
    texts = [c if isinstance(c, str) else "".join(m.get("content") or "" for m in c) for c in completions]
    if not texts:
        return []
    return [len(x) for x in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def format_length_bias(bias: dict) -> str:
    """One console line: 'prefers the longer answer 61% (labels 44%), length-matched accuracy ...'."""
    def pct(x):
        return "n/a" if x is None else f"{100 * x:.0f}%"

    def num(x):
        return "n/a" if x is None else f"{x:+.2f}"

    matched = bias["length_matched_accuracy"]
    return (f"prefers the longer answer in {pct(bias['model_prefers_longer'])} of pairs (labels "
            f"{pct(bias['labels_prefer_longer'])}), length-matched accuracy "
            f"{'n/a' if matched is None else f'{matched:.3f}'} ({bias['length_matched_pairs']} pairs), "
            f"score~length Spearman {num(bias['spearman'])}")
