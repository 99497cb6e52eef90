#!/usr/bin/env bash
# One GPU check for an H100/H200-class machine without network access (torch >= 2.11 and
# triton >= 3.6 preinstalled), most valuable first, within GPU_CHECK_BUDGET_S (default 450 s) of
# wall time, report included. The command, the device tool's timeout_s and the timing model behind
# the limits below: benchmarks/NOTES.md, section "GPU check (benchmarks/gpu_check.sh)".
#
# Steps, in order (limit s = the most a step may take; it gets less when less is left):
#   setup     install this package offline (pip install --no-deps --no-build-isolation -e .; a copy
#             on PYTHONPATH if that fails), check for a GPU
#   parity    GPU parity of the fused blocks and the whole network against float64: bf16, then
#             TF32, then fp32 IEEE; torchvision and paper variants (rows written one by one)
#   headline  whole-network inference, bf16, batch 256: eager NCHW, eager channels_last, fused,
#             fused channels_last; then the stem alone (conv1 to maxpool2: the first run put 5.1 ms
#             of the network's 10.27 outside the blocks; fused: its conv units' BN, ReLU and pools
#             in one launch each, fused_inception/stem.py)
#   blocks    the nine Inception blocks alone, same dtype, batch and methods
#   train     whole-network BN-frozen fine-tuning step (where the fused kernels run forward and
#             backward) and training step (BN in training mode), bf16, batch 256
#   compile   torch.compile (mode GPU_CHECK_COMPILE_MODE, default "default") of the whole network,
#             inference, bf16, batch 256: the eager network, then the fused one (fused-compile: the
#             first run measured compile at 7.64 ms against fused channels_last's 10.27, with half
#             the fused time outside the blocks, which compile also optimizes); then the stem alone,
#             compiled (not fused-compile: a fused stem unit runs its modules under torch.compile)
#   tune      the kernels' tuning candidates on this GPU, on 3b, 4d and 5b (bf16 rows: the
#             pointwise default against b64, its 128 x 128 sm_90 branch-1 tiles alone, and b64
#             against np64, clamped pool taps and 5b's 128-wide pool tiles; the reduce -> k x k
#             default, with 128-pixel aligned tiles, against mma-64, and against mma-l1, its
#             sm_90 scratch copies through L1; np64 and mma-64 are the code the first run
#             measured: docs/DESIGN.md 5.6. TF32 rows: the TF32 defaults and their
#             candidates), then the tactics
#             (Triton kernels, aten, modules) of the nine blocks in bf16 inference at the batch
#             above, unless kernels/tuned/ has this GPU's file with config choices (one without,
#             as the checked-in H200 file, which gpu_tactics.sh wrote with no config budget, is
#             tuned again;
#             GPU_CHECK_RETUNE=1 tunes anyway);
#             not used by the steps above (they measure the shipped configs and the untuned
#             tactic): check <stem>-tuned.json in as kernels/tuned/<gpu-slug>.json
#   tests     the test suite on the GPU in the time left: tests/kernels/ and the
#             op/module tests (tests/test_function.py, test_custom_op.py, test_module.py,
#             test_fuse.py) first, then the others
#
# After every step the results so far are merged into the report (nothing waits for the end), and
# the raw data of every step is packed into <stem>-raw.tar; nothing is ever deleted. Outputs, at
# most 7 files, in $OUT when it is set (the device tool brings back only $OUT), else in
# benchmarks/results/; <stem> = <gpu-slug>-<UTC date and time>:
#   <stem>.md          the report: provenance, step-status table (ran / cut at N s / failed with
#                      rc N / skipped), timings and speedups, parity table
#   <stem>.json        every bench timing, merged, with the environment and the steps
#   <stem>-parity.json parity rows (rewritten after every row)
#   <stem>-raw.tar     each step's own JSON and output, and the steps file
#   <stem>.log         everything printed
#   <stem>-tuned.json  when it tuned;  <stem>.png  when matplotlib is installed
#
# Budget: a step's limit is min(its cap, the time left minus the merge after it and the final
# report); a step whose limit would be under its minimum is skipped, not started; `timeout -k`
# ends each command, kill grace included, inside its limit. So the whole run ends by the budget.
#
# Knobs: GPU_CHECK_BUDGET_S (total seconds), GPU_CHECK_SKIP_INSTALL=1 (the package is installed
# already), GPU_CHECK_TESTS=0 (no tests step), GPU_CHECK_RETUNE=1, GPU_CHECK_COMPILE_MODE, PYTHON
# (default python3). A copy of the tree without .git records commit "unknown" and the source hash
# (python3 -c 'from fused_inception.tools.environment import source_hash; print(source_hash())' in a
# checkout gives the value to compare); FUSED_INCEPTION_GIT_COMMIT=<sha> records a commit instead.
# GPU_CHECK_ALLOW_CPU=1 on a machine without a GPU: a dry run of this script's logic at tiny sizes
# (nothing it prints is a GPU figure; tests/tools/test_gpu_check.py runs it).

