"""PPOTrainer on tiny models (tier b): it learns, resumes exactly, stops on NaN, keeps the SFT
policy as its reference, and writes what it promises."""

import json
import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from ppo_tiny import CHOSEN, PROMPTS, learning_curve, length_reward, token_reward  # noqa: E402

from rlhf.ppo import NonFiniteError, PPOConfig, PPOTrainer, ReferenceMismatchError  # noqa: E402
from rlhf.ppo import core  # noqa: E402


def tiny_config(tmp_path, policy, **overrides):
    settings = dict(policy=str(policy), output_dir=str(tmp_path / "run"), steps=4, batch_size=4, max_new_tokens=8,
                    learning_rate=3e-3, ppo_epochs=2, num_minibatches=2, save_steps=0, progress=False, device="cpu")
    return PPOConfig(**{**settings, **overrides})


def trainable(trainer):
    return {n: p.detach().clone() for n, p in trainer.actor_critic.named_parameters()
            if p.requires_grad}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


# --- learning -------------------------------------------------------------------------------------


def test_learns_chosen_token_reward_with_bounded_kl(tiny_sft_dir, tmp_path):
    """+1 per occurrence of a chosen word: the mean score must rise clearly within 25 steps while
    the KL to the SFT reference stays below 25 nats per completion."""
    config = tiny_config(tmp_path, tiny_sft_dir, steps=25, batch_size=8, max_new_tokens=12, kl_coef=0.1)
    history = PPOTrainer(config, reward_fn=token_reward, prompts=PROMPTS).train()
    first, last, kls = learning_curve(history)
    assert last > first + 1.5, f"the chosen word was not learned: first 5 steps {first:.2f}, last 5 {last:.2f}"
    assert max(kls) < 25.0, f"KL ran away: {kls}"
    assert all(math.isfinite(h["ppo/value_loss"]) and math.isfinite(h["ppo/policy_loss"]) for h in history)
    assert history[-1]["ppo/policy_updated"] == 1.0 and CHOSEN == "happy"


def test_equal_scores_skip_the_policy_update(tiny_model_dir, tmp_path):
    """docs/notes.md#equal-rewards: all scores equal and KL ~ 0 -> advantages are noise -> the policy must not move."""
    trainer = PPOTrainer(tiny_config(tmp_path, tiny_model_dir, steps=2), reward_fn=lambda p, c: [1.0] * len(c),
                         prompts=PROMPTS)
    policy_before = {n: p for n, p in trainable(trainer).items() if "value_head" not in n}
    metrics = trainer.step()
    assert metrics["ppo/policy_updated"] == 0.0
    after = trainable(trainer)
    assert all(torch.equal(policy_before[n], after[n]) for n in policy_before)
    assert not torch.equal(after["value_head.linear.bias"], torch.zeros(1))  # the critic still learns


@pytest.mark.parametrize("extra", [{}, {"use_kl_loss": True, "adaptive_kl": False}])
def test_token_mean_update_does_not_depend_on_the_micro_batch_cut(tiny_model_dir, tmp_path, extra):
    """token-mean weighs every real token of the optimizer step alike: the same rollout, with one
    completion much shorter than the others, gives the same gradients in one micro-batch as in two
    (gradient accumulation), for the policy loss, the value loss and the KL loss."""
    def gradients(grad_accum, rollout=None):
        config = tiny_config(tmp_path / str(grad_accum), tiny_model_dir, batch_size=4, num_minibatches=1,
                             ppo_epochs=1, grad_accum=grad_accum, max_grad_norm=1e9, loss_agg_mode="token-mean",
                             **extra)
        trainer = PPOTrainer(config, reward_fn=length_reward, prompts=PROMPTS)
        if rollout is None:
            rollout = trainer._rollout(trainer._next_prompts())
            # the first completion keeps one token: its micro-batch holds far fewer tokens than the other
            keep = torch.zeros_like(rollout.response_mask)
            keep[0, 0] = True
            keep[1:] = True
            rollout.response_mask &= keep
            rollout.response_ids = torch.where(rollout.response_mask, rollout.response_ids, trainer.tokenizer.pad_token_id)
            trainer._forward_passes(rollout)
            rollout.raw_scores, rollout.scores = trainer._score(rollout)
        kl = core.kl_per_token(rollout.logprobs, rollout.ref_logprobs)
        _, advantages, returns = core.compute_advantages(
            "gae", rollout.scores, kl, rollout.response_mask, trainer.reward_kl_coef, values=rollout.values)
        grads = []
        step = trainer.optimizer.step
        trainer.optimizer.step = lambda *a, **k: (grads.append(
            {n: p.grad.clone() for n, p in trainer.actor_critic.named_parameters() if p.grad is not None}), step(*a, **k))
        trainer._ppo_epochs(rollout, advantages, returns, policy_on=True)
        return grads[0], rollout

    one, rollout = gradients(1)
    two, _ = gradients(2, rollout)
    assert one.keys() == two.keys() and any("value_head" in n for n in one)
    for name in one:
        assert torch.allclose(one[name], two[name], rtol=1e-4, atol=1e-7), name


