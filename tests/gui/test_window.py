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


def test_crop_box_reads_on_a_white_frame(window, openhand, tmp_path, qtbot):
    """A white frame (a basin, a sheet): the crop box's black outline shows where a white line vanished."""
    import cv2
    from gui.factory import HEIGHT, WIDTH, make_result

    from core_model.results import save_result

    clip = tmp_path / "white.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (WIDTH, HEIGHT))
    for _ in range(12):
        writer.write(np.full((HEIGHT, WIDTH, 3), 255, np.uint8))
    writer.release()
    save_result(make_result(openhand, source=str(clip)), tmp_path / "white.npz")
    window.open_path(tmp_path / "white.npz")
    video = window.panels["video"]
    video.mode.setCurrentText("none")
    settle(qtbot)
    view = video.view
    size = view.image.size().scaled(view.size(), QtCore.Qt.AspectRatioMode.KeepAspectRatio)
    left, top = (view.width() - size.width()) // 2, (view.height() - size.height()) // 2
    shown = qimage_array(view.grab().toImage())[top + 2:top + size.height() - 2, left + 2:left + size.width() - 2]
    assert (shown.astype(int).sum(-1) > 700).mean() > 0.5  # the white frame ...
    dark = shown.astype(int).sum(-1) < 150
    assert dark.sum() > 100  # ... with the box's outline on it
    video.box.setChecked(False)
    settle(qtbot)
    assert (qimage_array(view.grab().toImage())[top + 2:top + size.height() - 2,
                                                 left + 2:left + size.width() - 2].astype(int).sum(-1) < 150).sum() == 0


def test_ground_truth_box_is_off_without_ground_truth(window, files):
    """Not ticked, and not clickable, when the shown result has no ground truth; the user's choice comes back with
    a result that has it."""
    scene = window.panels["scene"]
    assert not scene.truth.isEnabled() and not scene.truth.isChecked()  # nothing open
    window.open_path(files["b"])  # no ground truth
    assert not scene.truth.isEnabled() and not scene.truth.isChecked()
    window.close_all()
    window.open_path(files["a"])
    assert scene.truth.isEnabled() and scene.truth.isChecked()
    assert all(actor.GetVisibility() for actor in scene.main.truth_actors)
    scene.truth.setChecked(False)  # the user's choice ...
    window.close_all()
    window.open_path(files["b"])
    assert not scene.truth.isEnabled() and not scene.truth.isChecked()
    window.close_all()
    window.open_path(files["a"])
    assert scene.truth.isEnabled() and not scene.truth.isChecked()  # ... kept
    assert not any(actor.GetVisibility() for actor in scene.main.truth_actors)


def _edge_hands(image: np.ndarray) -> float:
    """The largest share of hand-coloured pixels in the 3-pixel border of a view (0: no hand cut by its edge)."""
    edge = np.concatenate([image[:3].reshape(-1, 3), image[-3:].reshape(-1, 3), image[:, :3].reshape(-1, 3),
                           image[:, -3:].reshape(-1, 3)])
    return max(hand_pixels(edge[None]))


def test_linked_second_view_shows_the_whole_hands(window, files, qtbot):
    """The second view is narrower than the main one (a third of the panel): following the main camera turned by
    90 degrees, it used to cut the hands off at its sides."""
    window.open_path(files["a"])
    scene = window.panels["scene"]
    width, height = scene.second.plotter.window_size
    assert width < height and scene.link.isChecked()
    for frame in (0, 5):  # hands apart, hands touching
        window.session.set_frame(frame)
        for preset in ("camera", "front", "side"):
            scene.apply_preset(preset)
            settle(qtbot)
            image = scene.second.plotter.screenshot(return_img=True)[..., :3]
            assert sum(hand_pixels(image)) > 0.01, (frame, preset)  # the hands in view (one may hide the other) ...
            assert _edge_hands(image) == 0.0, (frame, preset)  # ... and not cut by its border


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