set -u
cd "$(dirname "$0")/.."
REPO=$(pwd)
START=$(date +%s)
BUDGET=${GPU_CHECK_BUDGET_S:-450}
MERGE_S=15   # limit of the report merge after each step
FINAL_S=20   # limit of the final report (merge and plot)
SAFETY_S=3   # for the shell's own work between the limited commands
DEADLINE=$((START + BUDGET - SAFETY_S))
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1

now() { date +%s; }
elapsed() { echo $(( $(now) - START )); }

OUT_DIR=${OUT:-$REPO/benchmarks/results}
mkdir -p "$OUT_DIR"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/fi_gpu_check.XXXXXX")  # never deleted; packed into <stem>-raw.tar after each step

GPU_NAME=$(timeout 20 nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n1)
DRIVER=$(timeout 20 nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -n1)
[ -n "$GPU_NAME" ] || GPU_NAME=cpu-dry-run
SLUG=$(echo "$GPU_NAME" | tr '[:upper:]' '[:lower:]' | sed -e 's/[^a-z0-9]\{1,\}/-/g' -e 's/^-//' -e 's/-$//')
STEM="$OUT_DIR/$SLUG-$(date -u +%Y%m%d-%H%M)"
LOG="$STEM.log"
STEPS="$WORK/steps.tsv"
: > "$STEPS"
exec > >(tee -a "$LOG") 2>&1

echo "== gpu_check: $GPU_NAME (driver ${DRIVER:-n/a}), budget $BUDGET s, outputs $STEM.*, raw data $WORK"
if git rev-parse HEAD >/dev/null 2>&1; then
  echo "== commit $(git rev-parse HEAD)$(git diff --quiet 2>/dev/null || echo ' (dirty)')"
else
  echo "== commit ${FUSED_INCEPTION_GIT_COMMIT:-unknown} (no .git here: the report records the source hash)"
fi
timeout 20 nvidia-smi 2>/dev/null | head -n 15

