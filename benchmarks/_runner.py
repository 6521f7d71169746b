"""What the benchmark scripts share: one configuration run in its own Python process (so its peak
memory is its own) and read back as the JSON it wrote, that peak memory, the machine's load average,
the ratios of ours against a peer measured in the same run, and the results written as JSON plus a
Markdown table.

The scripts import it as `_runner`: Python puts a script's own folder first on `sys.path`.

    parent:  result = run_script(__file__, ["--child", name, "--out", out_file], out_file, env=OFFLINE_ENV)
    child:   write_child_result(out_file, {"step_s": [...]})        # adds peak_rss_gb
    at end:  save_results(RESULTS / "name.json", report, "\\n".join(markdown_lines))
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
# A child needs no hub (the embedded model is local) and must not fork tokenizer threads.
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


class ChildFailed(RuntimeError):
    """A configuration's process exited non-zero or wrote no result; `returncode` and `last_line`
    (the last line of its stderr when captured) say why. The caller records it and goes on."""

    def __init__(self, returncode: int, last_line: str):
        super().__init__(f"exit {returncode}: {last_line}")
        self.returncode, self.last_line = returncode, last_line


def run_script(script: str | Path, argv: list, out_file: str | Path, *, env: dict | None = None,
               pythonpath_first: list | tuple = (), quiet: bool = False) -> dict:
    """Run `python script *argv` in a fresh process and return the JSON object it wrote to `out_file`.

    env: variables set over this process's environment; pythonpath_first: folders put before
    PYTHONPATH (e.g. a pinned peer library); quiet: capture the child's output instead of streaming
    it (its last stderr line then goes into the error). Raises ChildFailed on a non-zero exit or a
    missing `out_file` (a file left by an earlier run is removed first, so it never passes as this one's)."""
    out_file = Path(out_file)
    out_file.unlink(missing_ok=True)
    full_env = {**os.environ, **(env or {})}
    if pythonpath_first:
        full_env["PYTHONPATH"] = os.pathsep.join([*map(str, pythonpath_first), full_env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, str(script), *map(str, argv)], env=full_env, capture_output=quiet, text=True)
    if proc.returncode != 0 or not out_file.exists():
        lines = (proc.stderr or "").strip().splitlines()
        last = lines[-1] if lines else ("no output" if quiet else "see its output above")
        raise ChildFailed(proc.returncode, last if proc.returncode else f"wrote no {out_file.name}")
    return json.loads(out_file.read_text())


def peak_rss_gb() -> float:
    """Peak resident memory of this process so far, in GiB (Linux reports `ru_maxrss` in KiB):
    imports, model and everything else the process held at its high-water mark."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def write_child_result(out_file: str | Path, result: dict) -> None:
    """The child's side of `run_script`: `result` plus this process's `peak_rss_gb`, as JSON."""
    Path(out_file).write_text(json.dumps({**result, "peak_rss_gb": peak_rss_gb()}))


def load_average() -> list[float]:
    """The 1-, 5- and 15-minute load average, rounded to 2 places: what else the machine was doing."""
    return [round(x, 2) for x in os.getloadavg()]


def ratios(rows: dict, pairs: list[tuple[str, str]]) -> dict:
    """For each (ours, theirs) both present in `rows` (name -> {"s_per_step", "peak_rss_gb"}):
    "speedup" = theirs' s/step / ours (above 1: ours is faster) and "memory_ratio" = ours' peak
    memory / theirs (below 1: ours holds less), keyed "ours vs theirs"."""
    out = {}
    for ours, theirs in pairs:
        if ours in rows and theirs in rows:
            out[f"{ours} vs {theirs}"] = {
                "speedup": round(rows[theirs]["s_per_step"] / rows[ours]["s_per_step"], 2),
                "memory_ratio": round(rows[ours]["peak_rss_gb"] / rows[theirs]["peak_rss_gb"], 2)}
    return out


def ratio_lines(ratios_: dict, runs: list[tuple[str, str]]) -> list[str]:
    """Markdown: the table of `ratios()` and the list of runs (name, what it is)."""
    lines = ["", "| comparison | speed-up (trl s/step ÷ ours) | memory (ours ÷ trl) |", "|---|---|---|"]
    lines += [f"| {k} | {v['speedup']}× | {v['memory_ratio']} |" for k, v in ratios_.items()]
    return lines + ["", "Runs:"] + [f"- `{name}`: {text}" for name, text in runs]


def save_results(json_path: str | Path, result: dict, markdown: str, show: bool = True) -> None:
    """`result` as indented JSON at `json_path` and `markdown` beside it (same name, .md); the
    Markdown is printed too unless `show` is False. Creates the folder."""
    json_path = Path(json_path)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    json_path.with_suffix(".md").write_text(markdown.rstrip("\n") + "\n")
    if show:
        print(markdown)
