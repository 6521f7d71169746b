"""One switch, `AdapterConfig.adapter`, over every way this toolkit fine-tunes a model.

| adapter        | what trains                                   | from                      | saves            |
|----------------|-----------------------------------------------|---------------------------|------------------|
| lora           | low-rank A·B beside every linear of the blocks | PEFT                      | PEFT adapter dir |
| dora           | LoRA + a learned magnitude per output         | PEFT (`use_dora`)         | PEFT adapter dir |
| rslora         | LoRA scaled alpha/sqrt(r) (stable at high r)  | PEFT (`use_rslora`)       | PEFT adapter dir |
| qlora          | LoRA on a 4-bit NF4 base (CUDA only)          | PEFT + bitsandbytes       | PEFT adapter dir |
| ia3            | a learned scale on k, v and the MLP input     | PEFT                      | PEFT adapter dir |
| prompt-tuning  | virtual token embeddings before the prompt    | PEFT                      | PEFT adapter dir |
| prefix-tuning  | virtual keys/values in every attention layer  | PEFT                      | PEFT adapter dir |
| series         | a bottleneck MLP after each MLP (or attention) | ours (`bottleneck/`)      | adapter only     |
| parallel       | a bottleneck MLP beside each MLP (or attention)| ours (`bottleneck/`)      | adapter only     |
| partial        | the last N blocks + final norm (+ head)       | ours (`partial.py`)       | whole model      |
| full           | everything                                    | ours (`partial.py`)       | whole model      |

    base = load_base_for_adapter(None, config)      # 4-bit for qlora, else load_causal_lm
    model = apply_adapter(base, config)             # ready to train
    save_adapter(model, "out/")
    model = load_adapter(load_causal_lm(None), "out/")

Every folder written by `save_adapter` also loads with `rlhf.load_causal_lm("out/")`
(`rlhf.adapters.sft_output`: what kind of SFT output a folder is, and how each stage loads it).
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from rlhf.adapters.sft_output import load_causal_lm, load_model_and_tokenizer, load_sft_output, sft_output_kind

ADAPTERS = ("lora", "dora", "rslora", "qlora", "prompt-tuning", "prefix-tuning", "ia3", "series", "parallel", "partial", "full")
PEFT_ADAPTERS = ("lora", "dora", "rslora", "qlora", "prompt-tuning", "prefix-tuning", "ia3")
BOTTLENECK_ADAPTERS = ("series", "parallel")
# Prefix tuning feeds its virtual keys/values as a past cache, which checkpointed re-computation
# does not reproduce (SFTTrainer's default checkpointing fails with a tensor-size mismatch).
NO_GRADIENT_CHECKPOINTING = ("prefix-tuning",)


@dataclass
class AdapterConfig:
    """Which adapter to train and its settings (fields not used by the chosen adapter are ignored)."""

    adapter: str = field(
        default="lora",
        metadata={"help": f"How to fine-tune: one of {', '.join(ADAPTERS)}. qlora needs a CUDA GPU and bitsandbytes."},
    )
    lora_r: int = field(default=16, metadata={"help": "LoRA / DoRA / rsLoRA / QLoRA rank r."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha: the update is scaled by alpha/r (alpha/sqrt(r) for rslora)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA input."})
    target_modules: Optional[list[str]] = field(
        default=None,
        metadata={"help": "Module names to adapt (LoRA family, ia3). Default: every linear layer of the blocks "
                          "(q,k,v,o,gate,up,down for Llama); for ia3, k_proj v_proj down_proj."},
    )
    num_virtual_tokens: int = field(default=16, metadata={"help": "prompt-tuning / prefix-tuning: number of virtual tokens."})
    bottleneck_size: int = field(default=64, metadata={"help": "series / parallel: width of the bottleneck (hidden -> size -> hidden)."})
    bottleneck_placement: str = field(
        default="mlp",
        metadata={"help": "series / parallel: 'mlp' or 'attn', the sub-block the adapter sits after (series) or beside (parallel)."},
    )
    bottleneck_nonlinearity: str = field(default="tanh", metadata={"help": "series / parallel: relu, tanh, gelu or silu."})
    bottleneck_scaling: float = field(default=1.0, metadata={"help": "series / parallel: factor on the adapter's output."})
    partial_layers: int = field(default=2, metadata={"help": "partial: train only the last N transformer blocks (and the final norm)."})
    partial_train_head: bool = field(
        default=False,
        metadata={"help": "partial: also train the output head (lm_head). A head tied to the input embedding is "
                          "untied first, so the embedding stays frozen."},
    )

    def __post_init__(self):
        if self.adapter not in ADAPTERS:
            raise ValueError(f"unknown adapter {self.adapter!r}: choose one of {', '.join(ADAPTERS)}")
        from rlhf.adapters.bottleneck.config import NONLINEARITIES, PLACEMENTS

        if self.bottleneck_placement not in PLACEMENTS:
            raise ValueError(f"bottleneck_placement={self.bottleneck_placement!r}: choose one of {', '.join(PLACEMENTS)}")
        if self.bottleneck_nonlinearity not in NONLINEARITIES:
            raise ValueError(f"bottleneck_nonlinearity={self.bottleneck_nonlinearity!r}: choose one of {', '.join(NONLINEARITIES)}")
        problems = self.number_problems()
        if problems:
            raise ValueError(f"{type(self).__name__}: " + "; ".join(problems))

    def number_problems(self) -> list[str]:
        """Sizes and rates out of range, in words (a subclass adds its own fields)."""
        from rlhf.stages import number_problems

        return number_problems(self, at_least_1=("lora_r", "num_virtual_tokens", "bottleneck_size"),
                               at_least_0=("partial_layers",), positive=("lora_alpha",), fraction=("lora_dropout",))

    def bottleneck(self):
        """The series/parallel settings as a `BottleneckConfig`."""
        from rlhf.adapters.bottleneck.config import BottleneckConfig

        return BottleneckConfig(
            kind=self.adapter,
            bottleneck_size=self.bottleneck_size,
            placement=self.bottleneck_placement,
            nonlinearity=self.bottleneck_nonlinearity,
            scaling=self.bottleneck_scaling,
        )


def resolve_learning_rate(learning_rate: float | None, defaults: dict[str, float], what_trains: str) -> float:
    """The learning rate a stage trains with: `learning_rate` when given, else the stage's default
    for what it trains (`defaults[what_trains]`: adapters learn far less per step than whole
    models, so each stage keeps one table, with its source, next to its config). Raises ValueError
    for a rate that is not positive."""
    if learning_rate is None:
        return defaults[what_trains]
    if not learning_rate > 0:
        raise ValueError(f"learning_rate={learning_rate}: give a positive number, or leave it unset for the "
                         f"default ({defaults[what_trains]:g} for {what_trains})")
    return float(learning_rate)


def uses_gradient_checkpointing(config: AdapterConfig) -> bool:
    """Whether training with this adapter may use gradient checkpointing (False for prefix tuning)."""
    return config.adapter not in NO_GRADIENT_CHECKPOINTING


def load_base_for_adapter(name, config: AdapterConfig, device: str | None = None):
    """The base model loaded the way the adapter needs: 4-bit NF4 on CUDA for qlora (a clear error
    without CUDA or bitsandbytes), otherwise `load_causal_lm(name, device)`."""
    if config.adapter == "qlora":
        from rlhf.adapters.peft_methods import load_4bit_base

        return load_4bit_base(name, device)
    return load_causal_lm(name, device=device)


def apply_adapter(model, config: AdapterConfig, adapter_name: str = "default"):
    """Return `model` ready to train with `config.adapter`.

    PEFT methods return a PeftModel (or add `adapter_name` to one); series/parallel return the same
    object with bottleneck modules injected and only they trainable; partial/full return the same
    object with `requires_grad` set. The new adapter is the active one."""
    from rlhf.adapters import partial
    from rlhf.adapters.bottleneck import model as bottleneck

    if config.adapter in PEFT_ADAPTERS:
        from rlhf.adapters.peft_methods import apply_peft

        if bottleneck.is_bottleneck_model(model):
            raise ValueError(f"cannot add a {config.adapter} adapter to a model with bottleneck adapters")
        model = apply_peft(model, config, adapter_name)
    elif _is_peft(model):
        raise ValueError(f"cannot add a {config.adapter} adapter to a PeftModel: start from the base model")
    elif config.adapter in BOTTLENECK_ADAPTERS:
        bottleneck.inject_adapter(model, config.bottleneck(), adapter_name)
    elif config.adapter == "partial":
        partial.apply_partial(model, config.partial_layers, config.partial_train_head)
    else:
        partial.apply_full(model)
    return model


def _is_peft(model) -> bool:
    import importlib.util

    if importlib.util.find_spec("peft") is None:
        return False
    from peft import PeftModel

    return isinstance(model, PeftModel)


def adapter_kind(model) -> str | None:
    """Which family the model carries: "peft", "series"/"parallel" (active bottleneck),
    "partial", "full", or None for a plain model."""
    from rlhf.adapters.bottleneck import model as bottleneck
    from rlhf.adapters.partial import MARK_ATTR

    if _is_peft(model):
        return "peft"
    if bottleneck.is_bottleneck_model(model):
        configs = getattr(model, bottleneck.CONFIGS_ATTR)
        name = bottleneck.active_adapter(model) or next(iter(configs))
        return configs[name].kind
    return (getattr(model, MARK_ATTR, None) or {}).get("adapter")


def save_adapter(model, path, adapter_name: str | None = None, state_dict: dict | None = None) -> None:
    """Write what `load_adapter` (and `load_causal_lm`) reads back.

    PEFT: `save_pretrained` of one adapter (the active one by default) straight into `path`;
    series/parallel: `adapter_config.json` + `adapter_model.safetensors` with the adapter only;
    partial/full: the whole model (`save_pretrained`; from `state_dict` if given) + `rlhf_adapter.json`."""
    from rlhf.adapters import partial
    from rlhf.adapters.bottleneck import model as bottleneck

    kind = adapter_kind(model)
    path = Path(path)
    if kind == "peft":
        _save_peft(model, path, adapter_name or model.active_adapter)
    elif kind in BOTTLENECK_ADAPTERS:
        bottleneck.save(model, path, adapter_name)
    elif kind in ("partial", "full"):
        partial.save(model, path, state_dict)
    else:
        raise ValueError("the model carries no adapter: call apply_adapter(model, config) first")


def _save_peft(model, path: Path, adapter_name: str) -> None:
    import shutil

    # PEFT writes a non-"default" adapter into path/<name>/; we want path/ itself, whatever the name.
    model.save_pretrained(path, selected_adapters=[adapter_name])
    if adapter_name != "default":
        for item in (path / adapter_name).iterdir():
            shutil.move(str(item), str(path / item.name))
        (path / adapter_name).rmdir()


def load_adapter(base_model, path, adapter_name: str = "default", is_trainable: bool = False):
    """Put the adapter saved in `path` on `base_model` (which may already carry other adapters of
    the same family) under `adapter_name`, and make it active. Frozen unless `is_trainable`."""
    from rlhf.adapters import partial
    from rlhf.adapters.bottleneck import model as bottleneck

    path = Path(path)
    config_file = path / "adapter_config.json"
    if (path / partial.RECORD_NAME).exists() and not config_file.exists():
        return partial.load(base_model, path, is_trainable)
    if not config_file.exists():
        raise FileNotFoundError(f"{path}: no adapter_config.json or {partial.RECORD_NAME}: not an adapter folder")
    if json.loads(config_file.read_text()).get("rlhf_adapter") in BOTTLENECK_ADAPTERS:
        return bottleneck.load(base_model, path, adapter_name, is_trainable)
    from peft import PeftModel

    if isinstance(base_model, PeftModel):
        base_model.load_adapter(str(path), adapter_name, is_trainable=is_trainable)
        set_active_adapter(base_model, adapter_name)
        return base_model
    model = PeftModel.from_pretrained(base_model, str(path), adapter_name=adapter_name, is_trainable=is_trainable)
    if not is_trainable:
        model.requires_grad_(False)  # PEFT leaves a prompt-tuning embedding trainable even in inference mode
    return model


def set_active_adapter(model, adapter_name: str | None) -> None:
    """Switch which named adapter computes; None runs the base model. Leaves `requires_grad` as it
    is (PEFT's `set_adapter` would make the chosen adapter trainable), so a frozen reference stays
    frozen while it is active."""
    from rlhf.adapters.bottleneck import model as bottleneck

    kind = adapter_kind(model)
    if kind in BOTTLENECK_ADAPTERS:
        return bottleneck.set_active_adapter(model, adapter_name)
    if kind != "peft":
        raise ValueError(f"set_active_adapter needs a model with named adapters (PEFT, series, parallel), not {kind}")
    if model.active_peft_config.is_prompt_learning and adapter_name is None:
        raise ValueError("prompt/prefix tuning cannot be switched off this way: use `with disable_adapter(model):`")
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    if adapter_name is None:
        model.base_model.disable_adapter_layers()
    else:
        if not model.active_peft_config.is_prompt_learning:
            model.base_model.enable_adapter_layers()
        model.set_adapter(adapter_name)
    for name, p in model.named_parameters():
        p.requires_grad_(flags[name])


def disable_adapter(model):
    """Context manager: inside it the model computes the base model's outputs (PeftModel and
    bottleneck models alike; a plain model is its own base). Partial/full fine-tuning changed the
    base weights, so there is nothing to disable: an error."""
    from rlhf.adapters.bottleneck import model as bottleneck

    kind = adapter_kind(model)
    if kind == "peft":
        return model.disable_adapter()
    if kind in BOTTLENECK_ADAPTERS:
        return bottleneck.disable_adapter(model)
    if kind in ("partial", "full"):
        raise ValueError(f"{kind} fine-tuning changes the base weights: there is no adapter to disable "
                         "(keep a separate copy of the base model as the reference)")
    return nullcontext(model)


def trainable_state(model) -> dict:
    """{name: CPU copy} of every parameter that trains (an adapter, a value head, partial or full
    fine-tuning): what a checkpoint must hold to resume, the frozen rest being rebuilt from the config."""
    return {name: p.detach().cpu().clone() for name, p in model.named_parameters() if p.requires_grad}


def load_trainable_state(model, saved: dict, where) -> None:
    """Copy `trainable_state`'s tensors back into `model` in place (each to its parameter's device and
    dtype). Raises ValueError naming `where` (the checkpoint) unless the names are exactly the
    model's trainable parameters: a checkpoint of another adapter or training mode does not fit."""
    import torch

    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    if set(saved) != set(params):
        missing, extra = sorted(set(params) - set(saved))[:3], sorted(set(saved) - set(params))[:3]
        raise ValueError(f"{where} does not fit this run (different training mode, critic or adapter?): "
                         f"missing {missing}, unexpected {extra}")
    with torch.no_grad():
        for name, tensor in saved.items():
            params[name].copy_(tensor.to(params[name].device, params[name].dtype))


