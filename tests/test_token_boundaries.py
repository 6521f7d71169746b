"""Tokenization where the prompt ends and the answer starts, and where an answer ends: SFT, DPO,
PPO and sampling must see the same prompt ids, the ones generation continues from."""

import datasets
import pytest

from rlhf.tokens import encode_chat, encode_prompt_completion

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

PROMPT = [{"role": "user", "content": "Count to two."}]
# SmolLM2's template ends the generation prompt in "assistant\n"; an answer starting with spaces or
# newlines merges with that "\n" when the conversation is tokenized in one piece ("\n " is one token).
MERGING = ["  two", "\n\nOne, two."]


def _answer(text):
    return [{"role": "assistant", "content": text}]


@pytest.mark.parametrize("text", MERGING + ["One, two."])
def test_prompt_ids_are_the_generation_prompt_and_the_answer_follows_them(tokenizer, text):
    """TRL #5213 (prompt ids not a prefix of prompt+completion ids): the split used to be where the
    ids part, so the answer started with a "\\n " token the policy never sees after its prompt."""
    ids, n = encode_prompt_completion(tokenizer, PROMPT, _answer(text))
    assert ids[:n] == encode_chat(tokenizer, PROMPT, add_generation_prompt=True)
    assert tokenizer.decode(ids[n:]) == text + "<|im_end|>\n"


def test_the_merge_is_real(tokenizer):
    # What the tests above guard against: tokenized in one piece, the prompt's ids are no prefix.
    alone = encode_chat(tokenizer, PROMPT, add_generation_prompt=True)
    for text in MERGING:
        assert encode_chat(tokenizer, PROMPT + _answer(text))[:len(alone)] != alone


def test_dpo_pairs_share_the_generation_prompt(tokenizer):
    from rlhf.dpo import length_report, tokenize_pairs

    rows = [{"prompt": PROMPT, "chosen": _answer(MERGING[0]), "rejected": _answer("One, two.")}]
    row = tokenize_pairs(datasets.Dataset.from_list(rows), tokenizer)[0]
    assert row["prompt_ids"] == encode_chat(tokenizer, PROMPT, add_generation_prompt=True)
    assert tokenizer.decode(row["chosen_ids"]) == MERGING[0] + "<|im_end|>\n"
    assert tokenizer.decode(row["rejected_ids"]) == "One, two.<|im_end|>\n"
    longest = len(row["prompt_ids"]) + max(len(row["chosen_ids"]), len(row["rejected_ids"]))
    assert length_report(tokenizer, rows, longest)["pairs_cut"] == 0  # counted as tokenized
    assert length_report(tokenizer, rows, longest - 1)["pairs_cut"] == 1


def test_sft_learns_the_answer_after_the_generation_prompt(tokenizer):
    from rlhf.sft import fit_rows, tokenize_demonstrations

    rows = [{"prompt": PROMPT, "completion": _answer(MERGING[1]), "form": "prompt_completion"}]
    row = tokenize_demonstrations(datasets.Dataset.from_list(rows), tokenizer)[0][0]
    start = row["completion_mask"].index(1)
    assert row["input_ids"][:start] == encode_chat(tokenizer, PROMPT, add_generation_prompt=True)
    assert tokenizer.decode(row["input_ids"][start:]) == MERGING[1] + "<|im_end|>\n"
    # fit_rows measures the row as it is tokenized: at exactly its length nothing is cut
    _, counts = fit_rows(tokenizer, datasets.Dataset.from_list(rows), len(row["input_ids"]), "right", "demos")
    assert counts["answer_cut"] == 0
    _, counts = fit_rows(tokenizer, datasets.Dataset.from_list(rows), len(row["input_ids"]) - 1, "right", "demos")
    assert counts["answer_cut"] == 1


def test_one_bos_when_the_template_writes_it_and_the_tokenizer_would_add_it(tokenizer):
    """Llama-3 style (transformers/vLLM double-BOS reports): the template writes BOS and the tokenizer
    adds one on every call. Every stage's ids hold it once: chat text is never encoded with
    add_special_tokens."""
    import copy

    from rlhf.dpo import tokenize_pairs
    from rlhf.generation import encode_prompt
    from rlhf.reward.model import encode

    tok = copy.deepcopy(tokenizer)
    tok.add_special_tokens({"bos_token": "<|begin_of_text|>"})
    tok.add_bos_token = True
    tok.chat_template = "{{ bos_token }}" + tokenizer.chat_template
    bos = tok.bos_token_id
    assert tok("Hi")["input_ids"][0] == bos  # the tokenizer does add it
    prompt, answer = [{"role": "user", "content": "Hi"}], _answer("Yo")
    pair = tokenize_pairs(datasets.Dataset.from_list([{"prompt": prompt, "chosen": answer,
                                                       "rejected": _answer("No")}]), tok)[0]
    for ids in (encode_prompt(tok, prompt), encode_prompt_completion(tok, prompt, answer)[0],
                encode(tok, ["Hi"], ["Yo"], 512)[0], pair["prompt_ids"] + pair["chosen_ids"]):
        assert ids[0] == bos and ids.count(bos) == 1
