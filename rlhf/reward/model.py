"""The reward model: a causal LM's transformer with a scalar head, saved as a plain
`AutoModelForSequenceClassification` folder (num_labels=1), and `RewardModel` to score with it.

    rm = RewardModel.load("runs/reward")
    rm.score(prompts, completions)                  # (n,) rewards, mean 0 on the calibration data
    rm.score(prompts, completions, normalize=True)  # ... divided by their std there

Input text is the tokenizer's chat template of [user prompt, assistant completion]; the score is the
head applied to the last real token. Calibration: Llama-style heads have no bias, so the offset
that centres the rewards (`rlhf_reward_bias`) and their std (`rlhf_reward_std`) are stored in the
saved config.json (and reward_calibration.json). `RewardModel` applies them; loading the folder
with plain `AutoModelForSequenceClassification.from_pretrained` gives the raw, uncentred score.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

import torch

CALIBRATION_FILE = "reward_calibration.json"


# --- text -> token ids -> scores ----------------------------------------------------------------


def chat_texts(tokenizer, prompts: Sequence[str], completions: Sequence[str]) -> list[str]:
    """The chat template of [user prompt, assistant completion] for each pair, as text."""
    return [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": p}, {"role": "assistant", "content": c}], tokenize=False)
        for p, c in zip(prompts, completions)
    ]


def encode(tokenizer, prompts: Sequence[str], completions: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids of each chat-templated pair, at most `max_length`; longer ones lose tokens from the
    left (the prompt side), because the score is read at the end and must see the whole answer."""
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
    if not prompts:
        return []
    ids = tokenizer(chat_texts(tokenizer, prompts, completions), add_special_tokens=False)["input_ids"]
    return [x[-max_length:] for x in ids]


def collate(ids: Sequence[Sequence[int]], pad_id: int, padding_side: str = "right"):
    """Pad to one tensor. Returns input_ids (n, t) and attention_mask (n, t), 1 = real token."""
    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(ids), width), dtype=torch.long)
    for row, x in enumerate(ids):
        span = slice(width - len(x), width) if padding_side == "left" else slice(0, len(x))
        input_ids[row, span] = torch.tensor(x, dtype=torch.long)
        attention_mask[row, span] = 1
    return input_ids, attention_mask


def unwrap(model):
    """The sequence-classification model under a PEFT wrapper (LoRA layers stay injected in it)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def sequence_scores(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The head's score at each sequence's last real token.  (n, t), (n, t) -> (n,) float32

    The position comes from the attention mask, not from searching for the pad token as
    transformers' own pooling does: that breaks when pad == EOS and a text ends in EOS. Position
    ids count real tokens only, so left and right padding give the same scores."""
    seq = unwrap(model)
    backbone = getattr(seq, seq.base_model_prefix)
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    hidden = backbone(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                      use_cache=False).last_hidden_state  # (n, t, h)
    steps = torch.arange(input_ids.shape[1], device=input_ids.device)
    last = (steps * attention_mask).argmax(-1)  # (n,)
    pooled = hidden[torch.arange(input_ids.shape[0], device=hidden.device), last]  # (n, h)
    return seq.score(pooled).squeeze(-1).float()


@torch.no_grad()
def score_ids(model, ids: Sequence[Sequence[int]], pad_id: int, batch_size: int = 16,
              padding_side: str = "right") -> torch.Tensor:
    """Raw scores of many token sequences, longest first so batches pad little.  -> (n,) on model's device"""
    device = next(model.parameters()).device
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    out = torch.empty(len(ids), device=device)
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        input_ids, mask = collate([ids[i] for i in chunk], pad_id, padding_side)
        with autocast(device):
            out[torch.tensor(chunk, device=device)] = sequence_scores(model, input_ids.to(device), mask.to(device))
    return out


def autocast(device):
    """bf16 autocast on CUDA (fp32 master weights), nothing on CPU where bf16 is slow."""
    kind = torch.device(device).type
    return torch.autocast(kind, dtype=torch.bfloat16, enabled=kind == "cuda")


# --- building the model from a base or an SFT output --------------------------------------------


