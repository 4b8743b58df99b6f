"""The multi-scale feature extractor (paper eq. 1): per hand, a hand-chirality extractor predicts a weight map
over F_1 and weighted average pooling gives that hand's feature; average pooling F_1 and F_2 gives the
hierarchical global features."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn


@dataclasses.dataclass
class ExtractedFeatures:
    """Per frame: N frames, or [B, T] once grouped into windows (``windows``).

    hands: [N, 2, C1] f^right, f^left; weight_maps: [N, 2, H1, W1] in (0, 1); global1: [N, C1]; global2: [N, C2].
    """

    hands: torch.Tensor
    weight_maps: torch.Tensor
    global1: torch.Tensor
    global2: torch.Tensor

    def windows(self, batch: int, frames: int) -> ExtractedFeatures:
        """The N = batch * frames frames as ``batch`` windows of ``frames``: every field [B, T, ...]."""
        return ExtractedFeatures(**{f.name: getattr(self, f.name).unflatten(0, (batch, frames))
                                    for f in dataclasses.fields(self)})


class HandChiralityExtractor(nn.Module):
    """HE^h of eq. 1: F_1 [N, C1, H1, W1] -> weight map w^h [N, H1, W1] in (0, 1)."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, hidden, 1, bias=False)
        self.bn = nn.BatchNorm2d(hidden)
        self.score = nn.Conv2d(hidden, 1, 3, padding=1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.score(torch.relu(self.bn(self.reduce(features))))).squeeze(1)


class MultiScaleExtractor(nn.Module):
    """One hand-chirality extractor per side (0 = right, 1 = left), not shared: the two sides look different."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.chirality = nn.ModuleList([HandChiralityExtractor(channels, hidden) for _ in range(2)])

    def forward(self, f1: torch.Tensor, f2: torch.Tensor) -> ExtractedFeatures:
        maps = torch.stack([he(f1) for he in self.chirality], dim=1)                    # [N, 2, H1, W1]
        # f^h = P_avg(w^h * F_1): the literal eq. 1 (the map weighs, the pooling averages over all cells).
        hands = torch.einsum("nhyx,ncyx->nhc", maps, f1) / (f1.shape[-1] * f1.shape[-2])
        return ExtractedFeatures(hands=hands, weight_maps=maps, global1=f1.mean(dim=(2, 3)),
                                 global2=f2.mean(dim=(2, 3)))
