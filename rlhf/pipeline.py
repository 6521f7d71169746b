"""`rlhf pipeline CONFIG.yaml`: every stage in one run folder, resumable.

The YAML names the base model and, per stage, the fields of that stage's dataclass (the same names
as its CLI flags). The pipeline fills in the paths that chain the stages:

    sft ──► sample ──► label (simulated | app) ──► reward ──► ppo ──► [dpo] ──► eval ──► report.md

A stage whose folder holds `DONE.json` is skipped on a re-run, so a stopped pipeline resumes where
it stopped. DONE.json records the settings the stage ran with; a re-run whose config changed them
stops before any stage runs (delete that stage's folder and the later ones, or use a new run_dir).
The run folder gets a copy of the config (once that check passed) and `pipeline.log`.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable

from rlhf.stages import PIPELINE_ORDER as STAGES
from rlhf.stages import ConfigError, config_class, pipeline_command, split_pipeline_keys

TOP_LEVEL = {"run_dir", "model", "seed", "device", "label_mode", *STAGES}


def stage_config_class(stage: str, label_mode: str = "simulated"):
    """The dataclass whose fields a stage's YAML section may name."""
    try:
        return config_class(pipeline_command(stage, label_mode))
    except ValueError as err:
        raise PipelineError(str(err)) from None


class PipelineError(ConfigError):
    """A config problem: unknown stage, unknown field, wrong type."""