# --- resume, NaN --------------------------------------------------------------------------------


class KillAt:
    """A reward function that dies at a given call, like a killed process."""

    def __init__(self, call: int):
        self.call, self.calls = call, 0

    def __call__(self, prompts, completions):
        self.calls += 1
        if self.calls == self.call:
            raise KeyboardInterrupt("killed")
        return length_reward(prompts, completions)


@pytest.mark.parametrize("estimator", ["gae", "grpo"])
def test_killed_and_resumed_run_ends_with_the_same_weights(tiny_model_dir, tmp_path, estimator):
    group = {"advantage_estimator": estimator, "num_generations": 1 if estimator == "gae" else 2}
    config = tiny_config(tmp_path / "a", tiny_model_dir, steps=4, save_steps=2, **group)
    straight = PPOTrainer(config, reward_fn=length_reward, prompts=PROMPTS)
    straight.train()
    expected = trainable(straight)

    config_b = tiny_config(tmp_path / "b", tiny_model_dir, steps=4, save_steps=2, **group)
    with pytest.raises(KeyboardInterrupt):
        PPOTrainer(config_b, reward_fn=KillAt(3), prompts=PROMPTS).train()  # dies in step 3
    assert (tmp_path / "b" / "run" / "checkpoints" / "checkpoint-2" / "trainer.pt").exists()
    resumed = PPOTrainer(PPOConfig(**{**config_b.to_dict(), "resume": True}), reward_fn=length_reward, prompts=PROMPTS)
    resumed.train()
    got = trainable(resumed)
    assert set(got) == set(expected)
    for name in expected:
        assert torch.equal(got[name], expected[name]), f"{name} differs after resume"
    rows_a = [json.loads(x) for x in (tmp_path / "a" / "run" / "metrics.jsonl").read_text().splitlines()]
    rows_b = [json.loads(x) for x in (tmp_path / "b" / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows_b] == [1, 2, 3, 4]
    assert [r["reward/score"] for r in rows_b] == [r["reward/score"] for r in rows_a]
    # changed at all (else equality would prove nothing)
    assert any(not torch.equal(expected[n], trainable(PPOTrainer(config, reward_fn=length_reward, prompts=PROMPTS))[n])
               for n in expected)


def test_nan_reward_stops_naming_step_and_quantity(tiny_model_dir, tmp_path):
    calls = {"n": 0}

    def nan_at_third(prompts, completions):
        calls["n"] += 1
        scores = length_reward(prompts, completions)
        return [float("nan")] + scores[1:] if calls["n"] == 3 else scores

    trainer = PPOTrainer(tiny_config(tmp_path, tiny_model_dir, steps=5, save_steps=2), reward_fn=nan_at_third,
                         prompts=PROMPTS)
    with pytest.raises(NonFiniteError, match=r"step 3: reward is not finite") as err:
        trainer.train()
    assert "checkpoint-2" in str(err.value)
    saved = torch.load(tmp_path / "run" / "checkpoints" / "checkpoint-2" / "trainable.pt")
    now = trainable(trainer)
    assert all(torch.equal(saved[n], now[n]) for n in saved), "weights changed after the last good checkpoint"


def test_nan_in_loss_is_caught_before_the_update(tiny_model_dir, tmp_path):
    trainer = PPOTrainer(tiny_config(tmp_path, tiny_model_dir), reward_fn=length_reward, prompts=PROMPTS)
    trainer.step()
    before = trainable(trainer)
    with torch.no_grad():
        trainer.actor_critic.value_head.linear.bias.fill_(float("inf"))
    with pytest.raises(NonFiniteError, match=r"step 2: (value_loss|advantages) is not finite"):
        trainer.step()
    after = trainable(trainer)
    assert all(torch.equal(before[n], after[n]) for n in before if "value_head" not in n)


# --- the reference is the SFT policy -----------------------------------------------------------------


def make_sft_adapter(base_dir, kind, path):
    from rlhf.adapters import AdapterConfig, apply_adapter, save_adapter
    from rlhf.adapters import load_causal_lm

    model = apply_adapter(load_causal_lm(str(base_dir), device="cpu"), AdapterConfig(adapter=kind))
    torch.manual_seed(1)
    with torch.no_grad():  # a real SFT adapter moves the model: give it weights far from identity
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.5)
    save_adapter(model, path)
    return path


