"""The script tests/test_fsdp.py runs under `torchrun --nproc_per_node 2`: a list of short runs on
tiny models, one after another in the same two processes (each launch costs ~20 s of imports),
sharded with FSDP2 (`fsdp: true`) or not (DDP for PPO; one process, process 0 alone, for the
reward stage). Process 0 writes each run's full trained weights to OUT/full_weights.pt.

    torchrun --nproc_per_node 2 tests/fsdp_tiny.py JOBS.json

Each job: {"stage": "ppo"|"reward", "model": DIR, "out": DIR, "steps": N, "fsdp": bool, plus
for ppo "critic", "reward_model", "save_steps", "resume", "kill_at" (SIGKILL both processes at
that reward call, as a killed job); for reward "data", "grad_accum", "share_prompt" (default true);
"device" (default cpu)}.
Stage "sft" (CUDA only, tests/test_cuda.py) runs `rlhf sft --adapter full` on "data".
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def run_ppo(job: dict) -> None:
    from ppo_tiny import PROMPTS, token_reward
    from rlhf.ppo import PPOConfig, PPOTrainer

    config = PPOConfig(policy=job["model"], output_dir=job["out"], steps=job["steps"], batch_size=4,
                       max_new_tokens=8, learning_rate=1e-3, ppo_epochs=1, num_minibatches=2, policy_train="full",
                       critic=job.get("critic", "value-head"), reward_model=job.get("reward_model"),
                       save_steps=job.get("save_steps", 0), resume=job.get("resume", False), progress=False,
                       device=job.get("device", "cpu"), fsdp=job["fsdp"], log_samples=0)
    kill_at, calls = job.get("kill_at"), []

    def reward(prompts, completions):
        calls.append(1)
        if kill_at and len(calls) == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return token_reward(prompts, completions)

    trainer = PPOTrainer(config, reward_fn=None if job.get("reward_model") else reward, prompts=PROMPTS)
    trainer.train()
    _write_full_weights(trainer.actor_critic, Path(job["out"]) / "full_weights.pt",
                        job["fsdp"])


def run_reward(job: dict) -> None:
    import torch.distributed as dist

    from rlhf.reward import RewardConfig, train_reward

    config = RewardConfig(model=job["model"], data=job["data"], output_dir=job["out"], train="full",
                          max_steps=job["steps"], batch_size=2, grad_accum=job["grad_accum"], learning_rate=1e-3,
                          eval_fraction=0.0, calibration_data="train", max_length=64,
                          device=job.get("device", "cpu"),
                          fsdp=job["fsdp"], share_prompt=job.get("share_prompt", True), seed=0)
    if job["fsdp"] or dist.get_rank() == 0:  # unsharded: one process, the other waits
        train_reward(config)


def run_sft(job: dict) -> None:
    from rlhf.sft import SFTConfig, run_sft as sft

    sft(SFTConfig(model=job["model"], data=job["data"], output_dir=job["out"], adapter="full", max_steps=job["steps"],
                  batch_size=2, max_length=64, eval_fraction=0.0, save_steps=1000, logging_steps=1,
                  device=job.get("device", "cpu"), fsdp=job["fsdp"]))


def _write_full_weights(model, path: Path, fsdp: bool) -> None:
    import torch
    import torch.distributed as dist

    if fsdp:
        from rlhf.fsdp import full_state_dict

        state = full_state_dict(model)
    else:
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if dist.get_rank() == 0:
        torch.save({k: v.double() for k, v in state.items() if v.is_floating_point()}, path)


if __name__ == "__main__":
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    jobs = json.loads(Path(sys.argv[1]).read_text())
    cuda = any(str(job.get("device", "cpu")).startswith("cuda") for job in jobs)
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if cuda else "gloo")
    for job in jobs:
        {"ppo": run_ppo, "reward": run_reward, "sft": run_sft}[job["stage"]](job)
        dist.barrier()
