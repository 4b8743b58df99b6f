"""The workspace file (JSON): which results and video are open, the current frame, both 3D cameras and the panel
layout, so a session can be reopened as it was left. Paths are stored absolute and, when the workspace moves
with its files, found again relative to it."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from core_model.fileio import atomic_path

FORMAT = "interhand-workspace"
VERSION = 1


class WorkspaceError(ValueError):
    """A workspace file that cannot be read; the message names the file and what is wrong."""


@dataclasses.dataclass
class Workspace:
    """results: result files, the first shown in every panel; cameras: the 3D panel's state; layout: the main
    window's saveState() as base64; overlay: the video panel's overlay mode."""

    results: list[str]
    video: str | None
    frame: int
    cameras: dict[str, Any] | None
    layout: str
    geometry: str
    overlay: str = "keypoints"


def save_workspace(workspace: Workspace, path: str | os.PathLike[str]) -> Path:
    target = Path(path)
    payload = {"format": FORMAT, "version": VERSION, **dataclasses.asdict(workspace)}
    payload["relative"] = {"results": [os.path.relpath(p, target.parent) for p in workspace.results],
                           "video": os.path.relpath(workspace.video, target.parent) if workspace.video else None}
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(payload, indent=2))
    return target


def _find(stored: str, relative: str | None, base: Path) -> str:
    if Path(stored).exists() or relative is None:
        return stored
    candidate = (base / relative).resolve()
    return str(candidate) if candidate.exists() else stored


def load_workspace(path: str | os.PathLike[str]) -> Workspace:
    source = Path(path)
    try:
        payload = json.loads(source.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WorkspaceError(f"workspace: cannot read {source}: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise WorkspaceError(f"workspace: {source} is not an InterHand Studio workspace (no format {FORMAT!r})")
    if payload.get("version") != VERSION:
        raise WorkspaceError(f"workspace: {source} has version {payload.get('version')!r}; this software reads "
                             f"{VERSION}")
    relative = payload.get("relative") or {}
    rel_results = relative.get("results") or [None] * len(payload.get("results", []))
    try:
        return Workspace(
            results=[_find(p, r, source.parent) for p, r in zip(payload["results"], rel_results)],
            video=_find(payload["video"], relative.get("video"), source.parent) if payload["video"] else None,
            frame=int(payload["frame"]), cameras=payload.get("cameras"), layout=str(payload["layout"]),
            geometry=str(payload["geometry"]), overlay=str(payload.get("overlay", "keypoints")))
    except (KeyError, TypeError, ValueError) as exc:
        raise WorkspaceError(f"workspace: {source} lacks or mangles {exc}") from exc
