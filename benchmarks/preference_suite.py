"""The preference suite: does alignment work for preferences the defaults were not tuned on?

For each simulated preference of the suite (`rlhf.labelers.SUITE`), the quickstart loop
(examples/quickstart.yaml): one SFT policy and one set of K=4 candidates shared by every
preference; then per preference simulated labels with noise, a reward model, and each method
trained from those same labels:

| method | what it is |
|---|---|
| `ppo` | `rlhf ppo` against the reward model (the quickstart's PPO section) |
| `grpo`, `rloo` | the same trainer with `advantage_estimator` grpo / rloo, 4 completions per prompt (listed only when PPOConfig has that field) |
| `dpo` | `rlhf dpo` on the rankings (no reward model) |
| `best_of_n` | no training: N samples of the SFT policy, the reward model picks one |

Each method's policy answers the held-out prompts once and that preference's own rule judges it
against the SFT policy's answer (`rlhf eval --judge simulated`, noise 0): one cell = a win rate
against SFT with its 95% bootstrap CI. The table has a row per preference, a column per method,
plus the reward model's pair accuracy (on its split's few held-out rankings, and on K=4 candidates
for 96 training prompts no label saw, ranked by the rule itself: `rlhf reward-eval` with its 95% CI)
and the preference's learnability on the shared candidates (share of K=4 sets with at least one
strict preference).

    python benchmarks/preference_suite.py --learnability            # SFT + sampling + learnability only
    python benchmarks/preference_suite.py --scale small --preferences concise,detailed --methods ppo,dpo
    python benchmarks/preference_suite.py --scale small --preferences my_rules:tidy   # a rule of your own
    python benchmarks/preference_suite.py --scale quickstart        # the full suite, ~25 min per preference
                                                                   # on a quiet 2-core machine

A cell whose result JSON exists (RUN_DIR/cells/PREF__METHOD.json) is not run again, and each stage
of a preference resumes from its DONE.json as `rlhf pipeline` does, so a stopped run continues.
Preferences can run side by side in separate invocations (each with its own `--preferences` and
`--results`, after one has made the shared SFT and samples); `--table_only` then writes the one
table from every cell on disk without training anything.

Tuning runs stay out of the default cells: `--variant NAME --set KEY=VALUE ...` trains METHOD@NAME
cells (their own folders and column) with those changes to the method's stage section; a key
`reward.KEY` changes the reward stage instead: the variant trains its own reward model
(PREF/reward@NAME, its held-out accuracy in the cells' JSON and under the table) and its PPO,
critic-free and best-of-N cells use it, e.g.

    python benchmarks/preference_suite.py --scale small --preferences detailed --methods ppo \
        --variant eos --set missing_eos_penalty=-1.0
    python benchmarks/preference_suite.py --scale small --preferences plain --methods ppo,best_of_n \
        --variant rmlr3e-3 --set reward.learning_rate=3e-3
    python benchmarks/preference_suite.py --scale small --table_only --methods ppo,ppo@eos,dpo

Writes benchmarks/results/preference_suite_SCALE.json and .md (and preference_learnability_SCALE.*
with --learnability). Sizes: `quickstart` = the YAML as shipped; `small` = the quickstart's training with 32
held-out prompts; `tiny` = a tiny random model for tests (`--model` a folder, or one is made).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Reward models are also scored on K candidates for this many training prompts the labels never
# saw (the rows after sample.limit), ranked by the rule itself: the split's few held-out rankings
# (6 here) are too coarse to tell two reward models apart.
RM_EVAL_PROMPTS = {"quickstart": 96, "small": 96, "tiny": 4}
CRITIC_FREE = ("grpo", "rloo")
CRITIC_FREE_GENERATIONS = 4
METHODS = ("ppo", *CRITIC_FREE, "dpo", "best_of_n")
SCALES = {
    "quickstart": {},
    # Every training stage as the quickstart trains it (PPO keeps its 50 steps: at 12 it barely
    # left the SFT policy, KL 0.06 nats, while DPO had its whole budget); only the held-out
    # prompts are cut to 32 and no PPO checkpoint is kept mid-run.
    "small": {"ppo": {"save_steps": 0}, "eval": {"limit": 32}},
    "tiny": {
        "sft": {"adapter": "lora", "max_steps": 2, "batch_size": 4, "max_length": 128, "learning_rate": 5e-3},
        "sample": {"limit": 16, "k": 4, "max_new_tokens": 8, "batch_size": 64},
        "label": {"num_labelers": 2, "noise": 0.1},
        "reward": {"epochs": 1, "batch_size": 2, "max_length": 128, "eval_fraction": 0.25},
        "ppo": {"steps": 2, "batch_size": 4, "max_new_tokens": 8, "ppo_epochs": 1, "num_minibatches": 1,
                "save_steps": 0, "length_report_steps": 1},
        "dpo": {"enabled": True, "max_steps": 1, "batch_size": 2, "grad_accum": 1, "max_length": 128},
        "eval": {"limit": 4, "max_new_tokens": 8, "best_of_n": 2, "bootstrap": 200, "batch_size": 8},
    },
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--scale", choices=sorted(SCALES), default="small")
    p.add_argument("--preferences", default=None,
                   help="comma-separated: built-in names, or your own rule as package.module:function (a module in "
                        "the working folder too; its folder is package.module.function) (default: the whole suite)")
    p.add_argument("--methods", default=None, help=f"comma-separated, from {', '.join(METHODS)} (default: all available)")
    p.add_argument("--learnability", action="store_true", help="only SFT, sampling and the learnability table")
    p.add_argument("--variant", default=None,
                   help="a tuning run: its cells are METHOD@VARIANT (a column of their own, folders PREF/METHOD@VARIANT), "
                        "trained with the --set changes; the default cells are untouched")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="with --variant: a field of the method's own stage section (ppo for ppo/grpo/rloo, dpo for "
                        "dpo), value read as YAML, e.g. --set missing_eos_penalty=-1.0; reward.KEY=VALUE changes "
                        "the reward stage (the variant trains its own reward model); repeatable")
    p.add_argument("--table_only", action="store_true",
                   help="train nothing: the table from the cells already on disk (missing ones show as –), e.g. "
                        "after several invocations ran preferences side by side")
    p.add_argument("--config", default=str(ROOT / "examples" / "quickstart.yaml"), help="the base pipeline YAML")
    p.add_argument("--model", default=None, help="base model (default: the YAML's; with --scale tiny, a tiny random one)")
    p.add_argument("--run_dir", default=None, help="where runs go (default runs/preference_suite/SCALE)")
    p.add_argument("--results", default=str(ROOT / "benchmarks" / "results"), help="folder for the JSON and Markdown")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 is faster on a shared machine)")
    args = p.parse_args(argv)
    if args.table_only and args.learnability:
        p.error("--table_only and --learnability are two different reports: pick one")
    if bool(args.variant) != bool(args.set):
        p.error("--variant and --set go together: a variant names a change, a change needs a name for its cells")
    if args.variant and not all(ch.isalnum() or ch in "-_." for ch in args.variant):
        p.error(f"--variant {args.variant!r}: letters, digits, '-', '_' and '.' only (it names files)")
    return args


REWARD_PREFIX = "reward."


def parse_sets(sets: list[str]) -> tuple[dict, dict]:
    """`KEY=VALUE` strings -> (changes to the method's own stage section, changes to the reward stage
    from `reward.KEY=VALUE`), each {KEY: VALUE read as YAML}; SystemExit naming a malformed one."""
    import yaml

    own, reward = {}, {}
    for item in sets:
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key or key == REWARD_PREFIX.rstrip(".") or key == REWARD_PREFIX:
            raise SystemExit(f"preference_suite: --set {item!r} is not KEY=VALUE (or reward.KEY=VALUE)")
        parsed = yaml.safe_load(value)
        if isinstance(parsed, str) and re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+", parsed.strip()):
            parsed = float(parsed)  # YAML 1.1 reads 3e-3 (no dot) as a string; a learning rate is meant
        if key.startswith(REWARD_PREFIX):
            reward[key[len(REWARD_PREFIX):]] = parsed
        else:
            own[key] = parsed
    return own, reward


def split_cell(name: str) -> tuple[str, str | None]:
    """"ppo@eos" -> ("ppo", "eos"); "ppo" -> ("ppo", None)."""
    method, _, variant = name.partition("@")
    return method, variant or None


# --- configuration -----------------------------------------------------------------------------


def merge(base: dict, override: dict) -> dict:
    """`base` with each stage section updated by `override`'s (one level deep)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        out[key] = {**(out.get(key) or {}), **value} if isinstance(value, dict) else value
    return out


