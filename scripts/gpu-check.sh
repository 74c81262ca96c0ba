#!/usr/bin/env bash
# The GPU check: on a machine with a CUDA GPU, in under 8 minutes, with the project's own commands,
#   1. the CUDA tests (tests/pool/test_cuda.py, tests/engine/test_cuda_step.py: a step without host waits): the pool serving both model kinds (search, glcic) in
#      bf16 and fp16 against the CPU's fp32 answers, the encoder's start, a reload through HTTP;
#   2. `python -m app bench` on 64x64 faces: latency at one client and throughput at 32 and 128 clients
#      through HTTP for both kinds in bf16 and fp16 (--defaults), the search's iteration-level engine
#      in fp32 and bf16, and the one-pass network's forward in each memory layout (--profile);
#   3. a few training steps of each kind with AMP (`python -m training train|encoder|glcic`), the same
#      through torchrun on every GPU present (DistributedDataParallel from 2 GPUs up), and
#      `python -m training bench` (img/s per precision);
# then a report: markdown tables and the bench's plots in OUT (default docs/bench/gpu/).
#
# Without a CUDA GPU (or with --device cpu) the same steps run on the CPU at tiny sizes (a 32x32
# networks, a few steps, one-second bench windows; the CUDA tests skip), so the script cannot rot:
# tests/test_gpu_check.py runs that mode and checks every command of the CUDA mode with the real parsers.
#
#   scripts/gpu-check.sh [--device auto|cuda|cpu] [--out DIR] [--data NPZ] [--dry-run]
#
#   --device   auto (default): cuda when torch sees a CUDA GPU, else cpu
#   --out      where README.md, the CSVs, PNGs and the log go (default docs/bench/gpu on CUDA,
#              runs/gpu-check-cpu on the CPU)
#   --data     the 64x64 faces (.npz with images and filenames; default
#              $IMGCOMP_SHARED_DATA/utkface_crop_part1_64.npz, IMGCOMP_SHARED_DATA defaulting to ../shared/data)
#   --dry-run  print each command (one per line, after "+ ") and run nothing
#
# Environment: PYTHON (default .venv/bin/python, else python3), GPU_CHECK_BUDGET_S (450: steps that would
# start later than this many seconds after the start are skipped and reported). Exit status: 0 when every
# step passed, 1 when one failed or was skipped, 2 on bad arguments.
set -uo pipefail

cd "$(dirname "$0")/.."
REPO=$PWD

usage() { sed -n '17,28p' "$0" | sed 's/^# \{0,1\}//'; }

DEVICE=auto OUT= DATA= DRY_RUN=
while (($#)); do
  case $1 in
    --device) DEVICE=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
    --out) OUT=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
    --data) DATA=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "gpu-check: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done
case $DEVICE in auto | cuda | cpu) ;; *) echo "gpu-check: --device must be auto, cuda or cpu, not '$DEVICE'" >&2; exit 2 ;; esac

