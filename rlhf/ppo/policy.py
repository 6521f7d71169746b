"""The policy, its reference and its critic: how PPO holds the SFT model.

The reference is the SFT policy, and PPO trains a copy of it. Three layouts:

| SFT output                                  | policy                          | reference                      |
|---------------------------------------------|---------------------------------|--------------------------------|
| model folder, base, LoRA/DoRA/IA3 (merged)  | a fresh LoRA on the SFT weights | the same model, LoRA off       |
| series/parallel/prompt/prefix adapter       | a trainable copy of the adapter | the frozen original, switched  |
| any, with policy_train=full                 | every weight                    | a frozen copy                  |

The first two keep one base model in memory. Whatever the layout, `check_reference` compares the
reference's logits with the SFT model's as loaded, on real prompts, before training starts: a
reference that silently fell back to the pre-SFT base is an error, not a quiet bug.

Critics: a zero-initialised linear head on the policy's last hidden state ("value-head"), or the
reward model's transformer and head ("reward"; InstructGPT, N+), which with LoRA training is a LoRA
on the reward model itself so that switching it off gives the reward model back.
"""

from __future__ import annotations

import copy
import json
import shutil
from contextlib import contextmanager
from pathlib import Path

import torch
from peft.tuners.lora import Linear as LoraLinear
from torch import nn

from rlhf.adapters import AdapterConfig, apply_adapter, load_adapter, save_adapter, set_active_adapter
from rlhf.adapters.sft_output import MERGEABLE, PLAIN, load_sft_output
from rlhf.models import DEFAULT_MODEL
from rlhf.reward.model import add_lora, token_values
from rlhf.sequences import forward, position_ids
from rlhf.stages import ConfigError

SWITCHED = "switched"  # layout: named adapters "reference" and "policy" in one model


class ReferenceMismatchError(RuntimeError):
    """The reference model does not compute the SFT policy."""


# --- one forward pass, the same for rollout, reference and training ---------------------------


def response_forward(model, input_ids, attention_mask, response_len: int, hidden: bool = False, prefix_len: int = 0):
    """Logits (and last hidden states) at the positions that predict the response tokens.

    Position ids count real tokens only (`rlhf.sequences`); without them the log-probs of a padded
    row differ from the ones sampled. Only the last `response_len + 1` positions go through the LM
    head (logits_to_keep), saving its cost on the prompt. (b, s) -> logits (b, t, v), hidden (b, t, h)"""
    out = forward(model, input_ids, attention_mask, prefix_len, logits_to_keep=response_len + 1,
                  output_hidden_states=hidden)
    logits = out.logits[:, -response_len - 1:-1]
    states = out.hidden_states[-1][:, -response_len - 1:-1] if hidden else None
    return logits, states


