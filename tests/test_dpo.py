"""`rlhf dpo` on tiny models: reference == SFT policy, training moves the policy the right way, the
saved folder reloads as the same policy, bad rankings fail with row and field."""

import json
import math

import pytest
import torch

from rlhf.data import DataError
from rlhf.dpo import (
    DPOStageConfig,
    build_trainer,
    load_pairs,
    ranking_to_pairs,
    run_dpo,
    save_policy,
)
from rlhf.adapters import load_causal_lm

N_PROMPTS = 12


def _rankings(path):
    """A learnable preference: the helpful answer beats two tied refusals (2 pairs, the tie gives none);
    one all-tie ranking (no pair) and one TRL pair row (1 pair)."""
    rows = [{"prompt": f"What is {i} plus one?", "completions": ["No.", f"Gladly: it is {i + 1}.", "Go away."],
             "ranking": [[1], [0, 2]], "labeler": "alice", "flags": [], "seconds": 3.0} for i in range(N_PROMPTS)]
    rows.append({"prompt": "Say hi.", "completions": ["Hi.", "Hello."], "ranking": [[0, 1]], "labeler": "bob"})
    rows.append({"prompt": "Name a colour.", "chosen": "Gladly: blue.", "rejected": "No."})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _config(tmp_path, policy, **overrides):
    values = {"policy": None if policy is None else str(policy), "data": str(_rankings(tmp_path / "rankings.jsonl")),
              "output_dir": str(tmp_path / "dpo"), "max_steps": 3, "batch_size": 2, "grad_accum": 1, "learning_rate": 5e-3,
              "max_length": 64, "logging_steps": 1, "eval_fraction": 0.25, "device": "cpu"}
    return DPOStageConfig(**{**values, **overrides})


def _completion_logps(model, batch):
    """Summed log-prob of each completion, computed the plain way (full logits), as TRL's fused head should."""
    ids, mask, completion = batch["input_ids"], batch["attention_mask"], batch["completion_mask"]
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits[:, -ids.shape[1]:]  # (b, t, v)
    logps = torch.log_softmax(logits[:, :-1].float(), -1).gather(-1, ids[:, 1:, None])[..., 0]  # (b, t-1)
    return (logps * completion[:, 1:]).sum(-1)  # (b,)


def _reference_logps(trainer, batch):
    chosen, rejected = trainer.compute_ref_log_probs(trainer.model, batch)
    return torch.cat([chosen, rejected])  # the collator stacks chosen rows, then rejected rows


def _first_batch(trainer):
    return next(iter(trainer.get_train_dataloader()))


@pytest.fixture(scope="module")
def sft_lora_dir(tiny_model_dir, tmp_path_factory):
    """A non-trivial "SFT" LoRA (random A and B, so it really changes the model), saved with PEFT."""
    import peft

    base = load_causal_lm(str(tiny_model_dir), device="cpu")
    torch.manual_seed(1)
    model = peft.get_peft_model(base, peft.LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False))
    path = tmp_path_factory.mktemp("sft-lora")
    model.save_pretrained(path)
    return path


def test_pairs_are_every_strict_order_in_chat_format(tmp_path):
    from rlhf.data import load_preferences

    rankings, _ = load_preferences(_rankings(tmp_path / "r.jsonl"))
    rows = ranking_to_pairs(rankings)
    assert len(rows) == 2 * N_PROMPTS + 1  # 2 per ranking, none from the tie, 1 from the pair row
    assert rows[0] == {"prompt": [{"role": "user", "content": "What is 0 plus one?"}],
                       "chosen": [{"role": "assistant", "content": "Gladly: it is 1."}],
                       "rejected": [{"role": "assistant", "content": "No."}]}
    assert rows[1]["rejected"][0]["content"] == "Go away."


