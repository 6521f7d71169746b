"""Simulated labelers: preferences, ties, noise and disagreement rates, and writing rankings the
way the labeling app does (a JSONL the reward stage reads, or submits to a LabelStore)."""

import json

import pytest

from rlhf.data import load_preferences
from rlhf.labelers import (
    PREFERENCES, SimulateConfig, SimulatedLabeler, concise, make_labelers, noise_for_disagreement, polite,
    ranks_from_tiers, register_preference, run_simulate, simulate, structured, tiers_from_scores,
)

SHORT = "Paris is the capital of France."                                                    # 6 words, ends
MEDIUM = "The capital of France is Paris, a city on the Seine known for its museums, its food and its long history."  # 21, ends
CUT = "The capital of France is Paris, which has been the political and cultural centre of the country for many centuries and"  # 21, cut off
TOO_SHORT = "Paris."                                                                          # 1 word


def test_concise_prefers_finished_then_shorter_in_buckets():
    # Worked by hand: 3 - 6 // 8 = 3; 3 - 21 // 8 = 1; 0 - 21 // 8 = -2; too short counts as bucket 2: 3 - 2 = 1.
    assert [concise("", c) for c in (SHORT, MEDIUM, CUT, TOO_SHORT, "")] == [3.0, 1.0, -2.0, 1.0, -10.0]
    lab = SimulatedLabeler("concise", noise=0.0)
    assert lab.rank("q", [CUT, MEDIUM, SHORT, TOO_SHORT]) == [[2], [1, 3], [0]]  # a tie: MEDIUM = TOO_SHORT
    # Lengths in one 8-word bucket tie; a bucket apart they do not.
    assert lab.rank("q", ["One two three four five.", "One two three four five six seven."]) == [[0, 1]]
    assert lab.rank("q", ["One two three four five.", "One two three four five six seven eight nine."]) == [[0], [1]]


def test_polite_and_structured_preferences():
    assert polite("", "Sure! I am happy to help, please ask. Thank you!") == 4.0  # 6 markers, capped at 4
    assert polite("", "No.") == 0.0
    assert structured("", "Tips:\n- sleep\n* eat\n1. walk\n2) run\n-nospace") == 4.0
    lab = SimulatedLabeler("polite", noise=0.0)
    assert lab.rank("q", ["Here it is.", "Glad to help!", "Happy to help, thank you!"]) == [[2], [1], [0]]


def test_tiers_ranks_and_tolerance():
    assert tiers_from_scores([3, 1, 3, 0]) == [[0, 2], [1], [3]]
    # Tolerance is measured from a tier's best, so 1.0, 0.6, 0.2 do not chain into one tier.
    assert tiers_from_scores([1.0, 0.6, 0.2], tolerance=0.5) == [[0, 1], [2]]
    assert ranks_from_tiers([[2], [1, 3], [0]], 4) == [3, 2, 1, 2]


def test_custom_preferences_plug_in_by_registry_callable_or_import_path():
    register_preference("fewest_e", lambda prompt, text: -text.count("e"))
    try:
        assert SimulatedLabeler("fewest_e", noise=0).rank("q", ["eee", "a", "e"]) == [[1], [2], [0]]
    finally:
        PREFERENCES.pop("fewest_e")
    by_callable = SimulatedLabeler(lambda prompt, text: len(text), noise=0)
    assert by_callable.rank("q", ["ab", "abc"]) == [[1], [0]]
    assert SimulatedLabeler("rlhf.labelers:structured", noise=0).score_fn is structured
    with pytest.raises(ValueError, match="unknown preference 'nope'"):
        SimulatedLabeler("nope")


def test_judge_outcomes():
    lab = SimulatedLabeler("concise", noise=0.0)
    assert lab.judge("q", SHORT, CUT) == 1.0
    assert lab.judge("q", CUT, SHORT) == 0.0
    assert lab.judge("q", MEDIUM, TOO_SHORT) == 0.5


def test_noise_rate_is_roughly_as_set():
    completions = [SHORT, MEDIUM, CUT, ""]  # four distinct tiers
    clean = SimulatedLabeler(noise=0.0).rank("q", completions)
    assert clean == [[0], [1], [2], [3]]
    for noise in (0.0, 0.2):
        lab = SimulatedLabeler(noise=noise, seed=7)
        slips = sum(lab.rank("q", completions) != clean for _ in range(3000)) / 3000
        assert abs(slips - noise) < 0.025, (noise, slips)
    # A slip swaps neighbouring tiers only: the worst never jumps to first.
    lab = SimulatedLabeler(noise=1.0, seed=1)
    assert all(lab.rank("q", completions)[0] != [3] for _ in range(200))


