"""The workspace file (JSON): which results and video are open, the current frame, both 3D cameras and the panel
layout, so a session can be reopened as it was left. Paths are stored absolute and, when the workspace moves
with its files, found again relative to it."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import math
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


MAX_BYTES = 16 << 20
"""A workspace file is a few kB; a bigger one is not a workspace (and is not read)."""
CAMERA_KEYS = ("position", "focal_point", "up")


def load_workspace(path: str | os.PathLike[str]) -> Workspace:
    """Read a workspace file; WorkspaceError (one line: the file and what is wrong) unless it is one."""
    source = Path(path)
    try:
        size = source.stat().st_size
        if size > MAX_BYTES:
            raise WorkspaceError(f"workspace: {source} is {size} bytes; a workspace file is a few kB (not one?)")
        payload = json.loads(source.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise WorkspaceError(f"workspace: cannot read {source}: {reason[:200]}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise WorkspaceError(f"workspace: {source} is not an InterHand Studio workspace (no format {FORMAT!r})")
    if payload.get("version") != VERSION:
        raise WorkspaceError(f"workspace: {source} has version {str(payload.get('version'))[:40]!s}; this software "
                             f"reads {VERSION}")

    def wrong(key: str, expected: str) -> WorkspaceError:
        return WorkspaceError(f"workspace: {source}: {key}: expected {expected}")

    results = payload.get("results")
    if not isinstance(results, list) or not all(isinstance(p, str) for p in results):
        raise wrong("results", "a list of file paths")
    video = payload.get("video")
    if video is not None and not isinstance(video, str):
        raise wrong("video", "a file path or null")
    relative = payload.get("relative") or {}
    if not isinstance(relative, dict):
        raise wrong("relative", "an object")
    rel_results = relative.get("results") or [None] * len(results)
    if (not isinstance(rel_results, list) or len(rel_results) != len(results)
            or not all(r is None or isinstance(r, str) for r in rel_results)):
        raise wrong("relative.results", f"{len(results)} relative paths")
    rel_video = relative.get("video")
    if rel_video is not None and not isinstance(rel_video, str):
        raise wrong("relative.video", "a relative path or null")
    frame = payload.get("frame")
    if not isinstance(frame, int) or isinstance(frame, bool) or not 0 <= frame < 2**31:
        raise wrong("frame", "a frame number")
    for key in ("layout", "geometry"):
        value = payload.get(key)
        try:
            if not isinstance(value, str):
                raise ValueError
            base64.b64decode(value, validate=True)
        except (ValueError, binascii.Error):
            raise wrong(key, "the window's state in base64") from None
    overlay = payload.get("overlay", "keypoints")
    if not isinstance(overlay, str):
        raise wrong("overlay", "an overlay mode")
    cameras = payload.get("cameras")
    if cameras is not None:
        _check_cameras(cameras, wrong)
    return Workspace(results=[_find(p, r, source.parent) for p, r in zip(results, rel_results)],
                     video=_find(video, rel_video, source.parent) if video else None, frame=frame, cameras=cameras,
                     layout=payload["layout"], geometry=payload["geometry"], overlay=overlay)


def _check_cameras(cameras: Any, wrong) -> None:
    """The 3D panel's state as ``ScenePanel.cameras()`` writes it: both views' cameras, presets, link, refined."""
    if not isinstance(cameras, dict):
        raise wrong("cameras", "an object")
    for view in ("main", "second"):
        state = cameras.get(view)
        if not isinstance(state, dict):
            raise wrong(f"cameras.{view}", "a camera")
        for key in CAMERA_KEYS:
            value = state.get(key)
            if (not isinstance(value, list) or len(value) != 3
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                               for v in value)):
                raise wrong(f"cameras.{view}.{key}", "three finite numbers")
        angle = state.get("view_angle")
        if not isinstance(angle, (int, float)) or isinstance(angle, bool) or not 0 < angle < 180:
            raise wrong(f"cameras.{view}.view_angle", "an angle in degrees between 0 and 180")
        if not isinstance(state.get("parallel"), bool):
            raise wrong(f"cameras.{view}.parallel", "true or false")
    for key in ("preset", "second_preset"):
        if not isinstance(cameras.get(key, ""), str):
            raise wrong(f"cameras.{key}", "a preset name")
    for key in ("linked", "refined"):
        if not isinstance(cameras.get(key, False), bool):
            raise wrong(f"cameras.{key}", "true or false")
