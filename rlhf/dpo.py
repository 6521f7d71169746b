"""DPO from the same rankings: the offline alternative to reward model + PPO (Rafailov et al. 2023).

Built on TRL's DPOTrainer. Every ranking becomes all its strictly ordered pairs (C > B = D > A gives
five: C>B, C>D, C>A, B>A, D>A; the tie B = D gives none), in TRL's conversational format, so DPO
sees the chat-templated text that SFT and PPO see:

    {"prompt": [{"role": "user", ...}], "chosen": [{"role": "assistant", ...}], "rejected": [...]}

The SFT policy is both the starting point and the reference, and sits in memory once:

| SFT output                              | how it is loaded                          | reference (adapter off) |
|-----------------------------------------|-------------------------------------------|-------------------------|
| PEFT LoRA / DoRA / rsLoRA / QLoRA / IA3 | base + SFT adapter, merged; fresh LoRA    | the merged SFT model    |
| series / parallel (ours)                | base + SFT bottleneck, frozen; fresh LoRA | base + SFT bottleneck   |
| full model folder (full, partial)       | as is; fresh LoRA                         | the SFT model           |
| prompt / prefix tuning (PEFT)           | base + SFT soft prompt, trained further   | TRL's frozen copy "ref" |

The fresh LoRA goes on every linear layer of the blocks and never on a bottleneck's own layers, so
turning it off (TRL's reference pass with `ref_model=None`) gives exactly the SFT policy, not the
pre-SFT base.

What is saved (`output_dir`): the DPO LoRA merged too, so the folder *is* the DPO policy and
`rlhf.load_causal_lm(output_dir)` loads it like any model folder. A LoRA adapter alone would
not do: it sits on the merged SFT weights, which exist nowhere on disk. Series/parallel SFT: the
merged weights go to `output_dir/base` and the (unchanged) bottleneck adapter to `output_dir`,
pointing at it. Prompt/prefix tuning: the trained soft prompt, a PEFT adapter on the original base.
Beside it: the tokenizer, `metrics.json`, `rlhf_config.json`, TensorBoard logs under `logs/`.

    from rlhf.dpo import DPOStageConfig, run_dpo
    out = run_dpo(DPOStageConfig(policy="runs/sft", data="rankings.jsonl", max_steps=100))
"""

from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from rlhf.stages import max_steps_problems, number_problems, save_resolved_config

from rlhf.adapters import resolve_learning_rate

# The DPO paper's 1e-6 (Rafailov et al. 2023, App. B) is for a full fine-tune; TRL's LoRA example
# (trl/scripts/dpo.py) uses 5e-6 at alpha/r = 0.5. Our LoRA scales by alpha/r = 2 (4x) and runs for
# tens of CPU steps, not thousands: 5e-5, a quarter of the SFT stage's LoRA rate (2e-4). Measured on
# SmolLM2-135M, 12 steps of 4 pairs: eval reward margin 0.54 at 5e-5, 0.05 at 5e-6 (accuracy 0.92 both).
DEFAULT_LR = 5e-5
# A soft prompt trained further gets a quarter of its SFT rate (3e-3) by the same rule.
PROMPT_LEARNING_LR = 7.5e-4
DEFAULT_LEARNING_RATES = {"lora": DEFAULT_LR, "prompt-learning": PROMPT_LEARNING_LR}  # by what DPO trains
# A bottleneck adapter's own Linear layers (`...bottleneck.<name>.down/up`) stay frozen and unwrapped.
NOT_LORA = r".*\.bottleneck\..*"


