"""Our critic-free estimators (grpo, rloo) against trl 1.16's GRPOTrainer and RLOOTrainer, in one run.

Same model (the embedded default SmolLM2-135M-Instruct, fp32, CPU), same prompts (the built-in
prompts_train, chat-templated by the model's own template), the same rule reward callable by both
(`exclaim_reward`: 1 if the answer contains "!"), G = 4 completions per prompt, 8 prompts per step
(32 completions), 32 new tokens, temperature 0.7, no top-k, LoRA r=16 alpha=32 on every linear
layer of the blocks, one optimisation pass per batch (one epoch, one minibatch), learning rate 1e-4,
and the KL as each library's own default puts it for that method:
  - grpo: KL as a loss term, k3, weight 0.04 (DeepSeekMath) for both (trl's default beta is 0.0,
    which skips the reference model: set to 0.04 here so both do the same work);
  - rloo: KL in the reward, weight 0.05 (trl's default beta; ours kl_coef=0.05).

Reported per configuration and seed: seconds per step (median after warm-up steps), peak resident
memory of the process (each configuration runs in its own process), and the mean reward of the
steps and of the last step. Configurations run interleaved (ours, trl, ours, trl) within each seed
so a neighbour's load falls on both alike.

    python benchmarks/critic_free_speed.py                      # the full size: 30 steps x 2 seeds
    python benchmarks/critic_free_speed.py --prompts_per_step 2 --steps 2 --warmup 1 --seeds 0 --threads 1

Writes benchmarks/results/critic_free_speed.json and critic_free_speed.md when the run covers every
configuration (measured or `--reuse`d); a run of some of them (`--only`) writes
critic_free_speed_NAME.{json,md}, NAME from `--name` or else the configurations joined by "+", so
measuring one configuration again does not replace the merged table (a run whose every configuration
is `--reuse`d is a merge, and writes the default file).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

from _runner import (OFFLINE_ENV, RESULTS, ChildFailed, load_average, ratio_lines, ratios, run_script,
                     save_results, write_child_result)

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".critic_free_cache"
COMMITTED = RESULTS / "critic_free_speed.json"
G, NEW_TOKENS, TEMPERATURE, LR = 4, 32, 0.7, 1e-4
PROMPTS_PER_STEP = 8  # --prompts_per_step; the issue's size
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
RUNS = [
    ("ours-grpo", "rlhf PPOTrainer, advantage_estimator=grpo (KL loss 0.04, seq-mean-token-mean), no critic"),
    ("ours-grpo-micro8", "the same with the training pass in micro-batches of 8 completions (grad_accum, one "
                         "optimizer step per batch as before): trl's GRPO checkpoints activations by default instead"),
    ("trl-grpo", "trl 1.16 GRPOTrainer, beta=0.04, loss_type='grpo', scale_rewards='group'"),
    ("ours-rloo", "rlhf PPOTrainer, advantage_estimator=rloo (KL 0.05 in the reward, token-mean), no critic"),
    ("ours-rloo-micro8", "the same in micro-batches of 8 completions"),
    ("trl-rloo", "trl 1.16 RLOOTrainer, beta=0.05 (KL in the reward)"),
]

COMPARED = [("ours-grpo", "trl-grpo"), ("ours-grpo-micro8", "trl-grpo"), ("ours-rloo", "trl-rloo"),
            ("ours-rloo-micro8", "trl-rloo")]  # (ours, peer) pairs the table compares


def exclaim_reward(prompts, completions, **kwargs) -> list[float]:
    """1.0 if the answer contains "!", else 0.0. Takes plain strings (ours) or trl's conversational
    completions (a list of messages per completion)."""
    texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
    return [float("!" in t) for t in texts]


def load_prompts() -> list:
    from rlhf.data import builtin, load_prompts as read

    return read(builtin("prompts_train"))


def run_ours(name: str, seed: int, steps: int, warmup: int) -> dict:
    from rlhf.ppo import PPOConfig, PPOTrainer

    estimator = name.split("-")[1]
    micro = 8 if name.endswith("-micro8") else G * PROMPTS_PER_STEP  # completions per forward/backward
    config = PPOConfig(grad_accum=max(1, G * PROMPTS_PER_STEP // micro), output_dir=str(CACHE / f"{name}-{seed}"), steps=warmup + steps, batch_size=G * PROMPTS_PER_STEP,
                       num_generations=G, advantage_estimator=estimator, max_new_tokens=NEW_TOKENS,
                       temperature=TEMPERATURE, ppo_epochs=1, num_minibatches=1, lora_r=16, lora_alpha=32,
                       lora_target_modules=LORA_TARGETS, learning_rate=LR, kl_coef=0.05, kl_loss_coef=0.04,
                       save_steps=0, progress=False, device="cpu", seed=seed)
    trainer = PPOTrainer(config, reward_fn=exclaim_reward, prompts=load_prompts())
    trainable = sum(p.numel() for p in trainer.actor_critic.parameters() if p.requires_grad)
    times, rewards, phases = [], [], []
    for i in range(warmup + steps):
        start = time.perf_counter()
        metrics = trainer.step()
        times.append(time.perf_counter() - start)
        rewards.append(metrics["reward/score"])
        phases.append({k[5:]: v for k, v in metrics.items() if k.startswith("time/") and k != "time/generate_share"})
        print(f"[{name} seed {seed}] step {i + 1}: {times[-1]:.1f} s, reward {rewards[-1]:.3f}", flush=True)
    measured = phases[warmup:]
    phase_s = {k: round(statistics.median(p.get(k, 0.0) for p in measured), 2) for k in measured[0]} if measured else {}
    return {"step_s": times[warmup:], "rewards": rewards, "trainable_params": trainable, "phase_s": phase_s}


def run_trl(name: str, seed: int, steps: int, warmup: int) -> dict:
    import datasets
    from peft import LoraConfig
    from transformers import TrainerCallback

    from rlhf.adapters import load_causal_lm
    from rlhf.models import load_tokenizer

    model, tokenizer = load_causal_lm(), load_tokenizer(padding_side="left")
    rows = [{"prompt": p.messages} for p in load_prompts()]
    common = dict(output_dir=str(CACHE / f"{name}-{seed}"), max_steps=warmup + steps, learning_rate=LR,
                  per_device_train_batch_size=G * PROMPTS_PER_STEP, gradient_accumulation_steps=1, num_generations=G,
                  max_completion_length=NEW_TOKENS, temperature=TEMPERATURE, top_p=1.0, top_k=0, num_iterations=1,
                  logging_steps=1, save_strategy="no", report_to=[], use_cpu=True, bf16=False, seed=seed,
                  disable_tqdm=True)
    if name == "trl-grpo":
        from trl import GRPOConfig as Config, GRPOTrainer as Trainer

        args = Config(beta=0.04, loss_type="grpo", scale_rewards="group", **common)
    else:
        from trl import RLOOConfig as Config, RLOOTrainer as Trainer

        args = Config(beta=0.05, **common)
    peft_config = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=LORA_TARGETS, task_type="CAUSAL_LM")
    marks, rewards = [], []

    class Clock(TrainerCallback):
        def on_train_begin(self, *a, **k):
            marks.append(time.perf_counter())

        def on_step_end(self, *a, **k):
            marks.append(time.perf_counter())
            print(f"[{name} seed {seed}] step {len(marks) - 1}: {marks[-1] - marks[-2]:.1f} s", flush=True)

        def on_log(self, args, state, control, logs=None, **k):
            if logs and "reward" in logs:
                rewards.append(float(logs["reward"]))

    trainer = Trainer(model=model, reward_funcs=exclaim_reward, args=args, train_dataset=datasets.Dataset.from_list(rows),
                      processing_class=tokenizer, peft_config=peft_config, callbacks=[Clock()])
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    trainer.train()
    times = [b - a for a, b in zip(marks, marks[1:])]
    return {"step_s": times[warmup:], "rewards": rewards, "trainable_params": trainable}


def child(name: str, seed: int, steps: int, warmup: int, out_file: Path) -> None:
    run = run_ours if name.startswith("ours") else run_trl
    write_child_result(out_file, {**run(name, seed, steps, warmup), "load_average_end": load_average()})


# --- the comparison ---------------------------------------------------------------------------------


def summarise(name: str, seeds: dict[int, dict]) -> dict:
    """Per seed: median s/step after warm-up, mean reward of all steps and of the last step; over
    seeds: the median of the seeds' medians, the highest peak memory, the mean of the rewards."""
    per_seed = {s: {"s_per_step": round(statistics.median(r["step_s"]), 2), "peak_rss_gb": round(r["peak_rss_gb"], 2),
                    "mean_reward": round(statistics.fmean(r["rewards"]), 3),
                    "last_reward": round(r["rewards"][-1], 3), "last10_reward": round(statistics.fmean(r["rewards"][-10:]), 3),
                    "rewards": [round(x, 3) for x in r["rewards"]],
                    "steps_s": [round(x, 1) for x in r["step_s"]], "reused": bool(r.get("reused")),
                    "load_average_end": r.get("load_average_end"), "phase_s": r.get("phase_s")}
                for s, r in seeds.items()}
    rows = list(per_seed.values())
    return {"run": name, "s_per_step": round(statistics.median(r["s_per_step"] for r in rows), 2),
            "peak_rss_gb": max(r["peak_rss_gb"] for r in rows),
            "mean_reward": round(statistics.fmean(r["mean_reward"] for r in rows), 3),
            "last_reward": round(statistics.fmean(r["last_reward"] for r in rows), 3),
            "last10_reward": round(statistics.fmean(r["last10_reward"] for r in rows), 3),
            "trainable_params": next(iter(seeds.values()))["trainable_params"], "seeds": per_seed}


