"""Stage 6: win rate of the PPO policy against the SFT policy on held-out prompts, with a
bootstrap confidence interval, judged by the simulated labeler (or `judge="reward"`)."""

from _common import parse

from rlhf import EvalConfig, run_eval

args = parse(__doc__)
config = EvalConfig(
    policy_a=str(args.run_dir / "ppo" / "policy"),
    policy_b=str(args.run_dir / "sft"),
    reference=str(args.run_dir / "sft"),
    reward_model=str(args.run_dir / "reward"),
    judge="simulated",
    preference="concise",
    limit=4 if args.tiny else 100,
    max_new_tokens=12 if args.tiny else 48,
    output=str(args.run_dir / "eval"),
)
result = run_eval(config)
print("see", args.run_dir / "eval" / "eval.md")