@pytest.mark.parametrize("kind", ["lora", "series", "prompt-tuning"])
def test_reference_is_the_sft_policy_not_the_base(tiny_model_dir, tmp_path, kind):
    from rlhf.adapters import load_causal_lm
    from rlhf.ppo.policy import probe_logits

    sft_dir = make_sft_adapter(tiny_model_dir, kind, tmp_path / f"sft-{kind}")
    trainer = PPOTrainer(tiny_config(tmp_path, sft_dir, steps=1), reward_fn=length_reward, prompts=PROMPTS)
    ids, mask = trainer._encode([p.messages for p in trainer.prompts[:3]])
    sft = probe_logits(load_causal_lm(str(sft_dir), device="cpu").eval(), ids, mask)
    base = probe_logits(load_causal_lm(str(tiny_model_dir), device="cpu").eval(), ids, mask)
    with trainer.policy_and_reference.reference() as reference:
        ref = probe_logits(reference, ids, mask)
    real = mask.bool()
    assert (sft - base).abs()[real].max() > 0.1, "the SFT adapter must change the model for this test to mean anything"
    assert (ref - sft).abs()[real].max() < 1e-3
    assert (probe_logits(trainer.policy, ids, mask) - sft).abs()[real].max() < 1e-3  # the policy starts as the SFT too


def test_check_reference_refuses_the_pre_sft_base(tiny_model_dir, tmp_path):
    """The trap the check exists for: a fresh LoRA stacked on an unmerged SFT LoRA; switching the
    adapters off gives the pre-SFT base, not the SFT policy."""
    from rlhf.adapters import AdapterConfig, apply_adapter
    from rlhf.adapters import load_causal_lm
    from rlhf.ppo.policy import check_reference, probe_logits

    sft_dir = make_sft_adapter(tiny_model_dir, "lora", tmp_path / "sft")
    from rlhf.models import load_tokenizer
    from rlhf.ppo.rollout import encode_queries

    sft = load_causal_lm(str(sft_dir), device="cpu").eval()
    ids, mask, _ = encode_queries(load_tokenizer(str(tiny_model_dir)), [[{"role": "user", "content": p}] for p in PROMPTS[:3]],
                                  "cpu")
    sft_logits = probe_logits(sft, ids, mask)
    wrong = apply_adapter(sft, AdapterConfig(adapter="lora", lora_dropout=0.0), adapter_name="policy")
    with wrong.disable_adapter():
        wrong_ref = probe_logits(wrong, ids, mask)
    with pytest.raises(ReferenceMismatchError, match="not the pre-SFT base"):
        check_reference(sft_logits, wrong_ref, mask)
    assert check_reference(sft_logits, sft_logits.clone(), mask) == 0.0


# --- reward models and critics ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_reward_dir(tiny_model_dir, tmp_path_factory):
    from rlhf.models import load_tokenizer
    from rlhf.reward.model import build_reward_model, save_reward_model

    tokenizer = load_tokenizer(str(tiny_model_dir))
    model = build_reward_model(str(tiny_model_dir), tokenizer.pad_token_id, seed=0)
    return save_reward_model(model, tokenizer, tmp_path_factory.mktemp("rm"), bias=0.5, std=2.0, max_length=128)


