"""STCNet checkpoints: config, hand-model name, software version and weights in one file that loads with
``torch.load(weights_only=True)`` (plain dicts, strings and tensors only), written atomically.

A checkpoint of another architecture or trained with another hand model is refused with a message that says
which: the config fields that differ, the hand-model names, or the missing/unexpected/misshapen weights.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch

from core_model import __version__
from core_model.fileio import atomic_path
from core_model.handmodel.layer import HandModel
from core_model.network.config import STCNetConfig
from core_model.network.stcnet import STCNet

FORMAT = "interhand-stcnet"
FORMAT_VERSION = 1
_PLAIN = (str, int, float, bool, type(None), torch.Tensor)


class CheckpointMismatchError(ValueError):
    """The checkpoint does not fit the model or hand model it is loaded into."""


@dataclasses.dataclass
class Checkpoint:
    """The content of a checkpoint file. extra: the caller's plain metadata (epoch, metrics, ...)."""

    config: STCNetConfig
    hand_model: str
    software_version: str
    state_dict: dict[str, torch.Tensor]
    extra: dict[str, Any]


def _check_plain(value: Any, where: str) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"{where}: keys must be strings, got {k!r}")
            _check_plain(v, f"{where}[{k!r}]")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
    elif not isinstance(value, _PLAIN):
        raise ValueError(f"{where}: {type(value).__name__} cannot be stored (weights_only loading accepts plain "
                         "dicts, lists, strings, numbers and tensors)")


def save_checkpoint(path: str | os.PathLike[str], model: STCNet, extra: dict[str, Any] | None = None,
                    half: bool = False) -> Path:
    """Write ``model``'s config, hand-model name, software version and weights to ``path`` atomically.
    half: store floating-point weights as fp16 (half the file, for shipping; loading casts them back)."""
    if not isinstance(model, STCNet):
        raise TypeError(f"model: expected an STCNet, got {type(model).__name__}")
    extra = dict(extra or {})
    _check_plain(extra, "extra")
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "software_version": __version__,
        "config": model.config.to_dict(),
        "hand_model": model.hand_model_name,
        "state_dict": {k: v.detach().cpu().to(torch.float16 if half and v.is_floating_point() else v.dtype).clone()
                       for k, v in model.state_dict().items()},
        "extra": extra,
    }
    target = Path(path)
    with atomic_path(target) as tmp:
        torch.save(payload, tmp)
    return target


def read_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read and validate a checkpoint file (``weights_only=True``; tensors on CPU)."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"checkpoint: no such file {file}")
    try:
        payload = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types; name the file and the reason
        raise ValueError(f"checkpoint: {file} is not a readable STCNet checkpoint ({exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"checkpoint: {file} is not an STCNet checkpoint (no format {FORMAT!r} marker)")
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(f"checkpoint: {file} has format version {version}; this software "
                         f"({__version__}) reads version {FORMAT_VERSION}")
    try:
        config = STCNetConfig.from_dict(payload["config"])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"checkpoint: {file} holds a config this software cannot use: {exc}") from exc
    return Checkpoint(config=config, hand_model=str(payload["hand_model"]),
                      software_version=str(payload["software_version"]), state_dict=payload["state_dict"],
                      extra=payload.get("extra", {}))


def _check_state(model: STCNet, state: dict[str, torch.Tensor], file: Path) -> None:
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    misshapen = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in sorted(set(own) & set(state))
                 if state[k].shape != own[k].shape]
    if missing or unexpected or misshapen:
        raise CheckpointMismatchError(
            f"checkpoint: {file} does not fit this STCNet: {len(missing)} missing weights (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:3]}), {len(misshapen)} of another shape "
            f"(e.g. {misshapen[:3]})")


def load_weights(model: STCNet, path: str | os.PathLike[str]) -> Checkpoint:
    """Load a checkpoint's weights into an existing ``model``; refuse another architecture or hand model."""
    file = Path(path)
    ckpt = read_checkpoint(file)
    _apply(model, ckpt, file)
    return ckpt


def _apply(model: STCNet, ckpt: Checkpoint, file: Path) -> None:
    diff = model.config.differences(ckpt.config)
    if diff:
        listed = ", ".join(f"{k}: checkpoint {theirs!r}, model {mine!r}" for k, (mine, theirs) in diff.items())
        raise CheckpointMismatchError(
            f"checkpoint: {file} is another architecture (preset {ckpt.config.preset!r}, model preset "
            f"{model.config.preset!r}); differing config fields: {listed}")
    if ckpt.hand_model != model.hand_model_name:
        raise CheckpointMismatchError(
            f"checkpoint: {file} was trained with hand model {ckpt.hand_model!r}, but this model uses "
            f"{model.hand_model_name!r}; its pose parameters mean other rotations. Use the hand model it was "
            "trained with (--hand-model) or a checkpoint trained with this one")
    _check_state(model, ckpt.state_dict, file)
    model.load_state_dict(ckpt.state_dict, strict=True)


def load_checkpoint(path: str | os.PathLike[str], hand_model: HandModel | None = None,
                    device: torch.device | str | None = None) -> tuple[STCNet, Checkpoint]:
    """Build the STCNet a checkpoint describes and load its weights (eval mode, on ``device``, default CPU).

    ``hand_model``: the hand model in use; its name must match the checkpoint's. None loads the checkpoint's own
    (``MANO`` must then be imported).
    """
    file = Path(path)
    ckpt = read_checkpoint(file)
    if hand_model is None:
        from core_model.handmodel.registry import load_hand_model

        kind = {"mano": "mano", "openhand": "openhand"}.get(ckpt.hand_model.lower())
        if kind is None:
            raise CheckpointMismatchError(f"checkpoint: {file} names hand model {ckpt.hand_model!r}, which this "
                                          "software does not know (expected MANO or OpenHand)")
        hand_model = load_hand_model(kind)
    model = STCNet(ckpt.config, hand_model, imagenet_weights=None)
    _apply(model, ckpt, file)
    return model.to(device if device is not None else "cpu").eval(), ckpt