def test_labelers_disagree_at_roughly_the_set_rate():
    assert noise_for_disagreement(0.0) == 0.0
    completions = [SHORT, MEDIUM, CUT, ""]
    for target in (0.1, 0.3):
        one, two = make_labelers(2, disagreement=target, seed=3)
        assert one.seed != two.seed
        rate = sum(one.rank("q", completions) != two.rank("q", completions) for _ in range(3000)) / 3000
        # Expected a bit under the target: both slipping the same way agree (p^2 / 3 for 3 swaps).
        assert target - 0.04 < rate < target + 0.02, (target, rate)


def _candidates(n=6):
    pool = [SHORT, MEDIUM, CUT, TOO_SHORT, "Sure! Happy to help.", "- one\n- two"]
    return [{"id": f"i{i}", "prompt": f"question {i}", "completions": [pool[(i + j) % 6] for j in range(4)], "flags": []}
            for i in range(n)]


def test_simulate_writes_ranking_records_the_reward_stage_reads(tmp_path):
    labelers = make_labelers(3, noise=0.0)
    items = _candidates() + [{"id": "empty", "prompt": "q", "completions": ["", "x"], "flags": ["empty"]}]
    rows = simulate(items, labelers, labels_per_item=2)
    assert len(rows) == 12  # 6 items x 2 labels; the item with an empty completion is skipped
    for i in range(6):
        who = [r["labeler"] for r in rows if r["item_id"] == f"i{i}"]
        assert len(who) == 2 and len(set(who)) == 2
    assert all(r["guideline_version"] == "simulated" and r["flags"] == [] and r["seconds"] > 5 for r in rows)
    path = tmp_path / "rankings.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    rankings, bad = load_preferences(path)
    assert len(rankings) == 12 and not bad
    assert rankings[0].ranking == tiers_from_scores([concise("", c) for c in items[0]["completions"]])


def test_run_simulate_cli_config_writes_rankings_and_config(tmp_path):
    cands = tmp_path / "cands.jsonl"
    cands.write_text("".join(json.dumps(c) + "\n" for c in _candidates()))
    out = run_simulate(SimulateConfig(candidates=str(cands), output=str(tmp_path / "r.jsonl"), num_labelers=2,
                                      labels_per_item=2, preference="structured", noise=0.0))
    rankings, _ = load_preferences(out)
    assert len(rankings) == 12
    resolved = json.loads((tmp_path / "rlhf_config.json").read_text())["r.jsonl"]
    assert resolved["stage"] == "simulate" and resolved["preference"] == "structured"
    with pytest.raises(ValueError, match="labels_per_item"):
        SimulateConfig(candidates=str(cands), num_labelers=2, labels_per_item=3)
    with pytest.raises(ValueError, match="--candidates"):
        SimulateConfig()


def test_simulated_labels_go_through_the_labeling_store(tmp_path):
    """next_item -> submit dense ranks over the DISPLAYED order, as people do; the store maps them
    back, so with no noise every stored ranking equals the preference's ranking in original order."""
    from rlhf.store import LabelStore

    cands = tmp_path / "cands.jsonl"
    items = _candidates()
    cands.write_text("".join(json.dumps(c) + "\n" for c in items))
    db, out = tmp_path / "labels.db", tmp_path / "exported.jsonl"
    run_simulate(SimulateConfig(candidates=str(cands), db=str(db), output=str(out), num_labelers=3,
                                labels_per_item=2, noise=0.0, seed=5))
    with LabelStore(db, labels_per_item=2) as store:
        assert store.label_count() == 12
        rows = store.rankings()
        assert store.progress()["complete_items"] == 6
    by_id = {c["id"]: c for c in items}
    for row in rows:
        expected = tiers_from_scores([concise("", c) for c in by_id[row["item_id"]]["completions"]])
        assert row["completions"] == by_id[row["item_id"]]["completions"]
        assert [sorted(t) for t in row["ranking"]] == [sorted(t) for t in expected]
    assert {r["labeler"] for r in rows} == {"sim-0", "sim-1", "sim-2"}
    assert len(load_preferences(out)[0]) == 12
