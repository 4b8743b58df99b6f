"""The models a run or a result needs, built the same way by the CLI, the app and the figure generators."""

from __future__ import annotations

import logging
import os

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


def load_run_model(checkpoint: str | os.PathLike[str] | None, preset: str, hand_model: HandModel,
                   device: torch.device) -> tuple[torch.nn.Module, str, str]:
    """(STCNet in eval mode on ``device``, its preset, the checkpoint's SHA-256 or ''). Without a checkpoint the
    network has ImageNet encoder weights and an untrained head, which is said in the log."""
    from core_model.network import STCNet, STCNetConfig, load_checkpoint
    from core_model.results import file_sha256

    if checkpoint is not None:
        model, ckpt = load_checkpoint(checkpoint, hand_model, device)
        return model, ckpt.config.preset, file_sha256(checkpoint)
    log.warning("no checkpoint: the network has ImageNet encoder weights and an untrained head; the result shows "
                "the pipeline working, not the hands")
    return STCNet(STCNetConfig.from_preset(preset), hand_model).to(device).eval(), preset, ""
