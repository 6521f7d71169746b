#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the quickstart on the embedded default model (CPU is fine).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} TOKENIZERS_PARALLELISM=false
python examples/quickstart.py "$@"
