"""Held-out accuracy and length bias of `rlhf reward` against TRL's RewardTrainer on human-like pairs,
at equal budget, over several seeds, in one run.

Data (`rlhf.reward.synthetic.human_like_pairs`): single-turn pairs whose label depends on content (a
right fact beats a wrong one; an answer about the asked topic beats one about another topic), padded
with neutral sentences so that the chosen answer is the longer one in exactly half of the pairs;
facts, and so prompts, are split between train and test. Each seed draws its own data, head
initialisation, LoRA start and data order; both trainers get the same ones.

Equal budget: the same pairs, model (the same seq-cls start, head drawn the same way), LoRA (rank,
alpha, every linear layer of the transformer, head trained in full), learning rate, epochs, pairs per
optimizer step and max_length. Each trainer keeps its own other defaults (ours: 5% warm-up; TRL: none)
unless `--ours KEY=VALUE` overrides a RewardConfig field for ours (controlled runs). Both models are
scored on the test pairs by the same code; the length-bias figures come from `rlhf.reward.bias`.

    python benchmarks/reward_quality.py --threads 1                     # 3 seeds, both trainers
    python benchmarks/reward_quality.py --tiny --seeds 0                # tiny random Llama, a quick check
    python benchmarks/reward_quality.py --trainers ours --ours batch_size=2 --name ours-batch2
    python benchmarks/reward_quality.py --trainers lm --name lm     # no training: the base model's likelihood
    python benchmarks/reward_quality.py --merge a.json:trl b.json:ours c.json   # seeds run apart, one summary
    python benchmarks/reward_quality.py --resummarise benchmarks/results/reward_quality*.json  # statistics only

Prints per-seed rows and a summary (mean and spread over seeds; accuracy with a bootstrap 95% CI over
test pairs of all seeds; the paired difference ours - TRL with its CI) and writes
benchmarks/results/reward_quality.json and .md (or `--out` / `--name`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from _runner import RESULTS, load_average, save_results
from _trl_reward import train_trl_reward

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="tiny random Llama instead of the embedded default")
    p.add_argument("--train-pairs", type=int, default=160)
    p.add_argument("--test-pairs", type=int, default=120)
    p.add_argument("--longer-chosen", type=float, default=0.5, help="share of pairs whose chosen answer is longer")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate of both (default: RewardConfig's for lora, 3e-3; 3e-4 was the default before "
                        "the runs in benchmarks/results/reward_quality_lr*.md)")
    p.add_argument("--batch", type=int, default=8, help="pairs per optimizer step, both (TRL's default 8)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--lora-r", type=int, default=16)
    p.add_argument("--trainers", nargs="+", choices=["ours", "trl", "lm"], default=["ours", "trl"],
                   help="lm = no training: the base model's own log-likelihood of each answer (what it already knows)")
    p.add_argument("--ours", nargs="*", default=[], metavar="KEY=VALUE",
                   help="RewardConfig fields for ours (e.g. warmup_ratio=0 batch_size=2); they win over --batch/--lr")
    p.add_argument("--trl", nargs="*", default=[], metavar="KEY=VALUE",
                   help="trl.RewardConfig fields for TRL (e.g. center_rewards_coefficient=0.01)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 on a shared machine)")
    p.add_argument("--name", default=None, help="result name: benchmarks/results/reward_quality_NAME.{json,md}")
    p.add_argument("--out", default=None, help="result .json path (a .md goes beside it)")
    p.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples for the CIs")
    p.add_argument("--merge", nargs="+", default=None, metavar="FILE.json:TRAINERS",
                   help="train nothing: combine the per-seed runs of earlier result files (e.g. runs made one seed "
                        "at a time) into one summary; ':ours', ':trl' or ':ours,trl' picks which trainers' runs a "
                        "file gives. Data settings must agree.")
    p.add_argument("--resummarise", nargs="+", default=None, metavar="FILE.json",
                   help="train nothing: recompute the summary of earlier result files from the per-pair outcomes "
                        "they store (after a change to the statistics) and rewrite each file and its .md")
    return p.parse_args(argv)


def _overrides(items: list[str], cls) -> dict:
    """KEY=VALUE strings -> typed values, by the dataclass field's default (None: float, else str)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    out = {}
    for item in items:
        key, _, raw = item.partition("=")
        if key not in fields:
            raise SystemExit(f"--ours/--trl: {cls.__name__} has no field {key!r}")
        default = fields[key].default
        if raw.lower() in ("none", "null"):
            out[key] = None
        elif isinstance(default, bool):
            out[key] = raw.lower() in ("1", "true", "yes")
        elif isinstance(default, int):
            out[key] = int(raw)
        elif isinstance(default, float) or default is None:
            try:
                out[key] = float(raw)
            except ValueError:
                out[key] = raw
        else:
            out[key] = raw
    return out


