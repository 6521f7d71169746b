"""Our PPO against trl 1.12.0's PPOTrainer (the last TRL release with PPO), in one run.

Same model (the embedded default SmolLM2-135M-Instruct, fp32), same reward model (that model with a
scalar head, seed 0), same prompts (the built-in prompts_train), batch 8, 32 new tokens, one PPO
epoch, one minibatch, temperature 0.7, both stopping at EOS; full fine-tuning and LoRA (r=16,
alpha=32 on q_proj and v_proj). Reported per configuration: seconds per PPO step (median of the
measured steps, after warm-up steps), generated tokens per second of generation, the share of a
step spent generating, and peak resident memory of the process. A plain `generate` of the same
batch gives the floor.

trl 1.12.0 is installed on first use with `pip install --target benchmarks/.trl112 --no-deps`
(its one missing piece beside our environment; it accepts transformers 5) and put first on
PYTHONPATH of the processes that run it. Every configuration runs in its own process, so peak
memory is its own.

    python benchmarks/ppo_speed.py                    # 1 warm-up + 3 measured steps each
    python benchmarks/ppo_speed.py --steps 5 --threads 2

Writes benchmarks/results/ppo_speed.json and ppo_speed.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _runner import (OFFLINE_ENV, RESULTS, ChildFailed, load_average, ratio_lines, ratios, run_script,
                     save_results, write_child_result)

HERE = Path(__file__).resolve().parent
TRL_DIR = HERE / ".trl112"
CACHE = HERE / ".ppo_speed_cache"
BATCH, NEW_TOKENS, TEMPERATURE, LORA_TARGETS = 8, 32, 0.7, ["q_proj", "v_proj"]
# (name, what it measures) in the order they run: ours and TRL interleaved, so a neighbour's load
# on the shared machine falls on both alike.
RUNS = [
    ("generate", "plain generate() of one batch, no PPO: the floor"),
    ("trl-full", "trl 1.12 PPOTrainer, full fine-tuning (value model from the reward model, trained in full)"),
    ("ours-full", "rlhf PPO, full fine-tuning, critic from the reward model (default)"),
    ("trl-lora", "trl 1.12 PPOTrainer, LoRA policy (its value model still trains in full)"),
    ("ours-lora", "rlhf PPO, LoRA policy, critic = LoRA on the reward model (critic=reward, the InstructGPT / N+ choice)"),
    ("ours-lora-vh", "rlhf PPO, LoRA policy, value-head critic on the policy (the default for a LoRA policy, memory-light)"),
    ("trl-lora-bf16", "trl-lora with every model loaded in bf16 and bf16=True (CPUs with avx512_bf16 / AMX)"),
    ("ours-lora-bf16", "ours-lora with bf16=True (every model in bf16)"),
    ("ours-lora-vh-bf16", "ours-lora-vh with bf16=True"),
]


# --- shared inputs -------------------------------------------------------------------------------


def prepare_inputs() -> tuple[Path, list[str]]:
    """The reward model folder (built once) and the prompts, the same for every run."""
    import torch

    from rlhf.data import builtin, load_prompts
    from rlhf.models import load_tokenizer

    prompts = [p.text for p in load_prompts(builtin("prompts_train"))][:64]
    rm_dir = CACHE / "reward-model"
    if not (rm_dir / "config.json").exists():
        from rlhf.reward.model import build_reward_model, save_reward_model

        tokenizer = load_tokenizer(None)
        torch.manual_seed(0)
        model = build_reward_model(None, tokenizer.pad_token_id, seed=0)
        save_reward_model(model, tokenizer, rm_dir, bias=0.0, std=1.0, max_length=512)
    return rm_dir, prompts


def ensure_trl() -> None:
    if (TRL_DIR / "trl" / "experimental" / "ppo" / "ppo_trainer.py").exists():
        return
    print("[ppo_speed] installing trl==1.12.0 into", TRL_DIR)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--target", str(TRL_DIR), "--no-deps",
                    "trl==1.12.0"], check=True)


# --- one configuration per process ---------------------------------------------------------------


def run_generate(rm_dir: Path, prompts: list[str], steps: int, warmup: int) -> dict:
    import torch

    from rlhf.generation import stop_token_ids
    from rlhf.adapters import load_causal_lm
    from rlhf.models import load_tokenizer
    from rlhf.ppo.rollout import encode_queries, generation_config

    model, tok = load_causal_lm(None, device="cpu").eval(), load_tokenizer(None, padding_side="left")
    gen = generation_config(NEW_TOKENS, TEMPERATURE, 1.0, tok.pad_token_id, stop_token_ids(model, tok))
    gen.output_logits = False
    times, tokens = [], []
    for i in range(warmup + steps):
        batch = prompts[(i * BATCH) % len(prompts):][:BATCH]
        ids, mask, _ = encode_queries(tok, [[{"role": "user", "content": p}] for p in batch], "cpu")
        start = time.perf_counter()
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=mask, generation_config=gen)
        if i >= warmup:
            times.append(time.perf_counter() - start)
            tokens.append(_count_tokens(out.sequences[:, ids.shape[1]:], tok.eos_token_id, tok.pad_token_id))
    return {"step_s": times, "generate_s": times, "tokens": tokens}


def run_ours(mode: str, rm_dir: Path, prompts: list[str], steps: int, warmup: int) -> dict:
    from rlhf.ppo import PPOConfig, PPOTrainer

    policy_train = "full" if mode == "ours-full" else "lora"
    light = mode.startswith("ours-lora-vh")
    config = PPOConfig(reward_model=str(rm_dir), output_dir=str(CACHE / mode), steps=warmup + steps, batch_size=BATCH,
                       max_new_tokens=NEW_TOKENS, temperature=TEMPERATURE, ppo_epochs=1, num_minibatches=1,
                       policy_train=policy_train, lora_r=16, lora_alpha=32, lora_target_modules=LORA_TARGETS,
                       critic="value-head" if light else "reward", save_steps=0, progress=False, device="cpu", seed=0,
                       bf16=mode.endswith("-bf16"))
    trainer = PPOTrainer(config, prompts=prompts)
    times, gen, tokens, phases = [], [], [], []
    for i in range(warmup + steps):
        start = time.perf_counter()
        metrics = trainer.step()
        if i >= warmup:
            times.append(time.perf_counter() - start)
            gen.append(metrics["time/generate"])
            tokens.append(round(metrics["response/length"] * BATCH))
            phases.append({k[5:]: round(v, 3) for k, v in metrics.items() if k.startswith("time/")})
    return {"step_s": times, "generate_s": gen, "tokens": tokens, "phases": phases}


def run_trl(mode: str, rm_dir: Path, prompts: list[str], steps: int, warmup: int) -> dict:
    import datasets
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, TrainerCallback

    import trl
    import trl.experimental.ppo.ppo_trainer as ppo_module
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    from rlhf.models import default_model_dir, load_tokenizer

    assert trl.__version__ == "1.12.0", f"expected trl 1.12.0 first on the path, got {trl.__version__}"
    tok = load_tokenizer(None, padding_side="left")
    model_dir = default_model_dir()
    bf16 = mode.endswith("-bf16")
    dtype = torch.bfloat16 if bf16 else torch.float32
    lora = mode.startswith("trl-lora")
    policy = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
    ref = None if lora else AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
    reward = AutoModelForSequenceClassification.from_pretrained(rm_dir, dtype=dtype)
    value = AutoModelForSequenceClassification.from_pretrained(rm_dir, dtype=dtype)
    peft_config = None
    if lora:
        from peft import LoraConfig

        peft_config = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=LORA_TARGETS, task_type="CAUSAL_LM")
    ids = [tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=True,
                                   return_dict=False) for p in prompts]
    dataset = datasets.Dataset.from_dict({"input_ids": ids})
    args = PPOConfig(output_dir=str(CACHE / mode), per_device_train_batch_size=BATCH, gradient_accumulation_steps=1,
                     num_mini_batches=1, num_ppo_epochs=1, response_length=NEW_TOKENS, temperature=TEMPERATURE,
                     total_episodes=BATCH * (warmup + steps), learning_rate=1e-4 if peft_config else 1e-5,
                     stop_token="eos", num_sample_generations=0, bf16=bf16, fp16=False, report_to="none",
                     save_strategy="no", logging_steps=1, local_rollout_forward_batch_size=BATCH, use_cpu=True,
                     disable_tqdm=True, seed=0, kl_coef=0.05)

    marks, gen, tokens = [], [], []
    original = ppo_module.batch_generation

    def timed_generation(model, queries, *rest):
        start = time.perf_counter()
        out = original(model, queries, *rest)
        gen.append(time.perf_counter() - start)
        tokens.append(_count_tokens(out[0][:, queries.shape[1]:], tok.eos_token_id, tok.pad_token_id))
        return out

    class Clock(TrainerCallback):
        def on_train_begin(self, *a, **k):
            marks.append(time.perf_counter())

        def on_step_end(self, *a, **k):
            marks.append(time.perf_counter())

    ppo_module.batch_generation = timed_generation
    trainer = PPOTrainer(args=args, processing_class=tok, model=policy, ref_model=ref, reward_model=reward,
                         train_dataset=dataset, eval_dataset=dataset, value_model=value, peft_config=peft_config,
                         callbacks=[Clock()])
    trainer.train()
    times = [b - a for a, b in zip(marks, marks[1:])]
    return {"step_s": times[warmup:], "generate_s": gen[warmup:], "tokens": tokens[warmup:]}


def _count_tokens(responses, eos_id: int, pad_id: int) -> int:
    """Generated tokens up to and including each row's first EOS."""
    import torch

    is_eos = responses == eos_id
    after = (torch.cumsum(is_eos.long(), 1) - is_eos.long()) > 0
    return int((~after & (responses != pad_id)).sum())


