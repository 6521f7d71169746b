"""`rlhf reward-eval`: how often a reward model agrees with a preference file, the figure reward
models are compared by.

    rlhf reward-eval --model runs/reward --data pairs.jsonl --group_by source --output runs/reward_eval

The file may be in any layout `rlhf reward` reads (rankings, K completions with ratings, TRL's four
pair layouts, HH-RLHF, UltraFeedback-binarized; JSONL, Parquet or a datasets folder). Every
strictly ordered pair of every row is one comparison; each completion is scored once with its whole
conversation (as the reward stage scores it).

It sits beside `rlhf.eval` (whose bootstrap interval and Markdown cells it reuses), above the reward
stage whose scoring it calls. Writes `reward_eval.json` and `reward_eval.md` in `--output`:
| field | meaning |
|---|---|
| accuracy | share of pairs where r(better) > r(worse); equal scores count one half |
| ci95 | percentile bootstrap 95% interval of that share, resampling pairs (rlhf.eval.bootstrap_ci) |
| mean_margin | mean r(better) - r(worse) over the pairs, in the reward model's std units (as `RewardModel.score`) |
| by_group | the same per value of `--group_by` (any column of the file, e.g. source or labeler) |
| data_loss | what was cut to fit max_length, and pairs left out because both sides became identical |
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional


@dataclass
class RewardEvalConfig:
    """Pair accuracy (bootstrap 95% CI), mean margin and accuracy per column value of a reward model on a preference file."""

    model: str = field(default="runs/reward", metadata={"help": "The reward model: an `rlhf reward` output folder (or any AutoModelForSequenceClassification folder with num_labels=1)."})
    data: str = field(default="", metadata={"help": "Preference file in any layout `rlhf reward` reads: rankings, ratings, TRL pairs (4 layouts), HH-RLHF, UltraFeedback-binarized."})
    output: str = field(default="runs/reward_eval", metadata={"help": "Folder for reward_eval.json and reward_eval.md."})
    group_by: Optional[str] = field(default=None, metadata={"help": "Also report accuracy per value of this column (e.g. source, labeler)."})
    margin_from_scores: bool = field(default=False, metadata={"help": "Read score_chosen - score_rejected, or |preference_strength| (HelpSteer2), as each pair's margin (reported as the labels' mean margin)."})
    max_length: Optional[int] = field(default=None, metadata={"help": "Tokens per conversation + completion. Default: the reward model's own training max_length."})
    batch_size: int = field(default=16, metadata={"help": "Sequences per forward pass."})
    bootstrap: int = field(default=1000, metadata={"help": "Bootstrap resamples for the 95% interval."})
    seed: int = field(default=0, metadata={"help": "Seed of the bootstrap."})
    skip_bad_rows: bool = field(default=False, metadata={"help": "Skip and count malformed rows instead of stopping."})
    device: Optional[str] = field(default=None, metadata={"help": "cpu, cuda, ... Default: cuda when available."})

    def __post_init__(self):
        from rlhf.stages import number_problems

        problems = number_problems(self, at_least_1=("batch_size", "bootstrap"))
        if self.max_length is not None and not self.max_length >= 2:
            problems.append(f"max_length must be >= 2, or unset for the reward model's own (got {self.max_length})")
        if problems:
            raise ValueError("RewardEvalConfig: " + "; ".join(problems))


# --- pure parts ---------------------------------------------------------------------------------


def pair_outcomes(scores: list[list[float]], rankings) -> list[dict]:
    """One record per strictly ordered pair: `correct` (1, 0, or 0.5 for equal scores), `margin`
    r(better) - r(worse), and the ranking's index. `scores[g]` holds ranking g's K scores."""
    out = []
    for g, (r, s) in enumerate(zip(rankings, scores)):
        for better, worse, _gap in r.pairs():
            diff = s[better] - s[worse]
            out.append({"ranking": g, "correct": 0.5 if diff == 0 else float(diff > 0), "margin": diff})
    return out


def summarize_pairs(pairs: list[dict], bootstrap: int, seed: int) -> dict:
    """accuracy, ci95 (bootstrap over pairs), mean_margin and the number of pairs."""
    from rlhf.eval import bootstrap_ci

    if not pairs:
        return {"accuracy": None, "ci95": None, "mean_margin": None, "pairs": 0}
    correct = [p["correct"] for p in pairs]
    return {"accuracy": sum(correct) / len(correct), "ci95": list(bootstrap_ci(correct, bootstrap, seed)),
            "mean_margin": sum(p["margin"] for p in pairs) / len(pairs), "pairs": len(pairs)}


def group_value(r, column: str) -> str:
    """The value of `column` for a ranking: its labeler, or any other column kept in `meta`."""
    if column == "labeler":
        return r.labeler or "?"
    value = r.meta.get(column)
    return "?" if value is None else str(value)


def rows_without(rankings, column: str, source: str) -> int:
    """How many rankings lack `column` (they form the group "?"). Raises DataError when none has it:
    a misspelt --group_by would otherwise put every pair in "?", naming the fields the rows do have."""
    from rlhf.data import DataError

    missing = sum(group_value(r, column) == "?" for r in rankings)
    if missing == len(rankings):
        fields = sorted({k for r in rankings for k in r.meta} | ({"labeler"} if any(r.labeler for r in rankings) else set()))
        raise DataError(source, None, column, f"--group_by names a field no row has; the rows have: {fields or 'none'}")
    return missing


def length_bias(tokenizer, rankings, scores, left_out=()) -> dict | None:
    """Length-bias figures (rlhf.reward.bias.length_bias: how often the model prefers the longer
    answer beside how often the labels do, accuracy within length-matched pairs, correlation of score
    with length in tokens) over every strict pair of `rankings` except the `left_out` (ranking,
    better, worse) keys. None when no pair is left."""
    from rlhf.reward.bias import completion_token_lengths
    from rlhf.reward.bias import length_bias as bias_of

    chosen, rejected, chosen_len, rejected_len = [], [], [], []
    for g, r in enumerate(rankings):
        lengths = completion_token_lengths(tokenizer, r.completions)
        for better, worse, _ in r.pairs():
            if (g, better, worse) in left_out:
                continue
            chosen.append(scores[g][better])
            rejected.append(scores[g][worse])
            chosen_len.append(lengths[better])
            rejected_len.append(lengths[worse])
    return bias_of(chosen, rejected, chosen_len, rejected_len) if chosen else None


# --- the command --------------------------------------------------------------------------------


def score_rankings(rm, rankings, max_length: int, batch_size: int):
    """(scores per ranking, data_loss counts): every completion scored once with its conversation."""
    from rlhf.reward.model import encode_detailed, score_ids

    encoded = encode_detailed(rm.tokenizer, [r.prompt for r in rankings for _ in r.completions],
                              [c for r in rankings for c in r.completions], max_length)
    raw = score_ids(rm.model.eval(), [e.ids for e in encoded], rm.tokenizer.pad_token_id, batch_size).float().cpu()
    raw = (raw + rm.bias) / rm.std  # the one scale of RewardModel.score: std units
    scores, start, identical = [], 0, []
    for g, r in enumerate(rankings):
        mine = encoded[start:start + len(r.completions)]
        scores.append(raw[start:start + len(r.completions)].tolist())
        identical += [(g, b, w) for b, w, _ in r.pairs() if mine[b].ids == mine[w].ids]
        start += len(r.completions)
    loss = {"stage": "reward-eval", "max_length": max_length, "completions": len(encoded),
            "prompt_turns_dropped": sum(e.turns_dropped > 0 for e in encoded),
            "prompt_tokens_cut": sum(e.prompt_tokens_cut > 0 for e in encoded),
            "completion_tail_cut": sum(e.completion_tokens_cut > 0 for e in encoded),
            "pairs_left_out_identical": len(identical)}
    return scores, loss, {(g, b, w) for g, b, w in identical}


def run_reward_eval(config: RewardEvalConfig) -> dict:
    """Score, compare, write JSON + Markdown; returns the results. Steps: 1 read the file (bad rows
    raise or are counted), 2 load the reward model, 3 score every completion once, 4 pair outcomes
    overall and per group, 5 write."""
    from rlhf.data import DataError, load_preferences, print_skipped_rows
    from rlhf.reward.model import RewardModel
    from rlhf.outputs import check_output_dir
    from rlhf.stages import save_resolved_config

    check_output_dir("reward-eval", config.output, {"--model": config.model}, output_flag="--output")
    if not config.data:
        raise DataError("--data", None, "data", "no preference file given: pass --data FILE")
    # 1. data
    rankings, bad = load_preferences(config.data, skip_bad=config.skip_bad_rows,
                                     margin_from_scores=config.margin_from_scores)
    print_skipped_rows("rlhf reward-eval", config.data, bad, "reward_eval.json data_loss")
    without_group = rows_without(rankings, config.group_by, config.data) if config.group_by else 0
    # 2-3. model and scores
    rm = RewardModel.load(config.model, device=config.device)
    max_length = config.max_length or rm.max_length
    scores, data_loss, identical = score_rankings(rm, rankings, max_length, config.batch_size)
    data_loss["skipped_bad_rows"] = len(bad)
    # 4. outcomes: pairs made identical by truncation say nothing about the model and are left out
    pairs = [p for p, key in zip(pair_outcomes(scores, rankings), _pair_keys(rankings)) if key not in identical]
    results = {"model": config.model, "data": config.data, "rankings": len(rankings),
               "tie_only_rankings": sum(not r.pairs() for r in rankings),  # no pair, so not in the accuracy
               **summarize_pairs(pairs, config.bootstrap, config.seed), "data_loss": data_loss,
               "bad_rows": [str(e) for e in bad[:20]], "length_bias": length_bias(rm.tokenizer, rankings, scores, set(identical))}
    labelled = [r.margin for r in rankings if r.margin is not None]
    if labelled:
        results["label_mean_margin"] = sum(labelled) / len(labelled)
    if config.group_by:
        groups: dict[str, list[dict]] = {}
        for p in pairs:
            groups.setdefault(group_value(rankings[p["ranking"]], config.group_by), []).append(p)
        results["group_by"] = config.group_by
        results["group_by_missing_rankings"] = without_group  # their pairs are in the group "?"
        results["by_group"] = {k: summarize_pairs(v, config.bootstrap, config.seed) for k, v in sorted(groups.items())}
    # 5. write
    out = Path(config.output)
    out.mkdir(parents=True, exist_ok=True)
    (out / "reward_eval.json").write_text(json.dumps({**results, "config": asdict(config)}, indent=2))
    save_resolved_config("reward-eval", config, out, max_length=max_length)
    (out / "reward_eval.md").write_text(markdown(results))
    _print(results, data_loss, out)
    return results


def _pair_keys(rankings) -> list[tuple[int, int, int]]:
    return [(g, b, w) for g, r in enumerate(rankings) for b, w, _ in r.pairs()]


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def markdown(results: dict) -> str:
    """The results as a Markdown report: overall line, then one table row per group."""
    from rlhf.eval import md_cell

    ci = results["ci95"] or [None, None]
    lines = [f"# Reward model accuracy: {md_cell(str(results['model']), 200)}", "",
             f"Data: `{md_cell(str(results['data']), 200)}`, {results['rankings']} rows, {results['pairs']} pairs.", "",
             "| group | pairs | accuracy | 95% CI | mean margin |", "|---|---|---|---|---|",
             f"| all | {results['pairs']} | {_fmt(results['accuracy'])} | [{_fmt(ci[0])}, {_fmt(ci[1])}] | "
             f"{_fmt(results['mean_margin'])} |"]
    for name, g in (results.get("by_group") or {}).items():
        gci = g["ci95"] or [None, None]
        lines.append(f"| {md_cell(results['group_by'], 40)} = {md_cell(name, 80)} | {g['pairs']} | {_fmt(g['accuracy'])} | "
                     f"[{_fmt(gci[0])}, {_fmt(gci[1])}] | {_fmt(g['mean_margin'])} |")
    loss = results["data_loss"]
    lines += ["", f"Cut to fit max_length={loss['max_length']}: {loss['prompt_turns_dropped']} sequences lost oldest "
                  f"turns, {loss['prompt_tokens_cut']} prompt tokens, {loss['completion_tail_cut']} completion tails; "
                  f"{loss['pairs_left_out_identical']} pairs left out (identical after truncation); "
                  f"{loss['skipped_bad_rows']} malformed rows skipped.", ""]
    if results.get("length_bias"):
        from rlhf.reward.bias import format_length_bias

        lines += [f"Length bias: {format_length_bias(results['length_bias'])}.", ""]
    return "\n".join(lines)


def _print(results: dict, loss: dict, out: Path) -> None:
    ci = results["ci95"] or [float("nan")] * 2
    print(f"[rlhf reward-eval] accuracy {_fmt(results['accuracy'])} [{ci[0]:.3f}, {ci[1]:.3f}] over {results['pairs']} "
          f"pairs, mean margin {_fmt(results['mean_margin'])}; report: {out / 'reward_eval.md'}")
    if loss["pairs_left_out_identical"] or loss["skipped_bad_rows"]:
        print(f"[rlhf reward-eval] left out {loss['pairs_left_out_identical']} pairs identical after truncation to "
              f"{loss['max_length']} tokens and {loss['skipped_bad_rows']} malformed rows")
    if results.get("length_bias"):
        from rlhf.reward.bias import format_length_bias

        print(f"[rlhf reward-eval] length bias: {format_length_bias(results['length_bias'])}")
    for name, g in (results.get("by_group") or {}).items():
        print(f"[rlhf reward-eval]   {results['group_by']}={name}: accuracy {_fmt(g['accuracy'])} over {g['pairs']} pairs")
    if results.get("group_by_missing_rankings"):
        print(f"[rlhf reward-eval]   {results['group_by_missing_rankings']} rankings have no '{results['group_by']}': "
              f"their pairs are in {results['group_by']}=?")
