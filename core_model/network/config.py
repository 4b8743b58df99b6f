"""STCNet's configuration: one dataclass, two presets (``paper`` and ``lite``), plain-dict round trip for
checkpoints (which load with ``weights_only=True`` and so hold no custom classes)."""

from __future__ import annotations

import dataclasses
from typing import Any

# Channels (C1 at stride 32, C2 at stride 16) of each frame encoder's last two stages. The paper's indexing:
# F_1 is the deepest map (2048 x 8 x 8 for ResNet-50 at 256), F_2 the one before (1024 x 16 x 16).
ENCODER_CHANNELS: dict[str, tuple[int, int]] = {
    "resnet50": (2048, 1024),
    "resnet34": (512, 256),
    "resnet18": (512, 256),
    "efficientnet_lite0": (320, 112),
}


MAX_INPUT_SIZE = 2048
MAX_WIDTH = 8192
MAX_FFN_RATIO = 16.0
"""Bounds far above any preset (the paper's widths are 512) that keep a config read from a file from describing a
network no machine can hold."""


@dataclasses.dataclass(frozen=True)
class STCNetConfig:
    """Architecture of the spatial-temporal network. Token widths follow the paper: temporal block 1 works at C1
    (the hand features and F_1^global), its feed-forward reduces to C2 for block 2 (F_2^global), whose
    feed-forward reduces to ``out_dim`` (C3) for the MANO decoder.

    preset: the preset this config came from (a label, checked when a checkpoint is loaded).
    encoder: one of ``ENCODER_CHANNELS``.
    input_size: square crop side in pixels; a multiple of 32 (maps are input/32 and input/16).
    frames: T, the window length the model is trained and run with (any T >= 1 is accepted by forward).
    heads: attention heads of every MHSA and MHCA.
    attention_dim: inner width of the query/key/value projections (the paper does not give it).
    ffn_ratio: the feed-forward hidden width as a multiple of the block's width.
    out_dim: C3, each hand's temporal feature width fed to the decoder.
    chirality_hidden: hidden channels of each hand-chirality extractor.
    decoder_hidden: hidden width of the decoder MLPs.
    dropout: dropout in attention and feed-forward blocks.
    temporal_encoder: False gives the paper's "Baseline" (per-frame extractor features straight to the decoder).
    cross_attention: False drops both MHCA of every temporal block ("w/o MHCA").
    landmarks: True adds the landmark-guided input (:mod:`core_model.network.landmarks`): a 2D detector's landmarks
        of both hands, embedded and added to each hand's feature. Not in the paper; the RGB-only path is its own.
    """

    preset: str = "lite"
    encoder: str = "efficientnet_lite0"
    input_size: int = 224
    frames: int = 10
    heads: int = 4
    attention_dim: int = 128
    ffn_ratio: float = 2.0
    out_dim: int = 96
    chirality_hidden: int = 64
    decoder_hidden: int = 256
    dropout: float = 0.1
    temporal_encoder: bool = True
    cross_attention: bool = True
    landmarks: bool = False

    def __post_init__(self) -> None:
        if self.encoder not in ENCODER_CHANNELS:
            raise ValueError(f"encoder: expected one of {sorted(ENCODER_CHANNELS)}, got {self.encoder!r}")
        if not isinstance(self.input_size, int) or self.input_size < 64 or self.input_size % 32:
            raise ValueError(f"input_size: expected a multiple of 32, at least 64, got {self.input_size!r}")
        if self.input_size > MAX_INPUT_SIZE:
            raise ValueError(f"input_size: expected at most {MAX_INPUT_SIZE}, got {self.input_size!r}")
        for name in ("frames", "heads", "attention_dim", "out_dim", "chirality_hidden", "decoder_hidden"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_WIDTH:
                raise ValueError(f"{name}: expected a positive integer up to {MAX_WIDTH}, got {value!r}")
        if self.attention_dim % self.heads:
            raise ValueError(f"attention_dim: {self.attention_dim} is not divisible by heads={self.heads}")
        if (not isinstance(self.ffn_ratio, (int, float)) or isinstance(self.ffn_ratio, bool)
                or not 0 < self.ffn_ratio <= MAX_FFN_RATIO):
            raise ValueError(f"ffn_ratio: expected > 0 and at most {MAX_FFN_RATIO}, got {self.ffn_ratio!r}")
        for name in ("temporal_encoder", "cross_attention", "landmarks"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}: expected true or false, got {getattr(self, name)!r}")
        if not isinstance(self.preset, str):
            raise ValueError(f"preset: expected a name, got {self.preset!r}")
        if not isinstance(self.dropout, (int, float)) or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout: expected 0 <= dropout < 1, got {self.dropout!r}")
        if self.cross_attention and not self.temporal_encoder:
            raise ValueError("cross_attention: MHCA lives in the temporal encoder; set cross_attention=False "
                             "when temporal_encoder=False (the paper's Baseline)")

    @property
    def channels(self) -> tuple[int, int]:
        """(C1, C2) of the frame encoder."""
        return ENCODER_CHANNELS[self.encoder]

    @property
    def feature_sizes(self) -> tuple[int, int]:
        """(H1, H2): side of the stride-32 and stride-16 maps."""
        return self.input_size // 32, self.input_size // 16

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> STCNetConfig:
        """A preset, optionally with fields replaced (``from_preset('lite', input_size=128)``)."""
        if name not in PRESETS:
            raise ValueError(f"preset: expected one of {sorted(PRESETS)}, got {name!r}")
        unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"overrides: unknown config fields {unknown}")
        return dataclasses.replace(PRESETS[name], **overrides)

    def to_dict(self) -> dict[str, Any]:
        """Plain types only, so a checkpoint holding it loads with ``torch.load(weights_only=True)``."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> STCNetConfig:
        if not isinstance(data, dict):
            raise ValueError(f"config: expected a dict, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"config: unknown fields {unknown} (written by a newer version?)")
        return cls(**data)

    def differences(self, other: STCNetConfig) -> dict[str, tuple[Any, Any]]:
        """Fields whose values differ: ``{name: (self's, other's)}``."""
        mine, theirs = self.to_dict(), other.to_dict()
        return {k: (mine[k], theirs[k]) for k in mine if mine[k] != theirs[k]}


PRESETS: dict[str, STCNetConfig] = {
    # The paper (section 4.1): ResNet-50, 256 x 256 crops, T = 10; C1/H1 = 2048/8, C2/H2 = 1024/16. Widths it
    # does not state (attention 512, 8 heads, C3 = 512, MLP 512) are chosen to land near its 55.4 M parameters.
    "paper": STCNetConfig(preset="paper", encoder="resnet50", input_size=256, frames=10, heads=8, attention_dim=512,
                          ffn_ratio=1.0, out_dim=512, chirality_hidden=256, decoder_hidden=512, dropout=0.1),
    # CPU-friendly: EfficientNet-Lite0 with ImageNet weights at 224, the resolution those weights were trained at.
    "lite": STCNetConfig(),
    # The lite network guided by the detector's 2D landmarks: what the app ships (it learns pose from renders in
    # CPU hours, and sees the same input on real video).
    "lite-landmarks": STCNetConfig(preset="lite-landmarks", landmarks=True),
}
