"""Pinhole camera for refinement, and the bridge from the network's weak-perspective cameras to 3D wrist positions.

Why perspective: the detector's landmarks are a perspective image, and a closer hand looks larger; one pinhole
camera for both hands lets the 2D landmarks say where each wrist is in 3D (its depth from the apparent size),
which is what makes the relative translation observable. For a video without calibration the focal length is
assumed from a field of view (:func:`default_intrinsics`).
"""

from __future__ import annotations

import math

import numpy as np
import torch


def default_intrinsics(width: int, height: int, fov_deg: float = 55.0) -> np.ndarray:
    """[3, 3] K of an uncalibrated video: principal point at the centre, ``fov_deg`` across the longer side."""
    if width <= 0 or height <= 0:
        raise ValueError(f"width, height: expected a positive frame size, got {width} x {height}")
    if not 0 < fov_deg < 180:
        raise ValueError(f"fov_deg: expected 0 < fov < 180 degrees, got {fov_deg}")
    focal = 0.5 * max(width, height) / math.tan(math.radians(fov_deg) / 2)
    return np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]], np.float64)


def project(points: torch.Tensor, K: torch.Tensor, min_depth: float = 1e-3) -> torch.Tensor:
    """points [..., N, 3] camera frame (metres) and K [..., 3, 3] (broadcast over N) -> pixels [..., N, 2].
    Depth is clamped at ``min_depth`` so a point behind the camera cannot divide by zero."""
    z = points[..., 2:].clamp_min(min_depth)
    f = torch.stack([K[..., 0, 0], K[..., 1, 1]], dim=-1)[..., None, :]
    c = torch.stack([K[..., 0, 2], K[..., 1, 2]], dim=-1)[..., None, :]
    return f * points[..., :2] / z + c


def fit_weak_perspective(local: np.ndarray, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per hand the scale a [...] and offset b [..., 2] with ``pixels = a * local_xy + b`` (least squares).

    local [..., 21, 3] wrist-relative keypoints, pixels [..., 21, 2]: what the network's camera did, recovered
    from a result file (it stores the 3D keypoints and their projection, not the camera)."""
    xy = local[..., :2] - local[..., :2].mean(-2, keepdims=True)
    uv = pixels - pixels.mean(-2, keepdims=True)
    a = (xy * uv).sum((-1, -2)) / np.maximum((xy * xy).sum((-1, -2)), 1e-12)
    b = pixels.mean(-2) - a[..., None] * local[..., :2].mean(-2)
    return a, b


def roots_from_weak_perspective(a: np.ndarray, b: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Wrist positions [..., 3] in the camera frame that a pinhole camera K [..., 3, 3] images like the weak
    perspective ``a * xy + b`` near the wrist: depth f / a, and x, y where the wrist lands at b."""
    f = np.stack([K[..., 0, 0], K[..., 1, 1]], -1)
    c = np.stack([K[..., 0, 2], K[..., 1, 2]], -1)
    a = np.maximum(np.asarray(a, np.float64), 1e-6)
    z = f.mean(-1) / a
    xy = (b - c) * z[..., None] / f
    return np.concatenate([xy, z[..., None]], -1)
