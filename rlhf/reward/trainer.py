"""`train_reward(config)`: the `rlhf reward` stage, in numbered steps.

1. read rankings or pairs in any published layout (bad rows raise, or are skipped and counted),
   merge labelers if asked, split by prompt (the whole conversation);
2. build the seq-cls model from the base or SFT output, set what trains (LoRA / partial / full);
3. tokenize every completion once with its conversation, cut to max_length (the prompt's oldest
   turns first, the completion's tail last); a ranking whose differently ranked completions became
   identical token sequences is dropped and counted (it would train at a constant loss of log 2);
4. train: each batch scores all K completions of several rankings in one forward pass, the loss
   forms every ordered pair from those scores (rlhf/reward/loss.py); checkpoint each epoch;
5. evaluate pair accuracy, margin and loss on train and held-out prompts, per labeler too;
6. merge LoRA, calibrate on completions of the user's domain (by default the training rankings'
   own: their prompts, their policy's answers): rewards are (raw + bias) / std, 0 = the mean
   calibration completion, 1 = one std; save a plain seq-cls folder recording that choice.

Outputs in `output_dir`: the model (config.json carries `rlhf_reward_bias` and `rlhf_reward_std`),
tokenizer, rlhf_config.json (resolved settings), metrics.json, logs/ (TensorBoard), checkpoint/ (resume).

TensorBoard scalars:
| name | meaning |
|---|---|
| reward/loss | ranking loss of the step (mean over rankings of the mean over their pairs) |
| reward/accuracy | share of the step's pairs where r_better > r_worse (not logged for a step without pairs) |
| reward/margin | mean r_better - r_worse over the step's pairs (idem) |
| reward/lr | learning rate |
| reward/eval_accuracy, reward/eval_margin, reward/eval_loss | the same on held-out prompts, per epoch |
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import time
from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from rlhf.adapters import load_trainable_state, trainable_state
from rlhf.data import DataError, Ranking, builtin, load_demonstrations, load_preferences, print_skipped_rows
from rlhf.data.conversation import normalize_prompt
from rlhf.finite import check_finite_step, check_finite_weights
from rlhf.models import count_parameters, load_tokenizer, pick_device
from rlhf.outputs import check_checkpoints, check_output_dir
from rlhf.plots import plot_series, points
from rlhf.reward.config import PAIRS_PER_STEP, RewardConfig
from rlhf.reward.data import labeler_agreement, merge_labelers, split_by_prompt
from rlhf.reward.loss import center_penalty, pair_stats, ranking_index, ranking_loss
from rlhf.reward.model import (REWARD_UNIT, autocast, build_reward_model, encode, encode_detailed, merged,
                               prepare_for_training, save_reward_model, score_ids, sequence_scores)
from rlhf.sequences import pad, pad_shared_prompts
from rlhf.stages import ConfigError, save_resolved_config

CALIBRATION_LIMIT = 512  # completions scored to centre the rewards: enough for a stable mean
CHECKPOINT = "checkpoint/state.pt"
# Settings that change what a checkpoint means; resuming with any of them changed is refused.
RESUME_KEYS = ("data", "model", "train", "lora_r", "lora_alpha", "partial_layers", "learning_rate", "batch_size",
               "grad_accum", "max_length", "max_prompt_length", "eval_fraction", "seed", "merge_labelers", "tie_loss",
               "tie_strength", "center_rewards_coefficient")


def train_reward(config: RewardConfig) -> dict:
    """Train, evaluate, calibrate and save a reward model; returns the metrics written to metrics.json."""
    out = Path(config.output_dir)
    check_output_dir("reward", out, {"--model": config.model})
    check_checkpoints("reward", out, [out / CHECKPOINT] if (out / CHECKPOINT).is_file() else [], (out / CHECKPOINT).parent,
                      config.resume, config.overwrite_output_dir)
    lr = config.resolved_learning_rate()
    device = pick_device(config.device)
    rank, world = _join_processes(config, device)
    main = rank == 0  # process 0 alone writes files and shows progress
    torch.manual_seed(config.seed)  # LoRA's A matrices: a resumed run must rebuild the same start

    # 1. data
    train_set, eval_set, all_rankings, bad = _read_data(config)
    resolved = dataclasses.replace(config, learning_rate=lr, batch_size=config.batch_size or auto_batch_size(train_set))
    out.mkdir(parents=True, exist_ok=True)  # only now: refused data leaves no output folder behind
    if main:
        save_resolved_config("reward", resolved, out)
    # 2. model
    tokenizer = load_tokenizer(config.model)
    model = build_reward_model(config.model, tokenizer.pad_token_id, seed=config.seed)
    model = prepare_for_training(model, config.train, config.lora_r, config.lora_alpha, config.partial_layers)
    model.to(device)
    trainable, total = count_parameters(model)
    if config.fsdp:  # after counting: FSDP2 turns parameters into shards
        from rlhf.fsdp import shard_model

        shard_model(model)
    # 3. tokens
    train_examples, train_cut = encode_rankings(tokenizer, train_set, config.max_length, config.max_prompt_length)
    eval_examples, eval_cut = encode_rankings(tokenizer, eval_set, config.max_length, config.max_prompt_length)
    data_loss = truncation_report(train_cut, eval_cut, config, len(bad))
    if not train_examples:
        raise DataError(config.data, None, "chosen", f"every training ranking became identical token sequences at "
                                                     f"max_length={config.max_length}: raise --max_length")
    add_completion_lengths(tokenizer, train_examples, train_set)
    add_completion_lengths(tokenizer, eval_examples, eval_set)
    # 4. train
    writer = SummaryWriter(str(out / "logs")) if main else _NoWriter()
    started = time.perf_counter()
    progress = fit(model, train_examples, eval_examples, resolved, tokenizer.pad_token_id, device, out, writer,
                   rank=rank, world=world)
    train_seconds = time.perf_counter() - started
    # 5. evaluate the model that is saved (LoRA merged)
    model = merged(model).eval()
    metrics = {
        "train": evaluate(model, train_examples, tokenizer.pad_token_id, config),
        "eval": evaluate(model, eval_examples, tokenizer.pad_token_id, config) if eval_examples else None,
        "labeler_agreement": labeler_agreement(all_rankings),
        "skipped_bad_rows": len(bad), "bad_rows": [str(e) for e in bad[:20]], "data_loss": data_loss,
        "data": _data_summary(train_set, eval_set),
        "steps": progress["step"], "steps_without_pairs": progress["steps_without_pairs"],
        "epochs": progress["epoch"], "epoch_seconds": progress["epoch_seconds"],
        "epoch_cpu_seconds": progress["epoch_cpu_seconds"],
        "train_seconds": train_seconds, "trainable_parameters": trainable, "total_parameters": total,
        "learning_rate": lr, "batch_size": resolved.batch_size, "device": str(device), "num_processes": world,
        "fsdp": config.fsdp,
    }
    if metrics["eval"]:
        _log_eval(writer, metrics["eval"], progress["step"])
        progress["history"].append({"step": progress["step"], "eval_loss": metrics["eval"]["loss"],
                                    "eval_accuracy": metrics["eval"]["accuracy"]})
    metrics["history"] = progress["history"]
    if main:
        plot_reward(progress["history"], out / "plots")
    writer.close()
    # 6. calibrate and save (sharded: every process scores the same completions in step, then the
    # full weights are gathered to process 0, which writes them)
    bias, std, calibration = calibrate(model, tokenizer, config, train_set)
    metrics["calibration"] = calibration
    state = None
    if config.fsdp:
        from rlhf.fsdp import full_state_dict

        state = full_state_dict(model)  # collective: every process takes part; process 0 gets the tensors
    if main:
        if config.fsdp:  # never weights holding NaN or inf over a good earlier output
            check_finite_weights(_Named(state), "rlhf reward", out)
        else:
            check_finite_weights(model.to("cpu"), "rlhf reward", out)
        save_reward_model(model, tokenizer, out, bias, std, config.max_length,
                          {"source": calibration["source"], "n": calibration["n"]}, state_dict=state)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
        _print_summary(metrics, out)
    if world > 1:
        torch.distributed.barrier()
    return metrics


def _join_processes(config: RewardConfig, device) -> tuple[int, int]:
    """(rank, world size): (0, 1) unless --fsdp, which joins torchrun's processes."""
    if not config.fsdp:
        return 0, 1
    import torch.distributed as dist

    from rlhf import fsdp

    fsdp.check_layout(config.train, "--train")
    fsdp.init_process_group(str(device))
    return dist.get_rank(), dist.get_world_size()


