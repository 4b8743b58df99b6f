"""STCNet checkpoints: config, hand-model name, software version and weights in one file that loads with
``torch.load(weights_only=True)`` (plain dicts, strings and tensors only), written atomically.

A checkpoint of another architecture or trained with another hand model is refused with a message that says
which: the config fields that differ, the hand-model names, or the missing/unexpected/misshapen weights.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import zipfile
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
    """Read and validate a checkpoint file (``weights_only=True``; tensors on CPU). Anything but a checkpoint this
    software wrote is a ValueError naming the file and what is wrong, in one line; nothing is read beyond the
    bytes the file holds (torch's zip format, stored, is the only one accepted)."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"checkpoint: no such file {file}")
    _check_archive(file)
    try:
        payload = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ValueError(f"checkpoint: {file} holds Python objects other than tensors and plain data (refused: "
                         f"loading them could run code): {_first_line(exc)}") from exc
    except Exception as exc:  # unpickling errors come in many types; name the file and the reason
        raise ValueError(f"checkpoint: {file} is not a readable STCNet checkpoint ({_first_line(exc)})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"checkpoint: {file} is not an STCNet checkpoint (no format {FORMAT!r} marker)")
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(f"checkpoint: {file} has format version {str(version)[:40]}; this software "
                         f"({__version__}) reads version {FORMAT_VERSION}")
    try:
        config = STCNetConfig.from_dict(payload.get("config"))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"checkpoint: {file} holds a config this software cannot use: {_first_line(exc)}") from exc
    hand_model, software, state, extra = (payload.get(k) for k in ("hand_model", "software_version", "state_dict",
                                                                    "extra"))
    if not isinstance(hand_model, str) or not isinstance(software, str):
        raise ValueError(f"checkpoint: {file}: hand_model and software_version: expected names, got "
                         f"{type(hand_model).__name__} and {type(software).__name__}")
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise ValueError(f"checkpoint: {file}: state_dict: expected weights by name (tensors)")
    for name, tensor in state.items():
        if tensor.is_complex() or (tensor.is_floating_point() and not torch.isfinite(tensor).all()):
            raise ValueError(f"checkpoint: {file}: weight {name} holds "
                             f"{'complex numbers' if tensor.is_complex() else 'NaN or infinite values'}")
    if extra is not None and not isinstance(extra, dict):
        raise ValueError(f"checkpoint: {file}: extra: expected a dict, got {type(extra).__name__}")
    return Checkpoint(config=config, hand_model=hand_model, software_version=software, state_dict=state,
                      extra=extra or {})


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "..."


def _check_archive(file: Path) -> None:
    """torch's zip format with every record stored (as ``torch.save`` writes it): then nothing ``torch.load``
    reads is larger than the file. The legacy format and compressed records declare sizes that are allocated
    before they are read."""
    try:
        with zipfile.ZipFile(file) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ValueError(f"checkpoint: {file} is not a readable STCNet checkpoint (not torch's zip format: "
                         f"{_first_line(exc)})") from None
    packed = [info.filename for info in infos if info.compress_type != zipfile.ZIP_STORED]
    if packed or sum(info.file_size for info in infos) > file.stat().st_size:
        raise ValueError(f"checkpoint: {file} is not a readable STCNet checkpoint (compressed records "
                         f"{packed[:2]}: torch.save stores them)")


def _check_state(model: STCNet, state: dict[str, torch.Tensor], file: Path) -> None:
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    misshapen = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in sorted(set(own) & set(state))
                 if state[k].shape != own[k].shape
                 or state[k].is_floating_point() != own[k].is_floating_point()]
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


def _apply(model: STCNet, ckpt: Checkpoint, file: Path, load: bool = True) -> None:
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
    if load:
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
    try:
        with torch.device("meta"):  # the architecture checked before any memory is spent on the config's word
            skeleton = STCNet(ckpt.config, hand_model, imagenet_weights=None)
    except (RuntimeError, ValueError) as exc:
        raise CheckpointMismatchError(f"checkpoint: {file} describes a network this software cannot build "
                                      f"({_first_line(exc)})") from exc
    _apply(skeleton, ckpt, file, load=False)
    model = STCNet(ckpt.config, hand_model, imagenet_weights=None)
    _apply(model, ckpt, file)
    return model.to(device if device is not None else "cpu").eval(), ckpt
