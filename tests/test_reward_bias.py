"""Length-bias figures on hand-built scores and lengths, and the human-like pair generator."""

import math

import pytest
import torch

from rlhf.reward.bias import (completion_token_lengths, format_length_bias, length_bias, length_matched, pearson,
                              ranks, spearman)
from rlhf.reward.synthetic import human_like_pairs


def test_a_model_that_always_prefers_the_longer_answer():
    # label chose the longer answer in pairs 0 and 1, the shorter in pairs 2 and 3
    lc, lr = [20, 30, 10, 12], [10, 15, 40, 24]
    score = lambda n: n / 10  # noqa: E731  score = length
    bias = length_bias([score(n) for n in lc], [score(n) for n in lr], lc, lr)
    assert bias["pairs"] == 4 and bias["unequal_length_pairs"] == 4
    assert bias["model_prefers_longer"] == 1.0
    assert bias["labels_prefer_longer"] == 0.5
    assert bias["accuracy"] == 0.5
    assert bias["accuracy_chosen_longer"] == 1.0 and bias["accuracy_chosen_shorter"] == 0.0
    assert bias["pearson"] == pytest.approx(1.0) and bias["spearman"] == pytest.approx(1.0)
    assert bias["length_matched_pairs"] == 0 and bias["length_matched_accuracy"] is None


def test_a_content_model_and_length_matched_pairs():
    # chosen scores 1, rejected 0 whatever the length: no preference for length
    lc, lr = [100, 50, 10, 30, 7], [95, 60, 10, 10, 9]
    bias = length_bias([1.0] * 5, [0.0] * 5, lc, lr)
    assert bias["accuracy"] == 1.0
    # pair 2 has equal lengths: out of the longer/shorter shares
    assert bias["unequal_length_pairs"] == 4
    assert bias["labels_prefer_longer"] == 0.5 and bias["model_prefers_longer"] == 0.5
    # matched: 100 vs 95 (5 <= 10% of 100), 10 vs 10, 7 vs 9 (2 tokens); not 50 vs 60 (10 > 6), 30 vs 10
    assert length_matched(lc, lr).tolist() == [True, False, True, False, True]
    assert bias["length_matched_pairs"] == 3 and bias["length_matched_accuracy"] == 1.0


def test_a_wrong_pair_among_matched_ones_and_a_tie_is_wrong():
    bias = length_bias(torch.tensor([0.5, 2.0, 1.0]), torch.tensor([0.5, 1.0, 3.0]), [10, 10, 10], [10, 10, 11])
    assert bias["accuracy"] == pytest.approx(1 / 3)  # equal scores count wrong, as TRL counts them
    assert bias["length_matched_accuracy"] == pytest.approx(1 / 3)
    assert bias["unequal_length_pairs"] == 1 and bias["model_prefers_longer"] == 1.0


def test_correlations_by_hand():
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    # x = [1, 2, 3, 4], y = [1, 3, 2, 4]: cov 1.0 / var 1.25 -> 0.8
    assert pearson([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert ranks([3, 1, 3, 2]).tolist() == [3.5, 1.0, 3.5, 2.0]
    # monotone but not linear: Spearman 1, Pearson below 1
    x, y = [1, 2, 3, 4, 5], [1, 2, 3, 4, 100]
    assert spearman(x, y) == pytest.approx(1.0) and pearson(x, y) < 0.8
    assert pearson([1, 1, 1], [1, 2, 3]) is None and spearman([5], [1]) is None


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="sizes differ"):
        length_bias([1.0, 2.0], [0.0], [1, 2], [1, 2])
    with pytest.raises(ValueError, match="non-finite"):
        length_bias([math.nan], [0.0], [1], [2])


def test_empty_input_gives_none_not_nan():
    bias = length_bias([], [], [], [])
    assert bias["pairs"] == 0 and bias["accuracy"] is None and bias["pearson"] is None
    assert "n/a" in format_length_bias(bias)


def test_console_line():
    line = format_length_bias(length_bias([2.0, 1.0], [1.0, 2.0], [20, 10], [10, 20]))
    assert "prefers the longer answer in 100% of pairs (labels 50%)" in line and "Spearman +1.00" in line


def test_completion_token_lengths_counts_the_answer_alone():
    from rlhf.models import tiny_tokenizer

    tok = tiny_tokenizer()
    n = completion_token_lengths(tok, ["Paris.", "The capital of France is Paris.",
                                       [{"role": "assistant", "content": "The capital of France is Paris."}]])
    assert n[0] < n[1] == n[2]


def test_human_like_pairs_balance_length_and_split_facts():
    train, test = human_like_pairs(100, 60, seed=3)
    assert len(train) == 100 and len(test) == 60
    for side, n in ((train, 100), (test, 60)):
        assert sum(len(p["chosen"]) > len(p["rejected"]) for p in side) == n // 2  # exactly half
        assert all(p["chosen"] != p["rejected"] for p in side)
    assert not {p["fact"] for p in train} & {p["fact"] for p in test}
    assert not {p["prompt"] for p in train} & {p["prompt"] for p in test}
    biased, _ = human_like_pairs(100, 10, seed=3, longer_chosen=0.3)
    assert sum(len(p["chosen"]) > len(p["rejected"]) for p in biased) == 30
    assert human_like_pairs(100, 60, seed=3) == (train, test)  # seeded
    with pytest.raises(ValueError, match="facts"):
        human_like_pairs(300, 100)


def test_reward_stage_reports_length_bias(tmp_path, capsys):
    """metrics.json (train and held-out), the console line and the run report carry the figures."""
    import json

    from rlhf.data import write_jsonl
    from rlhf.models import save_tiny_model
    from rlhf.report import _reward
    from rlhf.reward import RewardConfig, train_reward

    train, test = human_like_pairs(24, 8, seed=0)
    rows = [{k: p[k] for k in ("prompt", "chosen", "rejected")} for p in train + test]
    data = write_jsonl(tmp_path / "pairs.jsonl", rows)
    out = tmp_path / "run" / "reward"
    config = RewardConfig(data=str(data), output_dir=str(out), model=str(save_tiny_model(tmp_path / "tiny")),
                          train="full", learning_rate=1e-3, batch_size=8, eval_fraction=0.25, max_length=96,
                          calibration_data="none")
    train_reward(config)
    saved = json.loads((out / "metrics.json").read_text())
    for split in ("train", "eval"):
        bias = saved[split]["length_bias"]
        assert bias["pairs"] == saved[split]["pairs"]
        assert bias["accuracy"] == pytest.approx(saved[split]["accuracy"])
        assert 0.0 <= bias["labels_prefer_longer"] <= 1.0 and -1.0 <= bias["spearman"] <= 1.0
    assert "[rlhf reward] length bias (held-out): prefers the longer answer" in capsys.readouterr().out
    report = "\n".join(_reward(tmp_path / "run"))
    assert "held-out: prefers the longer answer (labels chose it)" in report
    assert "train: accuracy on length-matched pairs" in report


def test_default_batch_holds_about_eight_pairs():
    from rlhf.data import Ranking
    from rlhf.reward.synthetic import synthetic_rankings
    from rlhf.reward.trainer import auto_batch_size

    pairs = [Ranking(prompt=f"p{i}", completions=["a", "b"], ranking=[[0], [1]]) for i in range(5)]
    assert auto_batch_size(pairs) == 8
    assert auto_batch_size(synthetic_rankings(4, k=4, kind="graded")) == 1  # 6 pairs each
    three_pairs = [Ranking(prompt="p", completions=["a", "b", "c"], ranking=[[0], [1], [2]])]
    assert auto_batch_size(three_pairs) == 3
