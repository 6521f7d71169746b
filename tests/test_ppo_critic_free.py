"""Critic-free estimators on the PPO trainer (tier b, tiny models): GRPO, Dr. GRPO, RLOO,
REINFORCE++ and REINFORCE++-baseline build no critic, keep a prompt's G completions together,
tell reward functions which completions share a prompt, and learn a marker-word reward."""

import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from ppo_tiny import PROMPTS, learning_curve, length_reward, token_reward  # noqa: E402

from rlhf.ppo import PPOConfig, PPOTrainer  # noqa: E402

ESTIMATORS = ["grpo", "dr_grpo", "rloo", "reinforce++", "reinforce++_baseline"]


def tiny_config(tmp_path, policy, **overrides):
    settings = dict(policy=str(policy), output_dir=str(tmp_path / "run"), steps=2, batch_size=8, max_new_tokens=8,
                    learning_rate=3e-3, ppo_epochs=1, num_minibatches=2, save_steps=0, progress=False, device="cpu",
                    advantage_estimator="grpo", num_generations=4)
    return PPOConfig(**{**settings, **overrides})


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


# --- configuration ----------------------------------------------------------------------------------


def test_config_errors_name_the_fix():
    with pytest.raises(ValueError, match="num_generations >= 2"):
        PPOConfig(advantage_estimator="grpo")
    with pytest.raises(ValueError, match="whole groups of num_generations=3"):
        PPOConfig(advantage_estimator="rloo", num_generations=3, batch_size=8)
    with pytest.raises(ValueError, match="so no group is cut"):
        PPOConfig(advantage_estimator="grpo", num_generations=4, batch_size=8, num_minibatches=4)
    with pytest.raises(ValueError, match="uses no critic"):
        PPOConfig(advantage_estimator="rloo", num_generations=2, critic="value-head")
    with pytest.raises(ValueError, match="generation_batch_size=6"):
        PPOConfig(advantage_estimator="grpo", num_generations=4, generation_batch_size=6)
    with pytest.raises(ValueError, match="is not one of"):
        PPOConfig(advantage_estimator="ppo")
    PPOConfig(advantage_estimator="reinforce++")  # batch-normalised: G = 1 is allowed
    with pytest.raises(ValueError, match="dual_clip=0.5 must be > 1"):
        PPOConfig(dual_clip=0.5)
    with pytest.raises(ValueError, match="kl_loss_estimator='k5' is not one of"):
        PPOConfig(kl_loss_estimator="k5")
    with pytest.raises(ValueError, match="advantage_estimator='rloo' has no such choice"):
        PPOConfig(advantage_estimator="rloo", num_generations=2, scale_rewards="batch")
    with pytest.raises(ValueError, match="use advantage_estimator='grpo'"):
        PPOConfig(advantage_estimator="dr_grpo", num_generations=2, scale_rewards="group")
    with pytest.raises(ValueError, match="scale_rewards='global' is not one of group, batch, none"):
        PPOConfig(advantage_estimator="grpo", num_generations=2, scale_rewards="global")


def test_scale_rewards_takes_trls_booleans():
    """TRL's GRPOConfig takes scale_rewards True ('group') and False ('none', Dr. GRPO's advantages);
    a TRL YAML's `scale_rewards: false` was refused as 'not one of group, batch, none'."""
    assert PPOConfig(advantage_estimator="grpo", num_generations=2, scale_rewards=False).scale_rewards == "none"
    assert PPOConfig(advantage_estimator="grpo", num_generations=2, scale_rewards=True).scale_rewards == "group"
    assert PPOConfig(advantage_estimator="dr_grpo", num_generations=2, scale_rewards=False).scale_rewards == "none"
    with pytest.raises(ValueError, match="advantage_estimator='rloo' has no such choice"):
        PPOConfig(advantage_estimator="rloo", num_generations=2, scale_rewards=False)


