#!/usr/bin/env bash
# Set up (scripts/setup.sh), check the import rules, and run the whole test suite, slow and browser
# tests included.
# Extra arguments go to pytest, e.g.  bash scripts/test.sh -m "not slow"  for the quick tier.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --with-browser
. .venv/bin/activate
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} TOKENIZERS_PARALLELISM=false
# The architecture's rules (pyproject.toml [tool.importlinter], docs/architecture.md) first: seconds.
lint-imports
python -m pytest -q -p no:cacheprovider --timeout 1800 "$@"
