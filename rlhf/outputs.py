"""The checks every stage makes on its output folder before it loads any model.

A stage refuses (with `ConfigError`: one line, exit 2) an output folder that

- is one of its input model folders (`rlhf dpo --policy X --output_dir X` would put the DPO model
  beside X's adapter, and later loaders would still read X as the SFT adapter);
- holds another stage's output (its `rlhf_config.json` names another stage): the two would mix;
- holds checkpoints of an unfinished run while resume is off: the new run would start at step 0 and
  its checkpoint rotation would delete them. `--resume true` continues that run,
  `--overwrite_output_dir true` deletes the checkpoints and starts over.

The same stage again in its own folder is allowed. A finished run (its final output written after
its newest checkpoint) run again without resume starts over, as a Trainer overwrites its
output_dir: its old checkpoints are removed first, so a later resume cannot pick one of them up.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Iterable, Mapping

from rlhf.stages import CONFIG_FILE, ConfigError


def stages_in(folder: str | Path) -> set[str]:
    """The stages whose own output `folder` holds, read from its rlhf_config.json: the top-level
    `stage`, or a record kept under a stage's name when a one-file output was written beside it
    (`rlhf.stages.save_resolved_config`). Records of one-file outputs (candidates, rankings) do not
    count: they are files beside the folder's own output."""
    try:
        record = json.loads((Path(folder) / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    if not isinstance(record, dict):
        return set()
    if isinstance(record.get("stage"), str):
        return {record["stage"]}
    return {key for key, value in record.items() if isinstance(value, dict) and value.get("stage") == key}


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return a.expanduser().resolve() == b.expanduser().resolve()
    except OSError:
        return False


def check_output_dir(stage: str, output_dir: str | Path, inputs: Mapping[str, str | None | Iterable[str]],
                     output_flag: str = "--output_dir") -> Path:
    """Refuse an output folder that is one of `inputs` (flag -> model folder(s) the stage reads) or
    holds another stage's output. Returns the folder as a Path."""
    out = Path(output_dir)
    for flag, values in inputs.items():
        for value in [values] if values is None or isinstance(values, (str, Path)) else values:
            if value and Path(str(value)).expanduser().is_dir() and _same_folder(Path(str(value)), out):
                raise ConfigError(f"{output_flag} {output_dir} is the input model folder of {flag}: the {stage} output "
                                  f"would be mixed into it (later stages would still load the old model); pass a "
                                  f"new {output_flag}")
    others = sorted(stages_in(out) - {stage})
    if others:
        raise ConfigError(f"{output_flag} {output_dir} already holds the output of rlhf {others[0]} (its {CONFIG_FILE}): "
                          f"the {stage} output would be mixed into it; pass a new {output_flag}")
    return out


def check_checkpoints(stage: str, output_dir: str | Path, checkpoints: list[Path], remove: Path,
                      resume: bool, overwrite: bool, final: str = "metrics.json") -> None:
    """Decide what to do with the `checkpoints` (complete ones, oldest first) found in `output_dir`
    when a run starts. With resume on, nothing (the stage resumes from the newest). Otherwise, when
    they belong to an unfinished run (no `final` file written after the newest), raise ConfigError
    unless `overwrite`; when they belong to a finished run, or `overwrite` is on, delete `remove`
    (the folder or file holding them), saying so."""
    if resume and overwrite:
        raise ConfigError(f"--resume true and --overwrite_output_dir true contradict each other: pass one")
    if resume or not checkpoints:
        return
    newest = checkpoints[-1]
    final_file = Path(output_dir) / final
    finished = final_file.is_file() and final_file.stat().st_mtime_ns >= newest.stat().st_mtime_ns
    if not finished and not overwrite:
        raise ConfigError(f"{output_dir} holds checkpoints of an unfinished rlhf {stage} run (newest: {newest}): pass "
                          f"--resume true to continue it, --overwrite_output_dir true to delete them and start over, "
                          f"or a new --output_dir")
    why = "--overwrite_output_dir" if not finished else "the earlier run had finished; starting over"
    print(f"[rlhf {stage}] removed {remove}, the checkpoints of the earlier run in {output_dir} ({why})")
    if remove.is_dir():
        shutil.rmtree(remove, ignore_errors=True)  # every process of a launch may get here
    else:
        remove.unlink(missing_ok=True)
