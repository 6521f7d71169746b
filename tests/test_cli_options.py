"""Options must be spelled out: an unknown one (or a prefix of a real one) is an error naming it and
the closest real option (rlhf/cli.py `parse_config`)."""

from __future__ import annotations

import pytest

from rlhf import cli


@pytest.mark.parametrize("argv, unknown, suggestion", [
    (["sft", "--lerning_rate", "1"], "--lerning_rate", "--learning_rate"),
    (["sft", "--max_step", "1"], "--max_step", "--max_steps"),  # a prefix is not accepted
    (["reward", "--output_dri=x"], "--output_dri", "--output_dir"),
    (["ppo", "--reward_modle", "x"], "--reward_modle", "--reward_model"),
])
def test_an_unknown_option_is_named_with_the_closest_real_one(argv, unknown, suggestion, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"rlhf {argv[0]}: error: unknown option {unknown} (did you mean {suggestion}?)"


def test_an_option_far_from_every_real_one_points_to_help(capsys):
    assert cli.main(["sft", "--zzzzzz", "1"]) == 2
    assert "unknown option --zzzzzz (rlhf sft --help lists the options)" in capsys.readouterr().err


def test_pipeline_options_take_no_prefix(tmp_path):
    from rlhf.pipeline import pipeline_main

    with pytest.raises(SystemExit) as exit_info:
        pipeline_main([str(tmp_path / "p.yaml"), "--run", str(tmp_path)])
    assert exit_info.value.code == 2
