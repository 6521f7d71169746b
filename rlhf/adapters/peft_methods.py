"""The adapters PEFT already has: LoRA, DoRA, rsLoRA, QLoRA, IA3, prompt tuning, prefix tuning.

This module only turns our flat `AdapterConfig` into PEFT's config objects and checks QLoRA's
requirements; training, saving and loading are PEFT's own (`PeftModel`).
"""

from __future__ import annotations

import importlib.util

QLORA_ERROR = "QLoRA needs a CUDA GPU and bitsandbytes: pip install bitsandbytes"
# IA3 scales the *input* of feed-forward output projections and the output of the others, so PEFT
# must know which targets are feed-forward ones (names across Llama, GPT-2/OPT, NeoX, Mistral).
FEEDFORWARD_NAMES = ("down_proj", "fc2", "w2", "dense_4h_to_h", "fc_out", "wo")


def check_qlora_supported() -> None:
    """Raise unless a CUDA device and bitsandbytes are both present. bitsandbytes 0.50 also has a
    CPU backend, but 4-bit training there is slow enough that a silent fallback would mislead:
    QLoRA here means 4-bit NF4 weights on a CUDA GPU, and anything else is an error."""
    import torch

    missing = []
    if importlib.util.find_spec("bitsandbytes") is None:
        missing.append("the bitsandbytes package")
    if not torch.cuda.is_available():
        missing.append("a CUDA device")
    if missing:
        from rlhf.stages import ConfigError

        raise ConfigError(f"{QLORA_ERROR} (missing here: {' and '.join(missing)}). "
                           "Without a GPU, use --adapter lora: the same adapter on a full-precision base.")


def bnb_4bit_config():
    """The QLoRA paper's recipe (Dettmers et al. 2023): NF4, double quantization, bf16 compute."""
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )


def load_4bit_base(name, device: str | None = None):
    """The base model with its linear layers in 4-bit NF4, on one CUDA device."""
    import torch
    from transformers import AutoModelForCausalLM

    from rlhf.models import _from_pretrained

    check_qlora_supported()
    device = device or "cuda:0"
    return _from_pretrained(
        AutoModelForCausalLM, name, quantization_config=bnb_4bit_config(), dtype=torch.bfloat16, device_map={"": device}
    )


def peft_config(config, model):
    """PEFT's config object for one of our PEFT-backed adapter names."""
    import peft

    lora_kwargs = dict(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.target_modules or "all-linear",  # every linear layer of the blocks, not lm_head
        task_type="CAUSAL_LM",
    )
    if config.adapter in ("lora", "qlora"):
        return peft.LoraConfig(**lora_kwargs)
    if config.adapter == "dora":
        return peft.LoraConfig(**lora_kwargs, use_dora=True)
    if config.adapter == "rslora":
        return peft.LoraConfig(**lora_kwargs, use_rslora=True)  # scale alpha/sqrt(r), not alpha/r
    if config.adapter == "ia3":
        targets = config.target_modules  # None: PEFT's per-architecture default (k, v, down for Llama)
        feedforward = None if targets is None else [t for t in targets if t.split(".")[-1] in FEEDFORWARD_NAMES]
        return peft.IA3Config(target_modules=targets, feedforward_modules=feedforward, task_type="CAUSAL_LM")
    if config.adapter == "prompt-tuning":
        return peft.PromptTuningConfig(num_virtual_tokens=config.num_virtual_tokens, task_type="CAUSAL_LM")
    if config.adapter == "prefix-tuning":
        return peft.PrefixTuningConfig(num_virtual_tokens=config.num_virtual_tokens, task_type="CAUSAL_LM")
    raise ValueError(f"{config.adapter!r} is not a PEFT adapter")


def apply_peft(model, config, adapter_name: str = "default"):
    """Wrap `model` in a PeftModel (or add a named adapter to one), the new adapter active and trainable."""
    import peft

    if config.adapter == "qlora":
        check_qlora_supported()
        if not getattr(model, "is_loaded_in_4bit", False):
            raise ValueError(
                "qlora: the base model must be loaded in 4-bit; load it with "
                "rlhf.adapters.load_base_for_adapter(name, config)"
            )
        # Casts norms to fp32 and enables input grads so checkpointed 4-bit blocks pass gradients.
        model = peft.prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
    if isinstance(model, peft.PeftModel):
        model.add_adapter(adapter_name, peft_config(config, model))
        model.set_adapter(adapter_name)  # active and the only trainable adapter
        return model
    return peft.get_peft_model(model, peft_config(config, model), adapter_name=adapter_name)
