"""Every adapter on a tiny random Llama: trains, counts, saves, reloads, switches, disables."""

from __future__ import annotations

import copy
import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rlhf.adapters import (  # noqa: E402
    ADAPTERS,
    AdapterConfig,
    adapter_summary,
    apply_adapter,
    disable_adapter,
    load_adapter,
    load_base_for_adapter,
    save_adapter,
    set_active_adapter,
    uses_gradient_checkpointing,
)
from rlhf.models import count_parameters, tiny_causal_lm, tiny_tokenizer  # noqa: E402
from rlhf.stages import ConfigError  # noqa: E402

# (case id, AdapterConfig overrides, learning rate): every adapter but qlora (CUDA only), plus the
# variants whose code paths differ (bottleneck beside attention, partial with an untied head).
CASES = [
    ("lora", {}, 1e-2),
    ("dora", {}, 1e-2),
    ("rslora", {}, 1e-2),
    ("ia3", {}, 5e-2),
    ("prompt-tuning", {}, 5e-2),
    ("prefix-tuning", {}, 1e-2),
    ("series", {}, 1e-2),
    ("parallel", {}, 1e-2),
    ("series", {"bottleneck_placement": "attn", "bottleneck_nonlinearity": "gelu"}, 1e-2),
    ("parallel", {"bottleneck_placement": "attn", "bottleneck_nonlinearity": "relu"}, 1e-2),
    ("partial", {"partial_layers": 1}, 1e-2),
    ("partial", {"partial_layers": 1, "partial_train_head": True}, 1e-2),
    ("full", {}, 1e-3),
]
CASE_IDS = [name + "".join(f"-{v}" for v in overrides.values()) for name, overrides, _ in CASES]


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def batch(tokenizer):
    texts = ["The cat sat on the mat.", "Two plus two is four, said the teacher."]
    enc = tokenizer(texts, return_tensors="pt", padding=True)
    labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": labels}


_BASES: dict[int, torch.nn.Module] = {}


def tiny_base(tokenizer, seed: int = 0):
    """A fresh copy of the tiny model for `seed` (copying is much cheaper than re-initialising)."""
    if seed not in _BASES:
        _BASES[seed] = tiny_causal_lm(tokenizer, seed=seed)
    return copy.deepcopy(_BASES[seed])


def same(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-6) -> bool:
    return a.shape == b.shape and (a - b).abs().max().item() <= atol


