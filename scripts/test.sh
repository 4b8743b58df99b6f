#!/usr/bin/env bash
# Install what the tests need (Debian packages for the GUI tests, the package with its dev extras), lint, and
# run the whole test suite under a virtual X server. This is the test command of README.md and of .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: Xvfb for a real X display, xcb libraries the Qt xcb platform plugin loads, Mesa GL/EGL
# (llvmpipe) for VTK. --no-upgrade keeps apt from touching unrelated packages.
APT_PACKAGES=(xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxcb-image0 libxcb-randr0
              libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 libxkbcommon-x11-0 libfontconfig1
              libdbus-1-3 libgl1 libegl1 libgl1-mesa-dri libglu1-mesa)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "== installing Debian packages: ${missing[*]}"
    SUDO=""
    [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends --no-upgrade "${missing[@]}"
fi

scripts/install.sh --dev
PY=".venv/bin/python"
[[ -n "${INTERHAND_VENV:-}" ]] && PY="$INTERHAND_VENV/bin/python"
BIN="$(dirname "$PY")"

echo "== torch build: $("$PY" -c 'import torch; print(torch.__version__, "cuda" if torch.cuda.is_available() else "no cuda")')"
if [[ "${CI:-}" == "true" ]]; then
    "$PY" -c "import torch, sys; sys.exit(0 if torch.__version__.endswith('+cpu') or torch.cuda.is_available() else 'CI expects the CPU build of torch, got ' + torch.__version__)"
fi

echo "== ruff"
"$BIN/ruff" check .
echo "== import contracts"
"$BIN/lint-imports" pyproject.toml

echo "== pytest"
# The GUI tests need a real X display (Qt's xcb platform; the 3D views' off-screen VTK render windows use its GLX);
# fail rather than skip them here.
export INTERHAND_REQUIRE_GUI=1
exec xvfb-run -a -s "-screen 0 1280x1024x24" "$PY" -m pytest "$@"
