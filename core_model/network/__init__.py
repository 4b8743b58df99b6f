"""STCNet, the spatial-temporal network of the paper (section 3.1): frame encoder, multi-scale feature extractor,
temporal encoder, MANO decoder; its config presets, checkpoints, complexity and ablation switches."""

from core_model.network.ablation import ABLATIONS, Ablation, ablation
from core_model.network.checkpoint import (
    Checkpoint,
    CheckpointMismatchError,
    load_checkpoint,
    load_weights,
    read_checkpoint,
    save_checkpoint,
)
from core_model.network.config import ENCODER_CHANNELS, PRESETS, STCNetConfig
from core_model.network.decoder import weak_perspective_project
from core_model.network.output import STCNetOutput
from core_model.network.stcnet import STCNet

__all__ = [
    "ABLATIONS",
    "ENCODER_CHANNELS",
    "PRESETS",
    "Ablation",
    "Checkpoint",
    "CheckpointMismatchError",
    "STCNet",
    "STCNetConfig",
    "STCNetOutput",
    "ablation",
    "load_checkpoint",
    "load_weights",
    "read_checkpoint",
    "save_checkpoint",
    "weak_perspective_project",
]
