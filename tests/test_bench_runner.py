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


def test_reward_quality_lm_baseline_scores_the_answer_tokens_only(tmp_path, monkeypatch):
    """`reward_quality.py --trainers lm`: each answer's score is the base model's mean log-probability
    of the answer's own tokens after the chat-templated prompt (an off-by-one would score the
    template's last token or drop the answer's first), and the accuracy compares those scores."""
    import torch

    from rlhf.adapters import load_causal_lm
    from rlhf.models import load_tokenizer, save_tiny_model

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    quality = _load("reward_quality")
    model_dir = str(save_tiny_model(tmp_path / "tiny"))
    pairs = [{"prompt": "What is 2 plus 3?", "chosen": "2 plus 3 is 5.", "rejected": "2 plus 3 is 6. It is sunny."},
             {"prompt": "Say hi.", "chosen": "Hi there", "rejected": "Hi"}]
    model, tok = load_causal_lm(model_dir, device="cpu").eval(), load_tokenizer(model_dir)

    def by_hand(prompt, answer):
        head = tok(tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                           add_generation_prompt=True), add_special_tokens=False).input_ids
        tail = tok(answer, add_special_tokens=False).input_ids
        with torch.no_grad():
            logits = model(torch.tensor([head + tail])).logits[0].float()
        return sum(logits[len(head) - 1 + i].log_softmax(-1)[t].item() for i, t in enumerate(tail)) / len(tail)

    chosen, rejected = quality.lm_scores(model, tok, pairs, max_length=256)
    expected_c = [by_hand(p["prompt"], p["chosen"]) for p in pairs]
    expected_r = [by_hand(p["prompt"], p["rejected"]) for p in pairs]
    assert torch.allclose(chosen, torch.tensor(expected_c), atol=1e-5)
    assert torch.allclose(rejected, torch.tensor(expected_r), atol=1e-5)
    result = quality.score_lm(model_dir, pairs, max_length=256)
    assert result["correct"] == [int(c > r) for c, r in zip(expected_c, expected_r)]


def test_reward_quality_merge_writes_where_name_says(tmp_path, monkeypatch):
    """`--merge ... --name N` writes reward_quality_N.json, never over the default result file (it did)."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    quality = _load("reward_quality")
    written = []
    monkeypatch.setattr(quality, "merge_reports", lambda specs, resamples: {"specs": specs})
    monkeypatch.setattr(quality, "_write", lambda report, out: written.append((report, out)))
    quality.main(["--merge", "a.json:ours", "b.json:trl", "--name", "lr1e-3"])
    quality.main(["--merge", "a.json:ours", "--out", str(tmp_path / "own.json")])
    assert [out for _, out in written] == [quality.RESULTS / "reward_quality_lr1e-3.json", tmp_path / "own.json"]
    assert written[0][0] == {"specs": ["a.json:ours", "b.json:trl"], "bootstrap": 2000}


def test_reward_quality_resummarise_recomputes_the_summary_from_stored_outcomes(tmp_path, monkeypatch):
    """`--resummarise F`: the summary is rebuilt from the per-pair outcomes F stores (pooled accuracy,
    the paired difference ours - TRL and rlhf.eval's bootstrap CIs); the runs themselves are untouched."""
    from rlhf.eval import bootstrap_ci

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    quality = _load("reward_quality")
    run = {"seed": 0, "accuracy": 0.75, "seconds_per_epoch": 2.0, "cpu_seconds_per_epoch": 2.0, "steps": 3}
    runs = {"ours": [{**run, "correct": [1, 1, 1, 0]}], "trl": [{**run, "correct": [1, 0, 0, 0]}]}
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"runs": runs, "summary": {"stale": True}, "model": "m", "train_pairs": 1,
                                "test_pairs": 4, "longer_chosen": 0.5, "seeds": [0], "lr": 1e-3, "batch": 8,
                                "epochs": 1, "device": "cpu", "load_average": [0, 0, 0],
                                "ours_overrides": [], "trl_overrides": []}))
    quality.main(["--resummarise", str(path), "--bootstrap", "500"])
    report = json.loads(path.read_text())
    assert report["runs"] == runs and "stale" not in report["summary"]
    assert report["summary"]["ours"]["pooled_accuracy"] == 0.75
    assert report["summary"]["ours"]["pooled_accuracy_ci95"] == list(bootstrap_ci([1, 1, 1, 0], 500, 0))
    assert report["summary"]["ours_minus_trl"] == {"accuracy": 0.5, "ci95": list(bootstrap_ci([0, 1, 1, 0], 500, 1))}
    assert "| ours | 0.750" in path.with_suffix(".md").read_text() and report["bootstrap"] == 500
    quality.main(["--resummarise", str(path)])  # the file's own count now wins over the default 2000
    assert json.loads(path.read_text())["summary"] == report["summary"]


