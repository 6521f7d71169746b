"""The bottleneck adapter module and the per-sub-block container that applies it.

    series:   y = f(x) + s * up(act(down(f(x))))      (after the sub-block f)
    parallel: y = f(x) + s * up(act(down(x)))         (beside it, on the same input)

`up` starts at zero, so a fresh adapter adds exactly 0 and the model is bit-for-bit the base model
until training moves it (the same trick as LoRA's zero `B`). The container hooks the sub-block's
forward instead of wrapping it, so the base model's module names and state-dict keys never change:
`save_pretrained`, Trainer checkpoints and `from_pretrained` of the base all keep working.
"""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "silu": nn.SiLU}


class BottleneckAdapter(nn.Module):
    """hidden -> bottleneck -> hidden, scaled; `kind` says where its input comes from."""

    def __init__(self, hidden_size: int, bottleneck_size: int, kind: str, nonlinearity: str, scaling: float):
        super().__init__()
        self.kind, self.scaling = kind, scaling
        self.down = nn.Linear(hidden_size, bottleneck_size)
        self.act = ACTIVATIONS[nonlinearity]()
        self.up = nn.Linear(bottleneck_size, hidden_size)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (b, t, hidden) -> the delta to add to the sub-block's output, (b, t, hidden)."""
        return self.scaling * self.up(self.act(self.down(x)))


class BottleneckLayer(nn.ModuleDict):
    """The named adapters of one sub-block (attention or MLP), at most one active at a time.

    Lives as the child `bottleneck` of the sub-block; `hook` is registered as that sub-block's
    forward hook, so gradient checkpointing (which re-runs the block) re-runs the adapter too."""

    def __init__(self):
        super().__init__()
        self.active_adapter: str | None = None
        self.disabled = False

    def hook(self, module, args, kwargs, output):
        if self.disabled or self.active_adapter not in self:
            return None  # None keeps the sub-block's own output
        adapter = self[self.active_adapter]
        # Attention returns (hidden, attn_weights); the MLP returns the hidden states alone.
        out = output[0] if isinstance(output, tuple) else output
        source = out if adapter.kind == "series" else _hidden_input(args, kwargs)
        # Adapter weights may be fp32 beside a bf16 base (as PEFT keeps LoRA): compute in theirs.
        delta = adapter(source.to(adapter.up.weight.dtype)).to(out.dtype)
        new = out + delta
        return (new, *output[1:]) if isinstance(output, tuple) else new


def _hidden_input(args: tuple, kwargs: dict) -> torch.Tensor:
    """The sub-block's input hidden states, whether passed by position (MLP) or by name (attention)."""
    if args:
        return args[0]
    if "hidden_states" in kwargs:
        return kwargs["hidden_states"]
    return next(v for v in kwargs.values() if isinstance(v, torch.Tensor))