def write_results(rows: dict, args, wall: float, loads: list) -> None:
    import torch

    compared = ratios(rows, COMPARED)
    setup = {"model": "SmolLM2-135M-Instruct (embedded default), CPU, fp32", "num_generations": G,
             "prompts_per_step": PROMPTS_PER_STEP, "new_tokens": NEW_TOKENS, "temperature": TEMPERATURE,
             "learning_rate": LR, "lora": "r=16, alpha=32, " + "+".join(LORA_TARGETS), "reward": "exclaim_reward",
             "warmup_steps": args.warmup, "measured_steps": args.steps, "seeds": args.seeds,
             "full_size": "8 prompts per step, 30 measured steps x 2 seeds", "torch_threads": args.threads or torch.get_num_threads(),
             "cpus": os.cpu_count(), "load_average_during": loads, "wall_s": round(wall, 1),
             "command": "python benchmarks/critic_free_speed.py " + " ".join(sys.argv[1:])}
    result = {"setup": setup, "runs": rows, "ratios": compared, "descriptions": dict(RUNS)}
    load_text = ", ".join(f"{x[0]:.1f}" for x in loads)
    any_reused = any(x["reused"] for r in rows.values() for x in r["seeds"].values())
    order = ("rows marked reused were measured in earlier runs, each under its own load" if any_reused
             else "configurations interleaved")
    lines = ["# Critic-free speed: rlhf (grpo, rloo) vs trl 1.16 GRPOTrainer / RLOOTrainer", "",
             f"SmolLM2-135M on CPU, fp32 ({setup['cpus']} cores, {setup['torch_threads']} torch thread(s)), "
             f"{PROMPTS_PER_STEP} prompts x G={G} = {G * PROMPTS_PER_STEP} completions per step, {NEW_TOKENS} new "
             f"tokens, LoRA r=16 on every linear layer, lr {LR}, one optimisation pass per batch; "
             f"{args.warmup} warm-up + {args.steps} measured steps, seeds {args.seeds}, {order}. "
             f"Size run: {PROMPTS_PER_STEP} prompts per step, {args.steps} measured steps x {len(args.seeds)} seed(s) "
             "(the full size is 8 prompts per step, 30 steps x 2 seeds). "
             f"1-minute load average before each configuration: {load_text} (a shared 2-core machine: compare rows "
             "of this run with each other, not with other runs).", "",
             f"`{setup['command']}`", "",
             "| run | s / step (median) | peak RSS GB | trainable params | mean reward (all steps) | mean reward (last 10 steps) | reward of the last step |",
             "|---|---|---|---|---|---|---|"]
    for name, _ in RUNS:
        if name in rows:
            r = rows[name]
            reused = " (reused from an earlier run)" if any(x["reused"] for x in r["seeds"].values()) else ""
            lines.append(f"| {name}{reused} | {r['s_per_step']} | {r['peak_rss_gb']} | {r['trainable_params']:,} | "
                         f"{r['mean_reward']} | {r['last10_reward']} | {r['last_reward']} |")
    gaps = reward_gaps(rows)
    result["last10_reward_gaps"] = gaps
    lines += ["", "Mean reward of the last 10 steps, ours - peer, over the seeds both ran, with a 95% CI from the "
              "spread of the steps' means (normal approximation):", ""]
    lines += [f"- {g['ours']} - {g['peer']} (seeds {g['seeds']}): {g['diff']:+.3f} [{g['ci'][0]:+.3f}, {g['ci'][1]:+.3f}]"
              for g in gaps]
    path = results_path(args)
    save_results(path, result, "\n".join(lines + ratio_lines(compared, RUNS)))
    print(f"[critic_free_speed] wrote {path} and .md", flush=True)


