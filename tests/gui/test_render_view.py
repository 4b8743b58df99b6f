"""The 3D view widget (viewer.panels.render_view): what it paints is what VTK rendered, the mouse turns and zooms
its camera, a reduced scale renders fewer pixels but paints the whole widget, and playback in software GL uses it
while any still frame is full resolution."""

from __future__ import annotations

import numpy as np
import pytest
from gui.pixels import qimage_array
from PySide6 import QtCore, QtGui, QtWidgets


@pytest.fixture
def view(qtbot):
    import pyvista as pv

    from viewer.app import create_app
    from viewer.panels.render_view import RenderView

    create_app()
    widget = RenderView()
    qtbot.addWidget(widget)
    widget.resize(320, 240)
    widget.plotter.set_background("white")
    widget.plotter.add_mesh(pv.Sphere(radius=0.5), color="red", reset_camera=True, render=False)
    widget.show()
    qtbot.waitExposed(widget)
    yield widget
    widget.release()


def painted(widget: QtWidgets.QWidget) -> np.ndarray:
    """What the widget paints, RGB [H, W, 3] (QWidget.grab runs its paint event)."""
    return qimage_array(widget.grab().toImage())


def red_mask(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(int)
    return (rgb[..., 0] > 150) & (rgb[..., 1] < 90) & (rgb[..., 2] < 90)


def test_paints_what_vtk_rendered_top_row_first(view):
    rendered = view.render_image()
    assert rendered.shape == (240, 320, 3)
    shown = painted(view)
    assert shown.shape == rendered.shape
    assert np.abs(shown.astype(int) - rendered.astype(int)).mean() < 1.0
    red = red_mask(shown)
    assert 0.1 < red.mean() < 0.9 and not red[:5].any() and not red[-5:].any()  # a sphere in white, centred
    # Orientation: a mesh moved up in the world (the camera's up is +y here) shows in the upper half.
    view.plotter.camera_position = [(0, 0, 5), (0, 0, 0), (0, 1, 0)]
    view.plotter.camera.parallel_projection = True
    view.plotter.camera.parallel_scale = 2.0
    view.plotter.renderer.actors[next(iter(view.plotter.renderer.actors))].position = (0, 1.0, 0)
    view.request_render()
    rows = np.flatnonzero(red_mask(painted(view)).any(axis=1))
    assert rows.max() < 120, rows  # upper half


def mouse(widget, kind, pos, button, buttons):
    event = QtGui.QMouseEvent(kind, QtCore.QPointF(*pos), widget.mapToGlobal(QtCore.QPointF(*pos)), button,
                              buttons, QtCore.Qt.KeyboardModifier.NoModifier)
    QtWidgets.QApplication.sendEvent(widget, event)


def test_mouse_turns_and_wheel_zooms_the_camera(view, qtbot):
    moved = []
    view.on_interaction(lambda: moved.append(1))
    camera = view.plotter.camera
    before = np.array(camera.position)
    left, none = QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.MouseButton.NoButton
    Type = QtCore.QEvent.Type
    mouse(view, Type.MouseButtonPress, (160, 120), left, left)
    for x in range(165, 260, 5):
        mouse(view, Type.MouseMove, (x, 120), none, left)
    mouse(view, Type.MouseButtonRelease, (260, 120), left, none)
    after = np.array(camera.position)
    focal = np.array(camera.focal_point)
    assert moved and not np.allclose(before, after)
    assert np.linalg.norm(after - focal) == pytest.approx(np.linalg.norm(before - focal), rel=1e-6)  # a turn
    distance = camera.distance
    wheel = QtGui.QWheelEvent(QtCore.QPointF(160, 120), view.mapToGlobal(QtCore.QPointF(160, 120)),
                              QtCore.QPoint(0, 0), QtCore.QPoint(0, 120), none, QtCore.Qt.KeyboardModifier.NoModifier,
                              QtCore.Qt.ScrollPhase.NoScrollPhase, False)
    QtWidgets.QApplication.sendEvent(view, wheel)
    assert camera.distance < distance  # forward zooms in


def test_reduced_scale_renders_fewer_pixels_and_fills_the_widget(view):
    full = painted(view)
    view.set_scale(0.5)
    assert tuple(view.plotter.render_window.GetSize()) == (160, 120)
    half = painted(view)
    assert half.shape == full.shape  # stretched over the whole widget
    assert abs(red_mask(half).mean() - red_mask(full).mean()) < 0.02  # the same picture, coarser
    assert view.render_image().shape == (240, 320, 3)  # a still image is always full resolution
    assert tuple(view.plotter.render_window.GetSize()) == (160, 120)
    view.set_scale(1.0)
    assert tuple(view.plotter.render_window.GetSize()) == (320, 240)


def test_playback_in_software_gl_renders_the_views_at_reduced_scale(window, files, qtbot):
    from viewer.panels.scene import PLAYBACK_SCALE

    window.open_path(files["a"])
    scene, timeline = window.panels["scene"], window.panels["timeline"]
    assert scene.main.view.renderer_name()  # the context says what it is (e.g. "llvmpipe (LLVM ...)")
    expected = PLAYBACK_SCALE if scene.software_gl else 1.0
    timeline.start()
    assert scene.main.view.scale == scene.second.view.scale == expected
    qtbot.wait(100)
    timeline.pause()
    assert scene.main.view.scale == scene.second.view.scale == 1.0
