import json

import pytest

from rlhf import data


def write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


GOOD_CHAT = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello!"}]}


@pytest.mark.parametrize(
    "bad_row, field, problem",
    [
        ({"text": "no messages"}, "messages", "missing"),
        ({"messages": [{"role": "user", "content": "q"}, {"role": "robot", "content": "a"}]}, "messages[1].role", "unknown role 'robot'"),
        ({"messages": [{"role": "user", "content": "q"}]}, "messages", "last message must be the assistant"),
        ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "  "}]}, "messages[1].content", "empty"),
        ({"messages": [{"role": "user", "content": "q"}, {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}, "messages", "alternate"),
        ({"prompt": "q", "completion": ""}, "completion", "empty"),
        ({"prompt": "q"}, "completion", "missing"),
        ({"messages": [{"role": "user"}]}, "messages[0]", "'role' and 'content'"),
    ],
)
def test_bad_demonstration_names_file_row_and_field(tmp_path, bad_row, field, problem):
    path = write(tmp_path / "demos.jsonl", [GOOD_CHAT, GOOD_CHAT, bad_row])
    with pytest.raises(data.DataError) as err:
        data.load_demonstrations(path)
    assert err.value.row == 3 and err.value.field == field
    assert str(path) in str(err.value) and "row 3" in str(err.value) and problem in str(err.value)


def test_invalid_json_line_is_reported_with_its_line(tmp_path):
    path = write(tmp_path / "d.jsonl", [GOOD_CHAT, "{not json"])
    with pytest.raises(data.DataError, match=r"row 2: not valid JSON"):
        data.load_demonstrations(path)


def test_too_long_row_is_an_error_only_when_truncation_is_off(tmp_path, tokenizer):
    long = {"prompt": "q", "completion": "word " * 300}
    path = write(tmp_path / "d.jsonl", [GOOD_CHAT, long])
    assert len(data.load_demonstrations(path, tokenizer=tokenizer, max_length=64, truncate=True)) == 2
    with pytest.raises(data.DataError, match=r"row 2, field 'completion': is \d+ tokens, longer than max_length=64"):
        data.load_demonstrations(path, tokenizer=tokenizer, max_length=64, truncate=False)


