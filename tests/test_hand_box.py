"""The two sizes of a hand in an image (core_model.geometry.hand_box) on boxes worked out by hand."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from core_model.geometry.hand_box import box_side, hand_size


def hand(width: float, height: float) -> np.ndarray:
    """21 landmarks spanning a width x height box."""
    t = np.linspace(0, 1, 21)
    return np.stack([10 + width * t, 20 + height * t[::-1] ** 2], -1)


def test_diagonal_and_longer_side():
    assert hand_size(hand(30, 40)) == pytest.approx(50)
    assert box_side(hand(30, 40)) == pytest.approx(40)
    assert box_side(hand(100, 50)) == pytest.approx(100)
    np.testing.assert_allclose(hand_size(np.stack([hand(30, 40), hand(6, 8)])), [50, 10])


def test_missing_keypoints_are_left_out_and_no_keypoint_is_nan():
    pts = hand(30, 40)
    pts[0, 0] = np.nan                                  # the first point sets the box's left and top edges
    pts[20] = np.nan                                    # the last, its right and bottom
    inner = hand(30, 40)[1:20]
    span = inner.max(0) - inner.min(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                  # no all-NaN warnings either
        assert hand_size(pts) == pytest.approx(np.hypot(*span))
        assert box_side(pts) == pytest.approx(span.max())
        empty = np.full((21, 2), np.nan)
        assert np.isnan(hand_size(empty)) and np.isnan(box_side(empty))


def test_hand_size_is_at_least_one_pixel():
    assert hand_size(np.full((21, 2), 5.0)) == 1.0
    assert box_side(np.full((21, 2), 5.0)) == 0.0