@dataclass
class DPOStageConfig:
    """DPO of the SFT policy on rankings (every strictly ordered pair) or chosen/rejected pairs."""

    policy: str | None = field(default=None, metadata={"help": "The SFT output: a PEFT adapter folder (LoRA, DoRA, IA3, ...), an rlhf series/parallel adapter folder, or a full model folder. It is both the starting point and the reference. None = the embedded SmolLM2-135M-Instruct."})
    data: str = field(default="", metadata={"help": "Rankings JSONL as the labeling app exports it (every strictly ordered pair is used, ties give none) or TRL pairs (prompt, chosen, rejected); JSONL, Parquet or a datasets folder."})
    output_dir: str = field(default="runs/dpo", metadata={"help": "Where the DPO policy (a loadable model folder), tokenizer, config, metrics and logs go."})
    beta: float = field(default=0.1, metadata={"help": "DPO beta: the strength of the pull towards the reference (the SFT policy). 0.1 as in the DPO paper."})
    learning_rate: float | None = field(default=None, metadata={"help": f"Peak learning rate. Default: {DEFAULT_LR} for the fresh LoRA; {PROMPT_LEARNING_LR} when a prompt/prefix-tuning SFT soft prompt is trained further."})
    epochs: float = field(default=1.0, metadata={"help": "Passes over the training pairs (ignored when --max_steps > 0)."})
    max_steps: int = field(default=-1, metadata={"help": "Stop after this many optimizer steps (-1: run --epochs)."})
    batch_size: int = field(default=4, metadata={"help": "Pairs per device per step (each pair is two sequences)."})
    grad_accum: int = field(default=2, metadata={"help": "Gradient accumulation steps (effective batch = batch_size x grad_accum x devices)."})
    max_length: int = field(default=512, metadata={"help": "Maximum tokens of prompt + completion; longer ones lose their end, pairs whose prompt alone fills it are dropped."})
    lora_r: int = field(default=16, metadata={"help": "Rank of the fresh LoRA trained on top of the SFT policy."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha: the update is scaled by alpha/r."})
    eval_fraction: float = field(default=0.1, metadata={"help": "Share of prompts held out for eval reward accuracy and margins (split by prompt, as the reward stage does: with the same seed, the same prompts)."})
    eval_steps: int = field(default=0, metadata={"help": "Evaluate every N steps (0: only at the end)."})
    logging_steps: int = field(default=5, metadata={"help": "Log loss, reward accuracy and margins every N steps."})
    warmup_ratio: float = field(default=0.1, metadata={"help": "Share of steps with a linearly rising learning rate (the DPO paper warms up for 150 steps)."})
    gradient_checkpointing: bool | None = field(default=None, metadata={"help": "Trade compute for memory. Default: on for GPU runs, off on CPU (never with prefix tuning)."})
    skip_bad_rows: bool = field(default=False, metadata={"help": "Skip and count malformed rows (in metrics.json) instead of stopping."})
    seed: int = field(default=0, metadata={"help": "Seed for the split, the LoRA initialisation and data order (0, as the reward stage)."})
    device: str | None = field(default=None, metadata={"help": "cpu or cuda; default: cuda when available. Precision follows: bf16 on GPU, fp32 on CPU."})
    gold_preference: str | None = field(default=None, metadata={"help": "The labels' own rule, to watch DPO over-optimise: a built-in preference (concise, detailed, on_topic, numeric, plain, short_sentences, line_breaks, ...), a registered one or package.module:function. During training the policy's answers to held-out prompts are scored by it beside DPO's implicit-reward margin on held-out pairs and the KL to the SFT policy (gold.jsonl, plots/gold_vs_proxy_*.png; Gao et al. 2023). None = off; `rlhf pipeline` sets it when labels are simulated. Off, with a console line, for prompt/prefix-tuning SFT outputs and runs of more than one process."})
    gold_steps: int = field(default=5, metadata={"help": "With --gold_preference: measure before the first step, every N optimizer steps and after the last."})
    gold_prompts: int = field(default=16, metadata={"help": "With --gold_preference: how many held-out prompts (the eval split's; the training prompts when there is none) are answered, one sampled answer each, the same seed every time."})
    gold_max_new_tokens: int = field(default=64, metadata={"help": "With --gold_preference: answer length limit in tokens."})

    def __post_init__(self):
        # gold_prompts and gold_steps are checked with gold_preference (check_gold_settings)
        problems = max_steps_problems(self.max_steps, self.epochs)
        problems += number_problems(self, at_least_1=("batch_size", "grad_accum", "lora_r", "logging_steps",
                                                      "gold_max_new_tokens"),
                                    at_least_0=("eval_steps",), positive=("beta", "learning_rate", "lora_alpha"),
                                    fraction=("eval_fraction", "warmup_ratio"))
        if not self.max_length >= 2:
            problems.append(f"max_length must be >= 2 (a prompt token and an answer token; got {self.max_length})")
        if problems:
            raise ValueError("DPOStageConfig: " + "; ".join(problems))


# --- 1. rankings -> pairs ----------------------------------------------------------------------


def ranking_to_pairs(rankings) -> list[dict[str, list[dict[str, str]]]]:
    """Every strictly ordered pair of every ranking as a TRL conversational preference row; the
    prompt is the whole conversation (system message and earlier turns kept)."""
    rows = []
    for r in rankings:
        prompt = r.messages
        for better, worse, _gap in r.pairs():
            rows.append({"prompt": prompt,
                         "chosen": [{"role": "assistant", "content": r.completions[better]}],
                         "rejected": [{"role": "assistant", "content": r.completions[worse]}]})
    return rows


def ranks_a_text_against_itself(ranking) -> bool:
    """Whether two completions in different tiers of `ranking` are the same text. Its pairs would
    include chosen == rejected (a DPO loss of log 2 whatever the weights, counted as a wrong answer
    in the reward accuracy) and contradict each other (A > B and B' > A with B' = B); the reward
    stage leaves such rankings out too (`rlhf.reward.trainer.encode_rankings`)."""
    return any(ranking.completions[b] == ranking.completions[w] for b, w, _ in ranking.pairs())


def load_pairs(config: DPOStageConfig):
    """(train Dataset, eval Dataset or None, counts) from `config.data`; DataError on bad rows."""
    import datasets

    from rlhf.data import DataError, load_preferences, print_skipped_rows
    from rlhf.reward.data import split_by_prompt

    if not config.data:
        raise DataError("--data", None, None, "no rankings given: pass --data rankings.jsonl (the labeling app's export) or TRL pairs")
    rankings, bad = load_preferences(config.data, skip_bad=config.skip_bad_rows)
    print_skipped_rows("rlhf dpo", config.data, bad, "metrics.json bad_rows")
    kept = [r for r in rankings if not ranks_a_text_against_itself(r)]
    contradictory = len(rankings) - len(kept)
    if contradictory:
        print(f"[rlhf dpo] left out {contradictory} of {len(rankings)} rankings that rank a completion text against "
              "itself (two identical answers in different tiers); metrics.json rankings_dropped_identical")
    train, held_out = split_by_prompt(kept, config.eval_fraction, config.seed)
    train_rows, eval_rows = ranking_to_pairs(train), ranking_to_pairs(held_out)
    if not train_rows:
        raise DataError(config.data, None, "ranking", "no strictly ordered pair to train on: every ranking is a single tie")
    counts = {"rankings": len(rankings), "bad_rows": len(bad), "rankings_dropped_identical": contradictory,
              "tie_only_rankings": sum(not r.pairs() for r in kept),
              "train_pairs": len(train_rows), "eval_pairs": len(eval_rows),
              "train_prompts": len({r.key for r in train}), "eval_prompts": len({r.key for r in held_out})}
    eval_ds = datasets.Dataset.from_list(eval_rows) if eval_rows else None
    return datasets.Dataset.from_list(train_rows), eval_ds, counts


def length_report(tokenizer, rows, max_length: int) -> dict:
    """How many training pairs TRL's DPOTrainer will cut at `max_length` (it keeps the start, so
    the answers lose their end) and how many leave no answer token at all (the prompt alone fills
    max_length). Printed and written to metrics.json (`data_loss`): nothing is cut unseen."""
    from rlhf.tokens import encode_prompt_completion

    cut = no_answer = 0
    for row in rows:
        encoded = [encode_prompt_completion(tokenizer, row["prompt"], row[k]) for k in ("chosen", "rejected")]
        prompt_len, longest = encoded[0][1], max(len(ids) for ids, _ in encoded)  # as tokenize_pairs encodes them
        cut += longest > max_length
        no_answer += prompt_len >= max_length
    report = {"stage": "dpo", "max_length": max_length, "pairs": len(rows), "pairs_cut": cut,
              "pairs_without_answer_tokens": no_answer}
    if cut:
        print(f"[rlhf dpo] {cut} of {len(rows)} training pairs are longer than max_length={max_length} and lose the end "
              f"of their answers ({no_answer} keep no answer token at all); raise --max_length to keep them")
    return report


# --- 2. the SFT policy, once -------------------------------------------------------------------


def load_sft_policy(policy: str | None, device: str):
    """(model, kind): the SFT policy ready for a fresh LoRA (`rlhf.adapters.load_sft_output`). kind is
    "merged" (a PEFT adapter merged into its base), "series"/"parallel" (frozen bottleneck kept),
    "prompt-learning" (a PeftModel whose soft prompt trains further) or "full" (a plain model folder)."""
    from rlhf.adapters.sft_output import MERGEABLE, PLAIN, PROMPT_LEARNING, load_sft_output

    model, kind = load_sft_output(policy, device=device)
    if kind == PROMPT_LEARNING:
        for name, p in model.named_parameters():
            p.requires_grad_(".default." in name and "prompt_encoder" in name)
        return model, "prompt-learning"
    if kind == MERGEABLE:
        # merge_and_unload folds LoRA / DoRA / IA3 into the base weights: the SFT policy as a plain model.
        return model.merge_and_unload(), "merged"
    model.requires_grad_(False)
    return model, "full" if kind == PLAIN else kind


def fresh_lora(config: DPOStageConfig, kind: str):
    """The LoRA DPO trains (None when a soft prompt trains instead): every linear layer of the blocks,
    never the bottleneck's own, no dropout (TRL disables it anyway; the reference pass must be exact)."""
    import peft

    if kind == "prompt-learning":
        return None
    return peft.LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=0.0, target_modules="all-linear",
                           exclude_modules=NOT_LORA if kind in ("series", "parallel") else None, task_type="CAUSAL_LM")


def resolved_learning_rate(config: DPOStageConfig, kind: str) -> float:
    """The learning rate for the SFT kind `kind`: a soft prompt trains further, anything else a fresh LoRA."""
    return resolve_learning_rate(config.learning_rate, DEFAULT_LEARNING_RATES,
                                 "prompt-learning" if kind == "prompt-learning" else "lora")


# --- 3. the trainer ----------------------------------------------------------------------------


def build_trainer(config: DPOStageConfig):
    """Steps 1-2 of `run_dpo`: validate the data (before any model loads), load the SFT policy once and
    wrap it in TRL's DPOTrainer with `ref_model=None`. Returns the trainer; `trainer.rlhf_info` holds
    the data counts and the SFT kind."""
    from rlhf.finite import finite_gradients_callback
    from transformers import set_seed

    from rlhf.models import load_tokenizer, pick_device
    from rlhf.outputs import check_output_dir

    check_output_dir("dpo", config.output_dir, {"--policy": config.policy})
    check_gold_settings(config)
    device = pick_device(config.device)
    train_ds, eval_ds, counts = load_pairs(config)
    tokenizer = load_tokenizer(config.policy)
    set_seed(config.seed)  # before any weight exists, whatever order TRL seeds and adds its LoRA in
    counts["data_loss"] = length_report(tokenizer, train_ds, config.max_length)
    model, kind = load_sft_policy(config.policy, device)
    trainer = _dpo_trainer(config, model, kind, tokenizer, train_ds, eval_ds, device)
    trainer.add_callback(finite_gradients_callback("rlhf dpo", config.output_dir))  # stop before a NaN step
    trainer.rlhf_info = {**counts, "sft_kind": kind, "device": device}
    trainer.rlhf_gold = gold_view(config, kind, tokenizer, eval_ds if eval_ds is not None else train_ds,
                                  "held-out" if eval_ds is not None else "training", trainer.args.world_size)
    if trainer.rlhf_gold is not None:
        trainer.add_callback(trainer.rlhf_gold.as_callback())
    return trainer


def _dpo_trainer(config, model, kind, tokenizer, train_ds, eval_ds, device: str):
    from trl import DPOConfig, DPOTrainer

    from rlhf.sft import trl_training_arguments

    out = Path(config.output_dir)
    checkpointing = device.startswith("cuda") if config.gradient_checkpointing is None else config.gradient_checkpointing
    if kind == "prompt-learning" and model.active_peft_config.peft_type.value == "PREFIX_TUNING":
        checkpointing = False  # re-computation does not reproduce the prefix cache (docs/notes.md#prefix-checkpointing)
    args = DPOConfig(
        **trl_training_arguments(config, out, device, eval_ds, checkpointing),
        beta=config.beta,
        learning_rate=resolved_learning_rate(config, kind),
        lr_scheduler_type="linear",
        warmup_steps=config.warmup_ratio,  # transformers 5: a value below 1 is a share of the steps
        save_strategy="no",
    )
    # TensorBoard's callback reads its folder from the environment when the trainer is built; set it
    # only for that moment, so a later stage in the same process does not write into ours.
    with _environ(TENSORBOARD_LOGGING_DIR=str(out / "logs")):
        trainer = _text_safe(DPOTrainer)(model=model, ref_model=None, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                             processing_class=tokenizer, peft_config=fresh_lora(config, kind))
    # With a soft prompt, TRL copies it as the adapter "ref" (the reference), which PEFT adds trainable.
    for name, p in trainer.model.named_parameters():
        if ".ref." in name:
            p.requires_grad_(False)
    return trainer


def _text_safe(trainer_class):
    """TRL's DPOTrainer with the pairs tokenized by `tokenize_pairs` instead of its own chat-template
    tokenization, which turns a `<|im_end|>` written inside a completion into a real end-of-turn."""

    class TextSafeDPOTrainer(trainer_class):
        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            return tokenize_pairs(dataset, processing_class, args.max_length if args.truncation_mode == "keep_start" else None)

    return TextSafeDPOTrainer


def tokenize_pairs(dataset, tokenizer, max_prompt_length: int | None = None):
    """Conversational pairs -> TRL's tokenized columns `prompt_ids`, `chosen_ids`, `rejected_ids`,
    message text kept as text (`rlhf.tokens.encode_prompt_completion`). As in TRL, a pair whose
    prompt alone fills `max_prompt_length` tokens is dropped (no completion token would remain)."""
    from rlhf.tokens import encode_prompt_completion

    def tokenize(row):
        chosen, n_chosen = encode_prompt_completion(tokenizer, row["prompt"], row["chosen"])
        rejected, n_rejected = encode_prompt_completion(tokenizer, row["prompt"], row["rejected"])
        n = min(n_chosen, n_rejected)
        return {"prompt_ids": chosen[:n], "chosen_ids": chosen[n:], "rejected_ids": rejected[n:]}

    dataset = dataset.map(tokenize)
    if max_prompt_length is not None:
        dataset = dataset.filter(lambda row: len(row["prompt_ids"]) < max_prompt_length)
    return dataset


@contextmanager
def _environ(**values: str):
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# --- 3b. gold against proxy ----------------------------------------------------------------------


def check_gold_settings(config: DPOStageConfig) -> None:
    """Fail before anything loads: raises rlhf.stages.ConfigError for an unknown `gold_preference`
    (naming the known ones), `gold_prompts` < 1 or `gold_steps` < 0."""
    from rlhf.labelers import get_preference
    from rlhf.stages import ConfigError

    if not config.gold_preference:
        return
    get_preference(config.gold_preference)
    if config.gold_prompts < 1:
        raise ConfigError(f"--gold_prompts must be at least 1 (got {config.gold_prompts})")
    if config.gold_steps < 0:
        raise ConfigError(f"--gold_steps must be 0 (only before the first and after the last step) or more (got {config.gold_steps})")


def gold_view(config: DPOStageConfig, kind: str, tokenizer, dataset, split: str, world_size: int = 1):
    """The `GoldView` that `config.gold_preference` asks for, on the first `config.gold_prompts`
    distinct prompts of `dataset` (a pairs Dataset: "prompt", "chosen", "rejected" message lists) and
    every pair of those prompts; None when it is off or cannot run (said on the console): a soft-prompt
    SFT output has no adapter to turn off for the reference, and more than one process would each
    generate."""
    from rlhf.generation import Generation
    from rlhf.labelers import get_preference
    from rlhf.tokens import encode_prompt_completion

    if not config.gold_preference:
        return None
    if kind == "prompt-learning" or world_size > 1:
        why = "a prompt/prefix-tuning SFT output" if kind == "prompt-learning" else f"{world_size} processes"
        print(f"[rlhf dpo] gold view off: not available with {why} (single-process LoRA runs only)")
        return None
    prompts, keys, pairs, sequences, index = [], {}, [], [], {}
    for row in dataset:
        key = json.dumps(row["prompt"], sort_keys=True)
        if key not in keys and len(prompts) < config.gold_prompts:
            keys[key] = len(prompts)
            prompts.append(row["prompt"])
        if key in keys:  # (chosen, rejected) as indices into the distinct (prompt, answer) sequences
            pair = []
            for side in ("chosen", "rejected"):
                answer = (key, json.dumps(row[side], sort_keys=True))
                if answer not in index:  # K answers of a prompt make up to K(K-1)/2 pairs: score each once
                    ids, n = encode_prompt_completion(tokenizer, row["prompt"], row[side])
                    index[answer] = len(sequences)
                    sequences.append(Generation("", True, ids[n:], ids[:n]))
                pair.append(index[answer])
            pairs.append(tuple(pair))
    return GoldView(get_preference(config.gold_preference), prompts, (sequences, pairs), tokenizer, config.beta,
                    Path(config.output_dir),
                    every=config.gold_steps, max_new_tokens=config.gold_max_new_tokens, seed=config.seed,
                    name=config.gold_preference, split=split)


class GoldView:
    """Gold against proxy for DPO, live (`as_callback()` hooks it into the Trainer). DPO has no reward
    model to over-optimise, but it has a proxy all the same: its implicit reward model, beta * (log pi -
    log pi_ref), fitted to the labels. Before the first step, every `every` optimizer steps and after
    the last, one row goes to `output_dir/gold.jsonl`:

    - `reward/gold`: the mean of `gold_fn(prompt messages, answer)`, the labels' own rule, over the
      policy's answers to `prompts` (one sample each, temperature 1, no top-k, the same seed every time
      so the steps differ by the policy, not the draw);
    - `reward/margin`, `reward/accuracy`: the proxy, the implicit reward's margin beta * ((log pi -
      log pi_ref)(chosen) - (log pi - log pi_ref)(rejected)), each summed over the answer's tokens
      (Rafailov et al. 2023), and the share of pairs it puts the right way, over `pairs` (the labelled
      pairs of those prompts): how well DPO fits the labels where it was not trained;
    - `kl/mean`: the mean of log pi - log pi_ref per answer over the policy's own answers, nats (an
      estimate of KL(pi || pi_ref); 0 before the first step, the fresh LoRA starting at zero);
    - `length/tokens`, `length/finished`: answer length and the share that ended by themselves.

    Gao et al. (2023)'s picture for DPO (Rafailov et al. 2024, "Scaling laws for reward model
    over-optimization in direct alignment algorithms"): the margin keeps rising with KL while gold
    stalls or falls. The reference is the same model with the DPO LoRA turned off (`disable_adapter`),
    the SFT policy. At the end it writes plots/gold_vs_proxy_steps.png and _kl.png (`rlhf.plots`).
    Rows are in `rows`, the measurements' own time in `seconds`; nothing here changes the update
    (the model's mode and the random streams are restored)."""

    def __init__(self, gold_fn, prompts: list, labelled: tuple, tokenizer, beta: float, output_dir: Path, every: int = 5,
                 max_new_tokens: int = 64, seed: int = 0, name: str = "gold", split: str = "held-out"):
        # labelled = (sequences, pairs): the distinct (prompt, answer) Generations, and (chosen, rejected)
        # index pairs into them.
        self.sequences, self.pairs = labelled
        self.gold_fn, self.prompts, self.tokenizer, self.beta = gold_fn, prompts, tokenizer, beta
        self.output_dir, self.every, self.max_new_tokens, self.seed = Path(output_dir), every, max_new_tokens, seed
        self.name, self.split, self.rows, self.seconds = name, split, [], 0.0
        self._reference_sequences = None  # (n_sequences,) reference log-probs: the reference never changes

    def measure(self, model, step: int) -> dict:
        """One row (see the class doc) for `model` (a PeftModel) at optimizer step `step`."""
        started, was_training = time.time(), model.training
        try:
            row = self._measure(model, step)
        finally:
            model.train(was_training)
        self.seconds += time.time() - started
        self.rows.append(row)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        with open(self.output_dir / "gold.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"[rlhf dpo] step {step}: gold ({self.name}) {row['reward/gold']:.3f}; implicit reward margin "
              f"{row['reward/margin']:.3f}, accuracy {row['reward/accuracy']:.3f} on {len(self.pairs)} {self.split} "
              f"pairs; KL {row['kl/mean']:.3f} nats on {len(self.prompts)} answers")
        return row

    def _measure(self, model, step: int) -> dict:
        import torch

        from rlhf.generation import generate, sequence_logprobs

        pad_id = self.tokenizer.pad_token_id
        device = next(model.parameters()).device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):  # the training's stream stays
            gens = [row[0] for row in generate(model, self.tokenizer, self.prompts, max_new_tokens=self.max_new_tokens,
                                               seed=self.seed, progress=False)]
        policy, policy_sequences = sequence_logprobs(model, gens, pad_id), sequence_logprobs(model, self.sequences, pad_id)
        with model.disable_adapter():
            reference = sequence_logprobs(model, gens, pad_id)  # (n,)
            if self._reference_sequences is None:
                self._reference_sequences = sequence_logprobs(model, self.sequences, pad_id)
        log_ratio = policy - reference  # (n,) nats per answer
        implicit = self.beta * (policy_sequences - self._reference_sequences)  # (n_sequences,)
        index = torch.tensor(self.pairs, dtype=torch.long).view(-1, 2)  # (pairs, [chosen, rejected])
        margin = implicit[index[:, 0]] - implicit[index[:, 1]]  # (pairs,)
        gold = [float(self.gold_fn(p, g.text)) for p, g in zip(self.prompts, gens)]
        # Every chosen prompt brought at least the pair it was found in: `margin` is never empty.
        return {"step": step, "reward/gold": sum(gold) / len(gold), "reward/margin": float(margin.mean()),
                "reward/accuracy": float((margin > 0).float().mean()),
                "kl/mean": float(log_ratio.mean()), "length/tokens": sum(len(g.token_ids) for g in gens) / len(gens),
                "length/finished": sum(g.finished for g in gens) / len(gens)}

    def finish(self, model, step: int) -> None:
        """After the last step: measure it (unless done) and draw the two plots."""
        from rlhf.plots import plot_gold_vs_proxy

        if not self.rows or self.rows[-1]["step"] != step:
            self.measure(model, step)
        plot_gold_vs_proxy(self.rows, self.output_dir / "plots", proxy="reward/margin", steps_label="DPO step",
                           title="DPO implicit reward margin, held out (proxy) vs gold (labels' rule)")

    def as_callback(self):
        """A transformers TrainerCallback that measures at train begin, every `every` steps and at
        train end."""
        from transformers import TrainerCallback

        view = self

        class GoldCallback(TrainerCallback):
            def on_train_begin(self, args, state, control, model=None, **kwargs):
                (view.output_dir / "gold.jsonl").unlink(missing_ok=True)
                view.rows.clear()
                view.measure(model, state.global_step)

            def on_step_end(self, args, state, control, model=None, **kwargs):
                if view.every > 0 and state.global_step % view.every == 0:
                    view.measure(model, state.global_step)

            def on_train_end(self, args, state, control, model=None, **kwargs):
                view.finish(model, state.global_step)

        return GoldCallback()

    def summary(self) -> dict:
        """metrics.json's `gold`: the preference, the first and the last row, how many were taken and
        their seconds (not counted in train_seconds)."""
        return {"preference": self.name, "prompts": len(self.prompts), "pairs": len(self.pairs),
                "answers": len(self.sequences), "split": self.split,
                "first": self.rows[0], "last": self.rows[-1], "measurements": len(self.rows),
                "seconds": round(self.seconds, 2)} if self.rows else {}


