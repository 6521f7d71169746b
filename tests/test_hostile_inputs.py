"""Odd and hostile input files, one kind at a time, through every stage that reads that kind of file.

Each bad file must end the command with exit code 2 and one line naming the file, the line or row and
the field (no traceback); each good oddity (a byte-order mark, CRLF) must load; and a NaN that gets
past the readers must stop training before it reaches saved weights. Stages run in-process through
`rlhf.cli.main` and fail on their input before any model loads (SFT loads only the tiny tokenizer).
"""

from __future__ import annotations

import hashlib
import json
import re
import sys

import pytest

from rlhf.cli import main
from rlhf.data import DataError, load_candidates, load_demonstrations, load_preferences, load_prompts

# One good row of the kind of file each stage reads, and how to pass that file on the command line.
ROWS = {
    "sft": {"messages": [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "Hi!"}]},
    "reward": {"prompt": "Say hi.", "completions": ["Hi!", "No."], "ranking": [[0], [1]], "seconds": 4.0},
    "dpo": {"prompt": "Say hi.", "chosen": "Hi!", "rejected": "No.", "margin": 1.0},
    "label": {"prompt": "Say hi.", "completions": ["Hi!", "No."]},
    "sample": {"prompt": "Say hi."},
}
STAGES = list(ROWS)
READERS = {"sft": load_demonstrations, "reward": lambda p: load_preferences(p)[0], "dpo": lambda p: load_preferences(p)[0],
           "label": load_candidates, "sample": load_prompts}


@pytest.fixture(autouse=True)
def no_server(monkeypatch):
    """`rlhf label` with a file it accepts would serve the app until stopped: here it returns."""
    import labeling_app.app

    monkeypatch.setattr(labeling_app.app, "launch", lambda store, config, block=True: None)


def row(stage: str, i: int) -> dict:
    out = json.loads(json.dumps(ROWS[stage]))
    if stage in ("label", "sample"):
        out["id"] = f"item-{i}"
    return out


def argv(stage: str, path, tmp_path, tiny_model_dir) -> list[str]:
    out = str(tmp_path / "out")
    return {
        "sft": ["sft", "--data", str(path), "--model", str(tiny_model_dir), "--output_dir", out],
        "reward": ["reward", "--data", str(path), "--output_dir", out],
        "dpo": ["dpo", "--data", str(path), "--output_dir", out],
        "label": ["label", "--candidates", str(path), "--db", str(tmp_path / "labels.db")],
        "sample": ["sample", "--prompts", str(path), "--output", out + ".jsonl"],
    }[stage]


def lines_of(stage: str, n: int = 3) -> list[bytes]:
    return [json.dumps(row(stage, i)).encode() + b"\n" for i in range(1, n + 1)]


def refused(capsys, args: list[str], *expected: str) -> str:
    """Run the CLI; assert exit 2, one error line holding every `expected` text, no traceback."""
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    message = [line for line in err.splitlines() if "error:" in line]
    assert len(message) == 1, err
    for text in expected:
        assert text in message[0], (text, message[0])
    return message[0]


# --- 1. not UTF-8 ----------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("damage", ["stray byte on line 3", "binary file"])
def test_a_file_that_is_not_utf8_names_its_line(stage, damage, tmp_path, tiny_model_dir, capsys):
    lines = lines_of(stage)
    if damage == "binary file":
        path, line = tmp_path / "data.jsonl", "row 1"
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))  # an image renamed (a gzipped file is read: test_data_layouts)
    else:
        path, line = tmp_path / "data.jsonl", "row 3"
        lines[2] = lines[2].replace(b"Say hi.", b"Say h\xefi.")  # one Latin-1 byte
        path.write_bytes(b"".join(lines))
    refused(capsys, argv(stage, path, tmp_path, tiny_model_dir), str(path), line, "not valid UTF-8")


