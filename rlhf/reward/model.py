"""The reward model: a causal LM's transformer with a scalar head, saved as a plain
`AutoModelForSequenceClassification` folder (num_labels=1), and the one place that turns text
into a reward: `RewardModel.score`, used by PPO, `rlhf eval`, best-of-N and the reward stage alike.

    rm = RewardModel.load("runs/reward")
    rm.score(prompts, completions)                  # (n,) rewards in std units (REWARD_UNIT)
    rm.score(prompts, completions, normalize=False) # ... centred only: raw + bias

Input text is the tokenizer's chat template of [the conversation, assistant completion] (a prompt
is a string or a list of messages, system and earlier turns kept: rlhf/data/conversation.py); the
score is the head applied to the last real token, with position ids over real tokens (`rlhf.sequences`), so
padding and a shared prompt prefix never change it. `token_values` applies the same head at every
position (a critic initialised from the reward model).

The scale: after training, the reward stage scores calibration completions of the user's own
domain (by default the completions of the training rankings: their prompts, their SFT policy's
answers) and stores the offset that centres them (`rlhf_reward_bias`) and their std
(`rlhf_reward_std`) in config.json and reward_calibration.json. Every score is
(raw + bias) / std: 0 is the average calibration completion, 1.0 is one std above it. Loading
the folder with plain `AutoModelForSequenceClassification` gives the raw, uncentred score.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Sequence

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForSequenceClassification

from rlhf.adapters.blocks import find_blocks, find_final_norm
from rlhf.adapters.sft_output import MERGEABLE, PLAIN, load_sft_output
from rlhf.models import load_tokenizer, pick_device, pick_dtype
from rlhf.sequences import forward, pad_shared_prompts, pad_with_shared_prefix

CALIBRATION_FILE = "reward_calibration.json"
REWARD_UNIT = "std units: (raw + bias) / std of the calibration completions, 0 = their mean"


# --- text -> token ids -> scores ----------------------------------------------------------------


def chat_texts(tokenizer, prompts: Sequence, completions: Sequence[str]) -> list[str]:
    """The chat template of [conversation, assistant completion] for each pair, as text. A prompt
    is a conversation: a string (one user message) or messages (rlhf/data/conversation.py)."""
    from rlhf.data.conversation import render_text

    return [render_text(tokenizer, p, c) for p, c in zip(prompts, completions)]


def encode_detailed(tokenizer, prompts: Sequence, completions: Sequence[str], max_length: int,
                    max_prompt_length: int | None = None) -> list:
    """`rlhf.data.conversation.Encoded` per pair: the token ids of the chat-templated conversation
    and completion, at most `max_length`, and what was cut to fit (the prompt's oldest turns first,
    then its oldest tokens, the completion's tail last: the score is read at the end and must see
    the answer)."""
    from rlhf.data.conversation import encode_scored

    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
    return [encode_scored(tokenizer, p, c, max_length, max_prompt_length) for p, c in zip(prompts, completions)]


def encode(tokenizer, prompts: Sequence, completions: Sequence[str], max_length: int,
           max_prompt_length: int | None = None) -> list[list[int]]:
    """Token ids of each chat-templated (conversation, completion), cut to fit as `encode_detailed`."""
    return [e.ids for e in encode_detailed(tokenizer, prompts, completions, max_length, max_prompt_length)]


def unwrap(model):
    """The sequence-classification model under a PEFT wrapper (LoRA layers stay injected in it)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _backbone_and_head(model):
    seq = unwrap(model)
    return getattr(seq, seq.base_model_prefix), seq.score


def sequence_scores(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, prefix_len: int = 0,
                    prompt_len: int = 0, group_sizes=None) -> torch.Tensor:
    """The head's raw score at each sequence's last real token.  (n, t), (n, t) -> (n,) float32

    Any padding (left, right, or after a shared prefix of `prefix_len` tokens run once), or the
    layout of `rlhf.sequences.pad_shared_prompts`: each ranking's conversation run once for its
    completions (`prompt_len`, `group_sizes`), the same scores and gradients as the plain forward.
    The position comes from the attention mask, not from searching for the pad token as
    transformers' own pooling does: that breaks when pad == EOS and a text ends in EOS."""
    backbone, head = _backbone_and_head(model)
    hidden = forward(backbone, input_ids, attention_mask, prefix_len, prompt_len=prompt_len,
                     group_sizes=group_sizes).last_hidden_state  # (n, t - (prompt_len or prefix_len), h)
    mask = attention_mask[:, attention_mask.shape[1] - hidden.shape[1]:]
    steps = torch.arange(mask.shape[1], device=mask.device)
    last = (steps * mask).argmax(-1)  # (n,)
    pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]  # (n, h)
    return head(pooled).squeeze(-1).float()


def token_values(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, response_len: int,
                 prefix_len: int = 0, bias: float = 0.0, std: float = 1.0) -> torch.Tensor:
    """The head at each position that predicts one of the last `response_len` tokens, on the reward
    scale ((raw + bias) / std): per-token values of a critic initialised from the reward model (the
    reward model reads the last position; a critic needs each state). Left-padded rows.
    (b, s), (b, s) -> (b, response_len) float32"""
    backbone, head = _backbone_and_head(model)
    hidden = forward(backbone, input_ids, attention_mask, prefix_len).last_hidden_state[:, -response_len - 1:-1]
    return (head(hidden).squeeze(-1).float() + bias) / std


