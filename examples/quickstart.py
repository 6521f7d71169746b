"""Quickstart: the whole loop on the embedded default model (SmolLM2-135M-Instruct), on CPU.

SFT (LoRA) -> 4 candidates per prompt -> simulated labelers rank them -> reward model -> PPO -> DPO
-> evaluation on held-out prompts. Everything lands in one run folder with a report.md.

    python examples/quickstart.py [--config examples/quickstart.yaml] [--run_dir runs/quickstart]
"""

import argparse
import json
import time
from pathlib import Path

from rlhf import run_pipeline


def main() -> None:
    here = Path(__file__).parent
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(here / "quickstart.yaml"), help="pipeline YAML")
    parser.add_argument("--run_dir", default=None, help="override the run folder of the config")
    args = parser.parse_args()

    started = time.time()
    run = run_pipeline(args.config, {"run_dir": args.run_dir} if args.run_dir else None)
    minutes = (time.time() - started) / 60

    result = json.loads((run / "eval" / "eval.json").read_text())
    reward = json.loads((run / "reward" / "metrics.json").read_text())
    lo, hi = result["ci95"]
    print(f"\nWhole loop in {minutes:.1f} min. Report: {run / 'report.md'}")
    print(f"PPO vs SFT win rate ({result['judge']}): {result['win_rate']:.3f}  95% CI [{lo:.3f}, {hi:.3f}]  n={result['n']}")
    held_out = reward.get("eval") or {}
    print(f"Reward model held-out pair accuracy: {held_out.get('accuracy', float('nan')):.3f} "
          f"({held_out.get('pairs', 0)} pairs)")


if __name__ == "__main__":
    main()