def results_path(args) -> Path:
    """Where the table goes: RESULTS/critic_free_speed.json for a run of every configuration or a
    merge of cached ones (every `--only` name also in `--reuse`); otherwise
    critic_free_speed_NAME.json, NAME = `--name` or the `--only` configurations joined by "+"."""
    measured = [n for n in (args.only or [name for name, _ in RUNS]) if n not in args.reuse]
    if args.name:
        return RESULTS / f"critic_free_speed_{args.name}.json"
    if not args.only or not measured:
        return RESULTS / "critic_free_speed.json"
    return RESULTS / f"critic_free_speed_{'+'.join(args.only)}.json"


def reward_gaps(rows: dict) -> list[dict]:
    """ours - peer in the mean reward of the last 10 steps, over the seeds both ran: the difference of
    the two means of (10 x seeds) step rewards, with a 95% CI of +-1.96 standard errors (each side's
    standard error from the spread of its step means)."""
    gaps = []
    for ours, peer in COMPARED:
        if ours not in rows or peer not in rows:
            continue
        seeds = sorted(set(rows[ours]["seeds"]) & set(rows[peer]["seeds"]))
        a, b = ([x for s in seeds for x in rows[n]["seeds"][s]["rewards"][-10:]] for n in (ours, peer))
        if len(a) < 2 or len(b) < 2:
            continue
        se = math.sqrt(statistics.variance(a) / len(a) + statistics.variance(b) / len(b))
        diff = statistics.fmean(a) - statistics.fmean(b)
        gaps.append({"ours": ours, "peer": peer, "seeds": seeds, "diff": round(diff, 3),
                     "ci": [round(diff - 1.96 * se, 3), round(diff + 1.96 * se, 3)]})
    return gaps