@torch.no_grad()
def score_ids(model, ids: Sequence[Sequence[int]], pad_id: int, batch_size: int = 16,
              group_sizes: Sequence[int] | None = None) -> torch.Tensor:
    """Raw scores of many token sequences.  -> (n,) float32 on the model's device

    Longest first, so batches pad little; the tokens every row of a batch starts with (the chat
    template's system prompt and turn header) run once per batch (`rlhf.sequences`). `group_sizes`:
    runs of consecutive rows that continue one conversation (a ranking's K completions); a group
    stays in one batch (of about `batch_size` rows) and its conversation runs once for all its rows."""
    device = next(model.parameters()).device
    sizes = list(group_sizes) if group_sizes is not None else [1] * len(ids)
    if sum(sizes) != len(ids):
        raise ValueError(f"group sizes add up to {sum(sizes)}, not the {len(ids)} sequences")
    starts = [0] * len(sizes)
    for g in range(1, len(sizes)):
        starts[g] = starts[g - 1] + sizes[g - 1]
    rows_of = [list(range(a, a + k)) for a, k in zip(starts, sizes)]
    order = sorted(range(len(sizes)), key=lambda g: -max((len(ids[i]) for i in rows_of[g]), default=0))
    out = torch.empty(len(ids), device=device)
    for batch in _batches(order, sizes, batch_size):
        rows = [list(ids[i]) for g in batch for i in rows_of[g]]
        prompt_len, kept = 0, None
        if max(sizes[g] for g in batch) > 1:
            input_ids, mask, prompt_len, prefix_len, kept = pad_shared_prompts(rows, [sizes[g] for g in batch], pad_id)
        if not prompt_len:  # no group shares its conversation: the batch-wide prefix at least
            input_ids, mask, prefix_len = pad_with_shared_prefix(rows, pad_id)
        with autocast(device):
            scores = sequence_scores(model, input_ids.to(device), mask.to(device), prefix_len, prompt_len=prompt_len,
                                     group_sizes=kept)
        out[torch.tensor([i for g in batch for i in rows_of[g]], device=device)] = scores
    return out


def _batches(order: list[int], sizes: list[int], batch_size: int) -> list[list[int]]:
    """Groups in `order`, packed into batches of at most `batch_size` rows (a larger group alone)."""
    batches, rows = [], batch_size
    for g in order:
        if not sizes[g]:
            continue
        if rows + sizes[g] > batch_size:
            batches.append([])
            rows = 0
        batches[-1].append(g)
        rows += sizes[g]
    return batches


def autocast(device):
    """bf16 autocast on CUDA (fp32 master weights), nothing on CPU where bf16 is slow."""
    kind = torch.device(device).type
    return torch.autocast(kind, dtype=torch.bfloat16, enabled=kind == "cuda")


# --- building the model from a base or an SFT output --------------------------------------------


def load_merged_causal_lm(name: str | None):
    """A plain causal LM (fp32, CPU) from a base model or an SFT output, adapters merged in
    (`rlhf.adapters.load_sft_output`). An adapter that cannot be merged into plain weights (prompt or
    prefix tuning, series or parallel bottleneck adapters) is an error: the saved reward model must
    load with plain transformers."""
    model, kind = load_sft_output(name, device="cpu", dtype=torch.float32)
    if kind == PLAIN:
        return model
    if kind != MERGEABLE:
        raise _not_mergeable(name, f"a {kind} adapter")
    try:
        return model.merge_and_unload()
    except (AttributeError, TypeError, ValueError, NotImplementedError) as err:
        raise _not_mergeable(name, f"{type(err).__name__}: {err}") from None


def _not_mergeable(name, why: str) -> ValueError:
    return ValueError(
        f"The SFT output {name!r} holds an adapter that cannot be merged into the base weights ({why}). "
        "A reward model must be a plain transformer: start it from the base model (--model BASE), or from "
        "an SFT run with a mergeable adapter (lora, dora, ia3) or partial/full fine-tuning.")


def build_reward_model(name: str | None, pad_token_id: int, seed: int = 0):
    """A sequence-classification model (num_labels=1, fp32, CPU) on the weights of `name`.

    The transformer is moved over from the causal LM (no copy, no second random init); the new head
    is drawn from N(0, 1 / (d_model + 1)) as in Stiennon et al. 2020, so first rewards are small."""
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


def add_lora(model, lora_r: int, lora_alpha: int, adapter_name: str = "default"):
    """A PeftModel with LoRA on every linear layer of a sequence-classification model's transformer,
    no dropout, and the head trained in full as a copy (modules_to_save): the reward stage's LoRA,
    and PPO's critic on the reward model, where switching the adapter off gives the reward model back."""
    backbone, _ = _backbone_and_head(model)
    targets = sorted({n.split(".")[-1] for n, m in backbone.named_modules() if isinstance(m, torch.nn.Linear)})
    config = LoraConfig(task_type="SEQ_CLS", r=lora_r, lora_alpha=lora_alpha, lora_dropout=0.0,
                        target_modules=targets, modules_to_save=["score"])
    return get_peft_model(model, config, adapter_name=adapter_name)


