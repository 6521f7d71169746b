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


def plot_gold_vs_proxy(rows: list[dict], out_dir: str | Path, proxy: str = "reward/score",
                       gold: str = "reward/gold", kl: str = "kl/mean", steps_label: str = "PPO step",
                       title: str = "proxy (reward model) vs gold (labels' rule)") -> list[Path]:
    """The over-optimisation picture of Gao et al. (2023): the proxy (reward model) score and the gold
    (the labels' own rule) score of the same rollouts, over PPO steps and over sqrt(KL) to the
    reference (their x axis). Two y axes: the two scores have different units; what matters is
    whether gold still rises where the proxy does. Writes gold_vs_proxy_steps.png and
    gold_vs_proxy_kl.png; returns the paths (none when no row has `gold`). DPO passes its implicit
    reward's held-out margin as the proxy (`rlhf.dpo.GoldView`)."""
    import math

    both = [r for r in rows if isinstance(r.get(gold), (int, float)) and isinstance(r.get(proxy), (int, float))]
    if not both:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    window = max(1, len(both) // 10)
    xs_by = {"steps": ([r["step"] for r in both], steps_label),
             "kl": ([math.sqrt(max(float(r.get(kl, 0.0)), 0.0)) for r in both], "sqrt(KL to reference, nats)")}
    written = []
    for name, (xs, xlabel) in xs_by.items():
        order = sorted(range(len(both)), key=lambda i: xs[i])
        x = [xs[i] for i in order]
        fig, left = plt.subplots(figsize=(6, 3.5))
        right = left.twinx()
        for ax, key, colour in ((left, proxy, "tab:blue"), (right, gold, "tab:orange")):
            y = [both[i][key] for i in order]
            ax.plot(x, y, color=colour, alpha=0.3, marker="o" if len(y) < 10 else None, markersize=3)
            ax.plot(x, moving_mean(y, window), color=colour, label=f"{key} (moving mean {window})")
            ax.set_ylabel(key, color=colour)
        left.set(title=title, xlabel=xlabel)
        left.grid(alpha=0.3)
        handles = left.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
        left.legend(handles=handles, loc="best", fontsize=8)
        fig.tight_layout()
        path = out_dir / f"gold_vs_proxy_{name}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written