# --- scoring, the same code for both ----------------------------------------------------------


def score_test(model, tokenizer, pairs: list[dict], max_length: int) -> dict:
    """Pair accuracy and length-bias figures of `model` on `pairs`, plus per-pair correctness."""
    from rlhf.reward.bias import completion_token_lengths, length_bias
    from rlhf.reward.model import encode, score_ids

    prompts = [p["prompt"] for p in pairs]
    ids = encode(tokenizer, prompts + prompts, [p["chosen"] for p in pairs] + [p["rejected"] for p in pairs],
                 max_length)
    scores = score_ids(model.eval(), ids, tokenizer.pad_token_id, batch_size=32).float().cpu()
    n = len(pairs)
    lengths = completion_token_lengths(tokenizer, [p["chosen"] for p in pairs] + [p["rejected"] for p in pairs])
    bias = length_bias(scores[:n], scores[n:], lengths[:n], lengths[n:])
    return {**bias, "correct": (scores[:n] > scores[n:]).int().tolist()}


def lm_scores(model, tokenizer, pairs: list[dict], max_length: int):
    """(chosen, rejected): (p,) float tensors, each answer's mean log-probability per token (nats) under
    the causal LM `model`, after the chat-templated prompt (`rlhf.generation.sequence_logprobs`, divided by
    the answer's tokens), the sequence cut on the left to max_length. Per token, so a padded answer is
    not penalised for its length alone."""
    import torch

    from rlhf.generation import Generation, encode_prompt, sequence_logprobs

    def sequence(prompt: str, answer: str) -> Generation:
        head = encode_prompt(tokenizer, [{"role": "user", "content": prompt}])
        tail = tokenizer(answer, add_special_tokens=False).input_ids
        cut = max(0, len(head) + len(tail) - max_length)  # from the prompt first, keeping one token to predict from
        head, tail = head[min(cut, len(head) - 1):], tail[max(0, cut - len(head) + 1):]
        return Generation(text=answer, finished=True, token_ids=tail, prompt_ids=head)

    gens = [sequence(p["prompt"], p[side]) for side in ("chosen", "rejected") for p in pairs]
    means = sequence_logprobs(model, gens, tokenizer.pad_token_id, batch_size=16) / torch.tensor(
        [len(g.token_ids) for g in gens], dtype=torch.float32)
    return means[:len(pairs)], means[len(pairs):]


def score_lm(model_name, pairs: list[dict], max_length: int) -> dict:
    """No training: the base causal LM's likelihood of each answer (lm_scores) as its score, what the
    model already knows before a reward model is trained. The same figures as score_test."""
    from rlhf.adapters import load_causal_lm
    from rlhf.models import load_tokenizer
    from rlhf.reward.bias import completion_token_lengths, length_bias

    tokenizer = load_tokenizer(model_name)
    chosen, rejected = lm_scores(load_causal_lm(model_name, device="cpu").eval(), tokenizer, pairs, max_length)
    lengths = completion_token_lengths(tokenizer, [p["chosen"] for p in pairs] + [p["rejected"] for p in pairs])
    n = len(pairs)
    return {**length_bias(chosen, rejected, lengths[:n], lengths[n:]), "correct": (chosen > rejected).int().tolist()}


# --- the two trainers -------------------------------------------------------------------------


