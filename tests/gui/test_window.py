"""The real main window over result files: panels stay on one frame, the 3D view shows red exactly where the
result has penetrating vertices, presets move the cameras, keys and playback move the frame, charts overlay
results and seek, the attention panel shows the current window's maps; errors reach a dialog."""

from __future__ import annotations

import numpy as np
from gui.pixels import hand_pixels, qimage_array, red_pixels
from PySide6 import QtCore, QtGui

from core_model.results import load_result


def settle(qtbot, ms: int = 30) -> None:
    qtbot.wait(ms)


def test_empty_window_says_how_to_open_a_file(window):
    image = qimage_array(window.panels["video"].snapshot())
    assert "Open" in window.panels["video"].view.text and "drop" in window.panels["video"].view.text
    assert "Open a video or a result" in window.statusBar().currentMessage()
    assert image.std() > 1  # the hint is drawn
    assert window.session.num_frames == 0
    assert "Device: cpu" in window.device_label.text()


def test_3d_view_is_red_exactly_on_penetrating_frames(window, files, qtbot):
    assert window.open_path(files["a"])
    result = load_result(files["a"])
    assert window.session.video_path.name == "clip.avi"  # the result's source video opened with it
    assert window.model_label.text() == "Hand model: OpenHand"
    scene = window.panels["scene"]
    for frame in (0, 2, 5, 6, 9):
        window.session.set_frame(frame)
        settle(qtbot)
        image = scene.image()
        blue, orange = hand_pixels(image)
        assert blue > 0.01 and orange > 0.01, frame
        if result.inside[frame].any():
            assert red_pixels(image) > 30, frame
        else:
            assert red_pixels(image) == 0, frame


def test_video_panel_follows_the_frame_and_overlay_toggles(window, files, qtbot):
    window.open_path(files["a"])
    video = window.panels["video"]
    images = {}
    for mode in ("keypoints", "mesh", "none"):
        video.mode.setCurrentText(mode)
        settle(qtbot)
        images[mode] = qimage_array(video.snapshot())
    assert not np.array_equal(images["keypoints"], images["none"])
    assert not np.array_equal(images["mesh"], images["keypoints"])
    blue, orange = hand_pixels(images["keypoints"])
    assert blue > 0.001 and orange > 0.001
    window.session.set_frame(10)
    settle(qtbot)
    assert not np.array_equal(qimage_array(video.snapshot()), images["none"])  # the bar moved with the frame


def test_camera_presets_and_linked_second_view(window, files, qtbot):
    window.open_path(files["a"])
    scene = window.panels["scene"]
    seen = {}
    for preset in ("camera", "front", "side", "top", "alternative"):
        scene.apply_preset(preset)
        settle(qtbot)
        seen[preset] = scene.main.plotter.screenshot(return_img=True)
        position = np.array(scene.main.plotter.camera.position)
        second = np.array(scene.second.plotter.camera.position)
        assert not np.allclose(position, second)  # linked: the second view looks from elsewhere
    for a, b in (("front", "side"), ("front", "top"), ("side", "alternative"), ("camera", "top")):
        assert np.abs(seen[a].astype(int) - seen[b].astype(int)).mean() > 2, (a, b)
    np.testing.assert_allclose(scene.main.plotter.camera.position, scene.main.plotter.camera.position)
    scene.apply_preset("camera")
    assert np.allclose(scene.main.plotter.camera.position, 0)  # the real camera sits at the origin
    before = np.array(scene.second.plotter.camera.position)
    scene.main.plotter.camera.azimuth = 30
    scene._follow()
    assert not np.allclose(before, scene.second.plotter.camera.position)  # follows the main view
    scene.link.setChecked(False)
    scene.second_preset.setCurrentText("top")
    scene.second_preset.activated.emit(0)
    unlinked = np.array(scene.second.plotter.camera.position)
    scene.apply_preset("side")
    assert np.allclose(unlinked, scene.second.plotter.camera.position)


def test_keys_and_playback_move_the_frame(window, files, qtbot):
    window.open_path(files["a"])
    session, timeline = window.session, window.panels["timeline"]
    qtbot.keyClick(window, QtCore.Qt.Key.Key_Right)
    qtbot.keyClick(window, QtCore.Qt.Key.Key_Right)
    assert session.frame == 2 and timeline.slider.value() == 2 and "frame 2 / 11" in timeline.counter.text()
    qtbot.keyClick(window, QtCore.Qt.Key.Key_Left)
    assert session.frame == 1
    qtbot.keyClick(window, QtCore.Qt.Key.Key_End)
    assert session.frame == 11
    qtbot.keyClick(window, QtCore.Qt.Key.Key_Home)
    assert session.frame == 0
    timeline.slider.setValue(7)
    assert session.frame == 7
    timeline.speed.setCurrentText("4x")  # 10 fps clip at 4x: 40 frames per second
    timeline.loop.setChecked(False)
    qtbot.keyClick(window, QtCore.Qt.Key.Key_Space)
    assert timeline.playing
    qtbot.waitUntil(lambda: not timeline.playing, timeout=3000)  # stops at the end without loop
    assert session.frame == 11
    timeline.loop.setChecked(True)
    qtbot.keyClick(window, QtCore.Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: session.frame < 11, timeout=2000)  # wrapped around
    qtbot.keyClick(window, QtCore.Qt.Key.Key_Space)
    assert not timeline.playing