class _NoWriter:
    """TensorBoard writer of the processes that do not log."""

    def add_scalar(self, *args, **kwargs):
        pass

    def flush(self):
        pass

    def close(self):
        pass


# --- 1. data ------------------------------------------------------------------------------------


def _read_data(config: RewardConfig):
    if not config.data:
        raise DataError("--data", None, "data", "no rankings given: pass --data FILE (rankings JSONL or pairs)")
    rankings, bad = load_preferences(config.data, skip_bad=config.skip_bad_rows,
                                     margin_from_scores=config.margin_from_scores)
    print_skipped_rows("rlhf reward", config.data, bad, "metrics.json skipped_bad_rows")
    if config.merge_labelers:
        rankings = merge_labelers(rankings)
    train_set, eval_set = split_by_prompt(rankings, config.eval_fraction, config.seed)
    if not any(r.pairs() for r in train_set):
        raise DataError(config.data, None, "ranking", "no training ranking orders two completions (all ties)")
    return train_set, eval_set, rankings, bad


def auto_batch_size(rankings: list[Ranking]) -> int:
    """Rankings per step holding about PAIRS_PER_STEP strict pairs: 8 for pairs, 1 for K=4 rankings."""
    pairs = sum(len(r.pairs()) for r in rankings) / max(len(rankings), 1)
    return max(1, round(PAIRS_PER_STEP / max(pairs, 1.0)))


