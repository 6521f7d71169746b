"""Every stage config refuses numbers that cannot work (a negative batch, zero steps, a negative
KL weight) when it is built, naming the field, the value and what is allowed; the CLI turns that
into one line and exit 2 before any model or data loads."""

import dataclasses

import pytest

from rlhf.cli import main
from rlhf.dpo import DPOStageConfig
from rlhf.eval import EvalConfig
from rlhf.labelers import SimulateConfig
from rlhf.ppo import PPOConfig
from rlhf.reward import RewardConfig
from rlhf.reward_eval import RewardEvalConfig
from rlhf.sample import SampleConfig
from rlhf.sft import SFTConfig

NO_STEPS = "max_steps must be -1 (train for epochs) or >= 1"

REFUSED = [
    (RewardConfig, {"batch_size": -2}, "batch_size must be >= 1 (got -2)"),
    (RewardConfig, {"batch_size": 0}, "batch_size must be >= 1 (got 0)"),
    (RewardConfig, {"max_steps": 0}, f"{NO_STEPS} (got 0)"),
    (RewardConfig, {"max_steps": -5}, f"{NO_STEPS} (got -5)"),
    (RewardConfig, {"epochs": 0}, "epochs must be > 0 (got 0)"),
    (RewardConfig, {"grad_accum": 0}, "grad_accum must be >= 1 (got 0)"),
    (RewardConfig, {"learning_rate": -1e-3}, "learning_rate must be > 0 (got -0.001)"),
    (RewardConfig, {"lora_r": 0}, "lora_r must be >= 1 (got 0)"),
    (RewardConfig, {"warmup_ratio": 1.5}, "warmup_ratio must be in [0, 1) (got 1.5)"),
    (RewardConfig, {"eval_fraction": 1.0}, "eval_fraction must be in [0, 1) (got 1.0)"),
    (RewardConfig, {"max_length": 1}, "max_length must be >= 2"),
    (RewardConfig, {"logging_steps": 0}, "logging_steps must be >= 1 (got 0)"),
    (RewardConfig, {"tie_strength": 0.0}, "tie_strength must be > 0 (got 0.0)"),
    (RewardConfig, {"save_steps": -1}, "save_steps must be >= 0 (got -1)"),
    (SFTConfig, {"max_steps": 0}, f"{NO_STEPS} (got 0)"),
    (SFTConfig, {"epochs": -1.0}, "epochs must be > 0 (got -1.0)"),
    (SFTConfig, {"batch_size": -3}, "batch_size must be >= 1 (got -3)"),
    (SFTConfig, {"grad_accum": 0}, "grad_accum must be >= 1 (got 0)"),
    (SFTConfig, {"lora_r": 0}, "lora_r must be >= 1 (got 0)"),
    (SFTConfig, {"lora_alpha": 0}, "lora_alpha must be > 0 (got 0)"),
    (SFTConfig, {"lora_dropout": 1.0}, "lora_dropout must be in [0, 1) (got 1.0)"),
    (SFTConfig, {"max_length": 1}, "max_length must be >= 2"),
    (SFTConfig, {"learning_rate": 0.0}, "learning_rate must be > 0 (got 0.0)"),
    (SFTConfig, {"eval_fraction": -0.1}, "eval_fraction must be in [0, 1) (got -0.1)"),
    (SFTConfig, {"save_steps": 0}, "save_steps must be >= 1 (got 0)"),
    (DPOStageConfig, {"max_steps": 0}, f"{NO_STEPS} (got 0)"),
    (DPOStageConfig, {"epochs": 0.0}, "epochs must be > 0 (got 0.0)"),
    (DPOStageConfig, {"beta": -1.0}, "beta must be > 0 (got -1.0)"),
    (DPOStageConfig, {"batch_size": 0}, "batch_size must be >= 1 (got 0)"),
    (DPOStageConfig, {"warmup_ratio": -0.1}, "warmup_ratio must be in [0, 1) (got -0.1)"),
    (PPOConfig, {"kl_coef": -1.0}, "kl_coef must be >= 0 (got -1.0)"),
    (PPOConfig, {"kl_loss_coef": -0.1}, "kl_loss_coef must be >= 0 (got -0.1)"),
    (PPOConfig, {"target_kl": 0.0}, "target_kl must be > 0 (got 0.0)"),
    (PPOConfig, {"cliprange": 0.0}, "cliprange must be > 0 (got 0.0)"),
    (PPOConfig, {"cliprange_high": -0.1}, "cliprange_high must be > 0 (got -0.1)"),
    (PPOConfig, {"vf_coef": -1.0}, "vf_coef must be >= 0 (got -1.0)"),
    (PPOConfig, {"gamma": 1.5}, "gamma must be in [0, 1] (got 1.5)"),
    (PPOConfig, {"top_p": 0.0}, "top_p must be in (0, 1] (got 0.0)"),
    (PPOConfig, {"reward_batch_size": 0}, "reward_batch_size must be >= 1 (got 0)"),
    (PPOConfig, {"steps": -3}, "steps must be >= 1 (got -3)"),
    (SampleConfig, {"max_new_tokens": 0}, "max_new_tokens must be >= 1 (got 0)"),
    (SampleConfig, {"temperature": -1.0}, "temperature must be >= 0 (got -1.0)"),
    (SampleConfig, {"top_p": 1.5}, "top_p must be in (0, 1] (got 1.5)"),
    (EvalConfig, {"max_new_tokens": 0}, "max_new_tokens must be >= 1 (got 0)"),
    (EvalConfig, {"batch_size": 0}, "batch_size must be >= 1 (got 0)"),
    (EvalConfig, {"judge_noise": 2.0}, "judge_noise must be in [0, 1] (got 2.0)"),
    (SimulateConfig, {"candidates": "c.jsonl", "num_labelers": 0}, "--num_labelers must be at least 1 (got 0)"),
    (SimulateConfig, {"candidates": "c.jsonl", "disagreement": 1.0}, "--disagreement must be in [0, 1) (got 1.0)"),
    (RewardEvalConfig, {"batch_size": 0}, "batch_size must be >= 1 (got 0)"),
]