if [[ -z ${PYTHON:-} ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=$REPO/.venv/bin/python; else PYTHON=python3; fi
fi
SHARED_DATA=${IMGCOMP_SHARED_DATA:-$REPO/../shared/data}
DATA=${DATA:-$SHARED_DATA/utkface_crop_part1_64.npz}
BUDGET_S=${GPU_CHECK_BUDGET_S:-450}

GPUS=0
if [[ $DEVICE != cpu ]]; then
  GPUS=$("$PYTHON" -c 'import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)' 2>/dev/null ||
    echo 0)
fi
if [[ $DEVICE == cuda && $GPUS -eq 0 && -z $DRY_RUN ]]; then
  echo "gpu-check: --device cuda, but $PYTHON's torch sees no CUDA GPU" >&2
  exit 2
fi
if [[ $DEVICE == cuda && $GPUS -eq 0 ]]; then GPUS=1; fi  # a dry run prints the CUDA mode's commands anywhere
MODE=cpu
((GPUS > 0)) && MODE=cuda
OUT=${OUT:-$([[ $MODE == cuda ]] && echo docs/bench/gpu || echo runs/gpu-check-cpu)}
if [[ -z $DRY_RUN && ! -f $DATA ]]; then
  echo "gpu-check: no $DATA: pass --data or set IMGCOMP_SHARED_DATA to the folder holding utkface_crop_part1_64.npz" >&2
  exit 2
fi

# --- sizes: real networks and windows on CUDA, the smallest that still run every code path on the CPU ------
if [[ $MODE == cuda ]]; then
  DEV=cuda
  NET=()
  AMP=fp16 # autocast with a GradScaler; the torchrun runs use bf16 (`auto` on Ampere and later)
  TRAIN=(--steps 200 --batch-size 64)
  ENCODER=(--steps 100 --batch-size 64)
  GLCIC=(--phase1-steps 60 --phase2-steps 20 --phase3-steps 60 --batch-size 32)
  TRAIN_BENCH=(--steps 20 --warmup 3 --batch-size 64)
  SIDES=bench-faces:2@bf16,bench-faces-glcic:1@bf16,bench-faces:2@fp16,bench-faces-glcic:1@fp16
  HTTP=(--http-clients 1,32,128 --duration 6 --warmup 2)
  ENGINE=(--clients 1,32,128 --precisions fp32,bf16 --iterations 100,600 --duration 6 --warmup 2)
  LAYOUT=(--profile 1,32,128 --precisions fp32,bf16,fp16)
  RANKS=$GPUS
else
  DEV=cpu
  NET=(--z-dim 16 --g-width 8 --d-width 8) # at 64x64, the data's size, which the encoder's training needs
  AMP=bf16 # autocast in bf16: what AMP is on a CPU
  TRAIN=(--steps 2 --batch-size 8)
  ENCODER=(--steps 2 --batch-size 8 --width 8)
  GLCIC=(--phase1-steps 1 --phase2-steps 1 --phase3-steps 1 --batch-size 4 --width 8 --d-width 8 --features 16)
  TRAIN_BENCH=(--steps 1 --warmup 1 --batch-size 8)
  SIDES=bench-faces:2@bf16,bench-faces-glcic:1@bf16
  HTTP=(--http-clients 1,2 --duration 1 --warmup 0.5 --threads 1)
  ENGINE=(--clients 1,2 --precisions fp32 --iterations 5,10 --duration 1 --warmup 0.5 --threads 1)
  LAYOUT=(--profile 1,2 --precisions fp32 --threads 1)
  RANKS=2 # two gloo ranks, as tests/training does
fi
BENCH_DEVICE=$([[ $MODE == cuda ]] && echo cuda:0 || echo cpu)

WORK=
if [[ -z $DRY_RUN ]]; then
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
  mkdir -p "$OUT" "$WORK/logs"
  LOG=$WORK/gpu-check.log
  : >"$WORK/steps.tsv"
  export IMGCOMP_GPU_CHECK_OUT=$WORK # tests/pool/test_cuda.py appends its figures there
fi
STORE=${WORK:-WORK}/store
RUNS=${WORK:-WORK}/runs
COMMON=(--data "$DATA" --device "$DEV" --model-store "$STORE" --no-progress --holdout-fraction 0.1)
FAILED=0
STARTED=$SECONDS

# step NAME TIMEOUT_S COMMAND...: run it (bounded), log it, and record name, status, seconds and command
step() {
  local name=$1 limit=$2
  shift 2
  if [[ -n $DRY_RUN ]]; then
    printf '+'
    printf ' %q' "$@"
    printf '\n'
    return 0
  fi
  local command
  command=$(printf '%q ' "$@")
  if ((SECONDS - STARTED + 10 > BUDGET_S)); then
    printf '== %s: skipped, the %s s budget is spent\n' "$name" "$BUDGET_S" | tee -a "$LOG"
    printf '%s\tskipped\t0\t%s\n' "$name" "$command" >>"$WORK/steps.tsv"
    FAILED=1
    return 0
  fi
  printf '== %s (at %d s): %s\n' "$name" $((SECONDS - STARTED)) "$command" | tee -a "$LOG"
  local began=$SECONDS rc
  PYTHONUNBUFFERED=1 timeout --kill-after=10 "$limit" "$@" >"$WORK/logs/$name.log" 2>&1
  rc=$?
  cat "$WORK/logs/$name.log" >>"$LOG"
  tail -n 25 "$WORK/logs/$name.log"
  local status=passed
  if ((rc == 124 || rc == 137)); then
    status="timed out after ${limit} s"
  elif ((rc != 0)); then
    status="failed (exit $rc)"
  fi
  [[ $status == passed ]] || FAILED=1
  printf '== %s: %s in %d s\n' "$name" "$status" $((SECONDS - began)) | tee -a "$LOG"
  printf '%s\t%s\t%d\t%s\n' "$name" "$status" $((SECONDS - began)) "$command" >>"$WORK/steps.tsv"
}

if [[ -z $DRY_RUN ]]; then
  {
    echo "gpu-check: mode $MODE, $GPUS CUDA GPU(s), python $PYTHON, data $DATA, out $OUT, work $WORK"
    "$PYTHON" - <<'EOF'
import platform, torch
print(f"python {platform.python_version()}, torch {torch.__version__}, CUDA {torch.version.cuda}")
for i in range(torch.cuda.device_count()):
    p = torch.cuda.get_device_properties(i)
    print(f"cuda:{i} {p.name}, {p.total_memory / 2**30:.0f} GiB, {p.multi_processor_count} SMs, capability {p.major}.{p.minor}")
EOF
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    echo "host: $(nproc) cores, git $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD 2>/dev/null || echo ' + uncommitted edits')"
  } 2>&1 | tee "$WORK/env.txt" | tee -a "$LOG"
fi

# 1. the CUDA tests (they skip without CUDA: on the CPU this still imports and collects them)
step cuda-tests 240 "$PYTHON" -m pytest -q -rA -p no:cacheprovider tests/pool/test_cuda.py tests/engine/test_cuda_step.py

# 2. the service's bench on 64x64 faces: both kinds through HTTP, then the search's engine. The shipped
# versions are linked in under names outside IMGCOMP_FACE_MODELS, so every upload (a whole 64x64 face crop)
# is completed whole, one job per request, as issue 24's table measures, not located and framed as a face
# in a photo would be.
BENCH_STORE=${WORK:-WORK}/bench-store
if [[ -z $DRY_RUN ]]; then
  mkdir -p "$BENCH_STORE/bench-faces" "$BENCH_STORE/bench-faces-glcic"
  ln -s "$REPO/model_store/faces/2" "$BENCH_STORE/bench-faces/2"
  ln -s "$REPO/model_store/faces-glcic/1" "$BENCH_STORE/bench-faces-glcic/1"
fi
BENCH=(--model-store "$BENCH_STORE" --device "$BENCH_DEVICE" --images "$DATA")
step bench-http 240 "$PYTHON" -m app bench --defaults "$SIDES" --model bench-faces "${BENCH[@]}" "${HTTP[@]}" \
  --out "${WORK:-WORK}/bench-http"
step bench-engine 150 "$PYTHON" -m app bench --model bench-faces:2 --modes iteration --http-clients "" \
  "${BENCH[@]}" "${ENGINE[@]}" --out "${WORK:-WORK}/bench-engine"
# the one-pass network's forward in each memory layout (the runner takes channels_last below fp32): the log has it
step bench-layout 60 "$PYTHON" -m app bench --model bench-faces-glcic:1 "${BENCH[@]}" "${LAYOUT[@]}" \
  --out "${WORK:-WORK}/bench-layout"

# 3. training: each kind with AMP, the encoder on the trained generator, torchrun, step timings
SAMPLE=(--sample-every 1000000 --state-every 1000000)
step train-search 120 "$PYTHON" -m training train "${COMMON[@]}" "${NET[@]}" "${TRAIN[@]}" --precision "$AMP" \
  --name gc-search --run-dir "$RUNS/search" "${SAMPLE[@]}"
step train-encoder 120 "$PYTHON" -m training encoder --model gc-search --data "$DATA" --device "$DEV" \
  --model-store "$STORE" --no-progress "${ENCODER[@]}" --precision auto --run-dir "$RUNS/encoder" "${SAMPLE[@]}"
step train-glcic 120 "$PYTHON" -m training glcic "${COMMON[@]}" "${GLCIC[@]}" --precision "$AMP" \
  --name gc-glcic --run-dir "$RUNS/glcic" "${SAMPLE[@]}"
TORCHRUN=("$PYTHON" -m torch.distributed.run --standalone --nproc-per-node "$RANKS")
step ddp-search 150 env OMP_NUM_THREADS=1 "${TORCHRUN[@]}" -m training train "${COMMON[@]}" "${NET[@]}" \
  "${TRAIN[@]}" --precision auto --name gc-ddp-search --run-dir "$RUNS/ddp-search" "${SAMPLE[@]}"
step ddp-glcic 150 env OMP_NUM_THREADS=1 "${TORCHRUN[@]}" -m training glcic "${COMMON[@]}" "${GLCIC[@]}" \
  --precision auto --name gc-ddp-glcic --run-dir "$RUNS/ddp-glcic" "${SAMPLE[@]}"
step train-bench 120 "$PYTHON" -m training bench --data "$DATA" --device "$DEV" "${NET[@]}" "${TRAIN_BENCH[@]}"

# 4. the report: README.md with the tables, the bench's CSVs and plots, this log
if [[ -n $DRY_RUN ]]; then
  step report 60 "$PYTHON" scripts/gpu_check_report.py --work WORK --out "$OUT" --mode "$MODE" --gpus "$GPUS"
  exit 0
fi
printf '== total %d s\n' $((SECONDS - STARTED)) | tee -a "$LOG"
if ! "$PYTHON" scripts/gpu_check_report.py --work "$WORK" --out "$OUT" --mode "$MODE" --gpus "$GPUS" 2>&1 |
  tee -a "$LOG"; then
  FAILED=1
fi
cp "$LOG" "$OUT/gpu-check.log"
echo "gpu-check: $([[ $FAILED == 0 ]] && echo 'every step passed' || echo 'some step failed or was skipped');" \
  "report in $OUT/README.md, work files in $WORK"
exit "$FAILED"
