"""Keypoint-order converters, checked against the orders written out by name."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core_model.handmodel.keypoints import (
    KEYPOINT_NAMES,
    interhand_to_ours,
    mano_to_ours,
    ours_to_interhand,
    ours_to_mano,
)

PARTS = ("mcp", "pip", "dip", "tip")
FINGERS = ("thumb", "index", "middle", "ring", "pinky")
# InterHand2.6M's joint names per hand (its skeleton.txt): thumb4 (tip) .. thumb1, index4 .. index1, ..., wrist.
INTERHAND = [f"{finger}_{PARTS[3 - k]}" for finger in FINGERS for k in range(4)] + ["wrist"]
# MANO's 16 joints, then the five fingertip vertices.
MANO = (["wrist"] + [f"{finger}_{PARTS[k]}" for finger in ("index", "middle", "pinky", "ring", "thumb")
                     for k in range(3)] + [f"{finger}_tip" for finger in FINGERS])


def _named(order: list[str]) -> np.ndarray:
    """Points whose coordinates encode the keypoint's name, so that a wrong permutation shows."""
    return np.array([[KEYPOINT_NAMES.index(n), 0.0, 0.0] for n in order])


def test_interhand_order_by_name():
    converted = interhand_to_ours(_named(INTERHAND))
    np.testing.assert_array_equal(converted[:, 0], np.arange(21))
    np.testing.assert_array_equal(ours_to_interhand(converted), _named(INTERHAND))


def test_interhand_42_joints_split_right_then_left():
    both = np.concatenate([_named(INTERHAND), _named(INTERHAND) + [0, 1, 0]])[None]  # [1, 42, 3]
    converted = interhand_to_ours(torch.as_tensor(both))
    assert converted.shape == (1, 2, 21, 3)
    np.testing.assert_array_equal(converted[0, :, :, 0].numpy(), np.tile(np.arange(21), (2, 1)))
    np.testing.assert_array_equal(converted[0, :, 0, 1].numpy(), [0, 1])  # right first


def test_mano_order_by_name():
    converted = mano_to_ours(_named(MANO))
    np.testing.assert_array_equal(converted[:, 0], np.arange(21))
    np.testing.assert_array_equal(ours_to_mano(converted), _named(MANO))


def test_wrong_count_names_the_argument():
    with pytest.raises(ValueError, match="points: expected 21 keypoints"):
        mano_to_ours(np.zeros((20, 3)))
