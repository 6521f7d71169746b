"""Agreement between labelers who ranked the same items: pure functions, no database.

A ranking is tiers best first over completion indexes (`[[2], [1, 3], [0]]`); for these measures it
becomes a rank per completion (`[3, 2, 1, 2]`: tier number, 1 = best, ties share a rank).

- pairwise agreement: over the K(K-1)/2 pairs of completions, the share on which two labelers give
  the same order (i better, j better, or a tie);
- Kendall's tau-b: rank correlation corrected for ties, in [-1, 1] (undefined when one labeler
  tied everything);
- Krippendorff's alpha: chance-corrected agreement over all labelers at once, each (item,
  completion) a unit and its ranks the values; ordinal metric by default (interval and nominal
  too). Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability".
"""

from __future__ import annotations

import math
from itertools import combinations
from typing import Sequence


def tiers_to_ranks(tiers: list[list[int]]) -> list[int]:
    """[[2], [1, 3], [0]] -> [3, 2, 1, 2]: the tier number (1 = best) of each completion."""
    ranks = [0] * sum(len(t) for t in tiers)
    for tier_no, tier in enumerate(tiers, start=1):
        for i in tier:
            ranks[i] = tier_no
    return ranks


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def pairwise_agreement(a: Sequence[float], b: Sequence[float]) -> float:
    """Share of completion pairs (i < j) that ranks `a` and `b` order the same way, a tie
    counting as its own answer. a, b: (k,) ranks, lower = better."""
    pairs = list(combinations(range(len(a)), 2))
    same = sum(_sign(a[i] - a[j]) == _sign(b[i] - b[j]) for i, j in pairs)
    return same / len(pairs)


def kendall_tau_b(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Kendall's tau-b = (concordant - discordant) / sqrt((n0 - ties_a) (n0 - ties_b)),
    n0 = k(k-1)/2. None when either ranking ties everything (the denominator is 0)."""
    concordant = discordant = ties_a = ties_b = 0
    for i, j in combinations(range(len(a)), 2):
        sa, sb = _sign(a[i] - a[j]), _sign(b[i] - b[j])
        ties_a += sa == 0
        ties_b += sb == 0
        concordant += sa * sb > 0
        discordant += sa * sb < 0
    n0 = len(a) * (len(a) - 1) // 2
    denom = math.sqrt((n0 - ties_a) * (n0 - ties_b))
    return (concordant - discordant) / denom if denom else None


def krippendorff_alpha(units: Sequence[Sequence[float]], metric: str = "ordinal") -> float | None:
    """Krippendorff's alpha = 1 - (n - 1) * sum_ck o_ck d2_ck / sum_ck n_c n_k d2_ck.

    units: one list per unit of the values its coders gave (missing ones left out); units with
    fewer than 2 values are not pairable and are dropped. o_ck is the coincidence matrix (each
    ordered pair of values in a unit of m values adds 1/(m-1)), n_c its margins, n their sum.
    metric: "ordinal" (d2_ck = (sum_{g=c..k} n_g - (n_c + n_k)/2)^2), "interval" ((c - k)^2) or
    "nominal" (0 if equal, else 1). None when there is no variation at all (alpha undefined)."""
    units = [list(u) for u in units if len(u) >= 2]
    values = sorted({v for u in units for v in u})
    index = {v: i for i, v in enumerate(values)}
    o = [[0.0] * len(values) for _ in values]  # (v, v) coincidences
    for u in units:
        for x, y in ((x, y) for p, x in enumerate(u) for q, y in enumerate(u) if p != q):
            o[index[x]][index[y]] += 1.0 / (len(u) - 1)
    n_c = [sum(row) for row in o]
    n = sum(n_c)
    d2 = _distance(metric, values, n_c)
    observed = sum(o[c][k] * d2(c, k) for c in range(len(values)) for k in range(len(values)))
    expected = sum(n_c[c] * n_c[k] * d2(c, k) for c in range(len(values)) for k in range(len(values)))
    if expected == 0:
        return None
    return 1.0 - (n - 1) * observed / expected


def _distance(metric: str, values: list[float], n_c: list[float]):
    if metric == "nominal":
        return lambda c, k: float(c != k)
    if metric == "interval":
        return lambda c, k: float(values[c] - values[k]) ** 2
    if metric == "ordinal":
        def ordinal(c: int, k: int) -> float:
            lo, hi = min(c, k), max(c, k)
            return (sum(n_c[lo:hi + 1]) - (n_c[lo] + n_c[hi]) / 2) ** 2
        return ordinal
    raise ValueError(f"unknown metric {metric!r} (use ordinal, interval or nominal)")


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def summarize(by_item: dict[str, dict[str, list[list[int]]]]) -> dict:
    """Agreement over the items that at least two labelers ranked.

    by_item: {item_id: {labeler: tiers}}. Returns {"items", "comparisons" (labeler pairs on an
    item), "pairwise_agreement" (pooled over completion pairs), "kendall_tau_b" (mean over
    comparisons where defined), "krippendorff_alpha" (ordinal, units = (item, completion)),
    "per_labeler": {name: {"comparisons", "pairwise_agreement", "kendall_tau_b"}}} against
    everyone else. A measure with nothing to measure is None."""
    same = total = 0
    taus: list[float] = []
    units: list[list[int]] = []
    per: dict[str, dict[str, list]] = {}
    items = 0
    for labels in by_item.values():
        if len(labels) < 2:
            continue
        items += 1
        ranks = {who: tiers_to_ranks(t) for who, t in labels.items()}
        k = len(next(iter(ranks.values())))
        units += [[r[c] for r in ranks.values()] for c in range(k)]
        for (p, a), (q, b) in combinations(sorted(ranks.items()), 2):
            agree, tau, n_pairs = pairwise_agreement(a, b), kendall_tau_b(a, b), k * (k - 1) // 2
            same, total = same + agree * n_pairs, total + n_pairs
            if tau is not None:
                taus.append(tau)
            for who in (p, q):
                mine = per.setdefault(who, {"agree": [], "tau": []})
                mine["agree"].append(agree)
                if tau is not None:
                    mine["tau"].append(tau)
    return {
        "items": items,
        "comparisons": sum(len(v["agree"]) for v in per.values()) // 2,
        "pairwise_agreement": same / total if total else None,
        "kendall_tau_b": _mean(taus),
        "krippendorff_alpha": krippendorff_alpha(units, "ordinal") if units else None,
        "per_labeler": {who: {"comparisons": len(v["agree"]), "pairwise_agreement": _mean(v["agree"]),
                              "kendall_tau_b": _mean(v["tau"])} for who, v in sorted(per.items())},
    }
