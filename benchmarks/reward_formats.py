"""Every preference layout, read as published, and our reward stage against TRL's RewardTrainer on
the same split and model, in one command.

1. Generate invented multi-turn preference data (two sources: `memory`, where the right answer is a
   name given in an earlier turn, and `tone`, where the system prompt asks for a pirate's voice) and
   write the same pairs in every layout: TRL conversational explicit / implicit, TRL standard
   explicit / implicit (the single-turn rows), HH-RLHF transcripts, UltraFeedback-binarized.
2. Check that each layout loads to the same records as its explicit twin (rlhf.data), and time it.
3. Split by conversation (same held-out conversations for both trainers).
4. Train `rlhf reward` (LoRA) and TRL's RewardTrainer (the same seq-cls start, same LoRA, learning
   rate, epochs and pairs per step) on the training split, in TRL's recommended implicit layout.
5. Score both with `rlhf reward-eval` on the held-out split, in every layout: accuracy with a
   bootstrap 95% CI, per source. Layouts holding the same records give the same accuracy; HH-RLHF
   (no system role) and the single-turn layouts (no system prompt) hold different text by design.

    python benchmarks/reward_formats.py --tiny --pairs 48           # tiny random Llama, a quick check
    python benchmarks/reward_formats.py --pairs 96 --threads 1      # the embedded SmolLM2-135M

Writes benchmarks/results/reward_formats.json and .md (reward_formats_tiny.* with --tiny).
"""

from __future__ import annotations

import argparse
import os
import random
import time
from pathlib import Path

from _runner import RESULTS, load_average, save_results

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SYSTEM = "You are a pirate captain. Always talk like a pirate."
SYLLABLES = ["zor", "blax", "quil", "lon", "mar", "bel", "to", "vik", "ys", "olde", "bran", "noc", "pel", "lum", "id",
             "rin", "ka", "thor", "mi", "ra", "den", "sol", "var", "ek"]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="tiny random Llama instead of the embedded default")
    p.add_argument("--model", default=None, help="base model (default: the embedded SmolLM2-135M-Instruct)")
    p.add_argument("--pairs", type=int, default=96, help="pairs generated (train + held out)")
    p.add_argument("--eval-fraction", type=float, default=0.25)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-pairs", type=int, default=4, help="pairs per optimizer step, both trainers")
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 is faster on a shared machine)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None)
    return p.parse_args()


# --- 1. data in every layout ------------------------------------------------------------------------


def name(rng: random.Random) -> str:
    return (rng.choice(SYLLABLES) + rng.choice(SYLLABLES)).capitalize()


