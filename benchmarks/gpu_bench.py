"""Stage speed on one GPU at two model shapes, random weights (the step `benchmarks/gpu_check.sh`
runs after the CUDA tests).

Shapes (Llama, random weights built from a config, the SmolLM2 tokenizer's 49,152-token vocabulary):
  default  SmolLM2-135M-Instruct's own shape (the embedded default): hidden 576, 30 layers, 9 heads
           (3 KV), MLP 1536, tied embeddings; 134.5M parameters
  1b       Llama-3.2-1B's shape: hidden 2048, 16 layers, 32 heads (8 KV), MLP 8192, tied; ~1.07B
  tiny     hidden 64, 2 layers: the CPU dry run of this script's code paths (no figure to keep)

Rows:
  ppo     full-parameter PPO, one row per advantage estimator PPOConfig accepts (names it rejects
          are listed as skipped): seconds per step (median of the measured steps), generated tokens
          per second of generation, the share of a step spent generating, peak GPU memory
  reward  the reward stage's train step (rankings of K=4, ranking loss, AdamW): tokens per second
  sft     `rlhf sft --adapter full` through TRL's SFTTrainer on the shipped demonstrations: tokens
          per second over the whole run (first step's warm-up included)

A row that fails or would start past --budget seconds is recorded with its reason, never dropped.

    python benchmarks/gpu_bench.py --out DIR [--shapes default,1b] [--estimators gae,rloo,grpo]
    python benchmarks/gpu_bench.py --device cpu --shapes tiny --steps 1 --warmup 0 --out /tmp/x  # dry run
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import platform
import statistics
import tempfile
import time
import traceback
from pathlib import Path

from _runner import save_results

SHAPES = {
    "default": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                    num_key_value_heads=3, head_dim=64, rope_theta=100000.0, rms_norm_eps=1e-5),
    "1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
               num_key_value_heads=8, head_dim=64, rope_theta=500000.0, rms_norm_eps=1e-5),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=16, rope_theta=10000.0, rms_norm_eps=1e-5),
}


def build_model(shape: str, tokenizer, device: str, seq_cls: bool = False):
    """A random-weight Llama of `shape`, initialised directly on `device` (fast for 1B on a GPU)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, LlamaConfig

    spec = dict(SHAPES[shape])
    rope_theta = spec.pop("rope_theta")
    config = LlamaConfig(vocab_size=len(tokenizer), max_position_embeddings=2048, tie_word_embeddings=True,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, rope_parameters={"rope_type": "default", "rope_theta": rope_theta},
                         num_labels=1, **spec)
    torch.manual_seed(0)
    with torch.device(device):
        cls = AutoModelForSequenceClassification if seq_cls else AutoModelForCausalLM
        return cls.from_config(config, dtype=torch.float32)


def _free(device: str) -> None:
    import torch

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak_gb(device: str) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 1024**3 if device.startswith("cuda") else None


def accepted_estimators(names: list[str]) -> tuple[list[str], dict[str, str]]:
    """The names PPOConfig takes as `advantage_estimator`; the rest with the reason."""
    from rlhf.ppo import PPOConfig

    fields = {f.name for f in dataclasses.fields(PPOConfig)}
    ok, skipped = [], {}
    for name in names:
        if "advantage_estimator" not in fields:
            if name == "gae":
                ok.append(name)  # before the field existed, GAE was the only estimator
            else:
                skipped[name] = "PPOConfig has no advantage_estimator field"
            continue
        try:
            PPOConfig(advantage_estimator=name)
            ok.append(name)
        except (ValueError, TypeError) as err:
            skipped[name] = f"PPOConfig rejects it: {err}"
    return ok, skipped


def length_reward(prompts, completions):
    """A cheap deterministic score with spread (random weights say nothing in particular)."""
    return [min(len(c), 200) / 100.0 for c in completions]