def test_default_micro_batches_hold_at_most_8_completions_and_whole_groups():
    """grad_accum=None cuts each minibatch into the fewest micro-batches of <= 8 completions that
    cut no group; a group larger than 8 is one micro-batch; an explicit grad_accum is kept."""
    def accum(**kw):
        return PPOConfig(**kw).resolved_grad_accum()

    assert accum(batch_size=8) == 1 and accum(batch_size=4, num_minibatches=2) == 1
    assert accum(batch_size=32, advantage_estimator="grpo", num_generations=4) == 4  # 8 prompts -> 4 x (2 x 4)
    assert accum(batch_size=32, num_minibatches=2, advantage_estimator="grpo", num_generations=4) == 2
    assert accum(batch_size=12, advantage_estimator="rloo", num_generations=3) == 2  # 6 + 6, not 8 + 4
    assert accum(batch_size=32, advantage_estimator="grpo", num_generations=16) == 2  # one group of 16 each
    assert accum(batch_size=40) == 5 and accum(batch_size=18) == 3  # 6 + 6 + 6: 9 + 9 is over 8
    assert accum(batch_size=32, grad_accum=1) == 1 and accum(batch_size=32, grad_accum=2) == 2
    with pytest.raises(ValueError, match="grad_accum must be >= 1"):
        PPOConfig(grad_accum=0)


def test_a_minibatch_of_16_trains_in_two_micro_batches_of_whole_groups(tiny_model_dir, tmp_path):
    trainer = PPOTrainer(tiny_config(tmp_path, tiny_model_dir, batch_size=16, num_minibatches=1),
                         reward_fn=length_reward, prompts=PROMPTS)
    seen = []
    loss = trainer._loss
    trainer._loss = lambda mb, *a: (seen.append(mb["prompt_index"].tolist()), loss(mb, *a))[1]
    trainer.step()
    assert [len(mb) for mb in seen] == [8, 8]
    assert all(len(set(mb)) == 2 and all(mb.count(i) == 4 for i in set(mb)) for mb in seen)  # 2 whole groups each


def test_paper_defaults_for_kl_and_loss_aggregation():
    grpo = PPOConfig(advantage_estimator="grpo", num_generations=4)
    assert (grpo.resolved_use_kl_loss(), grpo.resolved_loss_agg_mode()) == (True, "seq-mean-token-mean")
    dr = PPOConfig(advantage_estimator="dr_grpo", num_generations=4)
    assert dr.resolved_loss_agg_mode() == "seq-mean-token-sum-norm"
    for est in ("gae", "rloo", "reinforce++"):
        cfg = PPOConfig(advantage_estimator=est, num_generations=1 if est != "rloo" else 2)
        assert (cfg.resolved_use_kl_loss(), cfg.resolved_loss_agg_mode()) == (False, "token-mean")
    own = PPOConfig(advantage_estimator="grpo", num_generations=4, use_kl_loss=False, loss_agg_mode="token-mean")
    assert (own.resolved_use_kl_loss(), own.resolved_loss_agg_mode()) == (False, "token-mean")
    assert (grpo.resolved_scale_rewards(), dr.resolved_scale_rewards()) == ("group", "none")
    assert PPOConfig(advantage_estimator="grpo", num_generations=4, scale_rewards="batch").resolved_scale_rewards() \
        == "batch"


def test_adam_eps_defaults_by_family_and_reaches_the_optimizer(tiny_model_dir, tmp_path):
    """1e-5 with a critic (N+), 1e-8 without (TRL's GRPOConfig, torch): LoRA gradients of ~1e-6 would
    otherwise be shrunk by eps. An explicit value is kept; a value <= 0 is refused."""
    assert PPOConfig().resolved_adam_eps() == 1e-5
    for est in ESTIMATORS:
        assert PPOConfig(advantage_estimator=est, num_generations=2).resolved_adam_eps() == 1e-8
    assert PPOConfig(adam_eps=1e-6).resolved_adam_eps() == 1e-6
    with pytest.raises(ValueError, match="adam_eps must be > 0"):
        PPOConfig(adam_eps=0.0)
    grpo = PPOTrainer(tiny_config(tmp_path, tiny_model_dir), reward_fn=length_reward, prompts=PROMPTS)
    assert {g["eps"] for g in grpo.optimizer.param_groups} == {1e-8}
    own = PPOTrainer(tiny_config(tmp_path, tiny_model_dir, adam_eps=3e-7, output_dir=str(tmp_path / "own")),
                     reward_fn=length_reward, prompts=PROMPTS)
    assert {g["eps"] for g in own.optimizer.param_groups} == {3e-7}


def test_cli_flags(tmp_path):
    from rlhf.cli import parse_config

    config = parse_config(PPOConfig, ["--advantage_estimator", "rloo", "--num_generations", "4", "--use_kl_loss",
                                      "true", "--loss_agg_mode", "seq-mean-token-mean", "--kl_loss_coef", "0.01"],
                          prog="rlhf ppo", description="")
    assert (config.advantage_estimator, config.num_generations, config.use_kl_loss, config.loss_agg_mode,
            config.kl_loss_coef) == ("rloo", 4, True, "seq-mean-token-mean", 0.01)
    from rlhf.pipeline import build_config  # the YAML `ppo:` section of `rlhf pipeline`

    yaml_config = build_config(PPOConfig, "ppo", {}, {"advantage_estimator": "dr_grpo", "num_generations": 2})
    assert (yaml_config.advantage_estimator, yaml_config.resolved_loss_agg_mode()) == ("dr_grpo", "seq-mean-token-sum-norm")


