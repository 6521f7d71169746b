"""`report.md` for a pipeline run folder: the headline figures first, then every stage's figures and
plots (SFT loss, reward-model loss and accuracy, PPO reward / KL / length / entropy / value loss),
readable on its own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

STAGES = ("sft", "sample", "label", "reward", "ppo", "dpo", "eval")


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
    return [f"![{stage} {p.stem}]({p.relative_to(run).as_posix()})" for p in pngs] + [""]


# The `rlhf ppo` stage's name by its advantage_estimator: the critic-free estimators are other algorithms.
ALGORITHMS = {"gae": "PPO", "grpo": "GRPO", "dr_grpo": "Dr. GRPO", "rloo": "RLOO", "reinforce++": "REINFORCE++",
              "reinforce++_baseline": "REINFORCE++ (baseline)"}


def ppo_algorithm(run: Path) -> tuple[str, str]:
    """What the ppo stage of `run` ran, from its rlhf_config.json, as (name, section title): ("PPO",
    "PPO"), or e.g. ("GRPO", "GRPO (advantage_estimator grpo, PPO's clipped loss)")."""
    estimator = _read(run / "ppo" / "rlhf_config.json").get("advantage_estimator", "gae")
    name = ALGORITHMS.get(estimator, str(estimator))
    return name, name if estimator == "gae" else f"{name} (advantage_estimator {estimator}, PPO's clipped loss)"


def _headline(run: Path) -> list[str]:
    """The answer to "did alignment work?" in a few lines."""
    ev, rm, ppo = _read(run / "eval" / "eval.json"), _read(run / "reward" / "metrics.json"), _read(run / "ppo" / "metrics.json")
    algorithm, _ = ppo_algorithm(run)
    lines = []
    for c in ev.get("comparisons", []):
        lo, hi = c["ci95"]
        lines.append(f"- `{c['a']}` vs `{c['b']}`: win rate **{c['win_rate']:.3f}** (95% CI {lo:.3f}–{hi:.3f}, "
                     f"{c['wins']} wins / {c['ties']} ties / {c['losses']} losses over {c['n']} held-out prompts)")
    if ev.get("judge"):
        lines.append(f"- judge: {ev['judge']}")
    held_out = rm.get("eval") or {}
    if held_out and held_out.get("accuracy") is not None:  # None: no held-out pair (every ranking a tie)
        lines.append(f"- reward model held-out pair accuracy: **{held_out['accuracy']:.3f}** ({held_out['pairs']} pairs "
                     f"from {held_out.get('rankings', '?')} rankings; train {rm['train']['accuracy']:.3f})")
    if ppo.get("score_first_tenth") is not None:
        final = ppo.get("final", {})
        unit = f" ({ppo['reward_unit'].split(':')[0]})" if ppo.get("reward_unit") else ""
        lines.append(f"- {algorithm} mean score{unit}: {ppo['score_first_tenth']:.3f} over the first tenth of the steps → "
                     f"{ppo['score_last_tenth']:.3f} over the last tenth ({ppo['steps']} steps; KL at the end "
                     f"{final.get('kl/mean', float('nan')):.2f} nats per completion)")
    if ppo.get("gold_first_tenth") is not None:
        lines.append(f"- {algorithm} gold score (the labels' own rule on the same rollouts): {ppo['gold_first_tenth']:.3f} → "
                     f"{ppo['gold_last_tenth']:.3f}: when the score {algorithm} trains on rises and this does not, the "
                     "policy is exploiting its reward (plots `gold_vs_proxy_*.png`)")
    return (["## Headline", "", *lines, ""]) if lines else []


def _timings(run: Path) -> list[str]:
    seconds = {stage: _read(run / stage / "DONE.json").get("seconds") for stage in STAGES}
    seconds = {k: v for k, v in seconds.items() if isinstance(v, (int, float))}
    if not seconds:
        return []
    rows = [(k, f"{v:.0f} s") for k, v in seconds.items()]
    rows.append(("total", f"{sum(seconds.values()):.0f} s ({sum(seconds.values()) / 60:.1f} min)"))
    return ["## Time per stage", "", *_table(rows)]


def _sft(run: Path) -> list[str]:
    m = _read(run / "sft" / "metrics.json")
    return _table([("adapter", m.get("adapter")), ("trainable parameters", m.get("trainable_params")),
                   ("trainable share", m.get("trainable_share")), ("steps", m.get("steps")),
                   ("train loss", m.get("train_loss")), ("eval loss", m.get("eval_loss")),
                   ("eval perplexity", m.get("perplexity")), ("seconds", m.get("train_seconds"))])


def _reward(run: Path) -> list[str]:
    m = _read(run / "reward" / "metrics.json")
    train, held_out, data, cal = m.get("train") or {}, m.get("eval") or {}, m.get("data") or {}, m.get("calibration") or {}
    rows = [("train pair accuracy", train.get("accuracy")), ("held-out pair accuracy", held_out.get("accuracy")),
            ("held-out mean margin", held_out.get("mean_margin")), ("held-out loss", held_out.get("loss")),
            ("train rankings / pairs", f"{data['train_rankings']} / {data['train_pairs']}" if data else None),
            ("held-out rankings / pairs", f"{data['eval_rankings']} / {data['eval_pairs']}" if data else None),
            ("labeler agreement", m.get("labeler_agreement")), ("steps", m.get("steps")),
            ("reward scale: (raw + bias) / std", f"bias {cal['bias']:.3f}, std {cal['std']:.3f}, calibrated on "
             f"{cal.get('n', '?')} completions from {cal.get('source', '?')}" if cal else None),
            ("seconds", m.get("train_seconds"))]
    for name, per in sorted((held_out.get("accuracy_per_labeler") or {}).items()):
        rows.append((f"held-out accuracy on {name}'s rankings", f"{per['accuracy']:.3f} ({per['pairs']} pairs)"))
    rows += _length_bias_rows(held_out.get("length_bias"), "held-out") + _length_bias_rows(train.get("length_bias"), "train")
    return _table(rows)


def _length_bias_rows(bias: dict | None, split: str) -> list[tuple]:
    """The reward model's length bias on one split (rlhf.reward.bias): what reward-modelling papers check first."""
    if not bias:
        return []

    def pct(x):
        return "–" if x is None else f"{100 * x:.0f}%"

    matched = bias.get("length_matched_accuracy")
    return [(f"{split}: prefers the longer answer (labels chose it)",
             f"{pct(bias.get('model_prefers_longer'))} ({pct(bias.get('labels_prefer_longer'))})"),
            (f"{split}: accuracy where the chosen answer is longer / shorter",
             f"{pct(bias.get('accuracy_chosen_longer'))} / {pct(bias.get('accuracy_chosen_shorter'))}"),
            (f"{split}: accuracy on length-matched pairs",
             f"{'–' if matched is None else f'{matched:.3f}'} ({bias.get('length_matched_pairs')} pairs)"),
            (f"{split}: Spearman correlation of score with length", bias.get("spearman"))]


