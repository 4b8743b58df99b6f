"""``interhand-studio [VIDEO | RESULT.npz | WORKSPACE.json ...]``: the desktop application. With no argument it
opens the bundled demo (``assets/demo/``: a clip and its result) when it is installed, else an empty window
that says how to open a file."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from PySide6 import QtCore, QtWidgets


def demo_files() -> list[Path]:
    """The demo's video first, then its result files; empty when no demo is installed."""
    from core_model.assets import assets_root
    from core_model.pipeline.video import VIDEO_SUFFIXES

    folder = assets_root() / "demo"
    if not folder.is_dir():
        return []
    videos = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    results = sorted(folder.glob("*.npz"))
    return (videos[:1] + results) if results else []


def create_app() -> QtWidgets.QApplication:
    import pyqtgraph as pg

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName("InterHand Studio")
    app.setOrganizationName("InterHand Studio")
    pg.setConfigOptions(antialias=True, imageAxisOrder="row-major")
    return app


def screenshot_when_drawn(window, shots: Sequence[str], settle_ms: int = 500) -> None:
    """Once ``window`` is on screen and has drawn what it opened: save each shot and quit the app (exit status 0,
    or 1 when an image cannot be written). A shot is ``PATH`` (the whole window) or ``PANEL=PATH`` with PANEL one
    of the Export > Screenshot keys (video, scene, timeline, charts, attention, window). For automation: the
    bundle check (packaging/check_bundle.py), documentation images."""
    from viewer.main_window import PANELS

    app = QtWidgets.QApplication.instance()
    targets = []
    for shot in shots:
        key, sep, path = shot.partition("=")
        targets.append((key, Path(path)) if sep and key in {*PANELS, "window"} else ("window", Path(shot)))

    def shoot() -> None:
        app.processEvents()
        try:
            for key, path in targets:
                window.exports.screenshot(key, path)
        except OSError as exc:
            print(exc, file=sys.stderr)
            app.exit(1)
            return
        app.exit(0)

    def wait_exposed() -> None:
        handle = window.windowHandle()
        if handle is None or not handle.isExposed():
            QtCore.QTimer.singleShot(50, wait_exposed)
            return
        QtCore.QTimer.singleShot(settle_ms, shoot)

    QtCore.QTimer.singleShot(0, wait_exposed)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="interhand-studio", description="InterHand Studio desktop application")
    parser.add_argument("files", nargs="*", type=Path,
                        help="a video, result files (.npz) and/or a workspace (.json); none: the bundled demo")
    parser.add_argument("--screenshot", action="append", metavar="[PANEL=]PNG",
                        help="for automation: once the window has drawn what it opened, save the window (or PANEL: "
                             "video, scene, timeline, charts, attention) to PNG and quit; repeatable")
    args = parser.parse_args(argv)
    app = create_app()
    from viewer.main_window import MainWindow

    window = MainWindow()
    window.show()
    for path in args.files or demo_files():
        window.open_path(path)
    if args.screenshot:
        screenshot_when_drawn(window, args.screenshot)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