def _data_summary(train_set: list[Ranking], eval_set: list[Ranking]) -> dict:
    """Counts for metrics.json. A ranking that is one tie (every completion equal) gives no pair:
    with the default tie_loss="none" it carries no training signal, which the user should know."""
    return {
        "train_rankings": len(train_set), "eval_rankings": len(eval_set),
        "train_prompts": len({r.key for r in train_set}), "eval_prompts": len({r.key for r in eval_set}),
        "train_pairs": sum(len(r.pairs()) for r in train_set), "eval_pairs": sum(len(r.pairs()) for r in eval_set),
        "train_tie_only_rankings": sum(not r.pairs() for r in train_set),
        "eval_tie_only_rankings": sum(not r.pairs() for r in eval_set),
        "completions_per_ranking": sorted({len(r.completions) for r in train_set + eval_set}),
    }


# --- 3. tokens ----------------------------------------------------------------------------------


def encode_rankings(tokenizer, rankings: list[Ranking], max_length: int,
                    max_prompt_length: int | None = None) -> tuple[list[dict], dict]:
    """Per ranking: token ids of its K completions (each with the whole conversation), its tiers,
    margin (0 if none) and labeler; and counts of what was cut or dropped to fit `max_length`.

    A ranking in which two completions of different tiers have identical token sequences is left
    out (its pairs cannot be learned: the loss is log 2 whatever the weights) and counted."""
    prompts = [r.prompt for r in rankings for _ in r.completions]
    completions = [c for r in rankings for c in r.completions]
    encoded = encode_detailed(tokenizer, prompts, completions, max_length, max_prompt_length)
    counts = {"rankings": len(rankings), "completions": len(encoded),
              "prompt_turns_dropped": sum(e.turns_dropped > 0 for e in encoded),
              "prompt_tokens_cut": sum(e.prompt_tokens_cut > 0 for e in encoded),
              "completion_tail_cut": sum(e.completion_tokens_cut > 0 for e in encoded),
              "rankings_dropped_identical": 0, "pairs_dropped_identical": 0}
    out, start = [], 0
    for r in rankings:
        k = len(r.completions)
        mine = encoded[start:start + k]
        start += k
        same = [(b, w) for b, w, _ in r.pairs() if mine[b].ids == mine[w].ids]
        if same:
            counts["rankings_dropped_identical"] += 1
            counts["pairs_dropped_identical"] += len(r.pairs())
            continue
        out.append({"ids": [e.ids for e in mine], "tiers": r.ranking, "labeler": r.labeler,
                    "margin": float(r.margin or 0.0), "meta": r.meta})
    return out, counts


