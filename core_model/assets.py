"""The shipped assets (OpenHand, checkpoint, demo), found the same way from a checkout, a wheel or a bundle."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path


def assets_root() -> Path:
    """``$INTERHAND_ASSETS`` if set, else the ``interhand_assets`` package (the repository's ``assets/``)."""
    override = os.environ.get("INTERHAND_ASSETS")
    if override:
        return Path(override)
    return Path(str(resources.files("interhand_assets")))


def asset_path(*parts: str) -> Path:
    path = assets_root().joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f"missing asset {path}; reinstall interhand-studio or set INTERHAND_ASSETS")
    return path
