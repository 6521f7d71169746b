"""The stage registry and the one resolved-config writer (rlhf/stages.py)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from rlhf import cli, pipeline
from rlhf.stages import COMMANDS, PIPELINE_ORDER, STAGES, config_class, pipeline_command, save_resolved_config, \
    split_pipeline_keys


def test_cli_pipeline_and_exports_read_one_registry():
    import rlhf

    assert cli.COMMANDS is COMMANDS
    assert pipeline.STAGES == PIPELINE_ORDER
    for stage in STAGES:
        for name in stage.exports:
            assert getattr(rlhf, name) is not None, name
        if stage.config is not None:
            assert dataclasses.is_dataclass(config_class(stage.command)), stage.command
    assert pipeline.stage_config_class("label", "app") is config_class("label")
    assert pipeline.stage_config_class("label") is config_class("simulate")
    with pytest.raises(ValueError, match="label_mode"):
        pipeline_command("label", "crowd")


def test_usage_lists_every_command(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(f"  {name}" in out for name in COMMANDS)


def test_pipeline_only_keys_are_split_off_in_one_place():
    fields, own = split_pipeline_keys("dpo", {"enabled": True, "max_steps": 3})
    assert fields == {"max_steps": 3} and own == {"enabled": True}
    fields, own = split_pipeline_keys("label", {"target_labels": 5, "noise": 0.1})
    assert fields == {"noise": 0.1} and own == {"target_labels": 5}
    assert split_pipeline_keys("ppo", {"enabled": True}) == ({"enabled": True}, {})  # not a pipeline key there


@dataclasses.dataclass
class _Cfg:
    lr: float = 0.1
    name: str = "x"


def test_resolved_config_in_a_folder_and_beside_output_files(tmp_path):
    folder = tmp_path / "sft"
    path = save_resolved_config("sft", _Cfg(), folder, lr=0.5)
    assert path == folder / "rlhf_config.json"
    assert json.loads(path.read_text()) == {"stage": "sft", "lr": 0.5, "name": "x"}
    # two one-file outputs in one folder keep both configs, keyed by file name
    save_resolved_config("sample", _Cfg(name="a"), tmp_path / "data" / "cands.jsonl")
    save_resolved_config("simulate", {"noise": 0.1}, tmp_path / "data" / "rankings.jsonl")
    both = json.loads((tmp_path / "data" / "rlhf_config.json").read_text())
    assert both["cands.jsonl"]["stage"] == "sample" and both["cands.jsonl"]["name"] == "a"
    assert both["rankings.jsonl"] == {"stage": "simulate", "noise": 0.1}
    # a file written into a folder stage's folder keeps that stage's record
    save_resolved_config("sample", _Cfg(), folder / "cands.jsonl")
    kept = json.loads((folder / "rlhf_config.json").read_text())
    assert kept["sft"]["lr"] == 0.5 and kept["cands.jsonl"]["stage"] == "sample"


@pytest.mark.parametrize("command", [s.command for s in STAGES if s.config is not None])
def test_every_command_prints_its_help(command, capsys):
    """--help lists every field of the stage's dataclass (a help text with a bare % once crashed it)."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert all(f"--{f.name}" in out for f in dataclasses.fields(config_class(command)))
    # a bool field on by default gets a --no_X that says it turns X off, not X's own help
    flat = " ".join(out.split())
    for f in dataclasses.fields(config_class(command)):
        if f.default is True:
            assert f"--no-{f.name.replace('_', '-')} Turn --{f.name} off (it is on by default). " in flat, f.name
            assert f"Turn --{f.name} off (it is on by default). (default" not in flat, f.name


def _one_line_exit_2(argv, capsys) -> str:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_setup_mistakes_found_by_stage_code_are_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    import torch

    # QLoRA without a GPU: refused before the data is read (the data file here does not exist).
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    err = _one_line_exit_2(["sft", "--adapter", "qlora", "--data", str(tmp_path / "missing.jsonl"),
                            "--output_dir", str(tmp_path / "sft")], capsys)
    assert err.startswith("rlhf sft: error: QLoRA needs a CUDA GPU") and "missing.jsonl" not in err
    # --fsdp with a LoRA policy
    err = _one_line_exit_2(["ppo", "--fsdp", "true", "--policy_train", "lora", "--reward_model", str(tmp_path / "rm"),
                            "--output_dir", str(tmp_path / "ppo")], capsys)
    assert err.startswith("rlhf ppo: error: --fsdp with --policy_train lora")
    # a preference that cannot be imported
    candidates = tmp_path / "c.jsonl"
    candidates.write_text(json.dumps({"id": "p0", "prompt": "hi", "completions": ["a", "bb"]}) + "\n")
    err = _one_line_exit_2(["simulate", "--preference", "no_such_module_xyz:fn", "--candidates", str(candidates),
                            "--output", str(tmp_path / "r.jsonl")], capsys)
    assert "cannot import 'no_such_module_xyz'" in err
