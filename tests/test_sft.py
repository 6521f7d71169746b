import json

import pytest
import torch

from rlhf import SFTConfig, run_sft
from rlhf.data import DataError


def _demos(path, n=24):
    rows = [{"messages": [{"role": "user", "content": f"Say the number {i}."}, {"role": "assistant", "content": f"The number is {i}."}]}
            for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _logits(model, tokenizer):
    ids = tokenizer(["The number is 7."], return_tensors="pt")
    with torch.no_grad():
        return model(**ids).logits


@pytest.fixture(scope="module")
def sft_run(tiny_model_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sft")
    config = SFTConfig(model=str(tiny_model_dir), data=str(_demos(tmp / "d.jsonl")), output_dir=str(tmp / "out"),
                       max_steps=8, batch_size=4, learning_rate=5e-3, logging_steps=1, save_steps=4, eval_fraction=0.2)
    return config, run_sft(config)


def test_sft_lora_loss_falls_and_writes_every_output(sft_run):
    _, out = sft_run
    metrics = json.loads((out / "metrics.json").read_text())
    losses = [h["loss"] for h in metrics["log_history"] if "loss" in h]
    assert len(losses) == 8 and losses[-1] < losses[0]
    assert metrics["eval_loss"] > 0 and metrics["perplexity"] == pytest.approx(torch.tensor(metrics["eval_loss"]).exp().item(), rel=1e-4)
    assert 0 < metrics["trainable_share"] < 0.05
    for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer_config.json", "rlhf_config.json"):
        assert (out / name).exists(), name
    assert any((out / "logs").glob("events.out.tfevents*")), "TensorBoard logs missing"
    assert json.loads((out / "rlhf_config.json").read_text())["learning_rate"] == 5e-3


def test_sft_adapter_loads_with_plain_peft_and_matches_rlhf_loader(sft_run, tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from rlhf.adapters import load_causal_lm
    from rlhf.models import load_tokenizer

    _, out = sft_run
    tokenizer = load_tokenizer(out)
    peft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), out).eval()
    ours = load_causal_lm(str(out), device="cpu").eval()
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    assert torch.allclose(_logits(peft_model, tokenizer), _logits(ours, tokenizer), atol=1e-6)
    assert not torch.allclose(_logits(peft_model, tokenizer), _logits(base, tokenizer), atol=1e-4), "adapter changed nothing"


def test_sft_resumes_from_last_checkpoint(sft_run, capsys):
    config, out = sft_run
    from dataclasses import replace

    resumed = run_sft(replace(config, max_steps=10, resume=True))
    assert f"[rlhf sft] resuming from {out / 'checkpoints' / 'checkpoint-8'} (step 8)" in capsys.readouterr().out
    metrics = json.loads((resumed / "metrics.json").read_text())
    assert metrics["resumed_from"].endswith("checkpoint-8") and metrics["steps"] == 10
    # Only the two steps after the checkpoint ran.
    assert [h["step"] for h in metrics["log_history"] if "loss" in h][-2:] == [9, 10]


def test_bad_data_fails_before_any_training(tmp_path, tiny_model_dir):
    path = _demos(tmp_path / "d.jsonl", 5)
    with path.open("a") as fh:
        fh.write(json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "bot", "content": "a"}]}) + "\n")
    with pytest.raises(DataError, match=r"row 6, field 'messages\[1\]\.role'"):
        run_sft(SFTConfig(model=str(tiny_model_dir), data=str(path), output_dir=str(tmp_path / "out")))
    assert not (tmp_path / "out").exists()


def test_cli_help_lists_every_option(capsys):
    from rlhf.cli import main

    with pytest.raises(SystemExit):
        main(["sft", "--help"])
    text = capsys.readouterr().out
    for flag in ("--adapter", "--lora_r", "--bottleneck_size", "--partial_layers", "--max_length", "--learning_rate",
                 "--grad_accum", "--resume", "--eval_fraction", "--seed", "--mask_history"):
        assert flag in text, flag
    assert "Default by adapter" in text


