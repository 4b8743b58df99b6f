"""Where hand models live and which one is used: MANO when imported, else OpenHand."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import platformdirs

from core_model.assets import asset_path
from core_model.handmodel.data import HandModelData, HandModelFileError
from core_model.handmodel.layer import HandModel

log = logging.getLogger(__name__)

MANO_FILES = {"right": "MANO_RIGHT.npz", "left": "MANO_LEFT.npz"}
OPENHAND_FILES = {"right": "OPENHAND_RIGHT.npz", "left": "OPENHAND_LEFT.npz"}
MODEL_CHOICES = ("auto", "mano", "openhand")


def mano_dir() -> Path:
    """Where imported MANO files are kept: ``$INTERHAND_MANO_DIR``, else the user data directory."""
    override = os.environ.get("INTERHAND_MANO_DIR")
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_data_dir("interhand-studio")) / "mano"


def mano_available() -> bool:
    return all((mano_dir() / name).is_file() for name in MANO_FILES.values())


def _load_pair(directory: Path, files: dict[str, str]) -> HandModel:
    right, left = (HandModelData.load(directory / files[side]) for side in ("right", "left"))
    return HandModel(right, left)


def load_hand_model(kind: str = "auto") -> HandModel:
    """``'mano'`` (imported MANO, error if absent), ``'openhand'`` (shipped), or ``'auto'``: MANO if imported."""
    if kind not in MODEL_CHOICES:
        raise ValueError(f"kind: expected one of {MODEL_CHOICES}, got {kind!r}")
    if kind == "mano" or (kind == "auto" and mano_available()):
        if not mano_available():
            from core_model.handmodel.mano_import import MANO_HELP

            raise HandModelFileError(f"MANO is not imported: no {MANO_FILES['right']} / {MANO_FILES['left']} in "
                                     f"{mano_dir()}. {MANO_HELP}")
        model = _load_pair(mano_dir(), MANO_FILES)
    else:
        model = _load_pair(asset_path("openhand"), OPENHAND_FILES)
    log.info("hand model: %s (%d vertices)", model.name, model.num_vertices)
    return model