@pytest.mark.parametrize("cls, values, message", REFUSED, ids=lambda x: getattr(x, "__name__", None))
def test_a_config_refuses_a_number_naming_field_value_and_range(cls, values, message):
    with pytest.raises(ValueError) as error:
        cls(**values)
    assert message in str(error.value)


def test_each_message_names_only_what_is_wrong():
    # steps=-3 used to add "value_warmup_steps=0 >= steps=-3: only the critic would ever train"
    with pytest.raises(ValueError) as error:
        PPOConfig(steps=-3)
    assert str(error.value) == "PPOConfig: steps must be >= 1 (got -3)"
    with pytest.raises(ValueError) as error:  # was a ZeroDivisionError in the group checks
        PPOConfig(num_minibatches=0, advantage_estimator="grpo", num_generations=4)
    assert str(error.value) == "PPOConfig: num_minibatches must be >= 1 (got 0)"
    # num_labelers=0 used to blame --labels_per_item
    with pytest.raises(ValueError) as error:
        SimulateConfig(candidates="c.jsonl", num_labelers=0)
    assert "labels_per_item" not in str(error.value)
    # several wrong fields: every one named, in one message
    with pytest.raises(ValueError) as error:
        SFTConfig(max_steps=-5, epochs=-1)
    assert f"{NO_STEPS} (got -5)" in str(error.value) and "epochs must be > 0 (got -1)" in str(error.value)


def test_the_edges_that_mean_something_are_accepted():
    assert RewardConfig(max_steps=-1).max_steps is None  # -1 = run epochs, as in sft and dpo
    assert RewardConfig(max_steps=1, batch_size=1, eval_fraction=0.0, center_rewards_coefficient=0.0).max_steps == 1
    SFTConfig(max_steps=1, eval_fraction=0.0, lora_dropout=0.0, warmup_steps=0, eval_steps=0)
    DPOStageConfig(max_steps=-1, epochs=0.5, warmup_ratio=0.0, eval_fraction=0.0)
    PPOConfig(kl_coef=0.0, kl_loss_coef=0.0, gamma=0.0, save_steps=0, length_report_steps=0)
    SampleConfig(temperature=0.0)  # greedy, as documented
    EvalConfig(temperature=0.0, judge_noise=1.0)
    SimulateConfig(candidates="c.jsonl", num_labelers=1, labels_per_item=1, noise=0.0)


def test_reward_epochs_help_gives_instructgpt_and_the_quickstart():
    epochs = next(f for f in dataclasses.fields(RewardConfig) if f.name == "epochs")
    text = epochs.metadata["help"]
    assert "InstructGPT" in text and "3" in text and "6 of" in text and "overfits" not in text


