"""`PPOTrainer`: orchestration only. Each step reads as the algorithm does:

    1. rollout      generate completions with the policy (log-probs, values from the same pass)
    2. reference    log-probs of the same tokens under the SFT policy
    3. score        reward model or reward_fn; fixed score for a missing stop token; clip
    4. advantages   one call into core.compute_advantages: reward = score at the end - beta * KL
                    per token, then GAE (PPO) or a critic-free baseline (GRPO, Dr. GRPO, RLOO,
                    REINFORCE++: `advantage_estimator`, `num_generations` completions per prompt)
    5. PPO epochs   clipped policy (+ value, + KL) loss over minibatches of whole prompt groups,
                    gradient accumulation, clipping
    6. bookkeeping  KL controller, metrics

The math lives in `rlhf.ppo.core`, models in `policy.py`, generation in `rollout.py`.

    from rlhf import PPOConfig, PPOTrainer
    trainer = PPOTrainer(PPOConfig(steps=50), reward_fn=lambda prompts, completions: [c.count("!") for c in completions])
    trainer.train()
"""

from __future__ import annotations

import json
import resource
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from accelerate import Accelerator
from accelerate.utils import set_seed
from tqdm.auto import tqdm

from rlhf.adapters import adapter_kind
from rlhf.data import Prompt, builtin, load_prompts, prompts_from_rows
from rlhf.finite import NonFiniteError  # raised here; re-exported as rlhf.ppo.NonFiniteError
from rlhf.generation import check_prompts_fit, context_limit, encode_prompt, stop_token_ids
from rlhf.labelers import get_preference
from rlhf.models import load_tokenizer, pick_device, pick_dtype
from rlhf.ppo import core
from rlhf.outputs import check_checkpoints, check_output_dir
from rlhf.ppo.checkpoint import checkpoint_dirs, latest_checkpoint, load_checkpoint, save_checkpoint
from rlhf.ppo.config import PPOConfig
from rlhf.ppo.metrics import MetricsLog, plot_metrics
from rlhf.ppo.policy import (ActorCritic, build_policy_pair, build_reward_critic, build_value_head, load_sft,
                             merged_lora, response_forward, save_policy)
from rlhf.ppo.reward_norm import RunningMoments, normalize_scores
from rlhf.ppo.rollout import (Rollout, RewardFn, accepted_keywords, encode_queries, generation_config, prompt_columns,
                              rollout, rollout_tensors, score, select, shape_scores)
from rlhf.reward.model import REWARD_UNIT, RewardModel
from rlhf.stages import ConfigError, save_resolved_config


