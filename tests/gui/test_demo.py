"""The bundled demo in the real window, as a user meets it: the app opens it with no argument, the shipped model
runs on its video in the worker to the end and reproduces the shipped result, scrubbing and camera presets show
both hands, and a mesh and a figure export."""

from __future__ import annotations

import numpy as np
import trimesh
from gui.pixels import hand_pixels, red_pixels
from matplotlib.image import imread

from core_model.results import load_result
from viewer.app import demo_files
from viewer.jobs import RunSettings


def settle(qtbot, ms: int = 50) -> None:
    qtbot.wait(ms)


def test_demo_opens_runs_scrubs_and_exports(window, qtbot, tmp_path):
    files = demo_files()
    assert [p.suffix for p in files] == [".mp4", ".npz"]  # the app's no-argument files: video, then its result
    for path in files:
        assert window.open_path(path)
    demo = load_result(files[1])
    session, scene = window.session, window.panels["scene"]
    assert session.num_frames == demo.num_frames and "vertices" in demo.gt

    # The camera preset looks at both hands from outside them (results are root-relative: the origin is the
    # right wrist, inside a hand).
    frame = int(np.argmax(demo.valid.all(-1)))
    session.set_frame(frame)
    scene.apply_preset("camera")
    settle(qtbot)
    image = scene.main.plotter.screenshot(return_img=True)
    blue, orange = hand_pixels(image)
    assert 0.01 < blue < 0.6 and 0.01 < orange < 0.6, (blue, orange)

    # Red only on frames whose result has penetrating vertices, and seen on the most penetrating ones (from some
    # side: the red vertices are inside the other hand, which can hide them).
    both = demo.valid.all(-1)
    counts = demo.inside.sum((-1, -2))
    scene.truth.setChecked(False)
    for f in np.flatnonzero(both & (counts == 0))[:2]:
        session.set_frame(int(f))
        settle(qtbot)
        assert red_pixels(scene.main.plotter.screenshot(return_img=True)) == 0, int(f)
    # The shipped model's hands do not interpenetrate on every demo (they do not on the current one); red on
    # penetrating frames is checked on results that do in test_gui_export and test_refined.
    top = np.argsort(-counts * both)[:2]
    for f in top[counts[top] > 0]:
        session.set_frame(int(f))
        red = []
        for preset in ("camera", "side", "top", "alternative"):
            scene.apply_preset(preset)
            settle(qtbot)
            red.append(red_pixels(scene.main.plotter.screenshot(return_img=True)))
        assert max(red) > 0, (int(f), int(counts[f]), red)
    scene.truth.setChecked(True)

    # The shipped model, run on the demo video in the worker, gives the shipped result.
    output = tmp_path / "demo_run.npz"
    window.runs.start(RunSettings(files[0], output, batch=2))
    qtbot.waitUntil(lambda: window.job_runner.worker is None, timeout=600_000)
    assert window.last_error == ""
    run = load_result(output)
    assert run.meta.checkpoint_sha256 == demo.meta.checkpoint_sha256
    np.testing.assert_array_equal(run.valid, demo.valid)
    np.testing.assert_allclose(run.keypoints, demo.keypoints, atol=2e-3)  # same model, video and pipeline

    # Scrub through, switch presets, export a mesh and a figure.
    for f in (0, demo.num_frames // 2, demo.num_frames - 1):
        session.set_frame(f)
        settle(qtbot, 20)
        assert f"frame {f}" in scene.main.label_text
    for preset in ("front", "side", "top", "alternative", "camera"):
        scene.apply_preset(preset)
    settle(qtbot)
    (mesh_path,) = window.exports.meshes(tmp_path / "meshes", "obj", range(frame, frame + 1))
    mesh = trimesh.load(mesh_path, force="mesh")
    assert len(mesh.vertices) == 2 * run.num_vertices
    figure = imread(window.exports.figure("multiview", tmp_path / "fig.png", frames=[frame, frame + 30], dpi=100))
    assert figure.shape[:2] == (345, 480)  # two rows of input crop + two views, 1.6 in each, at 100 dpi
    assert (np.abs(figure[..., :3] - 1.0).sum(-1) > 0.2).mean() > 0.05  # drawn, not blank
