"""Our two-hand perception as a second witness beside MediaPipe's hand landmarker, frame by frame.

MediaPipe is the first witness: where it reports two distinct hands, its landmarks are kept. Where it reports
fewer (it misses a hand, or sees two clasped hands as one), the perception network (``core_model.perception``)
looks at the frame, and each hand it finds that is not one MediaPipe reported joins the frame's hands, marked as
the perception's (``detect.PERCEPTION``). The rest of pass 1 (slots by chirality and motion, tracks, crops:
``region.py``) then treats the two witnesses alike, and the result file records per hand and frame which one
was used (``witness``).

Why only where MediaPipe reports fewer than two hands: where it sees both, it is the better witness on every clip
measured (BENCHMARKS.md, "Two-hand perception"), and running the perception on every frame would cost 15-45 ms a
frame on one core.
"""

from __future__ import annotations

import numpy as np
import torch

from core_model.geometry.hand_box import hand_size
from core_model.handmodel.keypoints import PALM
from core_model.perception.infer import FramePerceiver
from core_model.perception.model import PerceptionNet
from core_model.pipeline.detect import PERCEPTION, FrameHands

SAME_HAND = 0.5
"""Palm centres closer than this many hand sizes: the two witnesses report the same hand."""
MASK_SIZE = 80
"""Side of the stored masks (the perception's segmentation at its native stride 2 over the 160-px crop)."""
MIN_KEYPOINT_CONFIDENCE = 0.3
"""Perception keypoints below this confidence are not reported (NaN): the witness does not vouch for them."""


class PerceptionWitness:
    """Completes MediaPipe's hands on a frame with the hands the perception network finds.

    ``model``: a :class:`PerceptionNet` (the shipped one: ``load_perception(asset_path(*perceive.SHIPPED))``).
    ``frames_asked`` counts the frames it looked at."""

    def __init__(self, model: PerceptionNet, device: str | torch.device = "cpu") -> None:
        self.perceiver = FramePerceiver(model, device)
        self.frames_asked = 0

    def reset(self) -> None:
        """A new video: the perceiver's track starts over."""
        self.perceiver.reset()
        self.frames_asked = 0

    def complete(self, frame: np.ndarray, hands: FrameHands) -> FrameHands:
        """``hands`` (MediaPipe's on ``frame``, RGB uint8 [H, W, 3], in its pixels) plus the hands only the
        perception sees, at most two in all; unchanged where MediaPipe already reports two."""
        if len(hands) >= 2:
            return hands
        self.frames_asked += 1
        seen = self.perceiver(frame)
        extra = []
        for h in np.flatnonzero(seen.found):
            keypoints = np.where((seen.confidence[h] >= MIN_KEYPOINT_CONFIDENCE)[:, None], seen.keypoints[h], np.nan)
            if np.isfinite(keypoints).all(-1).sum() < 6 or any(same_hand(keypoints, k) for k in hands.keypoints):
                continue
            right = seen.handedness if h == 0 else 1.0 - seen.handedness
            confident = seen.confidence[h][np.isfinite(keypoints).all(-1)]
            extra.append((keypoints, right, float(seen.presence[h] * confident.mean())))
        if not extra:
            return hands
        extra.sort(key=lambda item: -item[2])
        extra = extra[:2 - len(hands)]
        found = FrameHands(np.stack([e[0] for e in extra]).astype(np.float32),
                           np.array([e[1] for e in extra], np.float32), np.array([e[2] for e in extra], np.float32),
                           np.full(len(extra), PERCEPTION, np.int8))
        return hands.merged(found)


    def segment(self, frame: np.ndarray, bbox: np.ndarray) -> np.ndarray:
        """The hands' masks over the square crop ``bbox`` (x, y, side, side frame pixels) of ``frame``: [M, M]
        int8 labels (0 background, 1 right, 2 left), M = :data:`MASK_SIZE` (a given crop leaves the track of
        :meth:`complete` alone)."""
        seen = self.perceiver(frame, np.asarray(bbox, np.float64)[:3])
        step = seen.crop_labels.shape[0] // MASK_SIZE
        return seen.crop_labels[step // 2::step, step // 2::step][:MASK_SIZE, :MASK_SIZE].astype(np.int8)


def same_hand(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two reports [21, 2] (NaN where not vouched for) are of one hand: palm centres within
    :data:`SAME_HAND` of the smaller hand's size."""
    with np.errstate(all="ignore"):
        ca, cb = np.nanmean(a[PALM], 0), np.nanmean(b[PALM], 0)
    if not (np.isfinite(ca).all() and np.isfinite(cb).all()):
        return False
    scale = float(np.nanmin([hand_size(a), hand_size(b)]))
    return bool(np.hypot(*(ca - cb)) < SAME_HAND * scale)