def test_other_text_files_name_the_line_of_a_bad_byte_too(tmp_path, capsys):
    """CSV data, the users file and the guidelines file of `rlhf label` go through the same decoder."""
    csv = tmp_path / "prompts.csv"
    csv.write_bytes(b"prompt\nSay hi.\nSay h\xe9llo.\n")
    refused(capsys, ["sample", "--prompts", str(csv)], str(csv), "row 3", "not valid UTF-8")
    users = tmp_path / "users.csv"
    users.write_bytes(b"name,password\nalice,pw-\xff\n")
    refused(capsys, ["label", "--db", str(tmp_path / "l.db"), "--users", str(users)], str(users), "row 2", "UTF-8")
    guide = tmp_path / "guide.md"
    guide.write_bytes(b"# Rules\n\nRank \x81 well.\n")
    refused(capsys, ["label", "--db", str(tmp_path / "l.db"), "--guidelines", str(guide)], str(guide), "row 3", "UTF-8")


# --- 2. a byte-order mark --------------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("ending", [b"\n", b"\r\n"])
def test_a_byte_order_mark_loads(stage, ending, tmp_path):
    plain, marked = tmp_path / "plain.jsonl", tmp_path / "marked.jsonl"
    lines = lines_of(stage)
    plain.write_bytes(b"".join(lines))
    marked.write_bytes(b"\xef\xbb\xbf" + b"".join(line.replace(b"\n", ending) for line in lines))
    expected, got = READERS[stage](plain), READERS[stage](marked)
    if stage == "sft":
        expected, got = expected.to_list(), got.to_list()
    assert len(got) == 3 and got == expected
    array = tmp_path / "marked.json"  # a JSON array with a BOM (a spreadsheet export)
    array.write_bytes(b"\xef\xbb\xbf[" + b",".join(line.strip() for line in lines) + b"]")
    got = READERS[stage](array)
    assert (got.to_list() if stage == "sft" else got) == expected


def test_a_byte_order_mark_in_the_users_file_and_on_the_command_line(tmp_path, capsys):
    users = tmp_path / "users.csv"
    users.write_bytes(b"\xef\xbb\xbfname,password,role\r\nalice,pw-a,admin\r\n")
    candidates = tmp_path / "c.jsonl"
    candidates.write_bytes(b"\xef\xbb\xbf" + b"".join(lines_of("label")))
    assert main(["label", "--db", str(tmp_path / "l.db"), "--users", str(users), "--candidates", str(candidates)]) == 0
    out = capsys.readouterr().out
    assert "3 new items" in out and "1 users loaded" in out
    from rlhf.store import LabelStore

    with LabelStore(tmp_path / "l.db") as store:
        assert [(u.name, u.role) for u in store.users()] == [("alice", "admin")]


# --- 3. numbers that are not finite ----------------------------------------------------------------

# (stage, field the stage reads as a number or carries along, where it sits in the row)
NONFINITE = [("sft", "score", lambda r, v: r.update(score=v)),
             ("reward", "seconds", lambda r, v: r.update(seconds=v)),
             ("dpo", "margin", lambda r, v: r.update(margin=v)),
             ("label", "scores[1]", lambda r, v: r.update(scores=[1.0, v])),
             ("sample", "meta.rating", lambda r, v: r.update(meta={"rating": v}))]


@pytest.mark.parametrize("stage, field, put", NONFINITE, ids=[n[0] for n in NONFINITE])
@pytest.mark.parametrize("literal, shown", [("NaN", "NaN"), ("Infinity", "Infinity"), ("-Infinity", "-Infinity"),
                                            ("1e999", "Infinity")])
def test_non_finite_numbers_are_refused_with_their_field(stage, field, put, literal, shown, tmp_path, tiny_model_dir,
                                                          capsys):
    bad = row(stage, 2)
    put(bad, "@NUMBER@")
    lines = lines_of(stage, 1) + [json.dumps(bad).replace('"@NUMBER@"', literal).encode() + b"\n"]
    path = tmp_path / "data.jsonl"
    path.write_bytes(b"".join(lines))
    refused(capsys, argv(stage, path, tmp_path, tiny_model_dir), str(path), "row 2", f"field '{field}'",
            f"is {shown}: numbers must be finite")


