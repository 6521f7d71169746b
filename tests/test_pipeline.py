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
    assert "gold score (concise), step 0 → 1" in report  # DPO's gold view: on, as labels are simulated
    for png in ("sft/plots/loss.png", "reward/plots/accuracy.png", "reward/plots/loss.png", "ppo/plots/reward.png",
                "ppo/plots/kl.png", "ppo/plots/response_length.png", "dpo/plots/gold_vs_proxy_steps.png"):
        assert (run / png).stat().st_size > 1000, png
        assert f"({png})" in report, png
    assert (run / "pipeline.yaml").exists() and "finished" in (run / "pipeline.log").read_text()

    # A re-run finds every stage done and skips it.
    before = {stage: (run / stage / "DONE.json").stat().st_mtime for stage in STAGES}
    run_pipeline(path)
    assert before == {stage: (run / stage / "DONE.json").stat().st_mtime for stage in STAGES}
    assert (run / "pipeline.log").read_text().count("done in an earlier run, skipped") == len(STAGES)


def test_a_stage_the_pipeline_reruns_continues_its_own_checkpoints():
    """A pipeline rerun after a stop continues a stage stopped mid-training (resume on unless the
    section turns it off); a stage's own CLI refuses to start over such checkpoints instead."""
    from rlhf.pipeline import build_config
    from rlhf.ppo import PPOConfig
    from rlhf.sample import SampleConfig
    from rlhf.sft import SFTConfig

    assert build_config(SFTConfig, "sft", {}, {}).resume is True
    assert build_config(PPOConfig, "ppo", {}, {"resume": False}).resume is False
    assert not hasattr(build_config(SampleConfig, "sample", {}, {}), "resume")
    assert SFTConfig().resume is False  # the CLI's default is unchanged


def test_unknown_stage_field_is_named(tmp_path, tiny_model_dir):
    config = tiny_config(tmp_path / "run", tiny_model_dir)
    config["sft"]["adaptor"] = "lora"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(PipelineError, match=r"stage 'sft': unknown field\(s\) \['adaptor'\]"):
        run_pipeline(path)
    assert not (tmp_path / "run").exists()  # refused before anything is made


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
    from rlhf.stages import split_pipeline_keys

    for name in ("examples/quickstart.yaml", "examples/gpu.yaml"):
        config = load_pipeline_config(name)
        for stage in KNOWN:
            section, _ = split_pipeline_keys(stage, dict(config.get(stage) or {}))
            cls = stage_config_class(stage, config.get("label_mode", "simulated"))
            unknown = set(section) - {f.name for f in dataclasses.fields(cls)}
            assert not unknown, (name, stage, unknown)


# --- label_mode: app -----------------------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _app_pipeline(tmp_path, **label):
    """A pipeline whose sample stage is done (3 items), labeling through the app."""
    from rlhf.data import write_jsonl
    from rlhf.pipeline import Pipeline

    run = tmp_path / "run"
    items = [{"id": f"q{i}", "prompt": f"question {i}", "completions": [f"answer {i}.{j}" for j in range(3)]}
             for i in range(3)]
    write_jsonl(run / "sample" / "candidates.jsonl", items)
    users = tmp_path / "users.csv"
    users.write_text("admin,pw-admin,admin\nalice,pw-alice\n")
    pipeline = Pipeline({"run_dir": str(run), "label_mode": "app",
                         "label": {"port": _free_port(), "users": str(users), **label}})
    pipeline.poll_seconds = 0.05
    return pipeline, run


def _run_label_stage(pipeline, run):
    import threading

    out = run / "label"
    out.mkdir(parents=True, exist_ok=True)
    errors = []

    def target():
        try:
            pipeline.stage_label(out)
        except BaseException as err:  # surfaced by the test, not lost in the thread
            errors.append(err)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, errors


def _log_has(run, text: str) -> bool:
    log = run / "pipeline.log"
    return log.exists() and text in log.read_text()


def _wait_for(predicate, seconds=30.0):
    import time

    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_app_label_step_continues_once_every_label_is_in(tmp_path):
    from rlhf.store import LabelStore
    from rlhf.labelers import SimulatedLabeler, simulate_into_store

    pipeline, run = _app_pipeline(tmp_path)
    thread, errors = _run_label_stage(pipeline, run)
    assert _wait_for(lambda: _log_has(run, "labels in: 0/3"))
    assert thread.is_alive()  # nothing labeled yet: the pipeline waits
    labelers = LabelStore(run / "label" / "labels.db")  # people's side, its own connection
    assert simulate_into_store(labelers, [SimulatedLabeler("concise", noise=0.0, name="alice")]) == 3
    thread.join(30)
    assert not thread.is_alive() and not errors, errors
    rows = [json.loads(line) for line in (run / "label" / "rankings.jsonl").read_text().splitlines()]
    assert sorted(r["item_id"] for r in rows) == ["q0", "q1", "q2"] and {r["labeler"] for r in rows} == {"alice"}
    log = (run / "pipeline.log").read_text()
    assert "labels in: 0/3" in log and "labels in: 3/3" in log and "exported 3 rankings" in log
    labelers.close()


