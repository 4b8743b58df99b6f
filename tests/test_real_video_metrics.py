"""The metrics of ``benchmarks/real_video.py`` against values worked out by hand on small synthetic arrays (its jitter
is ``core_model.metrics``'s, tested in ``test_metrics.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.real_video import (
    clip_metrics,
    confident,
    normalised_errors,
    pck,
    penetration_shares,
    swapped_fits_better,
)


def hand(width: float = 100.0, height: float = 50.0, x0: float = 10.0, y0: float = 20.0) -> np.ndarray:
    """21 landmarks spanning a width x height box from (x0, y0): box size max(width, height)."""
    t = np.linspace(0, 1, 21)
    return np.stack([x0 + width * t, y0 + height * t[::-1] ** 2], -1)


def test_confident_needs_score_and_all_landmarks():
    det = np.stack([np.stack([hand(), hand()])] * 3)            # [3, 2, 21, 2]
    det[1, 1, 5] = np.nan
    score = np.array([[0.9, 0.8], [0.95, 0.99], [0.79, np.nan]])
    assert confident(det, score).tolist() == [[True, True], [True, False], [False, False]]


def test_pck_on_known_offsets():
    ref = hand(100, 50)[None]                                    # box size 100
    pred = ref.copy()
    pred[0, :7, 0] += 5                                          # 0.05 boxes: within 0.1
    pred[0, 7:14, 1] += 20                                       # 0.2 boxes: outside
    pred[0, 14:, :] += [6, 8]                                    # 10 px = 0.1 boxes: on the threshold, within
    value, err, n = pck(pred, ref, np.array([True]))
    assert n == 1
    assert value == pytest.approx(14 / 21)
    assert err == pytest.approx((7 * 0.05 + 7 * 0.2 + 7 * 0.1) / 21)
    np.testing.assert_allclose(normalised_errors(pred, ref)[0, [0, 7, 14]], [0.05, 0.2, 0.1])


def test_pck_uses_only_masked_finite_hand_frames():
    ref = np.stack([hand(100, 50), hand(100, 50), hand(100, 50)])
    pred = ref + [0, 30]                                         # 0.3 boxes everywhere
    pred[0] = ref[0]                                             # exact, but masked out
    pred[2, 4] = np.nan                                          # not finite: dropped
    value, err, n = pck(pred, ref, np.array([False, True, True]))
    assert (value, n) == (0.0, 1)
    assert err == pytest.approx(0.3)
    assert pck(pred, ref, np.zeros(3, bool))[2] == 0


def test_penetration_shares():
    inside = np.zeros((4, 2, 5), bool)
    depth = np.zeros((4, 2, 5))
    inside[0, 0, 1], depth[0, 0, 1] = True, 0.002                # shallow
    inside[1, 1, 3], depth[1, 1, 3] = True, 0.007                # deep
    inside[3, 0, 0], depth[3, 0, 0] = True, 0.02                 # deep, but not a two-hand frame
    both = np.array([True, True, True, False])
    share, deep, n = penetration_shares(inside, depth, both)
    assert n == 3
    assert share == pytest.approx(2 / 3)
    assert deep == pytest.approx(1 / 3)


def test_swapped_fits_better_finds_swapped_frames():
    right, left = hand(100, 50, 0, 0), hand(100, 50, 300, 0)
    ref = np.stack([np.stack([right, left])] * 4)
    pred = ref.copy()
    pred[1] = pred[1, ::-1]
    pred[2] = pred[2, ::-1]
    share, n = swapped_fits_better(pred, ref, np.ones((4, 2), bool))
    assert (share, n) == (0.5, 4)


def test_clip_metrics_on_a_tiny_result():
    n = 5
    right, left = hand(100, 50, 0, 0), hand(80, 40, 300, 0)
    det = np.stack([np.stack([right, left])] * n).astype(np.float64)
    px = det.copy()
    px[:, 1, :, 1] += 16                                         # left hand 0.2 boxes off: PCK 0
    arrays = {"det_keypoints2d": det, "det_score": np.full((n, 2), 0.9), "keypoints2d": px,
              "keypoints": np.zeros((n, 2, 21, 3)), "valid": np.ones((n, 2), bool),
              "inside": np.zeros((n, 2, 7), bool), "depth": np.zeros((n, 2, 7))}
    m = clip_metrics(arrays)
    assert (m["pck right"], m["pck left"], m["pck both"]) == (1.0, 0.0, 0.5)
    assert m["err left"] == pytest.approx(0.2)
    assert m["n both"] == 2 * n
    assert m["pen"] == 0 and m["pen n"] == n
    assert m["jit net"] == pytest.approx(0) and m["jit n"] == 2 * (n - 2)
    assert m["swap better"] == 0.0