def truncation_report(train: dict, held_out: dict, config: RewardConfig, bad_rows: int) -> dict:
    """What the reward stage cut or dropped, and why, for metrics.json (`data_loss`) and the console."""
    report = {"stage": "reward", "max_length": config.max_length, "max_prompt_length": config.max_prompt_length,
              "skipped_bad_rows": bad_rows, "train": train, "eval": held_out}
    for split, c in (("train", train), ("eval", held_out)):
        if c["prompt_turns_dropped"] or c["prompt_tokens_cut"] or c["completion_tail_cut"]:
            print(f"[rlhf reward] {split}: to fit max_length={config.max_length}, {c['prompt_turns_dropped']} of "
                  f"{c['completions']} sequences lost the prompt's oldest turns, {c['prompt_tokens_cut']} the "
                  f"prompt's oldest tokens, {c['completion_tail_cut']} the completion's tail")
        if c["rankings_dropped_identical"]:
            print(f"[rlhf reward] {split}: dropped {c['rankings_dropped_identical']} of {c['rankings']} rankings "
                  f"({c['pairs_dropped_identical']} pairs) whose chosen and rejected are identical token sequences "
                  f"(after truncation to {config.max_length} tokens); raise --max_length to keep them")
    return report


def add_completion_lengths(tokenizer, examples: list[dict], rankings: list[Ranking]) -> None:
    """Store each completion's length in tokens (the answer alone) as `lengths`, for the length-bias check."""
    from rlhf.reward.bias import completion_token_lengths

    kept = iter(examples)  # encode_rankings may have left rankings out: match by their tiers object
    pending = next(kept, None)
    for r in rankings:
        if pending is not None and pending["tiers"] is r.ranking:
            pending["lengths"] = completion_token_lengths(tokenizer, r.completions)
            pending = next(kept, None)


def make_batch(examples: list[dict], pad_id: int, share_prompt: bool = False) -> dict:
    """All completions of the given rankings in one padded batch, plus the pair/tie index.
    `share_prompt`: the layout of `rlhf.sequences.pad_shared_prompts`, so each ranking's
    conversation runs once for its K completions; else plain right padding.
    Returns {input_ids (n, t), attention_mask (n, t), prompt_len, prefix_len, group_sizes (rows run
    per shared prompt, `pad_shared_prompts`),
    index (RankingIndex), margin (g,)}."""
    rows, sizes = [x for e in examples for x in e["ids"]], [len(e["ids"]) for e in examples]
    if share_prompt:
        input_ids, mask, prompt_len, prefix_len, shared = pad_shared_prompts(rows, sizes, pad_id)
    else:
        (input_ids, mask), prompt_len, prefix_len, shared = pad(rows, pad_id, "right"), 0, 0, sizes
    return {"input_ids": input_ids, "attention_mask": mask, "prompt_len": prompt_len, "prefix_len": prefix_len,
            "group_sizes": shared, "index": ranking_index([e["tiers"] for e in examples]),
            "margin": torch.tensor([e["margin"] for e in examples], dtype=torch.float32)}


def batch_scores(model, batch: dict, device) -> torch.Tensor:
    """Raw scores of a `make_batch` batch, under autocast on CUDA.  -> (n,) float32"""
    with autocast(device):
        return sequence_scores(model, batch["input_ids"].to(device), batch["attention_mask"].to(device),
                               batch["prefix_len"], prompt_len=batch["prompt_len"], group_sizes=batch["group_sizes"])


# --- 4. train -----------------------------------------------------------------------------------


