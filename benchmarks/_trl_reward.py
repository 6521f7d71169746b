"""TRL's RewardTrainer as the peer of `rlhf reward`, set up as ours is, for reward_speed.py and
reward_quality.py: the same sequence-classification start (head drawn with the same seed), LoRA on
every linear layer of the transformer with the head trained in full (or the last 2 blocks, final
norm and head: train=partial), the pairs as TRL's conversational rows, and the wall and CPU seconds
of each epoch (CPU time is the fairer figure on a machine other jobs share)."""

from __future__ import annotations

import time


def train_trl_reward(model_name: str | None, pairs: list[dict], settings: dict, seed: int,
                     lora_r: int | None = 16) -> dict:
    """Train trl.RewardTrainer on `pairs` (dicts with "prompt", "chosen", "rejected" strings).

    settings: trl.RewardConfig fields (output_dir, learning_rate, ...); use_cpu and bf16 follow the
    device unless given. lora_r: LoRA rank (alpha = 2 r); None trains the last 2 blocks instead.
    Returns {"model" (LoRA merged, a plain seq-cls model), "tokenizer", "steps" (optimizer steps),
    "epoch_seconds", "epoch_cpu_seconds" (one per epoch)}."""
    import datasets
    import torch
    import trl
    from transformers import TrainerCallback

    from rlhf.models import load_tokenizer
    from rlhf.reward.model import build_reward_model, merged, prepare_for_training

    tokenizer = load_tokenizer(model_name)
    torch.manual_seed(seed)
    model = build_reward_model(model_name, tokenizer.pad_token_id, seed=seed)  # the same start as ours
    peft_config = None
    if lora_r:
        from peft import LoraConfig

        targets = sorted({n.split(".")[-1] for n, m in model.model.named_modules() if isinstance(m, torch.nn.Linear)})
        peft_config = LoraConfig(task_type="SEQ_CLS", r=lora_r, lora_alpha=2 * lora_r, lora_dropout=0.0,
                                 target_modules=targets, modules_to_save=["score"])
    else:
        model = prepare_for_training(model, "partial", partial_layers=2)
    rows = [{"prompt": [{"role": "user", "content": p["prompt"]}],
             "chosen": [{"role": "assistant", "content": p["chosen"]}],
             "rejected": [{"role": "assistant", "content": p["rejected"]}]} for p in pairs]
    cuda = torch.cuda.is_available()
    seconds = []

    class EpochTimer(TrainerCallback):
        def on_epoch_begin(self, *a, **k):
            self.start, self.cpu = time.perf_counter(), time.process_time()

        def on_epoch_end(self, *a, **k):
            seconds.append((time.perf_counter() - self.start, time.process_time() - self.cpu))

    trainer = trl.RewardTrainer(model=model, args=trl.RewardConfig(**{"use_cpu": not cuda, "bf16": cuda, **settings}),
                                train_dataset=datasets.Dataset.from_list(rows), processing_class=tokenizer,
                                peft_config=peft_config, callbacks=[EpochTimer()])
    trainer.train()
    return {"model": merged(trainer.model), "tokenizer": tokenizer, "steps": trainer.state.global_step,
            "epoch_seconds": [w for w, _ in seconds], "epoch_cpu_seconds": [c for _, c in seconds]}
