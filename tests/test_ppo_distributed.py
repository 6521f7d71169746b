"""PPO in two processes on this CPU machine: `torchrun --nproc_per_node 2` runs tests/ppo_tiny.py,
whose trainer builds `Accelerator(cpu=True)` over gloo (accelerate 1.15's own `launch --cpu`
starts only one process). It must learn, and both processes must end with the same weights."""

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


def free_port() -> int:
    """A port nobody listens on now: other test runs on this machine may hold a fixed one."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("estimator", ["gae", "grpo"])
def test_two_processes_learn_and_agree(tmp_path, estimator):
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    model_dir = save_tiny_sft(tmp_path / "sft")
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [torchrun, "--nproc_per_node", "2", "--master_port", str(free_port()), str(HERE / "ppo_tiny.py"),
           str(model_dir), str(out), "20", estimator]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]

    digests = [json.loads((out / f"digest_rank{r}.json").read_text()) for r in (0, 1)]
    assert [d["world"] for d in digests] == [2, 2], "torchrun did not give a world of 2"
    w0, w1 = (torch.load(out / f"weights_rank{r}.pt") for r in (0, 1))
    assert set(w0) == set(w1) and w0
    for name in w0:
        assert torch.equal(w0[name], w1[name]), f"{name} differs between the two processes"

    scores, kls = digests[0]["scores"], digests[0]["kl"]
    assert len(scores) == 20
    first, last = sum(scores[:4]) / 4, sum(scores[-4:]) / 4
    assert last > first + 1.0, f"no learning across processes: first {first:.2f}, last {last:.2f}"
    assert max(kls[-4:]) < 25.0
    rows = (out / "metrics.jsonl").read_text().splitlines()  # rank 0 alone writes the logs
    assert len(rows) == 20 and json.loads(rows[-1])["episodes"] == 20 * 8 * 2
    # Each rank trained 20 steps x 2 epochs x 2 minibatches; with grpo (G = 4, 2 prompts per rank
    # and step) every micro-batch is one whole group: 4 rows of the same prompt.
    for d in digests:
        assert len(d["micro_batches"]) == 80
        if estimator == "grpo":
            assert all(len(mb) == 4 and len(set(mb)) == 1 for mb in d["micro_batches"]), d["micro_batches"][:4]