def test_a_reward_model_run_takes_a_candidates_file_as_prompts(tiny_model_dir, tiny_reward_dir, tmp_path):
    """`rlhf sample`'s candidates (id, prompt, messages, completions, flags, model) as PPO's prompts
    with a reward model: the model reads no column, so `completions` is no clash. It was refused as
    'an argument the reward function already gets' with no reward function in the run; with a
    reward function the refusal stands."""
    path = tmp_path / "candidates.jsonl"
    path.write_text("".join(json.dumps({"id": f"c{i}", "prompt": p, "completions": ["a", "b"], "flags": [],
                                        "model": "sft"}) + "\n" for i, p in enumerate(PROMPTS[:4])))
    config = tiny_config(tmp_path, tiny_model_dir, steps=1, reward_model=str(tiny_reward_dir), prompts=str(path))
    assert math.isfinite(PPOTrainer(config).step()["reward/score"])
    with pytest.raises(ValueError, match="prompt column 'completions'"):
        PPOTrainer(tiny_config(tmp_path, tiny_model_dir, prompts=str(path)), reward_fn=length_reward)


@pytest.mark.parametrize("policy_train", ["lora", "full"])
def test_critic_from_reward_model_leaves_scores_untouched(tiny_model_dir, tiny_reward_dir, tmp_path, policy_train):
    from rlhf.reward import RewardModel

    auto = PPOTrainer(tiny_config(tmp_path, tiny_model_dir, steps=1, reward_model=str(tiny_reward_dir),
                                  policy_train=policy_train), prompts=PROMPTS)
    assert auto.critic_kind == ("reward" if policy_train == "full" else "value-head")  # what critic="auto" picks
    del auto
    config = tiny_config(tmp_path, tiny_model_dir, steps=2, reward_model=str(tiny_reward_dir), policy_train=policy_train,
                         learning_rate=1e-3, critic="reward")
    trainer = PPOTrainer(config, prompts=PROMPTS)
    assert trainer.critic_kind == "reward"
    texts = (["Tell me about trees."] * 2, ["Trees are tall.", "green green"])
    fresh = RewardModel.load(tiny_reward_dir, device="cpu")
    critic = trainer.actor_critic.critic
    critic_before = {n: p.detach().clone() for n, p in critic.named_parameters() if p.requires_grad}
    history = trainer.train()
    assert len(history) == 2 and all(math.isfinite(h["ppo/value_loss"]) for h in history)
    assert any(not torch.equal(critic_before[n], p) for n, p in critic.named_parameters() if p.requires_grad)
    with critic.disable_adapter() if hasattr(critic, "disable_adapter") else torch.no_grad():
        got = trainer.reward_model.score(*texts, normalize=True)
    assert torch.allclose(got, fresh.score(*texts, normalize=True), atol=1e-5)


# --- outputs ------------------------------------------------------------------------------------------


def test_outputs_reload_and_logs(tiny_model_dir, tmp_path):
    from rlhf.adapters import load_causal_lm
    from rlhf.ppo.metrics import PLOTS
    from rlhf.ppo.policy import probe_logits

    config = tiny_config(tmp_path, tiny_model_dir, steps=3, value_warmup_steps=1)
    trainer = PPOTrainer(config, reward_fn=length_reward, prompts=PROMPTS)
    history = trainer.train()
    out = tmp_path / "run"
    assert history[0]["ppo/policy_updated"] == 0.0  # value warm-up
    for name in ("rlhf_config.json", "metrics.jsonl", "metrics.json", "policy/adapter_config.json",
                 "policy/tokenizer_config.json"):
        assert (out / name).exists(), name
    samples = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert [r["step"] for r in samples] == [1, 1, 2, 2, 3, 3] and {"prompt", "completion", "score"} <= set(samples[0])
    # The length report runs on step 1 (length_report_steps=10), so its plot is drawn too.
    assert sorted(p.name for p in (out / "plots").glob("*.png")) == sorted([name for _, _, name in PLOTS] +
                                                                           ["length_vs_reference.png"])
    assert list((out / "logs").glob("events.out.tfevents.*"))
    resolved = json.loads((out / "rlhf_config.json").read_text())
    assert resolved["critic"] == "value-head" and resolved["reference"] == "lora" and resolved["stage"] == "ppo"
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    documented = (Path(__file__).parents[1] / "docs" / "ppo_metrics.md").read_text()
    for key in rows[-1]:
        assert f"`{key}`" in documented, f"metric {key} is not in docs/ppo_metrics.md"
    ids, mask = trainer._encode([p.messages for p in trainer.prompts[:3]])
    reloaded = load_causal_lm(str(out / "policy"), device="cpu").eval()
    policy = probe_logits(trainer.policy, ids, mask)
    assert (probe_logits(reloaded, ids, mask) - policy).abs().max() < 1e-4
    with trainer.policy_and_reference.reference() as ref:
        assert (probe_logits(ref, ids, mask) - policy).abs().max() > 1e-4  # it trained


