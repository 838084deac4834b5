#!/usr/bin/env bash
# GPU speed suite of hepvld: one script, under 8 minutes on one GPU.
#
#   bash benchmarks/gpu_suite.sh            # from the repository root
#
# Prints
#   1. training events/s, paper preset, batch 1024: fp32, bf16 autocast, bf16 + torch.compile
#      (benchmarks/bench_train.py, settings timed in turns in one process);
#   2. sampling event-draws/s at 20 NFE (dpmpp2m, 100 draws per event) for calls of 4k draws
#      doubling up to the memory limit, with the peak GPU memory of each
#      (benchmarks/bench_sample_memory.py), fp32 and bf16;
#   3. the roofline table (benchmarks/roofline.py) is CPU-only and not run here.
#
# Installs what it needs: torch is expected to be present (GPU machines ship their wheel;
# it is never reinstalled); hepvld and its dependencies are installed from this checkout
# (`pip install -e .`) only if `import hepvld` fails. Without a GPU it says so and runs a
# tiny CPU version of every step (seconds), which is how it is smoke-tested
# (tests/test_gpu_suite.py). Each step has its own time limit, so that one slow step
# cannot push the suite past 8 minutes.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
if [ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ]; then PY=.venv/bin/python; fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"

if ! "$PY" -c "import torch" 2>/dev/null; then
    echo "gpu_suite: torch is not importable by $PY; install the torch wheel for this machine first" >&2
    exit 2
fi
if ! "$PY" -c "import hepvld" 2>/dev/null; then
    echo "gpu_suite: installing hepvld from $PWD (torch is kept as installed)"
    "$PY" -m pip install --quiet -e . || { echo "gpu_suite: pip install failed" >&2; exit 2; }
fi

if "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    "$PY" -c "import torch; p = torch.cuda.get_device_properties(0); print(f'gpu_suite: {p.name}, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__}')"
    DEVICE=cuda; PRESET=paper; BATCH=1024; ROUNDS=3; STEPS=5; MAXROWS=$((1 << 24)); T_TRAIN=300; T_SAMPLE=70
    SETTINGS="new bf16 bf16-compile"
else
    echo "gpu_suite: no CUDA GPU found (torch.cuda.is_available() is False):"
    echo "gpu_suite: running the tiny CPU version of each step instead (plumbing only, no GPU figures)"
    DEVICE=cpu; PRESET=tiny; BATCH=64; ROUNDS=1; STEPS=1; MAXROWS=8192; T_TRAIN=120; T_SAMPLE=60
    SETTINGS="new bf16"  # torch.compile takes minutes on CPU: left out of the smoke run
fi

status=0
run() {  # run LIMIT_S CMD...: a step with its own time limit
    local limit=$1; shift
    timeout "$limit" "$@"
    local rc=$?
    if [ $rc -ne 0 ]; then echo "gpu_suite: step failed or timed out (rc=$rc): $*" >&2; status=1; fi
}

echo "== training, preset $PRESET, batch $BATCH, $DEVICE"
run "$T_TRAIN" "$PY" benchmarks/bench_train.py --presets "$PRESET" --batch-size "$BATCH" \
    --device "$DEVICE" --steps "$STEPS" --rounds "$ROUNDS" --settings $SETTINGS
echo "== sampling, dpmpp2m 20 NFE, 100 draws/event, $DEVICE (fp32)"
run "$T_SAMPLE" "$PY" benchmarks/bench_sample_memory.py --preset "$PRESET" --device "$DEVICE" \
    --steps 20 --samples 100 --max-rows "$MAXROWS"
echo "== sampling, bf16 autocast"
run "$T_SAMPLE" "$PY" benchmarks/bench_sample_memory.py --preset "$PRESET" --device "$DEVICE" \
    --steps 20 --samples 100 --max-rows "$MAXROWS" --bf16
exit $status