def run_ours(model_name, train_file, tmp: Path, args, seed: int) -> dict:
    from rlhf.models import load_tokenizer
    from rlhf.reward import RewardConfig, train_reward
    from rlhf.reward.model import RewardModel

    settings = dict(data=str(train_file), output_dir=str(tmp / f"ours{seed}"), model=model_name, train="lora",
                    lora_r=args.lora_r, lora_alpha=2 * args.lora_r, learning_rate=args.lr, epochs=args.epochs,
                    batch_size=args.batch, max_length=args.max_length, eval_fraction=0.0,
                    calibration_data="none", seed=seed)
    settings.update(_overrides(args.ours, RewardConfig))
    metrics = train_reward(RewardConfig(**settings))
    model = RewardModel.load(tmp / f"ours{seed}", device="cpu").model
    return {"model": model, "tokenizer": load_tokenizer(str(tmp / f"ours{seed}")), "steps": metrics["steps"],
            "epoch_seconds": metrics["epoch_seconds"], "epoch_cpu_seconds": metrics["epoch_cpu_seconds"],
            "train_accuracy": metrics["train"]["accuracy"]}


def run_trl(model_name, pairs: list[dict], tmp: Path, args, seed: int) -> dict:
    import trl

    settings = dict(output_dir=str(tmp / f"trl{seed}"), report_to=[], learning_rate=args.lr,
                    num_train_epochs=args.epochs, per_device_train_batch_size=args.batch, max_grad_norm=1.0,
                    gradient_checkpointing=False, max_length=args.max_length, save_strategy="no",
                    logging_steps=10_000, seed=seed, disable_tqdm=True)
    settings.update(_overrides(args.trl, trl.RewardConfig))
    return {**train_trl_reward(model_name, pairs, settings, seed, lora_r=args.lora_r), "train_accuracy": None}


# --- statistics -------------------------------------------------------------------------------


def _ci95(values: list[float], resamples: int, seed: int = 0) -> list[float | None]:
    """95% percentile bootstrap CI of the mean of `values` (rlhf.eval.bootstrap_ci, resampling items);
    [None, None] for no values."""
    from rlhf.eval import bootstrap_ci

    return list(bootstrap_ci(values, resamples, seed)) if values else [None, None]


def _spread(values: list[float]) -> dict:
    values = [v for v in values if v is not None]
    if not values:
        return {"mean": None, "std": None, "min": None, "max": None}
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values)}


SUMMARY_KEYS = ("accuracy", "model_prefers_longer", "labels_prefer_longer", "accuracy_chosen_longer",
                "accuracy_chosen_shorter", "length_matched_accuracy", "spearman", "pearson", "seconds_per_epoch",
                "cpu_seconds_per_epoch", "steps")


def summarise(runs: dict, resamples: int) -> dict:
    """Per trainer: mean/std/min/max over seeds, and accuracy over all test pairs of all seeds with CI;
    with both trainers, the paired difference ours - TRL (same seed, same test pair) with CI."""
    out = {}
    for name, per_seed in runs.items():
        correct = [c for r in per_seed for c in r["correct"]]
        out[name] = {key: _spread([r.get(key) for r in per_seed]) for key in SUMMARY_KEYS}
        out[name]["pooled_accuracy"] = sum(correct) / len(correct)
        out[name]["pooled_accuracy_ci95"] = _ci95(correct, resamples)
    if "ours" in runs and "trl" in runs:
        diff = [a - b for ro, rt in zip(runs["ours"], runs["trl"]) for a, b in zip(ro["correct"], rt["correct"])]
        out["ours_minus_trl"] = {"accuracy": sum(diff) / len(diff), "ci95": _ci95(diff, resamples, seed=1)}
        out["speedup_per_epoch"] = out["trl"]["seconds_per_epoch"]["mean"] / out["ours"]["seconds_per_epoch"]["mean"]
        out["cpu_speedup_per_epoch"] = (out["trl"]["cpu_seconds_per_epoch"]["mean"]
                                        / out["ours"]["cpu_seconds_per_epoch"]["mean"])
    return out


# --- output -----------------------------------------------------------------------------------


def _f(x, digits=3):
    return "–" if x is None else f"{x:.{digits}f}"


