"""Batched generation (rlhf.generation) and `rlhf sample`, on a tiny random model."""

import json

import pytest
import torch

from rlhf.data import DataError, load_candidates
from rlhf.generation import generate, generate_completions, split_at_stop
from rlhf.sequences import pad
from rlhf.sample import SampleConfig, duplicate_flags, repeated_positions, resolve_duplicates, run_sample

SHORT = [{"role": "user", "content": "Hi"}]
LONG = [{"role": "user", "content": "Tell me a long story about dragons, knights and castles, with many details please."}]



pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def model(tokenizer):
    from rlhf.models import tiny_causal_lm

    model = tiny_causal_lm(tokenizer)
    # With tied embeddings a random tiny model greedily repeats its last input token (here a
    # newline, so an empty answer) whatever the context; an untied random head makes greedy output
    # depend on the context, so padding bugs show, and gives non-empty text.
    model.config.tie_word_embeddings = False
    torch.manual_seed(1)
    model.lm_head.weight = torch.nn.Parameter(torch.randn_like(model.lm_head.weight) * 0.5)
    return model


@pytest.fixture(scope="module")
def model_dir(model, tokenizer, tmp_path_factory):
    path = tmp_path_factory.mktemp("untied-tiny")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture()
def prompts_file(tmp_path):
    path = tmp_path / "prompts.jsonl"
    rows = [{"id": "a", "prompt": "What is 2+2?"}, {"id": "b", "prompt": "Name a colour."},
            {"id": "c", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi."}]}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# --- generation --------------------------------------------------------------------------------


def test_k_strings_per_prompt_and_token_budget(model, tokenizer):
    gens = generate(model, tokenizer, [SHORT, LONG], num_return_sequences=3, max_new_tokens=5, seed=0,
                    batch_size=4, progress=False)
    assert [len(row) for row in gens] == [3, 3]
    for row in gens:
        for g in row:
            assert isinstance(g.text, str) and 1 <= len(g.token_ids) <= 5
            assert g.finished == (g.token_ids[-1] == tokenizer.eos_token_id)
    texts = generate_completions(model, tokenizer, [SHORT], num_return_sequences=2, max_new_tokens=5, seed=0, progress=False)
    assert len(texts) == 1 and len(texts[0]) == 2 and all(isinstance(t, str) for t in texts[0])


def test_left_padding_gives_the_same_greedy_output_alone_or_batched(model, tokenizer):
    alone = generate(model, tokenizer, [SHORT], do_sample=False, max_new_tokens=10, progress=False)[0][0]
    batched = generate(model, tokenizer, [LONG, SHORT, LONG], do_sample=False, max_new_tokens=10, progress=False)
    assert len(batched[0][0].prompt_ids) > len(alone.prompt_ids)  # SHORT really was padded
    assert batched[1][0].token_ids == alone.token_ids
    assert len(set(alone.token_ids)) > 1  # not a degenerate constant output


def test_sampling_settings_saved_with_the_model_do_not_apply(model, tokenizer):
    """transformers fills what a generate() call leaves unset from the checkpoint's
    generation_config.json (Qwen2.5-Instruct ships repetition_penalty and top_k): greedy output must
    be the model's own argmax, whatever the checkpoint saved, and the saved config stays as it was."""
    from transformers import GenerationConfig

    plain = generate(model, tokenizer, [SHORT], do_sample=False, max_new_tokens=6, progress=False)[0][0]
    saved = model.generation_config
    # a saved setting that forbids the token greedy decoding picks first
    model.generation_config = GenerationConfig(**{**saved.to_dict(), "suppress_tokens": [plain.token_ids[0]],
                                                  "repetition_penalty": 5.0})
    try:
        again = generate(model, tokenizer, [SHORT], do_sample=False, max_new_tokens=6, progress=False)[0][0]
        assert model.generation_config.suppress_tokens == [plain.token_ids[0]]  # put back after the call
    finally:
        model.generation_config = saved
    assert again.token_ids == plain.token_ids


def test_pad_token_is_not_eos_and_padding_is_on_the_left(tokenizer):
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    ids, mask = pad([[5, 6, 7], [8]], pad_id=0, side="left")
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]


def test_stops_at_the_first_eos_and_strips_it(model, tokenizer):
    eos = tokenizer.eos_token_id
    calls = []

    def force_eos_on_fourth_token(module, inputs, output):
        calls.append(1)
        if len(calls) == 4:  # prefill gives token 1; the 4th forward picks token 4
            output[..., eos] = 1e4
        return output

    handle = model.lm_head.register_forward_hook(force_eos_on_fourth_token)
    try:
        gens = generate(model, tokenizer, [SHORT, LONG], do_sample=False, max_new_tokens=12, progress=False)
    finally:
        handle.remove()
    for row in gens:
        g = row[0]
        assert g.finished and len(g.token_ids) == 4 and g.token_ids[-1] == eos
        assert g.text == tokenizer.decode(g.token_ids[:3], skip_special_tokens=True).strip()
    assert split_at_stop([4, 2, 9, 2], [2]) == ([4, 2], True)
    assert split_at_stop([4, 9], [2]) == ([4, 9], False)


def test_stops_at_the_templates_end_of_turn_when_eos_is_another_token(tokenizer):
    """A ChatML template on a tokenizer whose EOS is <|endoftext|> (Qwen2.5 base), the model's saved
    generation config naming only that EOS: the answer still ends at <|im_end|>, as PPO's rollouts do
    (they take the same stop_token_ids)."""
    import copy

    from rlhf.generation import stop_token_ids
    from rlhf.models import tiny_causal_lm

    tok = copy.deepcopy(tokenizer)
    tok.eos_token = "<|endoftext|>"
    end_of_turn = tok.convert_tokens_to_ids("<|im_end|>")
    model = tiny_causal_lm(tok)
    assert model.generation_config.eos_token_id == tok.eos_token_id != end_of_turn
    assert end_of_turn in stop_token_ids(model, tok) and tok.eos_token_id in stop_token_ids(model, tok)
    calls = []

    def end_turn_on_third_token(module, inputs, output):
        calls.append(1)
        if len(calls) == 3:
            output[..., end_of_turn] = 1e4
        return output

    handle = model.lm_head.register_forward_hook(end_turn_on_third_token)
    try:
        g = generate(model, tok, [SHORT], do_sample=False, max_new_tokens=12, progress=False)[0][0]
    finally:
        handle.remove()
    assert g.finished and len(g.token_ids) == 3 and g.token_ids[-1] == end_of_turn


def test_seed_makes_sampling_repeatable(model, tokenizer):
    run = lambda seed: generate_completions(model, tokenizer, [SHORT], num_return_sequences=2, max_new_tokens=6,
                                            seed=seed, progress=False)
    assert run(3) == run(3)
    assert run(3) != run(4)


# --- duplicates (pure) ------------------------------------------------------------------------


def test_duplicate_detection_ignores_case_and_spacing():
    assert repeated_positions(["A cat.", "a  cat.", "Dog", ""]) == [1, 3]
    assert duplicate_flags(["A cat.", "a  cat.", "Dog"]) == ["duplicate"]
    assert duplicate_flags(["x", "", "y"]) == ["empty"]
    assert duplicate_flags(["x", "y"]) == []


def test_resample_redraws_only_the_repeats_and_gives_up_after_the_tries():
    asked = []

    def fresh(requests):
        asked.append(list(requests))
        return [f"new {r}-{i}-{len(asked)}" for r, i in requests]

    fixed = resolve_duplicates([["a", "a", "b"], ["x", "y", ""]], fresh, tries=3)
    assert asked == [[(0, 1), (1, 2)]]  # one batched call, then nothing left to redraw
    assert fixed == [["a", "new 0-1-1", "b"], ["x", "y", "new 1-2-1"]]

    calls = []
    stuck = resolve_duplicates([["a", "a"]], lambda req: calls.append(req) or ["A"] * len(req), tries=2)
    assert len(calls) == 2 and duplicate_flags(stuck[0]) == ["duplicate"]


# --- the stage -------------------------------------------------------------------------------


def test_sample_writes_valid_candidates_and_its_config(tmp_path, model_dir, prompts_file):
    out = tmp_path / "cands.jsonl"
    path = run_sample(SampleConfig(model=str(model_dir), prompts=str(prompts_file), output=str(out), k=3,
                                   max_new_tokens=6, batch_size=4, seed=1))
    assert path == out
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["a", "b", "c"]
    assert rows[2]["prompt"] == "Say hi." and rows[2]["messages"][0]["role"] == "system"
    assert all(len(r["completions"]) == 3 and r["model"] == str(model_dir) for r in rows)
    assert [c["id"] for c in load_candidates(out)] == ["a", "b", "c"]
    config = json.loads((tmp_path / "rlhf_config.json").read_text())[out.name]
    assert config["k"] == 3 and config["prompts"] == str(prompts_file)


def test_greedy_duplicates_are_flagged_or_resampled_then_flagged(tmp_path, model_dir, prompts_file):
    for mode in ("flag", "resample"):
        out = tmp_path / f"{mode}.jsonl"
        run_sample(SampleConfig(model=str(model_dir), prompts=str(prompts_file), output=str(out), k=2,
                                temperature=0, max_new_tokens=4, limit=2, duplicates=mode, resample_tries=1))
        rows = load_candidates(out)
        assert len(rows) == 2
        for row in rows:  # greedy decoding gives k identical completions; resampling cannot fix that
            assert row["completions"][0] == row["completions"][1] != ""
            assert row["flags"] == ["duplicate"]


def test_sample_into_a_labeling_database(tmp_path, model_dir, prompts_file):
    from rlhf.store import LabelStore

    db = tmp_path / "labels.db"
    assert run_sample(SampleConfig(model=str(model_dir), prompts=str(prompts_file), db=str(db), k=2,
                                   max_new_tokens=4, limit=2)) is None
    with LabelStore(db) as store:
        assert store.item_count() == 2
        item = store.next_item("alice")
        assert item.item_id in ("a", "b") and len(item.completions) == 2
    assert json.loads((tmp_path / "rlhf_config.json").read_text())["labels.db"]["stage"] == "sample"


def test_bad_k_and_bad_prompts_are_clear_errors(tmp_path, model_dir):
    for k in (1, 10):
        with pytest.raises(ValueError, match="--k must be between 2 and 9"):
            SampleConfig(k=k)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"prompt": 5}\n')
    with pytest.raises(DataError, match=r"bad.jsonl, row 2, field 'prompt'"):
        run_sample(SampleConfig(model=str(model_dir), prompts=str(bad), output=str(tmp_path / "o.jsonl")))