# ---------------------------------------------------------------- step machinery
# merge_report [final]: every finished result into <stem>.json / <stem>.md (with --plot when final),
# then pack the raw data. Bounded by MERGE_S (FINAL_S when final).
merge_report() {
  local limit=$MERGE_S plot=() benches=() parity=() f
  if [ "${1:-}" = final ]; then
    limit=$FINAL_S
    [ "${HAVE_MATPLOTLIB:-0}" = 1 ] && plot=(--plot "$STEM.png")
  fi
  for f in headline blocks train compile; do  # step order: the first one's environment heads the report
    [ -s "$WORK/bench-$f.json" ] && benches+=("$WORK/bench-$f.json")
  done
  [ -s "$STEM-parity.json" ] && parity=(--parity-json "$STEM-parity.json")
  timeout -k 2 $((limit - 2)) "$PY" -m fused_inception bench --merge "${benches[@]}" --steps "$STEPS" \
    "${parity[@]}" --json "$STEM.json" --markdown "$STEM.md" "${plot[@]}" > "$WORK/report.txt" 2>&1
  local rc=$?
  [ "$rc" -le 1 ] || { echo "report merge exit code $rc:"; tail -n 5 "$WORK/report.txt"; }
  rm -f "$OUT_DIR"/*.tmp  # a writer killed between its temporary file and the rename
  tar -cf "$STEM-raw.tar.tmp" -C "$WORK" . 2>/dev/null && mv "$STEM-raw.tar.tmp" "$STEM-raw.tar"
}

# record NAME WHAT STATUS SECONDS LIMIT RC OUTPUT NOTE: one line of the steps file
record() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >> "$STEPS"; }

# limited CMD...: run CMD so that it ends, kill grace included, within the step's LIMIT
limited() { timeout -k 3 $((LIMIT - 3)) "$@"; }
# stop_at MARGIN: a bench's --max-seconds: LIMIT less MARGIN (at most a third of LIMIT), the time its
# last measurement may take to finish and write its JSON
stop_at() { local m=$1; [ $((LIMIT / 3)) -lt "$m" ] && m=$((LIMIT / 3)); echo $((LIMIT - m)); }

# run_step NAME "WHAT" CAP MIN OUTPUT RESULT_RCS FUNCTION: run FUNCTION (which reads $LIMIT) with
# LIMIT = min(CAP, time left - merge - final report), or skip it when that is under MIN; record its
# status (exit codes in RESULT_RCS are results, e.g. a failed parity row; 124/137: cut by its
# limit) and merge the report.
run_step() {
  local name=$1 what=$2 cap=$3 min=$4 output=$5 result_rcs=$6 fn=$7
  local left=$(( DEADLINE - $(now) - MERGE_S - FINAL_S ))
  LIMIT=$cap
  [ "$left" -lt "$LIMIT" ] && LIMIT=$left
  if [ "$LIMIT" -lt "$min" ]; then
    echo "== [$(elapsed) s] $name: skipped (${left} s left before the report, needs $min s)"
    record "$name" "$what" skipped - "$cap" - "$output" "not started: ${left} s left, needs $min s"
    return
  fi
  echo "== [$(elapsed) s] $name: $what (limit $LIMIT s)"
  local t0 rc status
  t0=$(now)
  # in this shell (not a pipeline's subshell: exports stay), its output copied to WORK by a tee the
  # step does not wait for (a leftover grandchild holding the pipe cannot stall the run)
  "$fn" > >(tee "$WORK/$name.txt") 2>&1
  rc=$?
  case " $result_rcs 124 137 " in
    *" $rc "*) status=ran ;;
    *) status=failed ;;
  esac
  [ "$rc" = 124 ] || [ "$rc" = 137 ] && status=cut
  echo "== [$(elapsed) s] $name: $status (exit code $rc, $(( $(now) - t0 )) s)"
  [ "$rc" = 0 ] || [ "$status" = cut ] && NOTE=""  # NOTE explains a nonzero exit code that is a result
  record "$name" "$what" "$status" "$(( $(now) - t0 ))" "$LIMIT" "$rc" "$output" "${NOTE:-}"
  NOTE=""
  merge_report
}

# ---------------------------------------------------------------- sizes and limits: GPU, or a CPU dry run
# CAP: a step's limit in seconds at most; MIN: under this many seconds left it is skipped. The GPU
# values come from the timing model in benchmarks/NOTES.md (each step's modelled time fits its cap).
declare -A CAP=([setup]=60 [parity]=110 [headline]=65 [blocks]=45 [train]=75 [compile]=100 [tune]=65 [tests]=600)
declare -A MIN=([setup]=10 [parity]=20 [headline]=30 [blocks]=20 [train]=35 [compile]=45 [tune]=25 [tests]=30)
DRY=0
if [ "${GPU_CHECK_ALLOW_CPU:-0}" = "1" ] && [ "$GPU_NAME" = cpu-dry-run ]; then
  DRY=1
  echo "== DRY RUN on the CPU: tiny sizes; no figure below is a GPU measurement"
  SIZE=64; BATCH=1; DTYPE=bf16; BLOCKS=3a,5b
  PARITY_ARGS=(--variants torchvision --blocks 3a --no-net --dtypes fp32 --block-size 4)
  # short limits: the compile and tests steps are meant to be cut (CPU inductor and the interpreter
  # take longer), the others to finish
  CAP+=([parity]=40 [headline]=30 [blocks]=30 [train]=30 [compile]=10 [tests]=10)
  MIN+=([setup]=5 [parity]=10 [headline]=10 [blocks]=10 [train]=10 [compile]=5 [tests]=5)
  TIMING=(--warmup 1 --repeat 2 --rep-ms 0)
  TEST_FILES=(tests/kernels/test_kernels.py)
else
  SIZE=224; BATCH=256; DTYPE=bf16; BLOCKS=blocks
  # blocks at the network's batch (2): the network's rows then reuse the blocks' kernel binaries
  PARITY_ARGS=(--variants torchvision,paper --dtypes bf16,tf32,fp32 --batch 2 --net-batch 2)
  TIMING=(--warmup 5 --repeat 5 --rep-ms 30)
  TUNE_ARGS=(--dtypes bf16,tf32 --blocks 3b,4d,5b --batch 256
             --tactic-dtypes bf16 --tactic-batches 256 --tactic-modes inference --tactic-budget-s 20)
  # the GPU kernel tests first, then the others that run on the GPU, alphabetically; not
  # test_gpu_check.py (a CPU dry run of this script), test_compile_check.py (ahead-of-time
  # compiles, no GPU needed, minutes) nor test_plan.py (shape arithmetic)
  TEST_FILES=(tests/kernels/test_kernels.py tests/kernels/test_pointwise_pool.py tests/kernels/test_kernel_schedule.py
              tests/test_function.py tests/test_custom_op.py tests/test_module.py tests/test_fuse.py)
  for f in tests/test_*.py tests/*/test_*.py; do
    case " ${TEST_FILES[*]} tests/tools/test_gpu_check.py tests/tools/test_compile_check.py tests/tools/test_plan.py " in
      *" $f "*) ;;
      *) TEST_FILES+=("$f") ;;
    esac
  done
