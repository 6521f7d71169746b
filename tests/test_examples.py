"""Tier (c): every stage example runs in a subprocess at tiny size, in order, sharing a run folder."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = ["01_sft.py", "02_sample.py", "03_label.py", "04_reward.py", "05_ppo.py", "06_eval.py"]


@pytest.mark.slow
def test_stage_examples_run_in_order_at_tiny_size(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    for script in SCRIPTS:
        proc = subprocess.run([sys.executable, str(EXAMPLES / script), "--tiny", "--run_dir", str(tmp_path)],
                              cwd=EXAMPLES, env=env, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, f"{script} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    assert (tmp_path / "sft" / "adapter_config.json").exists()
    assert (tmp_path / "candidates.jsonl").exists() and (tmp_path / "rankings.jsonl").exists()
    assert (tmp_path / "reward" / "config.json").exists()
    assert (tmp_path / "eval" / "eval.md").exists()


def test_rlhf_help_lists_every_stage():
    proc = subprocess.run([sys.executable, "-m", "rlhf.cli", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    for command in ("sft", "sample", "label", "export", "simulate", "reward", "ppo", "dpo", "eval", "pipeline"):
        assert f"  {command} " in proc.stdout, command


@pytest.mark.slow
def test_grpo_example_runs_at_tiny_size(tmp_path):
    """examples/07_grpo.py: a rule-checked reward, GRPO, no reward model and no critic."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, str(EXAMPLES / "07_grpo.py"), "--tiny", "--run_dir", str(tmp_path)],
                          cwd=EXAMPLES, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"07_grpo.py failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    assert "groups without spread" in proc.stdout
    assert (tmp_path / "grpo" / "policy" / "adapter_config.json").exists()
    rows = (tmp_path / "grpo" / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 2 and '"reward/frac_reward_zero_std"' in rows[-1]


def test_label_example_quotes_a_path_with_a_space_in_the_command_it_prints(tmp_path):
    import json
    import shlex

    run_dir = tmp_path / "my runs"
    run_dir.mkdir()
    rows = [{"id": f"p{i}", "prompt": f"Question {i}?", "completions": ["Short.", "A much longer answer here."]}
            for i in range(4)]
    (run_dir / "candidates.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    proc = subprocess.run([sys.executable, str(EXAMPLES / "03_label.py"), "--run_dir", str(run_dir)],
                          cwd=EXAMPLES, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    command = next(line for line in proc.stdout.splitlines() if "rlhf label" in line).split(":", 1)[1]
    argv = shlex.split(command)
    assert argv[argv.index("--candidates") + 1] == str(run_dir / "candidates.jsonl")