CLI = [
    ("reward", ["--batch_size", "-2"], "batch_size must be >= 1 (got -2)"),
    ("reward", ["--epochs", "0"], "epochs must be > 0 (got 0)"),
    ("reward", ["--max_steps", "0"], f"{NO_STEPS} (got 0)"),
    ("sft", ["--max_steps", "-5", "--epochs", "-1"], f"{NO_STEPS} (got -5)"),
    ("sft", ["--max_steps", "0"], f"{NO_STEPS} (got 0)"),
    ("sft", ["--batch_size", "-3"], "batch_size must be >= 1 (got -3)"),
    ("sft", ["--lora_r", "0"], "lora_r must be >= 1 (got 0)"),
    ("dpo", ["--max_steps", "0"], f"{NO_STEPS} (got 0)"),
    ("dpo", ["--beta", "-1"], "beta must be > 0 (got -1.0)"),
    ("ppo", ["--kl_coef", "-1"], "kl_coef must be >= 0 (got -1.0)"),
    ("ppo", ["--steps", "-3"], "steps must be >= 1 (got -3)"),
]


@pytest.mark.parametrize("command, flags, message", CLI)
def test_the_cli_refuses_before_anything_loads(tmp_path, capsys, command, flags, message):
    """Exit 2 with one line naming the field; the data and model named do not exist, so a check
    that came after them would fail with another message; no output folder is made."""
    out = tmp_path / "out"
    inputs = {"reward": ["--data", str(tmp_path / "none.jsonl"), "--model", str(tmp_path / "no-model")],
              "sft": ["--data", str(tmp_path / "none.jsonl"), "--model", str(tmp_path / "no-model")],
              "dpo": ["--data", str(tmp_path / "none.jsonl"), "--policy", str(tmp_path / "no-model")],
              "ppo": ["--policy", str(tmp_path / "no-model"), "--prompts", str(tmp_path / "none.jsonl")]}[command]
    assert main([command, *inputs, "--output_dir", str(out), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"rlhf {command}: error: ") and message in err and len(err.splitlines()) == 1
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("stage, section, message", [
    ("sft", {"max_steps": 0}, f"{NO_STEPS} (got 0)"),
    ("reward", {"epochs": 0}, "epochs must be > 0 (got 0)"),
    ("dpo", {"enabled": True, "beta": -1.0}, "beta must be > 0 (got -1.0)"),
    ("eval", {"max_new_tokens": 0}, "max_new_tokens must be >= 1 (got 0)"),
])
def test_the_pipeline_refuses_a_late_stages_number_before_the_first_stage(tmp_path, stage, section, message):
    import re

    from rlhf.pipeline import Pipeline, PipelineError

    pipe = Pipeline({"run_dir": str(tmp_path / "run"), stage: section})
    with pytest.raises(PipelineError, match=f"stage '{stage}': .*{re.escape(message)}"):
        pipe.validate()
    assert not (tmp_path / "run").exists()


def test_the_pipeline_reads_yaml_numbers_written_as_text_and_refuses_text_for_a_switch(tmp_path):
    """PyYAML reads YAML 1.1: `learning_rate: 1e-5` (no dot) is the string '1e-5', which failed with
    a bare TypeError ('>' between str and int) in the config's checks, out of `rlhf pipeline`'s
    error handling. It is the number now, in every stage; text where a number belongs, or anything
    but true/false for a switch (the string 'false' switched mask_truncated_completions on), is
    refused naming the stage and field, before the first stage."""
    import yaml

    from rlhf.pipeline import Pipeline, PipelineError

    config = yaml.safe_load("run_dir: RUN\nsft: {learning_rate: 2e-4}\nppo: {learning_rate: 1e-5, cliprange_high: 28e-2, "
                            "steps: '10', advantage_estimator: grpo, num_generations: 2, scale_rewards: batch, "
                            "mask_truncated_completions: true}\n")
    assert config["ppo"]["learning_rate"] == "1e-5"  # what PyYAML gives
    config["run_dir"] = str(tmp_path / "run")
    pipe = Pipeline(config)
    pipe.validate()
    ppo = pipe.section("ppo")
    assert (ppo["learning_rate"], ppo["cliprange_high"], ppo["steps"]) == (1e-5, 0.28, 10)
    assert pipe.section("sft")["learning_rate"] == 2e-4
    for section, message in (({"mask_truncated_completions": "false"}, "mask_truncated_completions='false' must be "
                                                                        "true or false"),
                             ({"learning_rate": "fast"}, "learning_rate='fast' must be a number"),
                             ({"steps": "ten"}, "steps='ten' must be a whole number")):
        with pytest.raises(PipelineError, match=f"stage 'ppo': {message}"):
            Pipeline({"run_dir": str(tmp_path / "run"), "ppo": section}).validate()
    assert not (tmp_path / "run").exists()
