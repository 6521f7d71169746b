"""Stage 1: supervised fine-tuning with a LoRA adapter on the shipped demonstrations."""

from _common import base_model, parse

from rlhf import SFTConfig, run_sft

args = parse(__doc__)
config = SFTConfig(
    model=base_model(args),
    adapter="lora",                      # or dora, rslora, ia3, series, parallel, prompt-tuning, ...
    max_steps=4 if args.tiny else 40,
    batch_size=4 if args.tiny else 8,
    max_length=256,
    output_dir=str(args.run_dir / "sft"),
)
print("adapter saved to", run_sft(config))
