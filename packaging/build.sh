#!/usr/bin/env bash
# Build InterHand Studio as one runnable folder with PyInstaller (Linux; see packaging/README.md for Windows/macOS):
#   dist/InterHandStudio/interhand-studio      the desktop app
#   dist/InterHandStudio/interhand             the command-line tool
#   dist/InterHandStudio/_internal/            Python, Qt (+ plugins), VTK, torch, ... and interhand_assets/
#   dist/InterHandStudio/interhand-studio.desktop, share/icons/hicolor/..., install-desktop-entry.sh
# The whole assets/ tree goes in as it is at build time (the checkpoint assets/models/*.pt and the demo
# assets/demo/ when present).
#
# Usage: packaging/build.sh [--check] [--clean]
#   --check   then run packaging/check_bundle.py on the result (starts the app under Xvfb, screenshots it)
#   --clean   drop PyInstaller's cache and work folder first
# Environment: INTERHAND_VENV (default .venv): the virtual environment to build from; created with
#   scripts/install.sh when missing (a clean checkout). PyInstaller is installed into it, pinned below.
set -euo pipefail
cd "$(dirname "$0")/.."

PYINSTALLER_PIN="pyinstaller==6.22.3"
HOOKS_PIN="pyinstaller-hooks-contrib==2026.9"
VENV="${INTERHAND_VENV:-.venv}"
DIST="dist"
NAME="InterHandStudio"
APP="$DIST/$NAME"

check=0
clean=()
for arg in "$@"; do
    case "$arg" in
        --check) check=1 ;;
        --clean) clean=(--clean) ;;
        *) echo "usage: packaging/build.sh [--check] [--clean]" >&2; exit 2 ;;
    esac
done

if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c "import core_model, viewer" 2>/dev/null; then
    echo "== no InterHand Studio environment in $VENV: running scripts/install.sh"
    INTERHAND_VENV="$VENV" scripts/install.sh
fi
PY="$VENV/bin/python"

installed="$("$PY" -m pip show pyinstaller pyinstaller-hooks-contrib 2>/dev/null | grep '^Version:' | tr '\n' ' ' || true)"
if [[ "$installed" != "Version: ${PYINSTALLER_PIN#*==} Version: ${HOOKS_PIN#*==} " ]]; then
    echo "== installing $PYINSTALLER_PIN $HOOKS_PIN into $VENV"
    "$PY" -m pip install --quiet "$PYINSTALLER_PIN" "$HOOKS_PIN"
fi

echo "== assets going in:"
find assets -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -printf '   %9s  %p\n' | sort -k2
ls assets/models/*.pt >/dev/null 2>&1 || echo "   (no trained checkpoint in assets/models/: the bundle has none)"
[[ -d assets/demo ]] || echo "   (no assets/demo/: the app opens an empty window)"

echo "== PyInstaller ($("$PY" -m PyInstaller --version))"
start=$(date +%s)
"$PY" -m PyInstaller --noconfirm "${clean[@]}" --log-level WARN --distpath "$DIST" --workpath build/pyinstaller \
    packaging/interhand_studio.spec
echo "== PyInstaller took $(( $(date +%s) - start )) s"

# freedesktop files: the entry and the icons in the hicolor layout, and a script that installs both for the user
cp packaging/interhand-studio.desktop packaging/install-desktop-entry.sh "$APP/"
chmod +x "$APP/install-desktop-entry.sh"
for size in 256 128 48; do
    mkdir -p "$APP/share/icons/hicolor/${size}x${size}/apps"
    cp "packaging/icons/interhand-studio-$size.png" "$APP/share/icons/hicolor/${size}x${size}/apps/interhand-studio.png"
done
mkdir -p "$APP/share/icons/hicolor/scalable/apps"
cp packaging/icons/interhand-studio.svg "$APP/share/icons/hicolor/scalable/apps/"

echo "== built $APP ($(du -sh "$APP" | cut -f1)): $APP/interhand-studio, $APP/interhand"
echo "   desktop entry for this user: $APP/install-desktop-entry.sh"
if (( check )); then
    "$PY" packaging/check_bundle.py "$APP"
fi
