"""Whole conversations through every stage, the published preference layouts, and nothing lost
without a count. All rows are invented for these tests."""

from __future__ import annotations

import json

import pytest

from rlhf.data import DataError, Ranking, load_preferences, write_jsonl
from rlhf.data.conversation import as_messages, encode_scored, prompt_key, render_ids, takes_conversations
from rlhf.data.preferences import tiers_from_ratings, trl_pair_rows

SYSTEM = {"role": "system", "content": "You are a pirate captain."}


def pirate(name: str, question: str = "What is my name?") -> list[dict]:
    return [SYSTEM, {"role": "user", "content": f"My name is {name}."},
            {"role": "assistant", "content": f"Ahoy, {name}!"}, {"role": "user", "content": question}]


NAMES = ["Zorblax", "Quillon", "Marabel", "Tovik", "Ysolde", "Brannoc", "Pellum", "Idrin"]


def explicit_rows() -> list[dict]:
    """Conversational explicit-prompt pairs: the right answer depends on an earlier turn."""
    return [{"prompt": pirate(n), "chosen": [{"role": "assistant", "content": f"Yer name be {n}, matey."}],
             "rejected": [{"role": "assistant", "content": "I know not yer name, landlubber."}]} for n in NAMES]


def _records(path):
    rankings, _ = load_preferences(path)
    return [(r.messages, r.completions, r.ranking, r.margin) for r in rankings]


# --- the published layouts load to the same records as their explicit twin ---------------------


def hh(turns: list[tuple[str, str]]) -> str:
    return "".join(f"\n\n{'Human' if role == 'user' else 'Assistant'}: {text}" for role, text in turns)


def test_each_published_layout_equals_its_explicit_twin(tmp_path):
    explicit = explicit_rows()
    implicit = [{"chosen": r["prompt"] + r["chosen"], "rejected": r["prompt"] + r["rejected"]} for r in explicit]
    assert _records(write_jsonl(tmp_path / "imp.jsonl", implicit)) == _records(write_jsonl(tmp_path / "exp.jsonl", explicit))

    standard = [{"prompt": "The capital of Mars is", "chosen": " Olympus City.", "rejected": " Paris, France."},
                {"prompt": "Two plus two is", "chosen": " four.", "rejected": " five, arr."}]
    standard_implicit = [{"chosen": r["prompt"] + r["chosen"], "rejected": r["prompt"] + r["rejected"]} for r in standard]
    assert _records(write_jsonl(tmp_path / "s-imp.jsonl", standard_implicit)) == \
        _records(write_jsonl(tmp_path / "s-exp.jsonl", standard))

    # HH-RLHF: transcripts; no system role in that layout, so the twin has none either.
    no_system = [{**r, "prompt": r["prompt"][1:]} for r in explicit]
    hh_rows = [{"chosen": hh([(m["role"], m["content"]) for m in r["prompt"] + r["chosen"]]),
                "rejected": hh([(m["role"], m["content"]) for m in r["prompt"] + r["rejected"]])} for r in no_system]
    assert _records(write_jsonl(tmp_path / "hh.jsonl", hh_rows)) == \
        _records(write_jsonl(tmp_path / "hh-twin.jsonl", no_system))

    # UltraFeedback-binarized: prompt string, message lists repeating the user turn, scores.
    uf = [{"prompt": "Name a sea shanty.", "chosen": [{"role": "user", "content": "Name a sea shanty."},
                                                      {"role": "assistant", "content": "Drunken Sailor."}],
           "rejected": [{"role": "user", "content": "Name a sea shanty."}, {"role": "assistant", "content": "Jingle Bells."}],
           "score_chosen": 9.0, "score_rejected": 2.5}]
    twin = [{"prompt": "Name a sea shanty.", "chosen": "Drunken Sailor.", "rejected": "Jingle Bells.", "margin": 6.5}]
    uf_path = write_jsonl(tmp_path / "uf.jsonl", uf)
    assert [r.margin for r in load_preferences(uf_path)[0]] == [None]  # scores are a margin only when asked
    ours, _ = load_preferences(uf_path, margin_from_scores=True)
    assert [(r.messages, r.completions, r.margin) for r in ours] == \
        [(r[0], r[1], r[3]) for r in _records(write_jsonl(tmp_path / "uf-twin.jsonl", twin))]

    # K completions with ratings (UltraFeedback's raw layout): ratings -> tiers, equal ratings tied.
    rated = [{"instruction": "Say ahoy.", "source": "sea", "completions": [
        {"response": "Ahoy!", "overall_score": 4}, {"response": "Hello.", "overall_score": 2},
        {"response": "Ahoy there!", "overall_score": 4}]}]
    ranked = [{"prompt": "Say ahoy.", "completions": ["Ahoy!", "Hello.", "Ahoy there!"], "ranking": [[0, 2], [1]]}]
    got = load_preferences(write_jsonl(tmp_path / "rated.jsonl", rated))[0]
    assert _records(write_jsonl(tmp_path / "ranked.jsonl", ranked)) == [(r.messages, r.completions, r.ranking, r.margin)
                                                                        for r in got]
    assert got[0].meta == {"source": "sea"}
    assert tiers_from_ratings([3, 5, 3, 1]) == [[1], [0, 2], [3]]


