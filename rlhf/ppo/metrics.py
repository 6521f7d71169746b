"""Where PPO's numbers go: a JSONL line per step (every metric), TensorBoard, and PNG curves.

Metric names are a contract: docs/ppo_metrics.md lists each with its meaning.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

# (metric, title, file name) of the curves written to output_dir/plots/
PLOTS = [
    ("reward/score", "mean score (reward model or reward_fn)", "reward.png"),
    ("kl/mean", "KL(policy || reference), nats per completion", "kl.png"),
    ("ppo/entropy", "policy entropy, nats per token", "entropy.png"),
    ("response/length", "response length, tokens", "response_length.png"),
    ("ppo/value_loss", "value loss", "value_loss.png"),
]


class MetricsLog:
    """Appends each step's metrics to `metrics.jsonl` and TensorBoard (under `logs/`).

    On resume, lines past the checkpoint's step are dropped first, so a resumed run's file reads
    as one uninterrupted run."""

    def __init__(self, output_dir: str | Path, start_step: int = 0, enabled: bool = True, tensorboard: bool = True):
        self.path = Path(output_dir) / "metrics.jsonl"
        self.enabled = enabled
        self.rows: list[dict] = []
        self.writer = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            self.rows = [r for r in read_jsonl(self.path) if r.get("step", 0) <= start_step]
        self.path.write_text("".join(json.dumps(r) + "\n" for r in self.rows))
        samples = self.path.parent / "samples.jsonl"
        if samples.exists():  # same truncation on resume
            kept = [r for r in read_jsonl(samples) if r.get("step", 0) <= start_step]
            samples.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept))
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(Path(output_dir) / "logs"), purge_step=start_step + 1)

    def log(self, step: int, metrics: dict) -> None:
        if not self.enabled:
            return
        row = {"step": step, **{k: _plain(v) for k, v in metrics.items()}}
        self.rows.append(row)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
        if self.writer is not None:
            for key, value in row.items():
                if key != "step" and isinstance(value, (int, float)) and math.isfinite(value):
                    self.writer.add_scalar(key, value, step)

    def samples(self, step: int, rollout, n: int) -> None:
        """Append the first `n` completions of the step, with their scores, to `samples.jsonl`:
        what the reward model is paying for is often only visible in the text."""
        if not self.enabled or n <= 0:
            return
        rows = [{"step": step, "prompt": p, "completion": c, "score": float(s), "finished": bool(f)}
                for p, c, s, f in zip(rollout.prompts, rollout.completions, _shown_scores(rollout).tolist(),
                                      rollout.finished.tolist())][:n]
        with (self.path.parent / "samples.jsonl").open("a", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _shown_scores(rollout):
    """The reward's own units when PPO trained on normalised scores."""
    return rollout.raw_scores if rollout.raw_scores is not None else rollout.scores


def _plain(value):
    if hasattr(value, "item"):
        value = value.item()
    return float(value) if isinstance(value, float) and not math.isfinite(value) else value


def read_jsonl(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def plot_metrics(rows: list[dict], out_dir: str | Path) -> list[Path]:
    """One PNG per curve in PLOTS (steps on x), with a moving average when there are many steps."""
    from rlhf.plots import plot_series, points

    written = [plot_series({key: points(rows, key)}, Path(out_dir) / name, title, "PPO step", key)
               for key, title, name in PLOTS]
    return [p for p in written if p is not None]
