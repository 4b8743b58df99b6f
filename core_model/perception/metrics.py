"""Scores of a perception against labelled crops: per-hand mask IoU, 2D PCK of visible keypoints, right/left swaps;
and the same with chirality forgiven (both hands' pixels as one mask; each crop's hands matched either way), which
separates finding the hands from telling right from left."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from core_model.geometry.hand_box import box_side
from core_model.perception.model import Perception
from core_model.perception.realval import PCK_THRESHOLD


@dataclasses.dataclass
class CropScores:
    """Accumulated over crops. ``summary()`` gives the figures the issue's targets are stated in."""

    intersection: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(2))
    union: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(2))
    iou_sum: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(2))
    iou_count: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(2))
    correct: int = 0
    visible: int = 0
    two_hand_frames: int = 0
    swapped: int = 0
    presence_right: int = 0
    presence_total: int = 0
    hand_intersection: float = 0.0
    hand_union: float = 0.0
    correct_any_side: int = 0

    def add(self, pred: Perception, labels: torch.Tensor, keypoints: torch.Tensor, visible: torch.Tensor,
            presence: torch.Tensor, threshold: float = PCK_THRESHOLD) -> None:
        """labels [N, s, s]; keypoints [N, 2, 21, 2] crop pixels; visible [N, 2, 21] bool; presence [N, 2]."""
        lab = labels.cpu().numpy()
        out = pred.labels.cpu().numpy()
        present = presence.cpu().numpy() > 0.5
        for h in range(2):
            a, b = lab == h + 1, out == h + 1
            inter, uni = (a & b).sum((1, 2)), (a | b).sum((1, 2))
            self.intersection[h] += inter.sum()
            self.union[h] += uni.sum()
            self.iou_sum[h] += (inter / np.maximum(uni, 1))[present[:, h]].sum()
            self.iou_count[h] += present[:, h].sum()
        both_hands_truth, both_hands_pred = lab > 0, out > 0
        self.hand_intersection += float((both_hands_truth & both_hands_pred).sum())
        self.hand_union += float((both_hands_truth | both_hands_pred).sum())
        truth = keypoints.cpu().numpy().astype(np.float64)
        guess = pred.keypoints.cpu().numpy().astype(np.float64)
        vis = visible.cpu().numpy()
        size = box_side(truth)  # [N, 2], every keypoint of the hand (amodal)
        dist = np.linalg.norm(guess - truth, axis=-1)
        hits = (dist <= threshold * size[..., None]) & vis
        self.correct += int(hits.sum())
        crossed_hits = (np.linalg.norm(guess[:, ::-1] - truth, axis=-1) <= threshold * size[..., None]) & vis
        self.correct_any_side += int(np.maximum(hits.sum((1, 2)), crossed_hits.sum((1, 2))).sum())
        self.visible += int(vis.sum())
        both = present.all(1) & (vis.sum(-1) >= 3).all(1)
        counts = np.maximum(vis.sum(-1), 1)
        straight = (np.where(vis, dist, 0).sum(-1) / counts).sum(-1)
        crossed = (np.where(vis, np.linalg.norm(guess[:, ::-1] - truth, axis=-1), 0).sum(-1) / counts).sum(-1)
        self.two_hand_frames += int(both.sum())
        self.swapped += int((both & (crossed < straight)).sum())
        found = pred.presence.cpu().numpy() > 0.5
        self.presence_right += int((found == present).sum())
        self.presence_total += found.size

    def summary(self) -> dict[str, float]:
        iou = self.iou_sum / np.maximum(self.iou_count, 1)
        return {"iou_right": float(iou[0]), "iou_left": float(iou[1]),
                "iou_hands": self.hand_intersection / max(self.hand_union, 1.0),
                "pck": self.correct / max(self.visible, 1),
                "pck_any_side": self.correct_any_side / max(self.visible, 1),
                "not_swapped": 1 - self.swapped / max(self.two_hand_frames, 1),
                "presence_acc": self.presence_right / max(self.presence_total, 1)}
