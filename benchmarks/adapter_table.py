"""Every adapter, the same SFT run: trainable parameters, memory, speed and eval loss side by side.

    python benchmarks/adapter_table.py --tiny                  # tiny random model, seconds per adapter
    python benchmarks/adapter_table.py --steps 10              # the embedded SmolLM2-135M (slow on CPU)
    python benchmarks/adapter_table.py --adapters lora series --steps 30

Each adapter trains in its own child process, so "peak RSS" is that adapter's own high-water mark
(the process's `ru_maxrss`, imports and the model included) and not the largest one seen so far;
on CUDA the table also gives `torch.cuda.max_memory_allocated`. The run goes through
`rlhf.sft.run_sft` (TRL's SFTTrainer, per-adapter default learning rates), on the shipped
demonstrations with 10% held out for the final eval loss. qlora runs only where CUDA is present.

Results: benchmarks/results/adapter_table.json and .md (or --out).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from _runner import RESULTS, ChildFailed, peak_rss_gb, run_script, save_results

RESULT = RESULTS / "adapter_table.json"
COLUMNS = [  # (key, header, format)
    ("adapter", "adapter", "{}"),
    ("trainable_params", "trainable params", "{:,}"),
    ("trainable_share", "share", "{:.3%}"),
    ("peak_rss_mib", "peak RSS (MiB)", "{:,.0f}"),
    ("cuda_peak_mib", "CUDA peak (MiB)", "{:,.0f}"),
    ("seconds_per_step", "s/step", "{:.2f}"),
    ("eval_loss", "eval loss", "{:.3f}"),
    ("status", "status", "{}"),
]


def main(argv: list[str] | None = None) -> int:
    from rlhf.adapters import ADAPTERS

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny random Llama (a quick check of the machinery)")
    parser.add_argument("--model", default=None, help="base model (default: the embedded SmolLM2-135M-Instruct)")
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps per adapter")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--adapters", nargs="+", default=list(ADAPTERS), choices=ADAPTERS)
    parser.add_argument("--data", default=None, help="demonstrations (default: the shipped ones)")
    parser.add_argument("--out", type=Path, default=RESULT)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # child mode: run one adapter
    parser.add_argument("--result-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        return run_one(args)

    with tempfile.TemporaryDirectory(prefix="adapter_table_") as tmp:
        model = args.model
        if args.tiny and model is None:
            from rlhf.models import save_tiny_model

            model = str(save_tiny_model(Path(tmp) / "tiny-base"))
        rows = [run_child(name, model, args, Path(tmp)) for name in args.adapters]
    settings = {"model": args.model or ("tiny" if args.tiny else "SmolLM2-135M-Instruct (embedded)"),
                "steps": args.steps, "batch_size": args.batch_size, "max_length": args.max_length,
                "data": args.data or "builtin demonstrations", "date": time.strftime("%Y-%m-%d %H:%M")}
    save_results(args.out, {"settings": settings, "rows": rows}, markdown(rows, settings))
    print(f"[adapter_table] wrote {args.out} and {args.out.with_suffix('.md')}")
    return 0


def run_child(name: str, model: str | None, args, tmp: Path) -> dict:
    """One adapter in a fresh process; a failure becomes a row with its error, not a crash."""
    import torch

    if name == "qlora" and not torch.cuda.is_available():
        return {"adapter": name, "status": "needs CUDA"}
    result_file = tmp / f"{name}.json"
    argv = ["--one", name, "--result-file", result_file, "--steps", args.steps, "--batch-size", args.batch_size,
            "--max-length", args.max_length]
    argv += ["--model", model] if model else []
    argv += ["--data", args.data] if args.data else []
    print(f"[adapter_table] {name} ...", flush=True)
    try:
        row = run_script(__file__, argv, result_file, quiet=True)
    except ChildFailed as err:
        print(f"[adapter_table] {name} failed: {err.last_line}", flush=True)
        return {"adapter": name, "status": f"failed: {err.last_line[:200]}"}
    print(f"[adapter_table] {name}: {row.get('seconds_per_step')} s/step, eval loss {row.get('eval_loss')}", flush=True)
    return row


def run_one(args) -> int:
    """Child: SFT one adapter, then record its figures in --result-file."""
    import torch

    with tempfile.TemporaryDirectory(prefix=f"sft_{args.one}_") as out:
        metrics = sft(args, Path(out))
    row = {
        "adapter": args.one,
        "trainable_params": metrics["trainable_params"],
        "total_params": metrics["total_params"],
        "trainable_share": metrics["trainable_share"],
        "peak_rss_mib": peak_rss_gb() * 1024,
        "seconds_per_step": metrics["seconds_per_step"],
        "eval_loss": metrics.get("eval_loss"),
        "train_loss": metrics.get("train_loss"),
        "steps": metrics["steps"],
        "status": "ok",
    }
    if torch.cuda.is_available():
        row["cuda_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    args.result_file.write_text(json.dumps(row))
    return 0


def sft(args, out: Path) -> dict:
    """The figures of one SFT run: through `rlhf.sft.run_sft` when the stage exists, else a bare
    SFTTrainer loop with the same data and the adapter API (kept so the table predates the stage)."""
    try:
        from rlhf.sft import SFTConfig, run_sft
    except ImportError:
        return bare_sft(args, out)
    config = SFTConfig(adapter=args.one, model=args.model, data=args.data, output_dir=str(out), max_steps=args.steps,
                       batch_size=args.batch_size, max_length=args.max_length, logging_steps=max(args.steps // 4, 1),
                       save_steps=10**6)
    run_sft(config)
    return json.loads((out / "metrics.json").read_text())


def bare_sft(args, out: Path) -> dict:
    import torch
    from trl import SFTConfig, SFTTrainer

    from rlhf import data as rdata
    from rlhf.adapters import AdapterConfig, adapter_summary, apply_adapter, load_base_for_adapter, uses_gradient_checkpointing
    from rlhf.models import load_tokenizer

    config = AdapterConfig(adapter=args.one)
    tokenizer = load_tokenizer(args.model)
    split = rdata.load_demonstrations(args.data or rdata.builtin("demonstrations")).train_test_split(test_size=0.1, seed=0)
    model = apply_adapter(load_base_for_adapter(args.model, config), config)
    summary = adapter_summary(model)
    on_gpu = torch.cuda.is_available()
    lr = {"full": 2e-5, "partial": 5e-5, "prompt-tuning": 3e-3, "prefix-tuning": 3e-3, "ia3": 3e-3}.get(args.one, 2e-4)
    trl_args = SFTConfig(output_dir=str(out), max_steps=args.steps, per_device_train_batch_size=args.batch_size,
                         learning_rate=lr, max_length=args.max_length, bf16=on_gpu, use_cpu=not on_gpu, report_to=[],
                         save_strategy="no", gradient_checkpointing=on_gpu and uses_gradient_checkpointing(config))
    trainer = SFTTrainer(model=model, args=trl_args, train_dataset=split["train"], eval_dataset=split["test"], processing_class=tokenizer)
    started = time.time()
    result = trainer.train()
    seconds = time.time() - started
    return {"trainable_params": summary["trainable"], "total_params": summary["total"], "trainable_share": summary["share"],
            "seconds_per_step": seconds / max(result.global_step, 1), "eval_loss": trainer.evaluate()["eval_loss"],
            "train_loss": result.training_loss, "steps": result.global_step}


def markdown(rows: list[dict], settings: dict) -> str:
    columns = [c for c in COLUMNS if any(c[0] in row for row in rows)]
    lines = [f"SFT, {settings['steps']} steps x batch {settings['batch_size']}, model {settings['model']}, "
             f"{settings['data']}, {settings['date']}", "",
             "| " + " | ".join(header for _, header, _ in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        cells = ["" if row.get(key) is None else fmt.format(row[key]) for key, _, fmt in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
