"""The two-hand region of every frame: which detected hand is the right one, where a hand the detector missed
is, and the square crop around both that the model sees.

Why offline over the whole sequence (detections are small: 2 x 21 points a frame): a hand the detector loses
while the hands clasp is placed from where it was *and* where it reappears, chirality is decided from the
evidence of a whole run of frames rather than one frame's label, and the crop is smoothed without lag.

Rules: a frame where the detector sees no hand has no region and is marked invalid (never guessed). On a frame
where it sees one hand, the other is placed from its own track (interpolated between its last and next sightings
within ``horizon`` seconds, or held at the nearer one), so the crop covers both hands: clasped hands, which a
per-hand detector often takes for one, are reconstructed, not dropped.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence

import numpy as np

from core_model.geometry.hand_box import hand_size
from core_model.handmodel.keypoints import PALM
from core_model.pipeline.detect import MEDIAPIPE, NO_WITNESS, PERCEPTION, FrameHands

NONE, INFERRED, DETECTED = 0, 1, 2


@dataclasses.dataclass
class HandRegions:
    """Per-frame hands and crop for N frames; hand 0 = right, 1 = left; pixels of the (upright) frame.

    bbox: [N, 4] float32 the square crop (x, y, side, side): top-left corner and size; NaN where no region.
    hand_boxes: [N, 2, 4] float32 each hand's box (x0, y0, x1, y1), detected or inferred; NaN where unknown.
    source: [N, 2] int8 how each hand is known: 0 not at all, 1 inferred from its track, 2 detected.
    det_keypoints2d: [N, 2, 21, 2] float32 the witnesses' landmarks (NaN where none saw such a hand, and on a
    keypoint the witness does not vouch for): the detector's own, or the perception's where ``witness`` says so.
    det_score: [N, 2] float32 the witness's confidence in the hand (NaN where none saw it).
    detector_hands: [N] int8 how many distinct hands the detector reported (0, 1, 2).
    detector_labelled: [N] bool (optional) the detector reported two hands *and* labelled one Left and one Right
    (what a per-hand pipeline that trusts the labels gets).
    witness: [N, 2] int8 (optional) which witness each hand's landmarks (``det_keypoints2d``) come from:
    ``detect.MEDIAPIPE``, ``detect.PERCEPTION`` or ``detect.NO_WITNESS``; None: MediaPipe wherever there are any.
    """

    bbox: np.ndarray
    hand_boxes: np.ndarray
    source: np.ndarray
    det_keypoints2d: np.ndarray
    det_score: np.ndarray
    detector_hands: np.ndarray
    detector_labelled: np.ndarray | None = None
    witness: np.ndarray | None = None

    @property
    def valid(self) -> np.ndarray:
        """[N, 2] bool: the hand is reconstructed on this frame (detected or inferred)."""
        return self.source > NONE

    @property
    def region_valid(self) -> np.ndarray:
        """[N] bool: the frame has a crop."""
        return np.isfinite(self.bbox).all(axis=1)

    def __len__(self) -> int:
        return len(self.bbox)

    def shares(self) -> dict[str, float]:
        """Share of frames with both hands in the region, with a region, and where the detector alone saw two;
        hands per frame that the perception witnessed (where it took part)."""
        n = max(len(self), 1)
        return {"two_hand_region": float(self.valid.all(axis=1).sum() / n),
                "any_region": float(self.region_valid.sum() / n),
                "detector_two_hands": float((self.detector_hands == 2).sum() / n),
                **({"perception_hands": float((self.witness == PERCEPTION).sum() / n)}
                   if self.witness is not None else {}),
                **({"detector_left_right": float(self.detector_labelled.sum() / n)}
                   if self.detector_labelled is not None else {})}


def _logit(p: np.ndarray | float) -> np.ndarray:
    p = np.clip(p, 1e-3, 1 - 1e-3)
    return np.log(p) - np.log1p(-p)


def _centre(keypoints: np.ndarray) -> np.ndarray:
    return np.nanmean(keypoints[..., PALM, :], axis=-2)  # wrist and finger bases: the palm


def _assign_frame(hands: FrameHands, memory: list[tuple[np.ndarray, int, float] | None], t: int,
                  fps: float, label_weight: float) -> tuple[int, ...]:
    """Slot (0 right, 1 left) of each detection on frame t: the labelling that best fits MediaPipe's handedness
    and each slot's last position (a Gaussian motion model whose spread grows with the time since)."""
    options: list[tuple[int, ...]] = [(0, 1), (1, 0)] if len(hands) == 2 else [(0,), (1,)]
    best, best_cost = options[0], np.inf
    for slots in options:
        cost = 0.0
        for det, slot in enumerate(slots):
            p_right = float(hands.right_prob[det])
            cost -= label_weight * np.log(max(p_right if slot == 0 else 1 - p_right, 1e-3))
            seen = memory[slot]
            if seen is not None:
                pos, when, size = seen
                spread = size * (0.5 + 1.5 * (t - when) / fps)  # palm sizes: 0.5 + 1.5 per second
                cost += 0.5 * float(np.sum((_centre(hands.keypoints[det]) - pos) ** 2)) / spread**2
        if cost < best_cost:
            best, best_cost = slots, cost
    return best