def bench_ppo(shape: str, estimator: str, args, tokenizer) -> dict:
    from rlhf.ppo import PPOConfig, PPOTrainer

    fields = {f.name for f in dataclasses.fields(PPOConfig)}
    extra = {"advantage_estimator": estimator} if "advantage_estimator" in fields else {}
    if "num_generations" in fields and estimator != "gae":
        extra["num_generations"] = 4  # critic-free estimators compare samples of one prompt
    model = build_model(shape, tokenizer, args.device)
    with tempfile.TemporaryDirectory() as tmp:
        config = PPOConfig(output_dir=tmp, steps=args.warmup + args.steps, batch_size=args.batch_size,
                           max_new_tokens=args.max_new_tokens, policy_train="full", save_steps=0, progress=False,
                           device=args.device, log_samples=0, min_reward_std=0.0, **extra)
        trainer = PPOTrainer(config, policy=model, tokenizer=tokenizer, reward_fn=length_reward)
        rows = [trainer.step() for _ in range(args.warmup + args.steps)][args.warmup:]
    del trainer, model
    return {"seconds_per_step": statistics.median(r["time/step"] for r in rows),
            "generated_tokens_per_s": statistics.median(r["perf/tokens_per_s"] for r in rows),
            "generation_share": statistics.median(r["time/generate_share"] for r in rows),
            "peak_gpu_gb": _peak_gb(args.device), "mean_response_tokens": statistics.mean(r["response/length"] for r in rows)}


def bench_reward(shape: str, args, tokenizer) -> dict:
    import torch

    from rlhf.reward.config import RewardConfig
    from rlhf.reward.synthetic import synthetic_rankings
    from rlhf.reward.trainer import encode_rankings, train_step

    model = build_model(shape, tokenizer, args.device, seq_cls=True)
    config = RewardConfig(batch_size=args.reward_batch, max_length=256, train="full")
    examples, _ = encode_rankings(tokenizer, synthetic_rankings(args.reward_batch * (args.warmup + args.steps), seed=3), 256)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    times, tokens = [], []
    for i in range(args.warmup + args.steps):
        group = examples[i * args.reward_batch:(i + 1) * args.reward_batch]
        _sync(args.device)
        start = time.perf_counter()
        train_step(model, group, config, tokenizer.pad_token_id, args.device)
        optimizer.step(), optimizer.zero_grad(set_to_none=True)
        _sync(args.device)
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
            tokens.append(sum(len(x) for e in group for x in e["ids"]))
    del model, optimizer
    return {"tokens_per_s": sum(tokens) / sum(times), "seconds_per_step": statistics.median(times),
            "rankings_per_step": args.reward_batch, "peak_gpu_gb": _peak_gb(args.device)}