def child(name: str, steps: int, warmup: int, out_file: Path) -> None:
    rm_dir, prompts = prepare_inputs()
    if name == "generate":
        result = run_generate(rm_dir, prompts, steps, warmup)
    elif name.startswith("ours"):
        result = run_ours(name, rm_dir, prompts, steps, warmup)
    else:
        result = run_trl(name, rm_dir, prompts, steps, warmup)
    write_child_result(out_file, result)


# --- the comparison ---------------------------------------------------------------------------------


def summarise(name: str, rounds: list[dict]) -> dict:
    """The round least disturbed by neighbours (lowest median step time) stands for the run; every
    round's median is kept, and memory is the highest peak of any round."""
    raw = min(rounds, key=lambda r: statistics.median(r["step_s"]))
    step = statistics.median(raw["step_s"])
    gen = statistics.median(raw["generate_s"])
    tokens = sum(raw["tokens"]) / max(sum(raw["generate_s"]), 1e-9)
    row = {"run": name, "s_per_step": round(step, 2), "generate_s": round(gen, 2),
           "generate_share": round(gen / step, 2), "gen_tokens_per_s": round(tokens, 1),
           "peak_rss_gb": round(max(r["peak_rss_gb"] for r in rounds), 2),
           "steps_s": [round(x, 2) for x in raw["step_s"]],
           "round_medians_s": [round(statistics.median(r["step_s"]), 2) for r in rounds]}
    if raw.get("phases"):
        keys = raw["phases"][0].keys()
        row["phases_s"] = {k: round(statistics.median(p[k] for p in raw["phases"]), 2) for k in keys}
    return row


