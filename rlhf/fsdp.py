"""Sharded full-parameter training with torch's FSDP2 (`torch.distributed.fsdp.fully_shard`).

Why our own ~180 lines instead of accelerate's FSDP plugin (docs/notes.md#accelerate-fsdp-cpu):
accelerate 1.15 turns FSDP on only for GPU-family process groups. Under `torchrun` on CPU,
`Accelerator(cpu=True, fsdp_plugin=...)` silently gives plain DDP (`DistributedType.MULTI_CPU`), and
without `cpu=True` each process sees a world of one. Calling `fully_shard` ourselves gives one code path that runs over gloo on CPU and over
NCCL on GPUs, and that the test suite can check on this machine.

The layout is the one torchtitan and torchtune use: `fully_shard` on every decoder layer (the classes
a transformers model lists in `_no_split_modules`), then on the model itself, so each layer's
parameters are all-gathered just before it runs and freed after. Each model that runs on its own
(policy, critic or value head, frozen reference) is its own FSDP root.

Generation is the known trap: `generate` runs one forward per new token, and with per-layer
resharding each of them would all-gather every layer again (slow), in a count of steps that differs
between processes when their completions stop at different lengths (a hang). `gathered_for_generation`
does what TRL does with DeepSpeed ZeRO-3 (`GatheredParameters`) and FSDP1 (`summon_full_params`), in
FSDP2's terms: all-gather every layer once, keep the full weights for the whole `generate`, free
them afterwards.

Only full-parameter training shards here (`SUPPORTED`): a LoRA or other adapter trains a few
million parameters that fit on any device, and plain data parallelism (DDP) runs it.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import torch
from torch import nn

SUPPORTED = ("FSDP2 sharding supports full-parameter training only: `rlhf ppo --policy_train full`, "
             "`rlhf reward --train full`, `rlhf sft --adapter full` (SFT: GPU only). Adapters (LoRA and the rest) "
             "train a few million parameters: run them without --fsdp, as data parallel (DDP)")


def world_size() -> int:
    """Processes in this run, from torchrun's environment (1 when not launched by torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def check_layout(train: str, flag: str) -> None:
    """Raise ValueError naming the supported layouts unless `train` is "full"."""
    if train != "full":
        from rlhf.stages import ConfigError

        raise ConfigError(f"--fsdp with {flag} {train}: {SUPPORTED}")


def init_process_group(device: str) -> None:
    """Join torchrun's process group (gloo on CPU, NCCL on CUDA) unless joined already. Without
    torchrun this makes a world of one, which FSDP2 also needs."""
    import torch.distributed as dist

    if dist.is_initialized():
        return
    if "MASTER_ADDR" not in os.environ:  # not launched by torchrun
        import socket

        with socket.socket() as s:  # a free port, so parallel single-process runs do not collide
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK="0", WORLD_SIZE="1", LOCAL_RANK="0")
    cuda = str(device).startswith("cuda")
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if cuda else "gloo", rank=int(os.environ["RANK"]), world_size=world_size())


def is_sharded(module: nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return any(isinstance(m, FSDPModule) for m in module.modules())


def shard_model(model: nn.Module) -> nn.Module:
    """`fully_shard` each decoder layer (the classes in `model._no_split_modules`; for a wrapper
    model, the ones of the model inside), then the model itself (a small module such as a value
    head: the module alone; a sequence-classification model: its backbone and its head).
    Parameters become DTensors sharded along dim 0 over all processes; build the optimizer after
    this. Returns `model`."""
    from torch.distributed.fsdp import fully_shard

    names = set()
    for m in model.modules():
        names.update(getattr(m, "_no_split_modules", None) or [])
    layers = [m for m in model.modules() if type(m).__name__ in names and m is not model]
    for layer in layers:
        fully_shard(layer)
    # A sequence-classification model is run as backbone + score head (rlhf.reward.model), never
    # through its own forward, so each of the two is a root; any other model is one root.
    head = getattr(model, "score", None)
    backbone = getattr(model, getattr(model, "base_model_prefix", ""), None)
    if isinstance(head, nn.Module) and isinstance(backbone, nn.Module) and backbone is not model:
        fully_shard(backbone)
        fully_shard(head)
    else:
        fully_shard(model)
    return model


def local_shard_numel(module: nn.Module) -> int:
    """Parameter elements this process holds (its shards), for logging what sharding saved."""
    from torch.distributed.tensor import DTensor

    return sum((p.to_local() if isinstance(p, DTensor) else p).numel() for p in module.parameters())


@contextmanager
def gathered_for_generation(*models: nn.Module):
    """Full weights on every process for the duration of the block (one all-gather per layer, no
    collective inside it), sharded again after. Every process must enter it together. Outside
    FSDP2 it does nothing. Afterwards every FSDP module reshards after forward, the roots too
    (FSDP2 keeps a root's weights between forward and backward by default): one more all-gather
    of the embeddings per training pass, the same result."""
    from torch.distributed.fsdp import FSDPModule

    fsdp = [m for model in models for m in model.modules() if isinstance(m, FSDPModule)]
    if not fsdp:
        yield
        return
    for m in fsdp:
        m.set_reshard_after_forward(False, recurse=False)
        m.unshard()
    try:
        yield
    finally:
        for m in fsdp:
            m.reshard()
            m.set_reshard_after_forward(True, recurse=False)


def clip_grad_norm(params, max_norm: float) -> torch.Tensor:
    """torch's clip_grad_norm_ over (possibly sharded) parameters; the total norm of the full
    gradient, as a plain tensor on every process."""
    from torch.distributed.tensor import DTensor

    norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    return norm.full_tensor() if isinstance(norm, DTensor) else norm


def _options(**kwargs):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=True, **kwargs)


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The full (unsharded) state dict on CPU in process 0, {} in the others. Collective: every
    process must call it. Keys are the unsharded model's (FSDP2 keeps parameter names)."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    return get_model_state_dict(model, options=_options())


def load_full_state_dict(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load a full state dict that process 0 holds (others pass {}) into the sharded model;
    keys not in `state` keep their values. Collective."""
    from torch.distributed.checkpoint.state_dict import set_model_state_dict

    set_model_state_dict(model, state, options=_options(broadcast_from_rank0=True, strict=False))


def full_optimizer_state(model: nn.Module, optimizer) -> dict:
    """The optimizer's state with full tensors, keyed by parameter name, in process 0. Collective."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    return get_optimizer_state_dict(model, optimizer, options=_options())


def load_full_optimizer_state(model: nn.Module, optimizer, state: dict) -> None:
    """Inverse of `full_optimizer_state` (process 0 holds `state`). Collective."""
    from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

    set_optimizer_state_dict(model, optimizer, state, options=_options(broadcast_from_rank0=True))


def shard_actor_critic(actor_critic: nn.Module, reference: nn.Module | None) -> None:
    """PPO's layout: the policy, the critic (reward-model copy) or value head, and the frozen
    reference each become their own FSDP2 root, sharded per decoder layer. They run separately
    (generate uses the policy alone), and FSDP2 needs each root's forward to come first."""
    for module in (actor_critic.policy, actor_critic.critic, actor_critic.value_head, reference):
        if module is not None:
            shard_model(module)