def test_rankings_that_rank_a_text_against_itself_are_left_out_and_counted(tmp_path):
    """Two identical answers in different tiers would give a pair with chosen == rejected (loss log 2
    whatever the weights) and contradictory pairs: DPO leaves the ranking out, counted, as the reward
    stage does."""
    path = tmp_path / "r.jsonl"
    rows = [{"prompt": "Say hi", "completions": ["Hi!", "Hi!", "Hello."], "ranking": [[0], [2], [1]]},
            {"prompt": "Say bye", "completions": ["Bye.", "Go."], "ranking": [[0], [1]]}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    train, eval_ds, counts = load_pairs(DPOStageConfig(data=str(path), eval_fraction=0.0))
    assert [(r["chosen"][0]["content"], r["rejected"][0]["content"]) for r in train] == [("Bye.", "Go.")]
    assert eval_ds is None and counts["rankings"] == 2 and counts["rankings_dropped_identical"] == 1


def test_lora_sft_is_the_reference_and_dpo_learns_the_preference(tmp_path, sft_lora_dir, tiny_model_dir):
    trainer = build_trainer(_config(tmp_path, sft_lora_dir, max_steps=3))
    info = trainer.rlhf_info
    assert info["sft_kind"] == "merged" and info["train_pairs"] + info["eval_pairs"] == 2 * N_PROMPTS + 1
    assert info["eval_prompts"] >= 1 and info["train_prompts"] + info["eval_prompts"] == N_PROMPTS + 2

    # Step 0: the reference (adapter off) is the SFT policy, not the pre-SFT base, and the policy
    # (fresh LoRA, B = 0) starts equal to it.
    batch = _first_batch(trainer)
    reference = _reference_logps(trainer, batch)
    sft = _completion_logps(load_causal_lm(str(sft_lora_dir), device="cpu").eval(), batch)
    base = _completion_logps(load_causal_lm(str(tiny_model_dir), device="cpu").eval(), batch)
    assert torch.allclose(reference, sft, atol=1e-3), (reference, sft)
    assert (reference - base).abs().max() > 0.1, "the SFT adapter changed nothing: the check proves nothing"
    assert torch.allclose(_completion_logps(trainer.model.eval(), batch), sft, atol=1e-3)

    # Train: finite loss, LoRA moved, the reference did not, chosen beats rejected on held-out prompts.
    trainer.train()
    history = trainer.state.log_history
    losses = [h["loss"] for h in history if "loss" in h]
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses)
    assert losses[-1] < losses[0]
    assert max(p.abs().max().item() for n, p in trainer.model.named_parameters() if "lora_B" in n) > 0
    assert torch.allclose(_reference_logps(trainer, batch), reference, atol=1e-4)
    first = next(h for h in history if "rewards/accuracies" in h)
    assert first["rewards/accuracies"] == 0.0  # policy == reference: every reward is 0, no pair is won
    evaluation = trainer.evaluate()
    assert evaluation["eval_rewards/accuracies"] > 0.5 and evaluation["eval_rewards/margins"] > 0

    # The saved folder is the trained policy: same log-probs as the in-memory one.
    trainer.model.eval()
    in_memory = _completion_logps(trainer.model, batch)
    out = save_policy(trainer.model, trainer.processing_class, tmp_path / "saved")
    assert (out / "config.json").exists() and not (out / "adapter_config.json").exists()
    reloaded = load_causal_lm(str(out), device="cpu").eval()
    assert torch.allclose(_completion_logps(reloaded, batch), in_memory, atol=1e-4)
    assert (in_memory - sft).abs().max() > 1e-3, "DPO did not move the policy"


def test_run_dpo_on_a_full_model_writes_every_output(tmp_path, tiny_model_dir):
    out = run_dpo(_config(tmp_path, tiny_model_dir, max_steps=2))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["sft_kind"] == "full" and metrics["steps"] == 2 and math.isfinite(metrics["train_loss"])
    assert metrics["train_pairs"] + metrics["eval_pairs"] == 2 * N_PROMPTS + 1
    for name in ("eval_loss", "eval_reward_accuracy", "eval_reward_margin", "train_reward_accuracy"):
        assert isinstance(metrics[name], float), name
    config = json.loads((out / "rlhf_config.json").read_text())
    assert config["stage"] == "dpo" and config["beta"] == 0.1 and config["learning_rate"] == 5e-3
    assert any((out / "logs").glob("events.out.tfevents*")), "TensorBoard logs missing"
    policy, base = load_causal_lm(str(out), device="cpu"), load_causal_lm(str(tiny_model_dir), device="cpu")
    changed = [n for n, p in policy.state_dict().items() if not torch.equal(p, base.state_dict()[n])]
    assert any("q_proj" in n for n in changed) and not any("embed" in n for n in changed)