def test_parquet_and_datasets_folder_read_conversations_like_jsonl(tmp_path):
    import datasets

    rows = [{"chosen": r["prompt"] + r["chosen"], "rejected": r["prompt"] + r["rejected"]} for r in explicit_rows()]
    jsonl = _records(write_jsonl(tmp_path / "p.jsonl", rows))
    ds = datasets.Dataset.from_list(rows)
    ds.to_parquet(str(tmp_path / "p.parquet"))
    ds.save_to_disk(str(tmp_path / "folder"))
    assert _records(tmp_path / "p.parquet") == jsonl == _records(tmp_path / "folder")


def test_hh_transcripts_with_crlf_or_split_into_a_prompt_column_are_parsed_into_turns(tmp_path):
    """Both were read as plain text: the markup ("Human:", "Assistant:") sat inside one user message.
    CRLF comes from a copy saved on Windows; a `prompt` column ending in "Assistant:" with chosen and
    rejected holding only the answers is how several published copies of HH-RLHF split it."""
    turns = [("user", "Hi"), ("assistant", "Ahoy"), ("user", "Your name?")]
    expected = ([{"role": r, "content": t} for r, t in turns], ["Zorblax.", "Who?"])
    crlf = [{"chosen": hh(turns + [("assistant", "Zorblax.")]).replace("\n", "\r\n"),
             "rejected": hh(turns + [("assistant", "Who?")]).replace("\n", "\r\n")}]
    split = [{"prompt": hh(turns) + "\n\nAssistant:", "chosen": " Zorblax.", "rejected": " Who?"}]
    for name, rows in (("crlf.jsonl", crlf), ("split.jsonl", split)):
        r = load_preferences(write_jsonl(tmp_path / name, rows))[0][0]
        assert (r.messages, r.completions) == expected, name
    ended = [{"prompt": hh(turns + [("assistant", "Zorblax.")]), "chosen": "a", "rejected": "b"}]
    with pytest.raises(DataError, match=r"row 1, field 'prompt\[3\].role': the last message of a prompt must be the user's"):
        load_preferences(write_jsonl(tmp_path / "ended.jsonl", ended))


def test_hh_rows_without_a_shared_prompt_name_the_row(tmp_path):
    rows = [{"chosen": hh([("user", "Hi"), ("assistant", "Ahoy")]), "rejected": hh([("user", "Hi"), ("assistant", "Yo")])},
            {"chosen": hh([("user", "Hi"), ("assistant", "Ahoy")]), "rejected": hh([("user", "Bye"), ("assistant", "Yo")])}]
    path = write_jsonl(tmp_path / "hh.jsonl", rows)
    with pytest.raises(DataError, match=r"hh.jsonl, row 2, field 'chosen'.*share no prefix that ends before an assistant"):
        load_preferences(path)
    kept, bad = load_preferences(path, skip_bad=True)
    assert len(kept) == 1 and len(bad) == 1
    # Differing before the last assistant turn is refused too, naming the row.
    forked = [{"chosen": hh([("user", "A"), ("assistant", "x"), ("user", "B"), ("assistant", "y")]),
               "rejected": hh([("user", "A"), ("assistant", "z"), ("user", "B"), ("assistant", "y")])}]
    with pytest.raises(DataError, match=r"row 1, field 'chosen'.*exactly one assistant answer"):
        load_preferences(write_jsonl(tmp_path / "forked.jsonl", forked))


