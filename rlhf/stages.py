"""Which stages exist, and where each records its resolved config: the one registry that the CLI
(`rlhf.cli`), the pipeline (`rlhf.pipeline`) and the package's exports (`rlhf.__init__`) read.

A stage is a module, a config dataclass (its fields are the CLI flags and the YAML keys of
`rlhf pipeline`, documented once) and a function that runs it. This module imports nothing heavy:
`rlhf --help` and `import rlhf` read it without loading torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from pathlib import Path


class ConfigError(ValueError):
    """A setting that cannot work, found by stage code after the flags were parsed (QLoRA without a
    GPU, --fsdp with an adapter, a preference that cannot be imported, a resume from another run's
    checkpoint). The CLI prints it as one line and exits 2, as for a bad flag; errors in the data
    are `rlhf.data.DataError`, failures while running (non-finite numbers, out of memory) exit 1."""


def number_problems(config: Any, *, at_least_1: tuple[str, ...] = (), at_least_0: tuple[str, ...] = (),
                    positive: tuple[str, ...] = (), fraction: tuple[str, ...] = (),
                    probability: tuple[str, ...] = ()) -> list[str]:
    """"name must be ... (got value)" for each named field of `config` outside its range, for a
    config's `__post_init__` to collect and raise as one ValueError (the CLI prints it and exits 2,
    before any model or data loads). None passes: it stands for the field's default. NaN fails all.
    fraction: [0, 1) (a share held out, a dropout); probability: [0, 1]."""
    rules = ((at_least_1, lambda v: v >= 1, ">= 1"), (at_least_0, lambda v: v >= 0, ">= 0"),
             (positive, lambda v: v > 0, "> 0"), (fraction, lambda v: 0 <= v < 1, "in [0, 1)"),
             (probability, lambda v: 0 <= v <= 1, "in [0, 1]"))
    problems = []
    for names, ok, allowed in rules:
        for name in names:
            value = getattr(config, name)
            if value is not None and not ok(value):
                problems.append(f"{name} must be {allowed} (got {value})")
    return problems


def max_steps_problems(max_steps: int | None, epochs: float) -> list[str]:
    """The training-length rules every training stage shares: max_steps is -1 (or None: train for
    `epochs`) or >= 1, and epochs > 0. Zero steps would save the untouched model as if trained."""
    problems = []
    if max_steps is not None and max_steps != -1 and not max_steps >= 1:
        problems.append(f"max_steps must be -1 (train for epochs) or >= 1 (got {max_steps})")
    if not epochs > 0:
        problems.append(f"epochs must be > 0 (got {epochs})")
    return problems


class Stage(NamedTuple):
    """One CLI command. `config` is the dataclass's name in `module`, or None when `run` takes argv
    itself (commands with their own sub-commands). `exports` are the names `import rlhf` offers.
    A NamedTuple, not a dataclass: `import rlhf` reads this module, and dataclasses + pathlib would
    triple its import time."""

    command: str
    module: str
    config: str | None
    run: str
    help: str
    exports: tuple[str, ...] = ()


STAGES: tuple[Stage, ...] = (
    Stage("sft", "rlhf.sft", "SFTConfig", "run_sft", "supervised fine-tuning with an adapter (LoRA, DoRA, series, ...)",
          ("SFTConfig", "run_sft")),
    Stage("sample", "rlhf.sample", "SampleConfig", "run_sample", "sample K completions per prompt for labeling",
          ("SampleConfig", "run_sample")),
    Stage("label", "labeling_app.cli", "LabelConfig", "run_label", "start the browser labeling app"),
    Stage("users", "labeling_app.cli", None, "users_main", "add or list labeling-app users (admin)"),
    Stage("export", "labeling_app.cli", "ExportConfig", "run_export",
          "export rankings / pairs from the labeling database"),
    Stage("simulate", "rlhf.labelers", "SimulateConfig", "run_simulate",
          "rank candidates with simulated labelers (a stand-in for people)",
          ("SimulateConfig", "SimulatedLabeler", "run_simulate")),
    Stage("reward", "rlhf.reward", "RewardConfig", "train_reward", "train a reward model on rankings or pairs",
          ("RewardConfig", "RewardModel", "train_reward")),
    Stage("reward-eval", "rlhf.reward_eval", "RewardEvalConfig", "run_reward_eval",
          "pair accuracy of a reward model on any preference file (bootstrap CI, per source or labeler)"),
    Stage("ppo", "rlhf.ppo", "PPOConfig", "run_ppo", "PPO of the policy against a reward model",
          ("PPOConfig", "PPOTrainer", "run_ppo")),
    Stage("dpo", "rlhf.dpo", "DPOStageConfig", "run_dpo", "DPO from the same rankings (offline alternative to PPO)",
          ("DPOStageConfig", "run_dpo")),
    Stage("eval", "rlhf.eval", "EvalConfig", "run_eval",
          "win rate of one policy against another, with a confidence interval", ("EvalConfig", "run_eval")),
    Stage("pipeline", "rlhf.pipeline", None, "pipeline_main", "run every stage from one YAML config",
          ("run_pipeline",)),
)

COMMANDS: dict[str, Stage] = {stage.command: stage for stage in STAGES}

# The pipeline's sections in the order they run, and the command each section configures. The label
# section configures `simulate` or the app's `label`, by the config's `label_mode`.
PIPELINE_ORDER = ("sft", "sample", "label", "reward", "ppo", "dpo", "eval")
LABEL_MODES = {"simulated": "simulate", "app": "label"}

# Keys a pipeline section may hold that are not fields of the stage's dataclass: the pipeline acts
# on them itself. Popped in one place, `split_pipeline_keys`.
PIPELINE_KEYS: dict[str, tuple[str, ...]] = {
    "label": ("target_labels",),  # label_mode: app continues once this many labels are in
    "dpo": ("enabled",),  # DPO is optional in a pipeline run
}


def pipeline_command(section: str, label_mode: str = "simulated") -> str:
    """The CLI command whose dataclass a pipeline section fills. Raises ValueError for an unknown
    section or label mode."""
    if section == "label":
        if label_mode not in LABEL_MODES:
            raise ValueError(f"label_mode must be one of {sorted(LABEL_MODES)}, not {label_mode!r}")
        return LABEL_MODES[label_mode]
    if section not in PIPELINE_ORDER:
        raise ValueError(f"unknown pipeline stage {section!r}; stages: {', '.join(PIPELINE_ORDER)}")
    return section


def config_class(command: str):
    """The dataclass of a command (imports its module). Raises KeyError for an unknown command."""
    import importlib

    stage = COMMANDS[command]
    return getattr(importlib.import_module(stage.module), stage.config)


def run_function(command: str):
    """The function that runs a command (imports its module)."""
    import importlib

    stage = COMMANDS[command]
    return getattr(importlib.import_module(stage.module), stage.run)


def split_pipeline_keys(section_name: str, section: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the dataclass fields, the pipeline-only keys) of one pipeline section; the input is not changed."""
    own = PIPELINE_KEYS.get(section_name, ())
    fields = {k: v for k, v in section.items() if k not in own}
    return fields, {k: v for k, v in section.items() if k in own}


