"""The network's result and the test-time refinement's side by side: "refined (right view)" shows the result and
its refinement in two views (a shortcut for checking both in the 3D panel's Results list), their cameras linked:
the same direction, distance and zoom, each centred on its own hands. The charts add a dashed "(refined)" curve
per refined result."""

from __future__ import annotations

import numpy as np
import pytest
from gui.pixels import hand_pixels, red_pixels
from PySide6 import QtCore
from vtkmodules.vtkRenderingCore import vtkCamera

from core_model.results import load_result

TOUCHING, UNREFINED = 5, 6  # the network's hands interpenetrate on both; frame 6 was not refined


@pytest.fixture(scope="module")
def refined_file(tmp_path_factory, openhand, files):
    """r.npz: files["a"]'s result plus refined arrays with the hands apart on every frame (no penetration) and
    nothing refined on frame UNREFINED."""
    from gui.factory import make_result

    from core_model.results import save_result

    path = tmp_path_factory.mktemp("refined") / "r.npz"
    save_result(make_result(openhand, source=str(files["clip"]), refined_gap=0.2, unrefined=(UNREFINED,)), path)
    return path


def shot(view) -> np.ndarray:
    return view.plotter.screenshot(return_img=True)[..., :3]


def camera(view) -> np.ndarray:
    cam = view.plotter.camera
    return np.concatenate([cam.position, cam.focal_point, cam.up, [cam.view_angle]])


def label(view) -> str:
    return view.label_text


def assert_linked(view, other) -> None:
    """``view``'s camera is ``other``'s moved: the same direction, distance, up and angle."""
    a, b = view.plotter.camera, other.plotter.camera
    np.testing.assert_allclose(np.subtract(a.position, a.focal_point), np.subtract(b.position, b.focal_point),
                               atol=1e-9)
    np.testing.assert_allclose([*a.up, a.view_angle], [*b.up, b.view_angle], atol=1e-9)


def hands_centre(image: np.ndarray) -> np.ndarray:
    """The middle of the hands' pixels (blue or orange), as a fraction of the image's width and height."""
    rgb = image[..., :3].astype(int)
    hand = (rgb[..., 2] > rgb[..., 0] + 40) | ((rgb[..., 0] > rgb[..., 2] + 60) & (rgb[..., 1] > rgb[..., 2] + 20))
    rows, cols = np.nonzero(hand)
    return np.array([(cols.min() + cols.max()) / 2 / image.shape[1], (rows.min() + rows.max()) / 2 / image.shape[0]])


def test_toggle_needs_a_result_with_refinement(window, files, refined_file):
    scene = window.panels["scene"]
    assert not scene.refined.isEnabled() and not scene.refined.isChecked()
    window.open_path(files["a"])
    assert not scene.refined.isEnabled() and not scene.showing_refined
    window.close_all()
    window.open_path(refined_file)
    assert scene.refined.isEnabled() and not scene.refined.isChecked()
    scene.refined.setChecked(True)
    assert scene.showing_refined and scene.cameras()["refined"] is True
    window.close_all()  # a result without refinement (or none) turns it off
    assert not scene.refined.isEnabled() and not scene.refined.isChecked() and scene.link.isEnabled()


def test_refined_hands_side_by_side(window, refined_file, qtbot):
    result = load_result(refined_file)
    assert result.inside[TOUCHING].any() and not result.refined["inside"][TOUCHING].any()
    assert np.isnan(result.refined["vertices"][UNREFINED]).all()
    scene = window.panels["scene"]
    window.open_path(refined_file)
    window.session.set_frame(TOUCHING)
    qtbot.wait(30)
    linked = camera(scene.second)
    assert not np.allclose(linked, camera(scene.main))  # off: the linked view from 90 degrees
    scene.refined.setChecked(True)
    assert not scene.link.isEnabled() and not scene.second_preset.isEnabled()
    assert [s.name for s in scene.shown] == ["r", "r (refined)"] and scene.comparing
    qtbot.wait(30)
    assert_linked(scene.second, scene.main)
    main, second = shot(scene.main), shot(scene.second)
    assert red_pixels(main) > 30 and red_pixels(second) == 0
    assert min(hand_pixels(second)) > 0.01  # both refined hands drawn, in the hands' colours
    for image in (main, second):  # each view centred on its own result's hands
        assert np.abs(hands_centre(image) - 0.5).max() < 0.1, hands_centre(image)
    assert label(scene.main).startswith("r\n") and f"{int(result.inside[TOUCHING].sum())} penetrating" in label(
        scene.main)
    assert label(scene.second).startswith("r (refined)\n") and "0 penetrating vertices" in label(scene.second)
    for preset in ("side", "top"):  # presets (and turning either view) move both alike
        scene.apply_preset(preset)
        assert_linked(scene.second, scene.main)
    scene.main.plotter.camera.azimuth = 30
    scene.main.view.interactor.InvokeEvent("InteractionEvent")  # as a turn by the mouse reports it
    assert_linked(scene.second, scene.main)
    scene.second.plotter.camera.elevation = 20
    scene.second.view.interactor.InvokeEvent("InteractionEvent")
    assert_linked(scene.main, scene.second)
    scene.apply_preset("camera")

    window.session.set_frame(UNREFINED)
    qtbot.wait(30)
    assert f"frame {UNREFINED}: not refined" in label(scene.second)
    assert not any(actor.GetVisibility() for actor in scene.second.refined_actors + scene.second.hand_actors)
    assert max(hand_pixels(shot(scene.second))) < 0.001 and red_pixels(shot(scene.main)) > 30

    scene.refined.setChecked(False)  # back to the linked view at +90 degrees, one label for both
    window.session.set_frame(TOUCHING)
    qtbot.wait(30)
    assert scene.link.isEnabled() and scene.link.isChecked()
    expected = vtkCamera()
    expected.DeepCopy(scene.main.plotter.renderer.GetActiveCamera())
    expected.Azimuth(90.0)
    np.testing.assert_allclose(scene.second.plotter.camera.position, expected.GetPosition(), atol=1e-9)
    np.testing.assert_allclose(scene.second.plotter.camera.focal_point, expected.GetFocalPoint(), atol=1e-9)
    assert label(scene.main) == label(scene.second) == f"r\nframe {TOUCHING}: {int(result.inside[TOUCHING].sum())} " \
        "penetrating vertices"  # named: the list offers the refinement too
    assert all(actor.GetVisibility() for actor in scene.second.hand_actors)
    assert not any(actor.GetVisibility() for actor in scene.second.refined_actors)