@dataclasses.dataclass
class SlotHands:
    """The hands of N frames by slot (0 right, 1 left): keypoints [N, 2, 21, 2], right-probability evidence
    [N, 2] and scores [N, 2] (NaN where absent), witness [N, 2] int8 (``detect.NO_WITNESS`` where absent)."""

    keypoints: np.ndarray
    right_prob: np.ndarray
    score: np.ndarray
    witness: np.ndarray


def assign_hands(frames: Sequence[FrameHands], fps: float, label_weight: float = 1.0) -> SlotHands:
    """Per-frame detections -> the hands by slot. A forward pass links detections to slots by motion and labels;
    then each run of frames linked by motion keeps or swaps its slots as a whole, whichever the witnesses' labels
    over the whole run favour (a single frame's label is unreliable when hands clasp)."""
    n = len(frames)
    keypoints = np.full((n, 2, 21, 2), np.nan, np.float32)
    right_prob = np.full((n, 2), np.nan, np.float32)
    score = np.full((n, 2), np.nan, np.float32)
    witness = np.full((n, 2), NO_WITNESS, np.int8)
    memory: list[tuple[np.ndarray, int, float] | None] = [None, None]
    run_of = np.full(n, -1)
    run, last_seen = -1, -(10**9)
    for t, hands in enumerate(frames):
        if len(hands) == 0:
            continue
        if t - last_seen > fps:  # more than a second without any hand: identities start over
            memory, run = [None, None], run + 1
        last_seen, run_of[t] = t, run
        for det, slot in enumerate(_assign_frame(hands, memory, t, fps, label_weight)):
            keypoints[t, slot] = hands.keypoints[det]
            right_prob[t, slot] = hands.right_prob[det]
            score[t, slot] = hands.score[det]
            witness[t, slot] = hands.source[det]
            memory[slot] = (_centre(hands.keypoints[det]), t, float(hand_size(hands.keypoints[det])))
    for r in range(run + 1):
        frames_in = run_of == r
        evidence = _logit(right_prob[frames_in])  # >0: looks right
        keep = np.nansum(evidence[:, 0]) - np.nansum(evidence[:, 1])
        if keep < 0:  # the run as a whole says the slots are the other way round
            keypoints[frames_in] = keypoints[frames_in][:, ::-1]
            right_prob[frames_in] = right_prob[frames_in][:, ::-1]
            score[frames_in] = score[frames_in][:, ::-1]
            witness[frames_in] = witness[frames_in][:, ::-1]
    return SlotHands(keypoints, right_prob, score, witness)


def landmark_boxes(keypoints: np.ndarray, pad: float = 0.12) -> np.ndarray:
    """[..., 21, 2] -> [..., 4] (x0, y0, x1, y1): the landmarks' extent grown by ``pad`` hand sizes each side
    (landmarks are joint centres; skin and fingertips reach beyond them). NaN stays NaN."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN hands stay NaN
        lo, hi = np.nanmin(keypoints, axis=-2), np.nanmax(keypoints, axis=-2)
    margin = pad * np.hypot(*np.moveaxis(hi - lo, -1, 0))[..., None]
    return np.concatenate([lo - margin, hi + margin], axis=-1).astype(np.float32)


def _touches_border(box: np.ndarray, width: int, height: int, tol: float = 4.0) -> bool:
    return bool(box[0] <= tol or box[1] <= tol or box[2] >= width - tol or box[3] >= height - tol)


def fill_missing(boxes: np.ndarray, any_hand: np.ndarray, fps: float, width: int, height: int,
                 horizon_s: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Place each hand the detector missed on a frame where it saw the other one: linear between its sightings
    before and after (within ``horizon_s``), else held at the one sighting in reach unless that box touched the
    frame border (the hand probably left). boxes [N, 2, 4] NaN where missed -> (filled boxes, source [N, 2])."""
    source = np.where(np.isfinite(boxes).all(axis=2), DETECTED, NONE).astype(np.int8)
    out = boxes.copy()
    reach = max(1, round(horizon_s * fps))
    for hand in range(2):
        seen = np.flatnonzero(source[:, hand] == DETECTED)
        if not len(seen):
            continue
        for t in np.flatnonzero((source[:, hand] == NONE) & any_hand):
            k = np.searchsorted(seen, t)
            before = seen[k - 1] if k > 0 and t - seen[k - 1] <= reach else None
            after = seen[k] if k < len(seen) and seen[k] - t <= reach else None
            if before is not None and after is not None:
                w = (t - before) / (after - before)
                out[t, hand] = (1 - w) * boxes[before, hand] + w * boxes[after, hand]
            elif before is not None or after is not None:
                near = before if before is not None else after
                if _touches_border(boxes[near, hand], width, height):
                    continue
                out[t, hand] = boxes[near, hand]
            else:
                continue
            source[t, hand] = INFERRED
    return out, source