def _peft_adapter_type(path: Path) -> str | None:
    config = path / "adapter_config.json"
    if not config.exists():
        return None
    from peft import PeftType

    kind = str(json.loads(config.read_text()).get("peft_type") or "")
    return kind if kind in PeftType.__members__ else None


def load_merged_causal_lm(name: str | None):
    """A plain causal LM (fp32, CPU) from a base model or an SFT output, adapters merged in.

    A PEFT adapter folder loads its base, then merge_and_unload(); other adapter folders go through
    rlhf.adapters. An adapter that cannot be merged into plain weights (prompt or prefix tuning,
    series or parallel bottleneck adapters) is an error: the saved reward model must load with
    plain transformers."""
    from rlhf.models import _adapter_base, load_causal_lm

    path = Path(str(name)) if name else None
    if path is not None and _peft_adapter_type(path):
        from peft import PeftModel

        base = load_causal_lm(_adapter_base(path), device="cpu", dtype=torch.float32)
        model = PeftModel.from_pretrained(base, str(path))
    else:
        model = load_causal_lm(name, device="cpu", dtype=torch.float32)
    if hasattr(model, "peft_config") or hasattr(model, "merge_and_unload"):
        if not hasattr(model, "merge_and_unload"):
            raise _not_mergeable(name, type(model).__name__)
        try:
            model = model.merge_and_unload()
        except (AttributeError, TypeError, ValueError, NotImplementedError) as err:
            raise _not_mergeable(name, f"{type(err).__name__}: {err}") from None
    return model


def _not_mergeable(name, why: str) -> ValueError:
    return ValueError(
        f"The SFT output {name!r} holds an adapter that cannot be merged into the base weights ({why}). "
        "A reward model must be a plain transformer: start it from the base model (--model BASE), or from "
        "an SFT run with a mergeable adapter (lora, dora, ia3) or partial/full fine-tuning.")


def build_reward_model(name: str | None, pad_token_id: int, seed: int = 0):
    """A sequence-classification model (num_labels=1, fp32, CPU) on the weights of `name`.

    The transformer is moved over from the causal LM (no copy, no second random init); the new head
    is drawn from N(0, 1 / (d_model + 1)) as in Stiennon et al. 2020, so first rewards are small."""
    import copy

    from transformers import AutoModelForSequenceClassification

    causal = load_merged_causal_lm(name)
    config = copy.deepcopy(causal.config)
    config.num_labels, config.pad_token_id = 1, pad_token_id
    config.architectures = None
    with torch.device("meta"):  # skeleton only: its transformer is replaced below
        seq = AutoModelForSequenceClassification.from_config(config)
    backbone = getattr(causal, causal.base_model_prefix)
    expected = set(getattr(seq, seq.base_model_prefix).state_dict())
    if set(backbone.state_dict()) != expected:
        extra = sorted(set(backbone.state_dict()) - expected)[:3]
        raise _not_mergeable(name, f"modules beyond a plain transformer remain, e.g. {extra}")
    setattr(seq, seq.base_model_prefix, backbone)
    hidden = config.get_text_config().hidden_size
    generator = torch.Generator().manual_seed(seed)
    seq.score = torch.nn.Linear(hidden, 1, bias=False)
    with torch.no_grad():
        seq.score.weight.copy_(torch.randn(1, hidden, generator=generator) / math.sqrt(hidden + 1))
    return seq


# --- what to train ------------------------------------------------------------------------------


def _blocks(backbone):
    for attr in ("layers", "h", "blocks"):
        if hasattr(backbone, attr):
            return getattr(backbone, attr)
    raise ValueError(f"cannot find the transformer blocks of {type(backbone).__name__} for train=partial")


