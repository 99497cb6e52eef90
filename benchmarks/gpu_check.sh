#!/usr/bin/env bash
# One GPU check, for an H100/H200-class machine without network access (torch >= 2.11 and
# triton >= 3.6 preinstalled), ending within 8 minutes:
#
#   1. install this package offline (pip install --no-deps --no-build-isolation -e .)
#   1b. tune the kernel configs for this GPU (python -m fused_inception tune: bf16 and tf32 rows,
#      blocks 3b,4d,5b at batch 256) unless kernels/tuned/ already has this GPU's file
#      (GPU_CHECK_RETUNE=1 tunes anyway); the steps below launch its choices
#      (FUSED_INCEPTION_TUNED_DIR) and it is kept as <gpu-slug>-<date>-tuned.json: check it in as
#      kernels/tuned/<gpu-slug>.json
#   2. GPU parity of every block and the whole network, both variants: fp32, tf32, bf16
#   3. bench at GoogLeNet sizes (224x224, batch 256/32/1, bf16 and fp32):
#        pass 1  inference, every block and the whole network: eager NCHW, eager channels_last,
#                eager CUDA graph, fused NCHW, fused channels_last, fused CUDA graph
#        pass 2  whole-network training step (BN training mode, aux heads, GoogLeNetLoss) and
#                BN-frozen fine-tuning step, same methods
#        pass 3  torch.compile of the whole network, inference, bf16, batch 256. Mode "default" here
#                (GPU_CHECK_COMPILE_MODE=max-autotune to change it): max-autotune benchmarks every conv's
#                candidate kernels and does not fit this script's 8 minutes; `bench` alone uses it.
#      merged into one report
#   4. the kernels' pytest suite on the GPU, in whatever time is left (capped)
#
# Outputs go to $OUT when it is set (the device tool copies back only $OUT), else to
# benchmarks/results/:  <gpu-slug>-<date>.json (raw timings, medians, ratios, environment),
# <gpu-slug>-<date>.md (the report), <gpu-slug>-<date>-parity.json, <gpu-slug>-<date>.log (everything
# printed), <gpu-slug>-<date>-tuned.json when it tuned, and <gpu-slug>-<date>.png when matplotlib is
# installed.
#
# Every step runs under `timeout` with an explicit share of the budget; the bench writes its JSON after
# every case, so a step cut short keeps what it measured. Budget knobs (seconds):
#   GPU_CHECK_BUDGET_S (default 470: total), GPU_CHECK_TESTS=0 (skip pytest),
#   GPU_CHECK_SKIP_INSTALL=1 (the package is installed already).
# A copy of the tree without .git (as the device tool sends it) records no commit unless the caller
# passes it: FUSED_INCEPTION_GIT_COMMIT=<sha> bash benchmarks/gpu_check.sh
# For a dry run of this script's logic on a machine without a GPU: GPU_CHECK_ALLOW_CPU=1 (tiny sizes;
# nothing it prints is a GPU figure).
#
# The report lists the configs the kernels launched (tuned or default) and the tuned file used.

set -u
cd "$(dirname "$0")/.."
REPO=$(pwd)
START=$(date +%s)
BUDGET=${GPU_CHECK_BUDGET_S:-470}
DEADLINE=$((START + BUDGET))
PY=${PYTHON:-python}

now() { date +%s; }
elapsed() { echo $(( $(now) - START )); }
# seconds for a step: min(cap, time left - reserve for the later steps), at least 5
# (never 0: `timeout 0` means no limit)
share() {
  local cap=$1 reserve=$2 left
  left=$(( DEADLINE - $(now) - reserve ))
  [ "$left" -lt 5 ] && left=5
  if [ "$left" -lt "$cap" ]; then echo "$left"; else echo "$cap"; fi
}

OUT_DIR=${OUT:-$REPO/benchmarks/results}
mkdir -p "$OUT_DIR"
WORK=$(mktemp -d /tmp/fi_gpu_check.XXXXXX)

if command -v nvidia-smi >/dev/null 2>&1; then
  GPU_NAME=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n1)
  DRIVER=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -n1)
else
  GPU_NAME=""
  DRIVER=""
fi
[ -n "$GPU_NAME" ] || GPU_NAME=cpu-dry-run
SLUG=$(echo "$GPU_NAME" | tr '[:upper:]' '[:lower:]' | sed -e 's/[^a-z0-9]\{1,\}/-/g' -e 's/^-//' -e 's/-$//')
DATE=$(date -u +%Y-%m-%d)
STEM="$OUT_DIR/$SLUG-$DATE"
LOG="$STEM.log"
exec > >(tee -a "$LOG") 2>&1

