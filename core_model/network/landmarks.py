"""The landmark-guided input: a 2D hand detector's 21 landmarks per hand, embedded and added to each hand's
feature f^h before the temporal encoder (a departure from the paper, preset ``lite-landmarks``).

Why coordinates through an MLP rather than heatmap channels beside the RGB crop: on CPU the encoder's early
layers stay frozen at their ImageNet weights (``--freeze-stride``), so new input channels at the stem could not
be learnt; and on cached features of the frozen encoder a coordinate MLP learnt wrist-relative 3D keypoints from
noisy 2D landmarks to 33 mm in 1,500 steps, where a heatmap CNN was at 78 mm after 750 steps at 20x the cost and
the RGB features alone stayed near the constant's 94 mm (BENCHMARKS.md, "Learnability"). The coordinates carry
exactly what heatmaps would, and what the network sees is the same on renders and on real video.

Input format ``[..., 2, 21, 3]`` (hand 0 = right, 1 = left as the detector labelled them): normalised crop
coordinates (u, v), the crop's edges at -1 and 1, x right and y down, and a presence flag (1 detected, 0 not,
with u = v = 0).
"""

from __future__ import annotations

import torch
from torch import nn

from core_model.handmodel.keypoints import PALM


def landmark_input(uv: torch.Tensor) -> torch.Tensor:
    """[..., 2, 21, 2] normalised crop coordinates, NaN where not detected -> [..., 2, 21, 3] the model's input."""
    if uv.shape[-3:] != (2, 21, 2):
        raise ValueError(f"uv: expected [..., 2, 21, 2] landmarks, got {tuple(uv.shape)}")
    present = torch.isfinite(uv).all(dim=-1, keepdim=True)
    return torch.cat([torch.where(present, uv, torch.zeros_like(uv)), present.to(uv.dtype)], dim=-1)


def pixels_to_input(keypoints: torch.Tensor, crop_size: int) -> torch.Tensor:
    """Crop pixels with pixel centres at integers (the loaders' ``keypoints2d``), NaN where not detected, ->
    the model's input (the crop's edges at -1 and 1)."""
    return landmark_input(2.0 * (keypoints + 0.5) / crop_size - 1.0)


class LandmarkEmbedding(nn.Module):
    """[..., 2, 21, 3] landmarks -> [..., 2, dim] per-hand features, one MLP per hand side.

    Each hand's landmarks enter relative to its palm centre (the mean of its detected palm landmarks), which makes
    the articulation translation-free, beside the palm centre itself (where the hand is in the crop, which places
    the two hands relative to each other) and the presence flags. The last layer starts small, so a new model
    starts near the RGB-only network (small rather than zero keeps gradients flowing to the earlier layers).
    """

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        in_dim = 21 * 2 + 2 + 21
        self.sides = nn.ModuleList([
            nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                          nn.Linear(hidden, dim)) for _ in range(2)])
        with torch.no_grad():
            for mlp in self.sides:
                mlp[-1].weight.mul_(0.01)
                mlp[-1].bias.zero_()

    def forward(self, landmarks: torch.Tensor) -> torch.Tensor:
        uv, present = landmarks[..., :2], landmarks[..., 2:3]
        palm = present[..., PALM, :]
        centre = (uv[..., PALM, :] * palm).sum(-2) / palm.sum(-2).clamp_min(1.0)             # [..., 2, 2]
        relative = (uv - centre[..., None, :]) * present
        x = torch.cat([relative.flatten(-2), centre, present[..., 0]], dim=-1)             # [..., 2, 65]
        return torch.stack([mlp(x[..., h, :]) for h, mlp in enumerate(self.sides)], dim=-2)