# --- 4. saving ---------------------------------------------------------------------------------


def save_policy(model, tokenizer, out: str | Path) -> Path:
    """Write the DPO policy so that `rlhf.load_causal_lm(out)` loads it (see the module doc).
    Merges the DPO LoRA into `model` in place; returns `out`."""
    from rlhf.adapters import adapter_kind, save_adapter

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if adapter_kind(model) == "peft" and model.active_peft_config.is_prompt_learning:
        save_adapter(model, out, "default")
        tokenizer.save_pretrained(out)
        return out
    merged = model.merge_and_unload() if adapter_kind(model) == "peft" else model
    if adapter_kind(merged) in ("series", "parallel"):
        # The bottleneck cannot be merged (it is not linear): merged weights in base/, adapter beside.
        base_dir = out / "base"
        weights = {k: v for k, v in merged.state_dict().items() if ".bottleneck." not in k}
        _save_plain(merged, tokenizer, base_dir, state_dict=weights)
        save_adapter(merged, out)
        config_path = out / "adapter_config.json"
        adapter_config = json.loads(config_path.read_text())
        adapter_config["base_model_name_or_path"] = "base"
        config_path.write_text(json.dumps(adapter_config, indent=2) + "\n")
        tokenizer.save_pretrained(out)
        return out
    _save_plain(merged, tokenizer, out)
    return out