fi
BENCH=(-m fused_inception bench --size "$SIZE" --no-progress "${TIMING[@]}")

# ---------------------------------------------------------------- the steps
step_setup() {
  if [ "${GPU_CHECK_SKIP_INSTALL:-0}" = "1" ]; then
    echo "install skipped (GPU_CHECK_SKIP_INSTALL=1)"
  elif ! limited "$PY" -m pip install --no-deps --no-build-isolation --no-index -q -e . ; then
    echo "pip install failed: a copy of the package on PYTHONPATH instead"
    mkdir -p "$WORK/pkg"
    cp -r fused_inception "$WORK/pkg/"
    rm -rf "$WORK/pkg/fused_inception/kernels"
    cp -r kernels "$WORK/pkg/fused_inception/kernels"
    export PYTHONPATH="$WORK/pkg${PYTHONPATH:+:$PYTHONPATH}"
  fi
  limited "$PY" - <<'EOF'
import os, sys, torch, triton, fused_inception
from fused_inception.tools.environment import source_hash
cuda = torch.cuda.is_available()
print(f"torch {torch.__version__} (CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}), "
      f"triton {triton.__version__}, device {torch.cuda.get_device_name() if cuda else 'cpu'}, "
      f"source hash {source_hash()}")
if not cuda and os.environ.get("GPU_CHECK_ALLOW_CPU") != "1":
    sys.exit("no CUDA device: this script is for a GPU machine (GPU_CHECK_ALLOW_CPU=1 for a dry run)")
EOF
}

step_parity() {
  # dry run: the kernels in the interpreter from the start (else parity restarts itself with it)
  local interpret=()
  [ "$DRY" = 1 ] && interpret=(env TRITON_INTERPRET=1)
  limited "${interpret[@]}" "$PY" -m fused_inception parity "${PARITY_ARGS[@]}" --json "$STEM-parity.json"
}

step_headline() {
  # the network first; then its stem alone (what the network spends before inception3a, eager and fused)
  limited "$PY" "${BENCH[@]}" --scopes net,stem --modes infer --batch "$BATCH" --dtypes "$DTYPE" \
    --methods eager,eager-cl,fused,fused-cl --max-seconds "$(stop_at 15)" --json "$WORK/bench-headline.json"
}

step_blocks() {
  limited "$PY" "${BENCH[@]}" --scopes "$BLOCKS" --modes infer --batch "$BATCH" --dtypes "$DTYPE" \
    --methods eager,eager-cl,fused,fused-cl --max-seconds "$(stop_at 15)" --json "$WORK/bench-blocks.json"
}

step_train() {
  # fine-tuning first: the mode where the fused kernels run forward and backward
  limited "$PY" "${BENCH[@]}" --scopes net --modes finetune,train --batch "$BATCH" --dtypes "$DTYPE" \
    --methods eager,eager-cl,fused,fused-cl --max-seconds "$(stop_at 25)" --json "$WORK/bench-train.json"
}

step_compile() {
  limited "$PY" "${BENCH[@]}" --scopes net,stem --modes infer --batch "$BATCH" --dtypes "$DTYPE" \
    --methods compile,fused-compile --compile-mode "${GPU_CHECK_COMPILE_MODE:-default}" \
    --json "$WORK/bench-compile.json"
}