# --- one step: structure ------------------------------------------------------------------------------


class GroupRecorder:
    """A reward function that takes the group structure, and records what it was given."""

    def __init__(self):
        self.calls = []

    def __call__(self, prompts, completions, prompt_index, prompt_ids):
        self.calls.append((list(prompts), list(prompt_index), list(prompt_ids)))
        return length_reward(prompts, completions)


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_no_critic_and_groups_stay_whole(tiny_model_dir, tmp_path, estimator):
    """No value head or critic exists (every trainable tensor is the policy's LoRA); the reward
    function sees rows [4k, 4k+4) as prompt k; each micro-batch holds whole groups."""
    reward = GroupRecorder()
    trainer = PPOTrainer(tiny_config(tmp_path, tiny_model_dir, advantage_estimator=estimator, ppo_epochs=2),
                         reward_fn=reward, prompts=PROMPTS)
    module = trainer.actor_critic
    assert module.value_head is None and module.critic is None and trainer.critic_kind == "none"
    names = [n for n, p in module.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names)
    seen = []
    loss = trainer._loss
    trainer._loss = lambda mb, *a: (seen.append(mb["prompt_index"].tolist()), loss(mb, *a))[1]
    metrics = trainer.step()

    prompts, index, ids = reward.calls[0]
    assert index == [0, 0, 0, 0, 1, 1, 1, 1] and len(set(prompts[:4])) == 1 and prompts[0] != prompts[4]
    assert len(set(ids[:4])) == 1 and ids[0] != ids[4]
    assert len(seen) == 4  # 2 epochs x 2 minibatches, each one whole group of 4
    assert all(len(mb) == 4 and len(set(mb)) == 1 for mb in seen)
    assert "ppo/value_loss" not in metrics and "ppo/explained_variance" not in metrics
    assert 0.0 <= metrics["reward/frac_reward_zero_std"] <= 1.0 and math.isfinite(metrics["reward/group_std"])
    assert ("ppo/kl_loss" in metrics) == (estimator in ("grpo", "dr_grpo"))
    assert trainer.resolved_config()["critic"] == "none"


