"""Grouped ranking loss (ours) against TRL's RewardTrainer on the expanded pairs, in one run.

Both start from the same seq-cls model (same head initialisation, same LoRA or partial setup), see
the same K=4 strict rankings (ours as rankings, TRL as the C(K,2) = 6 pairs of each), the same
learning rate and schedule (linear, no warmup), gradient clipping and epochs; TRL's gradient
checkpointing is off, as ours is. Batches: TRL at its default 8 pairs per step (16 sequences per
forward pass), ours at 1 ranking per step (4 sequences, 6 pairs: about as many pairs per optimizer
step). `--ours-batch-rankings 4` gives ours the same 16 sequences per forward pass instead (3x
fewer optimizer steps per epoch than TRL). Held-out pair accuracy of both is measured by the same
code on prompts neither saw. Epoch time is wall clock and process CPU time (the CPU time is the
fairer figure on a machine other jobs share).

    python benchmarks/reward_speed.py --tiny          # tiny random Llama, a quick check
    python benchmarks/reward_speed.py --threads 1     # the embedded default SmolLM2-135M, LoRA

Prints a table per seed and the mean and spread over seeds, and writes benchmarks/results/reward_speed.json
(reward_speed_tiny.json with --tiny).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import tempfile
from pathlib import Path

from _runner import RESULTS, load_average
from _trl_reward import train_trl_reward

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="tiny random Llama instead of the embedded default")
    p.add_argument("--rankings", type=int, default=64, help="training rankings")
    p.add_argument("--eval-rankings", type=int, default=32, help="held-out rankings (other prompts)")
    p.add_argument("--k", type=int, default=4, help="completions per ranking (strict rankings)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--ours-epochs", type=int, default=None,
                   help="epochs for ours when it differs (time to equal accuracy); default --epochs")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (1 is faster on a machine other jobs share)")
    p.add_argument("--train", choices=["lora", "partial"], default="lora")
    p.add_argument("--batch-rankings", type=int, default=4, help="TRL's batch is 2x this in pairs (default 8 pairs)")
    p.add_argument("--ours-batch-rankings", type=int, default=1,
                   help="rankings per step for ours (1 ranking of K=4 = 6 pairs, about TRL's 8 pairs per step)")
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate of both (default: RewardConfig's for the mode, 3e-3 lora, 3e-5 partial; 3e-3 with --tiny)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                   help="seeds (data, head, LoRA start, data order); figures are the mean and spread over them")
    p.add_argument("--out", default=None,
                   help="result file (default benchmarks/results/reward_speed.json, reward_speed_tiny.json with --tiny)")
    return p.parse_args()


def held_out_accuracy(model, tokenizer, rankings) -> float:
    """Share of held-out strict pairs with r_better > r_worse, the same code for both trainers."""
    from rlhf.reward.model import encode, score_ids

    ids = encode(tokenizer, [r.prompt for r in rankings for _ in r.completions],
                 [c for r in rankings for c in r.completions], 512)
    scores = score_ids(model.eval(), ids, tokenizer.pad_token_id, batch_size=32).cpu()
    correct, offset = [], 0
    for r in rankings:
        correct += [bool(scores[offset + b] > scores[offset + w]) for b, w, _ in r.pairs()]
        offset += len(r.completions)
    return sum(correct) / len(correct)


def run_ours(model_name, train_file, tmp, args, lr, seed):
    from rlhf.models import load_tokenizer
    from rlhf.reward import RewardConfig, train_reward
    from rlhf.reward.model import RewardModel

    config = RewardConfig(data=str(train_file), output_dir=str(tmp / "ours"), model=model_name, train=args.train,
                          learning_rate=lr, epochs=args.ours_epochs or args.epochs, batch_size=args.ours_batch_rankings,
                          warmup_ratio=0.0,
                          eval_fraction=0.0, calibration_data="none", seed=seed, max_length=512)
    metrics = train_reward(config)
    rm = RewardModel.load(tmp / "ours", device=None)
    seconds = list(zip(metrics["epoch_seconds"], metrics["epoch_cpu_seconds"]))
    return seconds, rm.model, load_tokenizer(str(tmp / "ours")), metrics["steps"]


def run_trl(model_name, pairs, tmp, args, lr, seed):
    settings = dict(output_dir=str(tmp / "trl"), report_to=[], learning_rate=lr, num_train_epochs=args.epochs,
                    per_device_train_batch_size=2 * args.batch_rankings, lr_scheduler_type="linear", warmup_steps=0,
                    max_grad_norm=1.0, weight_decay=0.0, gradient_checkpointing=False, max_length=None,
                    save_strategy="no", logging_steps=10_000, seed=seed, disable_tqdm=False)
    run = train_trl_reward(model_name, pairs, settings, seed, lora_r=16 if args.train == "lora" else None)
    return list(zip(run["epoch_seconds"], run["epoch_cpu_seconds"])), run["model"], run["tokenizer"], run["steps"]


def main():
    args = parse_args()
    import torch

    args.out = args.out or str(RESULTS / ("reward_speed_tiny.json" if args.tiny else "reward_speed.json"))
    if args.threads:
        torch.set_num_threads(args.threads)
    from rlhf.reward.config import DEFAULT_LEARNING_RATES

    lr = args.lr or (3e-3 if args.tiny else DEFAULT_LEARNING_RATES[args.train])
    reports = [run_seed(args, seed, lr) for seed in args.seeds]
    report = {**reports[0], "seeds": args.seeds, "per_seed": reports, "over_seeds": over_seeds(reports),
              "load_average": load_average()}
    for key in ("results", "speedup", "total_time_speedup", "cpu_time_speedup_per_epoch", "goal_met", "seed"):
        report.pop(key, None)
    _print_spread(report)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"written to {args.out}")


def run_seed(args, seed: int, lr: float) -> dict:
    """Both trainers on one seed's data; the report of that seed (printed as a table)."""
    import torch

    from rlhf.data import write_jsonl
    from rlhf.models import save_tiny_model
    from rlhf.reward.synthetic import synthetic_rankings, to_pairs, to_rows

    everything = synthetic_rankings(args.rankings + args.eval_rankings, k=args.k, seed=seed, kind="graded")
    train, held_out = everything[:args.rankings], everything[args.rankings:]  # distinct prompts
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        model_name = str(save_tiny_model(tmp / "tiny")) if args.tiny else None
        train_file = write_jsonl(tmp / "rankings.jsonl", to_rows(train))
        pairs = to_pairs(train)
        results = {}
        for name, run in (("ours (grouped rankings)", lambda: run_ours(model_name, train_file, tmp, args, lr, seed)),
                          ("TRL RewardTrainer (pairs)", lambda: run_trl(model_name, pairs, tmp, args, lr, seed))):
            seconds, model, tokenizer, steps = run()
            wall, cpu = [w for w, _ in seconds], [c for _, c in seconds]
            results[name] = {"epochs": len(wall), "epoch_seconds": wall, "epoch_cpu_seconds": cpu,
                             "seconds_per_epoch": sum(wall) / len(wall), "train_seconds": sum(wall),
                             "cpu_seconds_per_epoch": sum(cpu) / len(cpu),
                             "optimizer_steps": steps, "held_out_accuracy": held_out_accuracy(model, tokenizer, held_out)}
            del model
    ours, theirs = results.values()
    speedup = theirs["seconds_per_epoch"] / ours["seconds_per_epoch"]
    report = {
        "model": "tiny random Llama (hidden 64, 2 layers)" if args.tiny else "SmolLM2-135M-Instruct (embedded default)",
        "train": args.train, "learning_rate": lr, "k": args.k, "seed": seed,
        "train_rankings": len(train), "train_pairs": len(pairs), "held_out_rankings": len(held_out),
        "held_out_pairs": sum(len(r.pairs()) for r in held_out),
        "sequences_per_epoch": {"ours": len(train) * args.k, "trl": 2 * len(pairs)},
        "sequences_per_forward": {"ours": args.ours_batch_rankings * args.k,
                                  "trl": 4 * args.batch_rankings},
        "pairs_per_step": {"ours": args.ours_batch_rankings * math.comb(args.k, 2),
                           "trl": 2 * args.batch_rankings},
        "results": results, "speedup": speedup, "total_time_speedup": theirs["train_seconds"] / ours["train_seconds"],
        "cpu_time_speedup_per_epoch": theirs["cpu_seconds_per_epoch"] / ours["cpu_seconds_per_epoch"],
        "goal_met": speedup >= 2.5 and ours["held_out_accuracy"] >= theirs["held_out_accuracy"],
        "device": "cuda" if torch.cuda.is_available() else f"cpu ({os.cpu_count()} cores, torch threads {torch.get_num_threads()})",
        "torch": torch.__version__, "python": platform.python_version(),
    }
    _print_table(report)
    return report


