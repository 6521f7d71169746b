"""`RewardConfig`: every setting of `rlhf reward`, documented once (the help text is the CLI --help)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from rlhf.adapters import resolve_learning_rate
from rlhf.stages import max_steps_problems, number_problems

# Per-mode learning rates when none is given. A LoRA and a freshly drawn head need a far larger step
# than full fine-tuning. On SmolLM2-135M, one epoch (20 steps of 8 pairs) of 160 human-like pairs
# whose label depends on content, three seeds: held-out accuracy 0.514 at 3e-4, 0.578 at 1e-3, 0.628
# at 3e-3 (TRL's RewardTrainer at the same settings: 0.511, 0.553, 0.625; benchmarks/reward_quality.py),
# and on 64 synthetic K=4 rankings (64 steps) 3e-3 kept 1.000 held-out accuracy where 3e-4 gave 0.99
# and 1e-4 0.83 (benchmarks/reward_speed.py). Full fine-tuning follows InstructGPT's reward model
# (9e-6 for 6B), rounded to 1e-5; partial sits between.
DEFAULT_LEARNING_RATES = {"lora": 3e-3, "partial": 3e-5, "full": 1e-5}

# Strict pairs per optimizer step when batch_size is None (TRL's RewardTrainer default batch: 8 pairs).
# Rankings of K=4 (6 pairs) train best at 1-2 per step (benchmarks/reward_speed.py); on pair data,
# 2 pairs per step took 15% more CPU time per epoch than 8 and was no more accurate (one seed,
# benchmarks/reward_quality.py).
PAIRS_PER_STEP = 8


@dataclass
class RewardConfig:
    """Train a scalar reward model on K-way rankings (ties allowed) or chosen/rejected pairs.

    Every completion of a ranking is scored in one forward pass and all ordered pairs are formed from
    those scores (InstructGPT), so a ranking of K costs K sequences, not 2*C(K,2)."""

    data: str = field(
        default="",
        metadata={"help": "Rankings (prompt, completions, ranking, ...), K completions with ratings, or pairs in TRL's "
                  "four layouts, HH-RLHF or UltraFeedback-binarized: a JSONL or Parquet file or a datasets folder."},
    )
    output_dir: str = field(default="runs/reward", metadata={"help": "Where the reward model, metrics and logs go."})
    model: Optional[str] = field(
        default=None,
        metadata={"help": "Starting model: a causal LM folder, hub id, .gguf file, or an SFT output (a PEFT adapter "
                  "folder is merged into its base). None = the embedded default SmolLM2-135M-Instruct."},
    )
    train: Literal["lora", "partial", "full"] = field(
        default="lora",
        metadata={"help": "What to train: 'lora' (LoRA on every linear layer of the transformer, the head in "
                  "full), 'partial' (the last `partial_layers` blocks, final norm and head) or 'full'."},
    )
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (scale = alpha / r)."})
    partial_layers: int = field(default=2, metadata={"help": "Blocks trained with train=partial (the last N)."})
    learning_rate: Optional[float] = field(
        default=None,
        metadata={"help": "AdamW learning rate. None = 3e-3 for lora, 3e-5 for partial, 1e-5 for full."},
    )
    epochs: int = field(
        default=1,
        metadata={"help": "Passes over the training rankings: 1 as in InstructGPT, but examples/quickstart.yaml uses 3, "
                  "better on unseen prompts for 6 of the preference suite's 7 preferences (README)."},
    )
    max_steps: Optional[int] = field(
        default=None,
        metadata={"help": "Stop after this many optimizer steps (overrides epochs when set; None or -1 = run epochs)."},
    )
    batch_size: Optional[int] = field(
        default=None,
        metadata={"help": "Rankings per forward pass; all K completions of each are scored together (2 rankings of "
                  "K=4 = 8 sequences, 12 pairs). None = as many rankings as hold about 8 strict pairs (TRL's "
                  "default batch of 8 pairs): 8 pairs, or 1 ranking of K=4 (README: reward model). Leave it unset for that; 0 is refused."},
    )
    grad_accum: int = field(default=1, metadata={"help": "Forward passes per optimizer step."})
    warmup_ratio: float = field(default=0.05, metadata={"help": "Share of steps with a linearly rising learning rate."})
    max_length: int = field(
        default=512,
        metadata={"help": "Tokens per conversation+completion. Longer ones lose the prompt's oldest turns first (a "
                  "system message stays), then the prompt's oldest tokens, and the completion's tail last; a ranking "
                  "whose chosen and rejected become identical is dropped. All counted in metrics.json (data_loss)."},
    )
    max_prompt_length: Optional[int] = field(
        default=None,
        metadata={"help": "Cap on the conversation's tokens (oldest turns, then oldest tokens go first). None = "
                  "whatever max_length leaves after the completion."},
    )
    share_prompt: bool = field(
        default=True,
        metadata={"help": "Run each ranking's conversation once for its K completions (its KV cache reused, gradients "
                  "through it) instead of once per completion: the same scores and gradients, less compute. Off "
                  "under fsdp (plain forward)."},
    )
    margin_from_scores: bool = field(
        default=False,
        metadata={"help": "Use score_chosen - score_rejected (UltraFeedback-binarized), or |preference_strength| "
                  "(HelpSteer2), as each pair's margin. SHP rows are refused with it (their scores are upvote counts)."},
    )
    eval_fraction: float = field(
        default=0.1,
        metadata={"help": "Share of prompts held out for evaluation (split by prompt: no prompt on both sides)."},
    )
    seed: int = field(default=0, metadata={"help": "Seed for the split, the head's initialisation and data order."})
    merge_labelers: bool = field(
        default=False,
        metadata={"help": "Merge several labelers' rankings of one item into a consensus (mean fractional rank "
                  "per completion; equal means form a tie). Default: each labeler's ranking is its own row."},
    )
    tie_loss: Literal["none", "davidson", "rao_kupper"] = field(
        default="none",
        metadata={"help": "'none': ties give no pair (Bradley-Terry on strict pairs). 'davidson' or 'rao_kupper': "
                  "Bradley-Terry with ties, ties add a term (see rlhf/reward/loss.py for the formulas)."},
    )
    tie_strength: float = field(
        default=1.0,
        metadata={"help": "Tie parameter: nu for davidson (P(tie | equal scores) = nu/(2+nu)), alpha = log(theta) "
                  "for rao_kupper."},
    )
    center_rewards_coefficient: Optional[float] = field(
        default=None,
        metadata={"help": "Adds coef * (2 * mean score of a ranking)^2 to the loss (TRL's center_rewards_coefficient, "
                  "Eisenstein et al. 2023 use 0.01): rewards stay centred near 0. None = off."},
    )
    skip_bad_rows: bool = field(
        default=False, metadata={"help": "Skip and count malformed rows (in metrics.json) instead of stopping."}
    )
    calibration_data: Optional[str] = field(
        default=None,
        metadata={"help": "Completions that set the reward scale after training: rewards are (raw + bias) / std with "
                  "mean 0 and std 1 on them. None or 'train' = every completion of the training rankings (your "
                  "prompts, the answers you ranked); 'chosen' = the top tier of each ranking; 'demonstrations' = "
                  "the shipped demonstrations; a path = a demonstrations file; 'none' = raw scores."},
    )
    resume: bool = field(default=False, metadata={"help": "Continue from output_dir/checkpoint if it exists."})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "Start over in an output_dir that holds checkpoints of an unfinished run, deleting them (without this, such a run is refused unless --resume true)."})
    save_steps: int = field(
        default=0, metadata={"help": "Also checkpoint every N optimizer steps (0 = at the end of each epoch only)."}
    )
    logging_steps: int = field(default=5, metadata={"help": "Write TensorBoard scalars every N optimizer steps."})
    device: Optional[str] = field(default=None, metadata={"help": "cpu, cuda, cuda:1 ... None = cuda if available."})
    fsdp: bool = field(default=False, metadata={"help": "Train over the processes of a torchrun launch, the model sharded with torch's FSDP2 (fully_shard per decoder layer) and each optimizer step's rankings split between the processes; train=full only. CPU (gloo) and GPU (NCCL)."})

    def __post_init__(self):
        if self.max_steps == -1:  # the other stages' "no step limit", accepted here too
            self.max_steps = None
        problems = max_steps_problems(self.max_steps, self.epochs)
        problems += number_problems(self, at_least_1=("batch_size", "grad_accum", "lora_r", "logging_steps",
                                                      "max_prompt_length"),
                                    at_least_0=("partial_layers", "save_steps", "center_rewards_coefficient"),
                                    positive=("learning_rate", "lora_alpha", "tie_strength"),
                                    fraction=("warmup_ratio", "eval_fraction"))
        if not self.max_length >= 2:
            problems.append(f"max_length must be >= 2 (a prompt token and a completion token; got {self.max_length})")
        if problems:
            raise ValueError("RewardConfig: " + "; ".join(problems))

    def resolved_learning_rate(self) -> float:
        return resolve_learning_rate(self.learning_rate, DEFAULT_LEARNING_RATES, self.train)
