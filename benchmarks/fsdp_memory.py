"""Peak resident memory per process of full-parameter PPO on the embedded default (SmolLM2-135M,
fp32, CPU): one process unsharded vs two processes sharded with FSDP2 (`--fsdp`, gloo).

Both runs: policy_train=full, value-head critic, a reward function (length of the answer), batch 4
prompts per process, 16 new tokens, 2 PPO steps, one torch thread per process. Each process
reports its own peak RSS (getrusage), the parameter elements it holds after sharding, and the
median seconds per step. The full-size PPO of the README (batch 8, 32 tokens, reward-model critic)
holds more activations and a second 135M model, so its absolute figures are higher.

    python benchmarks/fsdp_memory.py        # ~3 minutes on the 2-core machine; peaks near 5 GB per process

Writes benchmarks/results/fsdp_memory.json and fsdp_memory.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _runner import OFFLINE_ENV, RESULTS, load_average, save_results, write_child_result

HERE = Path(__file__).resolve().parent
STEPS, BATCH, NEW_TOKENS = 2, 4, 16


def child(out: Path, fsdp: bool) -> None:
    """One process of a run: train, then write rank{r}.json."""
    import torch

    torch.set_num_threads(1)
    from rlhf.fsdp import local_shard_numel
    from rlhf.ppo import PPOConfig, PPOTrainer

    config = PPOConfig(output_dir=str(out / "run"), steps=STEPS, batch_size=BATCH, max_new_tokens=NEW_TOKENS,
                       policy_train="full", critic="value-head", save_steps=0, progress=False, device="cpu",
                       fsdp=fsdp, log_samples=0, min_reward_std=0.0)
    trainer = PPOTrainer(config, reward_fn=lambda prompts, completions: [len(c) / 50.0 for c in completions])
    rows = [trainer.step() for _ in range(STEPS)]
    modules = [trainer.actor_critic, trainer.policy_and_reference.ref_model]
    rank = trainer.accelerator.process_index
    out.mkdir(parents=True, exist_ok=True)
    write_child_result(out / f"rank{rank}.json", {
        "rank": rank, "world": trainer.accelerator.num_processes, "fsdp": fsdp,
        "parameter_elements_held": sum(local_shard_numel(m) for m in modules if m is not None),
        "seconds_per_step": statistics.median(r["time/step"] for r in rows),
    })


def launch(fsdp: bool, out: Path) -> list[dict]:
    env = {**os.environ, **OFFLINE_ENV, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(HERE.parent) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    script = [str(Path(__file__).resolve()), "--child", str(out)] + (["--fsdp"] if fsdp else [])
    if fsdp:
        torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
        cmd = [torchrun, "--nproc_per_node", "2", "--master_port", "29561", *script]
    else:
        cmd = [sys.executable, *script]
    subprocess.run(cmd, env=env, check=True)
    return [json.loads(p.read_text()) for p in sorted(out.glob("rank*.json"))]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", type=Path)
    parser.add_argument("--fsdp", action="store_true")
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child, args.fsdp)
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        one = launch(False, Path(tmp) / "one")
        two = launch(True, Path(tmp) / "two")
    load = load_average()
    result = {"settings": {"steps": STEPS, "batch_size_per_process": BATCH, "max_new_tokens": NEW_TOKENS,
                           "policy_train": "full", "critic": "value-head", "model": "SmolLM2-135M-Instruct fp32"},
              "one_process": one, "two_processes_fsdp": two, "load_average": load, "wall_s": time.time() - started}
    lines = ["# Full-parameter PPO, peak RSS per process: one process vs two sharded (FSDP2, CPU)", "",
             f"`python benchmarks/fsdp_memory.py`; {STEPS} steps, batch {BATCH} per process, {NEW_TOKENS} new tokens, "
             f"value-head critic; load average at the end {load[0]:.1f}", "",
             "| run | process | peak RSS (GB) | parameter elements held | s/step |", "|---|---|---|---|---|"]
    for name, rows in (("1 process", one), ("2 processes, FSDP2", two)):
        for r in rows:
            lines.append(f"| {name} | {r['rank']} | {r['peak_rss_gb']:.2f} | {r['parameter_elements_held']:,} | "
                         f"{r['seconds_per_step']:.1f} |")
    save_results(RESULTS / "fsdp_memory.json", result, "\n".join(lines))


if __name__ == "__main__":
    main()
