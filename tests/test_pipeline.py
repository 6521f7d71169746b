import json

import pytest
import yaml

from rlhf.pipeline import PipelineError, load_pipeline_config, run_pipeline

STAGES = ["sft", "sample", "label", "reward", "ppo", "dpo", "eval"]


def tiny_config(run_dir, model_dir):
    return {
        "run_dir": str(run_dir),
        "model": str(model_dir),
        "seed": 0,
        "label_mode": "simulated",
        "sft": {"adapter": "lora", "max_steps": 2, "batch_size": 4, "max_length": 128, "learning_rate": 5e-3},
        "sample": {"limit": 6, "k": 3, "max_new_tokens": 8, "batch_size": 18},
        "label": {"preference": "concise", "num_labelers": 2, "noise": 0.0},
        "reward": {"epochs": 1, "batch_size": 2, "max_length": 128, "eval_fraction": 0.34},
        "ppo": {"steps": 2, "batch_size": 4, "max_new_tokens": 8, "ppo_epochs": 1, "save_steps": 1},
        "dpo": {"enabled": True, "max_steps": 1, "batch_size": 2, "grad_accum": 1, "max_length": 128},
        "eval": {"judge": "simulated", "limit": 4, "max_new_tokens": 8, "best_of_n": 2, "bootstrap": 200},
    }


@pytest.mark.slow
def test_pipeline_runs_every_stage_on_a_tiny_model_and_resumes(tmp_path, tiny_model_dir):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config(tmp_path / "run", tiny_model_dir)))
    run = run_pipeline(path)

    for stage in STAGES:
        assert (run / stage / "DONE.json").exists(), stage
    assert (run / "sft" / "adapter_model.safetensors").exists()
    assert (run / "reward" / "config.json").exists()
    result = json.loads((run / "eval" / "eval.json").read_text())
    text = json.dumps(result)
    assert "win_rate" in text and "ci" in text
    report = (run / "report.md").read_text()
    for heading in ("## Headline", "## Time per stage", "## SFT", "## Reward model", "## PPO", "## DPO", "## Evaluation"):
        assert heading in report, heading
    assert "win rate **" in report and "held-out pair accuracy" in report
    for png in ("sft/plots/loss.png", "reward/plots/accuracy.png", "reward/plots/loss.png", "ppo/plots/reward.png",
                "ppo/plots/kl.png", "ppo/plots/response_length.png"):
        assert (run / png).stat().st_size > 1000, png
        assert f"({png})" in report, png
    assert (run / "pipeline.yaml").exists() and "finished" in (run / "pipeline.log").read_text()

    # A re-run finds every stage done and skips it.
    before = {stage: (run / stage / "DONE.json").stat().st_mtime for stage in STAGES}
    run_pipeline(path)
    assert before == {stage: (run / stage / "DONE.json").stat().st_mtime for stage in STAGES}
    assert (run / "pipeline.log").read_text().count("done in an earlier run, skipped") == len(STAGES)


def test_unknown_stage_field_is_named(tmp_path, tiny_model_dir):
    config = tiny_config(tmp_path / "run", tiny_model_dir)
    config["sft"]["adaptor"] = "lora"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(PipelineError, match=r"stage 'sft': unknown field\(s\) \['adaptor'\]"):
        run_pipeline(path)


def test_unknown_top_level_key_and_bad_yaml_are_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("rewrd: {}\n")
    with pytest.raises(PipelineError, match=r"unknown top-level key\(s\) \['rewrd'\]"):
        load_pipeline_config(path)
    path.write_text("sft: [1, 2\n")
    with pytest.raises(PipelineError, match="not valid YAML"):
        load_pipeline_config(path)


def test_shipped_configs_name_only_real_fields():
    import dataclasses

    from rlhf.pipeline import STAGES as KNOWN
    from rlhf.pipeline import stage_config_class

    for name in ("examples/quickstart.yaml", "examples/gpu.yaml"):
        config = load_pipeline_config(name)
        for stage in KNOWN:
            section = dict(config.get(stage) or {})
            section.pop("enabled", None)
            section.pop("target_labels", None)
            cls = stage_config_class(stage, config.get("label_mode", "simulated"))
            unknown = set(section) - {f.name for f in dataclasses.fields(cls)}
            assert not unknown, (name, stage, unknown)