@pytest.mark.parametrize("layout, row, field, problem", [
    # HH-RLHF's transcripts can end in "\n\nAssistant:" with nothing after it.
    ("hh", {"chosen": hh([("user", "Hi"), ("assistant", "Ahoy")]), "rejected": "\n\nHuman: Hi\n\nAssistant:"},
     "rejected", "is empty"),
    ("conversational implicit", {"chosen": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Ahoy"}],
                                 "rejected": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": " "}]},
     "rejected", "is empty"),
    ("standard explicit", {"prompt": "Hi", "chosen": "Ahoy", "rejected": "Ahoy"}, "rejected", "is identical to 'chosen'"),
    ("conversational explicit", {"prompt": [{"role": "user", "content": "Hi"}], "chosen": [{"role": "assistant", "content": "Ahoy"}],
                                 "rejected": [{"role": "assistant", "content": "Ahoy"}]}, "rejected", "is identical to 'chosen'"),
    ("ultrafeedback", {"prompt": "Hi", "chosen": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Ahoy"}],
                       "rejected": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Ahoy"}],
                       "score_chosen": 5.0, "score_rejected": 5.0}, "rejected", "is identical to 'chosen'"),
])
def test_every_pair_layout_refuses_an_empty_answer_and_equal_answers(layout, row, field, problem, tmp_path):
    """One rule for every layout (the explicit ones refused an empty answer, the implicit ones equal
    answers): an empty answer was read from a split transcript as a completion, and an explicit pair
    with chosen == rejected became a DPO pair with a constant loss."""
    good = {"prompt": "Q", "chosen": "Yes.", "rejected": "No."}
    path = write_jsonl(tmp_path / "pairs.jsonl", [good, row])
    with pytest.raises(DataError) as err:
        load_preferences(path)
    assert (err.value.row, err.value.field) == (2, field) and problem in str(err.value), layout
    assert "(--skip_bad_rows true skips such rows and counts them)" in str(err.value)  # the way on, named
    kept, bad = load_preferences(path, skip_bad=True)
    assert len(kept) == 1 and [e.row for e in bad] == [2]


def test_ultrafeedback_style_rows_whose_lists_hold_more_than_the_prompt_string_keep_the_whole_conversation(tmp_path):
    """`prompt` is the last user message as a string while chosen/rejected repeat the whole
    conversation (a system message, earlier turns): the conversation is the prompt. Such rows were
    refused; lists that disagree before the answer, or do not end in the prompt string, still are."""
    context = pirate("Zorblax")
    answer = lambda text: [{"role": "assistant", "content": text}]  # noqa: E731
    rows = [{"prompt": "What is my name?", "chosen": context + answer("Zorblax, matey."), "rejected": context + answer("Who?"),
             "score_chosen": 9.0, "score_rejected": 2.0}]
    rankings, _ = load_preferences(write_jsonl(tmp_path / "uf.jsonl", rows), margin_from_scores=True)
    assert (rankings[0].messages, rankings[0].completions, rankings[0].margin) == (context, ["Zorblax, matey.", "Who?"], 7.0)
    forked = [{**rows[0], "rejected": pirate("Quillon") + answer("Who?")}]
    with pytest.raises(DataError, match=r"row 1, field 'rejected': the conversation before the answer differs from chosen's"):
        load_preferences(write_jsonl(tmp_path / "forked.jsonl", forked))
    other = [{**rows[0], "prompt": "Where is my ship?"}]
    with pytest.raises(DataError, match=r"row 1, field 'chosen': a message list of more than one message must be"):
        load_preferences(write_jsonl(tmp_path / "other.jsonl", other))


def test_margin_from_scores_refuses_a_chosen_that_scores_below_rejected(tmp_path):
    """score_chosen < score_rejected gave a negative margin, which lets rejected outscore chosen at no
    loss: swapped columns were trained silently. Equal scores are a tie (see test_data_layouts)."""
    rows = [{"prompt": "Hi", "chosen": "Ahoy", "rejected": "Yo", "score_chosen": s, "score_rejected": 5.0} for s in (6.0, 2.0)]
    path = write_jsonl(tmp_path / "uf.jsonl", rows)
    with pytest.raises(DataError, match=r"row 2, field 'score_chosen': is 2, below score_rejected \(5\)"):
        load_preferences(path, margin_from_scores=True)
    kept, bad = load_preferences(path, margin_from_scores=True, skip_bad=True)
    assert [r.margin for r in kept] == [1.0] and [e.row for e in bad] == [2]
    missing = write_jsonl(tmp_path / "missing.jsonl", [{**rows[0], "score_rejected": None}])
    with pytest.raises(DataError, match=r"row 1, field 'score_rejected': missing"):  # was named score_chosen
        load_preferences(missing, margin_from_scores=True)


# --- exports: TRL's forms, read back as the same records, accepted by TRL -----------------------


def test_exports_round_trip_in_both_forms(tmp_path):
    records = [{"prompt": pirate("Zorblax"), "completions": ["Zorblax!", "Dunno.", "Zorb?"], "ranking": [[0], [2], [1]],
                "item_id": "a", "labeler": "ann"},
               {"prompt": "Single turn?", "completions": ["Yes.", "No."], "ranking": [[1], [0]], "item_id": "b",
                "labeler": "bo"}]
    expected = {(prompt_key(r["prompt"]), r["completions"][b], r["completions"][w])
                for r in records for b, w, _ in Ranking(r["prompt"], r["completions"], r["ranking"]).pairs()}
    for form in ("explicit", "implicit"):
        rows = trl_pair_rows(records, form)
        assert len(rows) == 4 and all(isinstance(r["chosen"], list) for r in rows)  # conversational: a multi-turn context
        back, _ = load_preferences(write_jsonl(tmp_path / f"{form}.jsonl", rows))
        assert {(r.key, r.completions[0], r.completions[1]) for r in back} == expected
    single = trl_pair_rows(records[1:], "explicit")
    assert single == [{"prompt": "Single turn?", "chosen": "No.", "rejected": "Yes.", "item_id": "b", "tier_gap": 1,
                       "labeler": "bo"}]


@pytest.mark.slow
def test_trl_trainers_accept_our_exports(tmp_path, tiny_model_dir):
    """TRL 1.16's RewardTrainer (implicit form, which it recommends) and DPOTrainer (explicit) each
    take one step on our exported pairs of multi-turn conversations."""
    import datasets
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
    from trl import DPOConfig, DPOTrainer, RewardConfig, RewardTrainer

    records = [{"prompt": pirate(n), "completions": [f"Yer name be {n}.", "Who knows?"], "ranking": [[0], [1]],
                "item_id": n, "labeler": "sim"} for n in NAMES[:4]]
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    common = dict(max_steps=1, per_device_train_batch_size=2, report_to=[], use_cpu=True, bf16=False,
                  save_strategy="no", logging_steps=1)
    implicit = datasets.Dataset.from_list(trl_pair_rows(records, "implicit"))
    rm = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1)
    rm.config.pad_token_id = tok.pad_token_id
    before = {n: p.detach().clone() for n, p in rm.named_parameters()}
    RewardTrainer(model=rm, args=RewardConfig(output_dir=str(tmp_path / "rm"), **common), train_dataset=implicit,
                  processing_class=tok).train()
    assert any(not torch.equal(before[n], p) for n, p in rm.named_parameters())
    explicit = datasets.Dataset.from_list(trl_pair_rows(records, "explicit"))
    policy = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    trainer = DPOTrainer(model=policy, args=DPOConfig(output_dir=str(tmp_path / "dpo"), **common),
                         train_dataset=explicit, processing_class=tok)
    result = trainer.train()
    assert result.global_step == 1 and result.training_loss == result.training_loss  # finite, not NaN