def test_gold_view_logs_the_rule_beside_the_implicit_reward_and_never_changes_the_update(tmp_path, tiny_model_dir):
    """With gold_preference, gold.jsonl holds a row before the first step, every gold_steps steps and
    after the last: the rule's mean on the policy's answers, the implicit reward's held-out margin and
    accuracy (0 and 0 before the first step: policy == reference, every margin exactly 0) and the KL.
    The trained weights are the same as without it, and its time is kept out of train_seconds;
    without it there is no gold.jsonl and no `gold` in metrics.json."""
    (tmp_path / "on").mkdir(), (tmp_path / "off").mkdir()
    on = run_dpo(_config(tmp_path / "on", tiny_model_dir, max_steps=3, gold_preference="detailed", gold_steps=2,
                         gold_prompts=3, gold_max_new_tokens=6))
    rows = [json.loads(line) for line in (on / "gold.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 2, 3]
    assert rows[0]["kl/mean"] == 0.0 and rows[0]["reward/margin"] == 0.0 and rows[0]["reward/accuracy"] == 0.0
    assert abs(rows[-1]["kl/mean"]) > 1e-4, "the policy moved: its answers' log-ratio to the SFT policy is not 0"
    # lr 5e-3 on a learnable preference: the held-out pairs go the labels' way (as TRL's own eval says).
    assert rows[-1]["reward/margin"] > 0 and rows[-1]["reward/accuracy"] > 0.5
    assert all(0.0 <= r["length/finished"] <= 1.0 and 0 < r["length/tokens"] <= 6 for r in rows)
    metrics = json.loads((on / "metrics.json").read_text())
    gold = metrics["gold"]
    assert gold["preference"] == "detailed" and gold["first"] == rows[0] and gold["last"] == rows[-1]
    assert gold["split"] == "held-out" and gold["prompts"] == 3 and gold["pairs"] == 2 * 3 and gold["seconds"] > 0
    assert metrics["eval_reward_margin"] > 0
    assert (on / "plots" / "gold_vs_proxy_steps.png").exists() and (on / "plots" / "gold_vs_proxy_kl.png").exists()

    off = run_dpo(_config(tmp_path / "off", tiny_model_dir, max_steps=3))
    assert not (off / "gold.jsonl").exists() and "gold" not in json.loads((off / "metrics.json").read_text())
    with_gold, without = (load_causal_lm(str(d), device="cpu").state_dict() for d in (on, off))
    assert all(torch.equal(with_gold[k], without[k]) for k in without)


def test_gold_view_scores_answers_with_the_rule_against_the_sft_policy(tmp_path, sft_lora_dir):
    """GoldView on a LoRA SFT output (merged, a fresh LoRA on top): the rule gets each held-out prompt's
    messages and the answer's text and reward/gold is the mean of what it returned; the reference
    (the DPO LoRA off) scores the labelled pairs exactly as the SFT policy loaded on its own does; the
    model is left in the mode it was in."""
    from rlhf.dpo import gold_view
    from rlhf.generation import sequence_logprobs

    config = _config(tmp_path, sft_lora_dir, max_steps=3, gold_preference="concise", gold_prompts=2,
                     gold_max_new_tokens=5)
    trainer = build_trainer(config)
    assert trainer.rlhf_info["sft_kind"] == "merged"
    trainer.train()  # the DPO LoRA moves: policy != reference from here on
    view = gold_view(config, "merged", trainer.processing_class, trainer.eval_dataset, "held-out")
    seen = []
    view.gold_fn = lambda prompt, text: seen.append((prompt, text)) or float(len(text))
    trainer.model.train()
    row = view.measure(trainer.model, step=7)
    assert [p for p, _ in seen] == view.prompts and len(view.prompts) == 2
    assert all(p[-1]["role"] == "user" for p in view.prompts) and len(view.pairs) == 4  # 2 pairs per prompt
    assert row["step"] == 7 and row["reward/gold"] == pytest.approx(sum(len(t) for _, t in seen) / 2)
    assert trainer.model.training
    # 2 prompts x 3 answers (one helpful, two refusals): 3 distinct sequences each, every one scored once.
    assert len(view.sequences) == 6 and sorted({i for pair in view.pairs for i in pair}) == list(range(6))
    pad = trainer.processing_class.pad_token_id
    sft = sequence_logprobs(load_causal_lm(str(sft_lora_dir), device="cpu"), view.sequences, pad)
    assert torch.allclose(view._reference_sequences, sft, atol=1e-3)
    policy = sequence_logprobs(trainer.model, view.sequences, pad)
    assert (policy - sft).abs().max() > 1e-4
    # The margin of each pair from those scores, by hand.
    implicit = 0.1 * (policy - view._reference_sequences)
    margins = [float(implicit[c] - implicit[r]) for c, r in view.pairs]
    assert row["reward/margin"] == pytest.approx(sum(margins) / len(margins), abs=1e-5)
    assert row["reward/accuracy"] == pytest.approx(sum(m > 0 for m in margins) / len(margins))


def test_bad_gold_settings_fail_before_any_model_loads(tmp_path):
    from rlhf.stages import ConfigError

    for bad, match in (({"gold_preference": "nope"}, "unknown preference 'nope'"),
                       ({"gold_preference": "concise", "gold_prompts": 0}, "gold_prompts must be at least 1"),
                       ({"gold_preference": "concise", "gold_steps": -1}, "gold_steps must be 0")):
        with pytest.raises(ConfigError, match=match):
            build_trainer(_config(tmp_path, tmp_path / "no-model-here", **bad))


def test_series_adapter_stays_frozen_under_the_fresh_lora(tmp_path, tiny_model_dir):
    from rlhf.adapters import AdapterConfig, apply_adapter, save_adapter

    sft = apply_adapter(load_causal_lm(str(tiny_model_dir), device="cpu"), AdapterConfig(adapter="series", bottleneck_size=8))
    torch.manual_seed(2)
    with torch.no_grad():
        for name, p in sft.named_parameters():
            if ".up." in name:
                p.normal_(0, 0.5)  # a fresh bottleneck adds 0: give it something to change
    save_adapter(sft, tmp_path / "sft-series")

    trainer = build_trainer(_config(tmp_path, tmp_path / "sft-series", max_steps=2))
    assert trainer.rlhf_info["sft_kind"] == "series"
    lora_on = {n.split(".lora_A")[0] for n, _ in trainer.model.named_parameters() if "lora_A" in n}
    assert lora_on and not any("bottleneck" in n for n in lora_on)
    trainable = [n for n, p in trainer.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)

    batch = _first_batch(trainer)
    reference = _reference_logps(trainer, batch)
    sft_logps = _completion_logps(load_causal_lm(str(tmp_path / "sft-series"), device="cpu").eval(), batch)
    base_logps = _completion_logps(load_causal_lm(str(tiny_model_dir), device="cpu").eval(), batch)
    assert torch.allclose(reference, sft_logps, atol=1e-3)
    assert (reference - base_logps).abs().max() > 0.1

    trainer.train()
    trainer.model.eval()
    in_memory = _completion_logps(trainer.model, batch)
    out = save_policy(trainer.model, trainer.processing_class, tmp_path / "saved")
    from safetensors import safe_open

    with safe_open(str(out / "base" / "model.safetensors"), "pt") as fh:
        assert not any("bottleneck" in k for k in fh.keys())  # noqa: SIM118 - safe_open has no __iter__, "the base folder must hold the base weights only"
    reloaded = load_causal_lm(str(out), device="cpu").eval()
    assert torch.allclose(_completion_logps(reloaded, batch), in_memory, atol=1e-4)
    assert (in_memory - sft_logps).abs().max() > 1e-3


def test_prompt_tuning_sft_trains_its_soft_prompt_against_a_frozen_copy(tmp_path, tiny_model_dir):
    from rlhf.adapters import AdapterConfig, apply_adapter, save_adapter

    sft = apply_adapter(load_causal_lm(str(tiny_model_dir), device="cpu"), AdapterConfig(adapter="prompt-tuning", num_virtual_tokens=4))
    save_adapter(sft, tmp_path / "sft-pt")
    trainer = build_trainer(_config(tmp_path, tmp_path / "sft-pt", max_steps=2, learning_rate=5e-2))
    assert trainer.rlhf_info["sft_kind"] == "prompt-learning"
    assert [n for n, p in trainer.model.named_parameters() if p.requires_grad] == ["prompt_encoder.default.embedding.weight"]
    batch = _first_batch(trainer)
    sft_logps = _completion_logps(load_causal_lm(str(tmp_path / "sft-pt"), device="cpu").eval(), batch)
    assert torch.allclose(_reference_logps(trainer, batch), sft_logps, atol=1e-3)
    trainer.train()
    assert torch.allclose(_reference_logps(trainer, batch), sft_logps, atol=1e-3), "the reference moved"
    trainer.model.eval()
    in_memory = _completion_logps(trainer.model, batch)
    out = save_policy(trainer.model, trainer.processing_class, tmp_path / "saved")
    assert torch.allclose(_completion_logps(load_causal_lm(str(out), device="cpu").eval(), batch), in_memory, atol=1e-4)
    assert (in_memory - sft_logps).abs().max() > 1e-4


@pytest.mark.slow
def test_dpo_on_the_embedded_default(tmp_path):
    """The real 135M model (no SFT folder: the embedded default is the policy), two steps, reloadable."""
    from rlhf.models import load_tokenizer

    out = run_dpo(_config(tmp_path, None, max_steps=2, learning_rate=None, eval_fraction=0.0))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 2 and math.isfinite(metrics["train_loss"]) and metrics["learning_rate"] == 5e-5
    assert "eval_reward_accuracy" not in metrics and metrics["eval_pairs"] == 0
    model, tokenizer = load_causal_lm(str(out), device="cpu"), load_tokenizer(str(out))
    assert tokenizer.pad_token == "<|endoftext|>" and model.num_parameters() > 100_000_000


def test_bad_rankings_fail_with_row_and_field_before_any_model_loads(tmp_path):
    path = _rankings(tmp_path / "r.jsonl")
    with path.open("a") as fh:
        fh.write(json.dumps({"prompt": "q", "completions": ["a", "b", "c"], "ranking": [[0], [1]]}) + "\n")
    config = DPOStageConfig(policy=str(tmp_path / "no-such-model"), data=str(path), output_dir=str(tmp_path / "out"))
    with pytest.raises(DataError, match=r"row 15, field 'ranking'.*not ranked"):
        run_dpo(config)
    assert not (tmp_path / "out").exists()


def test_only_ties_is_a_data_error(tmp_path):
    path = tmp_path / "ties.jsonl"
    path.write_text(json.dumps({"prompt": "q", "completions": ["a", "b"], "ranking": [[0, 1]]}) + "\n")
    with pytest.raises(DataError, match="every ranking is a single tie"):
        run_dpo(DPOStageConfig(data=str(path), output_dir=str(tmp_path / "out")))


def test_cli_help_lists_the_dpo_options(capsys):
    from rlhf.cli import main

    with pytest.raises(SystemExit):
        main(["dpo", "--help"])
    text = capsys.readouterr().out
    for flag in ("--policy", "--data", "--beta", "--learning_rate", "--eval_fraction", "--lora_r", "--max_steps"):
        assert flag in text, flag