def differs(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Over the positions both share: prompt tuning prepends virtual tokens to its logits."""
    n = min(a.shape[1], b.shape[1])
    return (a[:, -n:] - b[:, -n:]).abs().max().item() > 1e-3


def logits(model, batch) -> torch.Tensor:
    model.eval()  # LoRA dropout off: outputs must be deterministic to compare
    with torch.no_grad():
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits


def train_steps(model, batch, lr: float, steps: int = 4) -> list[float]:
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    losses = []
    for _ in range(steps):
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses


def test_config_names_the_choices_for_an_unknown_adapter():
    with pytest.raises(ValueError, match="choose one of lora, dora, rslora, qlora.*partial, full"):
        AdapterConfig(adapter="lora2")
    with pytest.raises(ValueError, match="bottleneck_placement='ffn'"):
        AdapterConfig(adapter="series", bottleneck_placement="ffn")


def test_config_fields_are_cli_flags():
    from transformers import HfArgumentParser

    argv = ["--adapter", "ia3", "--target_modules", "k_proj", "down_proj", "--partial_train_head", "true"]
    (config,) = HfArgumentParser(AdapterConfig).parse_args_into_dataclasses(args=argv)
    assert (config.adapter, config.target_modules, config.partial_train_head) == ("ia3", ["k_proj", "down_proj"], True)


@pytest.mark.parametrize("name,overrides,lr", CASES, ids=CASE_IDS)
def test_adapter_trains_saves_and_reloads(name, overrides, lr, tokenizer, batch, tmp_path):
    base_logits = logits(tiny_base(tokenizer, seed=0), batch)
    model = apply_adapter(tiny_base(tokenizer, seed=0), AdapterConfig(adapter=name, **overrides))

    summary = adapter_summary(model)
    assert (summary["trainable"], summary["total"]) == count_parameters(model)
    if name == "full":
        assert summary["share"] == 1.0
    elif overrides.get("partial_train_head"):
        assert 0.45 < summary["share"] < 0.55  # the untied head doubles the 3.1M-parameter embedding
    else:
        assert 0 < summary["share"] < 0.05  # the 3.2M-parameter tiny model is mostly its embedding

    losses = train_steps(model, batch, lr)
    assert losses[-1] < losses[0], losses
    trained = logits(model, batch)
    assert differs(trained, base_logits)

    save_adapter(model, tmp_path / "adapter")
    reloaded = load_adapter(tiny_base(tokenizer, seed=0), tmp_path / "adapter")
    assert same(logits(reloaded, batch), trained)
    assert count_parameters(reloaded)[0] == 0  # loaded for inference unless is_trainable=True


def test_trainable_counts_match_hand_computed_sizes(tokenizer):
    # Tiny Llama: hidden 64, MLP 128, 4 heads of 16, 2 key/value heads (k, v project 64 -> 32), 2 blocks.
    # LoRA r=16 adds r*(in+out) per linear: q 16*128 + k 16*96 + v 16*96 + o 16*128
    # + gate 16*192 + up 16*192 + down 16*192 = 16,384 per block -> 32,768.
    lora = adapter_summary(apply_adapter(tiny_base(tokenizer), AdapterConfig(adapter="lora")))
    assert lora["trainable"] == 32_768
    # Bottleneck 64: down 64*64+64 and up 64*64+64 = 8,320 per block -> 16,640.
    series = adapter_summary(apply_adapter(tiny_base(tokenizer), AdapterConfig(adapter="series")))
    assert series["trainable"] == 16_640
    # IA3 on Llama: one scale per output of k and v (32 + 32) and per input of down (128) = 192 per block.
    ia3 = adapter_summary(apply_adapter(tiny_base(tokenizer), AdapterConfig(adapter="ia3")))
    assert ia3["trainable"] == 384


def test_partial_trains_last_blocks_and_an_untied_head_only(tokenizer, batch):
    model = tiny_causal_lm(tokenizer, num_layers=3)
    embedding_before = model.get_input_embeddings().weight.detach().clone()
    apply_adapter(model, AdapterConfig(adapter="partial", partial_layers=1, partial_train_head=True))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    last_block = {n for n, _ in model.named_parameters() if n.startswith("model.layers.2.")}
    assert trainable == last_block | {"model.norm.weight", "lm_head.weight"}
    assert model.lm_head.weight is not model.model.embed_tokens.weight
    assert model.config.tie_word_embeddings is False
    train_steps(model, batch, lr=1e-2, steps=2)
    assert torch.equal(model.get_input_embeddings().weight, embedding_before)
    with pytest.raises(ValueError, match="changes the base weights"):
        disable_adapter(model)


@pytest.mark.parametrize("kind", ["series", "parallel"])
@pytest.mark.parametrize("placement", ["mlp", "attn"])
def test_bottleneck_starts_as_the_exact_base_model(kind, placement, tokenizer, batch):
    base_logits = logits(tiny_base(tokenizer, seed=3), batch)
    config = AdapterConfig(adapter=kind, bottleneck_placement=placement, bottleneck_scaling=2.0)
    model = apply_adapter(tiny_base(tokenizer, seed=3), config)
    assert torch.equal(logits(model, batch), base_logits)


@pytest.mark.parametrize("name", ["lora", "prefix-tuning", "series", "parallel"])
def test_disable_adapter_gives_base_logits(name, tokenizer, batch):
    base_logits = logits(tiny_base(tokenizer, seed=1), batch)
    model = apply_adapter(tiny_base(tokenizer, seed=1), AdapterConfig(adapter=name))
    train_steps(model, batch, lr=5e-2, steps=2)
    assert differs(logits(model, batch), base_logits)
    with disable_adapter(model):
        assert same(logits(model, batch), base_logits)
    with model.disable_adapter():  # PeftModel's spelling works on bottleneck models too
        assert same(logits(model, batch), base_logits)
    assert differs(logits(model, batch), base_logits)


@pytest.mark.parametrize("name", ["series", "lora"])
def test_named_adapters_switch_and_keep_their_trainability(name, tokenizer, batch, tmp_path):
    """PPO's layout: a frozen reference adapter and a trainable policy adapter on one base."""
    base_logits = logits(tiny_base(tokenizer, seed=2), batch)
    model = apply_adapter(tiny_base(tokenizer, seed=2), AdapterConfig(adapter=name), adapter_name="ref")
    train_steps(model, batch, lr=1e-2, steps=2)
    ref_logits = logits(model, batch)
    save_adapter(model, tmp_path / "ref")

    model = apply_adapter(model, AdapterConfig(adapter=name), adapter_name="policy")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".policy." in n for n in trainable)
    assert same(logits(model, batch), base_logits)  # fresh policy = base
    train_steps(model, batch, lr=1e-2, steps=2)
    policy_logits = logits(model, batch)

    set_active_adapter(model, "ref")
    assert same(logits(model, batch), ref_logits)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == trainable
    set_active_adapter(model, None)
    assert same(logits(model, batch), base_logits)
    set_active_adapter(model, "policy")
    assert same(logits(model, batch), policy_logits)
    with pytest.raises(ValueError, match="nope"):
        set_active_adapter(model, "nope")

    # A named adapter saves into the folder itself and reloads under any name.
    assert (tmp_path / "ref" / "adapter_config.json").exists()
    reloaded = load_adapter(tiny_base(tokenizer, seed=2), tmp_path / "ref", adapter_name="sft")
    assert same(logits(reloaded, batch), ref_logits)


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    from rlhf.models import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny") / "base")