# --- the reward model's input holds the earlier turn; the split keeps conversations apart -------


def test_reward_input_holds_the_earlier_turn_and_split_keeps_conversations_apart(tokenizer):
    from rlhf.reward.data import split_by_prompt
    from rlhf.reward.model import chat_texts, encode

    rankings = [Ranking(prompt=pirate(n), completions=[f"Yer name be {n}.", "No idea."], ranking=[[0], [1]])
                for n in NAMES]
    assert len({r.key for r in rankings}) == 8  # eight conversations ending in one question
    train, held = split_by_prompt(rankings, 0.25, seed=0)
    assert len(held) == 2 and not {r.key for r in train} & {r.key for r in held}
    text = chat_texts(tokenizer, [rankings[0].prompt], ["Yer name be Zorblax."])[0]
    assert "You are a pirate captain." in text and "My name is Zorblax." in text
    ids = encode(tokenizer, [rankings[0].prompt], ["Yer name be Zorblax."], 512)[0]
    assert "My name is Zorblax." in tokenizer.decode(ids)
    # A string prompt and its one-message list are the same record.
    assert prompt_key("Hi") == prompt_key([{"role": "user", "content": "Hi"}])


def test_truncation_cuts_oldest_turns_first_and_never_makes_pairs_identical(tokenizer):
    long_turns = [SYSTEM] + [m for i in range(6) for m in ({"role": "user", "content": f"Old question {i} " * 8},
                                                           {"role": "assistant", "content": f"Old answer {i} " * 8})]
    prompt = long_turns + [{"role": "user", "content": "Which ship?"}]
    tail = " and she sails at dawn with forty cannons and a crew of brave sailors" * 4
    a, b = encode_scored(tokenizer, prompt, "The Black Gull" + tail, 96), encode_scored(tokenizer, prompt, "The Red Gull" + tail, 96)
    for e in (a, b):
        assert len(e.ids) <= 96 and e.turns_dropped > 0
    assert a.ids != b.ids  # left truncation made these identical: the answers differ only in their first words
    short = encode_scored(tokenizer, prompt, "Gull.", 96)
    text = tokenizer.decode(short.ids)
    assert "pirate captain" in text and "Which ship?" in text and "Old question 0" not in text
    assert short.completion_tokens_cut == 0 and text.rstrip().endswith("Gull.<|im_end|>")