def test_cli_reports_bad_data_as_an_error_line(tmp_path, capsys):
    from rlhf.cli import main

    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"prompt": "q", "completion": ""}) + "\n")
    assert main(["sft", "--data", str(path), "--output_dir", str(tmp_path / "o")]) == 2
    assert "row 1, field 'completion': is empty" in capsys.readouterr().err


# --- multi-turn demonstrations: every assistant turn is learned unless --mask_history ----------------

def _turn(role, content):
    return {"role": role, "content": content}


CONVERSATION = [_turn("user", "Hi, who are you?"), _turn("assistant", "A helpful pirate."),
                _turn("user", "Where is the treasure?"), _turn("assistant", "Under the old palm.")]


def _learned(tokenizer, rows, mask_history=False, max_length=512, truncation_side="left"):
    """(the text of the masked-in tokens of each row, tokenize_demonstrations' counts, fit_rows' counts),
    for rows read from a JSONL file as `rlhf sft` reads them."""
    import tempfile
    from pathlib import Path

    from rlhf.data import load_demonstrations, write_jsonl
    from rlhf.sft import fit_rows, tokenize_demonstrations

    with tempfile.TemporaryDirectory() as tmp:
        ds = load_demonstrations(write_jsonl(Path(tmp) / "d.jsonl", rows))
    ds, fit = fit_rows(tokenizer, ds, max_length, truncation_side, "d.jsonl")
    ds, counts = tokenize_demonstrations(ds, tokenizer, mask_history)
    texts = [tokenizer.decode([i for i, m in zip(r["input_ids"], r["completion_mask"]) if m]) for r in ds]
    return texts, counts, fit


def test_sft_learns_every_assistant_turn_of_a_conversation(tokenizer):
    texts, counts, _ = _learned(tokenizer, [{"messages": CONVERSATION}])
    assert texts == ["A helpful pirate.<|im_end|>\nUnder the old palm.<|im_end|>\n"]
    assert counts == {"assistant_turns_learned": 2, "rows_with_unlocated_turns": 0}


def test_every_turn_of_a_long_conversation_is_located_with_linear_tokenizer_work(tokenizer):
    """Locating each assistant turn encodes each prefix of the conversation; the text between two
    special tokens is tokenized once per conversation, not once per prefix (O(turns), not
    O(turns^2): 100 turns took 4.0 s, now 0.8 s). Same ids and spans as each prefix alone."""
    from rlhf.tokens import encode_assistant_turns, encode_prompt_completion

    calls = []

    class Counting:
        def __call__(self, text, **kwargs):
            calls.append(text)
            return tokenizer(text, **kwargs)

        def __getattr__(self, name):
            return getattr(tokenizer, name)

    turns = 40
    messages = [m for i in range(turns) for m in (_turn("user", f"Question {i}?"), _turn("assistant", f"Answer {i}."))]
    ids, spans, unlocated = encode_assistant_turns(Counting(), messages)
    assert unlocated == 0 and len(spans) == turns
    assert len(calls) < 10 * turns, f"{len(calls)} tokenizer calls for {turns} turns"
    for k, (start, end) in zip(range(1, 2 * turns, 2), spans):  # each span is that turn as if alone
        alone, alone_start = encode_prompt_completion(tokenizer, messages[:k], messages[k:k + 1])
        assert (start, end) == (alone_start, len(alone)) and ids[:end] == alone
        assert tokenizer.decode(ids[start:end]).startswith(f"Answer {k // 2}.")


def test_tokenizing_demonstrations_has_a_stable_fingerprint(tokenizer):
    """datasets fingerprints a `map` by hashing its function with dill; a function it cannot pickle
    (a ContextVar in rlhf.tokens once) gets a random fingerprint and a logged traceback, and the
    map's cache never hits. The same rows tokenized twice must give the same fingerprint."""
    import datasets

    from rlhf.sft import tokenize_demonstrations

    rows = [{"prompt": CONVERSATION[:3], "completion": CONVERSATION[3:]}]
    fingerprints = {tokenize_demonstrations(datasets.Dataset.from_list(rows), tokenizer)[0]._fingerprint
                    for _ in range(2)}
    assert len(fingerprints) == 1