echo "== gpu_check: $GPU_NAME (driver ${DRIVER:-n/a}), budget ${BUDGET} s, outputs $STEM.*"
if git rev-parse HEAD >/dev/null 2>&1; then
  echo "== commit $(git rev-parse HEAD)$(git diff --quiet 2>/dev/null || echo ' (dirty)')"
else
  echo "== commit ${FUSED_INCEPTION_GIT_COMMIT:-n/a} (no .git here: set FUSED_INCEPTION_GIT_COMMIT to record it)"
fi
nvidia-smi 2>/dev/null | head -n 15 || true

# ---------------------------------------------------------------- 1. install (offline)
T=$(share 60 410)
echo "== [$(elapsed) s] install (timeout $T s)"
if [ "${GPU_CHECK_SKIP_INSTALL:-0}" = "1" ]; then
  echo "install skipped (GPU_CHECK_SKIP_INSTALL=1)"
elif ! timeout -k 5 "$T" "$PY" -m pip install --no-deps --no-build-isolation --no-index -q -e . ; then
  echo "pip install failed: falling back to a copy of the package on PYTHONPATH"
  mkdir -p "$WORK/pkg"
  cp -r fused_inception "$WORK/pkg/"
  rm -rf "$WORK/pkg/fused_inception/kernels"
  cp -r kernels "$WORK/pkg/fused_inception/kernels"
  export PYTHONPATH="$WORK/pkg${PYTHONPATH:+:$PYTHONPATH}"
fi
"$PY" - <<'EOF' || exit 2
import os, sys, torch, triton, fused_inception
cuda = torch.cuda.is_available()
print(f"torch {torch.__version__} (CUDA {torch.version.cuda}), triton {triton.__version__}, "
      f"device {torch.cuda.get_device_name() if cuda else 'cpu'}")
if not cuda and os.environ.get("GPU_CHECK_ALLOW_CPU") != "1":
    sys.exit("no CUDA device: this script is for a GPU machine (GPU_CHECK_ALLOW_CPU=1 for a dry run)")
EOF

if [ "${GPU_CHECK_ALLOW_CPU:-0}" = "1" ] && ! "$PY" -c "import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "== DRY RUN on the CPU: tiny sizes; no figure below is a GPU measurement"
  SIZE=64; BATCH=1; DTYPES=fp32; PAR_ARGS=(--blocks 3a --no-net --variants torchvision --dtypes fp32)
  INFER_SCOPES=3a,net; METHODS=eager,fused; TRAIN_METHODS=eager,fused; COMPILE_BATCH=1
  TIMING=(--warmup 1 --repeat 2 --rep-ms 0)
else
  # the largest batch first: a pass cut short keeps the throughput cases
  SIZE=224; BATCH=256,32,1; DTYPES=bf16,fp32; PAR_ARGS=(--dtypes fp32,tf32,bf16 --net-batch 2)
  INFER_SCOPES=all; METHODS=eager,eager-cl,cudagraph,fused,fused-cl,fused-cudagraph
  TRAIN_METHODS=eager,eager-cl,cudagraph,fused,fused-cl,fused-cudagraph; COMPILE_BATCH=256
  TIMING=(--warmup 5 --repeat 5 --rep-ms 30)
fi

# ---------------------------------------------------------------- 1b. tuned configs
SHIPPED_TUNED="$REPO/kernels/tuned/$SLUG.json"
if [ -f "$SHIPPED_TUNED" ] && [ "${GPU_CHECK_RETUNE:-0}" != "1" ]; then
  echo "== [$(elapsed) s] tuned configs: using the checked-in $SHIPPED_TUNED (no re-tuning)"
