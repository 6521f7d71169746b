"""Rankings for the reward model: consensus of several labelers, a split by prompt, and how much
labelers agree with each other (the ceiling a reward model's accuracy is compared with)."""

from __future__ import annotations

import itertools
import random
from collections import defaultdict

from rlhf.data import Ranking


def item_key(r: Ranking) -> tuple:
    """Rankings of the same item: same conversation and the same set of completions (in any order,
    since a labeling app may show completions shuffled)."""
    return (r.key, tuple(sorted(r.completions)))


def fractional_ranks(tiers: list[list[int]]) -> dict[int, float]:
    """Rank of each completion, ties sharing the mean of their places: [[2], [1, 3], [0]] gives
    2 -> 1, 1 and 3 -> 2.5, 0 -> 4."""
    ranks, place = {}, 1
    for tier in tiers:
        for i in tier:
            ranks[i] = place + (len(tier) - 1) / 2
        place += len(tier)
    return ranks


def _to_canonical(r: Ranking, canonical: list[str]) -> dict[int, int]:
    """Map r's completion indexes onto positions in `canonical` by text (duplicates in order)."""
    slots = defaultdict(list)
    for pos, text in enumerate(canonical):
        slots[text].append(pos)
    taken = defaultdict(int)
    mapping = {}
    for i, text in enumerate(r.completions):
        mapping[i] = slots[text][taken[text]]
        taken[text] += 1
    return mapping


def consensus(group: list[Ranking]) -> Ranking:
    """One ranking from several labelers' rankings of one item.

    Each completion's fractional rank is averaged over labelers; completions are sorted by that mean
    and equal means (within 1e-9) share a tier. Two labelers who disagree on A vs B thus give A = B."""
    first = group[0]
    totals = defaultdict(float)
    for r in group:
        mapping = _to_canonical(r, first.completions)
        for i, rank in fractional_ranks(r.ranking).items():
            totals[mapping[i]] += rank / len(group)
    tiers: list[list[int]] = []
    for i in sorted(totals, key=lambda i: (totals[i], i)):
        if tiers and abs(totals[tiers[-1][0]] - totals[i]) < 1e-9:
            tiers[-1].append(i)
        else:
            tiers.append([i])
    labelers = sorted({r.labeler for r in group if r.labeler})
    flags = sorted({f for r in group for f in r.flags})
    seconds = [r.seconds for r in group if r.seconds is not None]
    return Ranking(prompt=first.prompt, completions=list(first.completions), ranking=tiers,
                   labeler="+".join(labelers) or "consensus", flags=flags,
                   seconds=sum(seconds) if seconds else None, item_id=first.item_id,
                   guideline_version=first.guideline_version)


def merge_labelers(rankings: list[Ranking]) -> list[Ranking]:
    """Rankings with every item's several rankings merged by `consensus`; single rankings unchanged.
    A pair's `margin` survives only on items ranked once (a consensus has no single margin)."""
    groups: dict[tuple, list[Ranking]] = defaultdict(list)
    for r in rankings:
        groups[item_key(r)].append(r)
    return [g[0] if len(g) == 1 else consensus(g) for g in groups.values()]


def split_by_prompt(rankings: list[Ranking], eval_fraction: float, seed: int) -> tuple[list[Ranking], list[Ranking]]:
    """(train, eval) with whole prompts on one side: no prompt's completions on both. A prompt is
    the whole conversation (`Ranking.key`): two conversations that end in the same question are two
    prompts, and one conversation is never on both sides.

    With eval_fraction > 0 and at least two prompts, at least one prompt is held out."""
    prompts = sorted({r.key for r in rankings})
    random.Random(seed).shuffle(prompts)
    n_eval = round(eval_fraction * len(prompts))
    if eval_fraction > 0 and len(prompts) >= 2:
        n_eval = min(max(n_eval, 1), len(prompts) - 1)
    held_out = set(prompts[:n_eval])
    train = [r for r in rankings if r.key not in held_out]
    return train, [r for r in rankings if r.key in held_out]


def _strict_order(tiers: list[list[int]], mapping: dict[int, int]) -> dict[tuple[int, int], int]:
    """{(a, b): +1 if a above b, -1 if below} over canonical indexes a < b in different tiers."""
    tier_of = {mapping[i]: t for t, tier in enumerate(tiers) for i in tier}
    out = {}
    for a, b in itertools.combinations(sorted(tier_of), 2):
        if tier_of[a] != tier_of[b]:
            out[(a, b)] = 1 if tier_of[a] < tier_of[b] else -1
    return out


def labeler_agreement(rankings: list[Ranking]) -> dict | None:
    """How often two labelers who ranked the same item order a pair the same way.

    Counted over pairs both labelers ranked strictly (a tie on either side is left out); None when no
    item was ranked by two different labelers. InstructGPT reports about 73% between its labelers:
    a reward model cannot be expected to agree with one labeler more than labelers agree together."""
    groups: dict[tuple, list[Ranking]] = defaultdict(list)
    for r in rankings:
        groups[item_key(r)].append(r)
    agree, total = 0, 0
    by_pair: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for group in groups.values():
        canonical = group[0].completions
        for r1, r2 in itertools.combinations(group, 2):
            if r1.labeler == r2.labeler:
                continue
            o1 = _strict_order(r1.ranking, _to_canonical(r1, canonical))
            o2 = _strict_order(r2.ranking, _to_canonical(r2, canonical))
            shared = set(o1) & set(o2)
            same = sum(o1[p] == o2[p] for p in shared)
            name = "|".join(sorted([r1.labeler or "?", r2.labeler or "?"]))
            by_pair[name][0] += same
            by_pair[name][1] += len(shared)
            agree, total = agree + same, total + len(shared)
    if total == 0:
        return None
    return {"agreement": agree / total, "pairs": total,
            "by_labeler_pair": {k: {"agreement": a / n if n else None, "pairs": n} for k, (a, n) in sorted(by_pair.items())}}
