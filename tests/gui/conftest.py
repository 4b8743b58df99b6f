"""GUI tests drive the real window on an X display (Xvfb in CI). Without one they are skipped, unless
INTERHAND_REQUIRE_GUI is set (scripts/test.sh sets it), where a missing display is an error.

Fixtures: result files made from synthetic poses (``factory.py``), a small clip, and a main window whose
QSettings live in a temporary folder (a test never reads or writes the user's settings)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def pytest_collection_modifyitems(config, items):
    if os.environ.get("DISPLAY"):
        return
    if os.environ.get("INTERHAND_REQUIRE_GUI"):
        raise pytest.UsageError("GUI tests need an X display: run under xvfb-run (scripts/test.sh does)")
    skip = pytest.mark.skip(reason="no X display; run under xvfb-run")
    for item in items:
        if "tests/gui" in str(item.fspath):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def files(tmp_path_factory, openhand) -> dict[str, Path]:
    """clip.avi (12 frames, 10 fps); a.npz: its result with ground truth, hands interpenetrating on frames 4-7
    only; b.npz: a jittery "method" on the same clip without ground truth."""
    from gui.factory import make_result, write_clip

    from core_model.results import save_result

    folder = tmp_path_factory.mktemp("gui-files")
    clip = write_clip(folder / "clip.avi")
    save_result(make_result(openhand, source=str(clip)), folder / "a.npz")
    save_result(make_result(openhand, gt=False, noise=0.003, seed=1, source=str(clip)), folder / "b.npz")
    return {"clip": clip, "a": folder / "a.npz", "b": folder / "b.npz"}


@pytest.fixture
def window(qtbot, tmp_path):
    from PySide6 import QtCore

    from viewer.app import create_app

    create_app()
    QtCore.QSettings.setDefaultFormat(QtCore.QSettings.Format.IniFormat)
    QtCore.QSettings.setPath(QtCore.QSettings.Format.IniFormat, QtCore.QSettings.Scope.UserScope,
                             str(tmp_path / "settings"))
    from viewer.main_window import MainWindow

    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    win.activateWindow()  # the keys are window shortcuts: they act on the active window
    qtbot.waitActive(win)
    yield win
    win.close()
