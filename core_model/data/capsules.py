"""A capsule proxy of a posed hand, for separating two hands quickly while synthesising motion.

The exact inside test (:mod:`core_model.geometry.interpenetration`) costs about 0.1 s per frame on this CPU;
the generator needs hundreds of queries per sequence, so it works on capsules around the 21 keypoints instead:
finger bones, the palm's wrist-to-knuckle rays and the knuckle line. Radii are fractions of the hand's size.
"""

from __future__ import annotations

import numpy as np

from core_model.handmodel.keypoints import BONES

# The skeleton's bones, then the knuckle line; radii as fractions of the wrist-to-middle-knuckle length, per bone
# from the finger's base outwards (the thumb's own, then the four fingers').
CAPSULES = np.array([*BONES, (5, 9), (9, 13), (13, 17)], dtype=np.int64)
RADII = np.array([0.14, 0.12, 0.10, 0.09] + [0.13, 0.095, 0.085, 0.08] * 4 + [0.12, 0.12, 0.11], dtype=np.float64)
TIPS = (4, 8, 12, 16, 20)
"""Fingertip keypoints lie on the skin at the tip: their capsules end one radius short of them."""


def segment_distances(p0: np.ndarray, p1: np.ndarray, q0: np.ndarray, q1: np.ndarray) -> np.ndarray:
    """Closest distance between segments [p0, p1] and [q0, q1], broadcasting over leading dims ([..., 3])."""
    d1, d2, r = p1 - p0, q1 - q0, p0 - q0
    a = np.einsum("...i,...i", d1, d1)
    e = np.einsum("...i,...i", d2, d2)
    f = np.einsum("...i,...i", d2, r)
    c = np.einsum("...i,...i", d1, r)
    b = np.einsum("...i,...i", d1, d2)
    eps = 1e-12
    denom = a * e - b * b
    s = np.where(denom > eps, np.clip((b * f - c * e) / np.maximum(denom, eps), 0, 1), 0.0)
    t = np.where(e > eps, (b * s + f) / np.maximum(e, eps), 0.0)
    # Clamp t to [0, 1] and recompute s for the clamped t.
    t_low, t_high = t < 0, t > 1
    t = np.clip(t, 0, 1)
    s = np.where(t_low, np.clip(-c / np.maximum(a, eps), 0, 1), s)
    s = np.where(t_high, np.clip((b - c) / np.maximum(a, eps), 0, 1), s)
    closest = (p0 + d1 * s[..., None]) - (q0 + d2 * t[..., None])
    return np.linalg.norm(closest, axis=-1)


def hand_scale(keypoints: np.ndarray) -> np.ndarray:
    """[...] wrist to middle knuckle length of keypoints [..., 21, 3]."""
    return np.linalg.norm(keypoints[..., 9, :] - keypoints[..., 0, :], axis=-1)


def _segments(keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Capsule axes [..., C, 3] (start, end), the fingertip ends pulled back by the capsule radius."""
    start = keypoints[..., CAPSULES[:, 0], :]
    end = keypoints[..., CAPSULES[:, 1], :].copy()
    is_tip = np.isin(CAPSULES[:, 1], TIPS)
    along = end[..., is_tip, :] - start[..., is_tip, :]
    length = np.linalg.norm(along, axis=-1, keepdims=True)
    pull = np.minimum(RADII[is_tip][:, None] * hand_scale(keypoints)[..., None, None], 0.5 * length)
    end[..., is_tip, :] -= along / np.maximum(length, 1e-9) * pull
    return start, end


def min_separation(right: np.ndarray, left: np.ndarray) -> np.ndarray:
    """[...] smallest surface-to-surface distance between the capsule hands (negative: overlap depth).

    right, left: keypoints [..., 21, 3] metres, our order.
    """
    (ra, rb), (la, lb) = _segments(right), _segments(left)
    dist = segment_distances(ra[..., :, None, :], rb[..., :, None, :], la[..., None, :, :], lb[..., None, :, :])
    radius_r = RADII[:, None] * hand_scale(right)[..., None, None]
    radius_l = RADII[None, :] * hand_scale(left)[..., None, None]
    return (dist - radius_r - radius_l).reshape(*dist.shape[:-2], -1).min(-1)


def separating_push(right: np.ndarray, left: np.ndarray, direction: np.ndarray, allowance: np.ndarray,
                    max_push: float = 0.4, iterations: int = 22) -> np.ndarray:
    """[N] smallest distance s >= 0 such that moving ``left`` by ``s * direction`` leaves at most ``allowance``
    metres of capsule overlap, per frame. right, left: [N, 21, 3]; direction: [N, 3] unit; allowance: [N]."""
    low = np.zeros(len(right))
    ok_now = min_separation(right, left) >= -allowance
    high = np.where(ok_now, 0.0, max_push)
    for _ in range(iterations):
        mid = (low + high) / 2
        sep = min_separation(right, left + direction[:, None, :] * mid[:, None, None])
        good = sep >= -allowance
        high = np.where(good, mid, high)
        low = np.where(good, low, mid)
    return np.where(ok_now, 0.0, high)
