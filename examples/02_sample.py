"""Stage 2: sample K completions per prompt from the SFT policy, ready for labeling."""

from _common import parse

from rlhf import SampleConfig, run_sample

args = parse(__doc__)
config = SampleConfig(
    model=str(args.run_dir / "sft"),     # any SFT output folder: base + adapter load together
    k=4,
    limit=6 if args.tiny else 96,        # prompts from the shipped prompts_train.jsonl
    max_new_tokens=12 if args.tiny else 48,
    output=str(args.run_dir / "candidates.jsonl"),
)
print("candidates written to", run_sample(config))