def write_results(rows: dict, args, wall: float) -> None:
    import torch

    compared = ratios(rows, [("ours-full", "trl-full"), ("ours-lora", "trl-lora"), ("ours-lora-vh", "trl-lora"),
                             ("ours-lora-bf16", "trl-lora-bf16"), ("ours-lora-vh-bf16", "trl-lora-bf16")])

    setup = {"model": "SmolLM2-135M-Instruct (embedded default), CPU, fp32 except runs named -bf16", "batch": BATCH, "new_tokens": NEW_TOKENS,
             "ppo_epochs": 1, "num_minibatches": 1, "temperature": TEMPERATURE, "lora": "r=16, alpha=32, q_proj+v_proj",
             "warmup_steps": args.warmup, "measured_steps": args.steps, "rounds": args.rounds,
             "torch_threads": torch.get_num_threads(),
             "cpus": os.cpu_count(), "load_average_at_end": load_average(), "wall_s": round(wall, 1)}
    result = {"setup": setup, "runs": rows, "ratios": compared, "descriptions": dict(RUNS)}
    lines = ["# PPO speed: rlhf vs trl 1.12.0 PPOTrainer", "",
             f"SmolLM2-135M on CPU, fp32 except the runs named -bf16 ({setup['cpus']} cores, {setup['torch_threads']} torch threads), batch {BATCH}, "
             f"{NEW_TOKENS} new tokens, 1 PPO epoch, 1 minibatch; median of {args.steps} steps after {args.warmup} "
             f"warm-up, best of {args.rounds} interleaved round(s). Load average at the end: {', '.join(f'{x:.1f}' for x in setup['load_average_at_end'])} "
             "(the machine is shared; compare rows of this run with each other).", "",
             "| run | s / step | generate s | generation share | gen tokens/s | peak RSS GB |", "|---|---|---|---|---|---|"]
    for name, _ in RUNS:
        if name in rows:
            r = rows[name]
            lines.append(f"| {name} | {r['s_per_step']} | {r['generate_s']} | {r['generate_share']:.0%} | "
                         f"{r['gen_tokens_per_s']} | {r['peak_rss_gb']} |")
    lines += ratio_lines(compared, RUNS)
    phases = {n: r["phases_s"] for n, r in rows.items() if "phases_s" in r}
    if phases:
        lines += ["", "Where our steps go (median seconds): " + "; ".join(
            f"{n}: " + ", ".join(f"{k} {v}" for k, v in p.items()) for n, p in phases.items())]
    save_results(RESULTS / "ppo_speed.json", result, "\n".join(lines))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3, help="measured PPO steps per configuration")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured first steps")
    parser.add_argument("--threads", type=int, default=None, help="torch threads in every run (default: torch's)")
    parser.add_argument("--rounds", type=int, default=1, help="repeat the interleaved sequence; the best round counts")
    parser.add_argument("--only", nargs="*", default=None, help="run only these configurations")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.child:
        return child(args.child, args.steps, args.warmup, Path(args.out))
    ensure_trl()
    CACHE.mkdir(exist_ok=True)
    prepare_inputs()
    start, raw = time.time(), {}
    for round_no in range(args.rounds):
        for name, _ in RUNS:
            if args.only and name not in args.only:
                continue
            try:
                result = run_child(name, args)
            except ChildFailed as err:  # one configuration failing keeps the others
                print(f"[ppo_speed] {name} failed ({err}); left out of the results", flush=True)
                continue
            raw.setdefault(name, []).append(result)
            print(f"[ppo_speed] round {round_no + 1} {name}: {summarise(name, raw[name][-1:])}", flush=True)
    write_results({name: summarise(name, rounds) for name, rounds in raw.items()}, args, time.time() - start)


def run_child(name: str, args) -> dict:
    """One configuration in its own process (its peak memory is its own), trl 1.12 first on the path
    of the trl ones; what it measured."""
    out_file = CACHE / f"{name}.json"
    argv = ["--child", name, "--out", out_file, "--steps", args.steps, "--warmup", args.warmup]
    argv += ["--threads", args.threads] if args.threads else []
    return run_script(__file__, argv, out_file, env=OFFLINE_ENV,
                      pythonpath_first=[TRL_DIR] if name.startswith("trl") else [])


if __name__ == "__main__":
    main()
