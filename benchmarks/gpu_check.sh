#!/usr/bin/env bash
# One ready GPU check: run it once on a machine with one NVIDIA GPU (H100/H200), in under 8 min.
#
#   benchmarks/gpu_check.sh           # on the GPU host, from a copy of the repository
#   benchmarks/gpu_check.sh --tiny    # the same steps on the CPU with the tiny model (CI dry run)
#
# It installs and downloads nothing (the GPU host has no network): it needs the project's
# virtualenv next to the repository (.venv, carried along) or PYTHON=/path/to/python. Steps,
# each under its own time limit, each logged to $GPU_CHECK_LOG (default: $OUT/gpu_check when
# $OUT is set, else a temporary folder):
#
#   1. environment     python, torch, CUDA device, nvidia-smi
#   2. gpu tests       the GME tests marked `gpu` (bf16 on CUDA vs fp32 on CPU, batch = single)
#   3. throughput      bench_scoring.py --device cuda --full-size-random: GME-2B architecture with
#                      random weights, stock transformers forward vs this backend's, batches
#                      8/32/64 at 448² and 896² (plus embed_images: preprocessing + forward)
#   4. preprocessing   bench_scoring.py --preprocess --device cuda: CPU per image, transformers'
#                      processor vs the fast one (same pixel_values), then the device path
#                      (MODERATION_GME_PREPROCESSOR=device, what GME on CUDA uses): host CPU per
#                      image with both resizes on the GPU, against official_resize + reference
#   5. summary         the lines to copy into docs/gme.md; the goal is >= 175 img/s at 448²
#
# Exit status: 0 when every step passed, 1 otherwise (the summary names the failed steps).
set -uo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-$ROOT/.venv/bin/python}
export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

TINY=0
if [[ ${1:-} == --tiny ]]; then
  TINY=1
elif [[ $# -gt 0 ]]; then
  echo "usage: $0 [--tiny]" >&2
  exit 2
fi
if [[ -n ${GPU_CHECK_LOG:-} ]]; then
  LOG=$GPU_CHECK_LOG
elif [[ -n ${OUT:-} ]]; then
  LOG=$OUT/gpu_check
else
  LOG=$(mktemp -d -t gpu_check.XXXXXX)
fi
mkdir -p "$LOG"

if ((TINY)); then
  DEVICE=cpu
  BENCH=(--device cpu --full-size-random --tiny --batches 2 4 --sizes 448 --repeats 1 --text-batch 8)
  PREP=(--preprocess --repeats 1)
  LIMITS=(60 120 300 120)
else
  DEVICE=cuda
  BENCH=(--device cuda --full-size-random --batches 8 32 64 --sizes 448 896 --repeats 3)
  PREP=(--preprocess --device cuda --repeats 3)
  LIMITS=(60 120 300 60) # 540 s at most; typically far less
fi

FAILED=()
step() { # step NAME LIMIT_S COMMAND...
  local name=$1 limit=$2
  shift 2
  local started=$SECONDS
  echo "=== $name (limit ${limit}s)"
  timeout --kill-after=10 "$limit" "$@" > >(tee "$LOG/$name.log") 2>&1
  local rc=$?
  wait # the tee
  echo "=== $name: exit $rc after $((SECONDS - started)) s"
  if ((rc != 0)); then FAILED+=("$name (exit $rc)"); fi
  return 0
}

step environment "${LIMITS[0]}" "$PY" - "$DEVICE" <<'EOF'
import platform, sys
import torch, transformers, PIL
device = sys.argv[1]
print(f"python {platform.python_version()}, torch {torch.__version__}, "
      f"transformers {transformers.__version__}, Pillow {PIL.__version__}")
print(f"CUDA available: {torch.cuda.is_available()}")
if torch.cuda.is_available():
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        print(f"  cuda:{i} {p.name}, {p.total_memory / 2**30:.0f} GiB")
try:
    from transformers.utils import is_flash_attn_2_available
    print(f"flash-attention 2: {is_flash_attn_2_available()}")
except ImportError:
    pass
if device == "cuda" and not torch.cuda.is_available():
    sys.exit("no CUDA device visible")
EOF
if command -v nvidia-smi >/dev/null; then nvidia-smi -L | tee -a "$LOG/environment.log"; fi

# In the tiny dry run the gpu tests are collected and skipped (no CUDA): the step still proves
# they import and select.
step gpu_tests "${LIMITS[1]}" "$PY" -m pytest -m gpu -q -p no:cacheprovider tests/moderation/embedders

step throughput "${LIMITS[2]}" "$PY" benchmarks/bench_scoring.py "${BENCH[@]}"

step preprocessing "${LIMITS[3]}" "$PY" benchmarks/bench_scoring.py "${PREP[@]}"

echo
echo "=== summary ($( ((TINY)) && echo 'tiny CPU dry run' || echo 'GPU'), logs in $LOG)"
grep -h -E '^\(b\)|preprocessing on|official/stock|peak GPU memory|texts/s' "$LOG/throughput.log" 2>/dev/null
grep -h -E '^ +[0-9]+ +(official 1-D|stock M-RoPE|embed_images)' "$LOG/throughput.log" 2>/dev/null
grep -h -E '^\(c\)|^ +[0-9]+x[0-9]+ ' "$LOG/preprocessing.log" 2>/dev/null
if ((!TINY)); then
  best=$(awk '/^ +448²/ {on=1} /^ +896²/ {on=0} on && $2 == "official" {print $4}' \
    "$LOG/throughput.log" 2>/dev/null | sort -g | tail -1)
  echo "best official 1-D at 448²: ${best:-n/a} img/s (goal >= 175 img/s on one H100)"
fi
grep -h -E 'passed|failed|skipped|error' "$LOG/gpu_tests.log" 2>/dev/null | tail -1
if ((${#FAILED[@]})); then
  echo "FAILED: ${FAILED[*]}"
  exit 1
fi
echo "all steps passed"