def available_methods() -> list[str]:
    """Every method this checkout can run: the critic-free ones need PPOConfig.advantage_estimator."""
    from rlhf.ppo import PPOConfig

    has_estimator = "advantage_estimator" in {f.name for f in dataclasses.fields(PPOConfig)}
    return [m for m in METHODS if m not in CRITIC_FREE or has_estimator]


def pick(names: str | None, known: list[str], what: str) -> list[str]:
    """The comma-separated `names` (all of `known` when empty); a METHOD@VARIANT name counts as known
    when its method is. SystemExit naming any unknown one."""
    if not names:
        return list(known)
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in chosen if split_cell(n)[0] not in known]
    if unknown:
        raise SystemExit(f"preference_suite: unknown {what} {unknown}; known: {', '.join(known)}")
    return chosen


def pick_preferences(names: str) -> list[str]:
    """The comma-separated preferences: built-in or registered names, or a user's own rule as
    `package.module:function` (a module in the working folder too), loaded here so a bad one stops
    the run before anything trains. SystemExit naming an unknown or broken one."""
    from rlhf.labelers import PREFERENCES, get_preference
    from rlhf.stages import ConfigError

    chosen = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in chosen if ":" not in n and n not in PREFERENCES]
    if unknown:
        raise SystemExit(f"preference_suite: unknown preference(s) {unknown}; known: {', '.join(PREFERENCES)}, "
                         "or a rule of your own as package.module:function")
    for name in chosen:
        try:
            get_preference(name)
        except ConfigError as err:
            raise SystemExit(f"preference_suite: {err}") from None
    return chosen


