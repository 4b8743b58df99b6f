"""The two-hand region: chirality from labels and motion, missed hands placed from their tracks, square crops."""

from __future__ import annotations

import numpy as np
import pytest

from core_model.pipeline.detect import FrameHands, drop_duplicates
from core_model.pipeline.region import (
    DETECTED,
    INFERRED,
    NONE,
    crop_frame,
    parse_roi,
    regions_from_boxes,
    regions_from_detections,
    regions_from_roi,
    square_regions,
)


def hand_at(cx: float, cy: float, size: float = 60.0) -> np.ndarray:
    """21 landmarks spread over a size x size square around (cx, cy); the wrist at the bottom."""
    rng = np.random.default_rng(int(cx * 7 + cy))
    points = rng.uniform(-size / 2, size / 2, (21, 2)) + [cx, cy]
    points[0] = [cx, cy + size / 2]
    return points.astype(np.float32)


def frame(*hands: tuple[float, float, float]) -> FrameHands:
    """hands: (cx, cy, probability of being a right hand)."""
    if not hands:
        return FrameHands.empty()
    return FrameHands(np.stack([hand_at(x, y) for x, y, _ in hands]), np.array([p for *_, p in hands], np.float32),
                      np.full(len(hands), 0.9, np.float32))


def test_clasped_hands_seen_as_one_keep_a_two_hand_region():
    # Right hand at x=300, left at x=200; from frame 3 on the detector sees only the left one (a clasp), with the
    # right reappearing at frame 12. Labels are wrong on purpose on two frames (both called left).
    frames = [frame((300, 200, 0.9), (200, 200, 0.1)) for _ in range(3)]
    frames += [frame((205, 200, 0.2)) for _ in range(9)]
    frames += [frame((310, 205, 0.3), (210, 200, 0.2)) for _ in range(2)]
    frames += [frame((310, 205, 0.9), (210, 200, 0.1)) for _ in range(6)]
    regions = regions_from_detections(frames, fps=30.0, width=640, height=480)
    assert (regions.source[:, 1] == DETECTED).all()
    assert (regions.source[3:12, 0] == INFERRED).all() and (regions.source[:3, 0] == DETECTED).all()
    assert regions.shares()["two_hand_region"] == 1.0
    assert regions.shares()["detector_two_hands"] == pytest.approx(11 / 20)
    assert regions.shares()["detector_left_right"] == pytest.approx(9 / 20)  # the two both-left frames are not
    # chirality follows the tracks, not the two frames of wrong labels
    assert np.nanmean(regions.det_keypoints2d[12:14, 0, :, 0]) > 280
    # every crop covers both hands, including the inferred one
    x, _, side, _ = regions.bbox.T
    assert (x < 170).all() and (x + side > 330).all()
    np.testing.assert_allclose(regions.bbox[:, 2], regions.bbox[:, 3])


def test_frames_without_hands_are_invalid_not_guessed():
    frames = [frame((300, 200, 0.9), (200, 200, 0.1))] * 4 + [FrameHands.empty()] * 3 + [frame((300, 200, 0.9))] * 4
    regions = regions_from_detections(frames, fps=30.0, width=640, height=480)
    assert (regions.source[4:7] == NONE).all() and not regions.region_valid[4:7].any()
    assert np.isnan(regions.bbox[4:7]).all() and np.isnan(regions.det_score[4:7]).all()
    assert regions.region_valid[:4].all() and regions.region_valid[7:].all()
    assert (regions.source[7:, 1] == INFERRED).all()  # left hand last seen 4 frames before, within the horizon


def test_a_hand_that_left_through_the_border_is_not_held():
    frames = [frame((30, 200, 0.9), (300, 200, 0.1))] * 3 + [frame((300, 200, 0.1))] * 5
    regions = regions_from_detections(frames, fps=30.0, width=640, height=480)
    assert (regions.source[3:, 0] == NONE).all()
    assert regions.region_valid.all()


def test_no_hand_anywhere():
    regions = regions_from_detections([FrameHands.empty()] * 5, fps=25.0, width=320, height=240)
    assert not regions.region_valid.any() and regions.shares()["two_hand_region"] == 0.0


def test_duplicate_reports_of_one_hand_are_merged():
    a = hand_at(100, 100)
    hands = FrameHands(np.stack([a, a + 3]), np.array([0.2, 0.6], np.float32), np.array([0.8, 0.6], np.float32))
    merged = drop_duplicates(hands)
    assert len(merged) == 1 and merged.score[0] == pytest.approx(0.8)
    apart = FrameHands(np.stack([a, hand_at(200, 100)]), hands.right_prob, hands.score)
    assert len(drop_duplicates(apart)) == 2


def test_square_regions_smooth_and_single_hand_context():
    boxes = np.full((20, 2, 4), np.nan, np.float32)
    boxes[:, 0] = [100, 100, 150, 150]
    boxes[10, 0] += 40  # one jittery frame
    raw = square_regions(boxes, smooth_frames=0)
    smooth = square_regions(boxes, smooth_frames=2.0)
    assert abs(smooth[10, 0] - smooth[9, 0]) < abs(raw[10, 0] - raw[9, 0]) / 2
    assert raw[0, 2] == pytest.approx(50 * 1.6 * 1.4)  # one hand: grown for context, plus the margin


def test_roi_and_ground_truth_boxes():
    assert parse_roi("10,20,100,50") == (10, 20, 100, 50)
    with pytest.raises(ValueError, match="--roi"):
        parse_roi("10,20,-1,50")
    with pytest.raises(ValueError, match="--roi"):
        parse_roi("a,b")
    roi = regions_from_roi(4, (10, 20, 100, 50), 640, 480)
    np.testing.assert_allclose(roi.bbox[0], [10, -5, 100, 100])
    with pytest.raises(ValueError, match="outside"):
        regions_from_roi(4, (700, 20, 100, 50), 640, 480)
    gt = np.array([[[10, 10, 50, 50], [60, 10, 100, 50]], [[np.nan] * 4, [60, 10, 100, 50]]], np.float32)
    regions = regions_from_boxes(gt)
    assert (regions.source == [[DETECTED, DETECTED], [NONE, DETECTED]]).all()
    assert regions.bbox[0, 2] == pytest.approx(90 * 1.4)


def test_crop_frame_pads_outside_and_resizes():
    image = np.zeros((100, 200, 3), np.uint8)
    image[:50, :100] = 255
    crop = crop_frame(image, np.array([-50, -50, 100, 100], np.float32), 32)
    assert crop.shape == (32, 32, 3)
    assert crop[:15, :15].max() == 0 and crop[20:, 20:].min() == 255
    with pytest.raises(ValueError, match="bbox"):
        crop_frame(image, np.array([np.nan, 0, 10, 10]), 32)