def test_a_nan_in_parquet_and_a_skipped_nan_row_is_counted(tmp_path):
    import datasets

    rows = [dict(ROWS["dpo"]), {**ROWS["dpo"], "margin": float("nan")}]
    path = tmp_path / "pairs.parquet"
    datasets.Dataset.from_list(rows).to_parquet(str(path))
    with pytest.raises(DataError, match=r"pairs\.parquet, row 2, field 'margin': is NaN"):
        load_preferences(path)
    kept, bad = load_preferences(path, skip_bad=True)  # --skip_bad_rows counts it instead
    assert len(kept) == 1 and [e.field for e in bad] == ["margin"]


# --- 3b. a row that is not a JSON object ------------------------------------------------------------


@pytest.mark.parametrize("name, tail", [("pairs.jsonl", b'{"prompt": "Say bye.", "chos'),  # cut short by a crash
                                        ("pairs.jsonl", b'["Say bye.", "Bye!", "No."]\n'),
                                        ("pairs.json", None)])
def test_skip_bad_rows_counts_a_row_that_is_not_a_json_object(name, tail, tmp_path):
    """--skip_bad_rows skips and counts a truncated last line or a row that is a JSON list like any
    other bad row; without it the file is refused naming the row."""
    path = tmp_path / name
    if tail is None:
        path.write_text(json.dumps([row("dpo", 1), ["Say bye.", "Bye!", "No."]]))
    else:
        path.write_bytes(b"".join(lines_of("dpo", 1)) + tail)
    with pytest.raises(DataError, match=r"row 2: "):
        load_preferences(path)
    kept, bad = load_preferences(path, skip_bad=True)
    assert len(kept) == 1 and [(e.row, str(path) in str(e)) for e in bad] == [(2, True)]


def test_when_skip_bad_rows_leaves_nothing_the_error_says_how_many_and_why(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"prompt": "Say hi.", "chosen": "Hi!", "rejected": "No.", "margin": "big"}\n[1, 2]\n')
    with pytest.raises(DataError, match=r"holds no usable rankings or pairs \(all 2 rows are bad; first: .*row 1, "
                                        r"field 'margin'"):
        load_preferences(path, skip_bad=True)


@pytest.mark.parametrize("reader, good", [(load_candidates, ROWS["label"]), (lambda p: load_preferences(p)[0], ROWS["reward"])])
@pytest.mark.parametrize("flags, field", [("duplicate", "flags"), (["duplicate", 3], "flags[1]")])
def test_flags_that_are_not_a_list_of_strings_are_refused(reader, good, flags, field, tmp_path):
    """A string was read as a list of its letters: "duplicate" became nine one-letter flags."""
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({**good, "id": "a", "flags": ["empty"]}) + "\n" + json.dumps({**good, "id": "b", "flags": flags}) + "\n")
    with pytest.raises(DataError) as err:
        reader(path)
    assert (err.value.row, err.value.field) == (2, field) and str(path) in str(err.value)


@pytest.mark.parametrize("name, text, expected", [
    ("pairs.json", json.dumps(ROWS["dpo"], indent=2), "holds one JSON object written over several lines (keys: prompt, "),
    ("pairs.jsonl", json.dumps({"data": [ROWS["dpo"]]}, indent=2), "holds one JSON object written over several lines (keys: data)"),
    ("pairs.jsonl", (json.dumps(ROWS["dpo"], indent=1) + "\n") * 2, "row 1: not valid JSON (Expecting property name "
                                                                       "enclosed in double quotes): a row must be one whole"),
    ("pairs.jsonl", json.dumps(ROWS["dpo"]) + ",\n" + json.dumps(ROWS["dpo"]) + "\n",
     "row 1: not valid JSON (Extra data): a JSONL line holds one object with no comma after it"),
])
def test_indented_json_and_a_comma_after_a_row_say_what_the_file_holds(name, text, expected, tmp_path):
    """Line 1 of an indented object is `{`: "not valid JSON (Expecting property name)" named the
    line but not the mistake."""
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DataError) as err:
        load_preferences(path)
    assert str(path) in str(err.value) and expected in str(err.value), str(err.value)


