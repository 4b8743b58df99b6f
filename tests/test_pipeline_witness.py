"""The fused witnesses: MediaPipe first, the shipped two-hand perception where MediaPipe reports fewer than two
hands; their slots, their record in the result file, and a still that MediaPipe sees no hand on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core_model.assets import asset_path
from core_model.geometry.hand_box import box_side
from core_model.perception.model import load_perception
from core_model.pipeline.detect import MEDIAPIPE, NO_WITNESS, PERCEPTION, FrameHands, MediaPipeHandDetector
from core_model.pipeline.perceive import SHIPPED
from core_model.pipeline.region import assign_hands, regions_from_detections
from core_model.pipeline.witness import PerceptionWitness, same_hand

FRAMES = Path(__file__).parent / "data" / "perception_synth_frames.npz"
STILL = 0  # a render of a finger on the other hand's palm that MediaPipe reports no hand on (checked below)


@pytest.fixture(scope="module")
def frames():
    with np.load(FRAMES) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def witness():
    return PerceptionWitness(load_perception(asset_path(*SHIPPED))[0])


def mediapipe(image: np.ndarray) -> FrameHands:
    with MediaPipeHandDetector() as detector:
        return detector.detect(np.ascontiguousarray(image), 0)


def near(found: np.ndarray, truth: np.ndarray) -> float:
    """Median distance of a found hand's keypoints to a labelled hand's, in that hand's sizes."""
    return float(np.nanmedian(np.linalg.norm(found - truth, axis=-1)) / box_side(truth))


def test_perception_completes_a_frame_mediapipe_misses(frames, witness):
    image, truth = frames["images"][STILL], frames["keypoints"][STILL]
    seen = mediapipe(image)
    assert len(seen) == 0  # the case this is about: MediaPipe sees no hand on it
    witness.reset()
    hands = witness.complete(image, seen)
    assert len(hands) == 2 and (hands.source == PERCEPTION).all() and witness.frames_asked == 1
    # Each labelled hand has one of the two found on it (a fifth of its size at most: the hands touch), whichever
    # side the perception called it.
    errors = np.array([[near(hands.keypoints[k], truth[h]) for h in range(2)] for k in range(2)])
    assert min(errors[0, 0] + errors[1, 1], errors[0, 1] + errors[1, 0]) < 2 * 0.25, errors
    assert not same_hand(hands.keypoints[0], hands.keypoints[1])


def test_mediapipe_hands_are_kept_and_never_reported_twice(frames, witness):
    truth = frames["keypoints"][STILL]
    image = frames["images"][STILL]
    witness.reset()
    alone = witness.complete(image, FrameHands.empty())
    # MediaPipe "saw" the hand the perception put first: that hand stays MediaPipe's, the other one is added.
    given = FrameHands(alone.keypoints[:1] + 1.0, np.array([0.9], np.float32), np.array([0.8], np.float32))
    witness.reset()
    hands = witness.complete(image, given)
    assert len(hands) == 2 and hands.source.tolist() == [MEDIAPIPE, PERCEPTION]
    np.testing.assert_array_equal(hands.keypoints[0], given.keypoints[0])
    assert same_hand(hands.keypoints[1], alone.keypoints[1]) and not same_hand(hands.keypoints[1], hands.keypoints[0])
    # Two hands from MediaPipe: the perception is not asked.
    asked = witness.frames_asked
    two = FrameHands(truth.astype(np.float32), np.array([0.9, 0.1], np.float32), np.ones(2, np.float32))
    assert witness.complete(image, two) is two and witness.frames_asked == asked


def test_slots_carry_their_witness_and_the_detector_count_is_mediapipe_s():
    rng = np.random.default_rng(0)
    right = rng.uniform(100, 160, (21, 2)).astype(np.float32)
    left = right + np.float32(200.0)
    both = FrameHands(np.stack([right, left]), np.array([0.9, 0.1], np.float32), np.ones(2, np.float32),
                      np.array([MEDIAPIPE, PERCEPTION], np.int8))
    frames = [both] * 5 + [FrameHands.empty()]
    slots = assign_hands(frames, fps=30.0)
    assert slots.witness[:5].tolist() == [[MEDIAPIPE, PERCEPTION]] * 5
    assert slots.witness[5].tolist() == [NO_WITNESS, NO_WITNESS]
    regions = regions_from_detections(frames, 30.0, 640, 480)
    assert regions.detector_hands[:5].tolist() == [1] * 5  # MediaPipe saw one of the two
    assert regions.valid[:5].all() and regions.shares()["perception_hands"] == pytest.approx(5 / 6)


@pytest.mark.parametrize("roi", [None, (0.0, 0.0, 160.0, 160.0)])
def test_a_still_without_mediapipe_detections_gives_two_hands(frames, witness, openhand, tmp_path, roi):
    """``interhand run --witness fused`` on a still that MediaPipe sees no hand on: both hands reconstructed,
    recorded as the perception's, with and without a manual region."""
    from core_model.network import STCNet, STCNetConfig
    from core_model.pipeline.run import reconstruct

    folder = tmp_path / "still"
    folder.mkdir()
    Image.fromarray(frames["images"][STILL]).save(folder / "0000.png")
    torch.manual_seed(0)
    model = STCNet(STCNetConfig.from_preset("lite-landmarks", input_size=64, frames=4), openhand,
                   imagenet_weights=None).eval()
    result = None
    with torch.no_grad():
        for event in reconstruct(folder, tmp_path / "still.npz", model, model_preset="lite-landmarks", roi=roi,
                                 witness=witness):
            result = event.result or result
    assert result is not None and result.valid.all() and np.isfinite(result.keypoints).all()
    assert result.witness.tolist() == [[PERCEPTION, PERCEPTION]]
    assert np.isfinite(result.det_keypoints2d).all(-1).sum() >= 2 * 6  # the landmarks that guided the model
