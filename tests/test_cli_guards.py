"""What a stage refuses before any model loads: an output folder that is an input model folder or
holds another stage's output, and a fresh run over an unfinished run's checkpoints (rlhf/outputs.py)."""

from __future__ import annotations

import json
import os
import time

import pytest

from rlhf import cli
from rlhf.outputs import check_checkpoints, check_output_dir, stages_in
from rlhf.stages import ConfigError


# --- output folders ----------------------------------------------------------------------------


def _run(stage, *args):
    """`rlhf STAGE ARGS`; PPO is given a reward rule when no reward model, as it needs a reward."""
    extra = ["--reward_preference", "concise"] if stage == "ppo" and "--reward_model" not in args else []
    return cli.main([stage, *args, *extra])


def _model_folder(path):
    path.mkdir(parents=True)
    (path / "adapter_config.json").write_text("{}")
    (path / "rlhf_config.json").write_text(json.dumps({"stage": "sft"}))
    return path


@pytest.mark.parametrize("stage, flag", [("sft", "--model"), ("reward", "--model"), ("dpo", "--policy"),
                                         ("ppo", "--policy"), ("ppo", "--reward_model")])
def test_a_stage_refuses_to_write_into_its_input_model_folder(stage, flag, tmp_path, capsys, monkeypatch):
    model = _model_folder(tmp_path / "runs" / "model")
    (model / "rlhf_config.json").write_text(json.dumps({"stage": stage}))  # the same stage: only the input check
    before = sorted(os.listdir(model))
    monkeypatch.chdir(tmp_path)
    # the same folder, spelled otherwise
    assert _run(stage, flag, str(model), "--output_dir", "runs/../runs/model/") == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"is the input model folder of {flag}" in err and "pass a new --output_dir" in err
    assert sorted(os.listdir(model)) == before


@pytest.mark.parametrize("stage", ["reward", "dpo", "ppo"])
def test_a_stage_refuses_a_folder_holding_another_stages_output(stage, tmp_path, capsys):
    sft = _model_folder(tmp_path / "sft")
    assert _run(stage, "--output_dir", str(sft)) == 2
    assert "already holds the output of rlhf sft (its rlhf_config.json)" in capsys.readouterr().err
    assert json.loads((sft / "rlhf_config.json").read_text()) == {"stage": "sft"}


def test_the_same_stage_may_write_its_folder_again(tmp_path):
    out = tmp_path / "sft"
    out.mkdir()
    (out / "rlhf_config.json").write_text(json.dumps({"sft": {"stage": "sft"}, "c.jsonl": {"stage": "sample"}}))
    assert stages_in(out) == {"sft"}  # a one-file output written beside it keeps the folder's stage
    assert check_output_dir("sft", out, {"--model": str(tmp_path / "base")}) == out
    with pytest.raises(ConfigError, match="already holds the output of rlhf sft"):
        check_output_dir("reward", out, {})


# --- checkpoints of an earlier run -------------------------------------------------------------

# stage -> (the files of one complete checkpoint, relative to output_dir)
CHECKPOINTS = {
    "sft": ["checkpoints/checkpoint-4750/trainer_state.json", "checkpoints/checkpoint-4800/trainer_state.json"],
    "reward": ["checkpoint/state.pt"],
    "ppo": ["checkpoints/checkpoint-40/trainer.pt", "checkpoints/checkpoint-50/trainer.pt"],
}


def _checkpoints(out, stage):
    for name in CHECKPOINTS[stage]:
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(json.dumps({"global_step": 1}))
    (out / "rlhf_config.json").write_text(json.dumps({"stage": stage}))
    return [out / name for name in CHECKPOINTS[stage]]


@pytest.mark.parametrize("stage", sorted(CHECKPOINTS))
def test_a_fresh_run_over_an_unfinished_runs_checkpoints_is_refused(stage, tmp_path, capsys):
    out = tmp_path / stage
    files = _checkpoints(out, stage)
    assert _run(stage, "--output_dir", str(out)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"rlhf {stage}: error: {out} holds checkpoints of an unfinished rlhf {stage} run")
    assert "--resume true" in err and "--overwrite_output_dir true" in err and "new --output_dir" in err
    assert all(f.exists() for f in files)


@pytest.mark.parametrize("stage", sorted(CHECKPOINTS))
def test_overwrite_output_dir_or_a_finished_run_starts_over_without_the_old_checkpoints(stage, tmp_path, capsys):
    out = tmp_path / stage
    files = _checkpoints(out, stage)
    remove = out / CHECKPOINTS[stage][0].split("/")[0]
    check_checkpoints(stage, out, files, remove, resume=True, overwrite=False)
    assert all(f.exists() for f in files)  # resume: the stage continues from them
    with pytest.raises(ConfigError, match="contradict"):
        check_checkpoints(stage, out, files, remove, resume=True, overwrite=True)
    check_checkpoints(stage, out, files, remove, resume=False, overwrite=True)
    assert not remove.exists() and "--overwrite_output_dir" in capsys.readouterr().out
    # finished: its final output was written after the newest checkpoint; rerun, it starts over
    files = _checkpoints(out, stage)
    time.sleep(0.01)
    (out / "metrics.json").write_text("{}")
    check_checkpoints(stage, out, files, remove, resume=False, overwrite=False)
    assert not remove.exists() and "had finished" in capsys.readouterr().out
