"""PNG curves for every stage (SFT loss, reward-model loss and accuracy, PPO reward / KL / length):
what `report.md` shows next to each stage's figures."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

Series = dict[str, tuple[Sequence[float], Sequence[float]]]  # label -> (x values, y values)


def plot_series(series: Series, path: str | Path, title: str, xlabel: str, ylabel: str) -> Path | None:
    """One PNG with a line per series; a series of 10+ points also gets its moving mean.
    Returns the path, or None when there was nothing to draw."""
    series = {label: (list(x), list(y)) for label, (x, y) in series.items() if len(x)}
    if not series:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for label, (xs, ys) in series.items():
        noisy = len(ys) >= 10
        ax.plot(xs, ys, alpha=0.45 if noisy else 1.0, label=label, marker=None if len(ys) > 1 else "o")
        if noisy:
            window = max(2, len(ys) // 10)
            ax.plot(xs, moving_mean(ys, window), label=f"{label}, moving mean ({window})")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def moving_mean(values: Sequence[float], window: int) -> list[float]:
    """Mean of the last `window` values at each point (fewer at the start)."""
    out = []
    for i in range(len(values)):
        part = values[max(0, i - window + 1): i + 1]
        out.append(sum(part) / len(part))
    return out


def points(rows: list[dict], key: str, x: str = "step") -> tuple[list[float], list[float]]:
    """(x, y) of the rows that carry a number under `key`."""
    pairs = [(r[x], r[key]) for r in rows if isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool)]
    return [p[0] for p in pairs], [p[1] for p in pairs]
