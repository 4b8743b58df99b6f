"""ResNet-18/34/50 in plain torch with torchvision's parameter names (``conv1``, ``bn1``, ``layer1.0.conv1``,
``layer1.0.downsample.0``...), so a torchvision ImageNet checkpoint file loads without torchvision, which does not
import beside the CPU torch used here. The classifier (``fc``) is left out: the frame encoder returns the last two
stages.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + identity)


class Bottleneck(nn.Module):
    """torchvision's ResNet v1.5 bottleneck: the stride sits on the 3x3 convolution."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + identity)


RESNET_LAYOUTS: dict[str, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, int, int, int]]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
}


class ResNetTrunk(nn.Module):
    """``forward`` returns (layer4 [N, C1, H/32, W/32], layer3 [N, C2, H/16, W/16]): 2048/1024 for ResNet-50,
    512/256 for ResNet-18/34."""

    def __init__(self, depth: str = "resnet50") -> None:
        super().__init__()
        if depth not in RESNET_LAYOUTS:
            raise ValueError(f"depth: expected one of {sorted(RESNET_LAYOUTS)}, got {depth!r}")
        block, repeats = RESNET_LAYOUTS[depth]
        self.depth = depth
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, repeats[0], 1)
        self.layer2 = self._make_layer(block, 128, repeats[1], 2)
        self.layer3 = self._make_layer(block, 256, repeats[2], 2)
        self.layer4 = self._make_layer(block, 512, repeats[3], 2)
        self.channels = (512 * block.expansion, 256 * block.expansion)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(self, block: type[BasicBlock] | type[Bottleneck], planes: int, repeats: int,
                    stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride=stride,
                                                 bias=False),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, repeats)]
        return nn.Sequential(*layers)

    def early_layers(self, stride: int) -> list[nn.Module]:
        """The layers whose output stride is at most ``stride`` (conv1/bn1 at 2, layer1 at 4, layer2 at 8...)."""
        by_stride = [(2, self.conv1), (2, self.bn1), (4, self.layer1), (8, self.layer2), (16, self.layer3),
                     (32, self.layer4)]
        return [layer for s, layer in by_stride if s <= stride]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        stride16 = self.layer3(self.layer2(self.layer1(x)))
        return self.layer4(stride16), stride16


def _unwrap_state(state: object, file: Path) -> dict[str, torch.Tensor]:
    """Accept a bare state dict or one wrapped as ``{'state_dict': ...}`` / ``{'model': ...}``, with or without
    DataParallel's ``module.`` prefix."""
    if isinstance(state, dict):
        for key in ("state_dict", "model"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"imagenet_weights: {file} does not hold a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_torchvision_weights(trunk: ResNetTrunk, path: str | os.PathLike[str]) -> None:
    """Load a torchvision ResNet ImageNet checkpoint (e.g. ``resnet50-11ad3fa6.pth``) into ``trunk``.

    Read with ``weights_only=True``; the classifier ``fc.*`` is dropped; every other tensor must match by name and
    shape, otherwise the error names what is missing, unexpected or misshapen.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"imagenet_weights: no such file {file}")
    state = _unwrap_state(torch.load(file, map_location="cpu", weights_only=True), file)
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    own = trunk.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    misshapen = [f"{k} {tuple(state[k].shape)} != {tuple(own[k].shape)}" for k in sorted(set(own) & set(state))
                 if state[k].shape != own[k].shape]
    if missing or unexpected or misshapen:
        raise ValueError(f"imagenet_weights: {file} is not a torchvision {trunk.depth} checkpoint: "
                         f"{len(missing)} missing (e.g. {missing[:3]}), {len(unexpected)} unexpected "
                         f"(e.g. {unexpected[:3]}), {len(misshapen)} of another shape (e.g. {misshapen[:3]})")
    trunk.load_state_dict(state, strict=True)
