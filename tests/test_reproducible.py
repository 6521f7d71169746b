"""Reproducible, crash-safe runs: one seed gives one set of weights, and a run killed while saving a
checkpoint resumes from the newest complete one to the weights of a run never interrupted."""

import json
import subprocess
import sys
import textwrap
from dataclasses import replace

import pytest
import torch

from rlhf import SFTConfig, run_sft
from rlhf.checkpoints import complete_checkpoints, newest_complete_checkpoint


def _demos(path, n=16):
    rows = [{"messages": [{"role": "user", "content": f"Say the number {i}."},
                          {"role": "assistant", "content": f"The number is {i}."}]} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _config(tmp_path, model_dir, name, **overrides):
    values = dict(model=str(model_dir), data=str(_demos(tmp_path / "d.jsonl")), output_dir=str(tmp_path / name),
                  max_steps=4, batch_size=4, learning_rate=5e-3, logging_steps=1, save_steps=2, eval_fraction=0,
                  device="cpu")
    return SFTConfig(**{**values, **overrides})


def _adapter(out):
    from safetensors.torch import load_file

    return load_file(str(out / "adapter_model.safetensors"))


def _same(a, b):
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_two_sft_runs_with_one_seed_give_identical_weights(tmp_path, tiny_model_dir):
    first = _adapter(run_sft(_config(tmp_path, tiny_model_dir, "a", max_steps=2, save_steps=100)))
    torch.manual_seed(123)  # whatever the process did before must not matter
    second = _adapter(run_sft(_config(tmp_path, tiny_model_dir, "b", max_steps=2, save_steps=100)))
    assert _same(first, second), "same seed, different adapter weights"
    other = _adapter(run_sft(_config(tmp_path, tiny_model_dir, "c", max_steps=2, save_steps=100, seed=7)))
    assert not _same(first, other), "the seed changes nothing: equality above proves nothing"


def test_resume_skips_a_checkpoint_whose_save_was_cut_off(tmp_path, tiny_model_dir):
    """Planted: checkpoint-4 without its trainer_state.json (written last) is what a kill during
    that save leaves. Resume takes checkpoint-2 and ends with the uninterrupted run's weights."""
    config = _config(tmp_path, tiny_model_dir, "run")
    out = run_sft(config)
    expected = _adapter(out)
    root = out / "checkpoints"
    (root / "checkpoint-4" / "trainer_state.json").write_text('{"global_step": 4, "log_hist')  # torn write
    assert [p.name for p in complete_checkpoints(root, "trainer_state.json")] == ["checkpoint-2"]
    resumed = run_sft(replace(config, resume=True))
    metrics = json.loads((resumed / "metrics.json").read_text())
    assert metrics["resumed_from"].endswith("checkpoint-2") and metrics["steps"] == 4
    got = _adapter(resumed)
    assert all(torch.allclose(got[k], expected[k], atol=1e-6) for k in expected)


def test_newest_complete_checkpoint_removes_newer_partial_folders(tmp_path, capsys):
    root = tmp_path / "checkpoints"
    for step, complete in ((2, True), (4, True), (6, False)):
        (root / f"checkpoint-{step}").mkdir(parents=True)
        if complete:
            (root / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    assert newest_complete_checkpoint(root, "trainer_state.json").name == "checkpoint-4"
    assert not (root / "checkpoint-6").exists() and "checkpoint-6 is incomplete" in capsys.readouterr().out
    assert newest_complete_checkpoint(tmp_path / "nothing", "trainer_state.json") is None


KILLED_DURING_SAVE = """
import os, sys
import transformers
from rlhf import SFTConfig, run_sft

real = transformers.Trainer._save_rng_state

def save_rng_state(self, output_dir):
    if self.state.global_step == 4:  # weights and optimizer of checkpoint-4 are on disk: die mid-save
        os._exit(137)
    real(self, output_dir)

transformers.Trainer._save_rng_state = save_rng_state
run_sft(SFTConfig(**{config}))
"""


@pytest.mark.slow
def test_sft_killed_during_a_save_resumes_to_the_uninterrupted_weights(tmp_path, tiny_model_dir):
    straight = _adapter(run_sft(_config(tmp_path, tiny_model_dir, "straight")))
    config = _config(tmp_path, tiny_model_dir, "killed")
    script = tmp_path / "killed.py"
    script.write_text(textwrap.dedent(KILLED_DURING_SAVE).replace("{config}", repr(vars(config))))
    died = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600)
    assert died.returncode == 137, died.stderr[-2000:]
    partial = tmp_path / "killed" / "checkpoints" / "checkpoint-4"
    assert partial.is_dir() and not (partial / "trainer_state.json").exists()
    resumed = run_sft(replace(config, resume=True))
    assert json.loads((resumed / "metrics.json").read_text())["resumed_from"].endswith("checkpoint-2")
    got = _adapter(resumed)
    assert all(torch.allclose(got[k], straight[k], atol=1e-6) for k in straight)


def test_dpo_starts_from_the_same_lora_with_one_seed(tmp_path, tiny_model_dir):
    """A guard: the fresh LoRA DPO trains depends on --seed only (trl 1.16 seeds before adding it;
    the stage seeds first too, so that stays true whatever TRL's order)."""
    from rlhf.dpo import DPOStageConfig, build_trainer

    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"Q{i}?", "chosen": "Yes.", "rejected": "No."}) + "\n" for i in range(4)))

    def lora(seed):
        torch.manual_seed(seed + 1000)  # the process's state before the stage must not matter
        trainer = build_trainer(DPOStageConfig(policy=str(tiny_model_dir), data=str(path), eval_fraction=0, seed=seed,
                                               output_dir=str(tmp_path / f"dpo{seed}"), max_steps=1, device="cpu"))
        return {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_A" in n}

    first = lora(0)
    assert first and _same(first, lora(0))
    assert not _same(first, lora(1))
