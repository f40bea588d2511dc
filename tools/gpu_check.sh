#!/usr/bin/env bash
# One-shot check of recaffe's GPU mode on a CUDA machine (6 minutes at most).
#
#   bash tools/gpu_check.sh            # from the repository root
#
# 1. reports the GPU and driver (nvidia-smi);
# 2. makes sure CuPy imports: if not, installs cupy-cuda13x or cupy-cuda12x to
#    match the driver's CUDA major version, from ./wheels (a wheelhouse carried
#    along; machines without network) or else from the package index; the
#    same for nvmath-python (cuBLAS inside CUDA-graph captures) and a
#    protobuf >= 7.35 runtime (recaffe's generated code needs it);
# 3. runs the GPU tests (the cupy-parametrised ones: the CUDA graph tests
#    first, graph == eager included, then the rest, the pycaffe API tests
#    among them) with a time limit;
# 4. runs two unmodified pycaffe scripts once in CPU mode and once in GPU mode
#    and compares the runs (tools/compare_gpu_runs.py): tests/gpu/
#    pycaffe_script.py (inputs written and outputs read only through .data, a
#    Python layer, param edits, a solver loop) and
#    examples/binary_addition/train.py with its --gpu switch;
# 5. runs `benchmarks/gpu_bench.py --quick` with a time limit: every row,
#    recaffe with CUDA graphs on and off, PyTorch eager and graphed, JAX jit
#    (rows print as they finish; rows past the limit are missing);
# 6. prints a compact summary with the table. Logs (and JSON/JUnit results)
#    go to $OUT if set, else to ./gpu_check_out.
#
# Time budget (worst case, CuPy and nvmath-python installed): device query and
# versions ~20 s, tests 140 s, scripts 60 s (4 runs: 20 s per GPU run, 10 s
# per CPU run; each takes about a second on a CPU), benchmark 140 s (40 s per
# row): 6 minutes in total. Each package it installs adds up to 3 minutes.
#
# Environment: PYTHON (default python3), TEST_TIMEOUT (s, default 140),
# SCRIPT_TIMEOUT (s per GPU run, default 20; CPU runs get half), BENCH_TIMEOUT
# (s, default 140), RECAFFE_GPU_GRADCHECK (first|all|0, default first),
# GPU_CHECK_NO_INSTALL=1 (never pip install).
set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-python3}
OUTDIR=${OUT:-$ROOT/gpu_check_out}
mkdir -p "$OUTDIR"
TEST_TIMEOUT=${TEST_TIMEOUT:-140}
SCRIPT_TIMEOUT=${SCRIPT_TIMEOUT:-20}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-140}
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
T0=$(date +%s)
say() { echo "[gpu_check $(( $(date +%s) - T0 ))s] $*"; }

# -- 1. the device ------------------------------------------------------------------
say "device"
SMI=$(nvidia-smi 2>&1 | head -15)
echo "$SMI"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null \
  | tee "$OUTDIR/gpu.txt"
CUDA_MAJOR=$(echo "$SMI" | sed -n 's/.*CUDA Version: *\([0-9]*\)\..*/\1/p' | head -1)
say "driver CUDA major version: ${CUDA_MAJOR:-unknown}"

# -- 2. CuPy and protobuf ---------------------------------------------------------------
pip_install() {  # pip_install SPEC: wheelhouse first, then the index
  [ "${GPU_CHECK_NO_INSTALL:-0}" = 1 ] && return 1
  if [ -d "$ROOT/wheels" ]; then
    timeout 120 "$PY" -m pip install -q --no-index --find-links "$ROOT/wheels" "$1" && return 0
  fi
  timeout 180 "$PY" -m pip install -q "$1"
}
if ! "$PY" -c "import cupy" 2>/dev/null; then
  if [ "${CUDA_MAJOR:-0}" -ge 13 ]; then PKG=cupy-cuda13x; else PKG=cupy-cuda12x; fi
  say "CuPy missing: installing $PKG"
  pip_install "$PKG" || say "could not install $PKG (no wheel in ./wheels, no network?)"
fi
if ! "$PY" -c "from nvmath.bindings import cublas" 2>/dev/null; then
  if [ "${CUDA_MAJOR:-0}" -ge 13 ]; then NV="nvmath-python[cu13]"; else NV="nvmath-python[cu12]"; fi
  say "nvmath-python missing (CUDA graphs then run eagerly): installing $NV"
  pip_install "$NV" || pip_install nvmath-python || say "could not install nvmath-python"
fi
if ! "$PY" -c "import recaffe" 2>"$OUTDIR/import_error.txt"; then
  say "import recaffe failed: $(tail -1 "$OUTDIR/import_error.txt")"
  say "installing protobuf>=7.35 (recaffe's generated code needs that runtime)"
  pip_install "protobuf>=7.35" || say "could not install protobuf"
