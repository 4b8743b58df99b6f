"""Pinhole projection and the similarity transforms that cut square crops (OpenCV axes, pixel centres at integers)."""

from __future__ import annotations

import numpy as np


def project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """points [..., 3] metres in the camera frame -> pixels [..., 2]; K [3, 3], or [..., 3, 3] broadcasting
    against ``points[..., None]`` under matmul rules (e.g. K [T, 1, 1, 3, 3] for points [T, 2, 21, 3])."""
    K = np.asarray(K, dtype=np.float64)
    if K.shape[-2:] != (3, 3):
        raise ValueError(f"K: expected shape [..., 3, 3], got {K.shape}")
    if points.shape[-1] != 3:
        raise ValueError(f"points: expected shape [..., 3], got {points.shape}")
    h = (K @ np.asarray(points, dtype=np.float64)[..., None])[..., 0]
    z = h[..., 2:3]
    return h[..., :2] / np.where(np.abs(z) < 1e-9, 1e-9, z)


def rotation_z(angle_rad: float) -> np.ndarray:
    """3x3 rotation about the optical axis; positive angles turn image content clockwise on screen
    (x toward y, as y points down)."""
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def crop_affine(centre: np.ndarray, side: float, out_size: int, angle_rad: float = 0.0) -> np.ndarray:
    """[3, 3] map from original pixels to crop pixels: the square of ``side`` pixels centred at ``centre``,
    turned by ``angle_rad`` about its centre (as :func:`rotation_z` turns points), to ``out_size`` pixels."""
    if side <= 0:
        raise ValueError(f"side: expected a positive crop side in pixels, got {side}")
    scale = out_size / side
    rot = rotation_z(angle_rad)[:2, :2]
    half = (out_size - 1) / 2
    A = np.eye(3)
    A[:2, :2] = scale * rot
    A[:2, 2] = half - scale * rot @ np.asarray(centre, dtype=np.float64)
    return A


def square_box(points: np.ndarray, margin: float) -> tuple[np.ndarray, float]:
    """Centre [2] and side of the square around 2D ``points`` [N, 2], enlarged by ``margin`` (1.0 = tight)."""
    lo, hi = points.min(0), points.max(0)
    return (lo + hi) / 2, float(max(hi - lo) * margin)
