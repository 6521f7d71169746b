"""Read a finished quickstart run folder and add its figures to benchmarks/results/quickstart.json.

    bash scripts/quickstart.sh --run_dir /tmp/qs            # (with /usr/bin/time -v around it)
    python benchmarks/quickstart_record.py /tmp/qs --note "commit abc1234, load 2-5" --time_log time.txt

Gathers what the README's quickstart table shows: stage seconds (pipeline.log), every eval
comparison (win rate, 95% CI, W/T/L), the judge, each policy's length / finished share / reward,
the reward model's train and held-out accuracy, PPO's score and gold score over the first and
last tenth of the steps, the final KL, and the per-step curve; with --time_log, /usr/bin/time -v's
wall time and peak RSS. Prints the new entry and appends it to the `runs` list (newest first).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "quickstart.json"


def stage_seconds(run: Path) -> dict[str, float]:
    """Each stage's seconds from pipeline.log ('HH:MM:SS stage: finished in N s')."""
    out = {}
    for line in (run / "pipeline.log").read_text().splitlines():
        m = re.search(r"(\w+): finished in ([\d.]+) s", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def time_figures(path: Path) -> dict:
    """Wall time and peak RSS from `/usr/bin/time -v` output."""
    text = path.read_text(errors="replace")
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", text)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    out = {}
    if wall:
        h, m, s = wall.groups()
        out["wall_seconds"] = round(int(h or 0) * 3600 + int(m) * 60 + float(s), 1)
    if rss:
        out["peak_rss_gb"] = round(int(rss.group(1)) / 1024**2, 2)
    return out


def ppo_curve(run: Path) -> list[dict]:
    rows = [json.loads(x) for x in (run / "ppo" / "metrics.jsonl").read_text().splitlines() if x.strip()]
    keep = {"score": "reward/score", "gold": "reward/gold", "kl": "kl/mean", "length": "response/length",
            "missing_eos": "response/missing_eos", "seconds": "time/step"}
    return [{"step": r["step"], **{k: round(r[v], 4) for k, v in keep.items() if v in r}} for r in rows]


def record(run: Path, note: str, time_log: Path | None) -> dict:
    evaluation = json.loads((run / "eval" / "eval.json").read_text())
    reward = json.loads((run / "reward" / "metrics.json").read_text())
    ppo = json.loads((run / "ppo" / "metrics.json").read_text())
    stages = stage_seconds(run)
    entry = {"note": note, "stage_seconds": stages, "pipeline_seconds": round(sum(stages.values()), 1),
             **(time_figures(time_log) if time_log else {}),
             "comparisons": [{k: c[k] for k in ("a", "b", "win_rate", "ci95", "n", "wins", "ties", "losses")}
                             for c in evaluation["comparisons"]],
             "judge": evaluation.get("judge"), "policies": evaluation.get("policies"),
             "reward_model": {"train_accuracy": reward["train"]["accuracy"], "eval_accuracy": reward["eval"]["accuracy"],
                              "eval_pairs": reward["eval"]["pairs"],
                              "eval_length_bias": reward["eval"].get("length_bias")},
             "ppo_reward_unit": ppo.get("reward_unit"),
             **{f"ppo_{k}": ppo.get(k) for k in ("score_first_tenth", "score_last_tenth", "gold_first_tenth",
                                                  "gold_last_tenth")},
             "ppo_final": ppo.get("final"), "ppo_per_step": ppo_curve(run)}
    return entry


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a finished quickstart run folder")
    parser.add_argument("--note", required=True, help="what this run was: commit, machine load, changes")
    parser.add_argument("--time_log", type=Path, default=None, help="/usr/bin/time -v output of the run")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    entry = record(args.run_dir, args.note, args.time_log)
    data = json.loads(args.results.read_text()) if args.results.exists() else {"runs": []}
    data["runs"].insert(0, entry)
    args.results.write_text(json.dumps(data, indent=1) + "\n")
    print(json.dumps({k: v for k, v in entry.items() if k != "ppo_per_step"}, indent=1))


if __name__ == "__main__":
    main()