fi
"$PY" - <<'EOF' 2>&1 | tee "$OUTDIR/versions.txt"
import importlib
for m in ("numpy", "cupy", "nvmath", "google.protobuf", "h5py", "torch", "jax",
          "pytest"):
    try:
        mod = importlib.import_module(m)
        print(f"{m}: {getattr(mod, '__version__', '?')}")
    except Exception as exc:  # noqa: BLE001
        print(f"{m}: MISSING ({type(exc).__name__}: {exc})")
try:
    from recaffe import backend
    backend.set_mode_gpu()
    print("\n".join(backend.device_query()))
    backend.set_mode_cpu()
except Exception as exc:  # noqa: BLE001
    print(f"recaffe GPU mode: FAILED ({type(exc).__name__}: {exc})")
EOF

# -- 3. GPU tests -----------------------------------------------------------------------
say "GPU tests (limit ${TEST_TIMEOUT}s)"
TIMEOUT_OPT=""
"$PY" -c "import pytest_timeout" 2>/dev/null && TIMEOUT_OPT="--timeout=60"
timeout -k 10 "$TEST_TIMEOUT" "$PY" -m pytest -o addopts= -q -p no:cacheprovider -rfEs $TIMEOUT_OPT \
  --junitxml="$OUTDIR/gpu_tests.xml" \
  tests/gpu/test_cuda_graphs.py tests/gpu tests/test_gpu_backend.py tests/test_pycaffe_api.py -k "cupy" \
  >"$OUTDIR/gpu_tests.log" 2>&1
TEST_RC=$?
tail -40 "$OUTDIR/gpu_tests.log"

# -- 4. unmodified pycaffe scripts: the GPU run against the CPU run ---------------------
say "pycaffe scripts, CPU and GPU runs (limit ${SCRIPT_TIMEOUT}s per GPU run)"
SCRIPTS_DIR="$OUTDIR/scripts"
mkdir -p "$SCRIPTS_DIR"
for m in cpu gpu; do
  flag=""; limit=$(( SCRIPT_TIMEOUT / 2 ))
  [ $m = gpu ] && flag="--gpu" && limit=$SCRIPT_TIMEOUT
  timeout -k 5 "$limit" "$PY" tests/gpu/pycaffe_script.py $flag \
    --json "$SCRIPTS_DIR/data_script_$m.json" >"$SCRIPTS_DIR/data_script_$m.log" 2>&1
  timeout -k 5 "$limit" "$PY" examples/binary_addition/train.py $flag \
    --iters 1000 --check-every 100 --outdir "$SCRIPTS_DIR/binary_addition_$m" \
    >"$SCRIPTS_DIR/binary_addition_$m.log" 2>&1
done
"$PY" tools/compare_gpu_runs.py "$SCRIPTS_DIR" 2>&1 | tee "$SCRIPTS_DIR/compare.txt"
SCRIPTS_RC=${PIPESTATUS[0]}

# -- 5. benchmark -----------------------------------------------------------------------
say "benchmark --quick (limit ${BENCH_TIMEOUT}s)"
timeout -k 10 "$BENCH_TIMEOUT" "$PY" benchmarks/gpu_bench.py --quick --timeout 40 \
  --json "$OUTDIR/gpu_bench.json" >"$OUTDIR/gpu_bench.log" 2>&1
BENCH_RC=$?
cat "$OUTDIR/gpu_bench.log"

# -- 6. summary -------------------------------------------------------------------------
echo
echo "================ recaffe GPU check summary ================"
echo "GPU:        $(head -1 "$OUTDIR/gpu.txt" 2>/dev/null)"
grep -E "^(cupy|nvmath|torch|jax|google.protobuf):" "$OUTDIR/versions.txt" | tr '\n' ' '; echo
grep -E "^recaffe GPU mode: FAILED" "$OUTDIR/versions.txt"
echo "tests:      rc=$TEST_RC ($( [ $TEST_RC = 124 ] && echo 'TIMED OUT, ' )$(grep -E '[0-9]+ (passed|failed|skipped|error)' "$OUTDIR/gpu_tests.log" | tail -1))"
grep -E "^(FAILED|ERROR) " "$OUTDIR/gpu_tests.log" | head -20
sed 's/^script /script:     /' "$SCRIPTS_DIR/compare.txt"
echo "benchmark:  rc=$BENCH_RC$( [ $BENCH_RC = 124 ] && echo ' (TIMED OUT)')"
if grep -q "^model " "$OUTDIR/gpu_bench.log"; then sed -n '/^model /,$p' "$OUTDIR/gpu_bench.log"; else grep -E "^(rnn|lstm|lstm2|infer1|infer64) " "$OUTDIR/gpu_bench.log"; fi
echo "total:      $(( $(date +%s) - T0 ))s; logs in $OUTDIR"
[ $TEST_RC = 0 ] && [ $SCRIPTS_RC = 0 ] && [ $BENCH_RC = 0 ]
