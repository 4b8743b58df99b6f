"""Which detected landmarks the refinement may fit: a wrong detection must never drag a hand.

MediaPipe fails in a few typical ways on two interacting hands: it swaps the hands' labels, reports one blob for
two clasped hands (both slots on the same pixels), or puts a hand somewhere the other evidence does not support.
Each check below compares the detection with something independent of it: the network's prediction (where each
hand is), the other slot, and the detection's own track over the neighbouring frames.
"""

from __future__ import annotations

import warnings

import numpy as np

from core_model.geometry.hand_box import hand_size
from core_model.handmodel.keypoints import PALM

USED, ABSENT, BLOB, SWAPPED, OFF_TRACK, TOO_FAR, RESIDUAL = range(7)
REASONS = ("used", "absent or not confident", "one blob for two hands", "hands swapped against the prediction",
           "closer to the other hand's track", "too far from the prediction", "residual too large after fitting")
MIN_LANDMARKS = 8
"""A hand's detection counts when this many landmarks, the palm's five among them, are finite."""


def _centre(keypoints: np.ndarray) -> np.ndarray:
    return keypoints[..., PALM, :].mean(-2)


def gate_detections(det_px: np.ndarray, det_score: np.ndarray, pred_px: np.ndarray, valid: np.ndarray,
                    link: np.ndarray, *, min_score: float = 0.5, swap_margin: float = 0.6,
                    blob_ratio: float = 0.35, max_shift: float = 2.0, track_frames: int = 2
                    ) -> np.ndarray:
    """Reason code [B, T, 2] int8 per hand-frame (``USED`` where the landmarks may be fitted).

    det_px [B, T, 2, 21, 2] pixels (NaN where absent; single NaN landmarks are dropped fingers); det_score
    [B, T, 2] (NaN where absent); pred_px the prediction's keypoints projected the same way; valid [B, T, 2] bool
    (hands being refined); link [B, T-1] bool (frames t and t+1 consecutive). Thresholds are in hand sizes (the
    detection's box diagonal).
    """
    det_px, pred_px = np.asarray(det_px, np.float64), np.asarray(pred_px, np.float64)
    if det_px.shape != pred_px.shape or det_px.shape[-3:] != (2, 21, 2):
        raise ValueError(f"det_px, pred_px: expected equal shapes [B, T, 2, 21, 2], got {det_px.shape} and "
                         f"{pred_px.shape}")
    score = np.nan_to_num(np.asarray(det_score, np.float64), nan=0.0)
    seen = np.isfinite(det_px).all(-1)                                         # [B, T, 2, 21]
    present = (seen.sum(-1) >= MIN_LANDMARKS) & seen[..., PALM].all(-1) & (score >= min_score) & np.asarray(
        valid, bool)
    reason = np.where(present, USED, ABSENT).astype(np.int8)
    safe = np.where(present[..., None, None] & seen[..., None], det_px, np.nan)
    size = np.where(present, hand_size(safe), 1.0)
    safe = np.nan_to_num(safe)
    centre = _centre(safe)                                                     # [B, T, 2, 2]
    pred_centre = _centre(pred_px)

    both = present.all(-1)
    gap = np.linalg.norm(centre[..., 0, :] - centre[..., 1, :], axis=-1)
    joint_gap = np.linalg.norm(safe[..., 0, PALM, :] - safe[..., 1, PALM, :], axis=-1).mean(-1)
    blob = both & (gap < blob_ratio * size.max(-1)) & (joint_gap < blob_ratio * size.max(-1))
    reason[blob] = BLOB

    # Against the prediction: the other hand's predicted place fits clearly better than this hand's.
    d_same = np.linalg.norm(centre - pred_centre, axis=-1)                     # [B, T, 2]
    d_cross = np.linalg.norm(centre - pred_centre[..., ::-1, :], axis=-1)
    separable = np.linalg.norm(pred_centre[..., 0, :] - pred_centre[..., 1, :], axis=-1) > 0.5 * size.max(-1)
    pair_swap = both & (d_cross.sum(-1) < swap_margin * d_same.sum(-1))
    single_swap = present & (d_cross < swap_margin * d_same)
    swap = separable[..., None] & np.where(both[..., None], pair_swap[..., None], single_swap)
    # A prediction that contradicts most of a sequence's detections cannot judge them (an untrained or lost
    # network): then only the detections' own track is checked.
    judged = present.any(-1).sum(-1)
    overruled = swap.any(-1).sum(-1) > 0.5 * np.maximum(judged, 1)                  # [B]
    swap &= ~overruled[:, None, None]
    reason[swap & (reason == USED)] = SWAPPED
    reason[(d_same > max_shift * size) & (reason == USED)] = TOO_FAR

    # Against the detection's own track: nearer the other slot's recent/next positions than its own.
    if track_frames > 0 and det_px.shape[1] > 1:
        own, other = _track_medians(centre, present, link, track_frames)
        d_own = np.linalg.norm(centre - own, axis=-1)
        d_other = np.linalg.norm(centre - other, axis=-1)
        off = present & np.isfinite(d_own) & np.isfinite(d_other) & (d_other < swap_margin * d_own)
        reason[off & (reason == USED)] = OFF_TRACK
    return reason


def run_ids(link: np.ndarray) -> np.ndarray:
    """[B, T] the index of each frame's run of linked frames, from link [B, T-1] (frames t and t+1 consecutive)."""
    link = np.asarray(link, bool)
    return np.concatenate([np.zeros((len(link), 1), np.int64), np.cumsum(~link, axis=1)], axis=1)


def _track_medians(centre: np.ndarray, present: np.ndarray, link: np.ndarray, k: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Median centre [B, T, 2, 2] of each slot over the k linked neighbours on each side (the frame itself left
    out), and of the other slot; NaN where no neighbour has it."""
    T = present.shape[1]
    run = run_ids(link)
    values = np.where(present[..., None], centre, np.nan)
    stack = []
    for shift in [s for s in range(-k, k + 1) if s != 0]:
        idx = np.clip(np.arange(T) + shift, 0, T - 1)
        same_run = (run[:, idx] == run) & (np.arange(T) + shift >= 0) & (np.arange(T) + shift < T)
        stack.append(np.where(same_run[..., None, None], values[:, idx], np.nan))
    stack = np.stack(stack)                                                    # [2k, B, T, 2, 2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        own = np.nanmedian(stack, axis=0)
    return own, own[..., ::-1, :]
