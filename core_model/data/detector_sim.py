"""A simulated 2D hand detector: the ground-truth keypoints of a window spoiled the way MediaPipe spoils real ones,
so that a landmark-guided network trained on renders sees what it will see on real video, and so that test-time
refinement can be measured against realistic detections.

Failure modes (rates per hand-frame, drawn in bursts of frames because a detector's errors persist): pixel noise;
occluded landmarks (from the renderer's visibility) dropped or misplaced; a hand missed; the two hands' labels
swapped; one blob reported for both hands. The palm landmarks (wrist and finger bases) are always found when the
hand is: a detector that sees a hand places its palm.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from core_model.handmodel.keypoints import PALM


@dataclasses.dataclass(frozen=True)
class DetectorErrors:
    """Rates of the simulated detector's failures (per hand-frame unless said), drawn in bursts of frames."""

    noise_px: float = 0.008             # Gaussian noise, share of the crop side
    occluded_drop: float = 0.5          # occluded landmark: dropped (NaN) with this chance, else misplaced
    occluded_error: float = 0.08        # misplaced occluded landmark: offset, share of the crop side
    miss: float = 0.08                  # hand not detected
    swap: float = 0.05                  # frame with the two hands' labels swapped
    blob: float = 0.03                  # frame with one blob reported for both hands
    burst: int = 3                      # mean burst length in frames

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "burst":
                if not isinstance(value, int) or value < 1:
                    raise ValueError(f"burst: expected a positive number of frames, got {value!r}")
            elif not value >= 0:
                raise ValueError(f"{field.name}: expected >= 0, got {value!r}")


def _bursts(rng: np.random.Generator, shape: tuple[int, ...], rate: float, burst: int) -> np.ndarray:
    """Bool [T, ...] with about ``rate`` of entries set, in runs of about ``burst`` frames."""
    starts = rng.random(shape) < rate / burst
    out = np.zeros(shape, bool)
    for t in np.argwhere(starts):
        length = rng.integers(1, 2 * burst)
        out[(slice(t[0], t[0] + length), *t[1:])] = True
    return out


def simulate_detections(kp2d: np.ndarray, visible: np.ndarray, crop: np.ndarray, rng: np.random.Generator,
                        err: DetectorErrors, valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """kp2d [T, 2, 21, 2] ground-truth pixels, visible [T, 2, 21] bool, crop [T] crop sides in pixels (the scale
    of the errors) -> (landmarks [T, 2, 21, 2] float32 with NaN where not detected, scores [T, 2] with NaN for
    a missed hand). ``valid`` [T, 2, 21]: joints with ground truth at all (others are never detected)."""
    kp2d = np.asarray(kp2d, np.float64)
    T = len(kp2d)
    if kp2d.shape != (T, 2, 21, 2) or np.shape(visible) != (T, 2, 21) or np.shape(crop) != (T,):
        raise ValueError(f"kp2d, visible, crop: expected shapes (T, 2, 21, 2), (T, 2, 21), (T,), got "
                         f"{kp2d.shape}, {np.shape(visible)}, {np.shape(crop)}")
    s = np.asarray(crop, np.float64)[:, None, None, None]
    det = kp2d + rng.normal(0, err.noise_px, kp2d.shape) * s
    occluded = ~np.asarray(visible, bool)
    occluded[:, :, PALM] = False
    drop = occluded & (rng.random(occluded.shape) < err.occluded_drop)
    wrong = occluded & ~drop
    det[wrong] += rng.normal(0, err.occluded_error, (int(wrong.sum()), 2)) * np.broadcast_to(s, det.shape)[wrong]
    det[drop] = np.nan
    if valid is not None:
        det[~np.asarray(valid, bool)] = np.nan
    score = np.clip(rng.normal(0.93, 0.04, (T, 2)), 0, 1)
    score[np.isnan(det).all(axis=(-1, -2))] = np.nan
    swap = _bursts(rng, (T,), err.swap, err.burst)
    det[swap], score[swap] = det[swap][:, ::-1], score[swap][:, ::-1]
    blob = _bursts(rng, (T,), err.blob, err.burst)
    keep = rng.integers(0, 2, T)
    det[blob] = det[blob, keep[blob]][:, None]
    score[blob] = score[blob, keep[blob]][:, None]
    miss = _bursts(rng, (T, 2), err.miss, err.burst)
    det[miss], score[miss] = np.nan, np.nan
    return det.astype(np.float32), score.astype(np.float32)
