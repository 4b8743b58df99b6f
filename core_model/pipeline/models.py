"""The models a run or a result needs, built the same way by the CLI, the app and the figure generators."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from core_model.handmodel.layer import HandModel

log = logging.getLogger(__name__)


def hand_model_of_result(hand_model_name: str) -> HandModel:
    """The hand model a result was made with (its faces draw and export the result's vertices)."""
    from core_model.handmodel.registry import load_hand_model

    kind = {"mano": "mano", "openhand": "openhand"}.get(hand_model_name.lower())
    if kind is None:
        raise ValueError(f"result: made with hand model {hand_model_name!r}, which this software does not know")
    return load_hand_model(kind)


def faces_of(model: HandModel):
    """(right, left) faces of ``model`` as numpy arrays."""
    return model.right.data.faces, model.left.data.faces


SHIPPED_CHECKPOINT = ("models", "stcnet_lite_landmarks_synth.pt")
"""Where the model this project trained lives under the assets (``assets/models/``; see BENCHMARKS.md)."""


def shipped_checkpoint() -> Path:
    """The shipped checkpoint; FileNotFoundError saying what to do when the installation lacks it."""
    from core_model.assets import assets_root

    path = assets_root().joinpath(*SHIPPED_CHECKPOINT)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint: the shipped model {path} is missing; reinstall interhand-studio, "
                                "pass a checkpoint (--checkpoint) or run an untrained network (--untrained PRESET)")
    return path


def load_run_model(checkpoint: str | os.PathLike[str] | None, hand_model: str, device: torch.device,
                   untrained: str | None = None) -> tuple[torch.nn.Module, str, str]:
    """(STCNet in eval mode on ``device``, its preset, the checkpoint's SHA-256 or '').

    checkpoint: None uses the shipped model. hand_model: ``auto`` takes the one the checkpoint was trained with;
    ``mano`` or ``openhand`` must match it (its pose parameters mean that model's rotations). untrained: a preset
    name instead of a checkpoint: ImageNet encoder weights and an untrained head, to see the pipeline work."""
    from core_model.handmodel.registry import load_hand_model
    from core_model.network import STCNet, STCNetConfig, load_checkpoint
    from core_model.results import file_sha256

    if untrained is not None:
        if checkpoint is not None:
            raise ValueError("untrained: give either a checkpoint or an untrained preset, not both")
        log.warning("untrained %s network: ImageNet encoder weights and an untrained head; the result shows the "
                    "pipeline working, not the hands", untrained)
        model = STCNet(STCNetConfig.from_preset(untrained), load_hand_model(hand_model))
        return model.to(device).eval(), untrained, ""
    path = Path(checkpoint) if checkpoint is not None else shipped_checkpoint()
    model, ckpt = load_checkpoint(path, None if hand_model == "auto" else load_hand_model(hand_model), device)
    log.info("model: %s (preset %s, input %d, hand model %s)", path, ckpt.config.preset, ckpt.config.input_size,
             ckpt.hand_model)
    return model, ckpt.config.preset, file_sha256(path)


def describe_run_model(checkpoint: str | os.PathLike[str] | None, hand_model: str,
                       untrained: str | None = None) -> tuple[str, str]:
    """(preset, hand-model name) of the model :func:`load_run_model` would build with these arguments, read
    without building it (the app labels a run's panels before the worker has the model)."""
    from core_model.handmodel.registry import mano_available
    from core_model.network.checkpoint import read_checkpoint

    names = {"mano": "MANO", "openhand": "OpenHand"}
    if untrained is not None:
        kind = hand_model if hand_model != "auto" else ("mano" if mano_available() else "openhand")
        return untrained, names[kind]
    ckpt = read_checkpoint(Path(checkpoint) if checkpoint is not None else shipped_checkpoint())
    return ckpt.config.preset, names.get(hand_model, ckpt.hand_model)