def _save_plain(model, tokenizer, path: Path, **kwargs) -> None:
    model.save_pretrained(path, **kwargs)  # a GGUF policy is fine too: load_causal_lm made it serializable
    tokenizer.save_pretrained(path)


# --- the stage ---------------------------------------------------------------------------------


def run_dpo(config: DPOStageConfig) -> Path:
    """Train and save; returns the output folder. Steps:
    1 read the rankings into pairs (every bad row is an error before any model loads), 2 load the SFT
    policy once and add a fresh LoRA, 3 train with DPOTrainer, 4 evaluate on held-out prompts,
    5 save the merged DPO policy, tokenizer, config and metrics."""
    out = Path(config.output_dir)
    trainer = build_trainer(config)  # steps 1-2
    info = trainer.rlhf_info
    print(f"[rlhf dpo] {info['train_pairs']} training pairs from {info['rankings']} rankings "
          f"({info['eval_pairs']} eval pairs); SFT policy: {info['sft_kind']}"
          + (f"; skipped {info['bad_rows']} malformed rows" if info["bad_rows"] else "")
          + (f"; {info['tie_only_rankings']} rankings are a single tie (no pair)" if info.get("tie_only_rankings") else ""))

    # 3. Train.
    started = time.time()
    result = trainer.train()
    gold = trainer.rlhf_gold
    seconds = time.time() - started - (gold.seconds if gold is not None else 0.0)  # gold's time: metrics gold.seconds

    # 4. Evaluate.
    eval_metrics = trainer.evaluate() if trainer.eval_dataset is not None else {}

    # 5. Save (never weights holding NaN or inf: a good earlier output stays as it was).
    from rlhf.finite import check_finite_weights

    if trainer.is_world_process_zero():
        policy = trainer.accelerator.unwrap_model(trainer.model)
        check_finite_weights(policy, "rlhf dpo", out)
        save_policy(policy, trainer.processing_class, out)
        if (out / "checkpoints").is_dir() and not any((out / "checkpoints").iterdir()):
            (out / "checkpoints").rmdir()  # Trainer makes it; with save_strategy="no" it stays empty
        metrics = _metrics(trainer, result, eval_metrics, seconds)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
        save_resolved_config("dpo", config, out, learning_rate=trainer.args.learning_rate, sft_kind=info["sft_kind"])
        print(f"[rlhf dpo] saved the DPO policy to {out} (eval reward accuracy "
              f"{metrics.get('eval_reward_accuracy', float('nan')):.3f}, margin {metrics.get('eval_reward_margin', float('nan')):.3f})")
    return out


