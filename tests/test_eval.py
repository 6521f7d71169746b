"""`rlhf eval`: win-rate statistics, KL by forward passes, and end-to-end runs on tiny models."""

import json
import random

import pytest
import torch

from rlhf.data import load_candidates
from rlhf.eval import (
    EvalConfig, bootstrap_ci, compare, md_cell, outcomes_from_scores, run_eval, sequence_logprobs, win_rate,
)
from rlhf.generation import generate


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


# --- statistics --------------------------------------------------------------------------------


def test_win_rate_counts_ties_half():
    assert win_rate([1, 1, 0, 0.5]) == pytest.approx(0.625)
    assert outcomes_from_scores([2.0, 1.0, 3.0], [1.0, 2.0, 3.0]) == [1.0, 0.0, 0.5]


def test_bootstrap_ci_covers_the_true_rate_about_95_percent_of_the_time():
    rng = random.Random(0)
    true_rate, covered, trials = 0.6, 0, 200
    for t in range(trials):
        outcomes = [float(rng.random() < true_rate) for _ in range(150)]
        lo, hi = bootstrap_ci(outcomes, n=1000, seed=t)
        assert lo <= win_rate(outcomes) <= hi
        covered += lo <= true_rate <= hi
    assert 0.89 <= covered / trials <= 0.99, covered / trials
    lo, hi = bootstrap_ci([1.0] * 50)
    assert lo == hi == 1.0


def test_compare_takes_any_judge_callable():
    short_wins = lambda prompt, a, b: 0.5 if len(a) == len(b) else float(len(a) < len(b))
    result = compare(["p"] * 4, ["a", "bb", "c", "dddd"], ["bb", "a", "c", "e"], short_wins, bootstrap=200)
    assert result["outcomes"] == [1.0, 0.0, 0.5, 0.0]
    assert (result["wins"], result["ties"], result["losses"]) == (1, 1, 2)
    assert result["win_rate"] == pytest.approx(0.375)


def test_markdown_cells_show_model_text_literally():
    cell = md_cell("a | b\n<script>x</script> **bold** `code`")
    assert "|" not in cell.replace("\\|", "") and "\n" not in cell and "<script>" not in cell
    assert cell.startswith("a \\| b<br>&lt;script&gt;") and "\\*\\*bold\\*\\*" in cell
    assert md_cell("") == "(empty)"


# --- KL by forward passes ----------------------------------------------------------------------


def test_sequence_logprobs_match_a_token_by_token_loop(tokenizer):
    from rlhf.models import tiny_causal_lm

    model = tiny_causal_lm(tokenizer, seed=3)
    gens = [row[0] for row in generate(model, tokenizer, [[{"role": "user", "content": "Hi"}],
                                                         [{"role": "user", "content": "A longer question here?"}]],
                                       max_new_tokens=5, seed=0, progress=False)]
    batched = sequence_logprobs(model, gens, tokenizer.pad_token_id, batch_size=2)
    for g, value in zip(gens, batched):  # naive reference: one unpadded sequence, one token at a time
        ids = torch.tensor([g.prompt_ids + g.token_ids])
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits[0].float(), -1)
        expected = sum(logp[len(g.prompt_ids) + i - 1, tok].item() for i, tok in enumerate(g.token_ids))
        assert value.item() == pytest.approx(expected, abs=1e-3)
    assert (batched < 0).all()


# --- end to end on tiny models -----------------------------------------------------------------


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    path = tmp_path_factory.mktemp("eval") / "heldout.jsonl"
    path.write_text("".join(json.dumps({"id": f"h{i}", "prompt": f"Question number {i}: what is {i} + {i}?"}) + "\n"
                            for i in range(24)))
    return path


@pytest.fixture(scope="module")
def other_model_dir(tmp_path_factory):
    from rlhf.models import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny-other"), seed=1)


