"""Stage 5: PPO of the SFT policy against the reward model (a fresh LoRA on top of the SFT policy;
switching it off gives the reference)."""

from _common import parse

from rlhf import PPOConfig, run_ppo

args = parse(__doc__)
config = PPOConfig(
    policy=str(args.run_dir / "sft"),
    reward_model=str(args.run_dir / "reward"),
    steps=2 if args.tiny else 50,
    batch_size=4 if args.tiny else 8,
    max_new_tokens=12 if args.tiny else 48,
    output_dir=str(args.run_dir / "ppo"),
)
print("PPO policy saved to", run_ppo(config))
