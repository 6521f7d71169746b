"""Critic-free RL with a verifiable reward: GRPO teaches the policy to add two small numbers.

No reward model and no critic. Each prompt asks for a sum of two digits; a rule checks the reply:
1.0 when it states the right sum (any number in it equals the sum: a 135M model often answers
"4 + 5 = 9"), and 0.1 more when the reply is that number alone (a format reward). GRPO (Shao et al. 2024) samples G = 4 replies per prompt and raises the
probability of the ones that score above their group's mean, lowers the others: the group is the
baseline a critic would otherwise have to learn.

    python examples/07_grpo.py            # the embedded default SmolLM2-135M-Instruct, CPU
    python examples/07_grpo.py --tiny     # a tiny random model, a few steps (for tests)
"""

import re

from _common import base_model, parse

from rlhf import PPOConfig, PPOTrainer
from rlhf.data import Prompt

args = parse(__doc__)

# 1. The task: every sum of two digits, 81 prompts; the prompt id carries the expected answer.
answers = {f"sum-{a}-{b}": a + b for a in range(1, 10) for b in range(1, 10)}
prompts = [Prompt(id=pid, messages=[{"role": "user", "content": f"What is {a} + {b}? Reply with the number only."}])
           for pid, (a, b) in ((pid, map(int, pid.split("-")[1:])) for pid in answers)]


# 2. The rule. The trainer passes `prompt_ids` (the id of each completion's prompt) to a reward
#    function that names it; `prompt_index` would give the group (0..n-1 within the step) instead.
def sum_reward(prompts, completions, prompt_ids):
    scores = []
    for completion, pid in zip(completions, prompt_ids):
        numbers = [int(n) for n in re.findall(r"-?\d+", completion)]
        right = answers[pid] in numbers
        alone = right and completion.strip().rstrip(".") == str(answers[pid])
        scores.append(1.0 * right + 0.1 * alone)
    return scores


# 3. GRPO on the PPO trainer: 4 prompts x G = 4 replies per step, KL to the start policy as a
#    loss term (k3, weight 0.04) and the per-completion token mean: DeepSeekMath's defaults.
config = PPOConfig(
    policy=base_model(args),
    advantage_estimator="grpo",
    num_generations=4,
    batch_size=16,
    max_new_tokens=8 if args.tiny else 16,
    steps=args.steps or (2 if args.tiny else 30),
    ppo_epochs=1,
    learning_rate=1e-4,
    output_dir=str(args.run_dir / "grpo"),
    save_steps=0,
    seed=0,
)
trainer = PPOTrainer(config, reward_fn=sum_reward, prompts=prompts)
history = trainer.train()

# 4. What happened: the reward and, for a group method, how many groups had no spread at all.
tenth = max(1, len(history) // 5)
first = sum(h["reward/score"] for h in history[:tenth]) / tenth
last = sum(h["reward/score"] for h in history[-tenth:]) / tenth
print(f"mean reward: first {tenth} step(s) {first:.3f}, last {tenth} step(s) {last:.3f}; "
      f"groups without spread at the end: {history[-1]['reward/frac_reward_zero_std']:.0%}")
print("policy saved to", args.run_dir / "grpo" / "policy", "- curves in", args.run_dir / "grpo" / "plots")
