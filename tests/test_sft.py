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


def test_sft_resumes_from_last_checkpoint(sft_run):
    config, out = sft_run
    from dataclasses import replace

    resumed = run_sft(replace(config, max_steps=10, resume=True))
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
                 "--grad_accum", "--resume", "--eval_fraction", "--seed"):
        assert flag in text, flag
    assert "Default by adapter" in text


def test_cli_reports_bad_data_as_an_error_line(tmp_path, capsys):
    from rlhf.cli import main

    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"prompt": "q", "completion": ""}) + "\n")
    assert main(["sft", "--data", str(path), "--output_dir", str(tmp_path / "o")]) == 2
    assert "row 1, field 'completion': is empty" in capsys.readouterr().err
