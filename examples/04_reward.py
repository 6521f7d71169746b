"""Stage 4: a reward model on the K-way rankings (every ranking scored in one forward pass)."""

from _common import parse

from rlhf import RewardConfig, RewardModel, train_reward

args = parse(__doc__)
config = RewardConfig(
    model=str(args.run_dir / "sft"),     # start from the SFT policy
    data=str(args.run_dir / "rankings.jsonl"),
    train="lora",
    epochs=1 if args.tiny else 2,
    max_length=256,
    output_dir=str(args.run_dir / "reward"),
)
out = train_reward(config)
rm = RewardModel.load(str(args.run_dir / "reward"))
print("reward of a short answer:", rm.score(["Name a fruit."], ["An apple."]).tolist())
