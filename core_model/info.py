"""What ``interhand info`` reports: versions, compute device, hand model, where MANO is looked for, the shipped
model."""

from __future__ import annotations

import importlib.metadata
import platform

import torch

from core_model import __version__
from core_model.device import describe_device, pick_device
from core_model.handmodel.registry import MANO_FILES, mano_available, mano_dir

PACKAGES = ("torch", "numpy", "scipy", "smplx", "roma", "trimesh", "embreex", "pyvista", "vtk",
            "PySide6-Essentials", "pyqtgraph")


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def collect_info(hand_model: str = "auto") -> dict[str, object]:
    from core_model.handmodel.registry import load_hand_model

    model = load_hand_model(hand_model)
    return {
        "interhand-studio": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in PACKAGES},
        "device": describe_device(pick_device()),
        "torch threads": torch.get_num_threads(),
        "hand model": f"{model.name} ({model.num_vertices} vertices per hand; {model.meta.get('licence', '')})",
        "MANO directory": str(mano_dir()),
        "MANO imported": ("yes" if mano_available() else
                          f"no ({' and '.join(MANO_FILES.values())} not found; run 'interhand mano-import DIR')"),
        "shipped model": _shipped_model(),
    }


def _shipped_model() -> str:
    """What ``interhand run`` uses without --checkpoint: file, preset, input, hand model, training steps."""
    from core_model.network.checkpoint import read_checkpoint
    from core_model.pipeline.models import shipped_checkpoint

    try:
        path = shipped_checkpoint()
        ckpt = read_checkpoint(path)
    except (FileNotFoundError, ValueError) as exc:
        return f"unavailable ({exc})"
    step = ckpt.extra.get("trained", {}).get("step")
    return (f"{path.name} ({ckpt.config.preset}, input {ckpt.config.input_size}, hand model {ckpt.hand_model}, "
            f"{step} training steps)")


def format_info(info: dict[str, object]) -> str:
    lines = []
    for key, value in info.items():
        if isinstance(value, dict):
            lines.append(f"{key}:")
            lines += [f"  {k:<20} {v}" for k, v in value.items()]
        else:
            lines.append(f"{key:<22} {value}")
    return "\n".join(lines)