def fit(model, examples: list[dict], eval_examples: list[dict], config: RewardConfig, pad_id: int, device,
        out: Path, writer, rank: int = 0, world: int = 1) -> dict:
    """The training loop. Batch order depends only on (seed, epoch), so a resumed run replays it.
    Held-out metrics go to TensorBoard after every epoch but the last (the caller logs the final
    ones). With `world` processes each optimizer step takes batch_size x grad_accum x world
    rankings, process `rank` the rank-th share. Returns progress: step, epoch, epoch_seconds."""
    per_step = config.batch_size * config.grad_accum * world
    steps_per_epoch = math.ceil(len(examples) / per_step)
    total = config.max_steps or config.epochs * steps_per_epoch
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=0.0)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * total), total)
    progress = {"step": 0, "epoch": 0, "epoch_seconds": [], "epoch_cpu_seconds": [], "history": [],
                "steps_without_pairs": 0}
    if config.resume and (out / CHECKPOINT).exists():
        progress = load_checkpoint(out / CHECKPOINT, model, optimizer, scheduler, config)
    bar = tqdm(total=total, initial=progress["step"], desc="reward", unit="step", disable=rank != 0)
    while progress["step"] < total:
        epoch_start, epoch_cpu = time.perf_counter(), time.process_time()
        order = _epoch_order(len(examples), config.seed, progress["epoch"])
        groups = [order[i:i + per_step] for i in range(0, len(order), per_step)]
        for group in groups[progress["step"] - progress["epoch"] * steps_per_epoch:]:
            stats = train_step(model, [examples[i] for i in group], config, pad_id, device, rank, world)
            grad_norm = _clip_grad_norm(params, 1.0, config.fsdp)  # TRL's default max_grad_norm
            check_finite_step("rlhf reward", progress["step"] + 1, stats["loss"], grad_norm, _kept(out))
            optimizer.step(), scheduler.step(), optimizer.zero_grad(set_to_none=True)
            progress["step"] += 1
            progress["steps_without_pairs"] += stats["accuracy"] is None
            bar.update(1), bar.set_postfix(loss=f"{stats['loss']:.3f}", acc=_fmt(stats["accuracy"]))
            progress["history"].append({"step": progress["step"], "loss": stats["loss"], "accuracy": stats["accuracy"]})
            if progress["step"] % config.logging_steps == 0:
                _log(writer, stats, scheduler.get_last_lr()[0], progress["step"])
            if config.save_steps and progress["step"] % config.save_steps == 0:
                save_checkpoint(out / CHECKPOINT, model, optimizer, scheduler, progress, config)
            if progress["step"] >= total:
                break
        if progress["step"] % steps_per_epoch == 0 or progress["step"] >= total:
            progress["epoch_seconds"].append(time.perf_counter() - epoch_start)
            progress["epoch_cpu_seconds"].append(time.process_time() - epoch_cpu)  # robust to other jobs' load
            progress["epoch"] = math.ceil(progress["step"] / steps_per_epoch)
            if progress["step"] < total and eval_examples:
                held_out = evaluate(model, eval_examples, pad_id, config)
                _log_eval(writer, held_out, progress["step"])
                progress["history"].append({"step": progress["step"], "eval_loss": held_out["loss"],
                                            "eval_accuracy": held_out["accuracy"]})
            save_checkpoint(out / CHECKPOINT, model, optimizer, scheduler, progress, config)
    bar.close()
    return progress


def _fmt(value: float | None) -> str:
    """A progress-bar figure; a dash for a step that had nothing to measure (no pairs)."""
    return "-" if value is None else f"{value:.2f}"


def _kept(out: Path) -> str:
    last = out / CHECKPOINT
    return (f"the last checkpoint {last} is kept (--resume continues from it)" if last.exists() else
            f"no checkpoint had been written yet, and nothing was saved to {out}")


def _epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    order = list(range(n))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return order


