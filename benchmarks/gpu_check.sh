#!/usr/bin/env bash
# The whole GPU check in one command, sized to finish in under 8 minutes on one H200:
#   (a) the tests marked `cuda` (tests/test_cuda.py: bf16 selection, PPO, reward stage, SFT, QLoRA with
#       bitsandbytes training and saving a 4-bit LoRA, FSDP2 with a world of one process);
#   (b) full-parameter PPO at the embedded default's shape and at ~1B parameters (random weights):
#       seconds per step, generated tokens/s, generation share, peak GPU memory, per advantage estimator;
#   (c) reward-stage and SFT-stage tokens/s at the same shapes  (b and c: benchmarks/gpu_bench.py).
# Writes gpu_check.json, gpu_check.md, gpu_bench.json, gpu_bench.md, cuda_tests.xml and a log under
# $OUT (default: benchmarks/results/gpu). Without CUDA it prints "no CUDA: skipped" and exits 0.
#
# The GPU image has torch, transformers, peft and accelerate but not trl, datasets (nor its dill and
# multiprocess) or bitsandbytes, and no model files. Prepare them here once (network needed, ~48 MB):
#     bash benchmarks/gpu_check.sh --download     # wheels + the SmolLM2 tokenizer into .whl/ (git-ignored)
# then the lead runs it on the lent GPU with the device tool:
#     run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=520)
# and commits what comes back under benchmarks/results/gpu/.
#
# Options: --cpu-dry-run runs every step on this CPU at tiny size (tests still skip: "no CUDA") to
# check the script itself; its figures mean nothing. ESTIMATORS=gae,rloo,... picks the PPO rows.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-benchmarks/results/gpu}"
WHEELS=.whl
PY="${PYTHON:-python3}"

if [ "${1:-}" = "--download" ]; then
    # Python 3.12 x86-64 wheels: the GPU image's interpreter (no compiler or network there).
    "$PY" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d "$WHEELS" \
        trl==1.16.0 datasets==5.2.0 dill==0.4.0 multiprocess==0.70.18 bitsandbytes==0.50.2 || exit 1
    # The tiny models and the random-weight shapes use the embedded default's tokenizer.
    RLHF_CACHE="$PWD/$WHEELS/rlhf-cache" PYTHONPATH=. "$PY" -c "from rlhf.models import tiny_tokenizer; tiny_tokenizer()" || exit 1
    du -sh "$WHEELS"
    exit 0
fi

DRY=0
[ "${1:-}" = "--cpu-dry-run" ] && DRY=1
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
[ -d "$WHEELS/rlhf-cache" ] && export RLHF_CACHE="$PWD/$WHEELS/rlhf-cache"
start=$(date +%s)

summary() {  # status, tests line -> gpu_check.json + gpu_check.md
    "$PY" - "$OUT" "$1" "$2" "$(( $(date +%s) - start ))" <<'EOF'
import json, sys
from pathlib import Path
out, status, tests, wall = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
bench = out / "gpu_bench.json"
rows = json.loads(bench.read_text())["rows"] if bench.exists() else []
info = {"status": status, "cuda_tests": tests, "wall_s": wall, "bench_rows": len(rows),
        "bench_ok": sum(r["status"] == "ok" for r in rows)}
(out / "gpu_check.json").write_text(json.dumps(info, indent=2))
md = ["# GPU check", "", "| what | result |", "|---|---|", f"| status | {status} |", f"| cuda tests | {tests} |",
      f"| benchmark rows ok | {info['bench_ok']} of {len(rows)} (table: gpu_bench.md) |", f"| wall time | {wall} s |"]
(out / "gpu_check.md").write_text("\n".join(md) + "\n")
print("\n".join(md))
EOF
}

has_cuda=$("$PY" -c "import torch; print(int(torch.cuda.is_available()))" 2>/dev/null || echo 0)
if [ "$has_cuda" != 1 ] && [ "$DRY" = 0 ]; then
    echo "no CUDA: skipped"
    summary "no CUDA: skipped" "not run"
    exit 0
fi

# Missing packages from the carried wheels (installed beside the image's, never over them).
if ls "$WHEELS"/*.whl >/dev/null 2>&1 && [ "$DRY" = 0 ]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site "$WHEELS"/*.whl \
        >>"$LOG" 2>&1 && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
"$PY" -c "import torch, transformers, peft, accelerate; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'transformers', transformers.__version__, 'peft', peft.__version__, 'accelerate', accelerate.__version__)" | tee -a "$LOG"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | tee -a "$LOG"

# (a) the CUDA tests, at most 3 minutes
timeout 180 "$PY" -m pytest -q -p no:cacheprovider -m cuda tests/test_cuda.py -o addopts="" \
    --junitxml="$OUT/cuda_tests.xml" 2>&1 | tee -a "$LOG"
test_rc=${PIPESTATUS[0]}
tests=$(tail -n 1 "$LOG")

# (b, c) stage speed, at most ~4 minutes: rows that would start past the budget are recorded as
# skipped, and the results are rewritten after every row, so a timeout keeps what was measured
if [ "$DRY" = 1 ]; then
    bench_args=(--device cpu --shapes tiny --steps 1 --warmup 0 --batch-size 4 --max-new-tokens 8 \
                --reward-batch 2 --sft-batch 2 --budget 120)
else
    bench_args=(--device cuda --shapes default,1b --budget 190)
fi
timeout 250 "$PY" benchmarks/gpu_bench.py --out "$OUT" --estimators "${ESTIMATORS:-gae,rloo,grpo,reinforce_pp}" \
    "${bench_args[@]}" 2>&1 | tee -a "$LOG"
bench_rc=${PIPESTATUS[0]}

status="done (tests exit $test_rc, benchmark exit $bench_rc)"
[ "$DRY" = 1 ] && status="CPU dry run, no GPU figures (tests exit $test_rc, benchmark exit $bench_rc)"
summary "$status" "$tests"
exit 0