def test_full_fine_tuning_keeps_a_frozen_reference(tiny_model_dir, tmp_path):
    from rlhf.adapters import load_causal_lm
    from rlhf.ppo.policy import probe_logits

    trainer = PPOTrainer(tiny_config(tmp_path, tiny_model_dir, steps=2, policy_train="full", learning_rate=1e-3),
                         reward_fn=length_reward, prompts=PROMPTS)
    trainer.train()
    ids, mask = trainer._encode([p.messages for p in trainer.prompts[:2]])
    base = probe_logits(load_causal_lm(str(tiny_model_dir), device="cpu").eval(), ids, mask)
    with trainer.policy_and_reference.reference() as ref:
        assert torch.equal(probe_logits(ref, ids, mask), base)
    saved = probe_logits(load_causal_lm(str(tmp_path / "run" / "policy"), device="cpu").eval(), ids, mask)
    assert (saved - base).abs().max() > 1e-4


def test_config_is_the_cli(tmp_path):
    from rlhf.cli import parse_config

    config = parse_config(PPOConfig, ["--steps", "3", "--critic", "value-head", "--kl_estimator", "k3",
                                      "--missing_eos_penalty", "-1"], prog="rlhf ppo", description="")
    assert (config.steps, config.critic, config.kl_estimator, config.missing_eos_penalty) == (3, "value-head", "k3", -1.0)
    with pytest.raises(ValueError, match="divisible"):
        PPOConfig(batch_size=6, num_minibatches=4)
    with pytest.raises(ValueError, match="needs a reward"):
        PPOTrainer(PPOConfig(output_dir=str(tmp_path)), policy=None, prompts=PROMPTS)


@pytest.mark.slow
def test_embedded_default_runs_a_few_steps(tmp_path):
    config = PPOConfig(output_dir=str(tmp_path / "run"), steps=2, batch_size=4, max_new_tokens=16, ppo_epochs=1,
                       save_steps=0, progress=False, device="cpu")
    history = PPOTrainer(config, reward_fn=lambda p, c: [float(x.count("!")) + len(x) / 100 for x in c],
                         prompts=PROMPTS[:8]).train()
    assert len(history) == 2 and all(math.isfinite(h["ppo/value_loss"]) for h in history)
    assert history[-1]["kl/mean"] < 5.0


# --- fast paths are exact ---------------------------------------------------------------------------


def test_shared_prefix_and_merged_lora_change_nothing(tiny_model_dir):
    """Generation with the shared prefix's cache and the LoRA merged samples the same tokens with
    the same log-probs, a training forward gives the same log-probs, and the base weights come
    back bit for bit (the reference must never drift)."""
    from rlhf.adapters import AdapterConfig, apply_adapter
    from rlhf.adapters import load_causal_lm
    from rlhf.models import load_tokenizer
    from rlhf.ppo.core import logprobs_from_logits
    from rlhf.ppo.policy import merged_lora, response_forward
    from rlhf.ppo.rollout import encode_queries, generate, generation_config

    tok = load_tokenizer(str(tiny_model_dir), padding_side="left")
    model = load_causal_lm(str(tiny_model_dir), device="cpu")
    base = {n: p.detach().clone() for n, p in model.named_parameters()}
    policy = apply_adapter(model, AdapterConfig(adapter="lora", lora_dropout=0.0), adapter_name="policy").eval()
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    conversations = [[{"role": "user", "content": p}] for p in PROMPTS[:4]]
    plain_ids, plain_mask, none = encode_queries(tok, conversations, "cpu", share_prefix=False)
    ids, mask, prefix = encode_queries(tok, conversations, "cpu", share_prefix=True)
    assert none == 0 and prefix >= 8 and (ids[:, :prefix] == ids[:1, :prefix]).all()
    config = generation_config(8, 0.7, 1.0, tok.pad_token_id, [tok.eos_token_id])
    torch.manual_seed(0)
    slow_ids, slow_lp, _ = generate(policy, plain_ids, plain_mask, config, 0.7)
    torch.manual_seed(0)
    with merged_lora(policy) as merged:
        fast_ids, fast_lp, _ = generate(merged, ids, mask, config, 0.7, prefix_len=prefix)
    assert torch.equal(slow_ids, fast_ids)
    assert (slow_lp - fast_lp).abs().max() < 1e-4
    full, full_mask = torch.cat([ids, fast_ids], 1), torch.cat([mask, torch.ones_like(fast_ids)], 1)
    logits, _ = response_forward(policy, full, full_mask, fast_ids.shape[1], prefix_len=prefix)
    assert (logprobs_from_logits(logits, fast_ids, 0.7) - fast_lp).abs().max() < 1e-4
    now = {n.replace("base_model.model.", "").replace(".base_layer", ""): p for n, p in policy.named_parameters()
           if "lora_" not in n}
    assert all(torch.equal(now[n], base[n]) for n in base)


