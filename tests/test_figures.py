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
    # a method with its refinement: the refined hands apart on frames 4-7, frame 9 not refined
    save_result(make_result(openhand, source=str(clip), refined_gap=0.25, unrefined=(9,), seed=3), folder / "c.npz")
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


def test_multiview_compares_methods_side_by_side(saved):
    """Two results and one's refinement, three frames: the input, then a group of views per method under its
    label; the refinement's hands (apart on frame 5) have no red where the network's penetrate."""
    from gui.pixels import red_pixels

    folder, dpi = saved["folder"], 150
    assert main(["figures", "multiview", str(folder / "c.npz"), str(folder / "b.npz"), "--labels", "ours",
                 "baseline", "--refined", "--frames", "1,5,8", "--video", str(saved["clip"]),
                 "--out", str(folder / "mv3.png"), "--dpi", str(dpi)]) == 0
    image = (imread(folder / "mv3.png")[..., :3] * 255).astype(np.uint8)
    columns, gaps, header = 1 + 3 * 2, 3, 0.45  # input + (ours, ours refined, baseline) x two views
    width_in, height_in = 1.6 * columns + 0.12 * gaps, 1.6 * 3 + header
    assert image.shape[:2] == (int(height_in * dpi), int(width_in * dpi))

    def panel(row: int, column: int) -> np.ndarray:
        x = 1.6 * column + 0.12 * (column > 0) * ((column - 1) // 2 + 1)
        y = header + 1.6 * row
        return image[round(y * dpi):round((y + 1.6) * dpi), round(x * dpi):round((x + 1.6) * dpi)]

    def ink(pixels: np.ndarray) -> float:
        return float((pixels.astype(int).sum(-1) < 600).mean())

    for group in range(3):  # a method's label and the rule under it above its two views
        x0 = round((1.6 * (1 + 2 * group) + 0.12 * (group + 1)) * dpi)
        assert ink(image[:round(0.3 * dpi), x0:x0 + round(3.2 * dpi)]) > 0.01, group
    for row in range(3):
        assert ink(panel(row, 0)) > 0.5  # the crop of the clip (grey frame)
        for column in range(1, columns):
            assert ink(panel(row, column)) > 0.01, (row, column)  # hands drawn in every panel
    def red(row: int, method: int) -> int:  # in both views of a method
        return red_pixels(panel(row, 1 + 2 * method)) + red_pixels(panel(row, 2 + 2 * method))

    assert red(1, 0) > 10 and red(1, 2) > 10  # ours and baseline penetrate on frame 5 ...
    assert red(1, 1) == 0  # ... ours refined does not: its hands are apart
    assert red(0, 0) == red(0, 1) == red(0, 2) == 0  # frame 1: nobody penetrates


def test_multiview_vector_output_embeds_full_resolution_renders(saved):
    """PDF and SVG: text and rules as vectors, the renders embedded at their print resolution (not resampled to
    a screen size), so the figure stays sharp when zoomed."""
    import base64
    import io
    import re

    from PIL import Image

    folder = saved["folder"]
    pixels = round(1.6 * (1 - 2 * 0.01) * 200)
    for suffix in ("pdf", "svg"):
        out = folder / f"mv.{suffix}"
        assert main(["figures", "multiview", str(folder / "c.npz"), str(folder / "a.npz"), "--refined", "--frames",
                     "2,5", "--out", str(out), "--dpi", "200"]) == 0
        data = out.read_bytes()
        if suffix == "pdf":
            assert data.startswith(b"%PDF")
            sizes = re.findall(rb"/Width (\d+) */Height (\d+)|/Height (\d+) */Width (\d+)", data)
            sizes = {(int(w or w2), int(h or h2)) for w, h, h2, w2 in sizes}
        else:
            images = re.findall(rb'xlink:href="data:image/png;base64,([^"]+)"', data)
            sizes = {Image.open(io.BytesIO(base64.b64decode(b))).size for b in images}
            assert len(images) == 2 * 3 * 2  # two frames x (c, c refined, a) x two views
        assert sizes == {(pixels, pixels)}, (suffix, sizes)


def test_multiview_comparison_errors_name_the_method(saved, capsys, tmp_path):
    folder = saved["folder"]
    out = str(tmp_path / "x.png")
    assert main(["figures", "multiview", str(folder / "c.npz"), "--refined", "--frames", "9", "--out", out]) == 2
    assert "frame 9 does not have both hands reconstructed in 'c (refined)'" in capsys.readouterr().err
    assert main(["figures", "multiview", str(folder / "a.npz"), str(folder / "b.npz"), "--refined", "--frames", "1",
                 "--out", out]) == 2
    assert "refined: none of the results holds the test-time refinement" in capsys.readouterr().err
    assert main(["figures", "multiview", str(folder / "a.npz"), str(folder / "b.npz"), "--labels", "one",
                 "--frames", "1", "--out", out]) == 2
    assert "--labels: 1 labels for 2 result files" in capsys.readouterr().err


def test_crop_box_reads_on_white_and_on_black(saved):
    """The crop box is a white line between two black ones: on a white frame its outline shows, on a black one its
    white line does."""
    from core_model.figures.overlay import draw_overlay

    a = saved["a"]
    x, y, w, _ = (round(float(v)) for v in a.bbox[3])
    for background, ink in ((255, 0), (0, 255)):
        frame = np.full((240, 320, 3), background, np.uint8)
        out = draw_overlay(frame, a, 3, mode="none")
        column = out[max(y - 4, 0):y + 5, x + w // 2]  # across the box's top edge, at its middle
        assert (np.abs(column.astype(int) - ink).max(-1) < 40).any(), background  # the contrasting line
        assert (out != background).any(-1).sum() < 0.2 * frame.shape[0] * frame.shape[1]  # the box, not a fill
