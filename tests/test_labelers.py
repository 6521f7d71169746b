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


# --- the preference suite: each rule on hand-written answers -------------------------------------

from rlhf.labelers import (  # noqa: E402
    SUITE, content_words, detailed, learnability, line_breaks, no_markdown, numeric, on_topic, plain, prompt_text,
    short_sentences,
)

AIRPLANE = "How do airplanes stay in the air?"
AIRPLANE_CHAT = [{"role": "system", "content": "You are a helpful pilot."}, {"role": "user", "content": AIRPLANE}]


def ranked(preference, prompt, answers):
    return SimulatedLabeler(preference, noise=0.0).rank(prompt, answers)


def test_suite_is_registered_and_mixes_directions():
    assert len(SUITE) >= 6 and all(name in PREFERENCES for name in SUITE)
    # Nothing rewards brevity by construction: a longer answer wins under detailed, and under
    # on_topic, numeric and structured a longer answer that adds terms, numbers or items wins too.
    longer = MEDIUM
    assert detailed("q", longer) > detailed("q", SHORT) and concise("q", longer) < concise("q", SHORT)


def test_prompt_text_reads_strings_and_conversations():
    assert prompt_text(AIRPLANE) == AIRPLANE
    assert prompt_text(AIRPLANE_CHAT) == AIRPLANE
    assert prompt_text(AIRPLANE_CHAT + [{"role": "assistant", "content": "Wings."}]) == AIRPLANE  # last user turn
    assert prompt_text([]) == "" and prompt_text(None) == ""
    # Every suite rule accepts either form and scores them the same.
    for name in SUITE:
        fn = PREFERENCES[name]
        assert fn(AIRPLANE, MEDIUM) == fn(AIRPLANE_CHAT, MEDIUM), name


def test_detailed_prefers_longer_and_ties_within_a_bucket():
    # Worked by hand: 1 // 6 + 1 = 1; 6 // 6 + 1 = 2; 21 // 6 + 1 = 4; cut 21 words: 3; "": 0.
    assert [detailed("", c) for c in (TOO_SHORT, SHORT, MEDIUM, CUT, "")] == [1.0, 2.0, 4.0, 3.0, 0.0]
    assert ranked("detailed", "q", [SHORT, MEDIUM, CUT]) == [[1], [2], [0]]
    assert ranked("detailed", "q", ["One two three four five six seven.", "One two three four five six seven eight."]) == [[0, 1]]


def test_on_topic_counts_the_questions_own_words():
    assert content_words(AIRPLANE) == {"airplane", "stay"}  # "how", "the" are stop words, "air" under 4 letters
    both = "Airplanes stay up because their wings push air down."
    one = "An airplane flies because its wings push air down."
    none = "It is a matter of physics."
    assert [on_topic(AIRPLANE, c) for c in (both, one, none)] == [2.0, 1.0, 0.0]
    assert ranked("on_topic", AIRPLANE_CHAT, [none, both, one]) == [[1], [2], [0]]
    # Same coverage, different phrasing: a tie.
    assert ranked("on_topic", AIRPLANE, [one, "The airplane wing lifts it."]) == [[0, 1]]


def test_numeric_counts_distinct_numbers_capped():
    assert numeric("", "Boil for 10 minutes at 100 C.") == 2.0
    assert numeric("", "Boil it for a while.") == 0.0
    assert numeric("", "10, 10 and 10 again.") == 1.0  # distinct numbers only
    assert numeric("", "In 1990, 3.5 kg, 1,000 m, 7 days and 12 hours.") == 4.0  # 5 numbers, capped at 4
    assert numeric("", "Version2 and x3") == 0.0  # digits glued to words are not quantities
    assert ranked("numeric", "q", ["Boil it.", "Boil 10 minutes.", "Boil 10 minutes at 100 C."]) == [[2], [1], [0]]


def test_plain_prefers_short_words_whatever_the_length():
    assert plain("", "It is a big dog.") == -2.0  # 11 letters / 5 words = 2.2 -> -2.0
    assert plain("", "Photosynthesis generates carbohydrates.") == -12.0  # 36 / 3
    assert plain("", "") == -10.0 and plain("", "42") == -10.0
    short_fancy, long_plain = "Utilise sophisticated methodology.", "Use a plan that is easy to read and you can do it."
    assert plain("", long_plain) > plain("", short_fancy)
    assert ranked("plain", "q", ["The cat sat.", "The dog sat."]) == [[0, 1]]


def test_short_sentences_prefers_short_sentences_not_short_answers():
    assert short_sentences("", "It rains. Take a coat.") == 0.0  # 5 words / 2 sentences = 2.5 -> 2.5 // 3 = 0
    assert short_sentences("", "When it rains you should take a coat with you.") == -3.0  # 10 // 3 = 3
    assert short_sentences("", "no full stop here") == -20.0
    many_short = "Mix flour and milk. Add two eggs. Stir well. Heat the pan. Pour a ladle. Flip it once."
    assert short_sentences("", many_short) > short_sentences("", "Mix the flour, milk and eggs and then fry them.")
    assert ranked("short_sentences", "q", ["Stir it. Serve.", "Heat it up. Serve now."]) == [[0, 1]]  # 1.5, 2.5 words: bucket 0


def test_line_breaks_counts_non_empty_lines():
    assert line_breaks("", "Mix.\nBake.\n\nServe.") == 3.0
    assert line_breaks("", "One paragraph only.") == 1.0
    assert line_breaks("", "\n".join("step" for _ in range(9))) == 6.0  # capped
    assert ranked("line_breaks", "q", ["a b c", "a\nb", "a\nb\nc"]) == [[2], [1], [0]]


def test_no_markdown_prefers_prose():
    assert no_markdown("", "Plain prose answer.") == 0.0
    assert no_markdown("", "**Bold** and `code`\n- item\n# Head") == -6.0  # 2 bold + 2 backticks + bullet + heading
    assert no_markdown("", "") == -7.0
    assert ranked("no_markdown", "q", ["- a\n- b", "A and b.", "**A** and b."]) == [[1], [0, 2]]


def test_learnability_counts_usable_rankings_and_strict_pairs():
    rows = [{"prompt": "q", "completions": [SHORT, MEDIUM, CUT, TOO_SHORT]},   # concise tiers [0] [1,3] [2]: 5 of 6 pairs strict
            {"prompt": "q", "completions": ["One two three four.", "Five six seven eight.", "a b c d.", "w x y z."]}]  # one tie
    m = learnability(rows, "concise")
    assert m == {"rows": 2, "usable_rate": 0.5, "single_tie_rate": 0.5, "strict_pair_rate": 5 / 12, "mean_tiers": 2.0}
    with pytest.raises(ValueError, match="at least one"):
        learnability([], "concise")
