"""Export of a posed pair of hands to OBJ, PLY and GLB through trimesh, written atomically.

OBJ and GLB keep the hands as two named objects ("right_hand", "left_hand"); PLY holds one mesh, so the two
hands are concatenated (right first, then left) with per-vertex colours telling them apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import trimesh

from core_model.fileio import atomic_path
from core_model.render import HAND_COLOURS, PENETRATION_COLOUR

FORMATS = ("obj", "ply", "glb")
HAND_NAMES = ("right_hand", "left_hand")


def _rgba(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)] + [255], dtype=np.uint8)


def hand_trimeshes(vertices: np.ndarray, faces: Sequence[np.ndarray], inside: np.ndarray | None = None
                   ) -> list[trimesh.Trimesh]:
    """Two trimesh meshes, coloured per hand, penetrating vertices red. vertices [2, V, 3] metres."""
    vertices = np.asarray(vertices, dtype=np.float64)
    if vertices.ndim != 3 or vertices.shape[0] != 2 or vertices.shape[2] != 3:
        raise ValueError(f"vertices: expected shape [2, V, 3], got {vertices.shape}")
    if not np.isfinite(vertices).all():
        raise ValueError("vertices: contains NaN or infinite values")
    if len(faces) != 2:
        raise ValueError(f"faces: expected one face array per hand (2), got {len(faces)}")
    meshes = []
    for hand in range(2):
        colours = np.tile(_rgba(HAND_COLOURS[hand]), (len(vertices[hand]), 1))
        if inside is not None:
            colours[np.asarray(inside[hand], bool)] = _rgba(PENETRATION_COLOUR)
        meshes.append(trimesh.Trimesh(vertices[hand], np.asarray(faces[hand]), vertex_colors=colours,
                                      process=False))
    return meshes


def export_hand_pair(vertices: np.ndarray, faces: Sequence[np.ndarray], path: str | Path,
                     file_format: str | None = None, inside: np.ndarray | None = None) -> Path:
    """Write both hands to ``path``; the format comes from ``file_format`` or the suffix."""
    path = Path(path)
    fmt = (file_format or path.suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise ValueError(f"file_format: expected one of {FORMATS}, got {fmt!r} (from {path.name})")
    meshes = hand_trimeshes(vertices, faces, inside)
    if fmt == "ply":
        data = trimesh.util.concatenate(meshes).export(file_type="ply")
    else:
        scene = trimesh.Scene()
        for name, mesh in zip(HAND_NAMES, meshes):
            scene.add_geometry(mesh, geom_name=name, node_name=name)
        data = scene.export(file_type=fmt, **({"include_normals": True} if fmt == "obj" else {}))
    with atomic_path(path) as tmp:
        tmp.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path
