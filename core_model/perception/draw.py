"""Perception drawn over a frame: masks tinted per hand, keypoints as skeletons (faint where not confident), the crop
box, and the presence scores. ``interhand perceive`` and the contact sheets draw with it."""

from __future__ import annotations

import cv2
import numpy as np

from core_model.handmodel.keypoints import BONES
from core_model.perception.infer import FramePerception
from core_model.render import HAND_COLOURS, hex_rgb


def draw_hands(image: np.ndarray, keypoints: np.ndarray, confidence: np.ndarray | None = None,
               colours: tuple[tuple[int, int, int], ...] | None = None, thick: int | None = None) -> np.ndarray:
    """Skeletons of keypoints [2, 21, 2] (NaN skipped) over a copy of ``image``; points with confidence under 0.5
    drawn hollow."""
    out = np.ascontiguousarray(image).copy()
    colours = colours or tuple(hex_rgb(c) for c in HAND_COLOURS)
    thick = thick or max(1, round(min(out.shape[:2]) / 300))
    for h in range(2):
        pts = keypoints[h]
        for a, b in BONES:
            if np.isfinite(pts[[a, b]]).all():
                cv2.line(out, tuple(np.round(pts[a]).astype(int)), tuple(np.round(pts[b]).astype(int)), colours[h],
                         thick, cv2.LINE_AA)
        for k, p in enumerate(pts):
            if np.isfinite(p).all():
                solid = confidence is None or confidence[h, k] >= 0.5
                cv2.circle(out, tuple(np.round(p).astype(int)), thick + 1, colours[h], -1 if solid else 1,
                           cv2.LINE_AA)
    return out


def draw_perception(image: np.ndarray, result: FramePerception, box: bool = True) -> np.ndarray:
    """A copy of ``image`` (RGB uint8 [H, W, 3]) with the masks, keypoints, crop and presence of ``result``."""
    h, w = image.shape[:2]
    labels = result.frame_labels(h, w)
    out = image.astype(np.float32)
    for hand in range(2):
        sel = labels == hand + 1
        out[sel] = 0.55 * out[sel] + 0.45 * np.array(hex_rgb(HAND_COLOURS[hand]), np.float32)
    out = draw_hands(out.astype(np.uint8), result.keypoints, result.confidence)
    thick = max(1, round(min(h, w) / 300))
    if box:
        x, y, side = result.box
        cv2.rectangle(out, (round(x), round(y)), (round(x + side), round(y + side)), (255, 255, 255), thick)
        cv2.rectangle(out, (round(x) + thick, round(y) + thick), (round(x + side) - thick, round(y + side) - thick),
                      (0, 0, 0), 1)
    text = f"R {result.presence[0]:.2f}  L {result.presence[1]:.2f}  R/L sure {result.handedness:.2f}"
    scale = max(0.4, min(h, w) / 700)
    cv2.putText(out, text, (6, int(22 * scale / 0.6)), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, (6, int(22 * scale / 0.6)), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1,
                cv2.LINE_AA)
    return out
