"""Shared flags for the stage examples: --run_dir and --tiny (a tiny random model, for tests)."""

import argparse
from pathlib import Path


def parse(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--run_dir", default="runs/examples", help="folder shared by the stage examples")
    parser.add_argument("--tiny", action="store_true", help="a tiny random model and a few steps (seconds, for tests)")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the example's own)")
    args = parser.parse_args()
    args.run_dir = Path(args.run_dir)
    args.run_dir.mkdir(parents=True, exist_ok=True)
    return args


def base_model(args) -> str | None:
    """None (the embedded default) or, with --tiny, a tiny random model written once into the run folder."""
    if not args.tiny:
        return None
    from rlhf import save_tiny_model

    path = args.run_dir / "tiny-base"
    if not (path / "config.json").exists():
        save_tiny_model(path)
    return str(path)
