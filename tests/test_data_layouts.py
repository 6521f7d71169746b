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


def _csv(path, rows):
    import pandas as pd

    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_csv_cells_holding_message_lists_are_read_as_messages_and_pandas_notation_is_refused(tmp_path):
    """A CSV cell is text, so a conversational file saved as CSV holds its message lists as JSON
    text. They were read as that text: an implicit row's "prompt" became the JSON up to where the
    two answers differ, and an explicit row's answers the JSON of a message."""
    import json

    from rlhf.data import load_demonstrations, load_prompts

    user, answer = {"role": "user", "content": "Hi"}, lambda t: [{"role": "assistant", "content": t}]  # noqa: E731
    implicit = _csv(tmp_path / "implicit.csv", [{"chosen": json.dumps([user] + answer("Ahoy")),
                                                 "rejected": json.dumps([user] + answer("Go away"))}])
    explicit = _csv(tmp_path / "explicit.csv", [{"prompt": json.dumps([{"role": "system", "content": "Be a pirate"}, user]),
                                                 "chosen": json.dumps(answer("Ahoy")), "rejected": json.dumps(answer("Go away"))}])
    ranking = _csv(tmp_path / "ranking.csv", [{"prompt": "Hi", "completions": json.dumps(["Ahoy", "Yo", "Go away"]),
                                               "ranking": json.dumps([[0], [1, 2]])}])
    (got,), _ = load_preferences(implicit)
    assert (got.prompt, got.completions) == ("Hi", ["Ahoy", "Go away"])
    (got,), _ = load_preferences(explicit)
    assert (got.messages[0]["role"], got.completions) == ("system", ["Ahoy", "Go away"])
    (got,), _ = load_preferences(ranking)
    assert got.ranking == [[0], [1, 2]] and len(got.completions) == 3
    demos = _csv(tmp_path / "demos.csv", [{"messages": json.dumps([user] + answer("Ahoy"))}])
    assert load_demonstrations(demos)[0]["completion"] == answer("Ahoy")
    prompts = _csv(tmp_path / "prompts.csv", [{"messages": json.dumps([{"role": "system", "content": "S"}, user])}])
    assert load_prompts(prompts)[0].messages[0] == {"role": "system", "content": "S"}
    # pandas writes a list of dicts into a CSV as Python's repr: refused, named, never read as text
    pandas = _csv(tmp_path / "pandas.csv", [{"prompt": "Hi", "chosen": answer("Ahoy"), "rejected": answer("Go away")}])
    with pytest.raises(DataError, match=r"row 1, field 'chosen': holds a message list in Python's notation"):
        load_preferences(pandas)
    kept, bad = load_preferences(_csv(tmp_path / "mixed.csv", [{"prompt": "Hi", "chosen": "Ahoy", "rejected": "Yo"},
                                                               {"prompt": "Hi", "chosen": str(answer("A")), "rejected": "B"}]),
                                 skip_bad=True)
    assert len(kept) == 1 and [(e.row, e.field) for e in bad] == [(2, "chosen")]
    plain = _csv(tmp_path / "plain.csv", [{"prompt": "List two numbers", "chosen": "[1, 2]", "rejected": "[3]"}])
    assert load_preferences(plain)[0][0].completions == ["[1, 2]", "[3]"]  # a list that is not messages stays text


def test_gzipped_files_are_read_as_the_file_inside(tmp_path):
    """HH-RLHF is published as train.jsonl.gz: it was refused as an unknown file type (and the
    same file renamed .jsonl as not UTF-8), so it had to be unpacked by hand."""
    import gzip
    import json

    from rlhf.data import load_prompts

    hh = {"chosen": "\n\nHuman: Hi\n\nAssistant: Ahoy", "rejected": "\n\nHuman: Hi\n\nAssistant: Go away"}
    jsonl = gzip.compress(b"\xef\xbb\xbf" + (json.dumps(hh) + "\n").encode() * 2)
    files = {"train.jsonl.gz": jsonl, "TRAIN.JSONL.GZ": jsonl, "renamed.jsonl": jsonl,
             "array.json.gz": gzip.compress(json.dumps([hh]).encode()),
             "pairs.csv.gz": gzip.compress(b"prompt,chosen,rejected\nHi,Ahoy,Go away\n")}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        rankings, _ = load_preferences(tmp_path / name)
        assert [(r.prompt, r.completions) for r in rankings][0] == ("Hi", ["Ahoy", "Go away"]), name
    (tmp_path / "prompts.jsonl.gz").write_bytes(gzip.compress(b'{"prompt": "Hi"}\n'))
    assert load_prompts(tmp_path / "prompts.jsonl.gz")[0].text == "Hi"
    bad = tmp_path / "bad.jsonl.gz"
    bad.write_bytes(gzip.compress(b'{"prompt": "Hi", "chosen": "a", "rejected": "b"}\n{"prompt": "caf\xe9"}\n'))
    with pytest.raises(DataError, match=r"bad.jsonl.gz, row 2: not valid UTF-8"):
        load_preferences(bad)
    (tmp_path / "x.parquet.gz").write_bytes(gzip.compress(b"PAR1"))
    with pytest.raises(DataError, match=r"unknown file type: use .*gzipped too"):
        load_preferences(tmp_path / "x.parquet.gz")