def folder_name(preference: str) -> str:
    """A preference's folder (and cell file prefix): its name, with a user rule's
    `package.module:function` written package.module.function."""
    return preference.replace(":", ".")


def base_config(args) -> dict:
    from rlhf.pipeline import load_pipeline_config

    config = merge(load_pipeline_config(args.config), SCALES[args.scale])
    config["seed"] = args.seed
    config["label_mode"] = "simulated"
    if args.model:
        config["model"] = args.model
    elif args.scale == "tiny":
        from rlhf.models import save_tiny_model

        folder = Path(args.run_dir) / "tiny-model"
        if not (folder / "config.json").exists():
            save_tiny_model(folder)
        config["model"] = str(folder)
    return config


# --- stages --------------------------------------------------------------------------------------


def shared_stages(config: dict, root: Path):
    """SFT and sampling once for every preference, in root/shared."""
    from rlhf.pipeline import Pipeline

    pipe = Pipeline({**config, "run_dir": str(root / "shared")})
    for stage in ("sft", "sample"):
        pipe.run_stage(stage)
    return pipe


def preference_pipeline(config: dict, root: Path, preference: str):
    """A pipeline in root/PREF whose sft and sample folders are the shared ones (linked)."""
    from rlhf.pipeline import Pipeline

    run = root / folder_name(preference)
    run.mkdir(parents=True, exist_ok=True)
    for stage in ("sft", "sample"):
        link = run / stage
        if not link.exists():
            link.symlink_to(Path("..") / "shared" / stage, target_is_directory=True)
    cfg = merge(config, {"run_dir": str(run), "label": {"preference": preference}})
    cfg["run_dir"] = str(run)
    return Pipeline(cfg)


def reward_folder(pipe, variant: str | None, reward_overrides: dict) -> Path:
    """The reward model a cell uses: run/reward, or run/reward@VARIANT trained here (resuming from its
    DONE.json like any stage) when the variant changes the reward stage."""
    from rlhf.pipeline import Pipeline

    if not reward_overrides:
        return pipe.run / "reward"
    folder = pipe.run / f"reward@{variant}"
    Pipeline(merge(pipe.config, {"reward": reward_overrides})).run_stage("reward", folder)
    return folder


def unseen_candidates(config: dict, root: Path, prompts: int) -> Path:
    """K candidates of the shared SFT policy for `prompts` training prompts the labels never saw (the
    rows after sample.limit), sampled as the labels' candidates were but with seed + 1, in
    root/shared/rm_eval (resumes from its DONE.json). SystemExit when the prompts file has too few rows."""
    from rlhf.data import load_prompts, write_jsonl
    from rlhf.pipeline import Pipeline
    from rlhf.sample import resolve_prompts

    folder = root / "shared" / "rm_eval"
    sample = dict(config.get("sample") or {})
    source, skip = resolve_prompts(sample.get("prompts"), "prompts_train"), int(sample.get("limit") or 0)
    if not skip:
        raise SystemExit("preference_suite: sample.limit is unset, so every training prompt was labelled and none "
                         "is left for the reward models' unseen-prompt accuracy")
    rows = load_prompts(source, limit=skip + prompts)[skip:]
    if len(rows) < prompts:
        raise SystemExit(f"preference_suite: {source} has {len(rows)} prompts after the {skip} labelled ones; the "
                         f"reward models' unseen-prompt accuracy wants {prompts}")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "prompts.jsonl"
    if not path.exists():
        write_jsonl(path, [{"id": r.id, "messages": r.messages} for r in rows])
    seed = int(config.get("seed", 0)) + 1
    shared = Pipeline(merge({**config, "seed": seed, "run_dir": str(root / "shared")},
                            {"sample": {"prompts": str(path), "limit": None}}))
    shared.run_stage("sample", folder)
    return folder / "candidates.jsonl"


