"""Quickstart: LoRA SFT of the embedded default model (SmolLM2-135M-Instruct) on the shipped
demonstrations, then load the adapter with plain PEFT and ask it a question.

    python examples/quickstart.py [--steps 60] [--out runs/quickstart]
"""

import argparse

import torch
from peft import PeftModel

from rlhf import SFTConfig, load_causal_lm, load_tokenizer, run_sft


def answer(model, tokenizer, question: str) -> str:
    ids = tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                        return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=60, do_sample=False)
    return tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60, help="SFT optimizer steps")
    parser.add_argument("--out", default="runs/quickstart", help="run folder")
    args = parser.parse_args()

    # Step 1: SFT with a LoRA adapter (the embedded default is used when no model is named).
    sft_dir = run_sft(SFTConfig(adapter="lora", max_steps=args.steps, output_dir=f"{args.out}/sft", save_steps=1000))

    # Step 2: the adapter is a plain PEFT adapter: load it the way any PEFT user would.
    base = load_causal_lm()
    policy = PeftModel.from_pretrained(base, sft_dir).eval()
    tokenizer = load_tokenizer(sft_dir)
    question = "Give me two tips for staying focused while studying."
    print(f"\nQ: {question}\nA: {answer(policy, tokenizer, question)}")


if __name__ == "__main__":
    main()