def test_clicking_the_timeline_track_goes_to_the_clicked_frame(window, files, qtbot):
    """Not 10 frames (a page) towards it, as QSlider does."""
    window.open_path(files["a"])
    session, slider = window.session, window.panels["timeline"].slider
    settle(qtbot)
    for frame in (3, 9, 1, 11, 0):
        x = next(x for x in range(slider.width()) if slider.value_at(x) == frame)  # the frame's place on the track
        qtbot.mouseClick(slider, QtCore.Qt.MouseButton.LeftButton, pos=QtCore.QPoint(x, slider.height() // 2))
        assert session.frame == frame and slider.value() == frame
    for share, expected in ((0.5, (5, 6)), (0.02, (0,)), (0.98, (11,)), (0.3, (3, 4))):  # no page step of 10
        qtbot.mouseClick(slider, QtCore.Qt.MouseButton.LeftButton,
                         pos=QtCore.QPoint(round(share * slider.width()), slider.height() // 2))
        assert session.frame in expected, share


def test_key_map_scrubs_moves_the_views_and_is_listed_in_help(window, files, qtbot):
    """Shift+arrows (and Page Up / Down) move 10 frames, R resets the 3D camera, V / Shift+V cycle the view
    presets; Help ▸ Keyboard shortcuts lists every key of the map and the menus' shortcuts."""
    from viewer.keymap import KEY_MAP, native
    from viewer.panels.scene import VIEW_PRESETS

    window.open_path(files["a"])
    session, scene = window.session, window.panels["scene"]
    key, shift = QtCore.Qt.Key, QtCore.Qt.KeyboardModifier.ShiftModifier
    qtbot.keyClick(window, key.Key_Right, shift)
    assert session.frame == 10
    qtbot.keyClick(window, key.Key_Right, shift)
    assert session.frame == 11  # the last frame
    qtbot.keyClick(window, key.Key_Left, shift)
    assert session.frame == 1
    qtbot.keyClick(window, key.Key_PageDown)
    assert session.frame == 11
    qtbot.keyClick(window, key.Key_PageUp)
    assert session.frame == 1

    assert scene.preset.currentText() == "camera"
    qtbot.keyClick(window, key.Key_V)
    assert scene.preset.currentText() == VIEW_PRESETS[1]
    qtbot.keyClick(window, key.Key_V, shift)
    qtbot.keyClick(window, key.Key_V, shift)
    assert scene.preset.currentText() == VIEW_PRESETS[-1]
    settle(qtbot)
    before = scene.main.view.render_image()
    preset_camera = np.array(scene.main.plotter.camera.position)
    scene.main.plotter.camera.azimuth = 40  # the user turned the view
    assert not np.allclose(scene.main.plotter.camera.position, preset_camera)
    qtbot.keyClick(window, key.Key_R)
    np.testing.assert_allclose(scene.main.plotter.camera.position, preset_camera, atol=1e-9)
    settle(qtbot)
    np.testing.assert_array_equal(scene.main.view.render_image(), before)  # the same picture as the preset's

    help_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Help")
    shortcuts = next(a for a in help_menu.actions() if "Keyboard shortcuts" in a.text())
    shortcuts.trigger()
    dialog = window.key_map
    qtbot.waitExposed(dialog)
    rows = dialog.rows()
    for binding in KEY_MAP:
        assert (" or ".join(native(k) for k in binding.keys), binding.what) in rows
    assert any(what == "File ▸ Open" and keys == native("Ctrl+O") for keys, what in rows)
    assert dialog.table.horizontalHeader().length() <= dialog.table.viewport().width() + 2  # no cut-off column
    image = qimage_array(dialog.grab().toImage())
    assert (image.astype(int).sum(-1) < 200).mean() > 0.005  # its text is drawn
    dialog.reject()


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
    assert panel.crop.crop.image is not None  # and alone beside them
    image = qimage_array(panel.snapshot())
    assert (np.abs(image.astype(int) - 255).sum(-1) > 60).mean() > 0.02  # maps are drawn, not a blank panel


def test_attention_panel_has_labelled_axes_a_colour_bar_and_no_empty_cell(window, files, qtbot):
    from pyqtgraph import PlotItem

    result = load_result(files["a"])
    panel = window.panels["attention"]
    grid = panel.view.ci.layout
    assert not panel.colour_bar.isVisible()  # nothing open: no scale, no axes
    assert not panel.mhsa.plot.getAxis("bottom").isVisible()
    window.open_path(files["a"])
    window.session.set_frame(5)
    settle(qtbot, 100)
    cells = [grid.itemAt(row, column) for row in range(2) for column in range(3)]
    assert all(isinstance(cell, PlotItem) for cell in cells)  # a map in every cell of the grid
    titles = [cell.titleLabel.text for cell in cells]
    assert titles == ["MHSA, both hands", "MHCA right", "MHCA left", "crop", "chirality right", "chirality left"]
    T = result.mhsa_attention.shape[-1] // 2
    for view in (panel.mhsa, *panel.mhca):
        for side in ("left", "bottom"):
            axis = view.plot.getAxis(side)
            assert axis.isVisible() and axis.labelText == "frame"
    assert [text for _, text in panel.mhsa.plot.getAxis("bottom")._tickLevels[0]] == ["right", "left"]
    assert [p for p, _ in panel.mhsa.plot.getAxis("left")._tickLevels[0]] == [T / 2, 1.5 * T]
    assert [text for _, text in panel.mhca[0].plot.getAxis("bottom")._tickLevels[0]] == ["4", "5", "7"]  # frames 4-7
    x, y = panel.halves.getData()
    assert set(x[2:]) == {T} and set(y[:2]) == {T}  # the dashed line between the hands' halves
    maps = [result.mhsa_attention[2, 0, 0], *result.mhca_attention[2, 0, :, 0]]
    largest = max(float(m.max()) for m in maps)
    assert panel.colour_bar.isVisible() and np.isclose(panel.colour_bar.levels()[1], largest)
    for view in (panel.mhsa, *panel.mhca):  # one scale for the three maps, the bar's
        assert np.isclose(view.image.levels[1], largest)
    bar = panel.colour_bar.sceneBoundingRect()
    image = qimage_array(panel.view.grab().toImage())
    strip = image[round(bar.top()) + 5:round(bar.bottom()) - 5, round(bar.left()):round(bar.left()) + 10]
    assert strip[0].astype(int).sum() < strip[-1].astype(int).sum()  # dark (high weights) at the top


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