def _peft_label(peft_config) -> str:
    if getattr(peft_config, "use_dora", False):
        return "dora"
    if getattr(peft_config, "use_rslora", False):
        return "rslora"
    return peft_config.peft_type.value.lower().replace("_", "-")


def adapter_summary(model, verbose: bool = True) -> dict:
    """{"trainable": int, "total": int, "share": float}, and a one-line print of it.
    4-bit weights count as the parameters they hold (two per stored byte), as PEFT counts them."""
    trainable = total = 0
    for p in model.parameters():
        n = p.numel()
        if p.__class__.__name__ == "Params4bit":
            n *= 2 * getattr(getattr(p, "quant_storage", None), "itemsize", 1)
        total += n
        trainable += n if p.requires_grad else 0
    summary = {"trainable": trainable, "total": total, "share": trainable / total if total else 0.0}
    if verbose:
        kind = adapter_kind(model) or "none"
        if kind == "peft":
            kind = _peft_label(model.active_peft_config)
        print(f"[rlhf] adapter {kind}: {trainable:,} trainable of {total:,} parameters ({100 * summary['share']:.3f}%)")
    return summary


__all__ = [
    "ADAPTERS",
    "AdapterConfig",
    "adapter_kind",
    "adapter_summary",
    "apply_adapter",
    "disable_adapter",
    "load_adapter",
    "load_base_for_adapter",
    "load_causal_lm",
    "load_model_and_tokenizer",
    "load_sft_output",
    "load_trainable_state",
    "resolve_learning_rate",
    "save_adapter",
    "set_active_adapter",
    "sft_output_kind",
    "trainable_state",
    "uses_gradient_checkpointing",
]
