"""The reward stage on a tiny model: it learns a held-out preference, pads either way, survives
pad == EOS, saves a folder plain transformers loads, resumes, and matches TRL on pairs."""

import copy
import dataclasses
import json
import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rlhf.data import DataError, Ranking, builtin, iter_rows, write_jsonl  # noqa: E402
from rlhf.reward import RewardConfig, RewardModel, train_reward  # noqa: E402
from rlhf.reward import trainer as trainer_module  # noqa: E402
from rlhf.reward.data import consensus, labeler_agreement, merge_labelers, split_by_prompt  # noqa: E402
from rlhf.reward.loss import ranking_index, ranking_loss  # noqa: E402
from rlhf.reward.model import build_reward_model, encode, prepare_for_training, sequence_scores  # noqa: E402
from rlhf.sequences import pad as collate  # noqa: E402  (one padding helper for every stage)
from rlhf.reward.synthetic import MARKER, synthetic_rankings, to_pairs, to_rows  # noqa: E402


@pytest.fixture(scope="module")
def tok():
    from rlhf.models import tiny_tokenizer

    return tiny_tokenizer()


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from rlhf.models import save_tiny_model

    return str(save_tiny_model(tmp_path_factory.mktemp("tiny") / "model"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_dir):
    """The key run: a tiny Llama trained in full on 'completions with the marker beat those without'.
    Two labelers overlap on 8 items, and one malformed row is skipped."""
    root = tmp_path_factory.mktemp("rm")
    alice = synthetic_rankings(64, seed=1, labeler="alice")
    bob = [dataclasses.replace(r, labeler="bob") for r in alice[:8]]
    rows = to_rows(alice[:10]) + [{"prompt": "p", "completions": ["a", "b"], "ranking": [[0], [7]]}] + to_rows(alice[10:] + bob)
    data = write_jsonl(root / "rankings.jsonl", rows)
    demos = write_jsonl(root / "demos.jsonl", [row for _, row in list(iter_rows(builtin("demonstrations")))[:48]])
    config = RewardConfig(data=str(data), output_dir=str(root / "out"), model=tiny_dir, train="full",
                          learning_rate=3e-3, epochs=2, batch_size=8, eval_fraction=0.25, max_length=96,
                          skip_bad_rows=True, calibration_data=str(demos), seed=0)
    metrics = train_reward(config)
    return config, metrics


# --- the key test -------------------------------------------------------------------------------


def test_learns_a_held_out_preference(trained):
    config, metrics = trained
    assert metrics["eval"]["accuracy"] > 0.9, metrics["eval"]
    assert metrics["eval"]["pairs"] >= 40 and metrics["eval"]["mean_margin"] > 0
    assert metrics["train"]["accuracy"] > 0.9
    assert metrics["train"]["loss"] < 0.6931  # below chance level log 2


def test_metrics_and_outputs(trained):
    config, metrics = trained
    out = config.output_dir
    saved = json.load(open(os.path.join(out, "metrics.json")))
    assert saved["eval"]["accuracy"] == metrics["eval"]["accuracy"]
    assert saved["skipped_bad_rows"] == 1 and "row 11" in saved["bad_rows"][0] and "'ranking'" in saved["bad_rows"][0]
    assert set(saved["train"]["accuracy_per_labeler"]) | set(saved["eval"]["accuracy_per_labeler"]) == {"alice", "bob"}
    assert saved["labeler_agreement"]["agreement"] == 1.0 and saved["labeler_agreement"]["pairs"] > 0
    assert saved["steps"] == saved["epochs"] * -(-saved["data"]["train_rankings"] // 8)
    assert len(saved["epoch_seconds"]) == 2
    # no prompt on both sides of the split
    assert saved["data"]["train_prompts"] + saved["data"]["eval_prompts"] == 64
    resolved = json.load(open(os.path.join(out, "rlhf_config.json")))
    assert resolved["stage"] == "reward" and resolved["learning_rate"] == 3e-3 and resolved["train"] == "full"
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(os.path.join(out, "logs")))
    assert os.path.exists(os.path.join(out, "tokenizer_config.json"))


def test_saved_model_reloads_with_plain_transformers(trained, tok):
    from transformers import AutoModelForSequenceClassification

    out = trained[0].output_dir
    rm = RewardModel.load(out, device="cpu")
    plain = AutoModelForSequenceClassification.from_pretrained(out).eval()
    assert plain.config.num_labels == 1 and plain.config.rlhf_reward_bias == pytest.approx(rm.bias)
    prompts = ["Tell me something about owls.", "Tell me something about ink, please, in a long answer."]
    completions = [f"Owls are {MARKER} hunters.", "Ink is old and often made from soot and water in small pots."]
    ids = encode(tok, prompts, completions, rm.max_length)
    for side in ("right", "left"):
        input_ids, mask = collate(ids, tok.pad_token_id, side)
        with torch.no_grad():
            raw = plain(input_ids=input_ids, attention_mask=mask).logits.squeeze(-1)
        assert torch.allclose(raw, rm.score(prompts, completions, normalize=False) - rm.bias, atol=1e-4), side
        assert torch.allclose((raw + rm.bias) / rm.std, rm.score(prompts, completions), atol=1e-4), side  # the default scale
    assert rm.score(prompts, completions)[0] > rm.score(prompts, completions)[1]  # the marker wins


def test_calibration_centres_the_demonstrations(trained):
    from rlhf.data import load_demonstrations

    config, metrics = trained
    rm = RewardModel.load(config.output_dir, device="cpu")
    calibration = metrics["calibration"]
    assert calibration["source"] == config.calibration_data and calibration["n"] == 48
    demos = load_demonstrations(config.calibration_data)
    prompts = [row["prompt"][-1]["content"] for row in demos]
    completions = [row["completion"][0]["content"] for row in demos]
    rewards = rm.score(prompts, completions, batch_size=32, normalize=False)
    assert abs(rewards.mean().item()) < 1e-3
    normalized = rm.score(prompts, completions, batch_size=32)  # the default: std units
    assert normalized.std().item() == pytest.approx(1.0, abs=1e-3) and abs(normalized.mean().item()) < 1e-3
    assert rm.std == pytest.approx(calibration["std"]) and rm.std != 1.0
    saved = json.loads((Path(config.output_dir) / "reward_calibration.json").read_text())  # the choice, recorded
    assert saved["source"] == config.calibration_data and saved["n"] == 48 and saved["unit"].startswith("std units")


def test_default_calibration_data_is_the_users_own_rankings():
    from rlhf.reward.trainer import calibration_pairs

    train_set = synthetic_rankings(3)
    for given in (None, "train"):  # the default: the completions that were ranked, the user's domain
        prompts, completions, source = calibration_pairs(RewardConfig(calibration_data=given), train_set)
        assert source == "train" and sorted(completions) == sorted(c for r in train_set for c in r.completions)
        assert sorted(set(prompts)) == sorted({r.prompt for r in train_set})
    prompts, completions, source = calibration_pairs(RewardConfig(calibration_data="chosen"), train_set)
    assert source == "chosen" and sorted(completions) == sorted(r.completions[i] for r in train_set for i in r.ranking[0])
    prompts, completions, source = calibration_pairs(RewardConfig(calibration_data="demonstrations"), train_set)
    assert source == str(builtin("demonstrations")) and len(prompts) == len(completions) > 100
    assert "?" in prompts[0] and completions[0] and completions[0] != prompts[0]


# --- padding and pad == EOS ---------------------------------------------------------------------


def test_left_and_right_padding_and_pad_equal_to_eos_give_the_same_scores(tok, tiny_dir):
    model = build_reward_model(tiny_dir, tok.pad_token_id, seed=3).eval()
    prompts = ["Hi", "Tell me a long story about a dragon who lived under a bridge and collected keys", "2+2?"]
    completions = ["Hello!", "Once upon a time " * 6, "4"]
    alone = torch.cat([RewardModel(model, tok).score([p], [c]) for p, c in zip(prompts, completions)])
    assert alone.unique().numel() == 3
    for pad in (tok.pad_token, tok.eos_token):  # <|endoftext|> (distinct) and <|im_end|> (== EOS)
        t = copy.deepcopy(tok)
        t.pad_token = pad
        for side in ("left", "right"):
            t.padding_side = side
            batched = RewardModel(model, t).score(prompts, completions, batch_size=3)
            assert torch.allclose(batched, alone, atol=1e-5), (pad, side)


def test_texts_ending_in_eos_with_pad_equal_to_eos(tok, tiny_dir):
    # The trap: transformers' pooling looks for the last token != pad; when pad == EOS and a text
    # ends with EOS, it reads the wrong position. Ours reads the attention mask.
    model = build_reward_model(tiny_dir, tok.eos_token_id, seed=4).eval()
    eos = tok.eos_token_id
    ids = [[17, 300, 401, eos], [17, 300, 401, 502, 603, 704, eos]]
    with torch.no_grad():
        alone = torch.cat([sequence_scores(model, *collate([x], eos)) for x in ids])
        for side in ("left", "right"):
            input_ids, mask = collate(ids, eos, side)
            assert torch.allclose(sequence_scores(model, input_ids, mask), alone, atol=1e-5), side
        input_ids, mask = collate(ids, eos, "right")
        naive = model(input_ids=input_ids, attention_mask=mask).logits.squeeze(-1)
    assert not torch.allclose(naive, alone, atol=1e-3)  # so this test can tell the two apart


# --- training modes and starting points ---------------------------------------------------------


def test_partial_trains_only_the_last_blocks_and_head(tok, tiny_dir):
    model = prepare_for_training(build_reward_model(tiny_dir, tok.pad_token_id), "partial", partial_layers=1)
    trainable = {n.split(".")[0] + "." + n.split(".")[1] if n.startswith("model.") else n
                 for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"model.layers", "model.norm", "score.weight"}
    assert all(".layers.1." in n for n, p in model.named_parameters() if p.requires_grad and ".layers." in n)


def test_lora_run_saves_a_merged_plain_model_and_pairs_with_margin_train(tmp_path, tiny_dir, tok):
    from transformers import AutoModelForSequenceClassification

    pairs = to_pairs(synthetic_rankings(12, seed=5))[:24]
    for i, row in enumerate(pairs):
        row["margin"] = 0.5 * (i % 2)
    data = write_jsonl(tmp_path / "pairs.jsonl", pairs)
    config = RewardConfig(data=str(data), output_dir=str(tmp_path / "out"), model=tiny_dir, train="lora",
                          max_steps=2, batch_size=4, calibration_data="train", eval_fraction=0.2)
    metrics = train_reward(config)
    assert metrics["steps"] == 2 and metrics["trainable_parameters"] < metrics["total_parameters"] / 20
    assert metrics["data"]["completions_per_ranking"] == [2]
    files = os.listdir(tmp_path / "out")
    assert "adapter_config.json" not in files and "model.safetensors" in files
    plain = AutoModelForSequenceClassification.from_pretrained(str(tmp_path / "out"))
    start = build_reward_model(tiny_dir, tok.pad_token_id, seed=0)
    assert not torch.allclose(plain.score.weight, start.score.weight)  # head trained
    assert not torch.allclose(plain.model.layers[0].self_attn.q_proj.weight,
                              start.model.layers[0].self_attn.q_proj.weight)  # LoRA merged in
    assert torch.equal(plain.model.embed_tokens.weight, start.model.embed_tokens.weight)  # frozen


def test_starts_from_a_peft_lora_sft_output(tmp_path, tiny_dir, tok):
    from peft import LoraConfig, PeftModel, get_peft_model, PromptTuningConfig

    from rlhf.adapters import load_causal_lm

    sft = get_peft_model(load_causal_lm(tiny_dir, device="cpu"),
                         LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    sft.save_pretrained(tmp_path / "sft")
    expected = PeftModel.from_pretrained(load_causal_lm(tiny_dir, device="cpu"), tmp_path / "sft").merge_and_unload()
    model = build_reward_model(str(tmp_path / "sft"), tok.pad_token_id)
    q = model.model.layers[1].self_attn.q_proj.weight
    assert torch.equal(q, expected.model.layers[1].self_attn.q_proj.weight)
    assert not torch.equal(q, load_causal_lm(tiny_dir, device="cpu").model.layers[1].self_attn.q_proj.weight)

    prompt = get_peft_model(load_causal_lm(tiny_dir, device="cpu"),
                            PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4))
    prompt.save_pretrained(tmp_path / "prompt")
    with pytest.raises(ValueError, match="cannot be merged"):
        build_reward_model(str(tmp_path / "prompt"), tok.pad_token_id)


def test_a_series_adapter_sft_output_is_a_clear_error(tmp_path, tiny_dir, tok):
    from rlhf.adapters import AdapterConfig, apply_adapter, save_adapter
    from rlhf.adapters import load_causal_lm

    model = apply_adapter(load_causal_lm(tiny_dir, device="cpu"), AdapterConfig(adapter="series", bottleneck_size=8))
    save_adapter(model, tmp_path / "series")
    with pytest.raises(ValueError, match="cannot be merged"):
        build_reward_model(str(tmp_path / "series"), tok.pad_token_id)


# --- parity with TRL on pairs -------------------------------------------------------------------


def test_pair_loss_matches_trl_reward_trainer(tmp_path, tiny_dir, tok):
    import datasets
    import trl

    model = build_reward_model(tiny_dir, tok.pad_token_id, seed=1)
    rows = to_pairs(synthetic_rankings(2, seed=6))[:4]
    margins = [0.0, 0.5, 1.0, -0.3]
    trl_rows = [{"prompt": [{"role": "user", "content": r["prompt"]}],
                 "chosen": [{"role": "assistant", "content": r["chosen"]}],
                 "rejected": [{"role": "assistant", "content": r["rejected"]}], "margin": m}
                for r, m in zip(rows, margins)]
    args = trl.RewardConfig(output_dir=str(tmp_path), report_to=[], use_cpu=True, bf16=False,
                            per_device_train_batch_size=4, max_length=None)
    trainer = trl.RewardTrainer(model=model, args=args, train_dataset=datasets.Dataset.from_list(trl_rows),
                                processing_class=copy.deepcopy(tok))
    examples = [trainer.train_dataset[i] for i in range(4)]
    with torch.no_grad():
        trl_loss = trainer.compute_loss(model, trainer.data_collator(examples)).item()
        # ours: the same texts, tokenised by our code, as 2-way rankings (chosen first) with margins
        ids = encode(tok, [r["prompt"] for r in rows for _ in (0, 1)],
                     [r[k] for r in rows for k in ("chosen", "rejected")], max_length=512)
        assert ids[0::2] == [e["chosen_ids"] for e in examples] and ids[1::2] == [e["rejected_ids"] for e in examples]
        scores = sequence_scores(model, *collate(ids, tok.pad_token_id))
        ours = ranking_loss(scores, ranking_index([[[0], [1]]] * 4), margin=torch.tensor(margins)).item()
    assert ours == pytest.approx(trl_loss, abs=1e-5)


# --- resume -------------------------------------------------------------------------------------


def test_resume_after_an_interruption_gives_the_same_model(tmp_path, tiny_dir, monkeypatch):
    from safetensors.torch import load_file

    data = write_jsonl(tmp_path / "r.jsonl", to_rows(synthetic_rankings(16, seed=7)))
    config = RewardConfig(data=str(data), output_dir=str(tmp_path / "straight"), model=tiny_dir, train="lora",
                          epochs=2, batch_size=4, learning_rate=1e-3, calibration_data="none", eval_fraction=0.25)
    train_reward(config)

    real_save = trainer_module.save_checkpoint

    def save_then_crash(*args, **kwargs):
        real_save(*args, **kwargs)
        raise KeyboardInterrupt  # the machine stops right after the first epoch's checkpoint

    monkeypatch.setattr(trainer_module, "save_checkpoint", save_then_crash)
    broken = dataclasses.replace(config, output_dir=str(tmp_path / "resumed"))
    with pytest.raises(KeyboardInterrupt):
        train_reward(broken)
    monkeypatch.setattr(trainer_module, "save_checkpoint", real_save)
    with pytest.raises(ValueError, match="settings changed.*learning_rate"):
        train_reward(dataclasses.replace(broken, resume=True, learning_rate=5e-4))
    metrics = train_reward(dataclasses.replace(broken, resume=True))
    assert metrics["steps"] == 6
    a = load_file(tmp_path / "straight" / "model.safetensors")
    b = load_file(tmp_path / "resumed" / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    start = build_reward_model(tiny_dir, 0, seed=0)
    assert not torch.allclose(a["score.weight"], start.score.weight)


# --- data: errors, consensus, split, agreement --------------------------------------------------


def test_a_bad_row_names_file_line_and_field(tmp_path):
    rows = to_rows(synthetic_rankings(3))
    rows[1]["completions"][2] = ""
    data = write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(DataError, match=r"bad\.jsonl, row 2, field 'completions\[2\]'"):
        train_reward(RewardConfig(data=str(data), output_dir=str(tmp_path / "out")))


def test_cli_runs_on_pairs_and_reports_bad_data(tmp_path, tiny_dir, capsys):
    from rlhf.cli import main

    data = write_jsonl(tmp_path / "pairs.jsonl", to_pairs(synthetic_rankings(6, seed=8)))
    out = tmp_path / "out"
    assert main(["reward", "--data", str(data), "--model", tiny_dir, "--output_dir", str(out), "--max_steps", "1",
                 "--batch_size", "4", "--calibration_data", "train"]) == 0
    assert json.load(open(out / "metrics.json"))["steps"] == 1
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "p", "chosen": "a"}])
    assert main(["reward", "--data", str(bad), "--output_dir", str(out)]) == 2
    assert "bad.jsonl, row 1, field 'rejected'" in capsys.readouterr().err