class PPOTrainer:
    """PPO of `policy` against `reward_model` or `reward_fn(prompts, completions) -> (b,) scores`.

    policy: None (config.policy), a path, or a loaded causal LM (plain, or a PeftModel with a
    mergeable adapter); tokenizer: needed with a model object unless config.policy names its folder.
    prompts: None (config.prompts, else the built-in set), a path, strings, message lists,
    `rlhf.data.Prompt`s, or rows (dicts, a datasets.Dataset, a pandas DataFrame: see
    `_as_prompts`). The reward model scores each whole conversation; `reward_fn` gets the
    last user message's text per prompt (the signature from before prompts were conversations),
    or the conversations themselves when it is marked `@rlhf.data.conversation.takes_conversations`
    or its first parameter is annotated with a message type (e.g. `list[list[dict]]`). gold_fn: a
    preference `fn(prompt, completion) -> float` logged beside the reward as `reward/gold` (default:
    config.gold_preference, else none); it gets the conversation, as the suite's rules accept."""

    def __init__(self, config: PPOConfig, policy=None, tokenizer=None, reward_fn: RewardFn | None = None,
                 reward_model=None, prompts=None, gold_fn=None):

        # Read first (cheap, and a bad row or column fails before any model loads); a column named
        # like a reward argument is refused here, not at step 1. A reward model reads no column, so
        # with one the columns are neither checked nor passed (a candidates file from `rlhf sample`,
        # with its `completions`, serves as prompts).
        given = prompts if prompts is not None else config.prompts
        self.prompts = _as_prompts(given)
        self.prompts_source = _prompts_source(given)  # for error messages
        self.uses_columns = reward_fn is not None or bool(config.reward_preference)
        columns = tuple(prompt_columns(self.prompts, [])) if self.uses_columns else ()
        self.prompt_column_names = columns  # every row's, so each step passes them all
        if config.reward_preference:
            if reward_fn is not None or reward_model is not None:  # config.reward_model: PPOConfig refuses it
                raise ConfigError(f"reward_preference={config.reward_preference!r} is the reward: pass no "
                                  "reward_fn or reward_model beside it")
            reward_fn = preference_reward_fn(config.reward_preference, columns, self.prompts_source)
        if reward_fn is None and reward_model is None and config.reward_model is None:
            raise ConfigError("PPO needs a reward: set reward_model (a `rlhf reward` output) or reward_preference "
                              "(a rule), or pass reward_fn")
        self.config = config
        device = pick_device(config.device)
        self.accelerator = Accelerator(cpu=not str(device).startswith("cuda"))
        if config.fsdp:
            from rlhf import fsdp

            fsdp.check_layout(config.policy_train, "--policy_train")
            fsdp.init_process_group(str(self.accelerator.device))  # a world of 1 needs one too
        set_seed(config.seed)  # same initialisation on every process
        self.output_dir = Path(config.output_dir)
        named = lambda given, flag: str(given) if isinstance(given, (str, Path)) else flag  # noqa: E731
        check_output_dir("ppo", self.output_dir, {"--policy": named(policy, config.policy),
                                                  "--reward_model": named(reward_model, config.reward_model)})
        check_checkpoints("ppo", self.output_dir, checkpoint_dirs(self.output_dir), self.output_dir / "checkpoints",
                          config.resume, config.overwrite_output_dir)
        self.reward_fn = reward_fn
        self.gold_fn = _gold_fn(gold_fn, config.gold_preference)
        self.step_count = 0
        self.normalize_reward = config.normalize_reward if config.normalize_reward is not None else reward_fn is not None
        self.reward_moments = RunningMoments()  # of every raw score seen, for normalize_reward
        self._setup_policy(policy, tokenizer)
        self._setup_reward_and_critic(reward_model)
        self._setup_optimizer()
        torch.manual_seed(config.seed + 1 + self.accelerator.process_index)  # sampling differs per process
        self.kl_ctl = (core.AdaptiveKLController(config.kl_coef, config.target_kl, config.kl_horizon)
                       if config.adaptive_kl else core.FixedKLController(config.kl_coef))
        self.history: list[dict] = []

    # --- setup ------------------------------------------------------------------------------

    def _setup_policy(self, policy, tokenizer) -> None:
        """The tokenizer, then the policy and its reference (checked against the SFT model)."""
        cfg, device = self.config, self.accelerator.device
        self.dtype = torch.bfloat16 if cfg.bf16 else (pick_dtype(str(device)) if cfg.bf16 is None else torch.float32)
        source = policy if isinstance(policy, (str, Path)) or policy is None else None
        source = str(source) if source is not None else cfg.policy
        self.tokenizer = tokenizer or load_tokenizer(source, padding_side="left")
        self.tokenizer.padding_side = "left"
        if policy is None or isinstance(policy, (str, Path)):
            model, kind = load_sft(source, device=device, dtype=self.dtype)
        else:
            model, kind = _adopt_model(policy), "mergeable" if hasattr(policy, "merge_and_unload") else "plain"
            model.to(device)
        check_prompts_fit([len(encode_prompt(self.tokenizer, p.messages)) for p in self.prompts],
                          [p.id for p in self.prompts], cfg.max_new_tokens, context_limit(model),
                          self.prompts_source)
        probe = self._encode([p.messages for p in self.prompts[:4]])
        # The trainable policy (a PeftModel with a LoRA, an adapter copy, or the full model) and how
        # to run its reference (`with self.policy_and_reference.reference() as ref:`).
        self.policy_and_reference = build_policy_pair(model, kind, source, cfg.policy_train, cfg.lora_r,
                                                      cfg.lora_alpha, cfg.lora_target_modules, probe)
        self.policy = self.policy_and_reference.model
        self.sft_source = source
        self.stop_ids = stop_token_ids(self.policy, self.tokenizer)
        # Prompt/prefix tuning prepends virtual tokens generate() and forward() place differently.
        peft_config = getattr(self.policy, "active_peft_config", None)
        prompt_learning = getattr(peft_config, "is_prompt_learning", False)
        self.logprobs_from_generate = cfg.logprobs_from_generate and not prompt_learning
        self.share_prefix = not prompt_learning  # virtual tokens would sit before the shared prefix

    def _setup_reward_and_critic(self, reward_model) -> None:
        cfg = self.config
        if reward_model is None and cfg.reward_model is not None:
            reward_model = cfg.reward_model
        if isinstance(reward_model, (str, Path)):
            reward_model = RewardModel.load(reward_model, device=str(self.accelerator.device), dtype=self.dtype)
        if reward_model is not None:
            reward_model.model.requires_grad_(False).eval()
        self.reward_model = reward_model
        self.critic_kind = cfg.critic if cfg.critic != "auto" else \
            ("reward" if reward_model is not None and cfg.policy_train == "full" else "value-head")
        if not cfg.uses_critic:  # critic-free estimators: no value model is built at all
            self.critic_kind = "none"
            self.actor_critic = ActorCritic(self.policy)
        elif self.critic_kind == "reward":
            if reward_model is None:
                raise ConfigError("critic='reward' initialises the critic from a reward model: give one, or use value-head")
            critic = build_reward_critic(reward_model, self.tokenizer, cfg.policy_train, cfg.lora_r, cfg.lora_alpha)
            self.actor_critic = ActorCritic(self.policy, critic=critic, critic_bias=reward_model.bias,
                                            critic_std=reward_model.std)
        else:
            self.actor_critic = ActorCritic(self.policy, value_head=build_value_head(self.policy))

    def _setup_optimizer(self) -> None:
        """Adam (eps from `PPOConfig.resolved_adam_eps`: 1e-5 with a critic, N+; 1e-8 without), prepared by accelerate (DDP across processes), or over FSDP2
        shards (`rlhf.fsdp`; the optimizer is built after sharding, on the shards). The fused kernel
        (CPU and GPU since torch 2.4) updates every tensor in one pass: on CPU a step over 135M
        parameters takes 0.08 s instead of 0.77 s, which full fine-tuning pays twice (policy, critic)."""
        if self.config.fsdp:
            from rlhf.fsdp import shard_actor_critic

            shard_actor_critic(self.actor_critic, self.policy_and_reference.ref_model)
        params = [p for p in self.actor_critic.parameters() if p.requires_grad]
        self.lr = self.config.resolved_learning_rate()
        optimizer = _adam(params, lr=self.lr, eps=self.config.resolved_adam_eps())
        # `actor_critic`: the ActorCritic itself (generation, checkpoints, saving); `prepared_actor_critic`:
        # the same module as accelerate prepared it (DDP-wrapped across processes), for training passes.
        # Sharded with FSDP2 it is not prepared (accelerate would wrap it in DDP): the two are one.
        if self.config.fsdp:
            self.prepared_actor_critic, self.optimizer = self.actor_critic, optimizer
        else:
            self.prepared_actor_critic, self.optimizer = self.accelerator.prepare(self.actor_critic, optimizer)
        self.actor_critic = self.accelerator.unwrap_model(self.prepared_actor_critic)
        self.params = params
        # Clipped apart: one shared norm lets a large value loss shrink the policy's step to nothing.
        in_policy = {id(p) for p in self.actor_critic.policy.parameters()}
        self.policy_params = [p for p in params if id(p) in in_policy]
        self.critic_params = [p for p in params if id(p) not in in_policy]

    def _encode(self, conversations):
        ids, mask, _ = encode_queries(self.tokenizer, conversations, self.accelerator.device)
        return ids, mask

    # --- one PPO step -----------------------------------------------------------------------

    def step(self, prompts=None) -> dict[str, float]:
        """One PPO step on `prompts` (default: the next batch of the prompt set). Returns metrics."""
        cfg, timer = self.config, _Timer()
        batch = _as_prompts(prompts) if prompts is not None else self._next_prompts()
        self.policy.eval()  # dropout off everywhere (N+)
        # Step 1: rollout.
        with timer("generate"):
            r = self._rollout(batch)
            if self.uses_columns:
                r.prompt_columns = prompt_columns(batch, r.prompt_index.tolist(), self.prompt_column_names)
        # Step 2: reference log-probs (and old log-probs / values if generation did not give them).
        with timer("forward"):
            self._forward_passes(r)
        # Step 3: scores.
        with timer("score"):
            r.raw_scores, r.scores = self._score(r)
        self._check_finite("reward", r.scores)
        gold = self._gold_scores(r) if self.gold_fn is not None else None  # a diagnostic, never a reward
        # Step 4: per-token rewards, advantages and returns (GAE or a critic-free estimator).
        kl = core.masked_fill_padding(core.kl_per_token(r.logprobs, r.ref_logprobs, cfg.kl_estimator), r.response_mask)
        rewards, advantages, returns = core.compute_advantages(
            cfg.advantage_estimator, r.scores.to(kl.device), kl, r.response_mask, self.reward_kl_coef,
            cfg.num_generations, r.values, cfg.gamma, cfg.lam, cfg.whiten_rewards, self._sum_over_processes,
            cfg.resolved_scale_rewards())
        # The spread of the total reward per completion over every process's completions: each
        # process then decides alike whether this step updates the policy, and the step means what
        # it would on one process with the whole batch.
        signal_std = self._all_processes(rewards.sum(1)).std(unbiased=False)
        self._check_finite("advantages", advantages)
        # Step 5: PPO epochs over minibatches. When every completion earns the same (all scores
        # equal, KL ~ 0), the advantages are noise (the critic's, or the KL's under batch
        # normalisation) whitened to unit size, and Adam would take a full step on it
        # (docs/notes.md#equal-rewards): skip the policy update then. The group-baseline estimators
        # (grpo, dr_grpo, rloo) need no such guard: a group without spread has advantages exactly 0,
        # no noise, and the step still trains the KL term and carries Adam's momentum, as in TRL
        # and verl (skipping those steps learned the "!" rule more slowly: docs/notes.md).
        whitened = cfg.advantage_estimator in core.WHITENED_ESTIMATORS
        policy_on = self.step_count >= cfg.value_warmup_steps and (
            not whitened or signal_std.item() >= cfg.min_reward_std)
        with timer("train"):
            train_stats = self._ppo_epochs(r, advantages, returns, policy_on)
        # Step 6: KL controller and metrics.
        metrics = self._metrics(r, kl, rewards, returns, signal_std, train_stats, timer, gold=gold)
        if cfg.length_report_steps and self.step_count % cfg.length_report_steps == 0:
            metrics.update(self._length_report(batch, r))
        self.kl_ctl.update(metrics["kl/mean"], cfg.batch_size * self.accelerator.num_processes)
        self.step_count += 1
        self.last_rollout = r
        return metrics

    def _rollout(self, prompts) -> Rollout:
        from rlhf.fsdp import gathered_for_generation

        cfg = self.config
        unwrapped = self.actor_critic
        gen_config = generation_config(cfg.max_new_tokens, cfg.temperature, cfg.top_p, self.tokenizer.pad_token_id,
                                       self.stop_ids)
        value_head = unwrapped.value_head if self.logprobs_from_generate else None
        # Under FSDP2 every layer is all-gathered once for the whole generate (rlhf.fsdp).
        with gathered_for_generation(unwrapped.policy, *([value_head] if value_head is not None else [])), \
                merged_lora(unwrapped.policy) if self.policy_and_reference.layout == "lora" else nullcontext(unwrapped.policy) as policy:
            r = rollout(policy, self.tokenizer, [p.messages for p in prompts], [p.conversation for p in prompts],
                        gen_config=gen_config, temperature=cfg.temperature, stop_ids=self.stop_ids,
                        chunk_size=cfg.generation_batch_size or cfg.batch_size, value_head=value_head,
                        share_prefix=self.share_prefix, group_size=cfg.num_generations,
                        prompt_ids=[p.id for p in prompts])
        if not self.logprobs_from_generate:
            r.logprobs = None
        return r

    @torch.no_grad()
    def _forward_passes(self, r: Rollout) -> None:
        """Reference log-probs; the policy's own forward only for what generation did not give."""
        cfg, t, pre = self.config, r.response_ids.shape[1], r.prefix_len
        chunk = cfg.generation_batch_size or cfg.batch_size
        unwrapped = self.actor_critic
        ids, mask = r.input_ids, r.attention_mask
        ref, old, values = [], [], []
        for i in range(0, len(r), chunk):
            rows = slice(i, i + chunk)
            with self.policy_and_reference.reference() as reference:
                logits, _ = response_forward(reference, ids[rows], mask[rows], t, prefix_len=pre)
            ref.append(core.logprobs_from_logits(logits, r.response_ids[rows], cfg.temperature))
            if r.logprobs is None:
                logits, vals = unwrapped(ids[rows], mask[rows], t, pre)
                old.append(core.logprobs_from_logits(logits, r.response_ids[rows], cfg.temperature))
                if vals is not None:
                    values.append(vals)
            elif r.values is None and self.critic_kind != "none":
                values.append(unwrapped.values(ids[rows], mask[rows], t, pre))
        m = r.response_mask
        r.ref_logprobs = core.masked_fill_padding(torch.cat(ref), m)
        if old:
            r.logprobs = core.masked_fill_padding(torch.cat(old), m)
        if values:
            r.values = core.masked_fill_padding(torch.cat(values).float(), m)

    def _score(self, r: Rollout) -> tuple[torch.Tensor, torch.Tensor]:
        """(raw scores in the reward's own units, the scores PPO trains on: normalised when
        normalize_reward, then the missing-EOS penalty and the clip). Both (b,)."""
        cfg = self.config
        # A LoRA critic lives on the reward model's own weights: switch it off to score.
        critic = self.actor_critic.critic
        with critic.disable_adapter() if hasattr(critic, "disable_adapter") else nullcontext():
            scores = score(r.prompts, r.completions, self.reward_fn, self.reward_model, cfg.reward_batch_size,
                           prompt_index=r.prompt_index.tolist(), prompt_ids=r.prompt_ids, **(r.prompt_columns or {}))
        self._check_finite("reward", scores, "" if self.reward_fn is None else
                           f"reward_preference {cfg.reward_preference!r} must give a finite number per completion"
                           if cfg.reward_preference else "reward_fn must return one finite number per completion")
        trained = scores
        if self.normalize_reward:  # statistics over every process's scores, so all normalise alike
            self.reward_moments.update(self.accelerator.gather(scores.to(self.accelerator.device)))
            trained = normalize_scores(scores, self.reward_moments)
        trained = shape_scores(trained, r.finished.cpu(), cfg.missing_eos_penalty, cfg.score_clip)
        device = r.response_ids.device
        return scores.to(device), trained.to(device)

    # --- diagnostics: gold score and length report (they never change the update) ----------------

    def _gold_scores(self, r: Rollout) -> torch.Tensor:
        """The gold preference's score of every rollout, (b,) float32: what the labels were meant to
        express, against which the reward model is only a proxy."""
        gold = torch.tensor([float(self.gold_fn(p, c)) for p, c in zip(r.prompts, r.completions)])
        self._check_finite("gold score", gold)
        return gold

    @torch.no_grad()
    def _length_report(self, prompts, r: Rollout) -> dict[str, float]:
        """The reference answers the step's prompts too: mean tokens and finished share of both, so a
        policy drifting long (or cut off) shows against where it started. Sampled under a forked RNG
        seeded by (seed, step), so the run's own sampling and a resumed run are unchanged."""
        cfg, device, t0 = self.config, self.accelerator.device, time.perf_counter()
        gen_config = generation_config(cfg.max_new_tokens, cfg.temperature, cfg.top_p, self.tokenizer.pad_token_id,
                                       self.stop_ids)
        devices = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), self.policy_and_reference.reference() as reference:
            torch.manual_seed(cfg.seed * 15485863 + self.step_count)
            ref = rollout(reference, self.tokenizer, [p.messages for p in prompts],
                          [p.conversation for p in prompts], gen_config=gen_config, temperature=cfg.temperature,
                          stop_ids=self.stop_ids,
                          chunk_size=cfg.generation_batch_size or cfg.batch_size, share_prefix=self.share_prefix)
        local = torch.stack([r.response_mask.sum(1).float().mean().cpu(), r.finished.float().mean().cpu(),
                             ref.response_mask.sum(1).float().mean().cpu(), ref.finished.float().mean().cpu()])
        policy_tokens, policy_finished, ref_tokens, ref_finished = \
            self.accelerator.reduce(local.to(device), reduction="mean").tolist()
        return {"length/policy_tokens": policy_tokens, "length/reference_tokens": ref_tokens,
                "length/ratio": policy_tokens / max(ref_tokens, 1e-9), "length/policy_finished": policy_finished,
                "length/reference_finished": ref_finished, "time/length_report": time.perf_counter() - t0}

    def _ppo_epochs(self, r: Rollout, advantages, returns, policy_on: bool) -> dict[str, float]:
        """`ppo_epochs` passes over the rollout in `num_minibatches` optimizer steps each; every
        minibatch is `grad_accum` micro-batches whose gradients add up before the step. The
        shuffle moves whole prompt groups (G rows), so no micro-batch cuts a group. With `policy_on`
        False (value warm-up, rewards without spread), or when mask_truncated_completions left no
        token of the step on any process, the policy's weights (and then the critic's) get no
        optimizer step: a zero gradient would still move them by Adam's momentum."""
        cfg = self.config
        data = {**rollout_tensors(r), "advantages": advantages, "returns": returns}
        nothing_left = False  # every completion of the step, on every process, cut and masked: no loss has a token
        if cfg.mask_truncated_completions:  # cut answers weigh 0 in every loss; their scores already counted
            data["response_mask"] = data["response_mask"] & r.finished.to(advantages.device)[:, None]
            kept = data["response_mask"].sum().float()
            total = self._sum_over_processes
            nothing_left = float(total(kept) if total else kept) == 0
        policy_on = policy_on and not nothing_left
        # Weights whose update this step skips get no optimizer step at all: a zero gradient would
        # still move them by Adam's momentum from earlier steps.
        frozen = ([] if policy_on else self.policy_params) + (self.critic_params if nothing_left else [])
        b = len(r)
        grad_accum = cfg.resolved_grad_accum()
        mb, micro = b // cfg.num_minibatches, b // cfg.num_minibatches // grad_accum
        order = torch.Generator().manual_seed(cfg.seed * 100003 + self.step_count)  # resumable, no global RNG
        # FSDP2 re-gathers a layer for backward when gradient reaches the layer's output; gradient
        # through a shared-prefix KV cache bypasses that, so sharded training runs the full prompt
        # (docs/notes.md#fsdp2-kv-cache).
        prefix_len = 0 if cfg.fsdp else r.prefix_len
        self._set_lr()
        before = [p.detach().clone() for p in self.policy_params]  # to measure the step actually taken
        sums: dict[str, float] = {}
        n = 0
        g = cfg.num_generations
        for _ in range(cfg.ppo_epochs):
            perm = (torch.randperm(b // g, generator=order)[:, None] * g + torch.arange(g)).reshape(-1)
            for start in range(0, b, mb):
                micro_batches = perm[start:start + mb].split(micro)
                token_count = self._token_count(data["response_mask"], perm[start:start + mb], len(micro_batches))
                for k, idx in enumerate(micro_batches):
                    last = k == len(micro_batches) - 1
                    with nullcontext() if last else self.accelerator.no_sync(self.prepared_actor_critic):
                        loss, stats = self._loss(select(data, idx.to(advantages.device)), prefix_len, policy_on,
                                                 token_count)
                        self.accelerator.backward(loss / grad_accum)
                    for key, value in stats.items():
                        sums[key] = sums.get(key, 0.0) + value
                    n += 1
                for key, norm in self._clip_gradients().items():
                    sums[key] = sums.get(key, 0.0) + norm * len(micro_batches)
                for p in frozen:
                    # Adam skips a parameter without a gradient (state and weight unchanged). One it has
                    # no state for yet keeps its zero gradient: that step moves nothing, and every
                    # parameter gets a state, as the sharded checkpoint (FSDP2) expects.
                    if self.optimizer.state.get(p):
                        p.grad = None
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
        update = _update_norm(self.policy_params, before)
        masked = {"masked_truncated": float((~r.finished).float().mean())} if cfg.mask_truncated_completions else {}
        return {**{key: value / n for key, value in sums.items()}, "policy_updated": float(policy_on),
                "policy_update_norm": update, **masked}

    def _token_count(self, response_mask: torch.Tensor, rows: torch.Tensor, micro_batches: int) -> float:
        """What each micro-batch's token-mean losses divide by so that the optimizer step weighs
        every real token of the minibatch alike, on every process together: DDP and FSDP average
        the processes' gradients, so each process divides by the mean token count of a process's
        minibatch (`core.micro_batch_token_count`)."""
        tokens = response_mask[rows.to(response_mask.device)].sum().float()
        if self.accelerator.num_processes > 1:
            tokens = self.accelerator.reduce(tokens.to(self.accelerator.device), reduction="mean")
        return core.micro_batch_token_count(float(tokens), micro_batches)

    def _clip_gradients(self) -> dict[str, float]:
        """Clip the policy's and the critic's gradients to max_grad_norm, each on its own; their
        norms before clipping, by metric name."""
        norms = {}
        for key, params in (("grad_norm", self.policy_params), ("critic_grad_norm", self.critic_params)):
            if params and self.config.fsdp:
                from rlhf.fsdp import clip_grad_norm  # sharded gradients: the norm of the full gradient

                norm = clip_grad_norm(params, self.config.max_grad_norm)
            elif params:
                norm = self.accelerator.clip_grad_norm_(params, self.config.max_grad_norm)
                self._check_finite(key, torch.as_tensor(norm))
                norms[key] = float(norm)
        return norms

    def _loss(self, mb: dict[str, torch.Tensor], prefix_len: int, policy_on: bool,
              token_count: float | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss of one micro-batch: clipped policy loss (+ vf_coef * value loss with a critic,
        + kl_loss_coef * KL when the KL is a loss term); token-means divide by `token_count`
        (`_token_count`: the minibatch's tokens shared over its micro-batches), default their own."""
        cfg = self.config
        t = mb["response_ids"].shape[1]
        logits, values = self.prepared_actor_critic(mb["input_ids"], mb["attention_mask"], t, prefix_len)
        mask = mb["response_mask"]
        logprobs, entropy = core.logprobs_and_entropy(logits, mb["response_ids"], cfg.temperature)
        pg_loss, pg_stats = core.policy_loss(logprobs, mb["logprobs"], mb["advantages"], mask, cfg.cliprange,
                                             self.loss_agg_mode, cfg.max_new_tokens, token_count, cfg.dual_clip,
                                             cfg.cliprange_high)
        self._check_finite("policy_loss", pg_loss)
        # During value warm-up (or a skipped update) the policy term stays in the graph with weight 0,
        # so every process has gradients for the same parameters (DDP needs that); `_ppo_epochs`
        # then drops them before the optimizer step, so Adam's momentum does not move the policy.
        policy_weight = 1.0 if policy_on else 0.0
        loss = policy_weight * pg_loss
        stats = {"policy_loss": pg_loss.item(), "entropy": core.masked_mean(entropy, mask).item(),
                 "approx_kl": pg_stats["approx_kl"].item(), "clipfrac": pg_stats["clipfrac"].item(),
                 "ratio": pg_stats["ratio"].item(),
                 **({"dual_clipfrac": pg_stats["dual_clipfrac"].item()} if "dual_clipfrac" in pg_stats else {})}
        if values is not None:
            vf_loss, vf_stats = core.value_loss(values.float(), mb["values"], mb["returns"], mask, cfg.cliprange_value,
                                                token_count)
            self._check_finite("value_loss", vf_loss)
            loss = loss + cfg.vf_coef * vf_loss
            stats.update(value_loss=vf_loss.item(), value_clipfrac=vf_stats["clipfrac"].item())
        if self.use_kl_loss:
            kl_term = core.kl_loss(logprobs, mb["ref_logprobs"], mask, self.loss_agg_mode, cfg.max_new_tokens,
                                   cfg.kl_loss_estimator, token_count)
            self._check_finite("kl_loss", kl_term)
            loss = loss + policy_weight * cfg.kl_loss_coef * kl_term
            stats["kl_loss"] = kl_term.item()
        return loss, stats

    @property
    def use_kl_loss(self) -> bool:
        return self.config.resolved_use_kl_loss()

    @property
    def loss_agg_mode(self) -> str:
        return self.config.resolved_loss_agg_mode()

    @property
    def reward_kl_coef(self) -> float:
        """beta of the KL penalty in the reward: 0 when the KL is a loss term instead."""
        return 0.0 if self.use_kl_loss else self.kl_ctl.value

    def _set_lr(self) -> None:
        """Linear decay to 0 over the run (N+), from the step number alone so a resume matches."""
        lr = self.lr * max(0.0, 1.0 - self.step_count / self.config.steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    @property
    def _sum_over_processes(self) -> core.AllReduce | None:
        """`core.AllReduce` for the batch statistics when several processes train, else None."""
        if self.accelerator.num_processes == 1:
            return None
        device = self.accelerator.device
        return lambda t: self.accelerator.reduce(t.to(device), reduction="sum").to(t.device)

    def _all_processes(self, values: torch.Tensor) -> torch.Tensor:
        """(b,) on each process -> (b * processes,): every process's values, on this device."""
        if self.accelerator.num_processes == 1:
            return values
        return self.accelerator.gather(values.to(self.accelerator.device)).to(values.device)

    def _check_finite(self, name: str, value: torch.Tensor, hint: str = "") -> None:
        """Stop on NaN/inf, on every process at once (one process raising alone would leave the
        others waiting in the next all-reduce)."""
        ok = torch.isfinite(torch.as_tensor(value)).all().float().to(self.accelerator.device)
        if self.accelerator.num_processes > 1:
            dist.all_reduce(ok, op=dist.ReduceOp.MIN)
        if ok.item() > 0:
            return
        last = latest_checkpoint(self.output_dir)
        kept = f"the last good checkpoint is kept at {last} (resume=True continues from it)" if last else \
            "no checkpoint had been written yet"
        hint = f"; {hint}" if hint else ""
        raise NonFiniteError(f"PPO step {self.step_count + 1}: {name} is not finite (NaN or inf){hint}; the run "
                             f"stopped before updating the weights with it, and {kept}.")

    def _metrics(self, r, kl, rewards, returns, signal_std, train, timer, gold=None) -> dict[str, float]:
        mask, beta = r.response_mask, self.reward_kl_coef
        kl_seq = kl.sum(1)  # (b,) nats per completion
        lengths = mask.sum(1).float()
        local = {
            "reward/score": r.raw_scores.float().mean(), "reward/score_std": r.raw_scores.float().std(unbiased=False),
            "reward/score_trained": r.scores.float().mean(),
            "reward/non_score": (-beta * kl_seq).mean(),
            "reward/rlhf": (r.scores.float() - beta * kl_seq).mean(),
            "reward/missing_eos": (~r.finished).float().mean(),
            "kl/mean": kl_seq.mean(), "response/length": lengths.mean(),
            "reward/rlhf_std": signal_std,
            **({"reward/gold": gold.mean(), "reward/gold_std": gold.std(unbiased=False)} if gold is not None else {}),
            **{f"ppo/{k}": torch.tensor(v) for k, v in train.items()},
        }
        if r.values is not None:
            local.update({"ppo/explained_variance": core.explained_variance(r.values, returns, mask),
                          "ppo/values_mean": core.masked_mean(r.values, mask),
                          "ppo/returns_mean": core.masked_mean(returns, mask)})
        if self.config.num_generations > 1:
            # The scores the estimator sees (after normalize_reward, the missing-EOS score and the
            # clip), as TRL logs the rewards its advantages come from: raw scores that differ can
            # all be clipped or penalised to one value, and that group then learns nothing.
            groups = core.as_groups(r.scores.float(), self.config.num_generations)  # (prompts, G)
            local.update({"reward/group_std": groups.std(-1).mean(),
                          "reward/frac_reward_zero_std": (groups == groups[:, :1]).all(-1).float().mean()})
        keys = sorted(local)
        stacked = torch.stack([torch.as_tensor(local[k], dtype=torch.float32).to(self.accelerator.device) for k in keys])
        reduced = self.accelerator.reduce(stacked, reduction="mean")  # averaged over processes
        metrics = {k: float(v) for k, v in zip(keys, reduced.tolist())}
        generated = float(self.accelerator.reduce(lengths.sum().to(self.accelerator.device), reduction="sum"))
        if self.normalize_reward:
            metrics.update({"reward/norm_mean": self.reward_moments.mean, "reward/norm_std": self.reward_moments.std})
        metrics.update({
            "kl/coef": beta, "lr": self.optimizer.param_groups[0]["lr"],
            "episodes": (self.step_count + 1) * self.config.batch_size * self.accelerator.num_processes,
            "perf/tokens_per_s": generated / self.accelerator.num_processes / max(timer["generate"], 1e-9),
            "perf/peak_rss_gb": _peak_rss_gb(),
            **({"perf/peak_gpu_gb": torch.cuda.max_memory_allocated() / 1024**3} if torch.cuda.is_available() else {}),
            **{f"time/{k}": v for k, v in timer.items()},
        })
        metrics["time/step"] = sum(timer.values())
        metrics["time/generate_share"] = timer["generate"] / max(metrics["time/step"], 1e-9)
        return metrics

    def _next_prompts(self):
        """The next batch: a fresh permutation of the prompt set per pass, a function of
        (seed, step) only; each process takes its own slice."""
        cfg, acc = self.config, self.accelerator
        n_prompts = cfg.batch_size // cfg.num_generations  # each is sampled num_generations times
        n, per_step = len(self.prompts), n_prompts * acc.num_processes
        start = self.step_count * per_step + acc.process_index * n_prompts
        out = []
        for pos in range(start, start + n_prompts):
            epoch, i = divmod(pos, n)
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed * 7919 + epoch))
            out.append(self.prompts[int(perm[i])])
        return out

    # --- the run ----------------------------------------------------------------------------

    def train(self) -> list[dict]:
        """Run `config.steps` PPO steps (resuming from the newest checkpoint when config.resume),
        with checkpoints, logs and plots. Writes the trained policy to output_dir/policy."""

        cfg, acc = self.config, self.accelerator
        self._maybe_resume()
        self._write_config()
        log = MetricsLog(self.output_dir, self.step_count, enabled=acc.is_main_process)
        bar = tqdm(total=cfg.steps, initial=self.step_count, desc="ppo", unit="step",
                   disable=not (cfg.progress and acc.is_main_process))
        try:
            while self.step_count < cfg.steps:
                metrics = self.step()
                log.log(self.step_count, metrics)
                log.samples(self.step_count, self.last_rollout, cfg.log_samples)
                self.history.append({"step": self.step_count, **metrics})
                bar.set_postfix(reward=f"{metrics['reward/score']:.3f}", kl=f"{metrics['kl/mean']:.3f}")
                bar.update(1)
                if cfg.save_steps and self.step_count % cfg.save_steps == 0 and self.step_count < cfg.steps:
                    self.save_checkpoint()
        finally:
            bar.close()
            log.close()
        self.save(self.output_dir / "policy")
        if acc.is_main_process:
            self._write_summary(log.rows)
        return self.history

    def save_checkpoint(self) -> Path:
        extra = {"kl_coef": self.kl_ctl.value, "reward_moments": self.reward_moments.state_dict()}
        return save_checkpoint(self.output_dir, self.step_count, self.actor_critic,
                               self.optimizer, extra, self.accelerator, self.config.save_total_limit)

    def _maybe_resume(self) -> None:
        if not self.config.resume:
            return
        path = latest_checkpoint(self.output_dir)
        if path is None:
            print(f"[rlhf ppo] resume: no checkpoint in {self.output_dir / 'checkpoints'}; starting at step 0")
            return
        state = load_checkpoint(path, self.actor_critic, self.optimizer, self.accelerator)
        self.step_count, self.kl_ctl.value = int(state["step"]), float(state["kl_coef"])
        if "reward_moments" in state:
            self.reward_moments.load_state_dict(state["reward_moments"])
        if self.accelerator.is_main_process:
            print(f"[rlhf ppo] resumed from {path} at step {self.step_count}")

    def save(self, path: str | Path) -> Path:
        """Write the policy and tokenizer: a LoRA adapter folder (loadable by
        `rlhf.load_causal_lm`) or, with full fine-tuning or a merged SFT adapter under the
        LoRA, the full model."""
        path = Path(path)
        self.accelerator.wait_for_everyone()
        state = None
        if self.config.fsdp:  # gathered to process 0 (every process takes part)
            from rlhf.fsdp import full_state_dict

            state = full_state_dict(self.policy_and_reference.model)
        if self.accelerator.is_main_process:
            save_policy(self.policy_and_reference, self.sft_source, path, state_dict=state)
            self.tokenizer.save_pretrained(path)
        self.accelerator.wait_for_everyone()
        return path

    def resolved_config(self) -> dict[str, Any]:
        cfg = self.config
        return {**cfg.to_dict(), "learning_rate": self.lr, "critic": self.critic_kind,
                "use_kl_loss": self.use_kl_loss, "loss_agg_mode": self.loss_agg_mode,
                "scale_rewards": cfg.resolved_scale_rewards(),
                "bf16": self.dtype == torch.bfloat16, "device": str(self.accelerator.device),
                "num_processes": self.accelerator.num_processes, "reference": self.policy_and_reference.layout,
                "fsdp": cfg.fsdp, "reward_unit": "reward_fn's own units" if self.reward_fn is not None else REWARD_UNIT,
                "logprobs_from_generate": self.logprobs_from_generate}

    def _write_config(self) -> None:
        if self.accelerator.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            save_resolved_config("ppo", self.resolved_config(), self.output_dir)

    def _write_summary(self, rows: list[dict]) -> None:
        plot_metrics(rows, self.output_dir / "plots")
        summary = {"steps": len(rows), "final": rows[-1] if rows else {},
                   "reward_unit": self.resolved_config()["reward_unit"]}
        for key, name in (("reward/score", "score"), ("reward/gold", "gold")):
            values = [r[key] for r in rows if key in r]
            tenth = max(1, len(values) // 10)
            if values or key == "reward/score":
                summary[f"{name}_first_tenth"] = sum(values[:tenth]) / tenth if values else None
                summary[f"{name}_last_tenth"] = sum(values[-tenth:]) / tenth if values else None
        reports = [r for r in rows if "length/policy_tokens" in r]
        if reports:
            summary["length_report"] = {k: reports[-1][k] for k in reports[-1] if k.startswith("length/")}
        # How many steps moved the policy (value warm-up, rewards without spread and, with
        # mask_truncated_completions, steps whose every completion was cut do not), and the mean
        # share of completions left out of the loss: a run that trained on nothing says so.
        summary["policy_updated_steps"] = sum(1 for r in rows if r.get("ppo/policy_updated") == 1.0)
        masked = [r["ppo/masked_truncated"] for r in rows if "ppo/masked_truncated" in r]
        if masked:
            summary["masked_truncated_mean"] = sum(masked) / len(masked)
        (self.output_dir / "metrics.json").write_text(json.dumps(summary, indent=2))


def run_ppo(config: PPOConfig) -> Path:
    """The `rlhf ppo` entry point: train, then return the folder holding the trained policy."""
    trainer = PPOTrainer(config)
    trainer.train()
    return Path(config.output_dir) / "policy"


# --- small helpers -------------------------------------------------------------------------------


def _as_prompts(source) -> list:
    """Prompts from a path (None = built-in prompts_train), strings, message lists, Prompts, or rows
    as a prompts file has them (dicts with `prompt` or `messages`, an optional `id` and other
    columns; a `datasets.Dataset` of such rows, as TRL's trainers take, or a pandas DataFrame).
    ValueError for a mapping (a DatasetDict, a dict of columns): its keys are no prompts."""
    if source is None:
        source = builtin("prompts_train")
    if isinstance(source, (str, Path)):
        return load_prompts(source)
    if isinstance(source, dict):  # a DatasetDict is one: list() would make each split's name a prompt
        raise ValueError(f"prompts is a mapping (keys {', '.join(map(repr, list(source)[:4]))}): give rows, e.g. one "
                         "split of a datasets.DatasetDict (prompts=dataset['train'])")
    # A pandas DataFrame iterates over its column names: its rows are the prompts, with its empty
    # cells (NaN) as missing values (None), as a JSON row would lack them.
    if hasattr(source, "to_dict") and hasattr(source, "columns") and hasattr(source, "notna"):
        items = source.astype(object).where(source.notna(), None).to_dict("records")
    else:
        items = list(source)
    if items and all(isinstance(item, dict) for item in items):
        out = prompts_from_rows(enumerate(items), "prompts", "prompt")
    else:
        out = []
        for i, item in enumerate(items):
            if isinstance(item, Prompt):
                out.append(item)
            elif isinstance(item, str):
                out.append(Prompt(id=str(i), messages=[{"role": "user", "content": item}]))
            elif isinstance(item, dict):
                raise ValueError(f"prompts[{i}] is a row (a dict) among {type(items[0]).__name__}s: give rows only, "
                                 "or no rows")
            else:
                out.append(Prompt(id=str(i), messages=list(item)))
    if not out:
        raise ValueError("no prompts given")
    return out


def check_rule_reward(preference: str, prompts=None) -> None:
    """What PPOTrainer checks of a reward_preference before any model loads, for `rlhf pipeline`
    to check before its first stage: the prompts (a path, rows...; None = the built-in set) read,
    none of their columns named like a reward argument, and the rule loads and finds the columns it
    requires. DataError, ValueError or ConfigError naming the problem."""
    rows = _as_prompts(prompts)
    preference_reward_fn(preference, tuple(prompt_columns(rows, [])), _prompts_source(prompts))


def _prompts_source(source) -> str:
    """The prompts in words, for an error: their file, the built-in set, or the rows given."""
    if source is None:
        return f"the built-in prompts_train ({builtin('prompts_train')})"
    if isinstance(source, (str, Path)):
        return f"the prompts file {source}"
    return "the prompts given to PPOTrainer"


def _gold_fn(gold_fn, gold_preference: str | None):
    """The gold preference: the callable given, else the one config.gold_preference names."""
    if gold_fn is not None or not gold_preference:
        return gold_fn
    return get_preference(gold_preference)


def preference_reward_fn(preference, columns: tuple[str, ...] = (), source: str = "the prompts") -> RewardFn:
    """A preference (`fn(prompt, completion) -> float`, rlhf.labelers: a registered name,
    `package.module:function` or the callable) as a batched reward_fn: one score per completion.
    The prompt comes as the labelers give it: the conversation to a rule that takes conversations
    (`takes_conversations`, or a message-typed first parameter; the suite's rules), else the last
    user message's text. A rule that names `prompt_id` (or takes **kwargs) also gets the prompt's
    id, to look up a reference answer; one that names a column of the prompts file (e.g.
    `answer`; `columns` names the prompts' columns) gets that prompt's value of it, and may require
    it. ConfigError when it does not load or cannot be called so (a column it requires and no row of
    the prompts has: named with `source`, the prompts' file, and the columns there are); TypeError
    naming the completion when it returns something other than a number."""
    from rlhf.data.conversation import takes_conversations, wants_conversations

    try:
        rule = get_preference(preference, keywords=("prompt_id", *columns))
    except ConfigError as err:
        missing = getattr(err, "missing", None)
        if missing:
            have = (f"its columns: {', '.join(columns)}" if columns
                    else "it has no column besides id and prompt/messages")
            raise ConfigError(f"reward_preference {preference!r} requires the prompt column {missing[0]!r}, which no "
                              f"row of {source} has ({have}); a rule gets (prompt, completion), prompt_id and the "
                              "prompts' columns by name") from None
        raise ConfigError(f"reward_preference: {err}") from None

    def reward_fn(prompts, completions, prompt_ids=None, **columns):
        per_row = {**({"prompt_id": prompt_ids} if prompt_ids is not None else {}), **columns}
        wanted = accepted_keywords(rule, per_row, positional=2)  # a column `completion` is not the answer
        scores = []
        for i, (prompt, completion) in enumerate(zip(prompts, completions)):
            value = rule(prompt, completion, **{name: values[i] for name, values in wanted.items()})
            try:
                scores.append(float(value))
            except (TypeError, ValueError):
                raise TypeError(f"reward_preference {preference!r} returned {value!r} for completion {i} of the "
                                "batch: it must return one number per (prompt, completion)") from None
        return scores

    return takes_conversations(reward_fn) if wants_conversations(rule) else reward_fn


def _adopt_model(model):
    """A model object passed by research code: plain causal LMs and PeftModels with a mergeable
    adapter are taken as they are; other adapters need their folder (to load a trainable copy)."""
    kind = adapter_kind(model)
    if kind in ("series", "parallel") or (kind == "peft" and model.active_peft_config.is_prompt_learning):
        raise ValueError(f"a model object with a {kind} adapter cannot be copied into policy + reference here: "
                         "pass its SFT output folder as policy=... instead")
    return model


def _adam(params, **kwargs) -> torch.optim.Adam:
    """torch's fused Adam where this torch and device have it, else the multi-tensor one."""
    try:
        return torch.optim.Adam(params, fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, foreach=True, **kwargs)


@torch.no_grad()
def _update_norm(params: list, before: list) -> float:
    """L2 norm of the change of `params` since `before` (same order): the step the optimizer took."""
    total = sum(float((p.detach().float() - b.float()).pow(2).sum()) for p, b in zip(params, before))
    return total ** 0.5


def _peak_rss_gb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024**3 if sys.platform == "darwin" else 1024**2)


class _Timer(dict):
    """Seconds per named phase: `with timer("generate"): ...`."""

    def __call__(self, name: str):
        timer = self

        class _Phase:
            def __enter__(self):
                self.start = time.perf_counter()

            def __exit__(self, *exc):
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                timer[name] = timer.get(name, 0.0) + time.perf_counter() - self.start

        return _Phase()
