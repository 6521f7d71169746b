"""The run report names the algorithm the ppo stage ran (rlhf/report.py)."""

import json

import pytest

from rlhf.report import write_report


@pytest.mark.parametrize("estimator, name", [("gae", "PPO"), ("grpo", "GRPO"), ("rloo", "RLOO")])
def test_report_names_the_advantage_estimator_the_ppo_stage_ran(estimator, name, tmp_path):
    ppo = tmp_path / "run" / "ppo"
    ppo.mkdir(parents=True)
    (ppo / "rlhf_config.json").write_text(json.dumps({"stage": "ppo", "advantage_estimator": estimator}))
    (ppo / "metrics.json").write_text(json.dumps({"steps": 4, "score_first_tenth": 0.1, "score_last_tenth": 0.5,
                                                  "final": {"kl/mean": 0.2}}))
    report = write_report(tmp_path / "run").read_text()
    assert f"- {name} mean score: 0.100" in report
    if estimator == "gae":
        assert "\n## PPO\n" in report and "advantage_estimator" not in report
    else:
        assert f"\n## {name} (advantage_estimator {estimator}, PPO's clipped loss)\n" in report
        assert "## PPO\n" not in report and f"reward model → {name} (→ DPO)" in report