else
  T=$(share 90 335)
  echo "== [$(elapsed) s] tune (timeout $T s)"
  # a fresh directory: only this run's file can be picked up (named after torch's device name,
  # which may differ from nvidia-smi's)
  timeout -k 5 "$T" "$PY" -m fused_inception tune --dtypes bf16,tf32 --blocks 3b,4d,5b --batch 256 \
    --budget-s $((T - 20)) --out-dir "$WORK/tuned"
  TUNE_RC=$?
  echo "tune exit code: $TUNE_RC (1: no row finished; 2: no CUDA device; 124: timed out, nothing written)"
  TUNED_FILES=("$WORK"/tuned/*.json)
  if [ "$TUNE_RC" -eq 0 ] && [ "${#TUNED_FILES[@]}" -eq 1 ] && [ -s "${TUNED_FILES[0]}" ]; then
    export FUSED_INCEPTION_TUNED_DIR="$WORK/tuned"
    cp "${TUNED_FILES[0]}" "$STEM-tuned.json"
    echo "the steps below launch the configs of $STEM-tuned.json (check it in as kernels/tuned/$(basename "${TUNED_FILES[0]}"))"
  fi
fi

# ---------------------------------------------------------------- 2. parity
T=$(share 90 245)
echo "== [$(elapsed) s] parity (timeout $T s)"
timeout -k 5 "$T" "$PY" -m fused_inception parity "${PAR_ARGS[@]}" --json "$STEM-parity.json"
PARITY_RC=$?
echo "parity exit code: $PARITY_RC (0 pass, 1 a row failed, 124 timed out)"

# ---------------------------------------------------------------- 3. bench
BENCH_COMMON=(--size "$SIZE" --no-progress "${TIMING[@]}")
T=$(share 130 115)
echo "== [$(elapsed) s] bench pass 1: inference, blocks and network (timeout $T s)"
timeout -k 5 "$T" "$PY" -m fused_inception bench "${BENCH_COMMON[@]}" --scopes "$INFER_SCOPES" --modes infer \
  --batch "$BATCH" --dtypes "$DTYPES" --methods "$METHODS" --max-seconds $((T - 25)) --json "$WORK/pass1.json" \
  > "$WORK/pass1.txt"
echo "pass 1 exit code: $?"; tail -n 5 "$WORK/pass1.txt"

T=$(share 55 60)
echo "== [$(elapsed) s] bench pass 2: network training and fine-tuning steps (timeout $T s)"
timeout -k 5 "$T" "$PY" -m fused_inception bench "${BENCH_COMMON[@]}" --scopes net --modes train,finetune \
  --batch "$BATCH" --dtypes "$DTYPES" --methods "$TRAIN_METHODS" --max-seconds $((T - 15)) \
  --json "$WORK/pass2.json" > "$WORK/pass2.txt"
echo "pass 2 exit code: $?"; tail -n 5 "$WORK/pass2.txt"

T=$(share 60 25)
COMPILE_MODE=${GPU_CHECK_COMPILE_MODE:-default}
echo "== [$(elapsed) s] bench pass 3: torch.compile ($COMPILE_MODE), network inference (timeout $T s)"
timeout -k 5 "$T" "$PY" -m fused_inception bench "${BENCH_COMMON[@]}" --scopes net --modes infer \
  --batch "$COMPILE_BATCH" --dtypes "${DTYPES%%,*}" --methods compile --compile-mode "$COMPILE_MODE" \
  --json "$WORK/pass3.json" > "$WORK/pass3.txt"
echo "pass 3 exit code: $? (124: compile ran out of its share; cases finished before are kept)"
tail -n 5 "$WORK/pass3.txt"

# ---------------------------------------------------------------- 4. pytest on the GPU (optional)
if [ "${GPU_CHECK_TESTS:-1}" = "1" ]; then
  T=$(share 60 25)
  if [ "$T" -gt 15 ]; then
    echo "== [$(elapsed) s] pytest tests -x -q (timeout $T s)"
    timeout -k 5 "$T" "$PY" -m pytest tests -x -q -p no:cacheprovider > "$WORK/pytest.txt" 2>&1
    echo "pytest exit code: $? (124: cut at its time share)"
    tail -n 15 "$WORK/pytest.txt"
  else
    echo "== [$(elapsed) s] pytest skipped: ${T} s left in the budget"
  fi
fi

# ---------------------------------------------------------------- 5. report
echo "== [$(elapsed) s] report"
PASSES=()
for f in "$WORK"/pass1.json "$WORK"/pass2.json "$WORK"/pass3.json; do [ -s "$f" ] && PASSES+=("$f"); done
if [ "${#PASSES[@]}" -eq 0 ]; then
  echo "no bench results to report"
  exit 1
fi
PLOT=()
"$PY" -c "import matplotlib" 2>/dev/null && PLOT=(--plot "$STEM.png")
PARITY_JSON=()
[ -s "$STEM-parity.json" ] && PARITY_JSON=(--parity-json "$STEM-parity.json")
timeout -k 5 30 "$PY" -m fused_inception bench --merge "${PASSES[@]}" --json "$STEM.json" --markdown "$STEM.md" \
  "${PARITY_JSON[@]}" "${PLOT[@]}" > "$WORK/report.txt"
REPORT_RC=$?
sed -n '/^Speedup of each fused method/,$p' "$WORK/report.txt" | head -n 80
rm -rf "$WORK"
echo "== [$(elapsed) s] done: $STEM.json, $STEM.md, $STEM-parity.json, $LOG (parity exit $PARITY_RC, report exit $REPORT_RC)"
[ "$PARITY_RC" -eq 0 ] || exit 1
exit 0