def test_a_prompt_past_the_context_is_refused_naming_it_before_generating(tmp_path, model_dir, model, tokenizer):
    """Prompt tokens + max_new_tokens beyond the model's positions (512 for the tiny Llama): the
    sample stage names the file, the prompt's id and its length, and writes nothing (a GPT-2 with
    learned positions failed with a bare IndexError mid-run; a rotary model read untrained positions)."""
    from rlhf.generation import check_prompts_fit, context_limit

    assert context_limit(model) == model.config.max_position_embeddings == 512
    path = tmp_path / "prompts.jsonl"
    rows = [{"id": "short", "prompt": "Say hi."}, {"id": "huge", "prompt": "word " * 600}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "o.jsonl"
    with pytest.raises(ValueError, match=r"prompts.jsonl: 1 of 2 prompts do not fit the model's context of 512 "
                                         r"positions with max_new_tokens=16: 'huge' \(6\d\d tokens\)"):
        run_sample(SampleConfig(model=str(model_dir), prompts=str(path), output=str(out), k=2, max_new_tokens=16))
    assert not out.exists()
    check_prompts_fit([496], ["edge"], 16, 512)  # exactly full: fits
    with pytest.raises(ValueError, match="'edge' \\(497 tokens\\)"):
        check_prompts_fit([497], ["edge"], 16, 512)
    check_prompts_fit([10**6], ["any"], 16, None)  # a config without a context size: nothing to check
