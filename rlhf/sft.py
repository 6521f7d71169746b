"""Stage 1, supervised fine-tuning: teach the base model the demonstrations' style through an adapter.

Built on TRL's SFTTrainer. Demonstrations are normalised to conversational prompt/completion rows
(`rlhf.data.load_demonstrations`), so the loss covers only the assistant's tokens: every assistant
turn of a `messages` row (the last only with --mask_history), the completion of a prompt/completion row.

    from rlhf import SFTConfig, run_sft
    out = run_sft(SFTConfig(adapter="lora", max_steps=60, output_dir="runs/sft"))

The output folder holds the adapter (PEFT-loadable for PEFT methods), the tokenizer,
`rlhf_config.json` (the resolved config), `metrics.json` and TensorBoard logs under `logs/`.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from rlhf.adapters import AdapterConfig, resolve_learning_rate
from rlhf.stages import max_steps_problems, number_problems, save_resolved_config

# Adapters learn far less per step than a full model, so TRL's 2e-5 (a full fine-tune default)
# barely moves them (docs/notes.md#adapter-lr). LoRA: 2e-4 as in the QLoRA paper; soft prompts and IA3 need more.
ADAPTER_LR = 2e-4
DEFAULT_LEARNING_RATES = {
    **{name: ADAPTER_LR for name in ("lora", "dora", "rslora", "qlora", "series", "parallel")},
    "full": 2e-5,
    "partial": 5e-5,
    "prompt-tuning": 3e-3,
    "prefix-tuning": 3e-3,
    "ia3": 3e-3,
}


@dataclass
class SFTConfig(AdapterConfig):
    """Supervised fine-tuning on demonstrations (chat `messages` rows or `prompt`/`completion` rows)."""

    model: Optional[str] = field(default=None, metadata={"help": "Base model: local folder, hub id or .gguf file. Default: the embedded SmolLM2-135M-Instruct."})
    data: Optional[str] = field(default=None, metadata={"help": "Demonstrations: JSONL, Parquet or a `datasets` folder. Default: the shipped demonstrations."})
    eval_data: Optional[str] = field(default=None, metadata={"help": "Separate eval demonstrations; default: hold out --eval_fraction of --data."})
    eval_fraction: float = field(default=0.1, metadata={"help": "Share of --data held out for eval loss and perplexity when --eval_data is not given."})
    output_dir: str = field(default="runs/sft", metadata={"help": "Where the adapter, tokenizer, config, metrics and logs go."})
    max_length: int = field(default=512, metadata={"help": "Maximum tokens per example (prompt + answer)."})
    truncate: bool = field(default=True, metadata={"help": "Truncate long examples to --max_length; with --truncate false a longer row is an error before training."})
    mask_history: bool = field(default=False, metadata={"help": "Which assistant turns of a `messages` row are learned. False: every assistant turn (its text and end-of-turn token), as TRL's assistant_only_loss and LLaMA-Factory do; True: only the last, the earlier ones are context. A prompt/completion row always learns only its completion. An earlier turn the chat template renders differently inside the longer conversation (templates that strip earlier reasoning) is not learned, and such rows are counted in metrics.json (data_loss)."})
    truncation_side: str = field(default="left", metadata={"help": "How a row longer than --max_length is made to fit: 'left' drops the conversation's oldest turns first (a system message stays), so the answer and its end-of-turn token are kept; 'right' keeps the start, as TRL does, and cuts the answer's end. Either way, a row still too long loses its answer's end and a row whose prompt alone fills --max_length is dropped; both are counted in metrics.json (data_loss)."})
    epochs: float = field(default=1.0, metadata={"help": "Passes over the training data (ignored when --max_steps > 0)."})
    max_steps: int = field(default=-1, metadata={"help": "Stop after this many optimizer steps (-1: run --epochs)."})
    learning_rate: Optional[float] = field(default=None, metadata={"help": "Peak learning rate. Default by adapter: 2e-4 for LoRA-like and bottleneck adapters, 3e-3 for prompt/prefix tuning and IA3, 5e-5 partial, 2e-5 full."})
    warmup_steps: int = field(default=0, metadata={"help": "Linear warm-up steps."})
    batch_size: int = field(default=8, metadata={"help": "Examples per device per step."})
    grad_accum: int = field(default=1, metadata={"help": "Gradient accumulation steps (effective batch = batch_size x grad_accum x devices)."})
    gradient_checkpointing: Optional[bool] = field(default=None, metadata={"help": "Trade compute for memory. Default: on for GPU runs where the adapter allows it (never prefix tuning), off on CPU."})
    seed: int = field(default=42, metadata={"help": "Random seed for the split, initialisation and data order."})
    logging_steps: int = field(default=5, metadata={"help": "Log train loss every N steps."})
    eval_steps: int = field(default=0, metadata={"help": "Evaluate every N steps (0: only at the end)."})
    save_steps: int = field(default=50, metadata={"help": "Checkpoint every N steps (for --resume)."})
    resume: bool = field(default=False, metadata={"help": "Resume from the last checkpoint in --output_dir."})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "Start over in an output_dir that holds checkpoints of an unfinished run, deleting them (without this, such a run is refused unless --resume true)."})
    device: Optional[str] = field(default=None, metadata={"help": "cpu or cuda; default: cuda when available. Precision follows: bf16 on GPU, fp32 on CPU."})
    fsdp: bool = field(default=False, metadata={"help": "Shard the model with FSDP2 across the processes of a torchrun launch, through TRL/transformers' own FSDP support (fsdp_config version 2, full state dict on save). adapter=full and CUDA only: accelerate enables FSDP on GPUs only (on CPU run SFT without it, as DDP)."})

    def number_problems(self) -> list[str]:
        problems = super().number_problems() + max_steps_problems(self.max_steps, self.epochs)
        problems += number_problems(self, at_least_1=("batch_size", "grad_accum", "logging_steps", "save_steps"),
                                    at_least_0=("warmup_steps", "eval_steps"), positive=("learning_rate",),
                                    fraction=("eval_fraction",))
        if not self.max_length >= 2:
            problems.append(f"max_length must be >= 2 (a prompt token and an answer token; got {self.max_length})")
        return problems

    def resolved_learning_rate(self) -> float:
        return resolve_learning_rate(self.learning_rate, DEFAULT_LEARNING_RATES, self.adapter)


def run_sft(config: SFTConfig) -> Path:
    """Fine-tune and save; returns the output folder. Steps:
    1 validate the data, 2 load the base and attach the adapter, 3 train with SFTTrainer,
    4 evaluate, 5 save adapter, tokenizer, config and metrics."""
    from transformers import set_seed

    from rlhf.adapters import adapter_summary, apply_adapter, load_base_for_adapter, save_adapter
    from rlhf.finite import check_finite_weights, finite_gradients_callback
    from rlhf.models import load_tokenizer, pick_device
    from rlhf.checkpoints import complete_checkpoints
    from rlhf.outputs import check_checkpoints, check_output_dir

    out = Path(config.output_dir)
    check_output_dir("sft", out, {"--model": config.model})
    check_checkpoints("sft", out, complete_checkpoints(out / "checkpoints", HF_MARKER), out / "checkpoints",
                      config.resume, config.overwrite_output_dir)
    device = pick_device(config.device)
    if config.fsdp:
        _check_fsdp(config, device)
    if config.adapter == "qlora":  # before the data is read: a missing GPU fails in a second
        from rlhf.adapters.peft_methods import check_qlora_supported

        check_qlora_supported()
    tokenizer = load_tokenizer(config.model)

    # 1. Validate every row before any model is loaded: a bad row 290 fails in a second, not an hour in.
    #    Rows are fitted to max_length here, where every cut and drop is counted.
    train_ds, eval_ds, data_loss = _datasets(config, tokenizer)

    # 2. Base model + adapter, initialised from --seed (SFTTrainer seeds only later, in its __init__).
    set_seed(config.seed)
    model = load_base_for_adapter(config.model, config, device=device)
    model = apply_adapter(model, config)
    summary = adapter_summary(model)

    # 3. Train.
    # transformers 5 reads the TensorBoard folder from the environment; set it for this run only.
    previous_logdir = os.environ.get("TENSORBOARD_LOGGING_DIR")
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(out / "logs")
    try:
        trainer = _trainer(config, model, tokenizer, train_ds, eval_ds, device, out)
        trainer.add_callback(finite_gradients_callback("rlhf sft", out))  # stop before a NaN step
        started = time.time()
        resume = _last_checkpoint(out) if config.resume else None
        train_result = trainer.train(resume_from_checkpoint=resume)
    finally:
        if previous_logdir is None:
            os.environ.pop("TENSORBOARD_LOGGING_DIR", None)
        else:
            os.environ["TENSORBOARD_LOGGING_DIR"] = previous_logdir

    # 4. Evaluate.
    eval_metrics = trainer.evaluate() if eval_ds is not None else {}

    # 5. Save (never weights holding NaN or inf: a good earlier output stays as it was). Sharded:
    # accelerate gathers the full weights to process 0, which writes them.
    check_finite_weights(trainer.model, "rlhf sft", out)
    state = None
    if config.fsdp:
        state = trainer.accelerator.get_state_dict(trainer.model)
        if not trainer.accelerator.is_main_process:
            return out
    save_adapter(trainer.model, out, state_dict=state)
    tokenizer.save_pretrained(out)
    metrics = {
        "adapter": config.adapter,
        "trainable_params": summary["trainable"],
        "total_params": summary["total"],
        "trainable_share": summary["share"],
        "train_loss": train_result.training_loss,
        "steps": train_result.global_step,
        "train_seconds": round(time.time() - started, 2),
        "seconds_per_step": round((time.time() - started) / max(train_result.global_step, 1), 3),
        "train_rows": len(train_ds),
        "eval_rows": len(eval_ds) if eval_ds is not None else 0,
        "data_loss": data_loss,
        "device": device,
        "resumed_from": resume,
        "log_history": trainer.state.log_history,
    }
    if "eval_loss" in eval_metrics:
        metrics["eval_loss"] = eval_metrics["eval_loss"]
        metrics["perplexity"] = math.exp(min(eval_metrics["eval_loss"], 50))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    plot_sft(metrics["log_history"], out / "plots")
    save_resolved_config("sft", config, out, learning_rate=config.resolved_learning_rate())
    print(f"[rlhf sft] saved {config.adapter} adapter to {out} "
          f"(eval loss {metrics.get('eval_loss', float('nan')):.3f}, perplexity {metrics.get('perplexity', float('nan')):.1f})")
    return out


def _check_fsdp(config: SFTConfig, device: str) -> None:
    from rlhf.fsdp import check_layout
    from rlhf.stages import ConfigError

    check_layout(config.adapter, "--adapter")
    if not device.startswith("cuda"):
        raise ConfigError("--fsdp for SFT needs CUDA: TRL's SFTTrainer shards through accelerate, and accelerate 1.15 "
                         "turns FSDP on only for GPU process groups (on CPU it would silently run DDP). On CPU, run "
                         "SFT without --fsdp (data parallel under torchrun); PPO and the reward stage shard on CPU too")


def _datasets(config: SFTConfig, tokenizer):
    """(train, eval or None, data_loss): validated rows fitted to max_length and tokenized, and what
    that cost and learns (per file: fit_rows' counts, assistant_turns_learned, rows_with_unlocated_turns)."""
    from rlhf import data as rdata

    source = config.data or str(rdata.builtin("demonstrations"))
    ds = rdata.load_demonstrations(source, tokenizer=tokenizer, max_length=config.max_length, truncate=config.truncate)
    ds, loss = fit_rows(tokenizer, ds, config.max_length, config.truncation_side, source)
    ds, turns = tokenize_demonstrations(ds, tokenizer, config.mask_history)
    _print_turns(turns, len(ds), source)
    report = {"stage": "sft", "max_length": config.max_length, "truncation_side": config.truncation_side,
              "mask_history": config.mask_history, "data": {**loss, **turns}}
    if config.eval_data:
        eval_ds = rdata.load_demonstrations(config.eval_data, tokenizer=tokenizer, max_length=config.max_length,
                                            truncate=config.truncate)
        eval_ds, eval_loss = fit_rows(tokenizer, eval_ds, config.max_length, config.truncation_side, config.eval_data)
        eval_ds, eval_turns = tokenize_demonstrations(eval_ds, tokenizer, config.mask_history)
        _print_turns(eval_turns, len(eval_ds), config.eval_data)
        report["eval_data"] = {**eval_loss, **eval_turns}
        return ds, eval_ds, report
    if config.eval_fraction <= 0 or len(ds) < 4:
        return ds, None, report
    split = ds.train_test_split(test_size=config.eval_fraction, seed=config.seed)
    return split["train"], split["test"], report


def fit_rows(tokenizer, ds, max_length: int, truncation_side: str, source: str):
    """Fit conversational prompt/completion rows to `max_length` tokens and count the cost.
    Other columns (`form`) are kept.

    'left': the prompt's oldest turns go first (system message kept) until the row fits or only the
    last user turn is left. Then (either side) TRL's SFTTrainer keeps the start of a row still too
    long, so its answer loses its end (`answer_cut`, the end-of-turn token is never learned); a row
    whose prompt alone fills max_length has no answer token left and is dropped here
    (`dropped_no_answer`) instead of silently inside TRL. When every row would be dropped, a
    DataError names the longest prompt and the max_length that would fit it.
    Returns (rows kept, counts)."""
    from rlhf.data import DataError
    from rlhf.data.conversation import fewest_turns_to_fit
    from rlhf.tokens import encode_chat, encode_prompt_completion

    def measure(prompt, completion) -> tuple[int, int]:  # (row, prompt) tokens as tokenize_demonstrations encodes them
        ids, prompt_len = encode_prompt_completion(tokenizer, prompt, completion)
        return len(ids), prompt_len

    if truncation_side not in ("left", "right"):
        raise ValueError(f"--truncation_side must be 'left' or 'right', got {truncation_side!r}")
    rows, counts = [], {"rows": len(ds), "prompt_turns_dropped": 0, "answer_cut": 0, "dropped_no_answer": 0}
    longest = (0, -1, 0)  # (prompt tokens, row index, full tokens)
    for i, row in enumerate(ds):
        prompt, completion = row["prompt"], row["completion"]
        full, prompt_len = measure(prompt, completion)
        if truncation_side == "left" and full > max_length:
            # the search measures the conversation in one piece (one render per step); a token merged
            # across the answer's start can leave the row one token over, which is counted below
            turns, prompt = fewest_turns_to_fit(
                prompt, lambda shorter: len(encode_chat(tokenizer, shorter + completion)) <= max_length)
            full, prompt_len = measure(prompt, completion)
            counts["prompt_turns_dropped"] += turns > 0
        longest = max(longest, (prompt_len, i, full))
        if prompt_len >= max_length:
            counts["dropped_no_answer"] += 1
            continue
        counts["answer_cut"] += full > max_length
        rows.append({**row, "prompt": prompt, "completion": completion})
    if not rows:
        n, i, full = longest
        raise DataError(source, None, "prompt", f"every row's prompt fills max_length={max_length}, so no answer token "
                        f"is left to learn; the longest prompt (demonstration {i + 1}) is {n} tokens: "
                        f"max_length={full} would fit that row whole")
    _print_loss(counts, max_length)
    import datasets

    return datasets.Dataset.from_list(rows), counts


def _print_loss(counts: dict, max_length: int) -> None:
    if counts["prompt_turns_dropped"]:
        print(f"[rlhf sft] {counts['prompt_turns_dropped']} of {counts['rows']} rows lost their oldest turns to fit "
              f"max_length={max_length}")
    if counts["answer_cut"]:
        print(f"[rlhf sft] {counts['answer_cut']} of {counts['rows']} rows are longer than max_length={max_length}: "
              "their answers lose the end (and the end-of-turn token); raise --max_length to keep them")
    if counts["dropped_no_answer"]:
        print(f"[rlhf sft] dropped {counts['dropped_no_answer']} of {counts['rows']} rows whose prompt alone fills "
              f"max_length={max_length} (no answer token left to learn)")


def tokenize_demonstrations(ds, tokenizer, mask_history: bool = False):
    """Prompt/completion rows -> (`input_ids` and `completion_mask` rows, counts), the columns TRL's
    SFTTrainer takes as already tokenized (mask 1 = in the loss). Done here rather than by SFTTrainer
    so the text of the demonstrations stays text (`rlhf.tokens.encode_chat`): TRL's own tokenization
    turns a pasted `<|im_end|>` into a real end-of-turn the model then learns to emit mid-answer.

    Which tokens are learned: a row whose `form` is "messages" (a whole conversation), with
    `mask_history` False, learns every assistant turn, each from where its content starts after the
    generation prompt through its end-of-turn (`rlhf.tokens.encode_assistant_turns`), as TRL's
    assistant_only_loss and LLaMA-Factory do; otherwise (mask_history, or a prompt/completion row,
    whose split the user chose) only the completion, whose mask starts where the prompt's ids and
    the full conversation's part, as TRL's does. Earlier turns the template renders differently
    inside the whole conversation are left out of the loss.
    counts: `assistant_turns_learned` (turns in the loss, all rows) and `rows_with_unlocated_turns`
    (rows where some earlier assistant turn could not be located, so it is not learned)."""
    from rlhf.tokens import encode_assistant_turns, encode_prompt_completion

    def tokenize(row):
        if row.get("form") == "messages" and not mask_history:
            ids, spans, unlocated = encode_assistant_turns(tokenizer, row["prompt"] + row["completion"])
        else:
            ids, prompt_len = encode_prompt_completion(tokenizer, row["prompt"], row["completion"])
            spans, unlocated = [(prompt_len, len(ids))], 0
        return {"input_ids": ids, "completion_mask": spans_mask(len(ids), spans),
                "turns": len(spans), "unlocated": unlocated}

    tokenized = ds.map(tokenize, remove_columns=ds.column_names)
    counts = {"assistant_turns_learned": sum(tokenized["turns"]),
              "rows_with_unlocated_turns": sum(n > 0 for n in tokenized["unlocated"])}
    return tokenized.remove_columns(["turns", "unlocated"]), counts


def spans_mask(length: int, spans: list[tuple[int, int]]) -> list[int]:
    """A 0/1 mask of `length` positions, 1 inside each `(start, end)` span (end exclusive)."""
    mask = [0] * length
    for start, end in spans:
        mask[start:end] = [1] * (end - start)
    return mask


def _print_turns(counts: dict, rows: int, source: str) -> None:
    """Say how many assistant turns a multi-turn file trains, and in how many rows some could not be."""
    if counts["rows_with_unlocated_turns"]:
        print(f"[rlhf sft] {source}: in {counts['rows_with_unlocated_turns']} rows some earlier assistant turn could "
              "not be located in the whole conversation's tokens (the chat template renders it differently there, "
              "or it opens the conversation), so it is not learned; the last turn of every row is")
    if counts["assistant_turns_learned"] > rows:
        print(f"[rlhf sft] {source}: learning {counts['assistant_turns_learned']} assistant turns in {rows} rows (every "
              "assistant turn of a `messages` row; --mask_history true learns only the last)")


def trl_training_arguments(config, out: Path, device: str, eval_ds, checkpointing: bool) -> dict:
    """The TRL trainer arguments `rlhf sft` and `rlhf dpo` set alike from their stage config (fields
    batch_size, grad_accum, epochs, max_steps, max_length, seed, logging_steps, eval_steps):
    checkpoints under `out`/checkpoints, batches, run length, logging and evaluation (only when there
    is an eval set), bf16 where `pick_dtype` picks it (TRL's bf16 default errors on CPU,
    docs/notes.md#trl-bf16), TensorBoard, no dataloader workers. Each stage adds its learning rate,
    warm-up and saving."""
    import torch

    from rlhf.models import pick_dtype

    return dict(
        output_dir=str(out / "checkpoints"),
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        max_length=config.max_length,
        seed=config.seed,
        logging_steps=config.logging_steps,
        eval_strategy="steps" if (config.eval_steps and eval_ds is not None) else "no",
        eval_steps=config.eval_steps or None,
        bf16=pick_dtype(device) == torch.bfloat16,
        use_cpu=not device.startswith("cuda"),
        gradient_checkpointing=checkpointing,
        report_to=["tensorboard"],
        dataloader_num_workers=0,
        disable_tqdm=False,
    )


def _trainer(config: SFTConfig, model, tokenizer, train_ds, eval_ds, device: str, out: Path):
    from trl import SFTConfig as TRLSFTConfig
    from trl import SFTTrainer

    from rlhf.adapters import uses_gradient_checkpointing

    checkpointing = config.gradient_checkpointing
    if checkpointing is None:
        checkpointing = device.startswith("cuda")
    checkpointing = checkpointing and uses_gradient_checkpointing(config)
    args = TRLSFTConfig(
        **trl_training_arguments(config, out, device, eval_ds, checkpointing),
        learning_rate=config.resolved_learning_rate(),
        warmup_steps=config.warmup_steps,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=2,
        completion_only_loss=True,
        # FSDP2 through accelerate's plugin: each decoder layer (the model's _no_split_modules) sharded.
        fsdp=True if config.fsdp else None,
        fsdp_config={"version": 2, "state_dict_type": "FULL_STATE_DICT", "reshard_after_forward": True}
        if config.fsdp else None,
    )
    return SFTTrainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds, processing_class=tokenizer)


