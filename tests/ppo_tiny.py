"""A tiny SFT policy for the PPO tests, and the script `tests/test_ppo_distributed.py` runs under
`torchrun --nproc_per_node 2`.

A randomly initialised model spreads its mass over 49k tokens, so no particular token ever
appears and a "+1 per chosen token" reward gives PPO nothing to learn from. A few seconds of
next-token training on answers made of WORDS gives a policy that says those words, each at a few
percent per position: a small SFT model whose behaviour PPO can move within a few dozen steps.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import torch

WORDS = ["sun", "tree", "river", "stone", "bird", "cloud", "happy", "green", "road", "light", "wind", "blue"]
CHOSEN = "happy"
PROMPTS = [f"Tell me something about {w}." for w in WORDS] + [f"Describe the {w}." for w in WORDS]


def token_reward(prompts, completions):
    """+1 for each occurrence of the chosen word."""
    return [float(c.split().count(CHOSEN)) for c in completions]


def length_reward(prompts, completions):
    """Varied, deterministic scores for a random tiny model (which never says a chosen word): 1 per 20 characters."""
    return [len(c) / 20.0 for c in completions]


def learning_curve(history: list[dict], window: int = 5) -> tuple[float, float, list[float]]:
    """Of a PPO run's per-step metrics: the mean score of its first and of its last `window` steps, and
    the KL to the reference of its last `window` steps (what "it learned, with bounded KL" checks)."""
    scores = [h["reward/score"] for h in history]
    return sum(scores[:window]) / window, sum(scores[-window:]) / window, [h["kl/mean"] for h in history[-window:]]


def make_tiny_sft(tokenizer, steps: int = 60, seed: int = 0, hidden_size: int = 64):
    """A tiny Llama trained for `steps` Adam steps on chat rows whose answers are 6-10 random WORDS."""
    import torch

    from rlhf.models import tiny_causal_lm

    torch.manual_seed(seed)
    rng = random.Random(seed)
    model = tiny_causal_lm(tokenizer, hidden_size=hidden_size, num_layers=2, seed=seed)
    rows = []
    for _ in range(64):
        prompt = rng.choice(PROMPTS)
        answer = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 10)))
        prompt_ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                                   tokenize=True, return_dict=False)
        full = tokenizer.apply_chat_template([{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}],
                                             tokenize=True, return_dict=False)
        rows.append((list(full), len(prompt_ids)))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for step in range(steps):
        batch = rng.sample(rows, 16)
        width = max(len(ids) for ids, _ in batch)
        ids = torch.full((16, width), tokenizer.pad_token_id)
        labels = torch.full((16, width), -100)
        mask = torch.zeros((16, width), dtype=torch.long)
        for i, (seq, n_prompt) in enumerate(batch):
            ids[i, :len(seq)] = torch.tensor(seq)
            labels[i, n_prompt:len(seq)] = torch.tensor(seq[n_prompt:])
            mask[i, :len(seq)] = 1
        # The LM head only where answers are (a third of the tokens): the 49k-way softmax is the cost.
        hidden = model.model(input_ids=ids, attention_mask=mask).last_hidden_state[:, :-1]
        targets = labels[:, 1:]
        keep = targets != -100
        loss = torch.nn.functional.cross_entropy(model.lm_head(hidden[keep]), targets[keep])
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    return model


def save_tiny_sft(path, steps: int = 60, seed: int = 0) -> Path:
    from rlhf.models import tiny_tokenizer

    tokenizer = tiny_tokenizer()
    model = make_tiny_sft(tokenizer, steps=steps, seed=seed)
    path = Path(path)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def shards_for_batch_statistics(seed: int = 0):
    """A batch of 6 rows for the batch-statistics test, cut in two shards of 3 (ragged masks, so the
    shards hold different token counts): scores (6,), kl, values, response_mask (6, 5)."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([5, 2, 4, 1, 3, 5])
    mask = torch.arange(5)[None, :] < lengths[:, None]
    scores = torch.randn(6, generator=g) * 3 + 1
    kl = torch.randn(6, 5, generator=g) * 0.1
    values = torch.randn(6, 5, generator=g)
    return scores, kl, values, mask