# metrics.json name -> TRL's log name. rewards are beta * log(pi / pi_ref) of the completion; accuracy
# is the share of pairs whose chosen reward beats the rejected one, margin the mean difference.
TRL_METRICS = {
    "reward_accuracy": "rewards/accuracies",
    "reward_margin": "rewards/margins",
    "reward_chosen": "rewards/chosen",
    "reward_rejected": "rewards/rejected",
    "logps_chosen": "logps/chosen",
    "logps_rejected": "logps/rejected",
}


def _metrics(trainer, result, eval_metrics: dict, seconds: float) -> dict[str, Any]:
    info = trainer.rlhf_info
    history = trainer.state.log_history
    last_train = next((h for h in reversed(history) if "loss" in h and "rewards/accuracies" in h), {})
    metrics: dict[str, Any] = {
        "sft_kind": info["sft_kind"],
        "beta": trainer.args.beta,
        "learning_rate": trainer.args.learning_rate,
        "train_loss": result.training_loss,
        "steps": result.global_step,
        "train_seconds": round(seconds, 2),
        "seconds_per_step": round(seconds / max(result.global_step, 1), 3),
        **{k: info[k] for k in ("rankings", "bad_rows", "tie_only_rankings", "train_pairs", "eval_pairs", "train_prompts", "eval_prompts", "device",
                                "data_loss")},
    }
    metrics.update({f"train_{k}": last_train[v] for k, v in TRL_METRICS.items() if v in last_train})
    if "eval_loss" in eval_metrics:
        metrics["eval_loss"] = eval_metrics["eval_loss"]
    metrics.update({f"eval_{k}": eval_metrics[f"eval_{v}"] for k, v in TRL_METRICS.items() if f"eval_{v}" in eval_metrics})
    gold = trainer.rlhf_gold
    if gold is not None and gold.rows:
        metrics["gold"] = gold.summary()
    metrics["log_history"] = history
    return metrics
