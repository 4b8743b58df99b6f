#!/usr/bin/env bash
# Put InterHand Studio into this user's application menu: the desktop entry (its Exec pointing at this folder's
# interhand-studio) and the icons. Run it from the built folder; it writes only under ~/.local/share (or
# $XDG_DATA_HOME). Usage: ./install-desktop-entry.sh [--uninstall]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
data="${XDG_DATA_HOME:-$HOME/.local/share}"
entry="$data/applications/interhand-studio.desktop"
sizes=(256x256 128x128 48x48)

if [[ "${1:-}" == "--uninstall" ]]; then
    rm -f "$entry" "$data/icons/hicolor/scalable/apps/interhand-studio.svg"
    for size in "${sizes[@]}"; do rm -f "$data/icons/hicolor/$size/apps/interhand-studio.png"; done
    echo "removed $entry and the icons"
    exit 0
fi

exe="$here/interhand-studio"
[[ -x "$exe" ]] || { echo "no $exe: run this script from the built InterHand Studio folder" >&2; exit 1; }
# the Exec key quotes a path with spaces; the desktop entry spec escapes \ " ` $ inside quotes
quoted="\"$(printf '%s' "$exe" | sed 's/[\\"`$]/\\\\&/g')\""
mkdir -p "$data/applications"
while IFS= read -r line; do
    case "$line" in
        Exec=*) printf 'Exec=%s %%F\n' "$quoted" ;;
        TryExec=*) printf 'TryExec=%s\n' "$exe" ;;
        *) printf '%s\n' "$line" ;;
    esac
done < "$here/interhand-studio.desktop" > "$entry"
for size in "${sizes[@]}" scalable; do
    mkdir -p "$data/icons/hicolor/$size/apps"
    cp "$here/share/icons/hicolor/$size/apps/"interhand-studio.* "$data/icons/hicolor/$size/apps/"
done
command -v update-desktop-database >/dev/null && update-desktop-database -q "$data/applications" || true
command -v gtk-update-icon-cache >/dev/null && gtk-update-icon-cache -q -t "$data/icons/hicolor" || true
echo "installed $entry (Exec=$exe)"