def prepare_for_training(model, train: str, lora_r: int = 16, lora_alpha: int = 32, partial_layers: int = 2):
    """Set what trains: 'lora' (`add_lora`), 'partial' (last N blocks, final norm, head) or 'full'.
    Dropout off, as in TRL's reward trainer: scores of one ranking must be comparable."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    backbone = getattr(model, model.base_model_prefix)
    if train == "full":
        model.requires_grad_(True)
        return model
    if train == "partial":
        model.requires_grad_(False)
        blocks_name, blocks = find_blocks(backbone)
        for block in list(blocks)[-partial_layers:]:
            block.requires_grad_(True)
        norm = find_final_norm(backbone, blocks_name)
        if norm is not None:
            norm.requires_grad_(True)
        model.score.requires_grad_(True)
        return model
    if train == "lora":
        return add_lora(model, lora_r, lora_alpha)
    raise ValueError(f"unknown train mode {train!r} (use lora, partial or full)")


def merged(model):
    """A plain sequence-classification model: LoRA merged into the weights, trained head in place."""
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model


def save_reward_model(model, tokenizer, path: str | Path, bias: float, std: float, max_length: int,
                      extra: dict | None = None, state_dict: dict | None = None) -> Path:
    """Write a plain seq-cls folder: weights, tokenizer, calibration in config.json and a JSON file
    (with `extra`, e.g. which completions calibrated it, and the unit of the scores). `state_dict`:
    the weights to write instead of the model's own (full tensors gathered from FSDP2 shards)."""
    path = Path(path)
    model.config.pad_token_id = tokenizer.pad_token_id
    model.config.rlhf_reward_bias = float(bias)
    model.config.rlhf_reward_std = float(std)
    model.config.rlhf_max_length = int(max_length)
    model.save_pretrained(path, state_dict=state_dict)
    tokenizer.save_pretrained(path)
    calibration = {"bias": float(bias), "std": float(std), "max_length": int(max_length), "unit": REWARD_UNIT,
                   **(extra or {})}
    (path / CALIBRATION_FILE).write_text(json.dumps(calibration, indent=2))
    return path


# --- scoring ------------------------------------------------------------------------------------


class RewardModel:
    """A trained reward model: `score(prompts, completions)` gives one reward per pair, in std units
    (REWARD_UNIT): the scale PPO, `rlhf eval`, best-of-N and the reports all use.

    Attributes: `model` (the seq-cls transformer, e.g. to initialise a PPO critic), `tokenizer`,
    `bias` (added to raw scores so the calibration completions average 0), `std` (their std)."""

    def __init__(self, model, tokenizer, bias: float = 0.0, std: float = 1.0, max_length: int = 512):
        self.model, self.tokenizer = model, tokenizer
        self.bias, self.std, self.max_length = float(bias), float(std), int(max_length)

    @classmethod
    def load(cls, path: str | Path, device: str | None = None, dtype=None) -> "RewardModel":
        """The folder `rlhf reward` wrote, its calibration applied by `score`. Raises
        `rlhf.models.ModelNotFoundError` when `path` holds no model (the CLI: one line, exit 2)."""
        from rlhf.models import ModelNotFoundError

        device = pick_device(device)
        if not Path(path).expanduser().is_dir():  # a folder, never tried as a hub id (offline that retries for a minute)
            raise ModelNotFoundError(f"no reward model at {path}: no such folder (in {Path.cwd()}); pass the folder "
                                     f"`rlhf reward` wrote")
        try:
            model = AutoModelForSequenceClassification.from_pretrained(str(Path(path).expanduser()),
                                                                       dtype=dtype or pick_dtype(device))
        except OSError as err:  # a missing folder, or one without config.json / weights
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ModelNotFoundError(f"no reward model at {path} (a folder `rlhf reward` wrote): {first}") from None
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

    def score(self, prompts: Sequence, completions: Sequence[str], batch_size: int = 16,
              normalize: bool = True) -> torch.Tensor:
        """Rewards (raw + bias) / std: 0 for the average calibration completion, 1.0 one std above
        it. `normalize=False` gives raw + bias (centred, not scaled). `prompts` are conversations:
        strings (one user message each) or message lists, rendered whole through the tokenizer's
        chat template. Returns (n,) float32 on the model's device."""
        ids = encode(self.tokenizer, prompts, completions, self.max_length)
        if not ids:
            return torch.empty(0, device=self.device)
        was_training = self.model.training
        self.model.eval()
        raw = score_ids(self.model, ids, self.tokenizer.pad_token_id, batch_size)
        self.model.train(was_training)
        return self.to_scale(raw, normalize)

    def to_scale(self, raw: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """Raw head outputs -> rewards on this model's scale (see `score`). Any shape."""
        rewards = raw + self.bias
        return rewards / self.std if normalize else rewards
