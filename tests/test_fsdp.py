"""FSDP2 on two CPU processes (gloo, `torchrun --nproc_per_node 2`, tiny models; see rlhf/fsdp.py).

After the same two steps from the same seed, the sharded run's full weights equal the unsharded
run's: PPO (full policy, value-head critic and reward-model critic) against DDP, the reward stage
against one process with the same rankings per step. A sharded PPO run killed after its step-1
checkpoint resumes to the uninterrupted run's weights, and its saved policy loads with plain
transformers. Adapters under --fsdp are refused with the supported layouts named.

SFT is not here: TRL's SFTTrainer reaches FSDP through accelerate, which enables it only on GPUs
(docs/scale_out.md); its FSDP2 check is `tests/test_cuda.py`."""

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
from ppo_tiny import save_tiny_sft  # noqa: E402

ATOL = 1e-5  # float32 sums in another order (reduce-scatter vs all-reduce) differ by ~1e-7 here


def torchrun(jobs: list[dict], tmp: Path, name: str, port: int) -> subprocess.CompletedProcess:
    exe = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    (tmp / f"{name}.json").write_text(json.dumps(jobs))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run([exe, "--nproc_per_node", "2", "--master_port", str(port), str(HERE / "fsdp_tiny.py"),
                           str(tmp / f"{name}.json")], env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One launch runs every comparison (PPO x 2 critics x {FSDP, DDP}, reward x {FSDP, 1 process})."""
    from rlhf.data import write_jsonl
    from rlhf.models import tiny_tokenizer
    from rlhf.reward.model import build_reward_model, save_reward_model
    from rlhf.reward.synthetic import synthetic_rankings, to_rows

    tmp = tmp_path_factory.mktemp("fsdp")
    sft = save_tiny_sft(tmp / "sft", steps=30)
    tokenizer = tiny_tokenizer()
    rm = save_reward_model(build_reward_model(str(sft), tokenizer.pad_token_id, seed=1), tokenizer, tmp / "rm",
                           bias=0.5, std=2.0, max_length=64)
    data = write_jsonl(tmp / "rankings.jsonl", to_rows(synthetic_rankings(12, seed=7)))
    ppo = dict(stage="ppo", model=str(sft), steps=2, save_steps=1)
    jobs = [
        {**ppo, "out": str(tmp / "ppo_vh_fsdp"), "fsdp": True, "critic": "value-head"},
        {**ppo, "out": str(tmp / "ppo_vh_ddp"), "fsdp": False, "critic": "value-head"},
        {**ppo, "out": str(tmp / "ppo_rc_fsdp"), "fsdp": True, "critic": "reward", "reward_model": str(rm)},
        {**ppo, "out": str(tmp / "ppo_rc_ddp"), "fsdp": False, "critic": "reward", "reward_model": str(rm)},
        # 2 processes x 1 x batch 2 rankings per step == 1 process x grad_accum 2 x batch 2
        dict(stage="reward", model=str(sft), data=str(data), steps=2, out=str(tmp / "rw_fsdp"), fsdp=True,
             grad_accum=1),
        # sharded runs each completion whole (share_prompt is off under fsdp), so the one process does too:
        # gradients equal to rounding still part in Adam's first steps where a gradient is near its eps
        dict(stage="reward", model=str(sft), data=str(data), steps=2, out=str(tmp / "rw_one"), fsdp=False,
             grad_accum=2, share_prompt=False),
    ]
    proc = torchrun(jobs, tmp, "compare", 29541)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return tmp, sft


def full(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path / "full_weights.pt")


def assert_equal_and_moved(sharded: dict, plain: dict, start: dict) -> None:
    plain = {k.removeprefix("module."): v for k, v in plain.items()}  # DDP's wrapper prefix
    assert set(sharded) == set(plain) and sharded
    worst = max((sharded[k] - plain[k]).abs().max().item() for k in sharded)
    moved = max((sharded[k] - start[k]).abs().max().item() for k in start)
    assert worst <= ATOL, f"sharded and unsharded weights differ by {worst:.3g}"
    assert moved > 100 * ATOL, f"training barely moved the weights ({moved:.3g}): the comparison shows nothing"


def policy_start(sft: Path) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForCausalLM

    return {f"policy.{k}": v.double() for k, v in AutoModelForCausalLM.from_pretrained(sft).state_dict().items()}


@pytest.mark.slow
@pytest.mark.parametrize("critic", ["vh", "rc"])
def test_sharded_ppo_equals_ddp(runs, critic):
    tmp, sft = runs
    assert_equal_and_moved(full(tmp / f"ppo_{critic}_fsdp"), full(tmp / f"ppo_{critic}_ddp"), policy_start(sft))
    config = json.loads((tmp / f"ppo_{critic}_fsdp" / "rlhf_config.json").read_text())
    assert config["fsdp"] is True and config["num_processes"] == 2


@pytest.mark.slow
def test_sharded_reward_stage_equals_one_process(runs):
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    tmp, sft = runs
    sharded = AutoModelForSequenceClassification.from_pretrained(tmp / "rw_fsdp").state_dict()
    one = AutoModelForSequenceClassification.from_pretrained(tmp / "rw_one").state_dict()
    start = {k: v for k, v in AutoModelForCausalLM.from_pretrained(sft).state_dict().items() if k in sharded}
    assert_equal_and_moved({k: v.double() for k, v in sharded.items()}, {k: v.double() for k, v in one.items()},
                           {k: v.double() for k, v in start.items()})
    metrics = json.loads((tmp / "rw_fsdp" / "metrics.json").read_text())
    assert metrics["num_processes"] == 2 and metrics["steps"] == 2
    # the logged step figures cover both processes' rankings, so they equal the single process's
    assert metrics["history"][:2] == json.loads((tmp / "rw_one" / "metrics.json").read_text())["history"][:2]


@pytest.mark.slow
def test_killed_sharded_ppo_resumes_to_the_same_weights_and_saves_a_plain_model(runs):
    from transformers import AutoModelForCausalLM

    tmp, sft = runs
    job = dict(stage="ppo", model=str(sft), steps=2, save_steps=1, out=str(tmp / "ppo_killed"), fsdp=True,
               critic="value-head")
    killed = torchrun([{**job, "kill_at": 2}], tmp, "killed", 29542)  # SIGKILL inside step 2
    assert killed.returncode != 0
    assert (tmp / "ppo_killed" / "checkpoints" / "checkpoint-1" / "trainer.pt").exists()
    assert not (tmp / "ppo_killed" / "policy").exists()
    resumed = torchrun([{**job, "resume": True}], tmp, "resumed", 29543)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert "resumed from" in resumed.stdout
    got, expected = full(tmp / "ppo_killed"), full(tmp / "ppo_vh_fsdp")
    assert max((got[k] - expected[k]).abs().max().item() for k in expected) <= ATOL

    saved = AutoModelForCausalLM.from_pretrained(tmp / "ppo_killed" / "policy").state_dict()
    for name, tensor in saved.items():
        assert torch.allclose(tensor.double(), got[f"policy.{name}"], atol=1e-6), name


@pytest.mark.parametrize("stage", ["ppo", "reward"])
def test_fsdp_refuses_adapters_naming_the_supported_layouts(stage, tmp_path):
    from rlhf.fsdp import SUPPORTED

    with pytest.raises(ValueError) as error:
        if stage == "ppo":
            from rlhf.ppo import PPOConfig, PPOTrainer

            PPOTrainer(PPOConfig(policy=str(tmp_path), policy_train="lora", fsdp=True, device="cpu"),
                       reward_fn=lambda p, c: [0.0] * len(c))
        else:
            from rlhf.reward import RewardConfig, train_reward

            train_reward(RewardConfig(data=str(tmp_path / "x.jsonl"), output_dir=str(tmp_path / "rw"), train="lora",
                                      fsdp=True, device="cpu"))
    assert SUPPORTED in str(error.value) and "policy_train full" in str(error.value)