def unseen_accuracy(pipe, candidates: Path, reward: Path) -> dict:
    """The reward model in `reward` on the unseen candidates ranked by the preference's rule (noise 0,
    ties kept): `unseen_summary` of `rlhf reward-eval`'s results, cached in run/rm_eval/REWARD_FOLDER_NAME
    (scored again when the model was retrained since)."""
    from rlhf.labelers import SimulateConfig, run_simulate
    from rlhf.reward_eval import RewardEvalConfig, run_reward_eval

    folder = pipe.run / "rm_eval"
    rankings = folder / "rankings.jsonl"
    if not rankings.exists():
        folder.mkdir(parents=True, exist_ok=True)
        run_simulate(SimulateConfig(candidates=str(candidates), output=str(rankings), num_labelers=1, noise=0.0,
                                    preference=pipe.section("label")["preference"], seed=pipe.config.get("seed", 0)))
    out, done = folder / reward.name, reward / "DONE.json"
    cached = out / "reward_eval.json"
    if cached.exists() and not (done.exists() and done.stat().st_mtime > cached.stat().st_mtime):
        results = json.loads(cached.read_text())  # scored after the model was (re)trained
    else:
        results = run_reward_eval(RewardEvalConfig(model=str(reward), data=str(rankings), output=str(out),
                                                   bootstrap=1000, seed=pipe.config.get("seed", 0),
                                                   device=pipe.config.get("device")))
    return unseen_summary(results)


def unseen_summary(results: dict) -> dict:
    """accuracy, ci95, pairs, mean_margin of a reward_eval result, and from its length bias the
    accuracy on length-matched pairs and how often the model / the rule prefers the longer answer."""
    bias = results.get("length_bias") or {}
    return {**{k: results.get(k) for k in ("accuracy", "ci95", "pairs", "mean_margin")},
            **{k: bias.get(k) for k in ("length_matched_accuracy", "length_matched_pairs", "model_prefers_longer",
                                        "labels_prefer_longer")}}


def cached_unseen_accuracy(run: Path, reward_name: str) -> dict | None:
    """What `unseen_accuracy` stored for run/REWARD_NAME, or None (for --table_only, which computes nothing)."""
    path = run / "rm_eval" / reward_name / "reward_eval.json"
    if not path.exists():
        return None
    return unseen_summary(json.loads(path.read_text()))


def with_unseen(cell: dict, run: Path) -> dict:
    """A variant cell whose own reward model's unseen accuracy was measured after the cell was written
    (by a later invocation) gets it from the cache."""
    rm = cell.get("reward_model")
    if rm and not rm.get("unseen"):
        rm["unseen"] = cached_unseen_accuracy(run, rm["folder"])
    return cell


def scored_reward_models(run: Path) -> dict:
    """Every reward model of the preference scored on the unseen candidates (the default and each
    reward-stage variant's, variants or not run as cells): {folder name: unseen summary, plus the
    reward settings the variant changed}."""
    out = {}
    for path in sorted((run / "rm_eval").glob("*/reward_eval.json")):
        name = path.parent.name
        summary = unseen_summary(json.loads(path.read_text()))
        try:
            done = json.loads((run / name / "DONE.json").read_text())
            base = json.loads((run / "reward" / "DONE.json").read_text())
            changed = {k: os.path.relpath(v, run) if isinstance(v, str) and v.startswith(str(run)) else v
                       for k, v in (done.get("settings") or {}).items() if (base.get("settings") or {}).get(k) != v}
        except (OSError, ValueError):
            changed = None
        out[name] = {**summary, "changed": changed, "accuracy_split": reward_accuracy(run / name)}
    return out