# --- the resolved config, next to every stage's outputs ------------------------------------------

CONFIG_FILE = "rlhf_config.json"


def save_resolved_config(stage: str, config: Any, where: str | Path, **resolved: Any) -> Path:
    """Write the settings a stage ran with to `rlhf_config.json`, so a run can be repeated.

    `config` is the stage's dataclass (or a dict); `resolved` adds what the stage decided itself
    (the learning rate it picked, the device, ...) and overrides fields of the same name.
    `where` is the stage's output folder, or, for a stage whose output is one file (candidates,
    rankings, a labeling database), that file: the config then goes into the file's folder, keyed by
    the file's name, beside the configs of other files written there (a folder stage's record found
    there is kept under its stage's name). Returns the path written."""
    import dataclasses
    import json
    from pathlib import Path

    values = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    record = {"stage": stage, **values, **resolved}
    where = Path(where)
    if where.suffix and not where.is_dir():  # one output file
        path = where.parent / CONFIG_FILE
        existing = _read(path)
        if "stage" in existing:  # a folder stage's own record is there: kept, under its stage's name
            existing = {existing["stage"]: existing}
        existing[where.name] = record
        record = existing
    else:
        path = where / CONFIG_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def _read(path: Path) -> dict[str, Any]:
    import json

    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}
