"""`report.md` for a pipeline run folder: every stage's figures and plots, readable on its own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _read(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _table(rows: list[tuple[str, Any]]) -> list[str]:
    rows = [(k, v) for k, v in rows if v is not None and v != {}]
    if not rows:
        return ["(no figures recorded)", ""]
    return ["| figure | value |", "|---|---|", *[f"| {k} | {_fmt(v)} |" for k, v in rows], ""]


def _plots(run: Path, stage: str) -> list[str]:
    pngs = sorted((run / stage).glob("*.png")) + sorted((run / stage).glob("plots/*.png"))
    return [f"![{p.stem}]({p.relative_to(run).as_posix()})" for p in pngs] + [""]


def _sft(run: Path) -> list[str]:
    m = _read(run / "sft" / "metrics.json")
    return _table([("adapter", m.get("adapter")), ("trainable parameters", m.get("trainable_params")),
                   ("trainable share", m.get("trainable_share")), ("steps", m.get("steps")),
                   ("train loss", m.get("train_loss")), ("eval loss", m.get("eval_loss")),
                   ("eval perplexity", m.get("perplexity")), ("seconds", m.get("train_seconds"))])


def _reward(run: Path) -> list[str]:
    m = _read(run / "reward" / "metrics.json")
    keep = ("train_accuracy", "eval_accuracy", "eval_mean_margin", "eval_loss", "train_loss", "labeler_agreement",
            "reward_bias", "reward_std", "train_rankings", "eval_rankings", "train_pairs", "eval_pairs", "seconds")
    rows = [(k.replace("_", " "), m[k]) for k in keep if k in m and not isinstance(m[k], (dict, list))]
    return _table(rows)


def _ppo(run: Path) -> list[str]:
    m = _read(run / "ppo" / "metrics.json")
    rows = [(k, v) for k, v in m.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)]
    return _table(rows[:20])


def _eval(run: Path) -> list[str]:
    m = _read(run / "eval" / "eval.json")
    md = run / "eval" / "eval.md"
    lines = []
    if md.exists():
        lines += [md.read_text(), ""]
    elif m:
        lines += _table([(k, v) for k, v in m.items() if not isinstance(v, (dict, list))])
    return lines or ["(evaluation did not run)", ""]


def write_report(run: str | Path) -> Path:
    run = Path(run)
    lines = [f"# RLHF run report: `{run.name}`", "",
             "Stages: SFT → sampling → labeling → reward model → PPO (→ DPO) → evaluation. "
             "Each section reads the stage's own `metrics.json`; plots are the stage's PNGs.", ""]
    timings = {p.parent.name: _read(p).get("seconds") for p in sorted(run.glob("*/DONE.json"))}
    if timings:
        lines += ["## Time per stage", "", *_table([(k, f"{v} s") for k, v in timings.items()])]
    sections = [("SFT", "sft", _sft), ("Reward model", "reward", _reward), ("PPO", "ppo", _ppo)]
    for title, stage, body in sections:
        if (run / stage).exists():
            lines += [f"## {title}", "", *body(run), *_plots(run, stage)]
    if (run / "dpo").exists():
        lines += ["## DPO", "", *_table([(k, v) for k, v in _read(run / "dpo" / "metrics.json").items()
                                          if isinstance(v, (int, float, str))])]
    lines += ["## Evaluation", "", *_eval(run), *_plots(run, "eval")]
    path = run / "report.md"
    path.write_text("\n".join(lines))
    return path
