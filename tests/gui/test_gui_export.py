"""Exports from the window: meshes that trimesh loads, figures of the expected print size that are not blank,
panel screenshots, the overlay mp4 (written in the worker), and a workspace that reopens what was open."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import trimesh
from gui.pixels import red_pixels
from matplotlib.image import imread

from core_model.results import load_result


@pytest.mark.parametrize("file_format", ["obj", "ply", "glb"])
def test_export_current_frame_mesh_loads_with_trimesh(window, files, tmp_path, file_format):
    window.open_path(files["a"])
    window.session.set_frame(5)
    result = load_result(files["a"])
    (path,) = window.exports.meshes(tmp_path, file_format, range(5, 6))
    assert path.name == f"frame_000005.{file_format}"
    loaded = trimesh.load(path, process=False)
    meshes = list(loaded.geometry.values()) if isinstance(loaded, trimesh.Scene) else [loaded]
    vertices = np.concatenate([m.vertices for m in meshes])
    assert len(vertices) == 2 * result.num_vertices
    if file_format != "glb":  # glTF is y-up; OBJ and PLY keep the result's camera coordinates
        np.testing.assert_allclose(np.sort(vertices, axis=0), np.sort(result.vertices[5].reshape(-1, 3), axis=0),
                                   atol=1e-5)


def test_export_a_range_of_meshes(window, files, tmp_path):
    window.open_path(files["a"])
    written = window.exports.meshes(tmp_path, "ply", range(2, 7))
    assert [p.name for p in written] == [f"frame_00000{t}.ply" for t in range(2, 7)]


def _not_blank(image: np.ndarray) -> bool:
    rgb = image[..., :3]
    return rgb.std() > 0.05 and (np.abs(rgb - rgb.reshape(-1, 3).max(0)).sum(-1) > 0.2).mean() > 0.02


def test_figures_have_the_print_size_and_show_something(window, files, tmp_path):
    window.open_path(files["a"])
    window.open_path(files["b"])
    multiview = imread(window.exports.figure("multiview", tmp_path / "mv.png", frames=[2, 5], dpi=100))
    # input crop + two views, 1.6 in each; two rows of 1.6 in plus a 0.25 in title band, at 100 dpi
    assert multiview.shape[:2] == (345, 480)
    assert _not_blank(multiview)
    assert red_pixels((multiview[185:, 160:] * 255).astype(np.uint8)) > 5  # frame 5 penetrates: red in row 2
    assert red_pixels((multiview[25:185, 160:] * 255).astype(np.uint8)) == 0  # frame 2 does not
    accel = imread(window.exports.figure("accel", tmp_path / "accel.png", dpi=120))
    assert accel.shape[:2] == (288, 720) and _not_blank(accel)
    window.session.set_frame(5)
    attention = imread(window.exports.figure("attention", tmp_path / "att.png", heads=[0, 1], dpi=100))
    assert attention.shape[:2] == (530, 350) and _not_blank(attention)


def test_panel_screenshots(window, files, tmp_path):
    window.open_path(files["a"])
    for key in ("video", "scene", "timeline", "charts", "attention", "window"):
        path = window.exports.screenshot(key, tmp_path / f"{key}.png")
        image = imread(path)
        assert image.shape[0] > 20 and image.shape[1] > 100, key
        assert image[..., :3].std() > 0.02, key


def test_overlay_video_is_written_in_the_worker(window, files, tmp_path, qtbot):
    window.open_path(files["a"])
    target = tmp_path / "overlay.mp4"
    window.exports.overlay_video(target)
    assert window.job_runner.worker is not None and window.job_runner.worker.isRunning()
    qtbot.waitUntil(lambda: window.job_runner.worker is None, timeout=20000)
    assert window.last_error == ""
    capture = cv2.VideoCapture(str(target))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    assert len(frames) == 12 and frames[0].shape == (240, 320, 3)
    plain = cv2.VideoCapture(str(files["clip"]))
    _, original = plain.read()
    plain.release()
    assert np.abs(frames[0].astype(int) - original.astype(int)).sum(-1).max() > 100  # the hands are drawn


def test_workspace_reopens_results_frame_cameras_and_layout(window, files, tmp_path, qtbot):
    window.open_path(files["a"])
    window.open_path(files["b"])
    window.session.set_frame(7)
    window.panels["scene"].apply_preset("top")
    window.panels["scene"].link.setChecked(False)
    window.panels["video"].mode.setCurrentText("mesh")
    window.docks["attention"].hide()
    cameras = window.panels["scene"].cameras()
    path = window.workspaces.save(tmp_path / "work.json")
    window.close_all()
    window.docks["attention"].show()
    assert window.session.results == [] and window.session.video is None
    assert window.open_path(path)
    qtbot.wait(50)
    assert [r.label for r in window.session.results] == ["a", "b"]
    assert window.session.video_path == Path(files["clip"]) and window.session.frame == 7
    assert window.panels["video"].mode.currentText() == "mesh"
    assert not window.docks["attention"].isVisible()
    restored = window.panels["scene"].cameras()
    for view in ("main", "second"):
        np.testing.assert_allclose(restored[view]["position"], cameras[view]["position"], atol=1e-9)
    assert restored["linked"] is False