def test_step_by_step_logprobs_equal_transformers_output_logits(tiny_model_dir):
    """SampledLogprobs (one step's log-softmax alive at a time) gives the log-probs that
    transformers' output_logits (every step's raw logits kept) give, for the same samples, with
    top-p on: the processor must see the raw logits, before temperature and top-p."""
    import copy

    from rlhf.adapters import load_causal_lm
    from rlhf.models import load_tokenizer
    from rlhf.ppo.core import logprobs_from_logits
    from rlhf.ppo.rollout import encode_queries, generate, generation_config

    tok = load_tokenizer(str(tiny_model_dir), padding_side="left")
    model = load_causal_lm(str(tiny_model_dir), device="cpu").eval()
    ids, mask, _ = encode_queries(tok, [[{"role": "user", "content": p}] for p in PROMPTS[:3]], "cpu")
    config = generation_config(10, 0.7, 0.9, tok.pad_token_id, [tok.eos_token_id])
    torch.manual_seed(0)
    response_ids, logprobs, _ = generate(model, ids, mask, config, 0.7)
    with_logits = copy.deepcopy(config)
    with_logits.output_logits, with_logits.return_dict_in_generate = True, True
    torch.manual_seed(0)
    out = model.generate(input_ids=ids, attention_mask=mask, generation_config=with_logits)
    assert torch.equal(out.sequences[:, ids.shape[1]:], response_ids)
    expected = logprobs_from_logits(torch.stack(out.logits, dim=1), response_ids, 0.7)
    assert logprobs.shape == response_ids.shape
    assert torch.allclose(logprobs, expected, atol=1e-6)


def test_rollout_samples_the_model_distribution_whatever_its_saved_generation_config(tiny_model_dir):
    """A checkpoint's generation_config.json may carry sampling settings (Qwen2.5-Instruct:
    repetition_penalty 1.05, top_k 20) that transformers applies to any setting a call leaves unset,
    and before our log-prob processor. Rollouts must ignore them: the recorded log-probs are those of
    a plain forward pass, and the samples are not confined to what the saved settings allow."""
    from transformers import GenerationConfig

    from rlhf.adapters import load_causal_lm
    from rlhf.models import load_tokenizer
    from rlhf.ppo.core import logprobs_from_logits
    from rlhf.ppo.policy import response_forward
    from rlhf.ppo.rollout import encode_queries, generate, generation_config

    tok = load_tokenizer(str(tiny_model_dir), padding_side="left")
    model = load_causal_lm(str(tiny_model_dir), device="cpu").eval()
    allowed = [11, 12, 13]  # the saved config suppresses every other token
    vocab = model.get_output_embeddings().weight.shape[0]
    model.generation_config = GenerationConfig(**{**model.generation_config.to_dict(), "repetition_penalty": 3.0,
                                                  "suppress_tokens": [t for t in range(vocab) if t not in allowed]})
    ids, mask, _ = encode_queries(tok, [[{"role": "user", "content": p}] for p in PROMPTS[:3]], "cpu")
    torch.manual_seed(0)
    response_ids, logprobs, _ = generate(model, ids, mask, generation_config(8, 0.7, 1.0, tok.pad_token_id,
                                                                             [tok.eos_token_id]), 0.7)
    assert not set(response_ids.flatten().tolist()) <= set(allowed)
    full, full_mask = torch.cat([ids, response_ids], 1), torch.cat([mask, torch.ones_like(response_ids)], 1)
    logits, _ = response_forward(model, full, full_mask, response_ids.shape[1])
    assert (logprobs_from_logits(logits, response_ids, 0.7) - logprobs).abs().max() < 1e-4
    assert model.generation_config.repetition_penalty == 3.0  # the model's own config is put back