def train_step(model, group: list[dict], config: RewardConfig, pad_id: int, device, rank: int = 0,
               world: int = 1) -> dict:
    """Forward and backward over one optimizer step's rankings, `batch_size` rankings per pass.
    Gradients accumulate in the parameters; returns the step's loss, accuracy and margin (accuracy
    and margin None when every ranking of the step is a single tie: no pair to measure).

    Each pass is weighed by its share of the group's rankings, so the step's gradient is that of
    the mean loss over them however they are cut into passes. With `world` processes, process
    `rank` takes the rank-th `batch_size x grad_accum` rankings; FSDP2 averages the gradients over processes,
    so a full group gives one process's gradient with grad_accum x world passes. Every process
    runs as many passes as process 0 (a short last group gets weight-0 passes), since each
    sharded forward and backward is a collective."""
    if not model.training:  # .train() walks every module: 10% of a tiny model's step
        model.train()
    per = config.batch_size * config.grad_accum
    mine = group[rank * per:(rank + 1) * per] if world > 1 else group
    chunks = [mine[i:i + config.batch_size] for i in range(0, len(mine), config.batch_size)]
    passes = math.ceil(min(len(group), per) / config.batch_size) if world > 1 else len(chunks)
    losses, correct, margins = [], [], []
    for k in range(passes):
        chunk = chunks[k] if k < len(chunks) else group[:config.batch_size]
        # Each pass's loss is a mean over its rankings; weighted by its share of the step's rankings,
        # the step's gradient is that of the mean over all of them. 1 / passes would give the
        # rankings of a short last pass (a step of 5 in passes of 4 + 1) more weight than the rest.
        weight = len(chunk) * world / len(group) if k < len(chunks) else 0.0
        # one forward per pass on every process under FSDP (each is a collective): no prompt pass there
        batch = make_batch(chunk, pad_id, share_prompt=config.share_prompt and not config.fsdp)
        scores = batch_scores(model, batch, device)  # (n,)
        index, margin = batch["index"].to(device), batch["margin"].to(device)
        loss = ranking_loss(scores, index, margin, config.tie_loss, config.tie_strength)
        if config.center_rewards_coefficient:
            loss = loss + config.center_rewards_coefficient * center_penalty(scores, completion_groups(chunk, device),
                                                                             len(chunk))
        (loss * weight).backward()
        if k < len(chunks):
            stats = pair_stats(scores.detach(), index)
            losses.append(loss.item() * len(chunk)), correct.append(stats["correct"]), margins.append(stats["margin"])
    correct, margins = torch.cat(correct) if correct else torch.zeros(0), torch.cat(margins) if margins else torch.zeros(0)
    sums = torch.tensor([sum(losses), sum(len(c) for c in chunks), correct.float().sum().item(), correct.numel(),
                         margins.float().sum().item(), margins.numel()], dtype=torch.float64)
    if world > 1:  # the step's figures over every process's rankings
        sums = sums.to(device)
        torch.distributed.all_reduce(sums)
        sums = sums.cpu()
    loss_sum, n, correct_sum, n_pairs, margin_sum, n_margins = sums.tolist()
    # None, not NaN, when the step had no pair (every ranking one tie): None is JSON's null
    return {"loss": loss_sum / n if n else float("nan"), "accuracy": correct_sum / n_pairs if n_pairs else None,
            "margin": margin_sum / n_margins if n_margins else None}


def _clip_grad_norm(params, max_norm: float, sharded: bool) -> float:
    """Clip to `max_norm`; the total norm before clipping (of the full gradient when sharded)."""
    if sharded:
        from rlhf.fsdp import clip_grad_norm

        return float(clip_grad_norm(params, max_norm))
    return float(torch.nn.utils.clip_grad_norm_(params, max_norm))


class _Named:
    """A gathered state dict seen as a model's named parameters, for `check_finite_weights`."""

    def __init__(self, state: dict):
        self.state = state

    def named_parameters(self):
        return iter(self.state.items())


def completion_groups(examples: list[dict], device) -> torch.Tensor:
    """The ranking of each completion in a batch's flat score vector.  -> (n,) long"""
    return torch.tensor([g for g, e in enumerate(examples) for _ in e["ids"]], dtype=torch.long, device=device)


def _mean(values: torch.Tensor) -> float | None:
    """Mean of `values`, None when empty (no pairs): None is JSON's null, where NaN is not JSON."""
    return values.float().mean().item() if values.numel() else None


def _scalars(writer, values: dict, step: int) -> None:
    for name, value in values.items():
        if value is not None:
            writer.add_scalar(name, value, step)


def _log(writer, stats: dict, lr: float, step: int) -> None:
    _scalars(writer, {"reward/loss": stats["loss"], "reward/accuracy": stats["accuracy"],
                      "reward/margin": stats["margin"], "reward/lr": lr}, step)


def _log_eval(writer, result: dict, step: int) -> None:
    _scalars(writer, {"reward/eval_accuracy": result["accuracy"], "reward/eval_margin": result["mean_margin"],
                      "reward/eval_loss": result["loss"]}, step)
    writer.flush()


# --- checkpoints --------------------------------------------------------------------------------