def _spread(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values)}


def over_seeds(reports: list[dict]) -> dict:
    """Mean, sd, min and max over seeds of each trainer's figures and of the speed-ups."""
    out = {}
    for name in reports[0]["results"]:
        per = [r["results"][name] for r in reports]
        out[name] = {key: _spread([p[key] for p in per]) for key in
                     ("seconds_per_epoch", "cpu_seconds_per_epoch", "held_out_accuracy", "optimizer_steps")}
    for key in ("speedup", "cpu_time_speedup_per_epoch"):
        out[key] = _spread([r[key] for r in reports])
    out["goal_met_all_seeds"] = all(r["goal_met"] for r in reports)
    return out


def _print_spread(report: dict) -> None:
    s = report["over_seeds"]
    print(f"\nover seeds {report['seeds']} (mean ± sd), load average {report['load_average']}:")
    for name in report["per_seed"][0]["results"]:
        t = s[name]
        print(f"{name:<28} {t['seconds_per_epoch']['mean']:.1f} ± {t['seconds_per_epoch']['std']:.1f} s/epoch, "
              f"held-out accuracy {t['held_out_accuracy']['mean']:.3f} ± {t['held_out_accuracy']['std']:.3f}")
    print(f"speed-up per epoch {s['speedup']['mean']:.2f} ± {s['speedup']['std']:.2f}x wall, "
          f"{s['cpu_time_speedup_per_epoch']['mean']:.2f} ± {s['cpu_time_speedup_per_epoch']['std']:.2f}x CPU; "
          f"goal met on every seed: {s['goal_met_all_seeds']}")


