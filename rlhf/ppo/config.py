"""`PPOConfig`: every setting of `rlhf ppo`, documented once (the help text is the CLI --help and
the YAML key of `rlhf pipeline`).

Defaults follow InstructGPT (Ouyang et al. 2022) and "The N+ Implementation Details of RLHF with
PPO" (Huang et al. 2024, "N+" below); each field says where its default comes from.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal, Optional

from rlhf.adapters import resolve_learning_rate

# LoRA needs a larger step than full fine-tuning: 1e-4 moved SmolLM2-135M in tens of steps
# (docs/notes.md#ppo-lora-lr); full fine-tuning follows N+ (3e-6 at 1B), raised for a 135M model.
DEFAULT_LEARNING_RATES = {"lora": 1e-4, "full": 1e-5}
MAX_MICRO_BATCH = 8  # completions per forward/backward when grad_accum is None


@dataclass
class PPOConfig:
    """PPO of the policy against a reward model (or any Python reward function).

    Each step: generate `batch_size` completions -> score them -> reward = score at the last
    token - kl_coef * KL per token -> GAE advantages -> `ppo_epochs` passes of clipped PPO.
    `advantage_estimator` swaps the GAE step for a critic-free one (GRPO, Dr. GRPO, RLOO,
    REINFORCE++), which samples `num_generations` completions per prompt and builds no critic."""

    # --- what to train, against what -----------------------------------------------------------
    policy: Optional[str] = field(
        default=None,
        metadata={"help": "The SFT policy: an SFT output folder (any adapter, or a full model), a model folder, hub "
                  "id or .gguf file. It is also the KL reference. None = the embedded default SmolLM2-135M-Instruct."},
    )
    reward_model: Optional[str] = field(
        default=None,
        metadata={"help": "A reward model folder written by `rlhf reward` (its stored bias and std normalise the "
                  "scores). Research code can pass reward_fn=... to PPOTrainer instead."},
    )
    reward_preference: Optional[str] = field(
        default=None,
        metadata={"help": "A rule as the reward instead of a reward model: a preference of rlhf.labelers by name "
                  "(concise, detailed, ...) or `package.module:function`, called as fn(prompt, completion) -> float "
                  "for each completion (prompt: the last user message's text, or the conversation for a rule that "
                  "takes conversations; a rule naming prompt_id also gets the prompt's id, and one naming a column "
                  "of the prompts file, e.g. fn(prompt, completion, answer), its prompt's value there), like TRL's "
                  "reward_funcs: a verifiable reward, or the oracle of the preference suite (PPO against the very "
                  "rule the labels came from). normalize_reward is then on by default. Not with reward_model or "
                  "critic=reward."},
    )
    prompts: Optional[str] = field(
        default=None,
        metadata={"help": "Prompts file (JSONL/Parquet/CSV/datasets folder, rows with `prompt` or `messages`, an "
                  "optional `id`). A row's other fields (e.g. a reference `answer`) reach the reward function or "
                  "rule by name, one value per completion, None where a row lacks one (TRL's GRPOTrainer passes "
                  "dataset columns so). None = the built-in prompts_train set."},
    )
    output_dir: str = field(default="runs/ppo", metadata={"help": "Where the policy, checkpoints, metrics and plots go."})
    policy_train: Literal["lora", "full"] = field(
        default="lora",
        metadata={"help": "'lora': a fresh LoRA on the SFT policy (an SFT LoRA/DoRA/IA3 is merged first; a series, "
                  "parallel, prompt or prefix adapter is copied and the copy trained), so switching it off gives "
                  "the reference and one base model stays in memory. 'full': every weight trains and the "
                  "reference is a frozen copy."},
    )
    lora_r: int = field(default=16, metadata={"help": "Rank of the policy's LoRA."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (update scaled by alpha / r)."})
    lora_target_modules: Optional[list[str]] = field(
        default=None, metadata={"help": "Linear layers that get LoRA. None = every linear layer of the blocks."}
    )
    critic: Literal["auto", "reward", "value-head"] = field(
        default="auto",
        metadata={"help": "'reward': the critic is a copy of the reward model (InstructGPT, N+); with "
                  "policy_train=lora it is a LoRA on the reward model itself, so no second copy is held. "
                  "'value-head': a linear head on the policy's own last hidden state, read detached so the value "
                  "loss never moves the policy (memory-light; generation gives log-probs and values in one pass). "
                  "'auto' = reward with policy_train=full and a reward model, else value-head: with a LoRA policy "
                  "the value head was 1.4x faster per step at 2/3 of the memory and raised the score at least as "
                  "fast on the embedded default (benchmarks/results/ppo_speed.md, quickstart.json)."},
    )
    advantage_estimator: Literal["gae", "grpo", "dr_grpo", "rloo", "reinforce++", "reinforce++_baseline"] = field(
        default="gae",
        metadata={"help": "How advantages are estimated (OpenRLHF's and verl's names). 'gae': PPO with a critic "
                  "(InstructGPT, N+). Critic-free, no value model built: 'grpo' (DeepSeekMath: (r - group mean) / "
                  "group std), 'dr_grpo' (Liu et al. 2025: r - group mean), 'rloo' (Ahmadian et al. 2024: r minus the "
                  "mean of the other completions of its prompt), 'reinforce++' (Hu 2025: returns normalised over the "
                  "batch), 'reinforce++_baseline' (group mean subtracted first). All but gae and reinforce++ need "
                  "num_generations >= 2."},
    )
    num_generations: int = field(
        default=1,
        metadata={"help": "G, completions sampled per prompt (TRL's name); a step uses batch_size / G prompts per "
                  "process, and a prompt's G completions stay together in every minibatch and process. >= 2 for the "
                  "group estimators."},
    )
    scale_rewards: Optional[Literal["group", "batch", "none"]] = field(
        default=None,
        metadata={"help": "grpo's divisor (TRL's name and values): 'group' divides r - group mean by the group's std "
                  "(DeepSeekMath), 'batch' by the std of every reward of the batch, all processes together (groups "
                  "keep their spreads relative to each other; Liu et al. 2025, 'Tricks or Traps?'), "
                  "'none' by nothing (= dr_grpo's advantages). None = 'group' for grpo, 'none' for dr_grpo; "
                  "only for those two. TRL's booleans are read as it reads them (a YAML or Python True = 'group', "
                  "False = 'none')."},
    )
    use_kl_loss: Optional[bool] = field(
        default=None,
        metadata={"help": "Put the KL to the reference in the loss (kl_loss_estimator, weight kl_loss_coef; GRPO) instead of "
                  "in the reward (weight kl_coef; PPO, RLOO, REINFORCE++). None = the estimator's paper: True for "
                  "grpo and dr_grpo, False otherwise (verl's and OpenRLHF's name)."},
    )
    kl_loss_coef: float = field(
        default=0.04, metadata={"help": "Weight of the KL loss term when use_kl_loss (DeepSeekMath GRPO: 0.04)."}
    )
    loss_agg_mode: Optional[Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"]] = field(
        default=None,
        metadata={"help": "How token losses are averaged (verl's names): 'token-mean' (every token weighs the same), "
                  "'seq-mean-token-mean' (per completion, then over completions), 'seq-mean-token-sum-norm' (token "
                  "sums / max_new_tokens, then over completions). None = the estimator's paper: seq-mean-token-mean "
                  "for grpo (DeepSeekMath), seq-mean-token-sum-norm for dr_grpo (Dr. GRPO), token-mean otherwise."},
    )
    value_warmup_steps: int = field(
        default=0, metadata={"help": "First steps train only the critic (the policy update is skipped)."}
    )

    # --- rollout -------------------------------------------------------------------------------
    steps: int = field(default=200, metadata={"help": "PPO steps (one batch of rollouts each)."})
    batch_size: int = field(default=8, metadata={"help": "Completions generated per step, per process."})
    generation_batch_size: Optional[int] = field(
        default=None, metadata={"help": "Completions per generate() call (memory bound). None = batch_size."}
    )
    max_new_tokens: int = field(default=53, metadata={"help": "Longest completion, in tokens (N+: 53)."})
    temperature: float = field(
        default=0.7,
        metadata={"help": "Sampling temperature; policy and reference log-probs use it too (N+: 0.7)."},
    )
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling cut (1.0 = sample the full distribution)."})
    missing_eos_penalty: Optional[float] = field(
        default=None,
        metadata={"help": "Score given to a completion that ends without a stop token (N+ uses -1). None = score it "
                  "as it is; with short max_new_tokens most completions are cut, so this is opt-in."},
    )
    mask_truncated_completions: bool = field(
        default=False,
        metadata={"help": "Leave completions that end without a stop token (cut at max_new_tokens) out of the loss: "
                  "their tokens weigh 0 in the policy, value and KL losses, while their scores still count in the "
                  "group and batch statistics (DAPO's overlong filtering, Yu et al. 2025; TRL's name). A cut answer "
                  "is scored on text it never finished, so its advantage is noise for the tokens that made it. The "
                  "share left out is logged as ppo/masked_truncated. Off by default, as TRL."},
    )
    score_clip: Optional[float] = field(
        default=None, metadata={"help": "Clip scores to [-score_clip, score_clip] after normalisation. None = no clip."}
    )
    reward_batch_size: int = field(default=16, metadata={"help": "Completions per reward-model forward pass."})
    normalize_reward: Optional[bool] = field(
        default=None,
        metadata={"help": "Train on (score - running mean) / running std of every score seen so far (Engstrom et al. "
                  "2020; OpenRLHF's normalize_reward uses the reward model's stored mean and std instead), so a "
                  "reward paying in thousands learns as one paying in "
                  "units. None = on with a reward_fn, off with a reward model (already on unit scale by its stored "
                  "std). Metrics keep the reward's own units; missing_eos_penalty and score_clip apply after it."},
    )

    # --- PPO -----------------------------------------------------------------------------------
    learning_rate: Optional[float] = field(
        default=None, metadata={"help": "Adam learning rate. None = 1e-4 for lora, 1e-5 for full."}
    )
    adam_eps: Optional[float] = field(
        default=None,
        metadata={"help": "Adam's epsilon. None = 1e-5 for gae (N+) and 1e-8 for the critic-free estimators (torch's "
                  "and TRL's GRPOConfig default, as in OpenRLHF and verl). LoRA gradients are small: on the embedded "
                  "default a GRPO step's per-parameter gradient had a median of 2e-6, so eps=1e-5 would shrink most "
                  "updates several-fold (docs/notes.md#adam-epsilon)."},
    )
    ppo_epochs: int = field(default=4, metadata={"help": "Passes over each batch of rollouts (N+: 4)."})
    num_minibatches: int = field(default=1, metadata={"help": "Optimizer steps per PPO epoch."})
    grad_accum: Optional[int] = field(
        default=None,
        metadata={"help": "Micro-batches per minibatch (gradient accumulation): one forward/backward each, one "
                  "optimizer step per minibatch. None = as few as keep a micro-batch at <= 8 completions (TRL's "
                  "per_device_train_batch_size default), whole groups: on CPU, 32 completions in micro-batches of 8 "
                  "peaked at 0.43 of the memory of one pass and were not slower (benchmarks/critic_free_speed.py)."},
    )
    max_grad_norm: float = field(
        default=1.0,
        metadata={"help": "Clip the policy's and the critic's gradient norms to this, each on its own (OpenRLHF "
                  "clips actor and critic separately): a large value loss must not shrink the policy's step."},
    )
    kl_coef: float = field(default=0.05, metadata={"help": "beta, the KL penalty per token (N+: 0.05; InstructGPT: 0.02)."})
    kl_estimator: Literal["k1", "k2", "k3"] = field(
        default="k1", metadata={"help": "Per-token KL estimate in the reward and kl/mean: k1 = log p - log q (N+), k2 = "
                              "(log p - log q)^2 / 2, k3 = never negative, at most 10 per token (verl's clamp)."}
    )
    kl_loss_estimator: Literal["k1", "k2", "k3"] = field(
        default="k3", metadata={"help": "The KL estimator of the loss term when use_kl_loss: k3 (DeepSeekMath GRPO, "
                                "verl's low_var_kl) or k2, whose gradient is that of KL(policy || reference) itself "
                                "(Tang & Munos 2025; verl's 'mse'). k1 as a loss has zero gradient in expectation."}
    )
    adaptive_kl: bool = field(
        default=False, metadata={"help": "Adapt beta toward target_kl (Ziegler et al. 2019) instead of keeping it fixed."}
    )
    target_kl: float = field(default=6.0, metadata={"help": "Adaptive KL target, nats per completion (Ziegler: 6)."})
    kl_horizon: int = field(default=10000, metadata={"help": "Adaptive KL horizon, in completions (Ziegler: 10000)."})
    gamma: float = field(
        default=1.0, metadata={"help": "Discount of GAE and of the REINFORCE++ returns (N+: 1.0; OpenRLHF forces 1.0 "
                               "for reinforce++_baseline)."}
    )
    lam: float = field(default=0.95, metadata={"help": "GAE lambda (N+: 0.95)."})
    cliprange: float = field(default=0.2, metadata={"help": "PPO ratio clip epsilon (N+: 0.2)."})
    cliprange_high: Optional[float] = field(
        default=None,
        metadata={"help": "Upper clip epsilon: the ratio is clipped to [1 - cliprange, 1 + cliprange_high]. A larger "
                  "value is DAPO's Clip-Higher (Yu et al. 2025: 0.28; TRL's epsilon_high, verl's clip_ratio_high), so "
                  "unlikely tokens can gain probability faster and entropy collapses later. None = cliprange "
                  "(symmetric, PPO)."},
    )
    dual_clip: Optional[float] = field(
        default=None,
        metadata={"help": "Dual-clip PPO (Ye et al. 2020): cap the loss of a token with a negative advantage at -A * "
                  "dual_clip, so a ratio far above 1 cannot dominate the step (> 1; OpenRLHF's --dual_clip, verl's "
                  "clip_ratio_c = 3.0). None = off (TRL, N+)."},
    )
    cliprange_value: float = field(default=0.2, metadata={"help": "Value clip around the rollout values (N+: 0.2)."})
    vf_coef: float = field(default=0.1, metadata={"help": "Weight of the value loss (N+: 0.1)."})
    whiten_rewards: bool = field(default=False, metadata={"help": "Whiten rewards before GAE, keeping their mean (N+: off)."})
    min_reward_std: float = field(
        default=1e-4,
        metadata={"help": "Skip the policy update of a step whose completions' total rewards (score - beta*KL) spread "
                  "less than this: the advantages would be the critic's noise whitened to unit size, and Adam "
                  "would follow it at full step. For gae and reinforce++ (whose advantages are whitened); "
                  "grpo, dr_grpo and rloo give a group without spread advantages of exactly 0 and never skip."},
    )

    # --- run -----------------------------------------------------------------------------------
    save_steps: int = field(default=50, metadata={"help": "Write a resumable checkpoint every N steps (0 = never)."})
    save_total_limit: int = field(default=2, metadata={"help": "Checkpoints kept (oldest deleted first)."})
    resume: bool = field(default=False, metadata={"help": "Continue from the newest checkpoint in output_dir."})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "Start over in an output_dir that holds checkpoints of an unfinished run, deleting them (without this, such a run is refused unless --resume true)."})
    seed: int = field(default=0, metadata={"help": "Seed for prompt order, sampling and initialisation."})
    device: Optional[str] = field(default=None, metadata={"help": "cpu, cuda, cuda:1 ... None = a GPU when present."})
    fsdp: bool = field(default=False, metadata={"help": "Shard policy, critic and reference over the processes of a torchrun launch with torch's FSDP2 (fully_shard per decoder layer); full-parameter training only (policy_train=full). CPU (gloo) and GPU (NCCL)."})
    bf16: Optional[bool] = field(
        default=None, metadata={"help": "Load the models in bf16. None = on a bf16-capable GPU, never on CPU."}
    )
    logprobs_from_generate: bool = field(
        default=True,
        metadata={"help": "Take the rollout log-probs (and value-head values) from generate() instead of a second "
                  "forward pass (they agree within ~2e-5)."},
    )
    gold_preference: Optional[str] = field(
        default=None,
        metadata={"help": "A simulated preference (a name in rlhf.labelers.PREFERENCES or package.module:function) "
                  "that scores every rollout beside the reward model, logged as reward/gold: the true objective "
                  "next to the proxy (Gao et al. 2023). `rlhf pipeline` sets it to the labelers' preference when "
                  "labels are simulated. None = not logged."},
    )
    length_report_steps: int = field(
        default=10,
        metadata={"help": "Every N steps (from the first), the reference also answers the step's prompts, and the "
                  "answer length and finished share of policy and reference are logged (length/*): the "
                  "length-hacking guard. 0 = never."},
    )
    progress: bool = field(default=True, metadata={"help": "Show a progress bar."})
    log_samples: int = field(
        default=2, metadata={"help": "Completions per step written with their scores to samples.jsonl (0 = none)."}
    )

    def __post_init__(self):
        if isinstance(self.scale_rewards, bool):  # TRL's GRPOConfig takes True / False for these two
            self.scale_rewards = "group" if self.scale_rewards else "none"
        problems = self._number_problems()
        if problems:  # the checks below combine fields: with one out of range they would blame others
            raise ValueError("PPOConfig: " + "; ".join(problems))
        if self.batch_size % (self.num_minibatches * self.resolved_grad_accum()):
            problems.append(f"batch_size={self.batch_size} must be divisible by num_minibatches*grad_accum="
                            f"{self.num_minibatches * self.resolved_grad_accum()}")
        if self.reward_preference and self.reward_model:
            problems.append(f"reward_preference={self.reward_preference!r} and reward_model={self.reward_model!r} "
                            "are both set: one reward, pick one")
        if self.reward_preference and self.critic == "reward":
            problems.append("critic='reward' starts the critic from a reward model, and reward_preference has none: "
                            "use critic auto or value-head")
        problems += self._estimator_problems()
        problems += self._never_updates()
        if problems:
            raise ValueError("PPOConfig: " + "; ".join(problems))

    def _number_problems(self) -> list[str]:
        """Each field out of its own range, named with its value and what is allowed."""
        from rlhf.stages import number_problems

        problems = number_problems(
            self, at_least_1=("steps", "batch_size", "max_new_tokens", "ppo_epochs", "num_minibatches", "grad_accum",
                              "generation_batch_size", "reward_batch_size", "lora_r", "kl_horizon", "num_generations",
                              "save_total_limit"),
            at_least_0=("value_warmup_steps", "kl_coef", "kl_loss_coef", "vf_coef", "min_reward_std", "save_steps",
                        "length_report_steps", "log_samples"),
            positive=("temperature", "learning_rate", "adam_eps", "lora_alpha", "target_kl", "cliprange",
                      "cliprange_high", "cliprange_value", "max_grad_norm", "score_clip"),
            probability=("gamma", "lam"))
        if not 0 < self.top_p <= 1:
            problems.append(f"top_p must be in (0, 1] (got {self.top_p})")
        return problems

    def _estimator_problems(self) -> list[str]:
        """What is wrong with the estimator settings, in words (empty when they fit together)."""
        from rlhf.ppo.core import ADVANTAGE_ESTIMATORS, GROUP_ESTIMATORS, KL_ESTIMATORS, LOSS_AGG_MODES, SCALE_REWARDS

        est, g = self.advantage_estimator, self.num_generations
        if est not in ADVANTAGE_ESTIMATORS:
            return [f"advantage_estimator={est!r} is not one of {', '.join(ADVANTAGE_ESTIMATORS)}"]
        problems = []
        if est in GROUP_ESTIMATORS and g < 2:
            problems.append(f"advantage_estimator={est!r} compares the completions of each prompt: set "
                            f"num_generations >= 2 (it is {g}; 4-16 is usual, DeepSeekMath used 64)")
        elif self.batch_size % g:
            problems.append(f"batch_size={self.batch_size} completions cannot be cut into whole groups of "
                            f"num_generations={g}: make batch_size a multiple of {g}")
        elif g > 1 and (self.batch_size // g) % (self.num_minibatches * self.resolved_grad_accum()):
            problems.append(f"the {self.batch_size // g} prompt groups of a step (batch_size / num_generations) must "
                            f"split evenly into num_minibatches*grad_accum={self.num_minibatches * self.resolved_grad_accum()} "
                            "micro-batches, so no group is cut")
        elif self.generation_batch_size and self.generation_batch_size % g:
            problems.append(f"generation_batch_size={self.generation_batch_size} must be a multiple of "
                            f"num_generations={g} (a group is generated in one call, sharing its prompt)")
        if self.dual_clip is not None and self.dual_clip <= 1.0:
            problems.append(f"dual_clip={self.dual_clip} must be > 1 (the loss of a negative advantage is capped at "
                            "-A * dual_clip; verl uses 3.0), or None for off")
        for name in ("kl_estimator", "kl_loss_estimator"):
            if getattr(self, name) not in KL_ESTIMATORS:
                problems.append(f"{name}={getattr(self, name)!r} is not one of {', '.join(KL_ESTIMATORS)}")
        if self.scale_rewards is not None:
            if self.scale_rewards not in SCALE_REWARDS:
                problems.append(f"scale_rewards={self.scale_rewards!r} is not one of {', '.join(SCALE_REWARDS)}")
            elif est not in ("grpo", "dr_grpo"):
                problems.append(f"scale_rewards={self.scale_rewards!r} scales grpo's advantages; "
                                f"advantage_estimator={est!r} has no such choice (leave it unset)")
            elif est == "dr_grpo" and self.scale_rewards != "none":
                problems.append(f"advantage_estimator='dr_grpo' divides by no std (that is what it is); "
                                f"scale_rewards={self.scale_rewards!r} is grpo: use advantage_estimator='grpo'")
        if self.loss_agg_mode is not None and self.loss_agg_mode not in LOSS_AGG_MODES:
            problems.append(f"loss_agg_mode={self.loss_agg_mode!r} is not one of {', '.join(LOSS_AGG_MODES)}")
        if est != "gae" and (self.critic != "auto" or self.value_warmup_steps):
            problems.append(f"advantage_estimator={est!r} uses no critic: leave critic='auto' and value_warmup_steps=0")
        if self.resolved_use_kl_loss() and self.adaptive_kl:
            problems.append("adaptive_kl adapts the KL penalty in the reward; with use_kl_loss the KL is a loss term "
                            "weighted by kl_loss_coef")
        return problems

    @property
    def uses_critic(self) -> bool:
        return self.advantage_estimator == "gae"

    def resolved_use_kl_loss(self) -> bool:
        """use_kl_loss, or the estimator's default: a loss term for GRPO and Dr. GRPO (DeepSeekMath)."""
        if self.use_kl_loss is not None:
            return self.use_kl_loss
        return self.advantage_estimator in ("grpo", "dr_grpo")

    def resolved_scale_rewards(self) -> str | None:
        """scale_rewards, or the estimator's paper's: 'group' for grpo, 'none' for dr_grpo; None for
        the estimators that have no such choice."""
        if self.advantage_estimator not in ("grpo", "dr_grpo"):
            return None
        if self.scale_rewards is not None:
            return self.scale_rewards
        return "none" if self.advantage_estimator == "dr_grpo" else "group"

    def resolved_loss_agg_mode(self) -> str:
        """loss_agg_mode, or the estimator's paper's (DeepSeekMath for grpo, Dr. GRPO, else token-mean)."""
        if self.loss_agg_mode is not None:
            return self.loss_agg_mode
        return {"grpo": "seq-mean-token-mean", "dr_grpo": "seq-mean-token-sum-norm"}.get(self.advantage_estimator,
                                                                                            "token-mean")

    def _never_updates(self) -> list[str]:
        """Settings under which the policy would never move, only a metric saying so."""
        problems = []
        if self.batch_size == 1 and self.min_reward_std > 0:
            problems.append("batch_size=1 never updates the policy: the spread of one completion's reward is always "
                            "0, below min_reward_std, so every step's update is skipped; use batch_size >= 2 (or "
                            "min_reward_std=0 to update on single completions)")
        if self.value_warmup_steps >= self.steps:
            problems.append(f"value_warmup_steps={self.value_warmup_steps} >= steps={self.steps}: only the critic "
                            "would ever train")
        return problems

    def resolved_grad_accum(self) -> int:
        """grad_accum, or when None the fewest micro-batches per minibatch that keep each at most
        MAX_MICRO_BATCH completions (or one prompt group when a group is larger), cutting no group.
        1 when the minibatch does not divide (the validation names that problem)."""
        if self.grad_accum is not None:
            return self.grad_accum
        g = max(1, self.num_generations)
        minibatch = self.batch_size // max(1, self.num_minibatches)
        if minibatch < 1 or minibatch % g or self.batch_size % max(1, self.num_minibatches):
            return 1
        groups = minibatch // g
        return next(d for d in range(1, groups + 1) if groups % d == 0 and minibatch // d <= max(MAX_MICRO_BATCH, g))

    def resolved_adam_eps(self) -> float:
        """adam_eps, or the estimator's family default: 1e-5 with a critic (N+), else 1e-8 (TRL, torch)."""
        if self.adam_eps is not None:
            return self.adam_eps
        return 1e-5 if self.uses_critic else 1e-8

    def resolved_learning_rate(self) -> float:
        return resolve_learning_rate(self.learning_rate, DEFAULT_LEARNING_RATES, self.policy_train)

    def to_dict(self) -> dict:
        return asdict(self)