def square_regions(hand_boxes: np.ndarray, margin: float = 0.2, single_hand_scale: float = 1.6,
                   smooth_frames: float = 2.0) -> np.ndarray:
    """Per-hand boxes [N, 2, 4] (NaN where unknown) -> square crops [N, 4] (x, y, side, side).

    The crop holds the union of both boxes, ``margin`` of its longer side added around. With one hand only, its
    box is grown ``single_hand_scale`` times about its centre, for the context a model of two hands needs.
    Centres and log-sides are smoothed with a Gaussian of ``smooth_frames`` (sigma) within each run of frames
    that have a crop; runs are never smoothed across a gap."""
    if hand_boxes.ndim != 3 or hand_boxes.shape[1:] != (2, 4):
        raise ValueError(f"hand_boxes: expected [N, 2, 4], got {hand_boxes.shape}")
    n = len(hand_boxes)
    have = np.isfinite(hand_boxes).all(axis=2)
    centre = np.full((n, 2), np.nan)
    side = np.full(n, np.nan)
    for t in range(n):
        boxes = hand_boxes[t][have[t]]
        if not len(boxes):
            continue
        lo, hi = boxes[:, :2].min(axis=0), boxes[:, 2:].max(axis=0)
        extent = float((hi - lo).max())
        if len(boxes) == 1:
            extent *= single_hand_scale
        centre[t], side[t] = (lo + hi) / 2, max(extent * (1 + 2 * margin), 8.0)
    if smooth_frames > 0:
        centre, side = _smooth_runs(centre, side, smooth_frames)
    return np.column_stack([centre - side[:, None] / 2, side, side]).astype(np.float32)