def batch_statistics_worker(rank: int, store: str, out: str) -> None:
    """One of two gloo processes: the advantages of its half of `shards_for_batch_statistics` with
    the statistics summed over both (core.AllReduce), saved for the test to compare."""
    import torch.distributed as dist

    from rlhf.ppo import core

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)

    def total(t):
        t = t.clone()
        dist.all_reduce(t)
        return t

    rows = slice(3 * rank, 3 * rank + 3)
    scores, kl, values, mask = (x[rows] for x in shards_for_batch_statistics())
    result = {}
    for estimator in ("gae", "reinforce++"):
        for whiten_rewards in (False, True):
            _, adv, ret = core.compute_advantages(estimator, scores, kl, mask, 0.05, 1, values, 1.0, 0.95,
                                                  whiten_rewards, total)
            result[f"{estimator}/{whiten_rewards}"] = (adv, ret)
    result["grpo/batch"] = core.compute_advantages("grpo", scores, kl, mask, 0.05, 3, all_reduce=total,
                                                  scale_rewards="batch")[1]
    result["var"] = core.masked_var(kl, mask, all_reduce=total)
    torch.save(result, Path(out) / f"rank{rank}.pt")
    dist.destroy_process_group()


def distributed_main(model_dir: str, output_dir: str, steps: int, estimator: str = "gae") -> None:
    """Run under torchrun: PPO on the tiny SFT model over gloo; rank 0 writes metrics, every rank
    writes a digest of its trained weights for the test to compare, and the prompt index of each
    row of every micro-batch it trained on (a group estimator must keep groups whole)."""
    import json

    import torch

    torch.set_num_threads(1)
    from rlhf.ppo import PPOConfig, PPOTrainer

    config = PPOConfig(policy=model_dir, output_dir=output_dir, steps=steps, batch_size=8, max_new_tokens=12,
                       learning_rate=3e-3, ppo_epochs=2, num_minibatches=2, save_steps=0, progress=False, device="cpu",
                       advantage_estimator=estimator, num_generations=1 if estimator == "gae" else 4)
    trainer = PPOTrainer(config, reward_fn=token_reward, prompts=PROMPTS)
    micro_batches = []
    loss = trainer._loss
    trainer._loss = lambda mb, *a: (micro_batches.append(mb["prompt_index"].tolist()), loss(mb, *a))[1]
    advantages = []  # per step: this process's masked sum, sum of squares and count of the advantages
    epochs = trainer._ppo_epochs

    def record(r, adv, returns, policy_on):
        mask = r.response_mask
        advantages.append([float(adv[mask].sum()), float((adv[mask] ** 2).sum()), int(mask.sum()), bool(policy_on)])
        return epochs(r, adv, returns, policy_on)

    trainer._ppo_epochs = record
    history = trainer.train()
    rank = trainer.accelerator.process_index
    weights = {n: p.detach().double() for n, p in trainer.actor_critic.named_parameters()
               if p.requires_grad}
    digest = {"world": trainer.accelerator.num_processes, "sum": sum(float(w.sum()) for w in weights.values()),
              "abs": sum(float(w.abs().sum()) for w in weights.values()),
              "scores": [h["reward/score"] for h in history], "kl": [h["kl/mean"] for h in history],
              "micro_batches": micro_batches, "advantages": advantages}
    torch.save(weights, Path(output_dir) / f"weights_rank{rank}.pt")
    (Path(output_dir) / f"digest_rank{rank}.json").write_text(json.dumps(digest))


if __name__ == "__main__":
    distributed_main(sys.argv[1], sys.argv[2], int(sys.argv[3]), *sys.argv[4:5])