HF_MARKER = "trainer_state.json"  # Hugging Face Trainer writes it last into a checkpoint (rlhf.checkpoints)


def _last_checkpoint(out: Path) -> Optional[str]:
    """The newest checkpoint Hugging Face Trainer finished writing (its trainer_state.json comes last),
    saying which one and at what step; None (also said) when there is none."""
    from rlhf.checkpoints import newest_complete_checkpoint

    newest = newest_complete_checkpoint(out / "checkpoints", HF_MARKER, stage="rlhf sft")
    if newest is None:
        print(f"[rlhf sft] resume: no checkpoint in {out / 'checkpoints'}; starting at step 0")
        return None
    step = json.loads((newest / HF_MARKER).read_text()).get("global_step", newest.name.split("-")[-1])
    print(f"[rlhf sft] resuming from {newest} (step {step})")
    return str(newest)


def plot_sft(log_history: list[dict], out_dir: Path) -> Path | None:
    """plots/loss.png: training loss per logged step, and held-out loss where it was measured."""
    from rlhf.plots import plot_series, points

    series = {"train loss": points(log_history, "loss"), "eval loss": points(log_history, "eval_loss")}
    return plot_series(series, out_dir / "loss.png", "SFT loss (assistant tokens)", "step", "cross-entropy")