def test_app_label_step_ends_when_an_admin_exports(tmp_path):
    import importlib.util
    from pathlib import Path

    from rlhf.store import LabelStore
    from rlhf.labelers import SimulatedLabeler, simulate_into_store

    spec = importlib.util.spec_from_file_location(
        "label_load", Path(__file__).resolve().parents[1] / "benchmarks" / "label_load.py")
    label_load = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(label_load)

    pipeline, run = _app_pipeline(tmp_path, target_labels=100)
    thread, errors = _run_label_stage(pipeline, run)
    assert _wait_for(lambda: _log_has(run, "labels in: 0/100"))
    store = LabelStore(run / "label" / "labels.db", labels_per_item=1)
    simulate_into_store(store, [SimulatedLabeler("concise", noise=0.0, name="alice")])
    assert _wait_for(lambda: _log_has(run, "labels in: 3/100"))
    assert thread.is_alive()  # 3 of 100: still waiting

    port = pipeline.section("label")["port"]
    admin = label_load.PageSession(f"http://127.0.0.1:{port}")
    assert admin.login("admin", "pw-admin")
    admin.call("load")
    assert admin.call("export_rankings", [False])["ok"]
    admin.close()
    thread.join(30)
    assert not thread.is_alive() and not errors, errors
    assert "admin exported 3 rankings rows" in (run / "pipeline.log").read_text()
    assert len((run / "label" / "rankings.jsonl").read_text().splitlines()) == 3
    store.close()


@pytest.mark.parametrize("stage, module, entry, section", [("ppo", "rlhf.ppo", "run_ppo", {"steps": 1}),
                                                           ("dpo", "rlhf.dpo", "run_dpo", {"max_steps": 1})])
@pytest.mark.parametrize("label_mode, expected", [("simulated", "numeric"), ("app", None)])
def test_ppo_and_dpo_get_the_simulated_preference_as_gold_only_when_labels_are_simulated(
        tmp_path, monkeypatch, stage, module, entry, section, label_mode, expected):
    """With simulated labels the pipeline hands their preference to PPO (reward/gold is logged) and to
    DPO (gold.jsonl); with people labeling there is no gold rule and none is set."""
    import importlib

    from rlhf.pipeline import Pipeline

    seen = {}
    monkeypatch.setattr(importlib.import_module(module), entry, lambda config: seen.setdefault("config", config))
    pipe = Pipeline({"run_dir": str(tmp_path / "run"), "label_mode": label_mode, "label": {"preference": "numeric"},
                     stage: section})
    getattr(pipe, f"stage_{stage}")(tmp_path / "run" / stage)
    assert seen["config"].gold_preference == expected
    assert all(getattr(seen["config"], k) == v for k, v in section.items())


def test_a_rule_reward_replaces_the_runs_reward_model_in_ppo(tmp_path, monkeypatch):
    """ppo.reward_preference set: the PPO stage gets no reward_model default (the rule is the reward;
    the trainer refuses both); without it the run's reward model is the reward."""
    import rlhf.ppo
    from rlhf.pipeline import Pipeline, PipelineError

    seen = []
    monkeypatch.setattr(rlhf.ppo, "run_ppo", seen.append)
    for section in ({"reward_preference": "short_sentences"}, {}):
        pipe = Pipeline({"run_dir": str(tmp_path / "run"), "ppo": {"steps": 1, **section}})
        pipe.stage_ppo(tmp_path / "run" / "ppo")
    assert [(c.reward_preference, c.reward_model) for c in seen] == [
        ("short_sentences", None), (None, str(tmp_path / "run" / "reward"))]
    for bad in ({"critic": "reward"}, {"reward_model": "elsewhere"}):  # refused before SFT, not at the PPO stage
        pipe = Pipeline({"run_dir": str(tmp_path / "run2"), "ppo": {"reward_preference": "concise", **bad}})
        with pytest.raises(PipelineError, match="stage 'ppo': .*reward_preference"):
            pipe.validate()
    assert not (tmp_path / "run2" / "sft").exists()


def _finished_run(tmp_path, config, done):
    """A run folder whose stages all hold DONE.json as `done(pipe, stage)` writes it, and the
    config's pipeline.yaml; no stage is run."""
    from rlhf.pipeline import Pipeline

    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    pipe = Pipeline(load_pipeline_config(path))
    for stage in STAGES:
        (pipe.run / stage).mkdir(parents=True, exist_ok=True)
        (pipe.run / stage / "DONE.json").write_text(json.dumps(done(pipe, stage)))
    (pipe.run / "pipeline.yaml").write_text(path.read_text())
    return path, pipe.run


def test_rerun_with_a_changed_stage_setting_stops_before_anything_runs(tmp_path, capsys):
    from rlhf.pipeline import pipeline_main

    config = tiny_config(tmp_path / "run", tmp_path / "no-model")
    config["ppo"]["steps"] = 1
    path, run = _finished_run(tmp_path, config, lambda pipe, stage: {"stage": stage, "seconds": 1.0,
                                                                     "settings": pipe.stage_settings(stage)})
    old_yaml = (run / "pipeline.yaml").read_text()
    config["ppo"]["steps"] = 2
    config["eval"]["limit"] = 5  # a later stage changed too: the earliest changed stage is named
    path.write_text(yaml.safe_dump(config))

    assert pipeline_main([str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "stage 'ppo'" in err and "steps: 1 -> 2" in err and "delete" in err and "new run_dir" in err
    assert (run / "pipeline.yaml").read_text() == old_yaml  # not overwritten by the refused config

    # An earlier stage's change is caught first (the later stages depend on it).
    config["sft"]["max_steps"] = 3
    path.write_text(yaml.safe_dump(config))
    assert pipeline_main([str(path)]) == 2
    assert "stage 'sft'" in (err := capsys.readouterr().err) and "max_steps: 2 -> 3" in err


def test_done_json_without_settings_is_still_skipped_with_a_note(tmp_path):
    from rlhf.pipeline import Pipeline

    config = tiny_config(tmp_path / "run", tmp_path / "no-model")
    path, run = _finished_run(tmp_path, config, lambda pipe, stage: {"stage": stage, "seconds": 1.0})
    pipe = Pipeline(load_pipeline_config(path))
    assert pipe.run_stage("ppo") is None
    assert "could not be compared" in (run / "pipeline.log").read_text()
