"""benchmarks/_runner.py, what the benchmark scripts share: a configuration run in its own process and
read back with its own peak memory, a failing one reported (not a crash, not a stale result), the
ours-vs-peer ratios, and the JSON + Markdown results; every benchmark script still starts with it."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


runner = _load("_runner")

CHILD = """import os, sys
sys.path.insert(0, {bench!r})
from _runner import write_child_result
mode, out = sys.argv[1], sys.argv[2]
if mode == "fail":
    sys.exit("the configuration broke")
if mode == "ok":
    block = bytearray(200 * 2**20)  # 200 MiB held at once: the peak must show it
    write_child_result(out, {{"mode": mode, "env": os.environ.get("BENCH_TEST_VAR"),
                              "path0": os.environ.get("PYTHONPATH", "").split(os.pathsep)[0]}})
"""


@pytest.fixture
def child_script(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(bench=str(ROOT / "benchmarks")))
    return script


def test_a_configuration_runs_in_its_own_process_and_reports_its_own_peak(child_script, tmp_path):
    out = tmp_path / "ok.json"
    result = runner.run_script(child_script, ["ok", out], out, env={"BENCH_TEST_VAR": "set"},
                               pythonpath_first=[tmp_path / "pinned"])
    assert result["mode"] == "ok" and result["env"] == "set"
    assert result["path0"] == str(tmp_path / "pinned")
    # The child's 200 MiB block is in its peak, and this (parent) process never held it.
    assert 0.2 < result["peak_rss_gb"] < 5
    assert json.loads(out.read_text()) == result


def test_a_failing_configuration_raises_with_its_last_error_line(child_script, tmp_path):
    out = tmp_path / "fail.json"
    with pytest.raises(runner.ChildFailed) as err:
        runner.run_script(child_script, ["fail", out], out, quiet=True)
    assert err.value.returncode == 1 and err.value.last_line == "the configuration broke"


def test_a_result_left_by_an_earlier_run_never_passes_as_this_one(child_script, tmp_path):
    out = tmp_path / "silent.json"
    out.write_text(json.dumps({"mode": "stale"}))
    with pytest.raises(runner.ChildFailed, match="wrote no silent.json"):
        runner.run_script(child_script, ["silent", out], out)  # exits 0 without writing
    assert not out.exists()


def test_ratios_of_ours_against_the_peer():
    rows = {"ours": {"s_per_step": 2.0, "peak_rss_gb": 1.5}, "trl": {"s_per_step": 5.0, "peak_rss_gb": 3.0},
            "ours-other": {"s_per_step": 1.0, "peak_rss_gb": 1.0}}
    out = runner.ratios(rows, [("ours", "trl"), ("ours-other", "missing-peer")])
    # 5.0 / 2.0 = 2.5x faster; 1.5 / 3.0 = half the memory; a pair without its peer is left out.
    assert out == {"ours vs trl": {"speedup": 2.5, "memory_ratio": 0.5}}
    lines = runner.ratio_lines(out, [("ours", "what ours is")])
    assert "| ours vs trl | 2.5× | 0.5 |" in lines and lines[-1] == "- `ours`: what ours is"


def test_results_are_written_as_json_and_markdown(tmp_path, capsys):
    path = tmp_path / "deeper" / "bench.json"
    runner.save_results(path, {"load_average": runner.load_average()}, "| a |\n|---|")
    assert len(json.loads(path.read_text())["load_average"]) == 3
    assert path.with_suffix(".md").read_text() == "| a |\n|---|\n"
    assert "| a |" in capsys.readouterr().out


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "benchmarks").glob("*.py") if not p.name.startswith("_")))
def test_every_benchmark_script_starts(script):
    """`--help` imports the script as `python benchmarks/X.py` does: its shared imports resolve."""
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--help"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "usage:" in proc.stdout


def test_the_trl_reward_peer_trains_from_our_start_and_times_each_epoch(tiny_model_dir, tmp_path, one_thread):
    """benchmarks/_trl_reward.py: 8 pairs, 4 per step, 2 epochs -> 4 optimizer steps, two timed epochs,
    and a merged (plain) model whose head moved away from the start both trainers share."""
    import torch

    from rlhf.models import load_tokenizer
    from rlhf.reward.model import build_reward_model

    pairs = [{"prompt": f"Question {i}?", "chosen": "A right answer.", "rejected": "No."} for i in range(8)]
    settings = dict(output_dir=str(tmp_path / "trl"), report_to=[], learning_rate=1e-2, num_train_epochs=2,
                    per_device_train_batch_size=4, save_strategy="no", logging_steps=10_000, seed=0, disable_tqdm=True)
    run = _load("_trl_reward").train_trl_reward(str(tiny_model_dir), pairs, settings, seed=0, lora_r=4)
    assert run["steps"] == 4 and len(run["epoch_seconds"]) == len(run["epoch_cpu_seconds"]) == 2
    assert all(s > 0 for s in run["epoch_seconds"] + run["epoch_cpu_seconds"])
    assert not hasattr(run["model"], "peft_config")
    start = build_reward_model(str(tiny_model_dir), load_tokenizer(str(tiny_model_dir)).pad_token_id, seed=0)
    assert not torch.equal(start.score.weight, run["model"].score.weight.to(start.score.weight.dtype))
