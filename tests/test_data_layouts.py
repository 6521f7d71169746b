"""Published preference and demonstration layouts read as published, or refused naming what is
supported: scores beside chosen/rejected, CSV cells holding message lists, unsupported layouts."""

from __future__ import annotations

import json

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


# --- SHP, Nectar, HelpSteer2: read as published ---------------------------------------------------

CULINARY = "What's the best way to disassemble raspberries? I've been pulling them apart with tweezers."


def _shp(**change):
    row = {"post_id": "qt3nxl", "domain": "askculinary_train", "upvote_ratio": 0.98, "history": CULINARY,
           "c_root_id_A": "hkh25sc", "c_root_id_B": "hkh25lp", "created_at_utc_A": 1636822112,
           "created_at_utc_B": 1636822110, "score_A": 340, "score_B": 166,
           "human_ref_A": "Pectinex, perhaps? It's an enzyme that breaks down cellulose.",
           "human_ref_B": "Raspberry juice will make a bright stain at first.", "labels": 1,
           "seconds_difference": 2.0, "score_ratio": 2.0481927711}
    return {**row, **change}


def test_shp_rows_are_pairs_with_the_labelled_comment_first_and_odd_rows_named(tmp_path):
    """SHP (history, human_ref_A/B, labels) was refused. labels 1 prefers A, 0 prefers B; the
    preferred comment goes first; the post is the prompt; scalar columns stay in meta."""
    flipped = _shp(score_A=12, score_B=48, labels=0, score_ratio=4.0, domain="legaladvice_train")
    weak = _shp(post_id="x1", score_A=11, score_B=10, score_ratio=1.1)  # kept: filtering is the user's choice
    bad = [_shp(score_A=100, score_B=300),  # labels says A, scores say B
           _shp(labels=2), _shp(labels=None), _shp(human_ref_B="  "), _shp(human_ref_B=_shp()["human_ref_A"]),
           _shp(history="")]
    path = write_jsonl(tmp_path / "shp.jsonl", [_shp(), flipped, weak] + bad)
    kept, errors = load_preferences(path, skip_bad=True)
    assert [(r.prompt, r.completions, r.ranking) for r in kept] == [
        (CULINARY, [_shp()["human_ref_A"], _shp()["human_ref_B"]], [[0], [1]]),
        (CULINARY, [_shp()["human_ref_B"], _shp()["human_ref_A"]], [[0], [1]]),
        (CULINARY, [_shp()["human_ref_A"], _shp()["human_ref_B"]], [[0], [1]])]
    assert kept[1].meta["domain"] == "legaladvice_train" and kept[1].meta["score_ratio"] == 4.0
    assert kept[0].meta["post_id"] == "qt3nxl" and kept[0].margin is None
    assert not {"history", "human_ref_A", "human_ref_B"} & set(kept[0].meta)
    assert [(e.row, e.field) for e in errors] == [(4, "labels"), (5, "labels"), (6, "labels"), (7, "human_ref_B"),
                                                 (8, "human_ref_B"), (9, "history")]
    assert "score_A (100) is not above score_B (300)" in str(errors[0])
    assert "must be 1 (A preferred) or 0 (B preferred), got 2" in str(errors[1])
    with pytest.raises(DataError, match=r"row 1, field 'score_A': margin_from_scores does not read SHP rows"):
        load_preferences(path, margin_from_scores=True)


NECTAR_PROMPT = ("\n\nHuman: I'm planting a vegetable garden.\n\nAssistant: Great! What would you like to know?"
                 "\n\nHuman: Which vegetables grow well in shade?\n\nAssistant:")
NECTAR_TURNS = [{"role": "user", "content": "I'm planting a vegetable garden."},
                {"role": "assistant", "content": "Great! What would you like to know?"},
                {"role": "user", "content": "Which vegetables grow well in shade?"}]
MODELS = ("gpt-4", "gpt-3.5-turbo", "gpt-3.5-turbo-instruct", "llama-2-7b-chat", "mistral-7b-instruct-v0.1",
          "anthropic", "vicuna-33b")


