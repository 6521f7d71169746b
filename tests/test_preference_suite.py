"""benchmarks/preference_suite.py end to end at tiny size: two preferences x two methods on a tiny
random model (rules that rarely tie on its random words), every stage real (SFT, sampling, simulated labels, reward model, PPO, DPO, eval), and
a second invocation that finds every cell done."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("preference_suite", ROOT / "benchmarks" / "preference_suite.py")
suite = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(suite)


def test_variant_arguments_are_checked_before_anything_runs(tmp_path):
    for argv, match in ((["--variant", "eos"], "go together"), (["--set", "a=1"], "go together"),
                        (["--variant", "a/b", "--set", "a=1"], "names files"),
                        (["--table_only", "--learnability"], "pick one")):
        with pytest.raises(SystemExit):
            suite.parse_args(argv)
    # A variant a method cannot take is refused before SFT or anything else runs.
    for methods, change, match in (("dpo", "reward.epochs=2", "dpo learns from the labels"),
                                   ("ppo,best_of_n", "steps=3", "best_of_n trains nothing")):
        with pytest.raises(SystemExit, match=match):
            suite.main(["--methods", methods, "--variant", "x", "--set", change, "--run_dir", str(tmp_path / "suite")])
        assert not (tmp_path / "suite").exists()
    assert suite.parse_sets(["missing_eos_penalty=-1.0", "steps=3", "kl_coef = 0.1"]) == (
        {"missing_eos_penalty": -1.0, "steps": 3, "kl_coef": 0.1}, {})
    assert suite.parse_sets(["reward.learning_rate=3e-3", "reward.epochs=2", "steps=3"]) == (
        {"steps": 3}, {"learning_rate": 3e-3, "epochs": 2})
    for bad in ("oops", "reward.=1", "=1"):
        with pytest.raises(SystemExit, match="not KEY=VALUE"):
            suite.parse_sets([bad])
    assert suite.split_cell("ppo@eos") == ("ppo", "eos") and suite.split_cell("dpo") == ("dpo", None)
    assert suite.pick("ppo,ppo@eos", ["ppo", "dpo"], "method(s)") == ["ppo", "ppo@eos"]


def test_unknown_names_and_method_availability():
    with pytest.raises(SystemExit, match="unknown method"):
        suite.pick("ppo,nope", suite.available_methods(), "method(s)")
    assert suite.pick(None, ["a", "b"], "x") == ["a", "b"]
    from rlhf.ppo import PPOConfig
    import dataclasses

    critic_free = "advantage_estimator" in {f.name for f in dataclasses.fields(PPOConfig)}
    assert ("grpo" in suite.available_methods()) == critic_free
    assert {"ppo", "dpo", "best_of_n"} <= set(suite.available_methods())
    # Preferences: built-in names, or a user's own rule as package.module:function, loaded up front.
    assert suite.pick_preferences("concise, rlhf.labelers:plain") == ["concise", "rlhf.labelers:plain"]
    with pytest.raises(SystemExit, match="unknown preference.*'nope'"):
        suite.pick_preferences("concise,nope")
    with pytest.raises(SystemExit, match="cannot import 'nosuch_xyz'"):
        suite.pick_preferences("concise,nosuch_xyz:fn")
    assert suite.folder_name("my.rules:tidy") == "my.rules.tidy" and suite.folder_name("plain") == "plain"


def test_mean_row_counts_the_preferences_each_method_ran_on_and_won():
    def cell(rate, low):
        return {"win_rate": rate, "ci95": [low, 1.0]}

    table = {"a": {"cells": {"ppo": cell(0.9, 0.7), "dpo": cell(0.6, 0.45)}},
             "b": {"cells": {"ppo": cell(0.5, 0.3)}},
             "c": {"cells": {"ppo": cell(0.7, 0.55), "dpo": cell(0.8, 0.6)}}}
    row = suite.mean_row(table, ["ppo", "dpo", "grpo"])
    assert row == "| mean | | | | 0.700 (3 of 3; 2 above 0.5) | 0.700 (2 of 3; 1 above 0.5) | – |"


@pytest.mark.slow
def test_suite_runs_two_preferences_by_two_methods_and_resumes(tmp_path, tiny_model_dir, capsys, monkeypatch):
    args = ["--scale", "tiny", "--model", str(tiny_model_dir), "--preferences", "detailed,plain",
            "--methods", "ppo,best_of_n", "--run_dir", str(tmp_path / "run"), "--results", str(tmp_path / "results")]
    report = suite.main(args)
    assert list(report["table"]) == ["detailed", "plain"]
    for pref, row in report["table"].items():
        assert 0 <= row["reward_accuracy"] <= 1
        for method in ("ppo", "best_of_n"):
            cell = row["cells"][method]
            lo, hi = cell["ci95"]
            assert 0 <= lo <= cell["win_rate"] <= hi <= 1 and cell["n"] == 4
            assert cell["wins"] + cell["ties"] + cell["losses"] == 4
        # PPO logged its gold score (the preference's rule) beside the reward model's.
        rows = [json.loads(x) for x in (tmp_path / "run" / pref / "ppo" / "metrics.jsonl").read_text().splitlines()]
        assert all("reward/gold" in r and "length/ratio" in r for r in rows)
        assert json.loads((tmp_path / "run" / pref / "ppo" / "rlhf_config.json").read_text())["gold_preference"] == pref
        assert row["cells"]["ppo"]["train"]["gold_first_tenth"] is not None
        assert pref in report["learnability"] and 0 <= report["learnability"][pref]["usable_rate"] <= 1
    # Every reward model is also scored on candidates for training prompts no label saw, ranked by the rule.
    labelled = {json.loads(x)["id"] for x in (tmp_path / "run" / "shared" / "sample" / "candidates.jsonl").read_text().splitlines()}
    unseen = [json.loads(x) for x in (tmp_path / "run" / "shared" / "rm_eval" / "candidates.jsonl").read_text().splitlines()]
    assert len(unseen) == suite.RM_EVAL_PROMPTS["tiny"] and not labelled & {r["id"] for r in unseen}
    for pref, row in report["table"].items():
        u = row["reward_unseen"]
        stored = json.loads((tmp_path / "run" / pref / "rm_eval" / "reward" / "reward_eval.json").read_text())
        assert u["pairs"] == stored["pairs"] > 0 and u["accuracy"] == stored["accuracy"]
        assert u["ci95"][0] <= u["accuracy"] <= u["ci95"][1]
        assert u["model_prefers_longer"] == stored["length_bias"]["model_prefers_longer"]
    # SFT and sampling ran once, shared by both preferences.
    assert (tmp_path / "run" / "plain" / "sft").resolve() == (tmp_path / "run" / "shared" / "sft").resolve()
    md = (tmp_path / "results" / "preference_suite_tiny.md").read_text()
    assert "| `detailed` |" in md and "| `plain` |" in md and "ppo | best_of_n" in md and "RM acc unseen" in md
    assert f"({report['table']['plain']['reward_unseen']['pairs']} pairs)" in md
    assert json.loads((tmp_path / "results" / "preference_suite_tiny.json").read_text())["methods"] == ["ppo", "best_of_n"]

    # Again: every cell is found done; nothing retrains.
    cell_file = tmp_path / "run" / "cells" / "detailed__ppo.json"
    before = cell_file.stat().st_mtime
    capsys.readouterr()
    again = suite.main(args)
    assert cell_file.stat().st_mtime == before
    assert capsys.readouterr().out.count("done in an earlier run, skipped") >= 4
    assert again["table"]["detailed"]["cells"]["ppo"] == report["table"]["detailed"]["cells"]["ppo"]

    plain_before = (tmp_path / "run" / "cells" / "plain__ppo.json").stat().st_mtime
    # --table_only: the table from the cells on disk; a method never run shows as "–" and is not trained.
    table = suite.main(args[:-4] + ["--methods", "ppo,dpo", "--results", str(tmp_path / "assembled"), "--table_only",
                                    "--run_dir", str(tmp_path / "run"), "--preferences", "detailed,plain,concise"])
    assert list(table["table"]) == ["detailed", "plain"]  # concise has no reward model: left out
    assert table["table"]["plain"]["cells"] == {"ppo": report["table"]["plain"]["cells"]["ppo"]}
    assert table["table"]["plain"]["reward_unseen"] == report["table"]["plain"]["reward_unseen"]  # read, not rerun
    assert not (tmp_path / "run" / "detailed" / "dpo").exists()
    md = (tmp_path / "assembled" / "preference_suite_tiny.md").read_text()
    assert "nothing trained" in md and "| `plain` |" in md and "| – |" in md

    # A tuning variant: its own folder, cell and column, trained with the change; the default cell stays.
    variant = suite.main(args[:-4] + ["--methods", "ppo", "--preferences", "plain", "--variant", "eos", "--set",
                                      "missing_eos_penalty=-1.0", "--run_dir", str(tmp_path / "run"),
                                      "--results", str(tmp_path / "variant")])
    cell = variant["table"]["plain"]["cells"]["ppo@eos"]
    assert cell["overrides"] == {"missing_eos_penalty": -1.0} and cell["method"] == "ppo@eos"
    config = json.loads((tmp_path / "run" / "plain" / "ppo@eos" / "rlhf_config.json").read_text())
    assert config["missing_eos_penalty"] == -1.0
    assert json.loads((tmp_path / "run" / "plain" / "ppo" / "rlhf_config.json").read_text())["missing_eos_penalty"] is None
    assert (tmp_path / "run" / "cells" / "plain__ppo.json").stat().st_mtime == plain_before
    both = suite.main(args[:-4] + ["--methods", "ppo,ppo@eos", "--preferences", "plain", "--table_only",
                                   "--run_dir", str(tmp_path / "run"), "--results", str(tmp_path / "variant")])
    assert list(both["table"]["plain"]["cells"]) == ["ppo", "ppo@eos"]

    # A reward-stage variant: its own reward model (reward@VARIANT, trained with the change) that its
    # PPO and best-of-N cells use; the default reward model is untouched and DPO is refused.
    rm_before = (tmp_path / "run" / "plain" / "reward" / "model.safetensors").stat().st_mtime
    rm = suite.main(args[:-4] + ["--methods", "ppo,best_of_n", "--preferences", "plain", "--variant", "rm", "--set",
                                 "reward.learning_rate=0.02", "--run_dir", str(tmp_path / "run"),
                                 "--results", str(tmp_path / "rm")])
    folder = tmp_path / "run" / "plain" / "reward@rm"
    assert json.loads((folder / "rlhf_config.json").read_text())["learning_rate"] == 0.02
    assert (tmp_path / "run" / "plain" / "reward" / "model.safetensors").stat().st_mtime == rm_before
    for method in ("ppo@rm", "best_of_n@rm"):
        cell = rm["table"]["plain"]["cells"][method]
        assert cell["reward_overrides"] == {"learning_rate": 0.02}
        assert cell["reward_model"]["folder"] == "reward@rm"
        assert cell["reward_model"]["accuracy"] == suite.reward_accuracy(folder)
        assert cell["reward_model"]["unseen"]["pairs"] == report["table"]["plain"]["reward_unseen"]["pairs"]
    assert (tmp_path / "run" / "plain" / "rm_eval" / "reward@rm" / "reward_eval.json").exists()
    ppo_config = json.loads((tmp_path / "run" / "plain" / "ppo@rm" / "rlhf_config.json").read_text())
    assert Path(ppo_config["reward_model"]) == folder
    assert Path(json.loads((tmp_path / "run" / "plain" / "eval_best_of_n@rm" / "rlhf_config.json").read_text())
                ["reward_model"]) == folder
    # The training run's report lists the variant's reward model once, in the reward-model table.
    assert rm["table"]["plain"]["reward_models"]["reward@rm"]["accuracy_split"] == suite.reward_accuracy(folder)
    md = (tmp_path / "rm" / "preference_suite_tiny.md").read_text()
    assert md.count("reward@rm") == 1 and "| `plain` | reward@rm | learning_rate=0.02 |" in md
    # --table_only lists every reward model scored on the unseen candidates, with what its variant changed.
    listed = suite.main(args[:-4] + ["--methods", "ppo", "--preferences", "plain", "--table_only",
                                     "--run_dir", str(tmp_path / "run"), "--results", str(tmp_path / "rm")])
    models = listed["table"]["plain"]["reward_models"]
    assert models["reward"]["changed"] == {} and models["reward@rm"]["changed"] == {"learning_rate": 0.02}
    assert models["reward@rm"]["pairs"] == models["reward"]["pairs"] > 0
    assert "| `plain` | reward@rm | learning_rate=0.02 |" in (tmp_path / "rm" / "preference_suite_tiny.md").read_text()
    with pytest.raises(SystemExit, match="dpo learns from the labels"):
        suite.main(args[:-4] + ["--methods", "dpo", "--preferences", "plain", "--variant", "rm", "--set",
                                "reward.learning_rate=0.02", "--run_dir", str(tmp_path / "run"),
                                "--results", str(tmp_path / "rm")])

    # A preference of the user's own, in a module in the working folder (not on sys.path): labelled,
    # judged and tabled under its package.module:function name, in its own folder and cell files.
    import sys

    (tmp_path / "user_rules_xyz.py").write_text("def fewest_e(prompt, completion):\n    return -completion.count('e')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    mine = suite.main(args[:-4] + ["--methods", "best_of_n", "--preferences", "user_rules_xyz:fewest_e",
                                   "--run_dir", str(tmp_path / "run"), "--results", str(tmp_path / "mine")])
    cell = mine["table"]["user_rules_xyz:fewest_e"]["cells"]["best_of_n"]
    assert 0 <= cell["win_rate"] <= 1 and cell["preference"] == "user_rules_xyz:fewest_e"
    assert (tmp_path / "run" / "cells" / "user_rules_xyz.fewest_e__best_of_n.json").exists()
    label = json.loads((tmp_path / "run" / "user_rules_xyz.fewest_e" / "label" / "rlhf_config.json").read_text())
    assert label["rankings.jsonl"]["preference"] == "user_rules_xyz:fewest_e"
    again = suite.main(args[:-4] + ["--methods", "best_of_n", "--preferences", "user_rules_xyz:fewest_e", "--table_only",
                                    "--run_dir", str(tmp_path / "run"), "--results", str(tmp_path / "mine")])
    assert again["table"]["user_rules_xyz:fewest_e"]["cells"]["best_of_n"] == cell


def test_unseen_accuracy_is_cached_until_the_reward_model_is_retrained(tmp_path, monkeypatch):
    import os
    from types import SimpleNamespace

    import rlhf.reward_eval

    def fake_reward_eval(config):  # writes what `rlhf reward-eval` writes, counts the calls
        calls.append(config.model)
        Path(config.output).mkdir(parents=True, exist_ok=True)
        results = {"accuracy": 0.75, "ci95": [0.6, 0.9], "pairs": 8, "mean_margin": 0.3,
                   "length_bias": {"length_matched_accuracy": 0.5, "model_prefers_longer": 0.25}}
        (Path(config.output) / "reward_eval.json").write_text(json.dumps(results))
        return results

    calls = []
    monkeypatch.setattr(rlhf.reward_eval, "run_reward_eval", fake_reward_eval)
    pipe = SimpleNamespace(run=tmp_path, config={"seed": 0}, section=lambda name: {"preference": "concise"})
    (tmp_path / "rm_eval").mkdir()
    (tmp_path / "rm_eval" / "rankings.jsonl").write_text("")  # labelled already
    reward = tmp_path / "reward@x"
    reward.mkdir()
    (reward / "DONE.json").write_text("{}")
    first = suite.unseen_accuracy(pipe, tmp_path / "candidates.jsonl", reward)
    assert first["accuracy"] == 0.75 and first["model_prefers_longer"] == 0.25 and first["labels_prefer_longer"] is None
    assert suite.unseen_accuracy(pipe, tmp_path / "candidates.jsonl", reward) == first and len(calls) == 1
    assert suite.cached_unseen_accuracy(tmp_path, "reward@x") == first
    later = (tmp_path / "rm_eval" / "reward@x" / "reward_eval.json").stat().st_mtime + 10
    os.utime(reward / "DONE.json", (later, later))  # retrained after it was scored
    suite.unseen_accuracy(pipe, tmp_path / "candidates.jsonl", reward)
    assert calls == [str(reward), str(reward)]