def train_method(pipe, cell: str, overrides: dict | None = None, reward: Path | None = None) -> tuple[str, float]:
    """Train the cell's method ("ppo", or "ppo@VARIANT" with `overrides` to its stage section) from the
    preference's labels, PPO and the critic-free ones against `reward` (default run/reward); returns
    (policy folder, seconds; 0 if done before)."""
    from rlhf.pipeline import Pipeline

    method, variant = split_cell(cell)
    run, overrides = pipe.run, dict(overrides or {})
    if method == "best_of_n":  # main refuses a best_of_n variant with `overrides`: it trains nothing
        return str(run / "sft"), 0.0
    if reward is not None and reward != run / "reward" and method != "dpo":
        overrides["reward_model"] = str(reward)
    settings = {}
    if method in CRITIC_FREE:
        # Same section as PPO, same prompts per step in completions: G = 4 completions per prompt (the
        # K of the labels), and no critic setting (the estimator builds none).
        settings = {"advantage_estimator": method, "num_generations": CRITIC_FREE_GENERATIONS, "critic": "auto"}
    stage = "dpo" if method == "dpo" else "ppo"
    trainer = Pipeline(merge(pipe.config, {stage: {**settings, **overrides}})) if settings or overrides else pipe
    folder = run / cell  # run/ppo and run/dpo for the defaults, as the pipeline has them
    seconds = trainer.run_stage(stage, folder) or 0.0
    return str(folder / "policy" if stage == "ppo" else folder), seconds


def evaluate_cell(pipe, method: str, policy: str, out: Path, reward: Path | None = None) -> dict:
    """The method's policy against SFT on the held-out prompts, judged by the preference's rule; the
    reward model `reward` (default run/reward) scores the answers and picks best-of-N's."""
    from rlhf.eval import EvalConfig, run_eval
    from rlhf.pipeline import build_config

    run = pipe.run
    section = {k: v for k, v in pipe.section("eval").items() if k not in ("extra_policies", "best_of_n")}
    defaults = {"policy_a": policy, "policy_b": str(run / "sft"), "reward_model": str(reward or run / "reward"),
                "reference": str(run / "sft"), "output": str(out), "judge": "simulated",
                "preference": pipe.section("label")["preference"], "seed": pipe.config.get("seed", 0)}
    if method == "best_of_n":
        section["best_of_n"] = pipe.section("eval").get("best_of_n") or 4
    results = run_eval(build_config(EvalConfig, "eval", defaults, section))
    if method == "best_of_n":
        name = f"best-of-{section['best_of_n']}("
        row = next(c for c in results["comparisons"] if c["a"].startswith(name))
        # Length and finished share of the picks are not recorded by rlhf eval: only the reward is.
        stats = {"name": row["a"], "mean_reward_std_units": results["best_of_n"]["mean_reward_std_units"]}
        return {**{k: row[k] for k in ("win_rate", "ci95", "n", "wins", "ties", "losses")}, "policy": stats,
                "sft": results["policies"]["b"], "sft_vs_sft": results["comparisons"][0]["win_rate"]}
    return {**{k: results[k] for k in ("win_rate", "ci95", "n", "wins", "ties", "losses")},
            "policy": results["policies"]["a"], "sft": results["policies"]["b"]}


def run_cell(pipe, method: str, cells: Path, overrides: dict | None = None,
             reward_overrides: dict | None = None, reward: tuple[Path, dict | None] | None = None) -> dict:
    """Train and judge one (preference, method) cell; `method` may be METHOD@VARIANT, trained with
    `overrides` to its own stage section and `reward_overrides` to the reward stage; `reward` is then
    the variant's own reward model as main resolved it, (folder, its unseen-prompt summary), else the
    preference's default PREF/reward is used. Its JSON is written last, so it marks done."""
    preference = pipe.section("label")["preference"]
    path = cells / f"{folder_name(preference)}__{method}.json"
    if path.exists():
        print(f"[preference_suite] {preference} / {method}: done in an earlier run, skipped", flush=True)
        return json.loads(path.read_text())
    name = split_cell(method)[0]
    load_before, t0 = os.getloadavg(), time.time()
    folder, unseen = reward or (pipe.run / "reward", None)
    policy, train_seconds = train_method(pipe, method, overrides, folder)
    t1 = time.time()
    cell = evaluate_cell(pipe, name, policy, pipe.run / f"eval_{method}", folder)
    if overrides:
        cell["overrides"] = overrides
    if reward_overrides:
        cell["reward_overrides"] = reward_overrides
        cell["reward_model"] = {"folder": folder.name, "accuracy": reward_accuracy(folder), "unseen": unseen}
    cell.update({"preference": preference, "method": method, "train_seconds": round(train_seconds, 1),
                 "eval_seconds": round(time.time() - t1, 1), "cell_seconds": round(time.time() - t0, 1),
                 "load_avg_before": list(load_before), "load_avg_after": list(os.getloadavg())})
    if split_cell(method)[0] in ("ppo", *CRITIC_FREE):
        metrics = json.loads((Path(policy).parent / "metrics.json").read_text())
        cell["train"] = {k: metrics.get(k) for k in ("steps", "score_first_tenth", "score_last_tenth",
                                                     "gold_first_tenth", "gold_last_tenth", "length_report")}
    cells.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(cell, indent=2))
    lo, hi = cell["ci95"]
    print(f"[preference_suite] {preference} / {method}: win rate vs SFT {cell['win_rate']:.3f} "
          f"[{lo:.3f}, {hi:.3f}] in {cell['cell_seconds']:.0f} s", flush=True)
    return cell


