#!/usr/bin/env bash
# Install InterHand Studio into ./.venv (or $INTERHAND_VENV) with everything it needs, from package registries.
# torch: an interpreter that already has torch keeps it (a GPU user's CUDA build stays). Otherwise torch==2.13.0
# is installed first: on machines with a local CPU build it is taken from there; elsewhere pip picks the
# platform's default build. Without this step a bare `torch` requirement can pull a multi-GB CUDA build.
# Usage: scripts/install.sh [--dev] [--cluster]
#        (--dev adds the test and lint tools, and Ray for the batch's tests; --cluster adds Ray for
#        `interhand batch --ray`)
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${INTERHAND_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
names=()
for arg in "$@"; do
    case "$arg" in
        --dev) names+=(dev) ;;
        --cluster) names+=(cluster) ;;
        *) echo "scripts/install.sh: unknown option $arg (expected --dev or --cluster)" >&2; exit 2 ;;
    esac
done
extras=""
((${#names[@]})) && extras="[$(IFS=,; echo "${names[*]}")]"

if [[ ! -x "$VENV/bin/python" ]]; then
    echo "== creating virtual environment $VENV"
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"

if "$PY" -c "import torch" 2>/dev/null; then
    echo "== keeping installed torch $("$PY" -c 'import torch; print(torch.__version__)')"
else
    echo "== installing torch 2.13.0"
    "$PY" -m pip install --quiet "torch==2.13.0"
fi

echo "== installing interhand-studio$extras"
"$PY" -m pip install --quiet -e ".$extras"
"$PY" -c "import torch, core_model; print('installed interhand-studio', core_model.__version__, 'with torch', torch.__version__)"