def test_reward_stage_counts_every_cut_and_drop_in_metrics(tmp_path, tiny_model_dir):
    from rlhf.reward import RewardConfig, train_reward

    tail = " and then the same long shared ending about ropes and sails" * 6
    rows = [{"prompt": f"Tell me about ship {i}.", "chosen": f"Ship {i} is fast{tail} X",
             "rejected": f"Ship {i} is fast{tail} Y"} for i in range(4)]  # differ only at the very end
    rows += [{"prompt": pirate(n), "chosen": f"Yer name be {n}.", "rejected": "No idea."} for n in NAMES]
    data = write_jsonl(tmp_path / "pairs.jsonl", rows)
    metrics = train_reward(RewardConfig(data=str(data), model=str(tiny_model_dir), output_dir=str(tmp_path / "rm"),
                                        max_length=48, max_steps=1, eval_fraction=0.0, calibration_data="train"))
    saved = json.loads((tmp_path / "rm" / "metrics.json").read_text())
    loss = saved["data_loss"]["train"]
    assert loss["rankings_dropped_identical"] == 4 and loss["pairs_dropped_identical"] == 4
    assert loss["completion_tail_cut"] >= 8 and loss["prompt_turns_dropped"] > 0
    assert metrics["train"]["rankings"] == 8  # only the pirate pairs were trained and evaluated


# --- functions written for strings keep working; conversation-aware ones get the context ---------


def test_reward_fn_and_preferences_get_strings_or_conversations():
    from rlhf.labelers import SimulatedLabeler
    from rlhf.ppo.rollout import score

    seen = {}

    def old_style(prompts, completions):
        seen["old"] = prompts
        return [0.0] * len(completions)

    @takes_conversations
    def new_style(prompts, completions):
        seen["new"] = prompts
        return [float(as_messages(p)[0]["role"] == "system") for p in prompts]

    def annotated(prompts: list[list[dict]], completions):
        seen["annotated"] = prompts
        return [0.0] * len(completions)

    prompts = [pirate("Zorblax"), "Plain?"]
    score(prompts, ["a", "b"], reward_fn=old_style)
    assert seen["old"] == ["What is my name?", "Plain?"]
    assert score(prompts, ["a", "b"], reward_fn=new_style).tolist() == [1.0, 0.0] and seen["new"] == prompts
    score(prompts, ["a", "b"], reward_fn=annotated)
    assert seen["annotated"] == prompts

    @takes_conversations
    def remembers_name(prompt, completion):
        name = next(m["content"] for m in as_messages(prompt) if "My name is" in m["content"])[11:-1]
        return float(name in completion)

    labeler = SimulatedLabeler(remembers_name, noise=0.0)
    assert labeler.rank(pirate("Zorblax"), ["Who?", "Zorblax!"]) == [[1], [0]]


def test_a_long_conversation_is_fitted_in_a_few_renders_with_the_turns_a_turn_by_turn_search_drops(tokenizer, monkeypatch):
    """Dropping the oldest turn one at a time rendered the whole conversation once per turn: a
    400-turn row took 44 s per completion for the reward model and for SFT. The search now renders
    about log2(turns) times and keeps exactly the turns the one-at-a-time search kept."""
    import datasets

    import rlhf.tokens
    from rlhf.data.conversation import drop_oldest_turn
    from rlhf.sft import fit_rows

    prompt = [SYSTEM] + [m for i in range(120) for m in ({"role": "user", "content": f"Question {i} " * (1 + i % 5)},
                                                         {"role": "assistant", "content": f"Answer {i} " * (1 + i % 3)})]
    prompt.append({"role": "user", "content": "Which ship?"})
    kept, turns = prompt, 0  # the one-at-a-time reference
    while len(render_ids(tokenizer, kept, "The Black Gull.")) > 200:
        kept, turns = drop_oldest_turn(kept), turns + 1
    renders = []
    real = rlhf.tokens.encode_chat
    monkeypatch.setattr(rlhf.tokens, "encode_chat", lambda *a, **k: renders.append(1) or real(*a, **k))
    encoded = encode_scored(tokenizer, prompt, "The Black Gull.", 200)
    assert encoded.turns_dropped == turns > 50 and encoded.ids == render_ids(tokenizer, kept, "The Black Gull.")
    assert len(renders) <= 2 * 10, len(renders)  # two renders (prompt, prompt + answer) per step, ~log2(121) steps
    renders.clear()
    rows, counts = fit_rows(tokenizer, datasets.Dataset.from_list(
        [{"prompt": prompt, "completion": [{"role": "assistant", "content": "The Black Gull."}]}]), 200, "left", "d.jsonl")
    assert rows[0]["prompt"] == kept and counts["prompt_turns_dropped"] == 1 and len(renders) <= 12, len(renders)