def build_config(cls, stage: str, defaults: dict[str, Any], overrides: dict[str, Any]):
    """`cls(**defaults | overrides)`, keeping only defaults the class has and refusing unknown keys.
    A stage with checkpoints resumes its own unfinished run (`resume=True`) unless the YAML section
    says `resume: false`: re-running a stopped pipeline continues the stage where it stopped (a
    stage with no checkpoint starts at step 0), where a stage's own CLI refuses to start over
    checkpoints it was not told about."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise PipelineError(f"stage '{stage}': unknown field(s) {unknown}; {cls.__name__} has: {sorted(names)}")
    values = {"resume": True} if "resume" in names else {}
    values.update({k: v for k, v in defaults.items() if k in names})
    values.update(overrides)
    return cls(**values)


def yaml_values(cls, stage: str, values: dict[str, Any]) -> dict[str, Any]:
    """`values` (a stage's YAML section) with each number that YAML gave as text made a number:
    PyYAML reads YAML 1.1, where `1e-5` (no dot) is a string, and `learning_rate: 1e-5` failed
    with a bare TypeError inside the config's checks. PipelineError naming the stage and field for a
    number field given other text, or a true/false field given anything but true or false (the
    text 'false' would have switched it on). Fields not of `cls`, and None, are left as they are."""
    import types
    import typing

    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # an annotation that does not resolve: leave the values to the class's own checks
        return values
    out = dict(values)
    for name, value in values.items():
        if name not in hints or value is None:
            continue
        hint = hints[name]
        union = typing.get_origin(hint) in (typing.Union, types.UnionType)
        kinds = {a for a in (typing.get_args(hint) if union else (hint,)) if a is not type(None)}
        if kinds == {bool} and not isinstance(value, bool):
            raise PipelineError(f"stage '{stage}': {name}={value!r} must be true or false")
        if isinstance(value, str) and kinds & {int, float} and not kinds & {str}:
            try:
                number = float(value) if float in kinds else int(value)
            except ValueError:
                whole = "a whole number" if float not in kinds else "a number"
                raise PipelineError(f"stage '{stage}': {name}={value!r} must be {whole}") from None
            out[name] = number
    return out


def load_pipeline_config(path: str | Path) -> dict[str, Any]:
    import yaml

    from rlhf.data import read_text

    path = Path(path)
    try:
        config = yaml.safe_load(read_text(path)) or {}
    except yaml.YAMLError as err:
        raise PipelineError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(config, dict):
        raise PipelineError(f"{path}: the top level must be a mapping of stage names to settings")
    unknown = sorted(set(config) - TOP_LEVEL)
    if unknown:
        raise PipelineError(f"{path}: unknown top-level key(s) {unknown}; known: {sorted(TOP_LEVEL)}")
    for stage in STAGES:
        if config.get(stage) is not None and not isinstance(config[stage], dict):
            raise PipelineError(f"{path}: '{stage}' must be a mapping of {stage} settings")
    return config


def wait_for_labels(store, target: int, since: float, log: Callable[[str], None], poll_seconds: float = 5.0) -> str:
    """Block until `store` holds `target` labels, or an admin exported after `since` (the store's
    clock). Logs the count each time it changes. -> "target" or "export", whichever came first."""
    seen = -1
    while True:
        count = store.label_count()
        if count != seen:
            log(f"labels in: {count}/{target}")
            seen = count
        if count >= target:
            return "target"
        export = store.last_export()
        if export and export["at"] >= since:
            log(f"{export['admin']} exported {export['rows']} {export['kind']} rows: labeling is done at {count} labels")
            return "export"
        time.sleep(poll_seconds)


class Pipeline:
    """Runs the stages of one config into one run folder. Each `stage_*` method builds that stage's
    config from the YAML plus the paths of earlier stages, and calls the stage's public function."""

    poll_seconds = 5.0  # how often label_mode: app checks the labeling database
    close_grace_seconds = 3.0  # after an admin's export, time for the app to send the admin the file

    def __init__(self, config: dict[str, Any], config_path: Path | None = None):
        self.config = config
        self.run = Path(config.get("run_dir") or "runs/pipeline")  # made by the first stage or log line
        self.config_path = config_path  # copied into the run folder by run_all, after check_done passed
        self.log_path = self.run / "pipeline.log"

    def section(self, stage: str) -> dict[str, Any]:
        """The YAML fields of a stage's dataclass (pipeline-only keys removed: see `pipeline_keys`),
        each value read as its field's type (`yaml_values`)."""
        section = split_pipeline_keys(stage, dict(self.config.get(stage) or {}))[0]
        return yaml_values(stage_config_class(stage, self.config.get("label_mode", "simulated")), stage, section)

    def pipeline_keys(self, stage: str) -> dict[str, Any]:
        """The keys of a stage's section that the pipeline acts on itself (`rlhf.stages.PIPELINE_KEYS`)."""
        return split_pipeline_keys(stage, dict(self.config.get(stage) or {}))[1]

    def common(self) -> dict[str, Any]:
        return {k: self.config[k] for k in ("seed", "device") if self.config.get(k) is not None}

    def log(self, message: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {message}"
        print(f"[rlhf pipeline] {line}", flush=True)
        self.run.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a") as fh:
            fh.write(line + "\n")

    # --- one method per stage ----------------------------------------------------------------

    def stage_sft(self, out: Path):
        from rlhf.sft import SFTConfig, run_sft

        cfg = build_config(SFTConfig, "sft", {"model": self.config.get("model"), "output_dir": str(out), **self.common()}, self.section("sft"))
        run_sft(cfg)

    def stage_sample(self, out: Path):
        from rlhf.sample import SampleConfig, run_sample

        defaults = {"model": str(self.run / "sft"), "output": str(out / "candidates.jsonl"), **self.common()}
        run_sample(build_config(SampleConfig, "sample", defaults, self.section("sample")))

    def stage_label(self, out: Path):
        mode = self.config.get("label_mode", "simulated")
        candidates = str(self.run / "sample" / "candidates.jsonl")
        if mode == "simulated":
            from rlhf.labelers import SimulateConfig, run_simulate

            defaults = {"candidates": candidates, "output": str(out / "rankings.jsonl"), **self.common()}
            run_simulate(build_config(SimulateConfig, "label", defaults, self.section("label")))
        elif mode == "app":
            self._label_with_app(out, candidates)
        else:
            raise PipelineError(f"label_mode must be 'simulated' or 'app', not {mode!r}")  # validate() said so first

    def _label_with_app(self, out: Path, candidates: str) -> None:
        """Start the labeling app on the candidates and wait until the configured number of labels
        is in (`label.target_labels`, default every item x labels_per_item), then export."""
        from labeling_app.cli import LabelConfig
        from rlhf.store import LabelStore
        from labeling_app import app as label_app
        from rlhf.data import load_candidates

        section = self.section("label")
        target = self.pipeline_keys("label").get("target_labels")
        cfg = build_config(LabelConfig, "label", {"db": str(out / "labels.db"), "candidates": candidates}, section)
        store = LabelStore(cfg.db, labels_per_item=cfg.labels_per_item, lease_seconds=cfg.lease_minutes * 60)
        store.add_items(load_candidates(candidates))
        if cfg.users:
            store.load_users_file(cfg.users)
        target = target or len(load_candidates(candidates)) * cfg.labels_per_item
        started = store.clock()
        demo = label_app.launch(store, cfg, block=False)
        self.log(f"labeling app at http://{cfg.host}:{cfg.port} — continuing when {target} labels are in "
                 f"or an admin exports")
        try:
            ended_by = wait_for_labels(store, target, started, self.log, poll_seconds=self.poll_seconds)
            if ended_by == "export":
                # The admin's export handler records the export before it returns the file: closing
                # the app at once would cut that reply off, and the admin's page would wait forever.
                time.sleep(self.close_grace_seconds)
        finally:
            demo.close()
        n = store.export_rankings(out / "rankings.jsonl")
        self.log(f"exported {n} rankings to {out / 'rankings.jsonl'}")

    def stage_reward(self, out: Path):
        from rlhf.reward import RewardConfig, train_reward

        defaults = {"model": str(self.run / "sft"), "data": str(self.run / "label" / "rankings.jsonl"), "output_dir": str(out), **self.common()}
        train_reward(build_config(RewardConfig, "reward", defaults, self.section("reward")))

    def stage_ppo(self, out: Path):
        from rlhf.ppo import PPOConfig, run_ppo

        defaults = {"policy": str(self.run / "sft"), "reward_model": str(self.run / "reward"), "output_dir": str(out), **self.common()}
        if self.section("ppo").get("reward_preference"):
            del defaults["reward_model"]  # a rule is the reward (e.g. the suite's oracle), not the run's model
        if self.config.get("label_mode", "simulated") == "simulated":
            # The labels' own rule scores every rollout beside the reward model (reward/gold).
            defaults["gold_preference"] = self.section("label").get("preference", "concise")
        run_ppo(build_config(PPOConfig, "ppo", defaults, self.section("ppo")))

    def stage_dpo(self, out: Path):
        from rlhf.dpo import DPOStageConfig, run_dpo

        section = self.section("dpo")
        defaults = {"policy": str(self.run / "sft"), "data": str(self.run / "label" / "rankings.jsonl"), "output_dir": str(out), **self.common()}
        if self.config.get("label_mode", "simulated") == "simulated":
            # As for PPO: the labels' own rule scores the policy's answers beside DPO's implicit reward.
            defaults["gold_preference"] = self.section("label").get("preference", "concise")
        run_dpo(build_config(DPOStageConfig, "dpo", defaults, section))

    def stage_eval(self, out: Path):
        from rlhf.eval import EvalConfig, run_eval

        label = self.section("label")
        defaults = {"policy_a": str(self.run / "ppo" / "policy"), "policy_b": str(self.run / "sft"), "reward_model": str(self.run / "reward"),
                    "reference": str(self.run / "sft"), "output": str(out), **self.common()}
        if "preference" in label:
            defaults["preference"] = label["preference"]
        if (self.run / "dpo" / "DONE.json").exists():
            defaults["extra_policies"] = [str(self.run / "dpo")]
        run_eval(build_config(EvalConfig, "eval", defaults, self.section("eval")))

    # --- driver --------------------------------------------------------------------------------

    def enabled(self, stage: str) -> bool:
        if stage == "dpo":
            return bool(self.pipeline_keys("dpo").get("enabled", False))
        return True

    def validate(self) -> None:
        """Check every stage's section against its dataclass before the first stage runs, so a typo in
        `eval:` fails in a second, not after half an hour of training."""
        mode = self.config.get("label_mode", "simulated")
        for stage in STAGES:
            if not self.enabled(stage):
                continue
            section = self.section(stage)
            names = {f.name for f in dataclasses.fields(stage_config_class(stage, mode))}
            unknown = sorted(set(section) - names)
            if unknown:
                raise PipelineError(f"stage '{stage}': unknown field(s) {unknown}; its fields are: {sorted(names)}")
        # Their own checks (a number out of range, a rule reward beside a critic that needs a reward model)
        # need no earlier stage's output: fail now, not after the stages before them have trained.
        for stage in ("sft", "sample", "reward", "ppo", "dpo", "eval"):
            if self.enabled(stage):
                try:
                    stage_config_class(stage, mode)(**self.section(stage))
                except ValueError as err:  # ConfigError is one
                    raise PipelineError(f"stage '{stage}': {err}") from None
        ppo = self.section("ppo")
        if ppo.get("reward_preference"):  # the rule loads and its prompt columns are in the prompts file
            from rlhf.ppo.trainer import check_rule_reward

            try:
                check_rule_reward(ppo["reward_preference"], ppo.get("prompts"))
            except ValueError as err:  # ConfigError and DataError are ones
                raise PipelineError(f"stage 'ppo': {err}") from None

    def stage_settings(self, stage: str) -> dict[str, Any]:
        """What decides a stage's output besides earlier stages' folders: its YAML section (pipeline
        keys included), seed and device, the base model for sft, the label mode for label. As JSON
        values, so it compares equal to the copy DONE.json holds."""
        values = {**dict(self.config.get(stage) or {}), **self.common()}
        if stage == "sft":
            values["model"] = self.config.get("model")
        if stage == "label":
            values["label_mode"] = self.config.get("label_mode", "simulated")
        return json.loads(json.dumps(values, sort_keys=True, default=str))

    def check_done(self, stage: str, out: Path | None = None) -> bool:
        """True when `out` (default run_dir/STAGE) holds DONE.json from a run with this config's
        settings for the stage; False when it holds none. Raises PipelineError naming the changed keys
        (old -> new) when the settings differ: its outputs were made under the old ones, and so were
        the later stages' built on them. A DONE.json without settings (older runs) counts as done."""
        out = out or self.run / stage
        try:
            done = json.loads((out / "DONE.json").read_text())
        except FileNotFoundError:
            return False
        except ValueError:
            raise PipelineError(f"{out / 'DONE.json'}: not valid JSON; delete {out} to run stage '{stage}' again") from None
        if "settings" not in done:
            return True
        old, new = done["settings"], self.stage_settings(stage)
        if old != new:
            unset = "(unset)"
            changes = ", ".join(f"{k}: {old.get(k, unset)!r} -> {new.get(k, unset)!r}"
                                for k in sorted(set(old) | set(new)) if old.get(k, unset) != new.get(k, unset))
            raise PipelineError(f"stage '{stage}' in {out} was done with other settings ({changes}); its outputs and "
                                f"those of the stages after it are stale: delete {out} and the later stages' "
                                f"folders, or use a new run_dir")
        return True

    def run_stage(self, stage: str, out: Path | None = None) -> float | None:
        """Run one stage into `out` (default run_dir/STAGE) unless its DONE.json exists; then write
        DONE.json with the stage's settings. Returns the seconds it took, or None when it was done
        already. Raises PipelineError when it was done with other settings (`check_done`)."""
        out = out or self.run / stage
        if self.check_done(stage, out):
            if "settings" in json.loads((out / "DONE.json").read_text()):
                self.log(f"{stage}: done in an earlier run, skipped")
            else:
                self.log(f"{stage}: done in an earlier run, skipped (its DONE.json records no settings, "
                         f"so a change to the config could not be compared)")
            return None
        self.log(f"{stage}: started")
        t0 = time.time()
        out.mkdir(parents=True, exist_ok=True)
        step: Callable[[Path], Any] = getattr(self, f"stage_{stage}")
        step(out)
        seconds = round(time.time() - t0, 1)
        done = {"stage": stage, "seconds": seconds, "settings": self.stage_settings(stage)}
        (out / "DONE.json").write_text(json.dumps(done, indent=2))
        self.log(f"{stage}: finished in {seconds} s")
        return seconds

    def run_all(self) -> Path:
        started = time.time()
        self.validate()
        stages = [stage for stage in STAGES if self.enabled(stage)]
        for stage in stages:  # in order: the earliest changed stage is the one named
            self.check_done(stage)
        self.run.mkdir(parents=True, exist_ok=True)  # after the checks: a refused config leaves no empty run folder
        if self.config_path is not None and Path(self.config_path).resolve() != (self.run / "pipeline.yaml").resolve():
            shutil.copy(self.config_path, self.run / "pipeline.yaml")
        for stage in stages:
            self.run_stage(stage)
        from rlhf.report import write_report

        report = write_report(self.run)
        self.log(f"all stages done in {time.time() - started:.0f} s; report: {report}")
        return self.run


def run_pipeline(config_path: str | Path, overrides: dict[str, Any] | None = None) -> Path:
    config = load_pipeline_config(config_path)
    config.update(overrides or {})
    return Pipeline(config, Path(config_path)).run_all()


def pipeline_main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="rlhf pipeline", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)  # no prefixes: --run is not --run_dir
    parser.add_argument("config", help="pipeline YAML (see examples/quickstart.yaml)")
    parser.add_argument("--run_dir", help="override the run folder named in the config")
    args = parser.parse_args(argv)
    from rlhf.data import DataError
    from rlhf.finite import NonFiniteError
    from rlhf.models import ModelNotFoundError

    try:
        run_pipeline(args.config, {"run_dir": args.run_dir} if args.run_dir else None)
    except (ConfigError, DataError, ModelNotFoundError) as err:
        print(f"rlhf pipeline: error: {err}", file=sys.stderr)
        return 2
    except NonFiniteError as err:  # a stage stopped before a NaN reached its weights or output
        print(f"rlhf pipeline: error: {err}", file=sys.stderr)
        return 1
    return 0