def test_charts_overlay_results_and_seek_on_click(window, files, qtbot):
    window.open_path(files["a"])
    window.open_path(files["b"])
    charts = window.panels["charts"]
    assert len(charts.series) == 2
    assert "acceleration error" in charts.accel.titleLabel.text
    curves = [item for item in charts.depth.listDataItems()]
    assert len(curves) == 2
    depth = charts.series[0][1].values
    result = load_result(files["a"])
    np.testing.assert_allclose(depth, result.depth.max(axis=(1, 2)) * 1000, rtol=1e-5)
    assert charts.series[1][0].values[5] > charts.series[0][0].values[5]  # the jittery method is worse
    view = charts.view
    settle(qtbot, 100)  # laid out and ranged before mapping a data point to the screen
    target = charts.depth.vb.mapViewToScene(QtCore.QPointF(8, 5))
    qtbot.mouseClick(view.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=view.mapFromScene(target))
    assert window.session.frame == 8
    assert charts.cursors[0].value() == 8 and charts.cursors[1].value() == 8


def test_attention_panel_shows_the_window_of_the_current_frame(window, files, qtbot):
    window.open_path(files["a"])
    result = load_result(files["a"])
    panel = window.panels["attention"]
    window.session.set_frame(5)
    settle(qtbot)
    assert "frames 4–7" in panel.info.text()  # windows [0,4) [2,6) [4,8) ...: frame 5 is nearest window 2's centre
    np.testing.assert_allclose(panel.mhsa.image.image, result.mhsa_attention[2, 0, 0])
    np.testing.assert_allclose(panel.mhca[1].image.image, result.mhca_attention[2, 0, 1, 0])
    x, y = panel.mhsa.marks.getData()
    assert panel.mhsa.marks.isVisible() and sorted(set(x[2::4])) == [1.5, 5.5]  # frame marked at offset 1, T + 1
    side = result.mhsa_attention.shape[-1]
    assert x.min() == 0 and x.max() == side and y.min() == 0 and y.max() == side  # lines span the map only
    window.session.set_frame(6)  # the same window: the maps stay, the marks move
    x, _ = panel.mhsa.marks.getData()
    assert "frames 4–7" in panel.info.text() and sorted(set(x[2::4])) == [2.5, 6.5]
    np.testing.assert_allclose(panel.mhca[0].marks.getData()[0][2::4], [2.5])
    window.session.set_frame(5)
    panel.block.setCurrentIndex(1)
    panel.head.setCurrentIndex(1)
    np.testing.assert_allclose(panel.mhsa.image.image, result.mhsa_attention[2, 1, 1])
    np.testing.assert_allclose(panel.chirality[0].image.image, result.chirality_maps[5, 0])
    assert panel.chirality[0].crop.image is not None  # the crop of the video frame under the map
    image = qimage_array(panel.snapshot())
    assert (np.abs(image.astype(int) - 255).sum(-1) > 60).mean() > 0.02  # maps are drawn, not a blank panel


def test_errors_reach_a_dialog_with_core_models_message(window, tmp_path):
    bogus = tmp_path / "notes.npz"
    bogus.write_text("not a zip")
    assert not window.open_path(bogus)
    assert "is not a result file" in window.last_error
    assert not window.open_path(tmp_path / "missing.mp4")
    assert "no such file" in window.last_error


def test_drop_and_recent_files(window, files, qtbot):
    mime = QtCore.QMimeData()
    mime.setUrls([QtCore.QUrl.fromLocalFile(str(files["b"])), QtCore.QUrl.fromLocalFile(str(files["clip"]))])
    event = QtGui.QDropEvent(QtCore.QPointF(50, 50), QtCore.Qt.DropAction.CopyAction, mime,
                             QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)
    assert window.session.video_path == files["clip"] and window.session.primary.label == "b"
    assert window.recent_files()[:2] == [str(files["b"].resolve()), str(files["clip"].resolve())]  # newest first
    assert [a.text() for a in window.recent_menu.actions()][:2] == window.recent_files()[:2]