def _smooth_runs(centre: np.ndarray, side: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    radius = max(1, round(3 * sigma))
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    valid = np.isfinite(side)
    values = np.column_stack([centre, np.log(np.where(valid, side, 1.0))])
    out = values.copy()
    edges = np.flatnonzero(np.diff(np.r_[0, valid.astype(int), 0]))
    for start, stop in zip(edges[::2], edges[1::2]):
        seg = values[start:stop]
        for t in range(len(seg)):
            lo, hi = max(0, t - radius), min(len(seg), t + radius + 1)
            w = kernel[lo - t + radius: hi - t + radius]
            out[start + t] = (w[:, None] * seg[lo:hi]).sum(axis=0) / w.sum()
    out[~valid] = np.nan
    return out[:, :2], np.exp(out[:, 2])


def regions_from_detections(frames: Sequence[FrameHands], fps: float, width: int, height: int,
                            horizon_s: float = 1.0, smooth_frames: float = 2.0) -> HandRegions:
    """The whole chain: slots by chirality and motion, missed hands placed from their tracks, square crops."""
    if not (np.isfinite(fps) and fps > 0):
        raise ValueError(f"fps: expected a positive frame rate, got {fps!r}")
    slots = assign_hands(frames, fps)
    boxes = landmark_boxes(slots.keypoints)
    any_hand = np.array([len(h) > 0 for h in frames], bool)
    detector = [h.take(np.flatnonzero(h.source == MEDIAPIPE)) for h in frames]  # what the detector alone saw
    count = np.array([len(h) for h in detector], np.int8)
    labelled = np.array([len(h) == 2 and (h.right_prob[0] > 0.5) != (h.right_prob[1] > 0.5) for h in detector],
                        bool)
    filled, source = fill_missing(boxes, any_hand, fps, width, height, horizon_s)
    bbox = square_regions(filled, smooth_frames=smooth_frames)
    return HandRegions(bbox, filled.astype(np.float32), source, slots.keypoints, slots.score, count, labelled,
                       witness=slots.witness)


def parse_roi(text: str) -> tuple[float, float, float, float]:
    """``"x,y,w,h"`` (pixels) -> a tuple; ValueError naming --roi otherwise."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or values[2] <= 0 or values[3] <= 0 or not np.isfinite(values).all():
        raise ValueError(f"--roi: expected x,y,w,h in pixels with w, h > 0, got {text!r}")
    return values  # type: ignore[return-value]


def regions_from_roi(n_frames: int, roi: tuple[float, float, float, float], width: int, height: int,
                     detections: HandRegions | None = None) -> HandRegions:
    """A fixed manual region on every frame (the square around ``roi``). With ``detections`` the detector's
    landmarks and validity are kept for the baseline; without, every frame counts as showing both hands."""
    x, y, w, h = roi
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        raise ValueError(f"--roi: {roi} lies outside the {width}x{height} frame")
    side = max(w, h)
    bbox = np.tile(np.array([x + w / 2 - side / 2, y + h / 2 - side / 2, side, side], np.float32), (n_frames, 1))
    box = np.array([x, y, x + w, y + h], np.float32)
    if detections is not None:
        if len(detections) != n_frames:
            raise ValueError(f"detections: {len(detections)} frames, expected {n_frames}")
        return dataclasses.replace(detections, bbox=bbox)
    return HandRegions(bbox, np.tile(box, (n_frames, 2, 1)), np.full((n_frames, 2), INFERRED, np.int8),
                       np.full((n_frames, 2, 21, 2), np.nan, np.float32), np.full((n_frames, 2), np.nan, np.float32),
                       np.zeros(n_frames, np.int8))


def regions_from_boxes(hand_boxes: np.ndarray, smooth_frames: float = 0.0) -> HandRegions:
    """Ground-truth per-hand boxes [N, 2, 4] (x0, y0, x1, y1; NaN where a hand is absent) -> regions, built the
    same way as from detections (no smoothing by default: the boxes are exact)."""
    hand_boxes = np.asarray(hand_boxes, np.float32)
    if hand_boxes.ndim != 3 or hand_boxes.shape[1:] != (2, 4):
        raise ValueError(f"hand_boxes: expected [N, 2, 4], got {hand_boxes.shape}")
    n = len(hand_boxes)
    source = np.where(np.isfinite(hand_boxes).all(axis=2), DETECTED, NONE).astype(np.int8)
    return HandRegions(square_regions(hand_boxes, smooth_frames=smooth_frames), hand_boxes, source,
                       np.full((n, 2, 21, 2), np.nan, np.float32), np.full((n, 2), np.nan, np.float32),
                       np.zeros(n, np.int8))


def landmarks_in_crops(keypoints: np.ndarray, bbox: np.ndarray) -> np.ndarray:
    """Frame-pixel landmarks [N, ..., 2] (continuous coordinates, as the detector gives them) and crops [N, 4] ->
    normalised crop coordinates, the crop's edges at -1 and 1 (NaN stays NaN, and so does a frame without crop)."""
    bbox = np.asarray(bbox, np.float64).reshape((len(bbox),) + (1,) * (np.ndim(keypoints) - 2) + (4,))
    return (2.0 * (np.asarray(keypoints, np.float64) - bbox[..., :2]) / bbox[..., 2:3] - 1.0).astype(np.float32)


def crop_frame(frame: np.ndarray, bbox: np.ndarray, size: int) -> np.ndarray:
    """The square crop ``bbox`` (x, y, side, side) of an RGB frame resized to ``size`` x ``size``; parts outside
    the frame are black. The crop is cut first and then resized with area averaging, so a small crop of an 8K
    frame does not alias and no full-frame copy is made."""
    import cv2

    bbox = np.asarray(bbox, np.float64)
    if bbox.shape != (4,) or not np.isfinite(bbox).all() or bbox[2] <= 0:
        raise ValueError(f"bbox: expected a finite crop (x, y, side, side), got {bbox}")
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"size: expected a positive integer, got {size!r}")
    height, width = frame.shape[:2]
    x0, y0 = int(np.floor(bbox[0])), int(np.floor(bbox[1]))
    side = max(1, round(float(bbox[2])))
    canvas = np.zeros((side, side) + frame.shape[2:], frame.dtype)
    fx0, fy0, fx1, fy1 = max(x0, 0), max(y0, 0), min(x0 + side, width), min(y0 + side, height)
    if fx1 > fx0 and fy1 > fy0:
        canvas[fy0 - y0: fy1 - y0, fx0 - x0: fx1 - x0] = frame[fy0:fy1, fx0:fx1]
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(canvas, (size, size), interpolation=interpolation)