# --- SFT: every cut and drop counted; all too long names the longest prompt ---------------------


def test_sft_fit_rows_counts_cuts_and_drops(tokenizer, tmp_path):
    import datasets

    from rlhf.sft import fit_rows

    def row(prompt, answer):
        return {"prompt": prompt, "completion": [{"role": "assistant", "content": answer}]}

    rows = [row([{"role": "user", "content": "Short?"}], "Yes."),
            row(pirate("Zorblax", "Long ago? " * 3), "Aye."),  # fits once the oldest turn goes
            row([{"role": "user", "content": "Tell a tale."}], "Once upon a tide " * 30),  # answer cut
            row([{"role": "user", "content": "word " * 200}], "Too late.")]  # prompt alone fills it
    ds = datasets.Dataset.from_list(rows)
    n = len(render_ids(tokenizer, pirate("Zorblax", "Long ago? " * 3), "Aye."))
    kept, counts = fit_rows(tokenizer, ds, n - 5, "left", "demos.jsonl")
    assert counts == {"rows": 4, "prompt_turns_dropped": 1, "answer_cut": 1, "dropped_no_answer": 1}
    assert len(kept) == 3 and kept[1]["prompt"][0] == SYSTEM and len(kept[1]["prompt"]) == 2
    _, right = fit_rows(tokenizer, ds, n - 5, "right", "demos.jsonl")
    # TRL's own side keeps the start: the pirate row's prompt then fills max_length and the row is lost.
    assert right == {"rows": 4, "prompt_turns_dropped": 0, "answer_cut": 1, "dropped_no_answer": 2}
    with pytest.raises(DataError, match=r"demos.jsonl.*longest prompt \(demonstration 4\) is \d+ tokens: max_length=\d+ would fit"):
        fit_rows(tokenizer, ds, 10, "left", "demos.jsonl")  # the template alone is longer


def test_sft_metrics_count_dropped_rows(tmp_path, tiny_model_dir):
    from rlhf import SFTConfig, run_sft

    rows = [{"messages": [{"role": "user", "content": f"Say {i}."}, {"role": "assistant", "content": f"{i}."}]}
            for i in range(6)]
    rows += [{"messages": [{"role": "user", "content": "word " * 80}, {"role": "assistant", "content": "ok"}]}] * 2
    data = write_jsonl(tmp_path / "d.jsonl", rows)
    out = run_sft(SFTConfig(model=str(tiny_model_dir), data=str(data), output_dir=str(tmp_path / "sft"), max_steps=1,
                            batch_size=2, max_length=48, eval_fraction=0.0, save_steps=10))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data_loss"]["data"]["dropped_no_answer"] == 2 and metrics["train_rows"] == 6


def test_dpo_pairs_keep_the_whole_conversation():
    from rlhf.dpo import ranking_to_pairs

    rows = ranking_to_pairs([Ranking(prompt=pirate("Zorblax"), completions=["Zorblax!", "Who?"], ranking=[[0], [1]])])
    assert rows == [{"prompt": pirate("Zorblax"), "chosen": [{"role": "assistant", "content": "Zorblax!"}],
                     "rejected": [{"role": "assistant", "content": "Who?"}]}]


# --- end to end: a pirate-captain conversation survives every stage ------------------------------