def main(argv=None) -> None:
    global PROMPTS_PER_STEP
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30, help="measured steps per configuration and seed")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured first steps (their rewards still count)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--prompts_per_step", type=int, default=PROMPTS_PER_STEP,
                        help="prompts per step (x G = 4 completions); 8 is the full size")
    parser.add_argument("--threads", type=int, default=None, help="torch threads in every run (default: torch's)")
    parser.add_argument("--only", nargs="*", default=None, help="run only these configurations")
    parser.add_argument("--reuse", nargs="*", default=[],
                        help="configurations read from an earlier run's child results in the cache (else from the "
                             "committed critic_free_speed.json's per-seed records) instead of run again (marked reused "
                             "in the JSON; their load average is that run's); a seed with neither is left out, not run")
    parser.add_argument("--name", default=None,
                        help="result name: benchmarks/results/critic_free_speed_NAME.{json,md} (default: see above)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    PROMPTS_PER_STEP = args.prompts_per_step
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.child:
        return child(args.child, args.seed, args.steps, args.warmup, Path(args.out))
    CACHE.mkdir(exist_ok=True)
    start, raw, loads = time.time(), {}, []
    # Read before anything is written: a merge replaces this file.
    committed = json.loads(COMMITTED.read_text()) if COMMITTED.exists() else {}

    def report(loads: list) -> None:
        write_results({n: summarise(n, seeds) for n, seeds in raw.items() if seeds}, args, time.time() - start, loads)

    for seed in args.seeds:
        for name, _ in RUNS:
            if args.only and name not in args.only:
                continue
            if name in args.reuse:
                found = reused_result(name, seed, committed)
                if found is not None:
                    raw.setdefault(name, {})[seed] = found
                else:
                    print(f"[critic_free_speed] {name} seed {seed}: no cached or committed result to reuse; left out",
                          flush=True)
                continue
            loads.append(load_average())
            try:
                raw.setdefault(name, {})[seed] = run_child(name, seed, args)
            except ChildFailed as err:  # one configuration failing keeps the others
                print(f"[critic_free_speed] {name} seed {seed} failed ({err}); left out", flush=True)
                continue
            # Written after every configuration: a run stopped early keeps what it measured.
            report(loads)
    if raw and all(name in args.reuse for name in raw):  # nothing ran: the reused results alone, merged
        report([r.get("load_average_end") or [float("nan")] * 3 for seeds in raw.values() for r in seeds.values()])


def reused_result(name: str, seed: int, committed: dict) -> dict | None:
    """An earlier measurement of `name` at `seed`, as a child reports it: the cache's own file (this
    machine's earlier run), else the per-seed record of the committed table (`committed`, the
    parsed critic_free_speed.json: step times rounded to 0.1 s, rewards to 0.001), so a fresh clone
    can add a seed to the table without measuring the others again; None when neither has it."""
    cached = CACHE / f"{name}-{seed}.json"
    if cached.exists():
        return {**json.loads(cached.read_text()), "reused": True}
    run = committed.get("runs", {}).get(name)
    record = run and run["seeds"].get(str(seed))
    if not record:
        return None
    return {"step_s": record["steps_s"], "rewards": record["rewards"], "peak_rss_gb": record["peak_rss_gb"],
            "trainable_params": run["trainable_params"], "load_average_end": record.get("load_average_end"),
            "phase_s": record.get("phase_s"), "reused": True}


def run_child(name: str, seed: int, args) -> dict:
    """One configuration and seed in its own process (its peak memory is its own); what it measured."""
    out_file = CACHE / f"{name}-{seed}.json"
    argv = ["--child", name, "--seed", seed, "--out", out_file, "--steps", args.steps, "--warmup", args.warmup,
            "--prompts_per_step", args.prompts_per_step] + (["--threads", args.threads] if args.threads else [])
    return run_script(__file__, argv, out_file, env=OFFLINE_ENV)


if __name__ == "__main__":
    main()