def test_policy_against_itself_is_a_coin_flip_and_kl_to_itself_is_zero(tmp_path, tiny_model_dir, other_model_dir, prompts):
    out = tmp_path / "self"
    results = run_eval(EvalConfig(policy_a=str(tiny_model_dir), policy_b=str(tiny_model_dir), prompts=str(prompts),
                                  reference=str(tiny_model_dir), max_new_tokens=8, output=str(out), seed=0))
    lo, hi = results["ci95"]
    assert lo < 0.5 < hi and 0.3 < results["win_rate"] < 0.7
    assert results["wins"] > 0 and results["losses"] > 0  # A and B sampled with different seeds
    assert results["policies"]["a"]["kl_to_reference"] == pytest.approx(0.0, abs=1e-4)
    saved = json.loads((out / "eval.json").read_text())
    assert saved["win_rate"] == results["win_rate"] and len(saved["samples"]) == 24
    md = (out / "eval.md").read_text()
    assert "Win rate of A over B" in md and "### Sample pairs" in md and "KL to reference" in md


def test_reward_judge_best_of_n_and_extra_policies(tmp_path, tiny_model_dir, other_model_dir, prompts, tokenizer):
    from rlhf.reward.model import build_reward_model, save_reward_model

    rm_dir = save_reward_model(build_reward_model(str(tiny_model_dir), tokenizer.pad_token_id, seed=0), tokenizer,
                               tmp_path / "rm", bias=0.0, std=1.0, max_length=256)
    results = run_eval(EvalConfig(policy_a=str(other_model_dir), policy_b=str(tiny_model_dir), prompts=str(prompts),
                                  judge="reward", reward_model=str(rm_dir), best_of_n=3, limit=8, max_new_tokens=6,
                                  extra_policies=[str(other_model_dir)], reference=str(tiny_model_dir),
                                  output=str(tmp_path / "rm-eval")))
    stats = results["policies"]
    assert {"a", "b", str(other_model_dir)} <= set(stats)
    assert stats["b"]["kl_to_reference"] == pytest.approx(0.0, abs=1e-4)
    assert stats["a"]["kl_to_reference"] != pytest.approx(0.0, abs=1e-4)
    # The reward judge's verdicts are the reward model's score comparisons.
    saved = json.loads((tmp_path / "rm-eval" / "eval.json").read_text())
    from rlhf.reward import RewardModel

    rm = RewardModel.load(rm_dir)
    texts = [s["prompt"] for s in saved["samples"]]
    ra = rm.score(texts, [s["a"] for s in saved["samples"]]).tolist()
    rb = rm.score(texts, [s["b"] for s in saved["samples"]]).tolist()
    assert saved["outcomes"] == outcomes_from_scores(ra, rb)
    assert stats["a"]["mean_reward_std_units"] == pytest.approx(sum(ra) / len(ra), abs=1e-4)
    names = [(c["a"], c["b"]) for c in results["comparisons"]]
    assert (f"best-of-3({tiny_model_dir})", str(tiny_model_dir)) in names
    assert results["best_of_n"]["n"] == 3


def test_people_as_judge_through_a_pairs_file(tmp_path, tiny_model_dir, other_model_dir, prompts):
    out = tmp_path / "app"
    handoff = run_eval(EvalConfig(policy_a=str(other_model_dir), policy_b=str(tiny_model_dir), prompts=str(prompts),
                                  judge="app", limit=6, max_new_tokens=4, output=str(out)))
    pairs = load_candidates(handoff["pairs"])
    assert len(pairs) == 6 and all(len(p["completions"]) == 2 for p in pairs)
    key = json.loads((out / "pairs_key.json").read_text())["a_index"]
    assert set(key.values()) == {0, 1}  # A is shown first on some items, second on others
    # People prefer A on 4 items, B on 1, and tie on 1 -> (4 + 0.5) / 6.
    rows = []
    for n, p in enumerate(pairs):
        a, b = key[p["id"]], 1 - key[p["id"]]
        ranking = [[a, b]] if n == 5 else [[b], [a]] if n == 4 else [[a], [b]]
        rows.append({"prompt": p["prompt"], "completions": p["completions"] if all(p["completions"]) else ["x", "y"],
                     "ranking": ranking, "labeler": "alice", "item_id": p["id"]})
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps(r) + "\n" for r in rows))
    results = run_eval(EvalConfig(judge="app", app_rankings=str(labels), output=str(out)))
    assert results["win_rate"] == pytest.approx(4.5 / 6) and results["n"] == 6


def test_reward_judge_without_a_reward_model_is_a_clear_error(tmp_path, prompts):
    with pytest.raises(ValueError, match="need --reward_model"):
        run_eval(EvalConfig(judge="reward", prompts=str(prompts), output=str(tmp_path)))