def _r(completions, tiers, labeler):
    return Ranking(prompt="q", completions=completions, ranking=tiers, labeler=labeler)


def test_consensus_and_agreement_by_hand():
    alice = _r(["A", "B", "C"], [[0], [1], [2]], "alice")  # ranks A 1, B 2, C 3
    bob = _r(["B", "A", "C"], [[0], [1], [2]], "bob")  # shown shuffled: B > A > C, ranks A 2, B 1, C 3
    carol = _r(["A", "B", "C"], [[0, 1], [2]], "carol")  # A = B > C, ranks A 1.5, B 1.5, C 3
    # mean ranks: A (1 + 2 + 1.5) / 3 = 1.5, B (2 + 1 + 1.5) / 3 = 1.5, C 3 -> A = B > C
    merged = consensus([alice, bob, carol])
    assert merged.ranking == [[0, 1], [2]] and merged.completions == ["A", "B", "C"]
    assert merged.labeler == "alice+bob+carol"
    # alice + bob alone: A (1 + 2) / 2 = 1.5 = B, C 3 -> A = B > C; dan's other item stays as it is
    dan = _r(["x", "y"], [[1], [0]], "dan")
    result = merge_labelers([alice, bob, dan])
    assert [r.ranking for r in result] == [[[0, 1], [2]], [[1], [0]]] and result[1] is dan
    # agreement over pairs both rank strictly: alice-bob: A?B disagree, A>C, B>C agree -> 2 of 3;
    # alice-carol and bob-carol: A?B is a tie for carol (left out), A>C and B>C agree -> 2 of 2 each
    # total (2 + 2 + 2) / (3 + 2 + 2) = 6 / 7
    result = labeler_agreement([alice, bob, carol])
    assert result["agreement"] == pytest.approx(6 / 7) and result["pairs"] == 7
    assert result["by_labeler_pair"]["alice|bob"] == {"agreement": pytest.approx(2 / 3), "pairs": 3}
    assert labeler_agreement([alice]) is None


def test_split_keeps_each_prompt_on_one_side():
    rankings = synthetic_rankings(20, seed=9)
    rankings += [dataclasses.replace(r, labeler="bob") for r in rankings[:10]]
    train, held = split_by_prompt(rankings, 0.3, seed=0)
    assert len({r.prompt for r in held}) == 6 and len(train) + len(held) == 30
    assert not {r.prompt for r in train} & {r.prompt for r in held}
    assert split_by_prompt(rankings, 0.3, seed=0) == (train, held)  # deterministic
    assert split_by_prompt(rankings, 0.0, seed=0)[1] == []