def generate(n: int, seed: int) -> list[dict]:
    """Explicit conversational pairs with a `source` column; every conversation is distinct."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        who, other = name(rng), name(rng)
        while other == who:
            other = name(rng)
        if i % 2 == 0:  # memory: only the earlier turn says which answer is right
            prompt = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"My name is {who}."},
                      {"role": "assistant", "content": f"Ahoy, {who}!"}, {"role": "user", "content": "What is my name?"}]
            chosen, rejected = f"Yer name be {who}, matey.", f"Yer name be {other}, matey."
            if rng.random() < 0.5:
                prompt[1]["content"] = f"Call me {who}, please."
        else:  # tone: the system prompt asks for a pirate's voice
            thing = rng.choice(["the sea", "my ship", "the weather", "gold", "the map", "rum", "a parrot"])
            prompt = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"Tell me about {thing}, {who}."}]
            chosen = f"Arr, {thing} be a fine thing, me hearty!"
            rejected = f"{thing.capitalize()} is a fine thing, my friend."
        rows.append({"prompt": prompt, "chosen": [{"role": "assistant", "content": chosen}],
                     "rejected": [{"role": "assistant", "content": rejected}], "source": "memory" if i % 2 == 0 else "tone"})
    return rows


def hh_text(messages: list[dict]) -> str:
    """An HH-RLHF transcript; that layout has no system role, so the system text opens the first turn."""
    system = " ".join(m["content"] for m in messages if m["role"] == "system")
    turns = [m for m in messages if m["role"] != "system"]
    parts = []
    for j, m in enumerate(turns):
        text = f"{system} {m['content']}" if j == 0 and system else m["content"]
        parts.append(f"\n\n{'Human' if m['role'] == 'user' else 'Assistant'}: {text}")
    return "".join(parts)


def layouts(rows: list[dict]) -> dict[str, list[dict]]:
    """The same pairs in each published layout (name -> rows)."""
    def flat(r):
        return r["prompt"][-1]["content"]

    single = [r for r in rows if r["source"] == "tone"]
    return {
        "trl_conversational_explicit": rows,
        "trl_conversational_implicit": [{"chosen": r["prompt"] + r["chosen"], "rejected": r["prompt"] + r["rejected"],
                                         "source": r["source"]} for r in rows],
        "hh_rlhf": [{"chosen": hh_text(r["prompt"] + r["chosen"]), "rejected": hh_text(r["prompt"] + r["rejected"]),
                     "source": r["source"]} for r in rows],
        "ultrafeedback_binarized": [{"prompt": flat(r), "chosen": [r["prompt"][-1]] + r["chosen"],
                                     "rejected": [r["prompt"][-1]] + r["rejected"], "score_chosen": 8.0,
                                     "score_rejected": 3.0, "source": r["source"]} for r in single],
        "trl_standard_explicit": [{"prompt": flat(r), "chosen": " " + r["chosen"][0]["content"],
                                   "rejected": " " + r["rejected"][0]["content"], "source": r["source"]} for r in single],
        "trl_standard_implicit": [{"chosen": flat(r) + " " + r["chosen"][0]["content"],
                                   "rejected": flat(r) + " " + r["rejected"][0]["content"], "source": r["source"]}
                                  for r in single],
    }


TWINS = {"trl_conversational_implicit": "trl_conversational_explicit", "trl_standard_implicit": "trl_standard_explicit"}


def check_layouts(files: dict[str, Path]) -> dict:
    """Load every layout; implicit ones must equal their explicit twin. Returns rows and seconds each."""
    from rlhf.data import load_preferences

    loaded, out = {}, {}
    for name, path in files.items():
        start = time.perf_counter()
        rankings, bad = load_preferences(path)
        out[name] = {"rows": len(rankings), "bad": len(bad), "read_seconds": round(time.perf_counter() - start, 4)}
        loaded[name] = [(r.messages, r.completions, r.ranking) for r in rankings]
    for implicit, explicit in TWINS.items():
        assert loaded[implicit] == loaded[explicit], f"{implicit} differs from {explicit}"
        out[implicit]["equals"] = explicit
    return out


# --- 3-5. split, train both, evaluate -------------------------------------------------------------


def split(rows: list[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    n_eval = max(1, round(fraction * len(rows)))
    held = set(order[:n_eval])
    return [r for i, r in enumerate(rows) if i not in held], [r for i, r in enumerate(rows) if i in held]


def train_ours(args, base: str, train_file: Path, out: Path) -> float:
    from rlhf.reward import RewardConfig, train_reward

    metrics = train_reward(RewardConfig(data=str(train_file), model=base, output_dir=str(out), train="lora",
                              learning_rate=args.lr, epochs=args.epochs, batch_size=args.batch_pairs,
                              warmup_ratio=0.0, max_length=args.max_length, eval_fraction=0.0, seed=args.seed,
                              calibration_data="train"))
    return metrics["train_seconds"]  # the training loop alone, as TRL's train() below


def train_trl(args, base: str, train_file: Path, out: Path) -> float:
    """TRL 1.16's RewardTrainer from the same seq-cls start (same head init) with the same LoRA."""
    import datasets
    import torch
    from peft import LoraConfig
    from trl import RewardConfig, RewardTrainer

    from rlhf.models import load_tokenizer
    from rlhf.reward.model import build_reward_model, prepare_for_training, save_reward_model

    tokenizer = load_tokenizer(base)
    model = build_reward_model(base, tokenizer.pad_token_id, seed=args.seed)
    prepare_for_training(model, "full")  # dropout off, as ours; LoRA is added by TRL below
    targets = sorted({n.split(".")[-1] for n, m in model.model.named_modules() if isinstance(m, torch.nn.Linear)})
    lora = LoraConfig(task_type="SEQ_CLS", r=16, lora_alpha=32, lora_dropout=0.0, target_modules=targets,
                      modules_to_save=["score"])
    data = datasets.load_dataset("json", data_files=str(train_file), split="train").remove_columns(["source"])
    config = RewardConfig(output_dir=str(out / "trl"), learning_rate=args.lr, num_train_epochs=args.epochs,
                          per_device_train_batch_size=args.batch_pairs, lr_scheduler_type="linear", warmup_steps=0,
                          max_length=args.max_length, report_to=[], use_cpu=True, bf16=False, save_strategy="no",
                          logging_steps=5, seed=args.seed, gradient_checkpointing=False, center_rewards_coefficient=None)
    trainer = RewardTrainer(model=model, args=config, train_dataset=data, processing_class=tokenizer, peft_config=lora)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    merged = trainer.model.merge_and_unload()
    save_reward_model(merged, tokenizer, out, bias=0.0, std=1.0, max_length=args.max_length)
    return seconds