def save_checkpoint(path: Path, model, optimizer, scheduler, progress: dict, config: RewardConfig) -> None:
    """Trainable weights, optimizer, scheduler and progress, written atomically. Sharded (FSDP2):
    the full tensors, gathered to process 0, which writes the same file as an unsharded run."""
    from rlhf.checkpoints import atomic_save

    if config.fsdp:
        from rlhf import fsdp

        names = {n for n, p in model.named_parameters() if p.requires_grad}
        trainable = {k: v for k, v in fsdp.full_state_dict(model).items() if k in names}
        optim_state = fsdp.full_optimizer_state(model, optimizer)
        if torch.distributed.get_rank() != 0:
            return
    else:
        trainable, optim_state = trainable_state(model), optimizer.state_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "trainable": trainable,
        "optimizer": optim_state, "scheduler": scheduler.state_dict(),
        "progress": dict(progress), "config": {k: getattr(config, k) for k in RESUME_KEYS},
    }
    atomic_save(state, path)  # one file, renamed into place: a kill mid-save leaves the previous one


def load_checkpoint(path: Path, model, optimizer, scheduler, config: RewardConfig) -> dict:
    state = torch.load(path, map_location="cpu", weights_only=False)
    changed = [k for k in RESUME_KEYS if state["config"].get(k) != getattr(config, k)]
    if changed:
        raise ConfigError(f"cannot resume from {path}: settings changed since it was written: {', '.join(changed)} "
                         "(use another --output_dir, or --overwrite_output_dir true to start over)")
    if config.fsdp:  # process 0 holds the full tensors; each process loads its shards
        from rlhf import fsdp

        main = torch.distributed.get_rank() == 0
        fsdp.load_full_state_dict(model, state["trainable"] if main else {})
        fsdp.load_full_optimizer_state(model, optimizer, state["optimizer"] if main else {})
    else:
        load_trainable_state(model, state["trainable"], path)
        optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    print(f"[rlhf reward] resumed from {path} at step {state['progress']['step']}")
    return {"epoch_cpu_seconds": [], "history": [], "steps_without_pairs": 0, **state["progress"]}


# --- 5. evaluate --------------------------------------------------------------------------------


@torch.no_grad()
def evaluate(model, examples: list[dict], pad_id: int, config: RewardConfig, batch_size: int = 32) -> dict:
    """Pair accuracy, mean margin and ranking loss over all `examples`, and accuracy per labeler."""
    was_training = model.training
    model.eval()
    scores = score_ids(model, [x for e in examples for x in e["ids"]], pad_id, batch_size,
                       group_sizes=[len(e["ids"]) for e in examples]).float()
    model.train(was_training)
    index = ranking_index([e["tiers"] for e in examples]).to(scores.device)
    margin = torch.tensor([e["margin"] for e in examples], device=scores.device)
    stats = {k: v.cpu() for k, v in pair_stats(scores, index).items()}
    labelers = [examples[g]["labeler"] or "?" for g in index.pair_group.tolist()]
    per_labeler = {}
    for name in sorted(set(labelers)):
        mine = torch.tensor([lab == name for lab in labelers])
        per_labeler[name] = {"accuracy": _mean(stats["correct"][mine]), "pairs": int(mine.sum())}
    result = {
        "accuracy": _mean(stats["correct"]), "mean_margin": _mean(stats["margin"]),
        "loss": ranking_loss(scores, index, margin, config.tie_loss, config.tie_strength).item(),
        "pairs": int(index.better.numel()), "rankings": len(examples), "accuracy_per_labeler": per_labeler,
    }
    if examples and all("lengths" in e for e in examples):
        result["length_bias"] = pair_length_bias(scores, index, [n for e in examples for n in e["lengths"]])
    return result


def pair_length_bias(scores: torch.Tensor, index, lengths: list[int]) -> dict:
    """`rlhf.reward.bias.length_bias` over every ordered pair of the rankings (better = chosen).
    scores: (n,) flat over completions; lengths: n token counts in the same order."""
    from rlhf.reward.bias import length_bias

    lengths = torch.tensor(lengths, dtype=torch.float64)
    better, worse = index.better.cpu(), index.worse.cpu()
    flat = scores.detach().double().cpu()
    return length_bias(flat[better], flat[worse], lengths[better], lengths[worse])


# --- 6. calibrate -------------------------------------------------------------------------------


