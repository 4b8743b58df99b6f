"""The size of a hand in an image, from the box around its 2D keypoints ``[..., 21, 2]`` (pixels).

Two sizes, for two uses, each with one name:

- :func:`hand_size`, the box's diagonal: the unit of the tracking and gating thresholds (duplicate detections,
  the regions' track memory, the refinement's gating, the refinement benchmark's 2D error).
- :func:`box_side`, the box's longer side: PCK's normaliser (the real validation set, the perception scores,
  the real-clip benchmark's PCK and jitter).

Both take the box of the finite keypoints (a keypoint with a NaN coordinate, a dropped finger, is left out) and
are NaN for a hand without any.
"""

from __future__ import annotations

import numpy as np


def _span(keypoints: np.ndarray) -> np.ndarray:
    """[..., 21, 2] -> [..., 2] width and height of the box of the finite keypoints (NaN without any)."""
    keypoints = np.asarray(keypoints, np.float64)
    finite = np.isfinite(keypoints).all(-1, keepdims=True)
    lo = np.where(finite, keypoints, np.inf).min(-2)
    hi = np.where(finite, keypoints, -np.inf).max(-2)
    return np.where(finite.any(-2), hi - lo, np.nan)


def hand_size(keypoints: np.ndarray) -> np.ndarray:
    """[..., 21, 2] -> [...] the diagonal of the keypoints' box (pixels, at least 1; NaN without a finite
    keypoint)."""
    span = _span(keypoints)
    return np.maximum(np.hypot(span[..., 0], span[..., 1]), 1.0)


def box_side(keypoints: np.ndarray) -> np.ndarray:
    """[..., 21, 2] -> [...] the longer side of the keypoints' box (pixels; NaN without a finite keypoint)."""
    return _span(keypoints).max(-1)
