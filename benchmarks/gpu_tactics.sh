#!/usr/bin/env bash
# A second, shorter GPU check (after gpu_check.sh): the tactics against each other at network level,
# and the GPU tests a first check found failing, with their tracebacks. Within GPU_TACTICS_BUDGET_S
# (default 320 s) of wall time; each step is limited and skipped when too little time is left.
#
#   GPU_TACTICS_TESTS=<file of pytest node ids>  bash benchmarks/gpu_tactics.sh
#
# Steps, most valuable first:
#   setup   install this package offline (as gpu_check.sh)
#   tests   pytest --tb=short on the node ids of GPU_TACTICS_TESTS (if set), then on
#           GPU_TACTICS_MORE_TESTS (files; default tests/test_aten_bn_forward.py)
#   train   the whole network's BN-training step (train) and BN-frozen fine-tuning step (finetune),
#           bf16, batch 256, channels_last, with every fused block forced to one tactic
#           (bench --force-tactic): aten-bn (with eager-cl in the same process as the control),
#           modules, aten (finetune; train's aten is the untuned default gpu_check.sh timed)
#   tf32    parity of the blocks and the network in fp32 with TF32 allowed (the untuned tactic)
#   blocks  the nine blocks' bf16 inference at batch 256, channels_last, forced to aten
#   tune    the tactic rows of the nine blocks (bf16, batch 256, inference) with the tuner's timer
# Outputs in $OUT (else benchmarks/results/), <stem> = <gpu-slug>-tactics-<UTC date and time>:
#   <stem>.log (everything printed), <stem>-tests.txt, <stem>-parity.json, <stem>-bench.tar (each
#   bench step's JSON and markdown, and the tuned file).

set -u
cd "$(dirname "$0")/.."
START=$(date +%s)
BUDGET=${GPU_TACTICS_BUDGET_S:-320}
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
OUT_DIR=${OUT:-benchmarks/results}
mkdir -p "$OUT_DIR"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/fi_gpu_tactics.XXXXXX")
GPU_NAME=$(timeout 20 nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n1)
SLUG=$(echo "${GPU_NAME:-no-gpu}" | tr '[:upper:]' '[:lower:]' | sed -e 's/[^a-z0-9]\{1,\}/-/g' -e 's/^-//' -e 's/-$//')
STEM="$OUT_DIR/$SLUG-tactics-$(date -u +%Y%m%d-%H%M)"
exec > >(tee -a "$STEM.log") 2>&1

left() { echo $(( START + BUDGET - $(date +%s) )); }
# step NAME CAP MIN CMD...: run CMD limited to min(CAP, time left - 10 s); skipped under MIN s
step() {
  local name=$1 cap=$2 min=$3 limit
  shift 3
  limit=$(( $(left) - 10 ))
  [ "$limit" -gt "$cap" ] && limit=$cap
  if [ "$limit" -lt "$min" ]; then
    echo "== [$(( $(date +%s) - START )) s] $name: skipped ($limit s left, needs $min)"
    return
  fi
  echo "== [$(( $(date +%s) - START )) s] $name (limit $limit s): $*"
  timeout -k 3 $((limit - 3)) "$@"
  echo "== [$(( $(date +%s) - START )) s] $name: exit code $?"
  tar -cf "$STEM-bench.tar" -C "$WORK" . 2>/dev/null
}

echo "== gpu_tactics: ${GPU_NAME:-no GPU}, budget $BUDGET s, commit ${FUSED_INCEPTION_GIT_COMMIT:-unknown}"
timeout 20 nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw \
  --format=csv 2>/dev/null
step setup 60 10 "$PY" -m pip install --no-deps --no-build-isolation --no-index -q -e .

if [ -n "${GPU_TACTICS_TESTS:-}" ]; then
  mapfile -t IDS < "$GPU_TACTICS_TESTS"
  step tests 90 20 "$PY" -m pytest "${IDS[@]}" -q --tb=short -p no:cacheprovider -o console_output_style=classic \
    > "$STEM-tests.txt" 2>&1
  tail -n 40 "$STEM-tests.txt"
fi
step more-tests 45 20 "$PY" -m pytest ${GPU_TACTICS_MORE_TESTS:-tests/test_aten_bn_forward.py} -q --tb=short \
  -p no:cacheprovider >> "$STEM-tests.txt" 2>&1
tail -n 5 "$STEM-tests.txt"

BENCH=(-m fused_inception bench --size 224 --batch 256 --dtypes bf16 --no-progress --warmup 3 --repeat 5 --rep-ms 30)
bench_step() {  # bench_step NAME CAP TACTIC MODES METHODS
  step "$1" "$2" 20 "$PY" "${BENCH[@]}" --scopes net --modes "$4" --methods "$5" --force-tactic "$3" \
    --json "$WORK/$1.json" --markdown "$WORK/$1.md"
}
bench_step train-aten-bn 60 aten-bn finetune,train eager-cl,fused-cl
bench_step train-modules 45 modules finetune,train fused-cl
bench_step finetune-aten 35 aten finetune fused-cl

step tf32 40 20 "$PY" -m fused_inception parity --variants torchvision --dtypes tf32 --batch 2 --net-batch 2 \
  --json "$STEM-parity.json"

step blocks-aten 35 20 "$PY" "${BENCH[@]}" --scopes blocks --modes infer --methods fused-cl --force-tactic aten \
  --json "$WORK/blocks-aten.json" --markdown "$WORK/blocks-aten.md"

step tune 60 30 "$PY" -m fused_inception tune --dtypes bf16 --budget-s 0 --batch 256 --tactic-dtypes bf16 \
  --tactic-batches 256 --tactic-modes inference --tactic-budget-s 30 --out-dir "$WORK/tuned"

tar -cf "$STEM-bench.tar" -C "$WORK" . 2>/dev/null
for f in "$WORK"/*.md; do [ -s "$f" ] && { echo "== $f"; sed -n '/^## Median/,/^## Speedups/p' "$f"; }; done
echo "== [$(( $(date +%s) - START )) s] done: $STEM.*"