def test_chat_and_prompt_completion_rows_become_conversational_prompt_completion(tmp_path):
    rows = [
        {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"}]},
        {"prompt": "q2", "completion": "a2"},
    ]
    ds = data.load_demonstrations(write(tmp_path / "d.jsonl", rows))
    assert ds[0]["prompt"] == rows[0]["messages"][:2] and ds[0]["completion"] == rows[0]["messages"][2:]
    assert ds[1]["prompt"] == [{"role": "user", "content": "q2"}]
    assert ds[1]["completion"] == [{"role": "assistant", "content": "a2"}]


def test_parquet_and_datasets_folder_read_like_jsonl(tmp_path):
    import datasets

    ds = datasets.Dataset.from_list([{"prompt": "q", "completion": "a"}, {"prompt": "q2", "completion": ""}])
    ds.to_parquet(str(tmp_path / "d.parquet"))
    ds.save_to_disk(str(tmp_path / "folder"))
    for source in (tmp_path / "d.parquet", tmp_path / "folder"):
        with pytest.raises(data.DataError, match=r"row 2, field 'completion': is empty"):
            data.load_demonstrations(source)


def test_ranking_pairs_for_a_tie():
    # C > B = D > A  ->  C>B, C>D (gap 1), C>A (gap 2), B>A, D>A (gap 1): 5 pairs, the tie gives none.
    assert sorted(data.ranking_pairs([[2], [1, 3], [0]])) == sorted([(2, 1, 1), (2, 3, 1), (2, 0, 2), (1, 0, 1), (3, 0, 1)])


@pytest.mark.parametrize(
    "ranking, problem",
    [([[0], [1]], "not ranked"), ([[0, 1], [1, 2]], "two tiers"), ([[0], [5], [1, 2]], "not a completion index"), ([], "non-empty"), ([[0], []], "non-empty")],
)
def test_bad_rankings_are_rejected(tmp_path, ranking, problem):
    row = {"prompt": "p", "completions": ["a", "b", "c"], "ranking": ranking}
    path = write(tmp_path / "r.jsonl", [row])
    with pytest.raises(data.DataError, match=r"row 1, field 'ranking': .*" + problem):
        data.load_preferences(path)


def test_preferences_mix_rankings_and_pairs_and_can_skip_bad_rows(tmp_path):
    rows = [
        {"prompt": "p", "completions": ["a", "b", "c"], "ranking": [[1], [0, 2]], "labeler": "alice"},
        {"prompt": "p", "chosen": "good", "rejected": "bad", "margin": 1.5},
        {"prompt": "", "chosen": "x", "rejected": "y"},
        {"prompt": "p", "completions": ["a", ""], "ranking": [[0], [1]]},
    ]
    path = write(tmp_path / "p.jsonl", rows)
    with pytest.raises(data.DataError, match="row 3, field 'prompt'"):
        data.load_preferences(path)
    rankings, bad = data.load_preferences(path, skip_bad=True)
    assert len(rankings) == 2 and [e.row for e in bad] == [3, 4] and bad[1].field == "completions[1]"
    assert rankings[1].ranking == [[0], [1]] and rankings[1].margin == 1.5


def test_prompts_accept_strings_and_messages(tmp_path):
    path = write(tmp_path / "p.jsonl", [{"id": "a", "prompt": "one"}, {"messages": [{"role": "user", "content": "two"}]}])
    prompts = data.load_prompts(path)
    assert [p.text for p in prompts] == ["one", "two"] and prompts[0].id == "a"


SYSTEM = {"role": "system", "content": "Be brief."}
USER = {"role": "user", "content": "Say hi."}
ANSWER = {"role": "assistant", "content": "Hi!"}


@pytest.mark.parametrize("bad_row, field, problem", [
    ({"messages": [SYSTEM]}, "messages[0].role", "last message of a prompt must be the user's"),
    ({"messages": [ANSWER]}, "messages", "non-empty list"),  # the trailing answer dropped leaves nothing
    ({"messages": [USER, ANSWER, ANSWER]}, "messages[1].role", "last message of a prompt must be the user's"),
    ({"messages": [{"role": "user", "content": "  "}]}, "messages[0].content", "last user message is empty"),
    ({"prompt": [USER, ANSWER]}, "prompt[1].role", "last message of a prompt must be the user's"),
    ({"messages": [{"role": "tool", "content": "x"}, USER]}, "messages[0].role", "unknown role 'tool'"),
    ({"id": "p-1", "prompt": "Say bye."}, "id", "'p-1' repeats the id of row 1"),
])
def test_a_prompt_that_does_not_end_in_a_user_message_or_repeats_an_id_is_refused(tmp_path, bad_row, field, problem):
    """A prompt is a conversation ending in a user message, as in every other record: a policy
    sampled on a system message or after an assistant turn answers nothing anyone asked. Ids are
    unique: `rlhf sample` makes one labeling item per prompt id."""
    path = write(tmp_path / "p.jsonl", [{"id": "p-1", "prompt": "one"}, bad_row])
    with pytest.raises(data.DataError) as err:
        data.load_prompts(path)
    assert (err.value.row, err.value.field) == (2, field) and problem in str(err.value) and str(path) in str(err.value)


def test_prompts_keep_a_system_message_and_drop_a_trailing_answer(tmp_path):
    path = write(tmp_path / "p.jsonl", [{"messages": [SYSTEM, USER]}, {"messages": [USER, ANSWER]}])
    assert [p.messages for p in data.load_prompts(path)] == [[SYSTEM, USER], [USER]]


@pytest.mark.parametrize("bad_row, field, problem", [
    ({"prompt": [USER], "completion": [{"role": "user", "content": "Hi!"}]}, "completion[0].role",
     "is 'user': a completion is the assistant's answer"),
    ({"prompt": [USER, ANSWER], "completion": [ANSWER]}, "prompt", "the message before the assistant's answer is the assistant's"),
    ({"prompt": [SYSTEM], "completion": "Hi!"}, "prompt", "needs a user message"),
    ({"prompt": [USER, USER], "completion": "Hi!"}, "prompt", "two 'user' messages in a row"),
    ({"prompt": [USER], "completion": [ANSWER, ANSWER]}, "completion", "two 'assistant' messages in a row"),
    ({"messages": [USER, ANSWER, SYSTEM, ANSWER]}, "messages", "the message before the assistant's answer is the system's"),
])
def test_a_prompt_completion_demonstration_meets_the_checks_of_a_messages_one(tmp_path, bad_row, field, problem):
    """The prompt/completion form was taken as given: a user's words as the completion (SFT learns
    them as the assistant's) or a prompt ending in an assistant turn (it learns to answer itself)."""
    path = write(tmp_path / "demos.jsonl", [GOOD_CHAT, bad_row])
    with pytest.raises(data.DataError) as err:
        data.load_demonstrations(path)
    assert (err.value.row, err.value.field) == (2, field) and problem in str(err.value) and str(path) in str(err.value)


def test_an_hh_transcript_prompt_is_read_as_its_turns_in_prompts_rankings_and_candidates(tmp_path):
    """As in a pair's prompt column: "\\n\\nHuman: ...\\n\\nAssistant:" was one user message holding the
    markup, which the policy then saw inside its chat template."""
    transcript = "\n\nHuman: Hi\n\nAssistant: Ahoy\n\nHuman: Your name?\n\nAssistant:"
    turns = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Ahoy"}, {"role": "user", "content": "Your name?"}]
    prompts = data.load_prompts(write(tmp_path / "p.jsonl", [{"prompt": transcript}]))
    rankings, _ = data.load_preferences(write(tmp_path / "r.jsonl", [{"prompt": transcript, "completions": ["Zorblax.", "Who?"],
                                                                      "ranking": [[0], [1]]}]))
    candidates = data.load_candidates(write(tmp_path / "c.jsonl", [{"id": "a", "prompt": transcript, "completions": ["x", "y"]}]))
    assert prompts[0].messages == rankings[0].messages == candidates[0]["messages"] == turns