def bench_sft(shape: str, args, tokenizer) -> dict:
    from rlhf.sft import SFTConfig, run_sft

    model = build_model(shape, tokenizer, "cpu")
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(Path(tmp) / "base")
        tokenizer.save_pretrained(Path(tmp) / "base")
        del model
        out = run_sft(SFTConfig(model=str(Path(tmp) / "base"), adapter="full", output_dir=str(Path(tmp) / "sft"),
                                max_steps=args.warmup + args.steps, batch_size=args.sft_batch, max_length=512,
                                eval_fraction=0.0, save_steps=10_000, logging_steps=1, device=args.device))
        metrics = json.loads((out / "metrics.json").read_text())
    tokens = max((h.get("num_tokens", 0) for h in metrics["log_history"]), default=0)
    return {"tokens_per_s": tokens / metrics["train_seconds"] if tokens else None,
            "seconds_per_step": metrics["seconds_per_step"], "steps": metrics["steps"], "tokens": tokens,
            "peak_gpu_gb": _peak_gb(args.device)}


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run_rows(args, save) -> list[dict]:
    """Every planned row in turn; `save(rows)` after each, so a run stopped by a timeout keeps
    what it measured."""
    from rlhf.models import tiny_tokenizer

    tokenizer = tiny_tokenizer()
    estimators, skipped = accepted_estimators(args.estimators.split(","))
    plan = []
    for shape in args.shapes.split(","):
        plan += [("ppo", shape, e) for e in estimators]
        plan += [("reward", shape, None), ("sft", shape, None)]
    rows = [{"stage": "ppo", "shape": s, "estimator": e, "status": "skipped", "reason": why}
            for s in args.shapes.split(",") for e, why in skipped.items()]
    started = time.perf_counter()
    for stage, shape, estimator in plan:
        row = {"stage": stage, "shape": shape, "estimator": estimator}
        if time.perf_counter() - started > args.budget:
            rows.append({**row, "status": "skipped", "reason": f"time budget of {args.budget:.0f} s spent"})
            continue
        print(f"[gpu_bench] {stage} {shape} {estimator or ''}", flush=True)
        _free(args.device)
        t0 = time.perf_counter()
        try:
            result = (bench_ppo(shape, estimator, args, tokenizer) if stage == "ppo" else
                      bench_reward(shape, args, tokenizer) if stage == "reward" else bench_sft(shape, args, tokenizer))
            rows.append({**row, "status": "ok", **result, "wall_s": time.perf_counter() - t0})
        except Exception as err:  # one failing row must not cost the others
            traceback.print_exc()
            rows.append({**row, "status": "failed", "reason": f"{type(err).__name__}: {str(err)[:300]}"})
        print(f"[gpu_bench]   -> {rows[-1]}", flush=True)
        save(rows)
    return rows


def environment(device: str) -> dict:
    import torch
    import transformers

    env = {"device": device, "torch": torch.__version__, "transformers": transformers.__version__,
           "python": platform.python_version()}
    if device.startswith("cuda"):
        env["gpu"] = torch.cuda.get_device_name(0)
    return env


def write(rows: list[dict], args, out: Path, show: bool = True) -> None:
    settings = {k: v for k, v in vars(args).items() if k != "out"}
    lines = [f"# Stage speed on {environment(args.device).get('gpu', args.device)}, random weights",
             "", f"settings: {settings}", "",
             "| stage | shape | estimator | status | s/step | gen tokens/s | gen share | tokens/s | peak GPU GiB |",
             "|---|---|---|---|---|---|---|---|---|"]
    fmt = lambda v, f: "" if v is None else format(v, f)  # noqa: E731
    for r in rows:
        status = r["status"] if r["status"] == "ok" else f"{r['status']}: {r.get('reason', '')}"
        lines.append(f"| {r['stage']} | {r['shape']} | {r.get('estimator') or ''} | {status} | "
                     f"{fmt(r.get('seconds_per_step'), '.3f')} | {fmt(r.get('generated_tokens_per_s'), ',.0f')} | "
                     f"{fmt(r.get('generation_share'), '.0%')} | {fmt(r.get('tokens_per_s'), ',.0f')} | "
                     f"{fmt(r.get('peak_gpu_gb'), '.2f')} |")
    save_results(out / "gpu_bench.json", {"environment": environment(args.device), "settings": settings, "rows": rows},
                  "\n".join(lines), show=show)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--shapes", default="default,1b")
    parser.add_argument("--estimators", default="gae,rloo,grpo,reinforce_pp",
                        help="comma list; names PPOConfig rejects are recorded as skipped")
    parser.add_argument("--steps", type=int, default=3, help="measured steps per row")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32, help="PPO prompts per step")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--reward-batch", type=int, default=16, help="rankings (K=4) per reward step")
    parser.add_argument("--sft-batch", type=int, default=16)
    parser.add_argument("--budget", type=float, default=330, help="seconds after which rows are skipped")
    args = parser.parse_args(argv)
    rows = run_rows(args, lambda so_far: write(so_far, args, args.out, show=False))
    write(rows, args, args.out)


if __name__ == "__main__":
    main()