def test_reward_scores_match_the_reward_model(tiny_reward_dir):
    from rlhf.reward import RewardModel
    from rlhf.ppo.rollout import score

    rm = RewardModel.load(tiny_reward_dir, device="cpu")
    prompts, completions = PROMPTS[:5], ["yes", "a much longer answer here", "no", "sun tree", "ok then"]
    expected = rm.score(prompts, completions, normalize=True)
    assert torch.allclose(score(prompts, completions, reward_model=rm, batch_size=2), expected, atol=1e-5)


# --- gold against proxy, and the length report ----------------------------------------------------


def test_gold_score_and_length_report_are_logged_beside_the_reward(tiny_model_dir, tmp_path):
    """With gold_preference, reward/gold is the preference's mean over every rollout of the step
    (checked against samples.jsonl, which here holds all of them); length/* compares the policy
    with the reference on the report steps; both are documented and plotted."""
    from rlhf.labelers import detailed

    config = tiny_config(tmp_path, tiny_model_dir, steps=3, gold_preference="detailed", length_report_steps=2,
                         log_samples=4)
    PPOTrainer(config, reward_fn=length_reward, prompts=PROMPTS).train()
    out = tmp_path / "run"
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    samples = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    for row in rows:
        step_samples = [s for s in samples if s["step"] == row["step"]]
        assert len(step_samples) == 4
        expected = sum(detailed(s["prompt"], s["completion"]) for s in step_samples) / 4
        assert row["reward/gold"] == pytest.approx(expected, abs=1e-6)
    assert [("length/ratio" in r) for r in rows] == [True, False, True]  # steps 1 and 3
    first = rows[0]
    assert first["length/policy_tokens"] == pytest.approx(first["response/length"])
    assert 0 < first["length/reference_tokens"] <= 8 and 0 <= first["length/reference_finished"] <= 1
    assert first["length/ratio"] == pytest.approx(first["length/policy_tokens"] / first["length/reference_tokens"])
    documented = (Path(__file__).parents[1] / "docs" / "ppo_metrics.md").read_text()
    for key in {k for r in rows for k in r}:
        assert f"`{key}`" in documented, f"metric {key} is not in docs/ppo_metrics.md"
    for png in ("gold_vs_proxy_steps.png", "gold_vs_proxy_kl.png", "length_vs_reference.png"):
        assert (out / "plots" / png).stat().st_size > 1000, png
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["gold_first_tenth"] == pytest.approx(rows[0]["reward/gold"])
    assert set(summary["length_report"]) >= {"length/policy_tokens", "length/reference_tokens"}


def test_reward_preference_makes_a_rule_the_reward(tiny_model_dir, tmp_path):
    """reward_preference: the rule scores each completion (reward/score is what the gold view, the same
    rule, logs); it gets the prompt as the labelers give it (text, or the conversation to a rule that
    takes conversations) and the prompt's id when it names prompt_id; a non-number names the
    completion; a reward model, a reward_fn or critic='reward' beside it and a bad name fail before
    any model loads."""
    from rlhf.data.conversation import takes_conversations
    from rlhf.labelers import detailed
    from rlhf.ppo.rollout import score
    from rlhf.ppo.trainer import preference_reward_fn
    from rlhf.stages import ConfigError

    config = tiny_config(tmp_path, tiny_model_dir, steps=2, reward_preference="detailed", gold_preference="detailed",
                         length_report_steps=0)
    PPOTrainer(config, prompts=PROMPTS).train()
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(r["reward/score"] == pytest.approx(r["reward/gold"], abs=1e-6) for r in rows)
    calls = []
    as_text = preference_reward_fn(lambda prompt, completion: calls.append(prompt) or len(completion.split()))
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}]
    assert score([chat], ["Hello there"], as_text, prompt_ids=["p7"]).tolist() == [2.0] and calls == ["Hi?"]

    @takes_conversations
    def by_id(prompt, completion, prompt_id=None):
        calls.append((prompt, prompt_id))
        return 1

    assert score([chat], ["x"], preference_reward_fn(by_id), prompt_ids=["p7"]).tolist() == [1.0]
    assert calls[-1] == (chat, "p7")
    assert preference_reward_fn("rlhf.labelers:detailed")(["Q?"], ["One two three."]) == [detailed("Q?", "One two three.")]
    with pytest.raises(TypeError, match="returned None for completion 1"):
        score(["q", "q"], ["a", "b"], preference_reward_fn(lambda p, c: None if c == "b" else 1))
    with pytest.raises(ConfigError, match="pass no reward_fn or reward_model"):
        PPOTrainer(tiny_config(tmp_path, tiny_model_dir, reward_preference="detailed"), reward_fn=length_reward)
    with pytest.raises(ValueError, match="both set: one reward"):
        tiny_config(tmp_path, tiny_model_dir, reward_preference="detailed", reward_model="somewhere")
    with pytest.raises(ValueError, match="critic='reward' starts the critic from a reward model"):
        tiny_config(tmp_path, tiny_model_dir, reward_preference="detailed", critic="reward")
    with pytest.raises(ConfigError, match="reward_preference: unknown preference 'nope'"):
        PPOTrainer(tiny_config(tmp_path, tiny_model_dir, reward_preference="nope"))