@pytest.mark.parametrize("name", ["lora", "series", "partial"])
def test_load_causal_lm_opens_saved_adapter_folders(name, base_dir, tmp_path, batch):
    from rlhf.adapters import load_causal_lm

    model = apply_adapter(load_causal_lm(str(base_dir)), AdapterConfig(adapter=name))
    train_steps(model, batch, lr=1e-2, steps=2)
    save_adapter(model, tmp_path / "adapter")
    assert same(logits(load_causal_lm(str(tmp_path / "adapter")), batch), logits(model, batch))


def test_qlora_needs_cuda_and_bitsandbytes(tokenizer):
    config = AdapterConfig(adapter="qlora")
    if torch.cuda.is_available():  # then a full-precision base is the mistake to report
        with pytest.raises(ValueError, match="must be loaded in 4-bit"):
            apply_adapter(tiny_base(tokenizer), config)
        return
    message = "QLoRA needs a CUDA GPU and bitsandbytes: pip install bitsandbytes"
    with pytest.raises(ConfigError, match=message + r" \(missing here: .*a CUDA device\)"):
        apply_adapter(tiny_base(tokenizer), config)
    with pytest.raises(ConfigError, match=message):
        load_base_for_adapter(None, config)


def test_gradient_checkpointing_is_off_only_for_prefix_tuning():
    assert [a for a in ADAPTERS if not uses_gradient_checkpointing(AdapterConfig(adapter=a))] == ["prefix-tuning"]


def test_series_adapter_in_sft_trainer_saves_resumes_and_reloads(tokenizer, batch, tmp_path):
    import datasets
    from trl import SFTConfig, SFTTrainer

    words = ["sun", "moon", "tree", "cat", "dog", "rain", "snow", "wind"]
    rows = [{"prompt": [{"role": "user", "content": f"Say {w} twice."}],
             "completion": [{"role": "assistant", "content": f"{w} {w}"}]} for w in words]
    dataset = datasets.Dataset.from_list(rows)
    args = SFTConfig(output_dir=str(tmp_path / "run"), max_steps=2, per_device_train_batch_size=4, learning_rate=1e-2,
                     use_cpu=True, bf16=False, report_to=[], save_steps=2, logging_steps=1, max_length=64,
                     gradient_checkpointing=True)

    def series_model():
        return apply_adapter(tiny_base(tokenizer, seed=0), AdapterConfig(adapter="series"))

    model = series_model()
    base_weight = model.model.layers[0].mlp.down_proj.weight.detach().clone()
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
    assert torch.equal(model.model.layers[0].mlp.down_proj.weight, base_weight)  # base frozen
    up = model.model.layers[0].mlp.bottleneck["default"].up.weight
    assert up.abs().sum() > 0  # the zero-initialised up-projection moved

    save_adapter(model, tmp_path / "adapter")
    reloaded = load_adapter(tiny_base(tokenizer, seed=0), tmp_path / "adapter")
    assert same(logits(reloaded, batch), logits(model, batch))

    # Resuming from the Trainer checkpoint restores the adapter into a fresh model.
    fresh = series_model()
    resumed = SFTTrainer(model=fresh, args=args, train_dataset=dataset, processing_class=tokenizer)
    resumed.train(resume_from_checkpoint=str(tmp_path / "run" / "checkpoint-2"))
    assert torch.equal(fresh.model.layers[0].mlp.bottleneck["default"].up.weight, up)


def test_every_stage_resolves_its_learning_rate_one_way():
    from rlhf.adapters import ADAPTERS, resolve_learning_rate
    from rlhf.dpo import DPOStageConfig, resolved_learning_rate
    from rlhf.ppo import PPOConfig
    from rlhf.reward import RewardConfig
    from rlhf.sft import DEFAULT_LEARNING_RATES, SFTConfig

    assert set(DEFAULT_LEARNING_RATES) == set(ADAPTERS)  # every adapter has a default
    assert SFTConfig(adapter="dora").resolved_learning_rate() == 2e-4
    assert SFTConfig(adapter="ia3").resolved_learning_rate() == 3e-3
    assert SFTConfig(adapter="full", learning_rate=1e-6).resolved_learning_rate() == 1e-6
    assert PPOConfig(policy_train="full").resolved_learning_rate() == 1e-5
    assert RewardConfig(train="partial").resolved_learning_rate() == 3e-5
    assert resolved_learning_rate(DPOStageConfig(), "prompt-learning") == 7.5e-4
    assert resolved_learning_rate(DPOStageConfig(), "series") == 5e-5
    with pytest.raises(ValueError, match="learning_rate=0.0: give a positive number"):
        resolve_learning_rate(0.0, {"lora": 1e-4}, "lora")
