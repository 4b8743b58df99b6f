"""core_model.figures headless (no Qt): series values, the window of a frame, the mesh projection that draws the
overlay, and each paper figure through ``interhand figures`` at its print size, not blank; errors name the
argument."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from gui.factory import make_result, write_clip
from matplotlib.image import imread

from core_model.cli import main
from core_model.results import save_result


@pytest.fixture(scope="module")
def saved(tmp_path_factory, openhand):
    folder = tmp_path_factory.mktemp("figures")
    clip = write_clip(folder / "clip.avi")
    a = make_result(openhand, source=str(clip))
    save_result(a, folder / "a.npz")
    save_result(make_result(openhand, gt=False, noise=0.004, seed=2), folder / "b.npz")
    return {"folder": folder, "clip": clip, "a": a}


def test_series_and_windows(saved, openhand):
    from core_model.figures.attention import window_for_frame
    from core_model.figures.series import acceleration_series, penetration_series

    a = saved["a"]
    accel = acceleration_series(a)
    assert accel.name == "acceleration error" and np.isnan(accel.values[[0, -1]]).all()
    np.testing.assert_allclose(accel.values[1:-1], 0, atol=1e-6)  # prediction == ground truth here
    jitter = acceleration_series(make_result(openhand, gt=False, noise=0.004))
    assert jitter.name == "acceleration" and np.nanmin(jitter.values) > 1  # mm/frame^2 of 4 mm noise
    depth = penetration_series(a).values
    assert (depth[4:8] > 1).all() and (depth[[0, 1, 2, 3, 8, 9, 10, 11]] == 0).all()
    ready = np.zeros(12, bool)
    ready[:6] = True
    assert np.isnan(penetration_series(a, ready).values[6:]).all()
    # The viewer's numpy series is MMPD's per-frame value, both directions, as core_model.metrics computes it.
    from core_model.metrics import mmpd

    rng = np.random.default_rng(0)
    depth = np.where(rng.random(a.depth.shape) < 0.1, rng.random(a.depth.shape) * 0.01, 0.0).astype(np.float32)
    valid = rng.random((12, 2)) < 0.8
    b = dataclasses.replace(a, depth=depth, valid=valid)
    np.testing.assert_allclose(penetration_series(b).values, mmpd(depth, valid=valid, hands="both").per_frame,
                               rtol=1e-6, equal_nan=True)
    assert [window_for_frame(a, t) for t in (0, 1, 2, 3, 5, 11)] == [0, 0, 0, 1, 2, 4]  # nearest centre


def test_projected_vertices_match_the_projection_of_keypoints(saved):
    from core_model.figures.overlay import project_vertices

    a = saved["a"]
    verts2d = project_vertices(a, 3, 0)
    lo, hi = a.keypoints2d[3, 0].min(0), a.keypoints2d[3, 0].max(0)
    assert (verts2d.min(0) > lo - 40).all() and (verts2d.max(0) < hi + 40).all()


def test_figures_headless_through_the_cli(saved, capsys):
    folder = saved["folder"]
    assert main(["figures", "multiview", str(folder / "a.npz"), "--frames", "1,5", "--video", str(saved["clip"]),
                 "--out", str(folder / "mv.png"), "--dpi", "150"]) == 0
    image = imread(folder / "mv.png")
    assert image.shape[:2] == (int((1.6 * 2 + 0.25) * 150), int(1.6 * 3 * 150))  # matplotlib truncates
    assert image[..., :3].std() > 0.05
    assert main(["figures", "accel", str(folder / "a.npz"), str(folder / "b.npz"), "--labels", "ours", "jittery",
                 "--out", str(folder / "accel.pdf")]) == 0
    assert (folder / "accel.pdf").read_bytes().startswith(b"%PDF")
    assert main(["figures", "attention", str(folder / "a.npz"), "--frame", "5", "--heads", "1", "2",
                 "--out", str(folder / "att.png"), "--dpi", "200"]) == 0
    att = imread(folder / "att.png")
    assert att.shape[:2] == (int((1.6 * 3 + 0.5) * 200), int((1.6 * 2 + 0.3) * 200))
    assert att[..., :3].std() > 0.05
    assert "wrote" in capsys.readouterr().out


def test_figure_errors_name_the_argument(saved, capsys, tmp_path):
    folder = saved["folder"]
    assert main(["figures", "attention", str(folder / "a.npz"), "--frame", "5", "--heads", "9",
                 "--out", str(tmp_path / "x.png")]) == 2
    assert "heads: expected indices in 0..1" in capsys.readouterr().err
    assert main(["figures", "multiview", str(folder / "a.npz"), "--frames", "40", "--out",
                 str(tmp_path / "x.png")]) == 2
    assert "frames: 40 is outside" in capsys.readouterr().err
    assert main(["figures", "accel", str(folder / "a.npz"), "--out", str(tmp_path / "x.jpg")]) == 2
    assert "a figure is one of" in capsys.readouterr().err
    assert main(["figures", "hand-poses", "--out", str(tmp_path / "poses.png"), "--hand-model", "openhand"]) == 0
