"""A rigid start for refinement: each hand's orientation and wrist position re-solved from the detector's palm
landmarks (PnP), where that explains the landmarks much better than the network's camera.

Why: on real video the network can be turned by tens of degrees and off in scale (measured on the rock-sign clip:
skeletons twice the hand's size, turned by about 90 degrees). A gradient fit started there falls into the nearest
minimum: it curls the fingers to shrink the error instead of turning the hand. The palm's landmarks (wrist, thumb
base, four knuckles) move rigidly, so a perspective-n-point solution of the network's own hand against them gives
the orientation and the wrist's 3D position in closed form; the fit then refines articulation from there. Per-frame
solutions of a near-planar palm can flip, so the corrections are averaged over a few neighbouring frames.
"""

from __future__ import annotations

import cv2
import numpy as np
import roma
import torch

from core_model.refine.gating import run_ids

PALM = (0, 1, 5, 9, 13, 17)


def _median_error(points: np.ndarray, det: np.ndarray, seen: np.ndarray, K: np.ndarray) -> float:
    uv = points[:, :2] / np.maximum(points[:, 2:], 1e-3) * np.diag(K)[:2] + K[:2, 2]
    return float(np.median(np.linalg.norm(uv - det, axis=-1)[seen]))


def rigid_starts(local: np.ndarray, roots: np.ndarray, det: np.ndarray, use: np.ndarray, K: np.ndarray,
                 scale_px: np.ndarray, link: np.ndarray, *, accept: float, window: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per hand-frame a rotation C [B, T, 2, 3, 3] to apply to the network's hand about its wrist and the wrist's
    position [B, T, 2, 3] (the network's where it is kept), and where they were corrected [B, T, 2] bool.

    local [B, T, 2, 21, 3]: the network's keypoints minus its wrist, camera orientation; roots [B, T, 2, 3] its
    wrists; det [B, T, 2, 21, 2] pixels (finite where seen); use [B, T, 2] the hand-frames whose landmarks are
    trusted; K [B, T, 3, 3]; scale_px [B, T]; link [B, T-1] consecutive frames. A PnP solution is taken where
    its median landmark error is below ``accept`` times the network's; the corrections of taken frames are
    spread over their runs of linked frames (:func:`_spread`).
    """
    B, T = local.shape[:2]
    corr = np.tile(np.eye(3), (B, T, 2, 1, 1))
    out_roots = roots.copy()
    taken = np.zeros((B, T, 2), bool)
    for b, t, h in zip(*np.nonzero(use)):
        seen = np.isfinite(det[b, t, h]).all(-1)
        palm = [i for i in PALM if seen[i]]
        if len(palm) < 4:
            continue
        ok, rvec, tvec = cv2.solvePnP(local[b, t, h, palm].astype(np.float64), det[b, t, h, palm].astype(np.float64),
                                      K[b, t].astype(np.float64), None, flags=cv2.SOLVEPNP_SQPNP)
        if not ok or tvec[2, 0] <= 0:
            continue
        R = cv2.Rodrigues(rvec)[0]
        before = _median_error(local[b, t, h] + roots[b, t, h], det[b, t, h], seen, K[b, t])
        after = _median_error(local[b, t, h] @ R.T + tvec[:, 0], det[b, t, h], seen, K[b, t])
        if after < accept * before and after < 0.2 * scale_px[b, t]:
            corr[b, t, h], out_roots[b, t, h], taken[b, t, h] = R, tvec[:, 0], True
    if not taken.any():
        return corr, out_roots, taken
    return _spread(corr, out_roots - roots, taken, link, window, roots)


def _spread(corr: np.ndarray, offset: np.ndarray, taken: np.ndarray, link: np.ndarray, window: int,
            roots: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The taken corrections as one smooth field over each run of linked frames: on every frame of a run that
    has a taken frame, the chordal mean of the corrections (projected back onto rotations) and the mean wrist
    offset over the taken frames within ``window`` frames, else of the nearest taken frames. Why every frame:
    correcting only some frames of a run would put a step into the start and the prior's target, which the fit
    turns into acceleration (measured: Accel_E up by a quarter on the synthetic split)."""
    B, T = taken.shape[:2]
    run = run_ids(link)
    means = np.tile(np.eye(3), (B, T, 2, 1, 1))
    out_r = roots.copy()
    done = np.zeros((B, T, 2), bool)
    frames = np.arange(T)
    for b in range(B):
        for h in range(2):
            for r in np.unique(run[b]):
                members = frames[run[b] == r]
                sources = members[taken[b, members, h]]
                if len(sources) == 0:
                    continue
                for t in members:
                    gap = np.abs(sources - t)
                    near = sources[gap <= max(window, gap.min())]
                    means[b, t, h] = corr[b, near, h].mean(0)
                    out_r[b, t, h] = roots[b, t, h] + offset[b, near, h].mean(0)
                    done[b, t, h] = True
    return roma.special_procrustes(torch.from_numpy(means)).numpy(), out_r, done