def prepare_for_training(model, train: str, lora_r: int = 16, lora_alpha: int = 32, partial_layers: int = 2):
    """Set what trains: 'lora' (LoRA on every linear layer of the transformer, head trained in full
    through modules_to_save), 'partial' (last N blocks, final norm, head) or 'full'. Dropout off,
    as in TRL's reward trainer: scores of one ranking must be comparable."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    backbone = getattr(model, model.base_model_prefix)
    if train == "full":
        model.requires_grad_(True)
        return model
    if train == "partial":
        model.requires_grad_(False)
        for block in list(_blocks(backbone))[-partial_layers:]:
            block.requires_grad_(True)
        for attr in ("norm", "ln_f", "final_layernorm"):
            if hasattr(backbone, attr):
                getattr(backbone, attr).requires_grad_(True)
        model.score.requires_grad_(True)
        return model
    if train == "lora":
        from peft import LoraConfig, get_peft_model

        targets = sorted({n.split(".")[-1] for n, m in backbone.named_modules() if isinstance(m, torch.nn.Linear)})
        config = LoraConfig(task_type="SEQ_CLS", r=lora_r, lora_alpha=lora_alpha, lora_dropout=0.0,
                            target_modules=targets, modules_to_save=["score"])
        return get_peft_model(model, config)
    raise ValueError(f"unknown train mode {train!r} (use lora, partial or full)")


def merged(model):
    """A plain sequence-classification model: LoRA merged into the weights, trained head in place."""
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model


def save_reward_model(model, tokenizer, path: str | Path, bias: float, std: float, max_length: int,
                      extra: dict | None = None, state_dict: dict | None = None) -> Path:
    """Write a plain seq-cls folder: weights, tokenizer, calibration in config.json and a JSON file.
    `state_dict`: the weights to write instead of the model's own (full tensors gathered from
    FSDP2 shards)."""
    path = Path(path)
    model.config.pad_token_id = tokenizer.pad_token_id
    model.config.rlhf_reward_bias = float(bias)
    model.config.rlhf_reward_std = float(std)
    model.config.rlhf_max_length = int(max_length)
    model.save_pretrained(path, state_dict=state_dict)
    tokenizer.save_pretrained(path)
    calibration = {"bias": float(bias), "std": float(std), "max_length": int(max_length), **(extra or {})}
    (path / CALIBRATION_FILE).write_text(json.dumps(calibration, indent=2))
    return path


# --- scoring ------------------------------------------------------------------------------------


class RewardModel:
    """A trained reward model: `score(prompts, completions)` gives one reward per pair.

    Attributes: `model` (the seq-cls transformer, e.g. to initialise a PPO critic), `tokenizer`,
    `bias` (added to raw scores so the calibration completions average 0), `std` (their std)."""

    def __init__(self, model, tokenizer, bias: float = 0.0, std: float = 1.0, max_length: int = 512):
        self.model, self.tokenizer = model, tokenizer
        self.bias, self.std, self.max_length = float(bias), float(std), int(max_length)

    @classmethod
    def load(cls, path: str | Path, device: str | None = None, dtype=None) -> "RewardModel":
        from transformers import AutoModelForSequenceClassification

        from rlhf.models import load_tokenizer, pick_device, pick_dtype

        device = pick_device(device)
        model = AutoModelForSequenceClassification.from_pretrained(str(path), dtype=dtype or pick_dtype(device))
        model.to(device).eval()
        file = Path(path) / CALIBRATION_FILE
        saved = json.loads(file.read_text()) if file.exists() else {}
        config = model.config
        bias = getattr(config, "rlhf_reward_bias", saved.get("bias", 0.0))
        std = getattr(config, "rlhf_reward_std", saved.get("std", 1.0))
        max_length = getattr(config, "rlhf_max_length", saved.get("max_length", 512))
        return cls(model, load_tokenizer(str(path)), bias=bias, std=std, max_length=max_length)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def score(self, prompts: Sequence[str], completions: Sequence[str], batch_size: int = 16,
              normalize: bool = False) -> torch.Tensor:
        """Rewards: raw score + bias (so calibration completions average 0), divided by the stored
        std when `normalize`. Returns (n,) float32 on the model's device."""
        ids = encode(self.tokenizer, prompts, completions, self.max_length)
        if not ids:
            return torch.empty(0, device=self.device)
        was_training = self.model.training
        self.model.eval()
        raw = score_ids(self.model, ids, self.tokenizer.pad_token_id, batch_size, self.tokenizer.padding_side)
        self.model.train(was_training)
        rewards = raw + self.bias
        return rewards / self.std if normalize else rewards