def _nectar(ranks=(1.0, 2.0, 3.0, 3.0, 5.0, 6.0, 7.0), texts=None, **change):
    texts = texts or [f" Answer {i}: lettuce, kale and spinach." for i in range(len(ranks))]
    answers = [{"answer": t, "model": m, "rank": r} for t, m, r in zip(texts, MODELS, ranks)]
    row = {"prompt": NECTAR_PROMPT, "answers": answers, "turns": 2, "num_responses": len(answers),
           "source": ["sharegpt"], "good_natured": True}
    return {**row, **change}


def test_nectar_rows_are_k_way_rankings_with_ties_and_odd_answers_named(tmp_path):
    """Nectar (prompt transcript, answers with ranks) was refused. Rank 1 is the best; equal ranks
    tie; the transcript becomes messages as HH-RLHF's do; the sources join in meta."""
    shuffled = _nectar(ranks=(3, 1, 2), source=["anthropic-hh", "lmsys-chat-1m"], good_natured=False)
    same_rank_copy = _nectar(ranks=(1, 2, 2), texts=["Kale.", "Chard.", "Chard."])
    bad = [_nectar(ranks=(1, 2, None)), _nectar(ranks=(1, 2, 3), texts=["Kale.", "Chard.", " Kale. "]),
           _nectar(ranks=(1, "2", 3)), _nectar(ranks=(1,)), _nectar(texts=["Kale."] + [""] * 6),
           {"prompt": NECTAR_PROMPT, "answers": "Kale."}]
    path = write_jsonl(tmp_path / "nectar.jsonl", [_nectar(), shuffled, same_rank_copy] + bad)
    kept, errors = load_preferences(path, skip_bad=True)
    first = kept[0]
    assert first.prompt == NECTAR_TURNS and first.text == "Which vegetables grow well in shade?"
    assert first.completions[0] == "Answer 0: lettuce, kale and spinach."  # stripped, as HH-RLHF turns are
    assert first.ranking == [[0], [1], [2, 3], [4], [5], [6]]
    assert first.meta == {"turns": 2, "num_responses": 7, "good_natured": True, "source": "sharegpt"}
    assert kept[1].ranking == [[1], [2], [0]] and kept[1].meta["source"] == "anthropic-hh,lmsys-chat-1m"
    assert kept[2].ranking == [[0], [1, 2]] and kept[2].pairs() == [(0, 1, 1), (0, 2, 1)]
    assert [(e.row, e.field) for e in errors] == [(4, "answers[2].rank"), (5, "answers[2].answer"),
                                                 (6, "answers[1].rank"), (7, "answers"), (8, "answers[1].answer"),
                                                 (9, "answers")]
    assert "missing: every answer needs its rank" in str(errors[0])
    assert "is the text of answers[0], ranked 1 there and 3 here" in str(errors[1])
    nan = tmp_path / "nan.jsonl"
    nan.write_text(json.dumps(_nectar(ranks=(1, 2, 3))).replace("3}", "NaN}") + "\n")
    with pytest.raises(DataError, match=r"row 1, field 'answers\[2\]\.rank': is NaN"):
        load_preferences(nan)


HS2_TURNS = "Write a haiku about rain.\n<extra_id_1>Assistant\nSoft rain on the roof\n<extra_id_1>User\nNow one about snow."


def _hs2(strength, **change):
    row = {"split": "train", "prompt": "Name three primary colours.", "response_1": "Red, blue and yellow.",
           "response_2": "Red, green and blue (for light); red, yellow and blue (for paint).",
           "preference_strength": strength, "preference_statement": "@Response 2 is better than @Response 1.",
           "preference_elaboration": "It covers both additive and subtractive colour.",
           "three_most_similar_preferences": [{"statement": "@Response 2 is better", "strength": 2}],
           "all_preferences_unprocessed": [2, 1, 2]}
    return {**row, **change}