def test_sft_mask_history_learns_only_the_last_turn(tokenizer):
    texts, counts, _ = _learned(tokenizer, [{"messages": CONVERSATION}], mask_history=True)
    assert texts == ["Under the old palm.<|im_end|>\n"]
    assert counts == {"assistant_turns_learned": 1, "rows_with_unlocated_turns": 0}


def test_sft_prompt_completion_row_learns_only_its_completion(tokenizer):
    # The user chose the split: an assistant turn inside the prompt is context, not learned.
    row = {"prompt": CONVERSATION[:3], "completion": CONVERSATION[3:]}
    texts, counts, _ = _learned(tokenizer, [row])
    assert texts == ["Under the old palm.<|im_end|>\n"]
    assert counts["assistant_turns_learned"] == 1


def test_sft_left_truncation_keeps_the_masks_of_the_turns_it_keeps(tokenizer):
    from rlhf.data.conversation import render_ids

    system = _turn("system", "You are a pirate.")
    conversation = [system, _turn("user", "Tell me a long story. " * 8), _turn("assistant", "Once upon a tide."),
                    *CONVERSATION]
    # Room for everything but the first exchange: fit_rows drops it (the system message stays).
    room = len(render_ids(tokenizer, [system, *CONVERSATION[:3]], CONVERSATION[3]["content"]))
    texts, counts, fit = _learned(tokenizer, [{"messages": conversation}], max_length=room)
    assert fit["prompt_turns_dropped"] == 1 and fit["answer_cut"] == 0
    assert texts == ["A helpful pirate.<|im_end|>\nUnder the old palm.<|im_end|>\n"]
    assert counts == {"assistant_turns_learned": 2, "rows_with_unlocated_turns": 0}


def test_sft_counts_turns_the_template_renders_differently_later(tokenizer):
    """A template that strips earlier reasoning (as some reasoning models' do): the first answer's
    tokens differ inside the whole conversation, so only the last is learned, and the row is counted."""
    import copy

    stripping = copy.deepcopy(tokenizer)
    stripping.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
        "{% if m['role'] == 'assistant' and not loop.last %}{{ m['content'].split('</think>')[-1] }}"
        "{% else %}{{ m['content'] }}{% endif %}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    conversation = [*CONVERSATION[:1], _turn("assistant", "<think>hmm</think>A helpful pirate."), *CONVERSATION[2:]]
    texts, counts, _ = _learned(stripping, [{"messages": conversation}, {"messages": CONVERSATION}])
    assert texts == ["Under the old palm.<|im_end|>\n", "A helpful pirate.<|im_end|>\nUnder the old palm.<|im_end|>\n"]
    assert counts == {"assistant_turns_learned": 3, "rows_with_unlocated_turns": 1}


def test_sft_cli_trains_on_multi_turn_conversations(tmp_path, tiny_model_dir, capsys):
    from rlhf.cli import main
    from rlhf.data import write_jsonl

    rows = [{"messages": [_turn("user", f"Pick a number, {i}."), _turn("assistant", f"{i}."),
                          _turn("user", "And double it?"), _turn("assistant", f"{2 * i}.")]} for i in range(6)]
    data = write_jsonl(tmp_path / "d.jsonl", rows)
    out = tmp_path / "sft"
    assert main(["sft", "--model", str(tiny_model_dir), "--data", str(data), "--output_dir", str(out),
                 "--max_steps", "2", "--batch_size", "2", "--eval_fraction", "0", "--save_steps", "10"]) == 0
    assert "learning 12 assistant turns in 6 rows" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 2 and metrics["data_loss"]["mask_history"] is False
    assert metrics["data_loss"]["data"]["assistant_turns_learned"] == 12
    assert json.loads((out / "rlhf_config.json").read_text())["mask_history"] is False
    assert (out / "adapter_model.safetensors").exists()