@pytest.mark.slow
def test_pipeline_carries_the_conversation_through_every_stage(tmp_path, tiny_model_dir, monkeypatch):
    import yaml

    import rlhf.reward.model as reward_model
    import rlhf.reward.trainer as reward_trainer
    from labeling_app.app import item_json
    from rlhf.data import load_candidates
    from rlhf.pipeline import run_pipeline
    from rlhf.store import LabelStore

    prompts = write_jsonl(tmp_path / "prompts.jsonl", [{"id": n, "messages": pirate(n)} for n in NAMES[:6]])
    seen = {"reward": [], "ppo": []}

    def spy(fn, where):
        def wrapped(tokenizer, prompts, completions, *args, **kwargs):
            out = fn(tokenizer, prompts, completions, *args, **kwargs)
            seen[where] += [tokenizer.decode(getattr(x, "ids", x)) for x in out]
            return out
        return wrapped

    monkeypatch.setattr(reward_trainer, "encode_detailed", spy(reward_trainer.encode_detailed, "reward"))
    monkeypatch.setattr(reward_model, "encode", spy(reward_model.encode, "ppo"))
    run = tmp_path / "run"
    config = {"run_dir": str(run), "model": str(tiny_model_dir), "seed": 0, "label_mode": "simulated",
              "sft": {"adapter": "lora", "max_steps": 1, "batch_size": 4, "max_length": 128},
              "sample": {"prompts": str(prompts), "k": 3, "max_new_tokens": 6, "batch_size": 18},
              "label": {"preference": "concise", "num_labelers": 2, "noise": 0.0, "db": str(tmp_path / "labels.db")},
              "reward": {"epochs": 1, "batch_size": 2, "max_length": 256, "eval_fraction": 0.34,
                         "calibration_data": "train"},
              "ppo": {"prompts": str(prompts), "steps": 1, "batch_size": 4, "max_new_tokens": 6, "ppo_epochs": 1},
              "dpo": {"enabled": False},
              "eval": {"prompts": str(prompts), "judge": "simulated", "limit": 2, "max_new_tokens": 4, "bootstrap": 100}}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(config))
    run_pipeline(tmp_path / "p.yaml")

    # The reward model's input, in training and as PPO's reward, holds the system prompt and the name.
    for where in ("reward", "ppo"):
        assert seen[where] and all("You are a pirate captain." in t and "My name is" in t for t in seen[where]), where
    # The labeler's page: the store's assignment carries the earlier turns to the page's context box.
    candidates = load_candidates(run / "sample" / "candidates.jsonl")
    with LabelStore(tmp_path / "check.db") as store:
        store.add_items(candidates)
        page = json.loads(item_json(store.next_item("newcomer")))
    assert page["prompt"] == "What is my name?" and "System: You are a pirate captain." in page["context"]
    assert "User: My name is" in page["context"]
    # The exports: rankings and TRL pairs hold the whole conversation.
    rankings = [json.loads(line) for line in (run / "label" / "rankings.jsonl").read_text().splitlines()]
    assert rankings and all(r["prompt"][0] == SYSTEM and len(r["prompt"]) == 4 for r in rankings)
    with LabelStore(tmp_path / "labels.db") as store:
        pairs = store.pairs(form="implicit")
    assert pairs and all(p["chosen"][0] == SYSTEM and p["chosen"][-1]["role"] == "assistant" for p in pairs)


# --- rlhf reward-eval ------------------------------------------------------------------------------


def test_reward_eval_accuracy_ci_groups_and_layouts_agree(tmp_path, tiny_model_dir, tokenizer, capsys):
    from rlhf.cli import main
    from rlhf.reward import RewardModel
    from rlhf.reward.model import build_reward_model, save_reward_model

    rm_dir = save_reward_model(build_reward_model(str(tiny_model_dir), tokenizer.pad_token_id, seed=3), tokenizer,
                               tmp_path / "rm", bias=0.25, std=1.0, max_length=256)
    explicit = [{**r, "source": "memory" if i % 2 else "tone"} for i, r in enumerate(explicit_rows())]
    implicit = [{"chosen": r["prompt"] + r["chosen"], "rejected": r["prompt"] + r["rejected"], "source": r["source"]}
                for r in explicit]
    results = []
    for name, rows in (("explicit", explicit), ("implicit", implicit)):
        path = write_jsonl(tmp_path / f"{name}.jsonl", rows)
        assert main(["reward-eval", "--model", str(rm_dir), "--data", str(path), "--group_by", "source",
                     "--output", str(tmp_path / name), "--bootstrap", "200"]) == 0
        results.append(json.loads((tmp_path / name / "reward_eval.json").read_text()))
    assert "accuracy" in capsys.readouterr().out
    a, b = results
    assert a["accuracy"] == b["accuracy"] and a["mean_margin"] == pytest.approx(b["mean_margin"])
    # By hand from RewardModel.score, which renders the same whole conversations.
    rm = RewardModel.load(rm_dir)
    chosen = rm.score([r["prompt"] for r in explicit], [r["chosen"][0]["content"] for r in explicit]).tolist()
    rejected = rm.score([r["prompt"] for r in explicit], [r["rejected"][0]["content"] for r in explicit]).tolist()
    correct = [1.0 if c > r else 0.0 if c < r else 0.5 for c, r in zip(chosen, rejected)]
    assert a["pairs"] == 8 and a["accuracy"] == pytest.approx(sum(correct) / 8)
    assert a["mean_margin"] == pytest.approx(sum(c - r for c, r in zip(chosen, rejected)) / 8, abs=1e-5)
    assert a["ci95"][0] <= a["accuracy"] <= a["ci95"][1]
    for source in ("memory", "tone"):
        mine = [c for c, r in zip(correct, explicit) if r["source"] == source]
        assert a["by_group"][source]["pairs"] == 4 and a["by_group"][source]["accuracy"] == pytest.approx(sum(mine) / 4)
    md = (tmp_path / "explicit" / "reward_eval.md").read_text()
    assert "| source = memory | 4 |" in md and "95% CI" in md
    # the length-bias check of every reward evaluation, over the same pairs
    lengths = [(len(tokenizer(r["chosen"][0]["content"], add_special_tokens=False)["input_ids"]),
                len(tokenizer(r["rejected"][0]["content"], add_special_tokens=False)["input_ids"])) for r in explicit]
    unequal = [(c, r, lc > lr) for (c, r), (lc, lr) in zip(zip(chosen, rejected), lengths) if lc != lr]
    bias = a["length_bias"]
    assert bias["pairs"] == 8 and bias["unequal_length_pairs"] == len(unequal)
    if unequal:
        prefers_longer = [(c > r) == chosen_longer for c, r, chosen_longer in unequal]
        assert bias["model_prefers_longer"] == pytest.approx(sum(prefers_longer) / len(unequal))
    assert "Length bias:" in md