def test_helpsteer2_rows_are_pairs_by_preference_strength_ties_kept_and_multi_turn_prompts_parsed(tmp_path):
    """HelpSteer2's preference file was refused. -3..-1 prefer response_1, 1..3 response_2, 0 is a
    tie; |strength| is the margin only with margin_from_scores; <extra_id_1> turns become messages."""
    r1, r2 = _hs2(0)["response_1"], _hs2(0)["response_2"]
    good = [_hs2(-2), _hs2(3), _hs2(0), _hs2(1, prompt=HS2_TURNS)]
    bad = [_hs2(4), _hs2(1.5), _hs2(None), _hs2(1, response_2=r1),
           _hs2(1, prompt="Hi\n<extra_id_1>User\nStill there?"), _hs2(1, prompt="Hi\n<extra_id_1>Assistant\nHello")]
    path = write_jsonl(tmp_path / "hs2.jsonl", good + bad)
    kept, errors = load_preferences(path, skip_bad=True)
    assert [(r.completions, r.ranking, r.margin) for r in kept] == [
        ([r1, r2], [[0], [1]], None), ([r2, r1], [[0], [1]], None), ([r1, r2], [[0, 1]], None), ([r2, r1], [[0], [1]], None)]
    assert kept[3].prompt == [{"role": "user", "content": "Write a haiku about rain."},
                              {"role": "assistant", "content": "Soft rain on the roof"},
                              {"role": "user", "content": "Now one about snow."}]
    assert kept[0].meta["split"] == "train" and kept[0].meta["preference_strength"] == -2
    assert kept[0].meta["preference_statement"].startswith("@Response 2")
    assert not {"response_1", "response_2", "prompt"} & set(kept[0].meta)
    assert [r.margin for r in load_preferences(path, skip_bad=True, margin_from_scores=True)[0]] == [2, 3, None, 1]
    assert [(e.row, e.field) for e in errors] == [(5, "preference_strength"), (6, "preference_strength"),
                                                 (7, "preference_strength"), (8, "response_2"), (9, "prompt"),
                                                 (10, "prompt[1].role")]
    assert "must be an integer from -3 (response_1 much better) to 3" in str(errors[0])
    assert "turn 2 is a second 'user' turn in a row" in str(errors[4])


def test_dpo_counts_helpsteer2_ties(tmp_path):
    from rlhf.dpo import DPOStageConfig, load_pairs

    train, _, counts = load_pairs(DPOStageConfig(data=str(write_jsonl(tmp_path / "hs2.jsonl", [_hs2(-2), _hs2(0)])),
                                                 eval_fraction=0.0))
    assert len(train) == 1 and counts["tie_only_rankings"] == 1


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_published_files_of_each_layout_load_end_to_end(suffix, tmp_path):
    """SHP ships JSONL, Nectar Parquet (answers a list of structs), HelpSteer2 gzipped JSONL: each
    file read through load_preferences gives the same records from either kind of file."""
    import pandas as pd

    files = {"shp": [_shp(), _shp(labels=0, score_A=3, score_B=30)], "nectar": [_nectar(), _nectar(ranks=(2, 1, 1))],
             "hs2": [_hs2(-1), _hs2(0, prompt=HS2_TURNS)]}
    got = {}
    for name, rows in files.items():
        path = tmp_path / f"{name}{suffix}"
        write_jsonl(path, rows) if suffix == ".jsonl" else pd.DataFrame(rows).to_parquet(path)
        rankings, bad = load_preferences(path)
        assert not bad
        got[name] = [(r.prompt, r.completions, r.ranking) for r in rankings]
    assert got["shp"][1][1] == [_shp()["human_ref_B"], _shp()["human_ref_A"]]
    assert got["nectar"][0][0] == NECTAR_TURNS and got["nectar"][0][2] == [[0], [1], [2, 3], [4], [5], [6]]
    assert got["nectar"][1][2] == [[1, 2], [0]]
    assert got["hs2"][1][2] == [[0, 1]] and got["hs2"][1][0][-1] == {"role": "user", "content": "Now one about snow."}