def calibration_pairs(config: RewardConfig, train_set: list[Ranking]) -> tuple[list, list[str], str]:
    """(conversations, completions, source name) whose rewards are centred on 0 and scaled to std 1.

    "train" (the default): every distinct completion of the training rankings, the user's own
    prompts and the answers that were ranked (in the pipeline, the SFT policy's samples), so unit
    scale is unit on the data PPO will see. "chosen": the top tier of each ranking only.
    "demonstrations": the shipped demonstrations. Any other value: a demonstrations file."""
    source = config.calibration_data or "train"
    if source in ("train", "chosen"):
        seen = {(r.key, r.completions[i]): (r.prompt, r.completions[i]) for r in train_set
                for i in (r.ranking[0] if source == "chosen" else range(len(r.completions)))}
        pairs = list(seen.values())
        random.Random(0).shuffle(pairs)
        pairs = pairs[:CALIBRATION_LIMIT]
        return [p for p, _ in pairs], [c for _, c in pairs], source
    if source == "demonstrations":
        source = str(builtin("demonstrations"))
    rows = load_demonstrations(source)
    rows = rows.select(range(min(CALIBRATION_LIMIT, len(rows))))
    prompts = [normalize_prompt(row["prompt"]) for row in rows]
    completions = ["".join(m["content"] for m in row["completion"]) for row in rows]
    return prompts, completions, source


def calibrate(model, tokenizer, config: RewardConfig, train_set: list[Ranking]) -> tuple[float, float, dict]:
    """bias = -mean raw score and std of the raw scores on the calibration completions, so that
    rewards (raw + bias) / std have mean 0 and std 1 there. Returns (bias, std, record)."""
    if config.calibration_data == "none":
        return 0.0, 1.0, {"source": "none", "bias": 0.0, "std": 1.0, "n": 0, "unit": "raw head output (not calibrated)"}
    prompts, completions, source = calibration_pairs(config, train_set)
    ids = encode(tokenizer, prompts, completions, config.max_length, config.max_prompt_length)
    raw = score_ids(model.eval(), ids, tokenizer.pad_token_id, batch_size=32).float().cpu()
    bias = -raw.mean().item()
    std = max(raw.std().item() if raw.numel() > 1 else 1.0, 1e-6)
    return bias, std, {"source": source, "bias": bias, "std": std, "n": int(raw.numel()), "unit": REWARD_UNIT}


# --- output -------------------------------------------------------------------------------------


def _print_summary(metrics: dict, out: Path) -> None:
    train, held, data = metrics["train"], metrics["eval"], metrics["data"]
    line = f"[rlhf reward] train accuracy {_fmt3(train['accuracy'])} ({train['pairs']} pairs)"
    if held:
        line += f", eval accuracy {_fmt3(held['accuracy'])} ({held['pairs']} pairs)"
    if metrics["labeler_agreement"]:
        line += f", labeler agreement {metrics['labeler_agreement']['agreement']:.3f}"
    print(f"{line}; saved to {out}")
    for name, result in (("held-out", held), ("train", train)):
        if result and result.get("length_bias"):
            from rlhf.reward.bias import format_length_bias

            print(f"[rlhf reward] length bias ({name}): {format_length_bias(result['length_bias'])}")
            break  # the held-out figures when there are any, else the training ones
    ties = data["train_tie_only_rankings"] + data["eval_tie_only_rankings"]
    if ties:
        print(f"[rlhf reward] {ties} of {data['train_rankings'] + data['eval_rankings']} rankings are a single tie "
              f"(no pair, so no training signal with tie_loss='none'); "
              f"{metrics['steps_without_pairs']} steps had no pair")


def _fmt3(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def plot_reward(history: list[dict], out_dir: Path) -> list[Path]:
    """plots/loss.png and plots/accuracy.png: per logged training step (the batch's own pairs) and
    on the held-out rankings after each epoch (the merged model, as saved)."""
    written = [
        plot_series({"train (batch)": points(history, "loss"), "held-out": points(history, "eval_loss")},
                    out_dir / "loss.png", "reward model loss (-log sigmoid of pair margins)", "step", "loss"),
        plot_series({"train (batch)": points(history, "accuracy"), "held-out": points(history, "eval_accuracy")},
                    out_dir / "accuracy.png", "reward model pair accuracy", "step", "accuracy"),
    ]
    return [p for p in written if p is not None]