def test_dpo_counts_the_pairs_trl_will_cut(tokenizer):
    from rlhf.dpo import length_report, ranking_to_pairs

    rankings = [Ranking(prompt=pirate("Zorblax"), completions=["Aye.", "Nay."], ranking=[[0], [1]]),
                Ranking(prompt="Short?", completions=["Yes " * 80, "No."], ranking=[[0], [1]]),
                Ranking(prompt="word " * 120, completions=["Yes.", "No."], ranking=[[0], [1]])]
    report = length_report(tokenizer, ranking_to_pairs(rankings), 96)
    assert report == {"stage": "dpo", "max_length": 96, "pairs": 3, "pairs_cut": 2, "pairs_without_answer_tokens": 1}


def test_store_takes_a_conversation_prompt_and_exports_it_whole(tmp_path):
    from rlhf.store import LabelStore

    with LabelStore(tmp_path / "s.db", seed=0) as store:
        store.add_items([{"id": "z", "prompt": pirate("Zorblax"), "completions": ["Zorblax!", "Who?"]}])
        item = store.next_item("ann")
        assert item.prompt == "What is my name?" and item.conversation == pirate("Zorblax")
        assert item.earlier_turns == pirate("Zorblax")[:3]
        store.submit("ann", item.item_id, item.token, [1, 2] if item.completions[0] == "Zorblax!" else [2, 1])
        (row,) = store.rankings()
    assert row["prompt"] == pirate("Zorblax") and row["ranking"] == [[0], [1]] and "messages" not in row


def test_reward_eval_group_by_refuses_a_field_no_row_has_and_counts_rows_without_it(tmp_path, tiny_model_dir,
                                                                                   tokenizer, capsys):
    from rlhf.cli import main
    from rlhf.reward.model import build_reward_model, save_reward_model

    rows = [{**r, "source": "memory" if i % 2 else "tone"} for i, r in enumerate(explicit_rows())]
    path = write_jsonl(tmp_path / "pairs.jsonl", rows)
    # A misspelt column is refused before any model loads (there is none here), naming the fields there are.
    assert main(["reward-eval", "--model", str(tmp_path / "no-model"), "--data", str(path), "--group_by", "nosuchcol",
                 "--output", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "field 'nosuchcol'" in err and "'source'" in err
    assert not (tmp_path / "x").exists()
    # Rows without the field while others have it: kept in the group "?", and counted.
    del rows[0]["source"]
    path = write_jsonl(tmp_path / "pairs.jsonl", rows)
    rm_dir = save_reward_model(build_reward_model(str(tiny_model_dir), tokenizer.pad_token_id, seed=3), tokenizer,
                               tmp_path / "rm", bias=0.0, std=1.0, max_length=256)
    assert main(["reward-eval", "--model", str(rm_dir), "--data", str(path), "--group_by", "source",
                 "--output", str(tmp_path / "y"), "--bootstrap", "20"]) == 0
    result = json.loads((tmp_path / "y" / "reward_eval.json").read_text())
    assert result["group_by_missing_rankings"] == 1 and result["by_group"]["?"]["pairs"] == 1
    assert "1 rankings have no 'source'" in capsys.readouterr().out