def _ppo(run: Path) -> list[str]:
    m = _read(run / "ppo" / "metrics.json")
    final = m.get("final", {})
    updated = m.get("policy_updated_steps")
    return _table([("steps", m.get("steps")),
                   ("steps that updated the policy", None if updated is None else f"{updated} of {m.get('steps')}"),
                   ("completions left out of the loss (mask_truncated_completions), mean share",
                    m.get("masked_truncated_mean")),
                   ("mean score, first tenth of steps", m.get("score_first_tenth")),
                   ("mean score, last tenth of steps", m.get("score_last_tenth")),
                   ("KL at the end (nats per completion)", final.get("kl/mean")),
                   ("response length at the end (tokens)", final.get("response/length")),
                   ("cut off at the end (no stop token)", final.get("reward/missing_eos")),
                   ("gold score, first tenth of steps", m.get("gold_first_tenth")),
                   ("gold score, last tenth of steps", m.get("gold_last_tenth")),
                   *[(f"last length report: {k.split('/', 1)[1].replace('_', ' ')}", v)
                     for k, v in (m.get("length_report") or {}).items()],
                   ("seconds per step at the end", final.get("time/step")),
                   ("generation share of a step", final.get("time/generate_share"))])


def _dpo(run: Path) -> list[str]:
    m = _read(run / "dpo" / "metrics.json")
    keys = ("steps", "learning_rate", "beta", "train_loss", "eval_reward_accuracy", "eval_reward_margin",
            "train_seconds")
    rows = [(k.replace("_", " "), m.get(k)) for k in keys]
    gold = m.get("gold") or {}
    if gold:  # the gold view (rlhf.dpo.GoldView): the labels' rule on the policy's own answers
        first, last = gold["first"], gold["last"]
        rows += [(f"gold score ({gold['preference']}), step {first['step']} → {last['step']}",
                  f"{first['reward/gold']:.3f} → {last['reward/gold']:.3f} on {gold['prompts']} {gold['split']} prompts"),
                 (f"implicit reward margin / accuracy on {gold['pairs']} {gold['split']} pairs, same steps",
                  f"{first['reward/margin']:.3f} / {first['reward/accuracy']:.2f} → {last['reward/margin']:.3f} / "
                  f"{last['reward/accuracy']:.2f}"),
                 ("KL to the SFT policy at the last measurement (nats per answer)", last["kl/mean"])]
    return _table(rows)


def _eval(run: Path) -> list[str]:
    md = run / "eval" / "eval.md"
    if md.exists():  # one level deeper under this report's own heading
        return [line[1:] if line.startswith("## ") or line.startswith("### ") else line
                for line in md.read_text().splitlines()] + [""]
    return ["(evaluation did not run)", ""]


def write_report(run: str | Path) -> Path:
    run = Path(run)
    algorithm, title = ppo_algorithm(run)
    lines = [f"# RLHF run report: `{run.name}`", "",
             f"Stages: SFT → sampling → labeling → reward model → {algorithm} (→ DPO) → evaluation. "
             "Each section reads the stage's own `metrics.json`; plots are the stage's PNGs.", "",
             *_headline(run), *_timings(run)]
    sections = [("SFT", "sft", _sft), ("Reward model", "reward", _reward), (title, "ppo", _ppo), ("DPO", "dpo", _dpo)]
    for title, stage, body in sections:
        if (run / stage).exists():
            lines += [f"## {title}", "", *body(run), *_plots(run, stage)]
    lines += ["## Evaluation", "", *_eval(run), *_plots(run, "eval")]
    path = run / "report.md"
    path.write_text("\n".join(lines))
    return path