def test_critic_free_reward_gap_uses_the_last_10_steps_of_shared_seeds(monkeypatch):
    """ours - peer over the last 10 steps of the seeds both ran, CI = diff +- 1.96 x the pooled standard error."""
    import math
    import statistics

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    speed = _load("critic_free_speed")
    ours = [0.0] * 5 + [0.1, 0.2] * 5  # last 10: mean 0.15
    peer = [1.0] * 5 + [0.0, 0.1] * 5  # last 10: mean 0.05 (the first 5 steps must not count)
    rows = {"ours-grpo-micro8": {"seeds": {0: {"rewards": ours}, 1: {"rewards": ours}}},
            "trl-grpo": {"seeds": {0: {"rewards": peer}}}}  # seed 1 only on our side: left out
    (gap,) = speed.reward_gaps(rows)
    a, b = ours[-10:], peer[-10:]
    se = math.sqrt(statistics.variance(a) / 10 + statistics.variance(b) / 10)
    assert gap["seeds"] == [0] and gap["diff"] == 0.1
    assert gap["ci"] == [round(0.1 - 1.96 * se, 3), round(0.1 + 1.96 * se, 3)]


def test_critic_free_speed_partial_runs_never_write_over_the_merged_table(monkeypatch):
    """A run of some configurations writes its own file; the default file is for a run of all of them or
    a merge of cached ones (a single configuration measured alone wrote over the merged table)."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    speed = _load("critic_free_speed")

    def path(*argv):
        args = speed.argparse.Namespace(only=None, reuse=[], name=None)
        for key, value in argv:
            setattr(args, key, value)
        return speed.results_path(args).name

    assert path() == "critic_free_speed.json"
    assert path(("only", ["ours-grpo", "trl-grpo"]), ("reuse", ["ours-grpo", "trl-grpo"])) == "critic_free_speed.json"
    assert path(("only", ["trl-grpo"])) == "critic_free_speed_trl-grpo.json"
    assert path(("only", ["ours-grpo", "trl-grpo"]), ("reuse", ["trl-grpo"])) == "critic_free_speed_ours-grpo+trl-grpo.json"
    assert path(("only", ["trl-grpo"]), ("name", "eps")) == "critic_free_speed_eps.json"
    assert path(("name", "eps")) == "critic_free_speed_eps.json"
    assert path(("only", [])) == "critic_free_speed.json"  # `--only` with no names runs everything


def test_critic_free_speed_reuses_the_committed_table_when_the_cache_is_gone(monkeypatch, tmp_path):
    """A fresh clone has no cache: a `--reuse`d seed comes from the committed table's per-seed record
    and summarises to the same figures (adding a seed must not need the others measured again); the
    cache's own file wins when both exist; a seed in neither is None (left out, not run)."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    speed = _load("critic_free_speed")
    monkeypatch.setattr(speed, "CACHE", tmp_path)
    child = {"step_s": [60.0, 62.0, 61.0], "rewards": [0.0, 0.125, 0.25], "peak_rss_gb": 2.75,
             "trainable_params": 4884480, "load_average_end": [3.0, 2.9, 2.8], "phase_s": {"step": 61.0}}
    committed = {"runs": {"ours-rloo-micro8": speed.summarise("ours-rloo-micro8", {0: child})}}
    committed = json.loads(json.dumps(committed))  # as read from disk: seed keys are strings
    again = speed.reused_result("ours-rloo-micro8", 0, committed)
    assert again["reused"] and again["step_s"] == child["step_s"]
    assert speed.summarise("ours-rloo-micro8", {0: again})["seeds"][0] == {
        **speed.summarise("ours-rloo-micro8", {0: child})["seeds"][0], "reused": True}
    assert speed.reused_result("ours-rloo-micro8", 1, committed) is None
    assert speed.reused_result("trl-rloo", 0, committed) is None
    (tmp_path / "ours-rloo-micro8-0.json").write_text(json.dumps({**child, "step_s": [1.0, 2.0]}))
    assert speed.reused_result("ours-rloo-micro8", 0, committed)["step_s"] == [1.0, 2.0]