@pytest.mark.parametrize("name", ["PAIRS.JSONL", "Pairs.Json", "pairs.PARQUET"])
def test_an_upper_case_suffix_is_the_same_file_kind(name, tmp_path):
    import datasets

    path = tmp_path / name
    if name.lower().endswith(".parquet"):
        datasets.Dataset.from_list([ROWS["dpo"]]).to_parquet(str(path))
    else:
        path.write_text(json.dumps(ROWS["dpo"]) + "\n")
    assert [r.completions for r in load_preferences(path)[0]] == [["Hi!", "No."]]


@pytest.mark.parametrize("stage", STAGES)
def test_a_missing_file_is_named_as_missing_not_as_a_hub_dataset(stage, tmp_path, tiny_model_dir, capsys):
    """A mistyped path was tried as a hub id: "could not be fetched from the hub" sent the user to
    check the network instead of the path."""
    path = tmp_path / "typo.jsonl"
    refused(capsys, argv(stage, path, tmp_path, tiny_model_dir), f"{path}: no such file")


@pytest.mark.parametrize("text, expected", [("", "holds no rows (it is empty)"),
                                            ("prompt,chosen,rejected\r\n", "holds no rows (only a header line)")])
def test_a_csv_without_rows_says_so(text, expected, tmp_path):
    """It was "could not be read as csv (ValueError: Instruction "train" corresponds to no data!)"."""
    path = tmp_path / "pairs.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=re.escape(f"{path}: {expected}")):
        load_preferences(path)


# --- 4. duplicate item ids -------------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["label", "simulate"])
def test_duplicate_item_ids_name_both_rows(stage, tmp_path, capsys):
    rows = [row("label", 1), row("label", 2), {**row("label", 1), "prompt": "Say bye."}]
    path = tmp_path / "candidates.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = {"label": ["label", "--candidates", str(path), "--db", str(tmp_path / "l.db")],
            "simulate": ["simulate", "--candidates", str(path), "--output", str(tmp_path / "r.jsonl")]}[stage]
    refused(capsys, args, str(path), "row 3", "field 'id'", "'item-1' repeats the id of row 1")
    assert not (tmp_path / "r.jsonl").exists()


def test_store_refuses_duplicate_ids_and_a_second_load_counts_what_it_skipped(tmp_path, capsys):
    from rlhf.store import LabelStore, StoreError

    with LabelStore(tmp_path / "s.db") as store:
        with pytest.raises(StoreError, match=r"candidate 2: id 'item-1' repeats the id of candidate 1"):
            store.add_items([row("label", 1), row("label", 1)])
        assert store.item_count() == 0
    path = tmp_path / "c.jsonl"
    path.write_bytes(b"".join(lines_of("label")))
    args = ["label", "--candidates", str(path), "--db", str(tmp_path / "l.db")]
    assert main(args) == 0 and main(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert any("3 new items (3 in the database)" in line for line in out)
    assert any("0 new items, 3 already in the database (skipped) (3 in the database)" in line for line in out)


# --- 5. a folder that is not a `datasets` folder ---------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_a_folder_that_is_not_a_datasets_folder(stage, tmp_path, tiny_model_dir, capsys):
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "data.jsonl").write_bytes(b"".join(lines_of(stage)))
    refused(capsys, argv(stage, folder, tmp_path, tiny_model_dir), str(folder), "not a `datasets` folder",
            "state.json or dataset_dict.json", ".jsonl, .json, .parquet or .csv file")


