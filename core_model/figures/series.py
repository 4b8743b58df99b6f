"""Per-frame series for charts and figures, in millimetres (DESIGN section 3), computed with core_model.metrics.

Frames without a reconstruction (NaN arrays, ``valid`` False, or not yet finished while a run streams in) are
NaN in every series, so a chart shows a gap rather than a made-up value.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from core_model.metrics import MM, accel_error
from core_model.results import Reconstruction


@dataclasses.dataclass
class FrameSeries:
    """values [N] (NaN where undefined) with what they are: ``name`` for a legend or axis, ``unit``."""

    name: str
    unit: str
    values: np.ndarray


def _usable(result: Reconstruction, ready: np.ndarray | None) -> np.ndarray:
    """[N, 2] hands with finite keypoints (and finished, when ``ready`` [N] is given)."""
    ok = result.valid & np.isfinite(result.keypoints).all(axis=(-1, -2))
    return ok & ready[:, None] if ready is not None else ok


def acceleration_series(result: Reconstruction, gt_keypoints: np.ndarray | None = None,
                        ready: np.ndarray | None = None) -> FrameSeries:
    """Accel_E against ``gt_keypoints`` [N,2,21,3] (default: the result's own ``gt['keypoints']``) or, without
    ground truth, the acceleration magnitude (jitter): Accel_E against a motionless reference (wrist-aligned)."""
    if gt_keypoints is None:
        gt_keypoints = result.gt.get("keypoints")
    n = result.num_frames
    if n < 3:
        return FrameSeries("acceleration", "mm/frame²", np.full(n, np.nan))
    ok = _usable(result, ready)
    pred = np.where(ok[..., None, None], result.keypoints, 0.0)
    if gt_keypoints is not None:
        gt_ok = np.isfinite(gt_keypoints).all(axis=(-1, -2))
        ok &= gt_ok
        ref = np.where(ok[..., None, None], gt_keypoints, 0.0)
        name = "acceleration error"
    else:
        ref = np.zeros_like(pred)
        name = "acceleration"
    if not ok.any():
        return FrameSeries(name, "mm/frame²", np.full(n, np.nan))
    metric = accel_error(pred, ref, protocol="wrist", valid=ok)
    return FrameSeries(name, metric.unit, metric.per_frame)


def penetration_series(result: Reconstruction, ready: np.ndarray | None = None) -> FrameSeries:
    """Deepest penetration per frame, either hand into the other: MMPD's per-frame value (``hands='both'``), NaN
    unless both hands are usable. In numpy, not through core_model.metrics' torch: the viewer recomputes it while a
    run streams in, on its GUI thread, where torch ops queue behind the model's (~40 ms instead of ~1 ms)."""
    ok = (result.valid & np.isfinite(result.depth).all(-1)).all(-1)
    if ready is not None:
        ok &= ready
    values = np.full(result.num_frames, np.nan)
    if ok.any():
        values[ok] = result.depth[ok].max(axis=(-1, -2)).astype(np.float64) * MM
    return FrameSeries("penetration depth", "mm", values)


def ground_truth_keypoints(results: list[Reconstruction]) -> np.ndarray | None:
    """The ground truth every result of one video is compared with: the first result carrying ``gt['keypoints']``
    (methods on the same clip share its ground truth; paper Fig. 7)."""
    for result in results:
        if "keypoints" in result.gt:
            return result.gt["keypoints"]
    return None
