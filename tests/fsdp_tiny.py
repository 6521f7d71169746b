"""The script tests/test_fsdp.py runs under `torchrun --nproc_per_node 2`: a few steps of one
stage on tiny models, sharded with FSDP2 (`--fsdp`) or not (DDP for PPO, one process for the
reward stage), then the full trained weights written by process 0 for the test to compare.

    python tests/fsdp_tiny.py ppo    MODEL_DIR OUT STEPS FSDP(0/1) CRITIC(value-head|reward) [REWARD_DIR] [RESUME 0/1]
    python tests/fsdp_tiny.py reward MODEL_DIR OUT STEPS FSDP(0/1) RANKINGS GRAD_ACCUM
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def run_ppo(model_dir: str, out: str, steps: int, fsdp: bool, critic: str, reward_dir: str | None,
            resume: bool, save_steps: int) -> None:
    import torch

    from ppo_tiny import PROMPTS, token_reward
    from rlhf.ppo import PPOConfig, PPOTrainer

    config = PPOConfig(policy=model_dir, output_dir=out, steps=steps, batch_size=4, max_new_tokens=8,
                       learning_rate=1e-3, ppo_epochs=1, num_minibatches=2, policy_train="full", critic=critic,
                       reward_model=reward_dir, save_steps=save_steps, resume=resume, progress=False, device="cpu",
                       fsdp=fsdp, log_samples=0)
    trainer = PPOTrainer(config, reward_fn=None if reward_dir else token_reward, prompts=PROMPTS)
    trainer.train()
    _write_full_weights(trainer.accelerator.unwrap_model(trainer.model), Path(out) / "full_weights.pt", fsdp, trainer.accelerator.is_main_process)
    torch.distributed.barrier() if torch.distributed.is_initialized() else None


def run_reward(model_dir: str, out: str, steps: int, fsdp: bool, rankings: str, grad_accum: int) -> None:
    from rlhf.reward import RewardConfig, train_reward

    config = RewardConfig(model=model_dir, data=rankings, output_dir=out, train="full", max_steps=steps,
                          batch_size=2, grad_accum=grad_accum, learning_rate=1e-3, eval_fraction=0.0,
                          calibration_data="train", max_length=64, device="cpu", fsdp=fsdp, seed=0)
    train_reward(config)


def _write_full_weights(model, path: Path, fsdp: bool, main: bool) -> None:
    import torch

    if fsdp:
        from rlhf.fsdp import full_state_dict

        state = full_state_dict(model)
    else:
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if main:
        torch.save({k: v.double() for k, v in state.items() if v.is_floating_point()}, path)


if __name__ == "__main__":
    import torch

    torch.set_num_threads(1)
    stage, model_dir, out, steps, fsdp = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5] == "1"
    if stage == "ppo":
        critic = sys.argv[6]
        reward_dir = sys.argv[7] if len(sys.argv) > 7 and sys.argv[7] != "-" else None
        resume = len(sys.argv) > 8 and sys.argv[8] == "1"
        save_steps = int(sys.argv[9]) if len(sys.argv) > 9 else 0
        run_ppo(model_dir, out, steps, fsdp, critic, reward_dir, resume, save_steps)
    else:
        run_reward(model_dir, out, steps, fsdp, sys.argv[6], int(sys.argv[7]))
