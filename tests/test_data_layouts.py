"""Published preference and demonstration layouts read as published, or refused naming what is
supported: scores beside chosen/rejected, CSV cells holding message lists, unsupported layouts."""

from __future__ import annotations

import pytest

from rlhf.data import DataError, load_preferences, write_jsonl


def test_scores_beside_a_pair_are_read_equal_is_a_tie_and_swapped_is_a_bad_row(tmp_path):
    """UltraFeedback-binarized holds rows whose chosen and rejected scored the same: they were read
    as a preference (chosen > rejected), and a chosen scored below its rejected was trained as
    preferred too, unless margin_from_scores was on. Scores are now read whenever a row has them."""
    rows = [{"prompt": "Hi", "chosen": "Ahoy", "rejected": "Yo", "score_chosen": 8.0, "score_rejected": 3.0},
            {"prompt": "Hey", "chosen": "Ahoy", "rejected": "Yo", "score_chosen": 5.0, "score_rejected": 5.0},
            {"prompt": "Yo", "chosen": "Ahoy", "rejected": "Yo", "score_chosen": 2.0, "score_rejected": 7.0},
            {"prompt": "Oi", "chosen": "Ahoy", "rejected": "Yo", "score_chosen": "high", "score_rejected": 1.0}]
    path = write_jsonl(tmp_path / "uf.jsonl", rows)
    for margins in (False, True):
        kept, bad = load_preferences(path, skip_bad=True, margin_from_scores=margins)
        assert [r.ranking for r in kept] == [[[0], [1]], [[0, 1]]]
        assert [r.pairs() for r in kept][1] == []  # a tie: no pair to train on
        assert [(e.row, e.field) for e in bad] == [(3, "score_chosen"), (4, "score_chosen")]
        assert kept[0].margin == (5.0 if margins else None)
    with pytest.raises(DataError, match=r"row 3, field 'score_chosen': is 2, below score_rejected \(7\)"):
        load_preferences(path)
