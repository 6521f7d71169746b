"""Each ranking's conversation run once for its K completions (`share_prompt`): the layout of
`rlhf.sequences.pad_shared_prompts` by hand, then the same scores and the same gradients as the
plain right-padded forward on a tiny random Llama, LoRA and full, for pairs, a K=4 ranking with a
tie, multi-turn prompts, rankings of different prompt lengths and prompts cut to fit."""

import pytest
import torch

from rlhf.data import Ranking
from rlhf.reward.loss import ranking_loss
from rlhf.reward.model import build_reward_model, prepare_for_training
from rlhf.reward.config import RewardConfig
from rlhf.reward.trainer import batch_scores, encode_rankings, make_batch, train_step
from rlhf.sequences import MIN_SHARED_PREFIX, pad_shared_prompts

pytestmark = pytest.mark.usefixtures("one_thread")

PAD = 0


def _real(ids: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
    return [row[m.bool()].tolist() for row, m in zip(ids, mask)]


def test_layout_runs_each_groups_shared_tokens_once_and_keeps_every_row():
    common = list(range(100, 100 + MIN_SHARED_PREFIX))  # the template's header, in every row
    rows = [common + [1, 2, 3, 7], common + [1, 2, 3, 8, 9],  # a pair sharing 3 prompt tokens
            common + [4, 5, 6], common + [4, 5, 6], common + [4, 5, 7], common + [4, 8]]  # K=4, two identical
    ids, mask, prompt_len, prefix_len, sizes = pad_shared_prompts(rows, [2, 4], PAD)
    assert _real(ids, mask) == rows and sizes == [2, 4]  # nothing lost, nothing reordered
    # group 1 shares common + [4]; the identical rows could share all, but every row keeps a token after
    assert prompt_len == MIN_SHARED_PREFIX + 3 and prefix_len == MIN_SHARED_PREFIX
    assert mask[:2, :prompt_len].sum(1).tolist() == [MIN_SHARED_PREFIX + 3] * 2
    assert mask[2:, :prompt_len].sum(1).tolist() == [MIN_SHARED_PREFIX + 1] * 4  # right-padded within the part
    for a, b in ((0, 2), (2, 6)):  # the shared columns are identical within a group
        assert (ids[a:b, :prompt_len] == ids[a, :prompt_len]).all()
        assert (mask[a:b, :prompt_len] == mask[a, :prompt_len]).all()
    assert (mask[:, prompt_len:].sum(1) >= 1).all()


def test_layout_splits_a_group_that_shares_nothing_and_falls_back_when_none_shares():
    rows = [[1, 2, 3], [9, 2, 3], [1, 2], [1, 5]]  # group 0 differs at its first token (a prompt cut differently)
    ids, mask, prompt_len, prefix_len, sizes = pad_shared_prompts(rows, [2, 2], PAD)
    assert sizes == [1, 1, 2] and (prompt_len, prefix_len) == (1, 0)  # group 1 shares [1]; the others run alone
    assert _real(ids, mask) == rows and (mask[:, prompt_len:].sum(1) >= 1).all()
    ids, mask, prompt_len, prefix_len, sizes = pad_shared_prompts(rows[:2], [2], PAD)
    assert (prompt_len, prefix_len, sizes) == (0, 0, [2])
    assert _real(ids, mask) == rows[:2] and (mask[:, 0] == 1).all()  # plain right padding
    assert pad_shared_prompts([[1, 2], [1, 3]], [1, 1], PAD)[2] == 0  # no group of two: nothing to share
    with pytest.raises(ValueError, match="add up to 3"):
        pad_shared_prompts([[1, 2], [1, 3]], [1, 2], PAD)


MULTI_TURN = [{"role": "system", "content": "You answer in one short sentence."},
              {"role": "user", "content": "Name a prime number."},
              {"role": "assistant", "content": "Seven."},
              {"role": "user", "content": "And an even one?"}]

RANKINGS = [
    Ranking("What is the capital of France?", ["Paris.", "It is Paris, a city on the Seine."], [[0], [1]]),
    Ranking("Say hi", ["hi", "Hello there! How can I help you today?"], [[1], [0]]),  # a shorter prompt
    Ranking("List three colours, please, and keep it short for me.",  # K=4 with a tie
            ["Red, green, blue.", "red green blue", "Colours: red, yellow and blue.", "No."], [[0, 2], [1], [3]]),
    Ranking(MULTI_TURN, ["Two.", "Four is even.", "Seven again."], [[1], [0], [2]]),
]


@pytest.fixture(scope="module")
def base(tiny_model_dir, tokenizer):
    return build_reward_model(str(tiny_model_dir), tokenizer.pad_token_id, seed=3)


def _trainable(base, train: str):
    import copy

    model = prepare_for_training(copy.deepcopy(base), train)
    torch.manual_seed(0)
    with torch.no_grad():  # LoRA's B starts at 0 (A's gradient would be 0 too): make both matter
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    return model


def _scores_and_grads(model, examples, share: bool, pad_id: int):
    model.zero_grad(set_to_none=True)
    batch = make_batch(examples, pad_id, share_prompt=share)
    scores = batch_scores(model, batch, "cpu")
    ranking_loss(scores, batch["index"], batch["margin"], "davidson", 1.0).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    return scores.detach(), grads, batch


@pytest.mark.parametrize("train", ["lora", "full"])
@pytest.mark.parametrize("case", ["pairs", "k4_tie", "multi_turn", "mixed_lengths", "cut_to_fit"])
def test_shared_prompt_scores_and_gradients_equal_the_plain_forward(base, tokenizer, train, case):
    picked = {"pairs": RANKINGS[:2], "k4_tie": RANKINGS[2:3], "multi_turn": RANKINGS[3:],
              "mixed_lengths": RANKINGS, "cut_to_fit": RANKINGS}[case]
    max_length = 40 if case == "cut_to_fit" else 512  # prompts lose their oldest tokens, each row its own cut
    examples, counts = encode_rankings(tokenizer, picked, max_length)
    if case == "cut_to_fit":
        assert counts["prompt_tokens_cut"] > 0
    model = _trainable(base, train)
    plain, plain_grads, _ = _scores_and_grads(model, examples, False, tokenizer.pad_token_id)
    shared, shared_grads, batch = _scores_and_grads(model, examples, True, tokenizer.pad_token_id)
    assert batch["prompt_len"] > 0  # each conversation ran once for its completions
    if case == "cut_to_fit":  # rankings whose rows were cut differently run each row alone, the rest shared
        assert 1 in batch["group_sizes"] and max(batch["group_sizes"]) > 1
    if case == "pairs":  # and the default system prompt + turn header once for both rankings
        assert batch["prefix_len"] >= MIN_SHARED_PREFIX
    assert torch.allclose(shared, plain, atol=1e-5, rtol=0), (shared - plain).abs().max()
    assert plain_grads.keys() == shared_grads.keys() and plain_grads
    moved = 0
    for name, g in plain_grads.items():
        assert torch.allclose(shared_grads[name], g, atol=1e-5, rtol=0), (name, (shared_grads[name] - g).abs().max())
        moved += bool(g.abs().max() > 1e-4)
    assert moved >= len(plain_grads) // 2  # the comparison is not between zeros


def test_scoring_by_ranking_equals_scoring_each_sequence(base, tokenizer):
    from rlhf.reward.model import score_ids

    examples, _ = encode_rankings(tokenizer, RANKINGS * 3, 512)
    flat = [x for e in examples for x in e["ids"]]
    model = base.eval()
    alone = torch.cat([score_ids(model, [x], tokenizer.pad_token_id) for x in flat])
    sizes = [len(e["ids"]) for e in examples]
    for batch_size in (1, 5, 16):  # a group larger than the batch still goes whole
        grouped = score_ids(model, flat, tokenizer.pad_token_id, batch_size, group_sizes=sizes)
        assert torch.allclose(grouped, alone, atol=1e-5, rtol=0), (batch_size, (grouped - alone).abs().max())
    with pytest.raises(ValueError, match="add up to"):
        score_ids(model, flat, tokenizer.pad_token_id, group_sizes=sizes[:-1])


def test_a_steps_gradient_is_its_rankings_mean_however_they_are_cut_into_passes(base, tokenizer):
    """train_step accumulates gradients over passes of batch_size rankings: a step of 3 rankings in
    passes of 2 + 1 must give the gradient of the mean loss over the 3 (one pass of 3), not weigh
    the ranking alone in its pass as much as the other two together."""
    examples, _ = encode_rankings(tokenizer, RANKINGS[:3], 512)
    model = _trainable(base, "full")
    grads = []
    for batch_size, grad_accum in ((3, 1), (2, 2)):
        model.zero_grad(set_to_none=True)
        config = RewardConfig(batch_size=batch_size, grad_accum=grad_accum, share_prompt=False)
        train_step(model, examples, config, tokenizer.pad_token_id, "cpu")
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    whole, cut = grads
    assert whole.keys() == cut.keys() and whole
    for name in whole:
        assert torch.allclose(cut[name], whole[name], rtol=1e-4, atol=1e-7), name