def test_prompt_columns_reach_the_reward_one_value_per_completion(tiny_model_dir, tmp_path, monkeypatch):
    """A prompts file's other columns (a reference answer, as in GSM8K-style verifiable rewards) reach
    reward_fn as lists aligned with the completions (G copies per prompt, None where a row lacks the
    column), as TRL's GRPOTrainer passes dataset columns; a reward_preference rule that names a
    column gets its prompt's value; rows given in memory (a datasets.Dataset) work alike."""
    import json

    import datasets

    path = tmp_path / "prompts.jsonl"
    rows = [{"id": "a", "prompt": "What is 2+3?", "answer": "5", "level": 1},
            {"id": "b", "prompt": "What is 4+4?", "answer": "8"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    seen = []

    def reward(prompts, completions, prompt_ids, answer, level):
        seen.append((list(prompt_ids), list(answer), list(level)))
        return [float(a in c) for a, c in zip(answer, completions)]

    trainer = PPOTrainer(tiny_config(tmp_path, tiny_model_dir, steps=1), reward_fn=reward, prompts=str(path))
    trainer.step()
    ids, answers, levels = seen[0]
    assert answers == [{"a": "5", "b": "8"}[i] for i in ids] and len(answers) == 8
    assert levels == [{"a": 1, "b": None}[i] for i in ids]

    module = tmp_path / "answer_rule.py"
    module.write_text("CALLS = []\n\ndef exact(prompt, completion, answer):\n"
                      "    CALLS.append((prompt, answer))\n    return float(answer in completion)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import answer_rule

    trainer = PPOTrainer(tiny_config(tmp_path / "rule", tiny_model_dir, steps=1, reward_preference="answer_rule:exact"),
                         prompts=datasets.Dataset.from_list([{k: v for k, v in r.items() if k != "level"}
                                                            for r in rows]))
    trainer.step()
    assert sorted(set(answer_rule.CALLS)) == [("What is 2+3?", "5"), ("What is 4+4?", "8")]
    assert len(answer_rule.CALLS) == 8


def test_prompts_as_rows_a_dataset_or_a_dataframe_are_read_as_rows():
    """A DataFrame iterates over its column names and a Dataset over row dicts: both give one
    Prompt per row, with the other fields as columns (not a prompt named "answer")."""
    import datasets
    import pandas as pd

    from rlhf.ppo.trainer import _as_prompts

    rows = [{"id": "a", "prompt": "What is 2+3?", "answer": "5"}, {"prompt": "What is 4+4?", "answer": "8"}]
    for given in (rows, datasets.Dataset.from_list(rows), pd.DataFrame(rows)):
        prompts = _as_prompts(given)
        assert [p.text for p in prompts] == ["What is 2+3?", "What is 4+4?"]
        assert [p.columns["answer"] for p in prompts] == ["5", "8"]
        assert prompts[0].id == "a" and prompts[1].id == "prompt-1"  # the DataFrame's empty id cell: no id


def test_a_column_only_some_rows_have_reaches_every_step(tiny_model_dir, tmp_path):
    """A JSONL prompts file may give a column in some rows only: every step passes it (None for the
    rows without it), also a step that drew none of the rows that have it. The step's own prompts
    once decided the names, and the reward requiring `answer` failed with a missing argument at the
    first step without such a row."""
    rows = [{"prompt": "What is 2+3?", "answer": "5"}] + [{"prompt": f"Say {w}."} for w in ("hi", "yes", "no")]
    seen = []

    def reward(prompts, completions, answer):
        seen.append(list(answer))
        return [float(a is not None and a in c) for a, c in zip(answer, completions)]

    config = tiny_config(tmp_path, tiny_model_dir, steps=4, batch_size=2, num_generations=2, num_minibatches=1)
    PPOTrainer(config, reward_fn=reward, prompts=rows).train()  # one prompt a step: each row once
    assert sorted(seen, key=str) == [["5", "5"], [None, None], [None, None], [None, None]]


def test_a_column_named_like_a_positional_parameter_never_reaches_it_twice():
    """A prompts column named like a parameter the positional arguments fill (`completion`, as in a
    prompt/completion SFT file reused as prompts, with the `concise` rule or any fn(prompt,
    completion, ...); `p` for `lambda p, c`) is not passed to it: the rule was called with
    completion twice (TypeError at step 1, or a ConfigError when loading a module's rule). A reward
    written for TRL, `def reward(completions, answer, **kwargs)`, is called with keywords, as TRL
    calls it: positionally, answer got the completions and the column a second value."""
    from rlhf.labelers import concise
    from rlhf.ppo.rollout import score
    from rlhf.ppo.trainer import preference_reward_fn

    info = {"prompt_ids": ["a", "a"], "prompt_index": [0, 0], "completion": ["ref", "ref"], "answer": ["5", "5"]}
    completions = ["It is 5.", "Maybe six, or seven, I do not really know it."]
    expected = [concise("Q?", c) for c in completions]
    assert score(["Q?", "Q?"], completions, preference_reward_fn("concise", ("completion", "answer")),
                 **info).tolist() == expected
    rule = preference_reward_fn(lambda prompt, completion, answer: float(answer in completion), ("completion", "answer"))
    assert score(["Q?", "Q?"], completions, rule, **info).tolist() == [1.0, 0.0]
    assert score(["Q?", "Q?"], completions, lambda p, c: [len(x) for x in c], p=["x", "x"]).tolist() == \
        [float(len(c)) for c in completions]

    seen = {}

    def trl_reward(completions, answer, **kwargs):
        seen.update(kwargs)
        return [float(a in c) for a, c in zip(answer, completions)]

    assert score(["Q?", "Q?"], completions, trl_reward, **info).tolist() == [1.0, 0.0]
    assert seen["prompts"] == ["Q?", "Q?"] and seen["completion"] == ["ref", "ref"]

    def trl_no_kwargs(completions, answer):
        return [float(a in c) for a, c in zip(answer, completions)]

    assert score(["Q?", "Q?"], completions, trl_no_kwargs, **info).tolist() == [1.0, 0.0]


def test_a_rule_requiring_a_column_the_prompts_lack_names_it_and_the_file(tmp_path, monkeypatch):
    """--reward_preference mod:exact with def exact(prompt, completion, answer) on a prompts file
    without `answer`: a ConfigError naming the column, the file and the columns it has, before any
    model loads (the policy here does not exist); it said only 'missing a required argument'.
    `rlhf pipeline` checks it before its first stage."""
    import json

    from rlhf.pipeline import Pipeline, PipelineError
    from rlhf.stages import ConfigError

    (tmp_path / "answer_rules.py").write_text("def exact(prompt, completion, answer):\n    return float(answer in completion)\n"
                                              "def keyword_only(prompt, completion, *, solution):\n    return 0.0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / "prompts.jsonl"
    path.write_text(json.dumps({"prompt": "What is 2+3?", "level": 1}) + "\n")
    config = PPOConfig(policy=str(tmp_path / "no-model"), output_dir=str(tmp_path / "run"), device="cpu",
                       reward_preference="answer_rules:exact", prompts=str(path))
    with pytest.raises(ConfigError, match=f"requires the prompt column 'answer', which no row of the prompts file "
                                          f"{path} has \\(its columns: level\\)"):
        PPOTrainer(config)
    with pytest.raises(ConfigError, match="column 'solution', which no row of the built-in prompts_train"):
        PPOTrainer(PPOConfig(policy=str(tmp_path / "no-model"), output_dir=str(tmp_path / "run"), device="cpu",
                             reward_preference="answer_rules:keyword_only"))
    pipe = Pipeline({"run_dir": str(tmp_path / "pipe"), "ppo": {"reward_preference": "answer_rules:exact",
                                                               "prompts": str(path)}})
    with pytest.raises(PipelineError, match="stage 'ppo': .*column 'answer'"):
        pipe.validate()
    assert not (tmp_path / "pipe").exists()
    (tmp_path / "with_answer.jsonl").write_text(json.dumps({"prompt": "What is 2+3?", "answer": "5"}) + "\n")
    Pipeline({"run_dir": str(tmp_path / "pipe"), "ppo": {"reward_preference": "answer_rules:exact",
                                                        "prompts": str(tmp_path / "with_answer.jsonl")}}).validate()


def test_prompts_given_as_a_dataset_dict_or_a_dataframe():
    """PPOTrainer(prompts=load_dataset(...)) without a split is a DatasetDict: it was read as the
    prompts 'train' and 'test' (its keys), as was a dict of columns; now refused, naming the fix. A
    pandas DataFrame gives its rows, a missing cell as None (it gave its column names as prompts)."""
    import datasets
    import pandas as pd

    from rlhf.ppo.trainer import _as_prompts

    rows = [{"prompt": "What is 2+3?", "answer": 5.0}, {"prompt": "What is 4+4?", "answer": None}]
    dataset = datasets.Dataset.from_list(rows)
    with pytest.raises(ValueError, match=r"keys 'train', 'test'.*prompts=dataset\['train'\]"):
        _as_prompts(datasets.DatasetDict({"train": dataset, "test": dataset}))
    with pytest.raises(ValueError, match="keys 'prompt', 'answer'"):
        _as_prompts(dataset.to_dict())
    frame = _as_prompts(pd.DataFrame(rows))
    assert [(p.text, p.columns) for p in frame] == [("What is 2+3?", {"answer": 5.0}), ("What is 4+4?", {"answer": None})]


def test_a_prompt_column_named_like_a_reward_argument_is_refused(tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match="prompt column 'prompt_index'.*rename"):
        PPOTrainer(tiny_config(tmp_path, tiny_model_dir), reward_fn=length_reward,
                   prompts=[{"prompt": "hi", "prompt_index": 3}, {"prompt": "ho"}])
    with pytest.raises(ValueError, match=r"prompts, row 1, field 'prompt'"):
        PPOTrainer(tiny_config(tmp_path, tiny_model_dir), reward_fn=length_reward,
                   prompts=[{"prompt": "hi"}, {"question": "no prompt field"}])


def test_a_prompt_past_the_context_is_refused_when_the_trainer_starts(tiny_model_dir, tmp_path):
    """PPO checks every prompt against the model's positions (512 for the tiny Llama) when it starts,
    not at the step whose batch holds the long one."""
    prompts = [{"id": f"p{i}", "prompt": "Say hi."} for i in range(6)] + [{"id": "long", "prompt": "word " * 600}]
    with pytest.raises(ValueError, match=r"1 of 7 prompts do not fit .* 512 positions with max_new_tokens=8: 'long'"):
        PPOTrainer(tiny_config(tmp_path, tiny_model_dir), reward_fn=length_reward, prompts=prompts)


def test_two_argument_reward_fn_still_works_with_groups(tiny_model_dir, tmp_path):
    trainer = PPOTrainer(tiny_config(tmp_path, tiny_model_dir, advantage_estimator="rloo"), reward_fn=length_reward,
                         prompts=PROMPTS)
    metrics = trainer.step()
    assert math.isfinite(metrics["reward/score"]) and len(trainer.last_rollout) == 8


@pytest.mark.parametrize("estimator", ["grpo", "dr_grpo", "rloo"])
def test_equal_rewards_give_zero_advantages_and_the_step_is_not_skipped(tiny_model_dir, tmp_path, monkeypatch,
                                                                       estimator):
    """Every group has zero spread: the group estimators' advantages are exactly 0 (no NaN from
    0/0), the share of zero-spread groups is 1, and the step is not skipped (min_reward_std guards
    whitened advantages only): the KL term still trains and Adam's momentum carries on, as in TRL
    and verl. Skipping such steps learned the "!" rule more slowly (docs/notes.md#equal-rewards)."""
    from rlhf.ppo import core

    seen = []
    policy_loss = core.policy_loss
    monkeypatch.setattr(core, "policy_loss", lambda *a, **k: (seen.append(a[2].clone()), policy_loss(*a, **k))[1])
    kl = {"kl_coef": 0.0} if estimator == "rloo" else {}  # the KL in rloo's reward would give the groups spread
    trainer = PPOTrainer(tiny_config(tmp_path, tiny_model_dir, advantage_estimator=estimator, **kl),
                         reward_fn=lambda p, c: [1.0] * len(c), prompts=PROMPTS)
    metrics = trainer.step()
    assert metrics["reward/frac_reward_zero_std"] == 1.0 and metrics["reward/group_std"] == 0.0
    assert seen and all(torch.equal(adv, torch.zeros_like(adv)) for adv in seen)
    assert metrics["ppo/policy_updated"] == 1.0


def test_dual_clip_and_kl_loss_estimator_reach_the_step(tiny_model_dir, tmp_path, monkeypatch):
    """The config's kl_loss_estimator is the estimator of the KL loss term, and dual_clip and
    cliprange_high reach the policy loss (dual clip's share of capped tokens is logged as
    ppo/dual_clipfrac)."""
    import inspect

    from rlhf.ppo import core

    seen, clips = [], []
    kl_loss, policy_loss = core.kl_loss, core.policy_loss
    monkeypatch.setattr(core, "kl_loss", lambda *a, **k: (seen.append(a[5] if len(a) > 5 else k.get("estimator")),
                                                         kl_loss(*a, **k))[1])

    def spy(*a, **k):
        bound = inspect.signature(policy_loss).bind(*a, **k)
        clips.append((bound.arguments.get("cliprange_high"), bound.arguments.get("dual_clip")))
        return policy_loss(*a, **k)

    monkeypatch.setattr(core, "policy_loss", spy)
    trainer = PPOTrainer(tiny_config(tmp_path, tiny_model_dir, kl_loss_estimator="k2", dual_clip=3.0,
                                     cliprange_high=0.28), reward_fn=length_reward, prompts=PROMPTS)
    metrics = trainer.step()
    assert seen and set(seen) == {"k2"}
    assert clips and set(clips) == {(0.28, 3.0)}
    scales = []
    advantages = core.grpo_advantages
    monkeypatch.setattr(core, "grpo_advantages", lambda r, g, scale_rewards="group", **k: (
        scales.append(scale_rewards), advantages(r, g, scale_rewards, **k))[1])
    batch = PPOTrainer(tiny_config(tmp_path / "batch", tiny_model_dir, scale_rewards="batch"), reward_fn=length_reward,
                       prompts=PROMPTS)
    batch.step()
    assert scales == ["batch"] and batch.resolved_config()["scale_rewards"] == "batch"
    assert 0.0 <= metrics["ppo/dual_clipfrac"] <= 1.0
    assert "ppo/dual_clipfrac" not in PPOTrainer(tiny_config(tmp_path / "b", tiny_model_dir), reward_fn=length_reward,
                                                 prompts=PROMPTS).step()


@pytest.mark.parametrize("estimator", ["grpo", "gae"])
def test_mask_truncated_completions_leaves_cut_answers_out_of_every_loss(tiny_model_dir, tmp_path, monkeypatch,
                                                                         estimator):
    """With mask_truncated_completions a completion that ended without a stop token weighs 0 in the
    policy loss (and the value and KL losses): every mask the losses see is the response mask of
    the finished rows only, the share left out is logged; when no completion finished the policy
    does not move. Off (the default), the losses see every row."""
    from rlhf.ppo import core

    masks = []
    policy_loss = core.policy_loss
    monkeypatch.setattr(core, "policy_loss", lambda *a, **k: (masks.append(a[3].clone()), policy_loss(*a, **k))[1])

    def trainer_with(finished, **overrides):
        group = {} if estimator == "grpo" else {"advantage_estimator": "gae", "num_generations": 1}
        trainer = PPOTrainer(tiny_config(tmp_path / f"{len(masks)}", tiny_model_dir, **{**group, **overrides}),
                             reward_fn=length_reward, prompts=PROMPTS)
        rollout = trainer._rollout

        def with_finished(batch):
            r = rollout(batch)
            r.finished = torch.tensor(finished)
            return r

        trainer._rollout = with_finished
        return trainer

    finished = [True, False] * 4
    trainer = trainer_with(finished, mask_truncated_completions=True)
    metrics = trainer.step()
    r = trainer.last_rollout
    assert metrics["ppo/masked_truncated"] == 0.5
    kept = int(r.response_mask[torch.tensor(finished)].sum())
    assert sum(int(m.sum()) for m in masks) == kept > 0  # one epoch: every row is seen once

    masks.clear()
    trainer = trainer_with([True, False] * 4)  # the default: off
    metrics = trainer.step()
    assert "ppo/masked_truncated" not in metrics
    assert sum(int(m.sum()) for m in masks) == int(trainer.last_rollout.response_mask.sum())

    trainer = trainer_with([False] * 8, mask_truncated_completions=True)
    before = {n: p.detach().clone() for n, p in trainer.policy.named_parameters() if p.requires_grad}
    metrics = trainer.step()
    assert metrics["ppo/masked_truncated"] == 1.0 and math.isfinite(metrics["ppo/policy_loss"])
    assert all(torch.equal(before[n], p) for n, p in trainer.policy.named_parameters() if p.requires_grad)


@pytest.mark.parametrize("estimator", ["grpo", "gae"])
def test_a_skipped_update_does_not_move_the_policy_by_adams_momentum(tiny_model_dir, tmp_path, estimator):
    """After a step that updated the policy, a step whose rewards do not differ (min_reward_std; gae
    only) and, with mask_truncated_completions, one whose every completion was cut leave the policy's weights
    exactly as they were, and ppo/policy_updated says 0: a zero gradient still moved them by Adam's
    momentum (update norm 0.44, then 0.23, with policy_updated 0 and 1). The critic still trains
    on the equal-reward step; on the all-cut step no loss has a token, so nothing moves."""
    # gae's total reward holds -kl_coef * KL, which differs once the policy moved: no KL term there.
    group = {} if estimator == "grpo" else {"advantage_estimator": "gae", "num_generations": 1, "kl_coef": 0.0}
    state = {"vary": True, "finished": True}
    trainer = PPOTrainer(tiny_config(tmp_path, tiny_model_dir, steps=4, mask_truncated_completions=True, **group),
                         reward_fn=lambda p, c: [float(i) if state["vary"] else 1.0 for i in range(len(c))],
                         prompts=PROMPTS)
    rollout = trainer._rollout

    def with_finished(batch):
        r = rollout(batch)
        r.finished = torch.full_like(r.finished, state["finished"])
        return r

    trainer._rollout = with_finished

    def weights(params):
        return [p.detach().clone() for p in params]

    assert trainer.step()["ppo/policy_update_norm"] > 0
    # grpo does not skip a step without spread (test_equal_rewards_...): only the all-cut one.
    changes = ({"vary": False}, {"vary": True, "finished": False}) if estimator == "gae" else \
        ({"vary": True, "finished": False},)
    for change in changes:
        state.update(change)
        policy, critic = weights(trainer.policy_params), weights(trainer.critic_params)
        metrics = trainer.step()
        assert metrics["ppo/policy_updated"] == 0.0 and metrics["ppo/policy_update_norm"] == 0.0
        assert all(torch.equal(a, b) for a, b in zip(policy, trainer.policy_params))
        critic_moved = any(not torch.equal(a, b) for a, b in zip(critic, trainer.critic_params))
        assert critic_moved == (estimator == "gae" and state["finished"])


def test_a_run_whose_every_completion_was_cut_says_it_trained_nothing(tiny_model_dir, tmp_path):
    """mask_truncated_completions with every completion cut, step after step: nothing is NaN, the
    policy is the SFT policy still, and metrics.json and the run report say how many steps updated
    it (none) and which share was left out of the loss (all); they gave only the last step's cut
    share, as for any run."""
    import json

    from rlhf.report import write_report

    out = tmp_path / "run" / "ppo"
    trainer = PPOTrainer(tiny_config(tmp_path, tiny_model_dir, steps=3, mask_truncated_completions=True,
                                     output_dir=str(out)),
                         reward_fn=lambda p, c: [float(i) for i in range(len(c))], prompts=PROMPTS)
    rollout = trainer._rollout

    def cut(batch):
        r = rollout(batch)
        r.finished = torch.zeros_like(r.finished)
        return r

    trainer._rollout = cut
    before = [p.detach().clone() for p in trainer.policy_params]
    history = trainer.train()
    assert all(math.isfinite(v) for h in history for v in h.values())
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.policy_params))
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["policy_updated_steps"] == 0 and summary["masked_truncated_mean"] == 1.0
    report = write_report(tmp_path / "run").read_text()
    assert "| steps that updated the policy | 0 of 3 |" in report
    assert "| completions left out of the loss (mask_truncated_completions), mean share | 1" in report


def test_group_metrics_read_the_scores_the_estimator_trains_on(tiny_model_dir, tmp_path):
    """reward_fn pays 10, 11, ... 17 (every completion its own score), score_clip=1 clips them all
    to 1: each group's trained scores are [1, 1, 1, 1], so GRPO's advantages are exactly 0 and both
    groups carry no signal: frac_reward_zero_std = 1, group_std = 0. Read from the raw scores
    (distinct in every group) they were 0 and std(10..13) = 1.29."""
    trainer = PPOTrainer(tiny_config(tmp_path, tiny_model_dir, score_clip=1.0, normalize_reward=False),
                         reward_fn=lambda p, c: [10.0 + i for i in range(len(c))], prompts=PROMPTS)
    metrics = trainer.step()
    assert metrics["reward/score"] == pytest.approx(13.5)  # raw: mean of 10..17
    assert metrics["reward/frac_reward_zero_std"] == 1.0 and metrics["reward/group_std"] == 0.0


def test_group_prefill_samples_what_separate_prompts_sample(tiny_model_dir):
    """The G completions of a prompt prefilled once (cache repeated) sample the same tokens with
    the same log-probs as G separately prefilled copies of the prompt."""
    from rlhf.adapters import load_causal_lm
    from rlhf.models import load_tokenizer
    from rlhf.ppo.rollout import encode_queries, generate, generation_config

    tok = load_tokenizer(str(tiny_model_dir), padding_side="left")
    model = load_causal_lm(str(tiny_model_dir), device="cpu").eval()
    conversations = [[{"role": "user", "content": p}] for p in (PROMPTS[0], PROMPTS[13] + " Please, in detail.")]
    ids, mask, prefix = encode_queries(tok, conversations, "cpu", share_prefix=True)
    ids, mask = ids.repeat_interleave(3, 0), mask.repeat_interleave(3, 0)
    config = generation_config(8, 0.7, 1.0, tok.pad_token_id, [tok.eos_token_id])
    torch.manual_seed(0)
    plain_ids, plain_lp, _ = generate(model, ids, mask, config, 0.7, prefix_len=prefix)
    torch.manual_seed(0)
    group_ids, group_lp, _ = generate(model, ids, mask, config, 0.7, prefix_len=prefix, group_size=3)
    assert torch.equal(plain_ids, group_ids)
    assert (plain_lp - group_lp).abs().max() < 1e-4
    assert len({tuple(r) for r in group_ids[:3].tolist()}) > 1  # the group's samples differ


# --- learning -------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_each_estimator_learns_the_marker_word_with_bounded_kl(tiny_sft_dir, tmp_path, estimator):
    """+1 per occurrence of a chosen word, 2 prompts x G = 4 per step: the mean score must rise
    clearly within 25 steps and the KL to the SFT reference stay bounded (1-2 min each here)."""
    config = tiny_config(tmp_path, tiny_sft_dir, advantage_estimator=estimator, steps=25, max_new_tokens=12,
                         ppo_epochs=2, kl_coef=0.1)
    history = PPOTrainer(config, reward_fn=token_reward, prompts=PROMPTS).train()
    first, last, kls = learning_curve(history)
    assert last > first + 1.0, f"{estimator}: the chosen word was not learned: first 5 steps {first:.2f}, last 5 {last:.2f}"
    assert max(kls) < 25.0, f"{estimator}: KL ran away: {kls}"
    assert all(math.isfinite(h["ppo/policy_loss"]) for h in history)