def test_a_datasets_folder_without_a_train_split(tmp_path):
    import datasets

    folder = tmp_path / "dd"
    datasets.DatasetDict({"test": datasets.Dataset.from_list([ROWS["sample"]])}).save_to_disk(str(folder))
    with pytest.raises(DataError, match=r"holds the splits \['test'\], but no 'train' split"):
        load_prompts(folder)


# --- 6. a preference function with the wrong signature ---------------------------------------------


@pytest.fixture
def pref_module(tmp_path, monkeypatch):
    (tmp_path / "my_prefs.py").write_text(
        "def one_arg(text):\n    return 1.0\n\n"
        "def good(prompt, completion):\n    return float(completion.startswith('N'))\n\n"
        "def nan(prompt, completion):\n    return float('nan')\n\n"
        "def text(prompt, completion):\n    return '0.5'\n\n"
        "NOT_A_FUNCTION = 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "my_prefs"
    sys.modules.pop("my_prefs", None)


@pytest.mark.parametrize("stage", ["simulate", "eval"])
@pytest.mark.parametrize("spec, expected", [
    ("my_prefs:one_arg", "cannot be called as fn(prompt, completion) -> float"),
    ("my_prefs:NOT_A_FUNCTION", "is not a function (got int): it must be fn(prompt, completion) -> float"),
    ("my_prefs:missing", "module 'my_prefs' has no 'missing'"),
    ("no_such_module_xyz:fn", "cannot import 'no_such_module_xyz'"),
])
def test_a_preference_is_checked_when_it_is_loaded(stage, spec, expected, pref_module, tmp_path, capsys):
    candidates = tmp_path / "c.jsonl"
    candidates.write_bytes(b"".join(lines_of("label")))
    args = {"simulate": ["simulate", "--candidates", str(candidates), "--preference", spec],
            "eval": ["eval", "--judge", "simulated", "--preference", spec]}[stage]
    refused(capsys, args, spec, expected)


def test_a_good_preference_loads_and_a_nan_score_is_refused(pref_module, tmp_path, capsys):
    from rlhf.labelers import SimulatedLabeler

    candidates = tmp_path / "c.jsonl"
    candidates.write_bytes(b"".join(lines_of("label")))
    out = tmp_path / "r.jsonl"
    assert main(["simulate", "--candidates", str(candidates), "--preference", "my_prefs:good", "--noise", "0",
                 "--output", str(out)]) == 0
    assert [json.loads(line)["ranking"] for line in out.read_text().splitlines()] == [[[1], [0]]] * 3  # "No." > "Hi!"
    with pytest.raises(ValueError, match="fn\\(prompt, completion\\) -> float"):
        SimulatedLabeler(lambda text: 0.0)
    with pytest.raises(ValueError, match="returned nan for a completion: scores must be finite"):
        SimulatedLabeler("my_prefs:nan").rank("q", ["a", "b"])


def test_a_preference_module_in_the_working_folder_loads_from_the_console_script(tmp_path, monkeypatch, capsys):
    # `rlhf simulate` runs as a console script: sys.path holds its bin folder, not the working folder
    # where a user keeps my_rules.py. It must load there as under `python -m`, and only be appended.
    (tmp_path / "cwd_rules_xyz.py").write_text("def exclaims(prompt, completion):\n    return completion.count('!')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, "cwd_rules_xyz", raising=False)
    candidates = tmp_path / "c.jsonl"
    candidates.write_text(json.dumps({"prompt": "Hi", "completions": ["a!", "b", "c!!"]}) + "\n")
    out = tmp_path / "r.jsonl"
    assert main(["simulate", "--candidates", str(candidates), "--preference", "cwd_rules_xyz:exclaims",
                 "--noise", "0", "--output", str(out)]) == 0, capsys.readouterr().err
    assert json.loads(out.read_text())["ranking"] == [[2], [0], [1]]
    assert sys.path[-1] == str(tmp_path)
    sys.modules.pop("cwd_rules_xyz", None)
    # A module that is nowhere is still refused by name.
    refused(capsys, ["simulate", "--candidates", str(candidates), "--preference", "nowhere_xyz:fn"],
            "cannot import 'nowhere_xyz'")


@pytest.mark.parametrize("spec, returned", [("my_prefs:nan", "returned nan for a completion: scores must be finite"),
                                            ("my_prefs:text", "returned '0.5' for completion 0, not a number")])
def test_a_preference_returning_nan_or_text_is_one_line_exit_2_naming_the_candidate(pref_module, spec, returned,
                                                                                      tmp_path, capsys):
    candidates = tmp_path / "c.jsonl"
    candidates.write_bytes(b"".join(lines_of("label")))
    first_id = json.loads(candidates.read_text().splitlines()[0]).get("id", "0")
    assert main(["simulate", "--candidates", str(candidates), "--preference", spec, "--output", str(tmp_path / "r.jsonl")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith(f"rlhf simulate: error: preference '{spec}' {returned}")
    assert f"candidate '{first_id}', row 1 of the candidates" in err
    assert not (tmp_path / "r.jsonl").exists()


# --- 7. a batch with no pairs ----------------------------------------------------------------------


def test_a_batch_without_pairs_shows_a_dash_and_is_counted(tmp_path, tiny_model_dir, capsys):
    rows = [{"prompt": f"Q{i}?", "completions": [f"Yes {i}.", f"No {i}."], "ranking": [[0], [1]]} for i in range(4)]
    rows += [{"prompt": f"T{i}?", "completions": [f"A {i}.", f"B {i}."], "ranking": [[0, 1]]} for i in range(4)]
    data = tmp_path / "rankings.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "rm"
    assert main(["reward", "--data", str(data), "--model", str(tiny_model_dir), "--output_dir", str(out), "--train",
                 "full", "--batch_size", "1", "--eval_fraction", "0", "--epochs", "1", "--calibration_data", "none"]) == 0
    captured = capsys.readouterr()
    assert "acc=nan" not in captured.err and "acc=-" in captured.err
    metrics = json.loads((out / "metrics.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in metrics"))
    assert metrics["data"]["train_tie_only_rankings"] == 4 and metrics["steps_without_pairs"] == 4
    assert sum(h.get("accuracy", 0) is None for h in metrics["history"]) == 4
    assert "4 of 8 rankings are a single tie" in captured.out


# --- the second line of defence: a NaN loss never reaches saved weights ----------------------------


def _digest(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def _nan_from_call(n: int, fn):
    """`fn`, whose result is multiplied by NaN from its n-th call on (the loss of step n)."""
    calls = {"n": 0}

    def wrapped(*args, **kwargs):
        calls["n"] += 1
        result = fn(*args, **kwargs)
        if calls["n"] < n:
            return result
        if isinstance(result, tuple):
            return (result[0] * float("nan"), *result[1:])
        return result * float("nan")
    return wrapped


def test_a_nan_loss_stops_the_reward_stage_and_the_previous_model_stays(tmp_path, tiny_model_dir, capsys, monkeypatch):
    from rlhf.reward import trainer as reward_trainer

    data = tmp_path / "rankings.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Q{i}?", "completions": [f"Yes {i}.", f"No {i}."],
                                        "ranking": [[0], [1]]}) + "\n" for i in range(8)))
    out = tmp_path / "rm"
    args = ["reward", "--data", str(data), "--model", str(tiny_model_dir), "--output_dir", str(out), "--train", "full",
            "--batch_size", "2", "--eval_fraction", "0", "--max_steps", "3", "--calibration_data", "none"]
    assert main(args) == 0
    before = _digest(out)
    monkeypatch.setattr(reward_trainer, "ranking_loss", _nan_from_call(2, reward_trainer.ranking_loss))
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "rlhf reward step 2: the loss is nan (not finite)" in err and "Traceback" not in err
    after = _digest(out)
    for name in ("model.safetensors", "metrics.json", "config.json"):
        assert after[name] == before[name], name


@pytest.mark.parametrize("stage", ["sft", "dpo"])
def test_a_nan_loss_stops_sft_and_dpo_before_anything_is_saved(stage, tmp_path, tiny_model_dir, capsys, monkeypatch):
    import trl

    cls = {"sft": trl.SFTTrainer, "dpo": trl.DPOTrainer}[stage]
    monkeypatch.setattr(cls, "compute_loss", _nan_from_call(2, cls.compute_loss))
    path = tmp_path / "data.jsonl"
    rows = [{**ROWS[stage], "prompt": f"Say hi {i}."} if stage == "dpo" else ROWS[stage] for i in range(8)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    model = "--model" if stage == "sft" else "--policy"
    extra = ["--eval_fraction", "0"] + (["--adapter", "lora"] if stage == "sft" else ["--device", "cpu"])
    code = main([stage, "--data", str(path), model, str(tiny_model_dir), "--output_dir", str(out), "--max_steps", "3",
                 "--batch_size", "2", "--grad_accum", "1", "--logging_steps", "1", *extra])
    err = capsys.readouterr().err
    assert code == 1, err
    assert f"rlhf {stage} step 2: the gradient of" in err and "is not finite" in err and "Traceback" not in err
    saved = [p.name for p in out.rglob("*.safetensors")] if out.exists() else []
    assert saved == [] and not (out / "metrics.json").exists()


@pytest.mark.parametrize("stage", ["dpo", "reward", "reward-eval"])
def test_skip_bad_rows_prints_the_count_on_the_console(stage, tmp_path, capsys):
    """Every stage with --skip_bad_rows says on the console how many rows it left out (the data is
    read before any model loads, so a missing model stops the run right after that line)."""
    rows = [{"prompt": f"Q{i}?", "completions": [f"Yes {i}.", f"No {i}."], "ranking": [[0], [1]]} for i in range(4)]
    rows.insert(1, {"prompt": "p", "completions": ["a", "b"], "ranking": [[0], [7]]})
    data = tmp_path / "rankings.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = ["--output_dir" if stage != "reward-eval" else "--output", str(tmp_path / "out")]
    model = ["--policy" if stage == "dpo" else "--model", str(tmp_path / "no-model")]
    assert main([stage, "--data", str(data), *model, "--skip_bad_rows", "true", *out]) == 2  # no model there
    console = capsys.readouterr().out
    assert f"[rlhf {stage}] skipped 1 bad row of {data} (see " in console and "row 2" in console, console


@pytest.mark.parametrize("stage, flag, out_flag", [
    ("eval", "--prompts", "--output"), ("sample", "--prompts", "--output"), ("ppo", "--prompts", "--output_dir"),
    ("simulate", "--candidates", "--output"), ("reward", "--data", "--output_dir"), ("dpo", "--data", "--output_dir"),
    ("reward-eval", "--data", "--output"), ("sft", "--data", "--output_dir")])
def test_a_refused_input_file_leaves_no_output_behind(stage, flag, out_flag, tmp_path, tiny_model_dir, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"nope": 1}\n')
    out = tmp_path / "x4" / ("out.jsonl" if out_flag == "--output" and stage in ("sample", "simulate") else "")
    models = {"eval": ["--policy_a", str(tiny_model_dir), "--policy_b", str(tiny_model_dir)],
              "sample": ["--model", str(tiny_model_dir)], "sft": ["--model", str(tiny_model_dir)],
              "ppo": ["--policy", str(tiny_model_dir), "--reward_model", str(tiny_model_dir)],
              "reward": ["--model", str(tiny_model_dir)], "dpo": ["--policy", str(tiny_model_dir)],
              "reward-eval": ["--model", str(tiny_model_dir)], "simulate": []}[stage]
    assert main([stage, flag, str(bad), out_flag, str(out), *models]) == 2
    assert str(bad) in capsys.readouterr().err
    assert not (tmp_path / "x4").exists(), sorted(p.name for p in (tmp_path / "x4").rglob("*"))