def evaluate(model_dir: Path, files: dict[str, Path], out: Path) -> dict:
    from rlhf.reward_eval import RewardEvalConfig, run_reward_eval

    results = {}
    for name, path in files.items():
        r = run_reward_eval(RewardEvalConfig(model=str(model_dir), data=str(path), output=str(out / name),
                                             group_by="source", bootstrap=1000))
        results[name] = {"accuracy": r["accuracy"], "ci95": r["ci95"], "mean_margin": r["mean_margin"],
                         "pairs": r["pairs"], "by_source": {k: v["accuracy"] for k, v in r["by_group"].items()}}
    return results


def main():
    args = parse_args()
    import torch

    from rlhf.data import write_jsonl
    from rlhf.models import DEFAULT_MODEL, save_tiny_model

    if args.threads:
        torch.set_num_threads(args.threads)
    stem = "reward_formats_tiny" if args.tiny else "reward_formats"
    out_json = Path(args.out or RESULTS / f"{stem}.json")
    work = Path(os.environ.get("RLHF_BENCH_DIR", "/tmp")) / f"{stem}-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    base = str(save_tiny_model(work / "tiny")) if args.tiny else (args.model or DEFAULT_MODEL)

    rows = generate(args.pairs, args.seed)
    train_rows, held_rows = split(rows, args.eval_fraction, args.seed)
    all_files = {name: write_jsonl(work / "all" / f"{name}.jsonl", r) for name, r in layouts(rows).items()}
    read = check_layouts(all_files)
    held_files = {name: write_jsonl(work / "held" / f"{name}.jsonl", r) for name, r in layouts(held_rows).items()}
    train_file = write_jsonl(work / "train.jsonl", layouts(train_rows)["trl_conversational_implicit"])

    seconds = {"ours": train_ours(args, base, train_file, work / "ours"),
               "trl": train_trl(args, base, train_file, work / "trl-model")}
    evals = {"ours": evaluate(work / "ours", held_files, work / "eval-ours"),
             "trl": evaluate(work / "trl-model", {"trl_conversational_implicit": held_files["trl_conversational_implicit"]},
                             work / "eval-trl")}
    report = {"model": "tiny" if args.tiny else base, "pairs": args.pairs, "train_pairs": len(train_rows),
              "held_out_pairs": len(held_rows), "epochs": args.epochs, "batch_pairs": args.batch_pairs, "lr": args.lr,
              "threads": torch.get_num_threads(), "load_average": load_average(), "layouts_read": read,
              "train_seconds": seconds, "eval": evals}
    save_results(out_json, report, markdown(report))


def markdown(report: dict) -> str:
    def acc(r):
        return f"{r['accuracy']:.3f} [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]"

    lines = [f"# Reward model on every layout: ours vs TRL RewardTrainer ({report['model']})", "",
             f"{report['train_pairs']} training pairs, {report['held_out_pairs']} held-out pairs (split by "
             f"conversation), {report['epochs']} epoch(s), {report['batch_pairs']} pairs per step, lr {report['lr']}, "
             f"{report['threads']} thread(s), load average {report['load_average'][0]:.1f}.", "",
             "| trainer | held-out file layout | pairs | accuracy [95% CI] | memory | tone | training loop s |",
             "|---|---|---|---|---|---|---|"]
    for trainer, evals in report["eval"].items():
        for layout, r in evals.items():
            src = r["by_source"]
            lines.append(f"| {trainer} | {layout} | {r['pairs']} | {acc(r)} | {src.get('memory', float('nan')):.3f} | "
                         f"{src.get('tone', float('nan')):.3f} | {report['train_seconds'][trainer]:.0f} |")
    lines += ["", "Conversational explicit and implicit hold the same records (checked); HH-RLHF has no system role, so "
              "the system text opens the first Human turn; the single-turn layouts (standard, UltraFeedback) hold the "
              "`tone` rows without the system prompt, so their figures are for different inputs by design.",
              "", "| layout | rows read | seconds | equals |", "|---|---|---|---|"]
    for layout, r in report["layouts_read"].items():
        lines.append(f"| {layout} | {r['rows']} | {r['read_seconds']} | {r.get('equals', '')} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