def markdown(report: dict) -> str:
    s, lines = report["summary"], []
    lines.append(f"{report['model']}, {report['train_pairs']} train / {report['test_pairs']} test human-like pairs "
                 f"(chosen longer in {report['longer_chosen']:.0%}), seeds {report['seeds']}, lr {report['lr']}, "
                 f"{report['batch']} pairs per step, {report['epochs']} epoch(s), {report['device']}, "
                 f"load average {report['load_average']}")
    if report["ours_overrides"] or report["trl_overrides"]:
        lines.append(f"overrides: ours {report['ours_overrides']}, TRL {report['trl_overrides']}")
    lines += ["", "| trainer | held-out accuracy [95% CI] | per seed (mean ± sd) | prefers longer (labels) | "
              "acc. chosen longer / shorter | length-matched acc. | Spearman score~length | s/epoch (± sd) | steps |",
              "|---|---|---|---|---|---|---|---|---|"]
    for name in report["runs"]:
        t = s[name]
        lo, hi = t["pooled_accuracy_ci95"]
        lines.append(
            f"| {name} | {_f(t['pooled_accuracy'])} [{_f(lo)}, {_f(hi)}] | {_f(t['accuracy']['mean'])} ± "
            f"{_f(t['accuracy']['std'])} | {_f(t['model_prefers_longer']['mean'], 2)} "
            f"({_f(t['labels_prefer_longer']['mean'], 2)}) | {_f(t['accuracy_chosen_longer']['mean'])} / "
            f"{_f(t['accuracy_chosen_shorter']['mean'])} | {_f(t['length_matched_accuracy']['mean'])} | "
            f"{_f(t['spearman']['mean'], 2)} | {_f(t['seconds_per_epoch']['mean'], 1)} ± "
            f"{_f(t['seconds_per_epoch']['std'], 1)} | {_f(t['steps']['mean'], 0)} |")
    if "ours_minus_trl" in s:
        d = s["ours_minus_trl"]
        lines += ["", f"ours − TRL, paired over the same test pairs and seeds: {d['accuracy']:+.3f} "
                  f"[{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]; TRL's time per epoch / ours: {s['speedup_per_epoch']:.2f}x "
                  f"wall, {s['cpu_speedup_per_epoch']:.2f}x process CPU time"]
    return "\n".join(lines) + "\n"


DATA_KEYS = ("model", "train_pairs", "test_pairs", "longer_chosen", "lr", "batch", "epochs", "max_length")


def merge_reports(specs: list[str], resamples: int) -> dict:
    """One report from several: the runs of the named trainers, ordered by seed. Raises SystemExit when
    the files' data settings differ or a trainer has two runs of one seed."""
    merged, sources = None, []
    for spec in specs:
        path, _, names = spec.partition(":")
        report = json.loads(Path(path).read_text())
        names = names.split(",") if names else list(report["runs"])
        if merged is None:
            merged = {**{k: report[k] for k in DATA_KEYS}, "runs": {}, "ours_overrides": [], "trl_overrides": []}
        differ = [k for k in DATA_KEYS if report[k] != merged[k]]
        if differ:
            raise SystemExit(f"--merge: {path} differs from the first file in {differ}")
        for name in names:
            runs = merged["runs"].setdefault(name, [])
            for run in report["runs"][name]:
                if any(r["seed"] == run["seed"] for r in runs):
                    raise SystemExit(f"--merge: two {name} runs of seed {run['seed']}")
                runs.append(run)
            runs.sort(key=lambda r: r["seed"])
            merged[f"{name}_overrides"] = report[f"{name}_overrides"]
        sources.append({"file": Path(path).name, "trainers": names, "load_average": report["load_average"],
                        "device": report["device"]})
    seeds = [sorted(r["seed"] for r in runs) for runs in merged["runs"].values()]
    if any(s != seeds[0] for s in seeds):
        raise SystemExit(f"--merge: the trainers ran different seeds: {seeds}")
    merged.update(seeds=seeds[0], summary=summarise(merged["runs"], resamples), merged_from=sources,
                  device=sources[0]["device"], load_average=[s["load_average"] for s in sources])
    return merged