@pytest.mark.parametrize("row, named", [
    ({"prompt": "Hi", "completion": "Ahoy", "label": True}, "a KTO-style unpaired row"),
    ({"post_id": "p", "history": "Hi", "human_ref_A": "Ahoy", "human_ref_B": "Yo", "labels": 1, "score_A": 5, "score_B": 2},
     "an SHP row"),
    ({"prompt": "Hi", "response_1": "Ahoy", "response_2": "Yo", "preference_strength": -2}, "a HelpSteer2 preference row"),
    ({"prompt": "\n\nHuman: Hi\n\nAssistant:", "answers": [{"answer": "Ahoy", "rank": 1}, {"answer": "Yo", "rank": 2}]},
     "a Nectar row"),
    ({"question": "Hi", "good": "Ahoy", "bad": "Yo"}, "a row with the columns bad, good, question"),
])
def test_a_layout_that_is_not_read_is_refused_naming_it_and_what_is_supported(row, named, tmp_path):
    """Such rows were refused as "field 'ranking': missing", which named a column the file never
    had and not the layout it was in."""
    with pytest.raises(DataError) as err:
        load_preferences(write_jsonl(tmp_path / "rows.jsonl", [row]))
    assert err.value.row == 1 and err.value.field is None
    assert named in str(err.value) and "a row needs chosen + rejected" in str(err.value)


@pytest.mark.parametrize("wrapper", [{"data": None}, {"train": None, "test": None}])
def test_one_json_object_holding_lists_of_rows_is_refused_saying_so_on_one_line_too(wrapper, tmp_path):
    """Indented, `{"data": [...]}` was refused as one object; on one line it was read as one row
    lacking every field ("field 'ranking': missing", "field 'prompt': missing")."""
    import json

    from rlhf.data import load_demonstrations, load_prompts

    rows = [{"prompt": "Hi", "chosen": "Ahoy", "rejected": "Yo", "completion": "Ahoy"}]
    for name in ("rows.json", "rows.jsonl"):
        path = tmp_path / name
        path.write_text(json.dumps({key: rows for key in wrapper}) + "\n")
        for reader in (load_preferences, load_prompts, load_demonstrations):
            with pytest.raises(DataError, match=r"holds one JSON object \(keys: .*\) holding lists of rows; the file must hold"):
                reader(path)


def test_an_unpaired_kto_file_is_not_read_as_demonstrations(tmp_path):
    """prompt/completion/label rows were read as SFT demonstrations with the label ignored, so the
    answers labelled false (the ones not to give) were learned like the others."""
    from rlhf.data import load_demonstrations

    rows = [{"prompt": "Hi", "completion": "Ahoy", "label": True}, {"prompt": "Hi", "completion": "Go away", "label": False}]
    with pytest.raises(DataError, match=r"row 1, field 'label': a true/false label marks this as an unpaired preference"):
        load_demonstrations(write_jsonl(tmp_path / "kto.jsonl", rows))
    assert len(load_demonstrations(write_jsonl(tmp_path / "sft.jsonl", [{"prompt": "Hi", "completion": "Ahoy"}]))) == 1


def test_dpo_counts_the_pairs_whose_scores_tie(tmp_path):
    from rlhf.dpo import DPOStageConfig, load_pairs

    rows = [{"prompt": "Hi", "chosen": "Ahoy", "rejected": "Yo", "score_chosen": 8.0, "score_rejected": 3.0},
            {"prompt": "Hey", "chosen": "Ahoy", "rejected": "Yo", "score_chosen": 5.0, "score_rejected": 5.0}]
    train, _, counts = load_pairs(DPOStageConfig(data=str(write_jsonl(tmp_path / "uf.jsonl", rows)), eval_fraction=0.0))
    assert len(train) == 1 and counts["tie_only_rankings"] == 1