class ValueHead(nn.Module):
    """V(s) = w . h + b on the policy's last hidden state, which it reads detached: the value loss
    trains the head only. Adam rescales every gradient to a unit-size step, so a value-loss gradient
    flowing into a shared backbone would move the policy even when the policy loss is skipped.
    Zero-initialised: first values are 0, the right guess for normalised scores."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.linear = nn.Linear(hidden_size, 1)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:  # (b, t, h) -> (b, t)
        return self.linear(hidden.detach().to(self.linear.weight.dtype)).squeeze(-1)


class ActorCritic(nn.Module):
    """Policy and critic as one module, so accelerate (DDP, FSDP) sees one set of trainable
    parameters and one forward per training pass. Returns logits (b, t, v) and values (b, t).
    With neither a value head nor a critic (the critic-free estimators) it is the policy alone
    and the values are None: no critic is built, held or trained."""

    def __init__(self, policy: nn.Module, value_head: ValueHead | None = None, critic: nn.Module | None = None,
                 critic_bias: float = 0.0, critic_std: float = 1.0):
        super().__init__()
        if value_head is not None and critic is not None:
            raise ValueError("give at most one of value_head and critic")
        self.policy, self.value_head, self.critic = policy, value_head, critic
        # A critic from the reward model starts out predicting the raw reward; the scores PPO sees
        # are normalised by the reward model's bias and std, so its values are too.
        self.critic_bias, self.critic_std = float(critic_bias), float(critic_std)

    def forward(self, input_ids, attention_mask, response_len: int, prefix_len: int = 0):
        logits, hidden = response_forward(self.policy, input_ids, attention_mask, response_len,
                                          hidden=self.value_head is not None, prefix_len=prefix_len)
        if self.value_head is not None:
            return logits, self.value_head(hidden)
        if self.critic is None:
            return logits, None
        return logits, self.values(input_ids, attention_mask, response_len, prefix_len)

    def values(self, input_ids, attention_mask, response_len: int, prefix_len: int = 0) -> torch.Tensor:
        """The critic alone (a separate critic model only): the reward model's head at every
        response position, on the reward scale (`rlhf.reward.model.token_values`). -> (b, t)"""
        return token_values(self.critic, input_ids, attention_mask, response_len, prefix_len,
                            self.critic_bias, self.critic_std)


# --- building the policy and its reference -----------------------------------------------------


class PolicyPair:
    """The trainable policy and a way to run the reference: `with pair.reference() as ref: ref(...)`.

    `layout` is "lora" (reference = adapter off), "switched" (named adapters) or "copy"."""

    def __init__(self, model, layout: str, ref_model=None):
        self.model, self.layout, self.ref_model = model, layout, ref_model
        self.sft_logits, self.sft_merged = None, False

    @contextmanager
    def reference(self):
        if self.layout == "copy":
            yield self.ref_model
        elif self.layout == "lora":
            with self.model.disable_adapter():
                yield self.model
        else:
            set_active_adapter(self.model, "reference")
            try:
                yield self.model
            finally:
                set_active_adapter(self.model, "policy")


@contextmanager
def merged_lora(model, adapter: str = "policy"):
    """Inside this block the policy's LoRA update B·A·s sits in the base weights and the LoRA branch
    is off: generation then runs at the plain model's speed (PEFT's per-layer branch costs about a
    quarter of a CPU decode step). The original weight tensors are kept aside and put back as they
    were, not un-merged by subtraction, so no rounding drift ever reaches the reference.
    Plain LoRA only (no DoRA, no dropout); anything else runs unmerged."""
    layers = [m for m in model.modules() if isinstance(m, LoraLinear) and adapter in m.lora_A]
    plain = layers and all(not m.use_dora.get(adapter, False) and isinstance(m.lora_dropout[adapter], nn.Identity)
                           for m in layers)
    if not plain or not hasattr(model, "disable_adapter"):
        yield model
        return
    originals = []
    try:
        with torch.no_grad():
            for m in layers:
                weight = m.base_layer.weight
                originals.append((weight, weight.data))
                weight.data = weight.data + m.get_delta_weight(adapter).to(weight.dtype)
        with model.disable_adapter():
            yield model
    finally:
        for weight, data in originals:
            weight.data = data


def load_sft(name: str | None, device, dtype):
    """The SFT policy as its stage saved it (base + adapter under the name "reference", unmerged;
    `rlhf.adapters.load_sft_output`), and how PPO holds it: "plain" (a model folder),
    "mergeable" (LoRA, DoRA, IA3...: merged into the base once the probe logits are taken) or
    "switched" (series/parallel/prompt/prefix: a second, trainable copy of the adapter is added by
    `build_policy_pair`)."""
    model, kind = load_sft_output(name, device=device, dtype=dtype, adapter_name="reference")
    return model, kind if kind in (PLAIN, MERGEABLE) else SWITCHED


def build_policy_pair(model, kind: str, sft_path: str | None, policy_train: str, lora_r: int, lora_alpha: int,
                      lora_targets: list[str] | None, probe: tuple[torch.Tensor, torch.Tensor]) -> PolicyPair:
    """Turn the loaded SFT model into (trainable policy, reference), checking the reference.

    Step 1: the SFT model's logits on the probe batch, before anything changes.
    Step 2: the layout (merge + fresh LoRA, a trainable adapter copy, or a frozen copy).
    Step 3: the reference's logits on the same batch must equal step 1's."""
    if policy_train == "full" and kind == SWITCHED:
        raise ConfigError("policy_train='full' needs an SFT output that merges into plain weights (a model folder, "
                         "LoRA, DoRA or IA3); with a series, parallel, prompt or prefix adapter use "
                         "policy_train='lora', which trains a copy of that adapter")
    model.eval()
    sft_logits = probe_logits(model, *probe)
    merged = kind == "mergeable"
    if merged:
        model, kind = model.merge_and_unload(), "plain"
    if policy_train == "full":
        model.requires_grad_(False)
        ref = copy.deepcopy(model).eval()  # a switched model keeps its SFT adapter active in both
        model.requires_grad_(True)
        pair = PolicyPair(model, "copy", ref_model=ref)
    elif kind == SWITCHED:
        model.requires_grad_(False)
        # Loaded frozen, then its own tensors unfrozen: PEFT refuses a prompt-learning adapter
        # loaded as trainable, and this way the "reference" adapter can never be trained.
        model = load_adapter(model, sft_path, adapter_name="policy", is_trainable=False)
        for name, param in model.named_parameters():
            param.requires_grad_(".policy." in f".{name}.")
        set_active_adapter(model, "policy")
        pair = PolicyPair(model, SWITCHED)
    else:
        model.requires_grad_(False)
        # No dropout anywhere (N+): the ratio and the KL must compare the same deterministic function.
        config = AdapterConfig(adapter="lora", lora_r=lora_r, lora_alpha=lora_alpha, lora_dropout=0.0,
                               target_modules=lora_targets)
        pair = PolicyPair(apply_adapter(model, config, adapter_name="policy"), "lora")
    pair.model.eval()
    with pair.reference() as ref:
        check_reference(sft_logits, probe_logits(ref, *probe), probe[1])
    pair.sft_logits, pair.sft_merged = sft_logits, merged
    return pair


@torch.no_grad()
def probe_logits(model, input_ids, attention_mask) -> torch.Tensor:
    """Full-sequence logits of a left-padded batch, float32. (b, s) -> (b, s, v)"""
    logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids(attention_mask),
                   use_cache=False).logits
    return logits[:, -input_ids.shape[1]:].float()  # prompt tuning prepends virtual tokens


def check_reference(sft_logits: torch.Tensor, ref_logits: torch.Tensor, attention_mask: torch.Tensor,
                    atol: float | None = None) -> float:
    """Raise `ReferenceMismatchError` unless the reference computes the SFT policy on the probe.
    Returns the difference found.

    Compared as log-probabilities at real tokens: the largest difference in fp32 (merging an
    adapter into the weights only changes rounding, ~1e-5), the mean one in bf16/fp16 (rounding
    there reaches tenths on single logits). A reference that lost the SFT adapter differs by far
    more in both."""
    low_precision = sft_logits.dtype != torch.float32 or ref_logits.dtype != torch.float32
    if atol is None:
        atol = 0.05 if low_precision else 1e-3
    if sft_logits.shape != ref_logits.shape:
        raise ReferenceMismatchError(f"reference logits have shape {tuple(ref_logits.shape)}, "
                                     f"the SFT policy's {tuple(sft_logits.shape)}")
    real = attention_mask.bool()
    gap = (torch.log_softmax(sft_logits.float(), -1) - torch.log_softmax(ref_logits.float(), -1)).abs()[real]
    diff = (gap.mean() if low_precision else gap.max()).item()
    if not diff <= atol:
        raise ReferenceMismatchError(
            f"the PPO reference does not compute the SFT policy: log-probs differ by {diff:.4g} "
            f"({'mean' if low_precision else 'max'}, allowed {atol:g}) on the probe prompts. The reference must be "
            "the SFT model, not the pre-SFT base; check how the SFT output was loaded.")
    return diff


def build_value_head(model) -> ValueHead:
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    return ValueHead(config.hidden_size).to(next(model.parameters()).device)


def build_reward_critic(reward_model, policy_tokenizer, policy_train: str, lora_r: int, lora_alpha: int):
    """The critic initialised from the reward model (InstructGPT; N+).

    With policy_train=lora the critic is a LoRA on the reward model itself (head trained as a
    copy via modules_to_save), so `with critic.disable_adapter()` scores with the untouched reward
    model and no second copy is held. With full, a trainable deep copy."""
    if reward_model.tokenizer.get_vocab() != policy_tokenizer.get_vocab():
        raise ConfigError("critic='reward' reads the policy's tokens, but the reward model has a different "
                         "vocabulary: use critic='value-head' or a reward model trained from the policy's base")
    seq = reward_model.model
    if policy_train == "full":
        critic = copy.deepcopy(seq).requires_grad_(True)
        return critic.eval()
    seq.requires_grad_(False)
    return add_lora(seq, lora_r, lora_alpha, adapter_name="critic").eval()


def save_policy(pair: PolicyPair, sft_source: str | None, path: str | Path, state_dict: dict | None = None) -> Path:
    """Write the trained policy where `rlhf.load_causal_lm(path)` loads it.

    A LoRA on an SFT model that exists on disk (a model folder, the embedded default) is saved as
    an adapter pointing at it; a LoRA on a merged SFT adapter, which exists only in memory, is
    merged into a full model (the LoRA is merged on a copy; training state is left alone); a
    trained adapter copy is saved as that adapter; full fine-tuning saves the full model (from
    `state_dict` when given: the full weights gathered from FSDP2 shards)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model = pair.model
    if pair.layout == "copy":
        model.save_pretrained(path, state_dict=state_dict)
    elif pair.layout == SWITCHED:
        save_adapter(model, path, adapter_name="policy")
    elif pair.sft_merged:
        copy.deepcopy(model).merge_and_unload().save_pretrained(path)
    else:
        model.save_pretrained(path, selected_adapters=["policy"])
        _flatten_adapter_dir(path, "policy")
        config_file = path / "adapter_config.json"
        config = json.loads(config_file.read_text())
        if sft_source is not None or config.get("base_model_name_or_path") is None:
            config["base_model_name_or_path"] = sft_source or DEFAULT_MODEL
        config_file.write_text(json.dumps(config, indent=2))
    return path


def _flatten_adapter_dir(path: Path, name: str) -> None:
    """PEFT writes a non-default adapter into path/<name>/; move it up to path/."""
    sub = path / name
    if sub.is_dir():
        for item in sub.iterdir():
            target = path / item.name
            if target.exists():
                shutil.rmtree(target) if target.is_dir() else target.unlink()
            shutil.move(str(item), str(target))
        sub.rmdir()
