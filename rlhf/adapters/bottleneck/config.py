"""Settings of one series or parallel bottleneck adapter (LLM-Adapters, Hu et al. 2023).

Stored as `adapter_config.json` next to the adapter's tensors, in the same folder shape PEFT uses,
with `"rlhf_adapter": "series" | "parallel"` telling our loader (and not PEFT's) to read it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

KINDS = ("series", "parallel")
PLACEMENTS = ("mlp", "attn")
NONLINEARITIES = ("relu", "tanh", "gelu", "silu")
CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"


@dataclass(frozen=True)
class BottleneckConfig:
    """One adapter: hidden -> `bottleneck_size` -> hidden, after (series) or beside (parallel) a sub-block."""

    kind: str = "series"
    bottleneck_size: int = 64
    placement: str = "mlp"  # which sub-block of every transformer block it sits after / beside
    nonlinearity: str = "tanh"
    scaling: float = 1.0
    base_model_name_or_path: str | None = None

    def __post_init__(self):
        for name, value, choices in (
            ("kind", self.kind, KINDS),
            ("placement", self.placement, PLACEMENTS),
            ("nonlinearity", self.nonlinearity, NONLINEARITIES),
        ):
            if value not in choices:
                raise ValueError(f"bottleneck adapter: {name}={value!r} is not one of {', '.join(choices)}")
        if self.bottleneck_size < 1:
            raise ValueError(f"bottleneck adapter: bottleneck_size must be >= 1, got {self.bottleneck_size}")

    def to_json(self) -> dict:
        """The `adapter_config.json` payload; `rlhf_adapter` marks the folder as ours."""
        return {"rlhf_adapter": self.kind, **asdict(self)}

    @classmethod
    def from_json(cls, data: dict) -> "BottleneckConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def save(self, folder: str | Path) -> None:
        Path(folder, CONFIG_NAME).write_text(json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def load(cls, folder: str | Path) -> "BottleneckConfig":
        return cls.from_json(json.loads(Path(folder, CONFIG_NAME).read_text()))