step_tune() {
  mkdir -p "$WORK/tuned"
  # a fresh directory: only this run's file, named after torch's device name
  # the config rows stop in time to leave the tactic rows their 20 s (TUNE_ARGS) and 1 s to spare
  # (stop_at 35 is clamped to a third of the step's 65 s limit: 21 s)
  limited "$PY" -m fused_inception tune "${TUNE_ARGS[@]}" --budget-s "$(stop_at 35)" --out-dir "$WORK/tuned"
  local rc=$? f
  for f in "$WORK"/tuned/*.json; do [ -s "$f" ] && cp "$f" "$STEM-tuned.json" && cp "$f" "$WORK/tuned.json"; done
  return $rc
}

step_tests() {
  limited "$PY" -m pytest "${TEST_FILES[@]}" -v -p no:cacheprovider
}

run_step setup "install offline, check the GPU" "${CAP[setup]}" "${MIN[setup]}" - 0 step_setup
SETUP_STATUS=$(tail -n 1 "$STEPS" | cut -f 3)
if [ "$SETUP_STATUS" != ran ]; then
  echo "== setup did not finish ($SETUP_STATUS): nothing to measure"
  merge_report final
  exit 2
fi
timeout 10 "$PY" -c "import matplotlib" 2>/dev/null && HAVE_MATPLOTLIB=1

NOTE="exit code 1: a row failed"
run_step parity "fused blocks and network vs float64: ${PARITY_ARGS[*]}" "${CAP[parity]}" "${MIN[parity]}" "$STEM-parity.json" "0 1" step_parity
PARITY_RC=$(tail -n 1 "$STEPS" | cut -f 6)
NOTE="exit code 1: a method failed or mismatched"
run_step headline "network and stem inference $DTYPE b$BATCH: eager, eager-cl, fused, fused-cl" "${CAP[headline]}" "${MIN[headline]}" bench-headline.json "0 1" step_headline
NOTE="exit code 1: a method failed or mismatched"
run_step blocks "blocks ($BLOCKS) inference $DTYPE b$BATCH: eager, eager-cl, fused, fused-cl" "${CAP[blocks]}" "${MIN[blocks]}" bench-blocks.json "0 1" step_blocks
NOTE="exit code 1: a method failed"
run_step train "network fine-tuning and training steps $DTYPE b$BATCH" "${CAP[train]}" "${MIN[train]}" bench-train.json "0 1" step_train
NOTE="exit code 1: compile failed (the error is in the report)"
run_step compile "torch.compile network and stem inference $DTYPE b$BATCH: compile, fused-compile (stem: compile)" "${CAP[compile]}" "${MIN[compile]}" bench-compile.json "0 1" step_compile
if [ "$DRY" = 1 ]; then
  record tune "tune kernel configs and tactics" skipped - - - - "needs a GPU: not run in a dry run"
elif [ -f "$REPO/kernels/tuned/$SLUG.json" ] && [ "${GPU_CHECK_RETUNE:-0}" != "1" ] \
    && "$PY" -c 'import json, sys; sys.exit(0 if json.load(open(sys.argv[1])).get("choices") else 1)' \
       "$REPO/kernels/tuned/$SLUG.json" 2>/dev/null; then
  record tune "tune kernel configs and tactics" skipped - - - - "kernels/tuned/$SLUG.json is checked in with config choices (GPU_CHECK_RETUNE=1 to tune)"
else
  NOTE="exit code 1: a row's default config or tactic failed"
  run_step tune "tune kernel configs and tactics: ${TUNE_ARGS[*]}" "${CAP[tune]}" "${MIN[tune]}" tuned.json "0 1" step_tune
fi
if [ "${GPU_CHECK_TESTS:-1}" = "1" ]; then
  NOTE="exit code 1: a test failed"
  run_step tests "pytest -v, ${#TEST_FILES[@]} files: ${TEST_FILES[*]:0:2} first" "${CAP[tests]}" "${MIN[tests]}" \
    tests.txt "0 1" step_tests
else
  record tests "pytest" skipped - - - - "GPU_CHECK_TESTS=0"
fi

echo "== [$(elapsed) s] final report"
merge_report final
echo "== [$(elapsed) s] done: $STEM.md, $STEM.json, $STEM-parity.json, $STEM-raw.tar, $LOG"
sed -n '/^## Steps/,/^\*\*/p' "$STEM.md" 2>/dev/null
sleep 1  # the log's tee catches up
[ "${PARITY_RC:-1}" = 0 ] || exit 1
exit 0
