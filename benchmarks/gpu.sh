#!/usr/bin/env bash
# Every benchmark suite and a smoke run of a few experiments on a GPU, in one go (~9 minutes).
#
# Usage: benchmarks/gpu.sh [OUT_DIR] [--dry-run]
#   OUT_DIR    where the JSON reports, the logs and summary.tsv go (default $OUT, else ./gpu-results)
#   --dry-run  print the commands and their time limits, run nothing
# Needs jax's CUDA build (pip install -U "jax[cuda12]") and dlmodels installed (pip install -e
# ".[dev,bench]"); stops after the device check if JAX cannot start on JAX_PLATFORMS.
# Environment: JAX_PLATFORMS (default cuda), PYTHON (default python), BUDGET_S (default 540: the
# whole script stops starting new steps when less than 10 s of it is left; each step also has its
# own `timeout`).
#
# The rnn suite runs measured (not --quick) on the LSTM shapes with B >= 64, where its GPU goals are
# set (within 1.5x of cuDNN, faster than Flax): look for "GPU goal" in rnn.log and "gpu_goals" in
# rnn.json. The other suites run --quick: they show that each runs unchanged on the GPU, they are
# not measurements. Experiments use the bundled 8x8 `digits` data (the machine may have no
# network); cnn_mnist (LeNet-5, 28x28) runs only when MNIST is in the data cache.
# Exit status: 0 when every step exited 0, else 1 (summary.tsv says which).

set -u

OUT_DIR="" DRY_RUN=0
for arg in "$@"; do
    case "$arg" in
        --dry-run) DRY_RUN=1 ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        -*) echo "unknown option $arg" >&2; exit 2 ;;
        *) OUT_DIR="$arg" ;;
    esac
done
OUT_DIR="${OUT_DIR:-${OUT:-./gpu-results}}"
: "${JAX_PLATFORMS:=cuda}"
export JAX_PLATFORMS
PY="${PYTHON:-python}"
BUDGET_S="${BUDGET_S:-540}"
mkdir -p "$OUT_DIR"
SUMMARY="$OUT_DIR/summary.tsv"
[ "$DRY_RUN" = 1 ] || printf 'step\texit\tseconds\tlimit_s\n' > "$SUMMARY"
FAILED=0 LAST_RC=0

# step NAME LIMIT_S COMMAND...: run COMMAND under `timeout`, output to OUT_DIR/NAME.log
step() {
    local name="$1" limit="$2"; shift 2
    local left=$((BUDGET_S - SECONDS))
    if [ "$limit" -gt $((left - 5)) ]; then limit=$((left - 5)); fi
    if [ "$DRY_RUN" = 1 ]; then
        echo "[$name] timeout ${limit}s: $*"
        return 0
    fi
    if [ "$limit" -lt 10 ]; then
        echo "[$name] skipped: out of time (${left}s of ${BUDGET_S}s left)"
        printf '%s\tskipped\t0\t%s\n' "$name" "$limit" >> "$SUMMARY"
        FAILED=1
        return 0
    fi
    echo "[$name] (limit ${limit}s) $*"
    local start=$SECONDS rc=0
    timeout -k 5 "$limit" "$@" > "$OUT_DIR/$name.log" 2>&1 || rc=$?
    LAST_RC=$rc
    printf '%s\t%s\t%s\t%s\n' "$name" "$rc" $((SECONDS - start)) "$limit" >> "$SUMMARY"
    if [ "$rc" != 0 ]; then
        FAILED=1
        [ "$rc" = 124 ] && echo "[$name] TIMED OUT after ${limit}s" || echo "[$name] exit $rc"
        tail -n 5 "$OUT_DIR/$name.log"
    fi
    return 0
}

bench() {   # bench SUITE LIMIT_S ARGS...
    local suite="$1" limit="$2"; shift 2
    step "$suite" "$limit" "$PY" -m dlmodels bench "$suite" "$@" --out "$OUT_DIR/$suite.json"
}

run() {     # run EXPERIMENT LIMIT_S OPTIONS...
    local name="$1" limit="$2"; shift 2
    step "run_$name" "$limit" "$PY" -m dlmodels run "$name" "$@" --root "$OUT_DIR/runs"
}

echo "JAX_PLATFORMS=$JAX_PLATFORMS, reports in $OUT_DIR, budget ${BUDGET_S}s"
step nvidia-smi 15 nvidia-smi
step devices 60 "$PY" -c 'import jax, dlmodels.backend as b; print(jax.devices(), b.name())'
if [ "$LAST_RC" != 0 ]; then
    echo "JAX cannot start with JAX_PLATFORMS=$JAX_PLATFORMS (devices.log); for CUDA install" \
         "jax's CUDA build (pip install -U 'jax[cuda12]') and dlmodels (pip install -e '.[dev,bench]')"
    exit 1
fi

# the measured part first: the LSTM step against cuDNN, Flax, PyTorch, ... at B >= 64
bench rnn 150 --cells lstm --shapes B64-T256-H256 B256-T64-H512 --repeats 5 \
    --compile-steps 10 100 --memory-steps 1024
bench conv 60 --quick
bench seeds 40 --quick
bench text 50 --quick
bench seq2seq 50 --quick
bench rbm 30 --quick
bench word2vec 40 --quick --corpus synthetic
if [ -f "$(dirname "$0")/scaling.py" ]; then bench scaling 60 --quick; fi

run mlp 40 --dataset digits --epochs 1 --notes_epochs 1
# conv nets on 8x8 digits: seeds vmapped and 100 steps per call off the CPU (dlmodels/backend.py)
run dropout 40 --dataset digits --epochs 1 --n_train 500 --channels 4,8 --hidden 16
run translation_invariance 40 --dataset digits --epochs 1 --channels 8 --max_shift 1
# LeNet-5 needs 28x28 MNIST: only when it is in the data cache (the machine may have no network)
if "$PY" -c 'import sys; from dlmodels.data import mnist; sys.exit(not mnist.npz_path().exists())' \
        2>/dev/null; then
    run cnn_mnist 40 --epochs 1 --n_train 5000
else
    echo "[run_cnn_mnist] skipped: MNIST is not in the data cache (dlmodels data fetch mnist)"
fi
run adding_problem 40 --length 50 --steps 100 --eval_every 50 --n_seeds 2 --n_test 200

if [ "$DRY_RUN" = 0 ]; then
    echo; column -t "$SUMMARY" 2>/dev/null || cat "$SUMMARY"
    echo "total ${SECONDS}s"
fi
exit "$FAILED"