# --- learnability and the tables -------------------------------------------------------------------


def learnability_table(candidates_path: Path, preferences: list[str]) -> dict:
    """Each preference's learnability (rlhf.labelers.learnability) on the shared candidates."""
    from rlhf.data import load_candidates
    from rlhf.labelers import learnability

    rows = load_candidates(candidates_path)
    return {name: learnability(rows, name) for name in preferences}


def reward_accuracy(folder: Path) -> float | None:
    """The held-out pair accuracy of the reward model in `folder`; None when the held-out rankings had
    no strict pair (or it is not trained)."""
    import math

    try:
        accuracy = float(json.loads((folder / "metrics.json").read_text())["eval"]["accuracy"])
    except (OSError, KeyError, TypeError, ValueError):
        return None
    return accuracy if math.isfinite(accuracy) else None


def assembled_report(args, config: dict, root: Path, preferences: list[str], methods: list[str], command: str,
                     machine: str) -> dict:
    """The report of `--table_only`: each preference's reward accuracy and every (preference, method)
    cell found under `root`, nothing trained; a preference without a reward model yet is left out."""
    candidates = root / "shared" / "sample" / "candidates.jsonl"
    learn = learnability_table(candidates, preferences) if candidates.exists() else {}
    table = {}
    for preference in preferences:
        run, stem = root / folder_name(preference), root / "cells" / folder_name(preference)
        if not (run / "reward" / "DONE.json").exists():
            print(f"[preference_suite] {preference}: no reward model yet, left out of the table", flush=True)
            continue
        cells = {m: with_unseen(json.loads(Path(f"{stem}__{m}.json").read_text()), run)
                 for m in methods if Path(f"{stem}__{m}.json").exists()}
        table[preference] = {"reward_accuracy": reward_accuracy(run / "reward"),
                             "reward_unseen": cached_unseen_accuracy(run, "reward"), "cells": cells,
                             "reward_models": scored_reward_models(run)}
    return {"scale": args.scale, "command": command, "machine": machine, "methods": methods,
            "eval_prompts": (config.get("eval") or {}).get("limit"), "learnability": learn, "table": table,
            "config": config, "load_avg_start": None, "load_avg_end": None, "wall_seconds": None, "assembled": True,
            "note": "assembled from the cells on disk: each cell's own times and load averages are in its entry; "
                    "config is this invocation's base settings"}


def mean_row(table: dict, methods: list[str]) -> str:
    """The table's last row: each method's mean win rate, with how many preferences it ran on and
    how many cleared 0.5 (CI lower bound above it), e.g. "0.78 (7 of 7; 6 above 0.5)"."""
    cells = []
    for m in methods:
        ran = [row["cells"][m] for row in table.values() if row["cells"].get(m)]
        if not ran:
            cells.append("–")
            continue
        mean = sum(c["win_rate"] for c in ran) / len(ran)
        cells.append(f"{mean:.3f} ({len(ran)} of {len(table)}; {sum(c['ci95'][0] > 0.5 for c in ran)} above 0.5)")
    return "| mean | | | | " + " | ".join(cells) + " |"


