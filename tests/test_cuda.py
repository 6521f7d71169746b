"""Each stage on CUDA for a few steps at tiny size (marker `cuda`; skipped with "no CUDA" on a
machine without a GPU). `bash benchmarks/gpu_check.sh` runs these on a lent GPU.

bf16 selection, PPO (LoRA and full), the reward stage, SFT, QLoRA through bitsandbytes (training and
saving a 4-bit LoRA), and FSDP2 with a world of one process (PPO, reward, and SFT through TRL and
accelerate's FSDP2 plugin, which only GPUs get)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")]


def _demos(path: Path, n: int = 16) -> Path:
    rows = [{"messages": [{"role": "user", "content": f"Say the number {i}."},
                          {"role": "assistant", "content": f"The number is {i}."}]} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _rankings(path: Path) -> Path:
    from rlhf.data import write_jsonl
    from rlhf.reward.synthetic import synthetic_rankings, to_rows

    return write_jsonl(path, to_rows(synthetic_rankings(12, seed=7)))


def test_bf16_is_picked_on_a_bf16_gpu():
    from rlhf.models import pick_device, pick_dtype

    assert pick_device() == "cuda"
    assert pick_dtype("cuda") == (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32)
    assert pick_dtype("cpu") == torch.float32


@pytest.mark.parametrize("policy_train", ["lora", "full"])
def test_ppo_on_cuda(tmp_path, policy_train):
    from ppo_tiny import PROMPTS, save_tiny_sft, token_reward
    from rlhf.ppo import PPOConfig, PPOTrainer

    sft = save_tiny_sft(tmp_path / "sft", steps=20)
    config = PPOConfig(policy=str(sft), output_dir=str(tmp_path / "run"), steps=3, batch_size=8, max_new_tokens=12,
                       policy_train=policy_train, learning_rate=1e-3, save_steps=0, progress=False)
    trainer = PPOTrainer(config, reward_fn=token_reward, prompts=PROMPTS)
    before = {n: p.detach().clone() for n, p in trainer.policy.named_parameters() if p.requires_grad}
    history = trainer.train()
    assert str(trainer.accelerator.device).startswith("cuda")
    assert trainer.dtype == (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32)
    assert len(history) == 3 and all(torch.isfinite(torch.tensor(h["ppo/policy_loss"])) for h in history)
    assert history[-1]["perf/peak_gpu_gb"] > 0
    after = dict(trainer.policy.named_parameters())
    assert any(not torch.equal(before[n], after[n].detach()) for n in before), "no weight moved"
    assert (tmp_path / "run" / "policy").is_dir()


def test_reward_stage_on_cuda(tmp_path):
    from transformers import AutoModelForSequenceClassification

    from rlhf.models import save_tiny_model
    from rlhf.reward import RewardConfig, train_reward

    model = save_tiny_model(tmp_path / "tiny")
    metrics = train_reward(RewardConfig(model=str(model), data=str(_rankings(tmp_path / "r.jsonl")), train="full",
                                        output_dir=str(tmp_path / "rw"), max_steps=4, batch_size=2, max_length=64))
    assert metrics["device"].startswith("cuda") and metrics["steps"] == 4
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in metrics["history"] if "loss" in h)
    AutoModelForSequenceClassification.from_pretrained(tmp_path / "rw")


def test_sft_on_cuda(tmp_path):
    from rlhf import SFTConfig, run_sft
    from rlhf.models import save_tiny_model

    model = save_tiny_model(tmp_path / "tiny")
    out = run_sft(SFTConfig(model=str(model), data=str(_demos(tmp_path / "d.jsonl")), output_dir=str(tmp_path / "sft"),
                            adapter="lora", max_steps=4, batch_size=4, logging_steps=1, eval_fraction=0.0))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["device"].startswith("cuda") and metrics["steps"] == 4
    assert (out / "adapter_model.safetensors").exists()


def test_qlora_trains_and_saves_a_4bit_lora(tmp_path):
    pytest.importorskip("bitsandbytes", reason="bitsandbytes not installed")
    from peft import PeftModel

    from rlhf import SFTConfig, run_sft
    from rlhf.adapters.peft_methods import load_4bit_base
    from rlhf.models import save_tiny_model

    model = save_tiny_model(tmp_path / "tiny", hidden_size=128)
    out = run_sft(SFTConfig(model=str(model), data=str(_demos(tmp_path / "d.jsonl")), output_dir=str(tmp_path / "q"),
                            adapter="qlora", max_steps=4, batch_size=4, logging_steps=1, eval_fraction=0.0))
    metrics = json.loads((out / "metrics.json").read_text())
    losses = [h["loss"] for h in metrics["log_history"] if "loss" in h]
    assert losses and all(torch.isfinite(torch.tensor(losses)))
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA"
    base = load_4bit_base(str(model), "cuda")
    assert any("4bit" in type(m).__name__ for m in base.modules()), "base is not 4-bit"
    reloaded = PeftModel.from_pretrained(base, out)
    ids = torch.tensor([[1, 2, 3, 4]], device="cuda")
    assert torch.isfinite(reloaded(input_ids=ids).logits.float()).all()


def test_fsdp2_with_one_process_runs_ppo_reward_and_sft(tmp_path):
    """torchrun --nproc_per_node 1: every stage's --fsdp path on NCCL, outputs load with transformers."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from ppo_tiny import save_tiny_sft

    sft = save_tiny_sft(tmp_path / "sft", steps=20)
    jobs = [dict(stage="ppo", model=str(sft), out=str(tmp_path / "ppo"), steps=2, fsdp=True, device="cuda"),
            dict(stage="reward", model=str(sft), data=str(_rankings(tmp_path / "r.jsonl")), out=str(tmp_path / "rw"),
                 steps=2, fsdp=True, grad_accum=1, device="cuda"),
            dict(stage="sft", model=str(sft), data=str(_demos(tmp_path / "d.jsonl")), out=str(tmp_path / "sftfsdp"),
                 steps=2, fsdp=True, device="cuda")]
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    exe = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    proc = subprocess.run([exe, "--nproc_per_node", "1", "--master_port", "29551", str(HERE / "fsdp_tiny.py"),
                           str(tmp_path / "jobs.json")], env={**os.environ}, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    start = AutoModelForCausalLM.from_pretrained(sft).state_dict()
    policy = AutoModelForCausalLM.from_pretrained(tmp_path / "ppo" / "policy").state_dict()
    assert any(not torch.equal(policy[k], start[k]) for k in start), "PPO under FSDP2 moved no weight"
    AutoModelForSequenceClassification.from_pretrained(tmp_path / "rw")
    sft_out = AutoModelForCausalLM.from_pretrained(tmp_path / "sftfsdp").state_dict()
    assert any(not torch.equal(sft_out[k], start[k]) for k in start), "SFT under FSDP2 moved no weight"
