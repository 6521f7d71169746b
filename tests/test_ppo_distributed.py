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
from ppo_tiny import batch_statistics_worker, save_tiny_sft, shards_for_batch_statistics  # noqa: E402


def free_port() -> int:
    """A port nobody listens on now: other test runs on this machine may hold a fixed one."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_batch_statistics_span_every_process(tmp_path):
    """Whitening (gae, whiten_rewards), REINFORCE++'s batch normalisation and grpo's batch std with two processes
    equal those of one process holding both halves: the statistics are summed over the processes,
    not taken per shard (a per-shard whiten gives each process its own mean and scale)."""
    import torch.multiprocessing as mp

    from rlhf.ppo import core

    mp.spawn(batch_statistics_worker, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=2, join=True)
    shards = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    scores, kl, values, mask = shards_for_batch_statistics()
    for estimator in ("gae", "reinforce++"):
        for whiten_rewards in (False, True):
            key = f"{estimator}/{whiten_rewards}"
            _, adv, ret = core.compute_advantages(estimator, scores, kl, mask, 0.05, 1, values, 1.0, 0.95,
                                                  whiten_rewards)
            got_adv = torch.cat([s[key][0] for s in shards])
            got_ret = torch.cat([s[key][1] for s in shards])
            torch.testing.assert_close(got_adv, adv, msg=key)
            torch.testing.assert_close(got_ret, ret, msg=key)
            # Per shard the whitened halves would not be: each half would have mean 0 on its own.
            alone = core.compute_advantages(estimator, scores[:3], kl[:3], mask[:3], 0.05, 1, values[:3], 1.0, 0.95,
                                            whiten_rewards)[1]
            assert not torch.allclose(alone, adv[:3], atol=1e-3), key
    for s in shards:
        torch.testing.assert_close(s["var"], core.masked_var(kl, mask))
    # grpo with scale_rewards="batch" (one group of 3 per process): the std is the whole batch's.
    whole = core.compute_advantages("grpo", scores, kl, mask, 0.05, 3, scale_rewards="batch")[1]
    torch.testing.assert_close(torch.cat([s["grpo/batch"] for s in shards]), whole)
    alone = core.compute_advantages("grpo", scores[:3], kl[:3], mask[:3], 0.05, 3, scale_rewards="batch")[1]
    assert not torch.allclose(alone, whole[:3], atol=1e-3)


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
    # The advantages are whitened over both processes' rollouts together (gae): their mean over
    # the two is 0 at every step, while each process's own mean is not; and the two processes
    # took the same decision to update the policy.
    for step, (a0, a1) in enumerate(zip(digests[0]["advantages"], digests[1]["advantages"])):
        assert a0[3] == a1[3], f"step {step}: one process updated the policy and the other did not"
        if estimator == "gae":
            assert abs((a0[0] + a1[0]) / (a0[2] + a1[2])) < 1e-4, (step, a0, a1)
    if estimator == "gae":
        assert max(abs(a[0] / a[2]) for a in digests[0]["advantages"]) > 0.01
    for d in digests:
        assert len(d["micro_batches"]) == 80
        if estimator == "grpo":
            assert all(len(mb) == 4 and len(set(mb)) == 1 for mb in d["micro_batches"]), d["micro_batches"][:4]