def markdown(report: dict) -> str:
    methods, lines = report["methods"], []
    lines += [f"# Preference suite ({report['scale']})", "",
              f"Win rate against the SFT policy on {report['eval_prompts']} held-out prompts, judged by each "
              "preference's own rule (ties count half), 95% bootstrap CI in brackets. RM acc = the reward "
              "model's pair accuracy on its split's held-out rankings (a few, with the labels' noise); RM acc "
              "unseen = on K=4 candidates for training prompts no label saw, ranked by the rule itself, with "
              "its 95% CI and pair count; usable = share of the shared K=4 candidate sets with at least one "
              "strict preference under the rule.", "",
              "| preference | usable | RM acc | RM acc unseen | " + " | ".join(methods) + " |",
              "|---|---|---|---|" + "---|" * len(methods)]
    for pref, row in report["table"].items():
        usable = report["learnability"].get(pref, {}).get("usable_rate")
        acc = row.get("reward_accuracy")
        cells = []
        for m in methods:
            c = row["cells"].get(m)
            cells.append(f"{c['win_rate']:.2f} [{c['ci95'][0]:.2f}, {c['ci95'][1]:.2f}]" if c else "–")
        lines.append(f"| `{pref}` | {usable:.2f} | " if usable is not None else f"| `{pref}` | – | ")
        lines[-1] += (f"{acc:.2f}" if acc is not None else "–") + f" | {_unseen(row.get('reward_unseen'))} | "
        lines[-1] += " | ".join(cells) + " |"
    lines.append(mean_row(report["table"], methods))
    scored = [(pref, name, u) for pref, row in report["table"].items()
              for name, u in (row.get("reward_models") or {}).items()]
    if any(name != "reward" for _, name, _ in scored):
        lines += ["", "Every reward model scored on the unseen candidates (the default `reward` and each reward-stage "
                  "variant's, tuning runs included):", "",
                  "| preference | reward model | settings changed | RM acc | RM acc unseen | length-matched acc. | "
                  "prefers longer (rule) |", "|---|---|---|---|---|---|---|"]
        for pref, name, u in scored:
            changed = ", ".join(f"{k}={v}" for k, v in (u.get("changed") or {}).items()) or "–"
            lines.append(f"| `{pref}` | {name} | {changed} | {_one(u.get('accuracy_split'))} | {_unseen(u)} | "
                         f"{_one(u.get('length_matched_accuracy'))} | "
                         f"{_one(u.get('model_prefers_longer'))} ({_one(u.get('labels_prefer_longer'))}) |")
    lines += ["", "Per cell, the proxy beside the judge: the reward model's mean score of the method's answers "
              "against the SFT answers', answer length, the share that ended by themselves (not cut off at the "
              "token limit) and the KL to the SFT policy (nats per answer).", "",
              "| preference | method | win rate | RM score, std units (method / SFT) | words | finished | KL |", "|---|---|---|---|---|---|---|"]
    for pref, row in report["table"].items():
        for m, c in row["cells"].items():
            pol, sft = c.get("policy", {}), c.get("sft", {})
            lines.append(f"| `{pref}` | {m} | {c['win_rate']:.2f} | {_pair(pol.get('mean_reward_std_units'), sft.get('mean_reward_std_units'))} | "
                         f"{_pair(pol.get('mean_words'), sft.get('mean_words'), '.1f')} | "
                         f"{_pair(pol.get('finished_rate'), sft.get('finished_rate'))} | {_one(pol.get('kl_to_reference'))} |")
    cell_seconds = sum(c.get("cell_seconds", 0) for row in report["table"].values() for c in row["cells"].values())
    lines += ["", f"Cells' own time (training + evaluation, summed over every invocation): {cell_seconds / 60:.1f} min; "
              "shared SFT and sampling, labels and reward models not included (see run_dir/*/DONE.json)."]
    if report.get("assembled"):
        loads = [c["load_avg_before"][0] for row in report["table"].values() for c in row["cells"].values()
                 if c.get("load_avg_before")]
        spread = f"{min(loads):.1f}–{max(loads):.1f}" if loads else "–"
        lines += ["", f"Command: `{report['command']}` (the table from the cells on disk; nothing trained)  ",
                  f"Machine: {report['machine']}; 1-minute load average when each cell started: {spread} (each "
                  "cell's own before/after load and times are in the JSON).", ""]
        return "\n".join(lines)
    lines += ["", f"Command: `{report['command']}`  ", f"Machine: {report['machine']}; load average at start "
              f"{report['load_avg_start']}, at end {report['load_avg_end']}; wall time {report['wall_seconds'] / 60:.1f} min "
              "(cells run in earlier invocations keep their own times in the JSON).", ""]
    return "\n".join(lines)


def _unseen(u: dict | None) -> str:
    if not u or u.get("accuracy") is None:
        return "–"
    return f"{u['accuracy']:.2f} [{u['ci95'][0]:.2f}, {u['ci95'][1]:.2f}] ({u['pairs']} pairs)"


def _one(x, fmt: str = ".2f") -> str:
    return "–" if x is None else format(x, fmt)


def _pair(x, y, fmt: str = ".2f") -> str:
    return f"{_one(x, fmt)} / {_one(y, fmt)}"


def learnability_markdown(report: dict) -> str:
    lines = [f"# Learnability of the suite's preferences ({report['scale']})", "",
             f"{report['rows']} shared candidate sets (K = {report['k']}) sampled from the SFT policy on the shipped "
             "training prompts, scored by each rule without noise.", "",
             "| preference | usable (>= 1 strict pair) | single tie | strict pairs | tiers per ranking |",
             "|---|---|---|---|---|"]
    for name, m in report["learnability"].items():
        lines.append(f"| `{name}` | {m['usable_rate']:.2f} | {m['single_tie_rate']:.2f} | {m['strict_pair_rate']:.2f} | "
                     f"{m['mean_tiers']:.2f} |")
    return "\n".join(lines + ["", f"Command: `{report['command']}`", ""])


