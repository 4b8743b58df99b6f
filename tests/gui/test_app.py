"""The main window really renders both hands, updates on a pose change, and reports model and device."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def window(qtbot):
    from viewer.app import MainWindow

    win = MainWindow("openhand", "open")
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    yield win
    win.close()


def _hand_pixels(image: np.ndarray) -> tuple[float, float]:
    rgb = image[..., :3].reshape(-1, 3).astype(int)
    blue = (rgb[:, 2] > rgb[:, 0] + 40).mean()
    orange = (rgb[:, 0] > rgb[:, 2] + 60).mean()
    return blue, orange


def test_window_shows_both_hands_and_status(window):
    image = window.view.plotter.screenshot(return_img=True)
    blue, orange = _hand_pixels(image)
    assert blue > 0.02 and orange > 0.02  # both hands visible, in their two colours
    status = window.statusBar().currentMessage()
    assert "OpenHand" in status and "cpu" in status


def test_pose_change_redraws_the_meshes(window, qtbot):
    open_image = window.view.plotter.screenshot(return_img=True)
    window.pose_box.setCurrentText("fist")
    qtbot.wait(50)
    fist_image = window.view.plotter.screenshot(return_img=True)
    open_area, fist_area = sum(_hand_pixels(open_image)), sum(_hand_pixels(fist_image))
    assert fist_area < 0.8 * open_area  # a fist covers fewer pixels than an open hand


def test_repeated_open_close_does_not_leak_windows(qtbot):
    from PySide6 import QtWidgets

    from viewer.app import MainWindow

    before = len(QtWidgets.QApplication.topLevelWidgets())
    for _ in range(3):
        win = MainWindow("openhand", "relaxed")
        win.show()
        qtbot.waitExposed(win)
        win.close()
        win.deleteLater()
        qtbot.wait(20)
    QtWidgets.QApplication.processEvents()
    assert len(QtWidgets.QApplication.topLevelWidgets()) <= before + 1