def test_no_gold_metric_without_a_gold_preference(tiny_model_dir, tmp_path):
    config = tiny_config(tmp_path, tiny_model_dir, steps=1, length_report_steps=0)
    PPOTrainer(config, reward_fn=length_reward, prompts=PROMPTS).train()
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert not any(k.startswith(("reward/gold", "length/")) for r in rows for k in r)
    assert "gold_first_tenth" not in json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert not list((tmp_path / "run" / "plots").glob("gold_vs_proxy_*.png"))


def test_one_score_for_one_text_in_ppo_eval_best_of_n_and_reward_model(tiny_reward_dir):
    """One text, one number: PPO's scores, `rlhf eval`'s mean rewards, best-of-N's pick and
    RewardModel.score agree, on one scale, (raw + bias) / std, whatever else shares the batch."""
    from transformers import AutoModelForSequenceClassification

    from rlhf.eval import EvalConfig, PolicySamples, score_with_reward_model
    from rlhf.generation import Generation
    from rlhf.ppo.rollout import score
    from rlhf.reward import RewardModel
    from rlhf.reward.model import encode

    rm = RewardModel.load(tiny_reward_dir, device="cpu")
    assert (rm.bias, rm.std) == (0.5, 2.0)  # a scale that is not the identity, so a missed division shows
    prompt, text = "Tell me about trees.", "Trees are tall."
    alone = rm.score([prompt], [text]).item()
    plain = AutoModelForSequenceClassification.from_pretrained(tiny_reward_dir).eval()
    with torch.no_grad():  # the definition: the plain head on the unpadded text, centred, in std units
        raw = plain(input_ids=torch.tensor(encode(rm.tokenizer, [prompt], [text], 128))).logits.item()
    assert alone == pytest.approx((raw + 0.5) / 2.0, abs=1e-5)

    others = (["What is rain?", "Name a fruit and describe it in detail, please."], ["Water.", "An apple " * 5])
    ppo = score([others[0][0], prompt, others[0][1]], [others[1][0], text, others[1][1]], reward_model=rm, batch_size=2)
    assert ppo[1].item() == pytest.approx(alone, abs=1e-5)

    def gen(t):
        return Generation(text=t, finished=True, token_ids=[], prompt_ids=[])

    candidates = [[gen("Short."), gen(text), gen("Trees are tall, green and old " * 3)], [gen("Rain."), gen("Clouds."), gen("x")]]
    a = PolicySamples("a", [gen(text), gen(others[1][0])], None, None)
    b = PolicySamples("b", [gen("Leaves."), gen(others[1][1])], None, candidates)
    config = EvalConfig(reward_model=str(tiny_reward_dir), device="cpu", batch_size=2, best_of_n=3)
    best = score_with_reward_model(config, [prompt, others[0][0]], [a, b])
    assert a.rewards[0] == pytest.approx(alone, abs=1e-5)  # eval's mean reward is made of these
    for row, (p, picked) in enumerate(zip([prompt, others[0][0]], best)):
        each = [rm.score([p], [g.text]).item() for g in candidates[row]]
        assert b.best_rewards[row] == pytest.approx(max(each), abs=1e-5)
        assert picked == candidates[row][each.index(max(each))].text