def write(results: Path, stem: str, report: dict, md: str) -> None:
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    (results / f"{stem}.md").write_text(md)
    print(md)
    print(f"[preference_suite] wrote {results / stem}.json and .md")


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from rlhf.labelers import PREFERENCES, SUITE

    args.run_dir = args.run_dir or str(ROOT / "runs" / "preference_suite" / args.scale)
    root = Path(args.run_dir)
    # Any registered preference or a user's own rule (package.module:function) may be named; the
    # default is the suite (every built-in rule for the learnability table, so the rules left out
    # of the suite show why).
    preferences = pick_preferences(args.preferences or ",".join(PREFERENCES if args.learnability else SUITE))
    missing = [m for m in (args.methods or "").split(",") if m in CRITIC_FREE and m not in available_methods()]
    if missing:
        raise SystemExit(f"preference_suite: {missing} need PPOConfig.advantage_estimator, which this checkout lacks")
    methods = pick(args.methods, available_methods(), "method(s)")
    overrides, reward_overrides = parse_sets(args.set)
    if args.variant:
        if any("@" in m for m in methods):
            raise SystemExit("preference_suite: with --variant, name the plain methods (--methods ppo), not METHOD@VARIANT")
        if reward_overrides and "dpo" in methods:
            raise SystemExit("preference_suite: dpo learns from the labels, not the reward model: a reward.KEY variant "
                             "would repeat its default cell")
        if overrides and "best_of_n" in methods:
            raise SystemExit("preference_suite: best_of_n trains nothing: its variants change only the reward stage "
                             "(--set reward.KEY=VALUE)")
        methods = [f"{m}@{args.variant}" for m in methods]
    elif not args.table_only and any("@" in m for m in methods):
        raise SystemExit("preference_suite: a METHOD@VARIANT cell is trained with --variant and --set; "
                         "--table_only shows it")
    root.mkdir(parents=True, exist_ok=True)  # after every check of the arguments
    config, started, load_start = base_config(args), time.time(), os.getloadavg()
    command = "python benchmarks/preference_suite.py " + " ".join(sys.argv[1:] if argv is None else argv)
    machine = f"{os.cpu_count()} cores, {platform.machine()}, torch threads {args.threads or 'default'}"

    if args.table_only:
        report = assembled_report(args, config, root, preferences, methods, command, machine)
        write(Path(args.results), f"preference_suite_{args.scale}", report, markdown(report))
        return report
    shared = shared_stages(config, root)
    candidates = shared.run / "sample" / "candidates.jsonl"
    learn = learnability_table(candidates, preferences)
    k = (config.get("sample") or {}).get("k", 4)
    if args.learnability:
        report = {"scale": args.scale, "command": command, "rows": next(iter(learn.values()))["rows"], "k": k,
                  "learnability": learn, "load_avg": [list(load_start), list(os.getloadavg())]}
        write(Path(args.results), f"preference_learnability_{args.scale}", report, learnability_markdown(report))
        return report

    unseen = unseen_candidates(config, root, RM_EVAL_PROMPTS[args.scale])
    table = {}
    for preference in preferences:
        pipe = preference_pipeline(config, root, preference)
        for stage in ("label", "reward"):
            pipe.run_stage(stage)
        row = {"reward_accuracy": reward_accuracy(pipe.run / "reward"),
               "reward_unseen": unseen_accuracy(pipe, unseen, pipe.run / "reward"), "cells": {}}
        variant_reward = None
        if reward_overrides:  # trained and scored once here, also for cells written before it was scored
            folder = reward_folder(pipe, args.variant, reward_overrides)
            variant_reward = (folder, unseen_accuracy(pipe, unseen, folder))
        for method in methods:
            cell = run_cell(pipe, method, root / "cells", overrides, reward_overrides, variant_reward)
            row["cells"][method] = with_unseen(cell, pipe.run)
        row["reward_models"] = scored_reward_models(pipe.run)
        table[preference] = row
    report = {"scale": args.scale, "command": command, "machine": machine, "methods": methods,
              "eval_prompts": (config.get("eval") or {}).get("limit"), "learnability": learn, "table": table,
              "config": config, "load_avg_start": [round(x, 2) for x in load_start],
              "load_avg_end": [round(x, 2) for x in os.getloadavg()], "wall_seconds": round(time.time() - started, 1)}
    write(Path(args.results), f"preference_suite_{args.scale}", report, markdown(report))
    return report


if __name__ == "__main__":
    main()
