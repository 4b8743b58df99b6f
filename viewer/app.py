"""``interhand-studio [VIDEO | RESULT.npz | WORKSPACE.json ...]``: the desktop application. With no argument it
opens the bundled demo (``assets/demo/``: a clip and its result) when it is installed, else an empty window
that says how to open a file."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from PySide6 import QtWidgets


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="interhand-studio", description="InterHand Studio desktop application")
    parser.add_argument("files", nargs="*", type=Path,
                        help="a video, result files (.npz) and/or a workspace (.json); none: the bundled demo")
    args = parser.parse_args(argv)
    app = create_app()
    from viewer.main_window import MainWindow

    window = MainWindow()
    window.show()
    for path in args.files or demo_files():
        window.open_path(path)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
