"""Synthetic rankings with a preference a small model can learn, for tests, benchmarks and demos.

- `kind="marker"`: completions containing the marker word beat those without; with-marker ones tie
  with each other, and so do the rest (K-way rankings with ties: [[with...], [without...]]).
- `kind="graded"`: each completion carries one quality word, best to worst `GRADES`; the ranking is
  strict (K <= len(GRADES)), the K=4 case InstructGPT's labelers produced.
"""

from __future__ import annotations

import random

from rlhf.data import Ranking

TOPICS = ["rivers", "bread", "chess", "volcanoes", "bicycles", "owls", "tides", "glass", "maps", "honey",
          "comets", "pianos", "deserts", "bridges", "coral", "lanterns", "kites", "moss", "clocks", "salt",
          "tigers", "rain", "paper", "copper", "orchards", "trains", "wool", "islands", "ink", "caves"]
FILLER = ["the", "a", "is", "often", "made", "from", "very", "old", "people", "many", "and", "it", "can",
          "be", "found", "near", "water", "in", "most", "places", "with", "some", "small", "large", "parts"]
MARKER = "wonderful"
GRADES = ["excellent", "good", "mediocre", "terrible"]


def _sentence(rng: random.Random, topic: str, word: str | None) -> str:
    words = [rng.choice(FILLER) for _ in range(rng.randint(8, 14))]
    if word:
        words.insert(rng.randint(0, len(words)), word)
    return f"About {topic}: " + " ".join(words) + "."


def synthetic_rankings(n: int, k: int = 4, seed: int = 0, kind: str = "marker", labeler: str = "synthetic") -> list[Ranking]:
    """`n` rankings of `k` completions each, one distinct prompt per ranking (see module doc)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        prompt = f"Tell me something about {topic}. (#{i})"
        if kind == "marker":
            n_with = rng.randint(1, k - 1)
            has = [j < n_with for j in range(k)]
            rng.shuffle(has)
            completions = [_sentence(rng, topic, MARKER if h else None) for h in has]
            tiers = [[j for j in range(k) if has[j]], [j for j in range(k) if not has[j]]]
        elif kind == "graded":
            if k > len(GRADES):
                raise ValueError(f"kind='graded' supports k <= {len(GRADES)}")
            grades = list(range(k))
            rng.shuffle(grades)  # grades[j] = quality of completion j, 0 best
            completions = [_sentence(rng, topic, GRADES[g]) for g in grades]
            tiers = [[grades.index(g)] for g in range(k)]
        else:
            raise ValueError(f"unknown kind {kind!r} (use 'marker' or 'graded')")
        out.append(Ranking(prompt=prompt, completions=completions, ranking=tiers, labeler=labeler))
    return out


def to_rows(rankings: list[Ranking]) -> list[dict]:
    """Rankings as the labeling app exports them (one JSON object per line)."""
    return [{"prompt": r.prompt, "completions": r.completions, "ranking": r.ranking, "labeler": r.labeler,
             "flags": r.flags, "seconds": r.seconds} for r in rankings]


def to_pairs(rankings: list[Ranking]) -> list[dict]:
    """Every strictly ordered pair as TRL explicit-prompt rows (prompt, chosen, rejected)."""
    return [{"prompt": r.prompt, "chosen": r.completions[b], "rejected": r.completions[w]}
            for r in rankings for b, w, _ in r.pairs()]