def _print_table(report: dict) -> None:
    print(f"\n{report['model']}, train={report['train']}, lr={report['learning_rate']}, "
          f"{report['train_rankings']} rankings of K={report['k']} = {report['train_pairs']} pairs, "
          f"{report['held_out_pairs']} held-out pairs, {report['device']}")
    print(f"{'trainer':<28}{'epochs':>7}{'s/epoch':>9}{'cpu s/epoch':>12}{'total s':>9}{'steps':>7}{'seqs/epoch':>12}"
          f"{'held-out acc':>14}")
    for (name, r), seqs in zip(report["results"].items(), report["sequences_per_epoch"].values()):
        print(f"{name:<28}{r['epochs']:>7}{r['seconds_per_epoch']:>9.1f}{r['cpu_seconds_per_epoch']:>12.1f}{r['train_seconds']:>9.1f}"
              f"{r['optimizer_steps']:>7}{seqs:>12}{r['held_out_accuracy']:>14.3f}")
    print(f"speed-up per epoch: {report['speedup']:.2f}x wall, {report['cpu_time_speedup_per_epoch']:.2f}x CPU time; "
          f"in total training time: {report['total_time_speedup']:.2f}x "
          f"(goal >= 2.5x per epoch at equal or better accuracy: {'met' if report['goal_met'] else 'NOT met'})")


if __name__ == "__main__":
    main()
