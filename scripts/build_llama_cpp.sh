#!/usr/bin/env bash
# Compile llama.cpp's Python bindings (llama-cpp-python, pinned in requirements-engine.txt) into the venv.
#   bash scripts/build_llama_cpp.sh              # skipped when the pinned version is already importable
#   bash scripts/build_llama_cpp.sh --force      # rebuild (e.g. after "llama.cpp crashed in a test run")
#   bash scripts/build_llama_cpp.sh --python python   # another interpreter (binder/postBuild's conda python)
# Optional: lmguide never needs it to install or run, and a failed build prints one sentence and exits 0.
# On x86-64 the flags are an AVX2 baseline (nearly every x86-64 CPU since 2015; some Celeron and Pentium
# chips lack it, where the engine's test run reports SIGILL and says how to build for that CPU): llama.cpp's
# native build (-march=native) turns on its AMX path on server CPUs that have AMX, which segfaults on
# the first decode (llama.cpp issue 20824), and an AVX-512 build would crash on a CPU without AVX-512.
# Decoding is memory-bound, so the baseline loses little (1.5 B: 15.0 tokens/s vs 14.1 with AVX-512).
# Other machines (ARM Macs, aarch64) get llama.cpp's default build. LMGUIDE_LLAMA_CMAKE_ARGS overrides.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${LMGUIDE_VENV:-.venv}/bin/python"
reinstall=()  # --force: --force-reinstall
while [ $# -gt 0 ]; do
    case "$1" in
        --force) reinstall=(--force-reinstall) ;;
        --python) PY="$2"; shift ;;
        *) echo "usage: bash scripts/build_llama_cpp.sh [--force] [--python PYTHON]" >&2; exit 2 ;;
    esac
    shift
done
VERSION="$(sed -n 's/^llama-cpp-python==\([^ ]*\).*/\1/p' requirements-engine.txt)"
LOG=build/llama-cpp-build.log
WITHOUT="the course works without it (its llama.cpp parts say so and skip)"

if [ ${#reinstall[@]} = 0 ] && "$PY" -c "import sys, llama_cpp; sys.exit(llama_cpp.__version__ != sys.argv[1])" \
        "$VERSION" >/dev/null 2>&1; then
    echo "llama.cpp: llama-cpp-python $VERSION already built (rebuild: bash scripts/build_llama_cpp.sh --force)"
    exit 0
fi
if ! command -v cc >/dev/null 2>&1 || ! command -v c++ >/dev/null 2>&1; then
    echo "llama.cpp: no C/C++ compiler here (install gcc and g++, or Xcode's command line tools); $WITHOUT"
    exit 0
fi
case "$(uname -m)" in
    x86_64|amd64)
        flags="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF"
        flags="$flags -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF" ;;
    *) flags="" ;;
esac
export CMAKE_ARGS="${LMGUIDE_LLAMA_CMAKE_ARGS:-$flags}"
mkdir -p build
echo "llama.cpp: compiling llama.cpp for llama-cpp-python $VERSION (3-5 minutes on 2 cores; compiler output in $LOG)"
start=$SECONDS
# --no-cache-dir: pip's wheel cache ignores CMAKE_ARGS, so it could hand back a build made with other flags
if "$PY" -m pip install -v --no-cache-dir --no-deps --require-hashes --no-binary llama-cpp-python \
        ${reinstall[@]+"${reinstall[@]}"} -r requirements-engine.txt >"$LOG" 2>&1 \
   && "$PY" -c "import llama_cpp" >>"$LOG" 2>&1; then
    echo "llama.cpp: built llama-cpp-python $VERSION in $(( (SECONDS - start) / 60 )) min $(( (SECONDS - start) % 60 )) s"
    # the engine's one-time test run (cached per build); one line: ready, or why not
    "$PY" -c "from lmguide.engines import llama_cpp as e; print(e.why_unavailable())" 2>>"$LOG" || true
else
    echo "llama.cpp: the build failed (see $LOG); $WITHOUT"
fi
exit 0
