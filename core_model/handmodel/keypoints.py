"""Keypoint orders of the field and converters between them (DESIGN section 3).

Ours (OpenPose / MediaPipe): 0 wrist; 1-4 thumb base to tip; 5-8 index; 9-12 middle; 13-16 ring; 17-20 pinky.
InterHand2.6M, per hand: thumb tip to base (0-3), index (4-7), middle (8-11), ring (12-15), pinky (16-19),
wrist (20); its 42-joint arrays hold the right hand first (0-20), then the left (21-41).
MANO: 16 skeleton joints (wrist, index1-3, middle1-3, pinky1-3, ring1-3, thumb1-3) followed here by the five
fingertip vertices in thumb, index, middle, ring, pinky order.
"""

from __future__ import annotations

import numpy as np
import torch

FINGERS = ("thumb", "index", "middle", "ring", "pinky")

KEYPOINT_NAMES = ("wrist", *tuple(f"{finger}_{part}" for finger in FINGERS for part in ("mcp", "pip", "dip", "tip")))
"""Names in our order; for the thumb the four points are CMC, MCP, IP and tip."""

MANO_JOINT_NAMES = ("wrist", "index1", "index2", "index3", "middle1", "middle2", "middle3", "pinky1", "pinky2",
                    "pinky3", "ring1", "ring2", "ring3", "thumb1", "thumb2", "thumb3")
MANO_PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14)

BONES = tuple((0 if k == 0 else 4 * f + k, 4 * f + k + 1) for f in range(len(FINGERS)) for k in range(4))
"""The 20 edges (parent, child) of the 21-keypoint skeleton in our order: each finger's chain, its first point on
the wrist ((0, 1), (1, 2), (2, 3), (3, 4), (0, 5), ... (19, 20)). Every figure draws hands with these."""

PALM = [0, 5, 9, 13, 17]
"""The wrist and the four finger bases (MCP joints): the palm's keypoints, which move with the hand as a whole (a
list, so that it indexes one axis of numpy arrays and torch tensors alike)."""

FINGERTIP_ORDER = FINGERS
"""Order of a hand model's ``fingertip_ids``."""


def _mano21_index() -> tuple[int, ...]:
    order = [0]
    for tip_slot, finger in enumerate(FINGERS):
        order += [MANO_JOINT_NAMES.index(f"{finger}{k}") for k in (1, 2, 3)] + [16 + tip_slot]
    return tuple(order)


MANO21_TO_OURS = _mano21_index()
"""``ours = mano21[..., MANO21_TO_OURS, :]`` where mano21 is the 16 joints followed by the five tips."""
OURS_TO_MANO21 = tuple(int(i) for i in np.argsort(MANO21_TO_OURS))

INTERHAND_TO_OURS = (20, *tuple(4 * f + (3 - k) for f in range(5) for k in range(4)))
"""``ours = interhand[..., INTERHAND_TO_OURS, :]`` for one hand of 21 InterHand2.6M joints."""
OURS_TO_INTERHAND = tuple(int(i) for i in np.argsort(INTERHAND_TO_OURS))


def _take(points: np.ndarray | torch.Tensor, index: tuple[int, ...], axis: int):
    if points.shape[axis] != len(index):
        raise ValueError(f"points: expected {len(index)} keypoints on axis {axis}, got shape {tuple(points.shape)}")
    if isinstance(points, torch.Tensor):
        return points.index_select(axis, torch.as_tensor(index, device=points.device))
    return np.take(points, index, axis=axis)


def mano_to_ours(points, axis: int = -2):
    """MANO's 16 joints + 5 tips -> our order."""
    return _take(points, MANO21_TO_OURS, axis)


def ours_to_mano(points, axis: int = -2):
    """Our order -> MANO's 16 joints + 5 tips."""
    return _take(points, OURS_TO_MANO21, axis)


def interhand_to_ours(points, axis: int = -2):
    """InterHand2.6M: 21 joints of one hand -> our order, or all 42 -> ``[..., 2, 21, ...]`` (right, left)."""
    if points.shape[axis] == 42:
        axis = axis % points.ndim
        shape = tuple(points.shape)
        split = (*shape[:axis], 2, 21, *shape[axis + 1:])
        points = points.reshape(split)
        return _take(points, INTERHAND_TO_OURS, axis + 1)
    return _take(points, INTERHAND_TO_OURS, axis)


def ours_to_interhand(points, axis: int = -2):
    """Our order, one hand -> InterHand2.6M's 21 joints of that hand."""
    return _take(points, OURS_TO_INTERHAND, axis)