def main(argv=None):
    args = parse_args(argv)
    if args.lr is None:
        from rlhf.reward.config import DEFAULT_LEARNING_RATES

        args.lr = DEFAULT_LEARNING_RATES["lora"]
    name = "reward_quality" + ("_tiny" if args.tiny else "") + (f"_{args.name}" if args.name else "")
    out = Path(args.out) if args.out else RESULTS / f"{name}.json"
    if args.resummarise:
        if args.merge:
            raise SystemExit("--resummarise and --merge: one at a time")
        for path in args.resummarise:
            report = json.loads(Path(path).read_text())
            resamples = report.get("bootstrap", args.bootstrap)  # files before it was recorded: 2000, the default
            _write({**report, "summary": summarise(report["runs"], resamples), "bootstrap": resamples}, Path(path))
        return None
    if args.merge:
        return _write({**merge_reports(args.merge, args.bootstrap), "bootstrap": args.bootstrap}, out)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from rlhf.data import write_jsonl
    from rlhf.models import save_tiny_model
    from rlhf.reward.synthetic import human_like_pairs

    runs = {t: [] for t in args.trainers}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        model_name = str(save_tiny_model(tmp / "tiny")) if args.tiny else None
        for seed in args.seeds:
            train, test = human_like_pairs(args.train_pairs, args.test_pairs, seed=seed, longer_chosen=args.longer_chosen)
            train_rows = [{k: p[k] for k in ("prompt", "chosen", "rejected")} for p in train]
            train_file = write_jsonl(tmp / f"train{seed}.jsonl", train_rows)
            for trainer in args.trainers:
                if trainer == "lm":
                    result = {**score_lm(model_name, test, args.max_length), "seed": seed, "steps": 0}
                    runs[trainer].append(result)
                    print(f"[reward_quality] seed {seed} base LM likelihood: accuracy {result['accuracy']:.3f}, "
                          f"prefers longer {result['model_prefers_longer']:.2f}", flush=True)
                    continue
                run = run_ours(model_name, train_file, tmp, args, seed) if trainer == "ours" else \
                    run_trl(model_name, train_rows, tmp, args, seed)
                result = score_test(run["model"], run["tokenizer"], test, args.max_length)
                wall, cpu = run["epoch_seconds"], run["epoch_cpu_seconds"]
                result.update(seed=seed, steps=run["steps"], epoch_seconds=wall, train_accuracy=run["train_accuracy"],
                              seconds_per_epoch=sum(wall) / len(wall), cpu_seconds_per_epoch=sum(cpu) / len(cpu))
                runs[trainer].append(result)
                print(f"[reward_quality] seed {seed} {trainer}: accuracy {result['accuracy']:.3f}, prefers longer "
                      f"{result['model_prefers_longer']:.2f} (labels {result['labels_prefer_longer']:.2f}), "
                      f"{result['seconds_per_epoch']:.1f} s/epoch, {result['steps']} steps", flush=True)
                del run
    report = {
        "model": "tiny random Llama" if args.tiny else "SmolLM2-135M-Instruct (embedded default), LoRA "
                 f"r={args.lora_r} on every linear layer",
        "train_pairs": args.train_pairs, "test_pairs": args.test_pairs, "longer_chosen": args.longer_chosen,
        "seeds": args.seeds, "lr": args.lr, "batch": args.batch, "epochs": args.epochs, "max_length": args.max_length,
        "ours_overrides": args.ours, "trl_overrides": args.trl,
        "runs": runs, "summary": summarise(runs, args.bootstrap), "bootstrap": args.bootstrap, "wall_seconds": time.perf_counter() - started,
        "device": "cuda" if torch.cuda.is_available() else f"cpu ({os.cpu_count()} cores, torch threads {torch.get_num_threads()})",
        "load_average": load_average(),
        "torch": torch.__version__, "python": platform.python_version(),
    }
    return _write(report, out)


def _write(report: dict, out: Path) -> dict:
    save_results(out, report, "\n" + markdown(report))
    print(f"written to {out} and {out.with_suffix('.md')}")
    return report


if __name__ == "__main__":
    main()