def test_charts_add_dashed_refined_curves(window, files, refined_file):
    charts = window.panels["charts"]
    window.open_path(refined_file)
    window.open_path(files["b"])
    n = load_result(refined_file).num_frames
    assert len(charts.curves) == 6  # r, r (refined), b in each chart
    assert charts.legend_labels() == ["r", "r (refined)", "b"]  # one legend for both charts
    by_label = {item.opts["name"]: item for item in charts.depth.listDataItems()}
    refined, network = by_label["r (refined)"], by_label["r"]
    assert refined.opts["pen"].style() == QtCore.Qt.PenStyle.DashLine
    assert refined.opts["pen"].color() == network.opts["pen"].color()
    assert network.opts["pen"].style() == QtCore.Qt.PenStyle.SolidLine
    accel, depth = charts.refined_series[0]
    assert charts.refined_series[1] is None
    assert len(refined.yData) == len(accel.values) == len(depth.values) == n
    np.testing.assert_array_equal(refined.yData, depth.values)
    assert charts.series[0][1].values[TOUCHING] > 1  # the network's hands penetrate by millimetres, the refined not
    assert depth.values[TOUCHING] == 0 and np.isnan(depth.values[UNREFINED])
    assert np.isfinite(accel.values).sum() > 0
    window.session.remove_result(window.session.results[1])
    assert len(charts.curves) == 4
    window.close_all()
    window.open_path(files["a"])
    assert len(charts.curves) == 2 and charts.refined_series == [None]
    assert charts.legend_labels() == ["a"]


def test_unlinked_second_view_gets_its_camera_back(window, refined_file, qtbot):
    scene = window.panels["scene"]
    window.open_path(refined_file)
    scene.link.setChecked(False)
    scene.second_preset.setCurrentText("top")
    scene.second_preset.activated.emit(0)
    own = camera(scene.second)
    scene.refined.setChecked(True)
    assert_linked(scene.second, scene.main)
    scene.refined.setChecked(False)
    np.testing.assert_allclose(camera(scene.second), own)
    assert scene.second_preset.isEnabled() and not scene.link.isChecked()


def test_camera_preset_frames_refined_hands_far_from_the_network(window, openhand, files, tmp_path, qtbot):
    """Refined hands half a metre from the network's (on real clips the network's camera is that far off): turning
    the refinement on shows each result wholly inside its view, both at the same scale."""
    from gui.factory import make_result

    from core_model.results import save_result

    path = tmp_path / "far.npz"
    save_result(make_result(openhand, source=str(files["clip"]), refined_gap=0.5), path)
    scene = window.panels["scene"]
    window.open_path(path)
    window.session.set_frame(TOUCHING)
    scene.refined.setChecked(True)
    qtbot.wait(30)
    assert_linked(scene.second, scene.main)
    for view in (scene.main, scene.second):
        image = shot(view)
        assert min(hand_pixels(image)) > 0.002  # both hands drawn
        edge = np.concatenate([image[:3].reshape(-1, 3), image[-3:].reshape(-1, 3), image[:, :3].reshape(-1, 3),
                               image[:, -3:].reshape(-1, 3)])
        assert max(hand_pixels(edge[None])) == 0.0  # and none cut by the view's border


def test_export_menu_puts_methods_and_refinement_side_by_side(window, files, refined_file, tmp_path):
    """Export ▸ Figure with two results loaded, one refined: the dialog offers both, and the multi-view figure has a
    group of views per method (r, r refined, b) under their labels, as ``interhand figures multiview --refined``."""
    from matplotlib.image import imread

    from viewer.dialogs import FigureDialog

    window.open_path(refined_file)
    window.open_path(files["b"])
    dialog = FigureDialog(TOUCHING, str(tmp_path / "mv.png"), window, results=2, refined=1)
    dialog.frames.setText(f"2, {TOUCHING}")
    options = dialog.options()
    assert options["compare"] and options["refined"] and options["frames"] == [2, TOUCHING]
    options["dpi"] = 100
    dialog.deleteLater()
    assert [m.label for m in window.exports.figure_methods(True, True)] == ["r", "r (refined)", "b"]
    image = (imread(window.exports.figure(**options))[..., :3] * 255).astype(np.uint8)
    assert image.shape[:2] == (int((1.6 * 2 + 0.45) * 100), int((1.6 * 7 + 0.12 * 3) * 100))

    def red(method: int) -> int:  # frame TOUCHING's row, both views of a method
        x = round((1.6 * (1 + 2 * method) + 0.12 * (method + 1)) * 100)
        return red_pixels(image[round((0.45 + 1.6) * 100):, x:x + 320])

    assert red(0) > 5 and red(1) == 0 and red(2) > 5  # the refinement pulled the hands apart
    lone = FigureDialog(0, str(tmp_path / "x.png"), window, results=1, refined=0)
    assert not lone.compare.isEnabled() and not lone.refined.isEnabled()
    assert not lone.options()["compare"] and not lone.options()["refined"]
    lone.deleteLater()
