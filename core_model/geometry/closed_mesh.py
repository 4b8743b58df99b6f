"""Closing open surfaces (MANO's wrist) so that inside/outside tests and volumes are defined."""

from __future__ import annotations

from collections import defaultdict

import numpy as np


def boundary_loops(faces: np.ndarray) -> list[np.ndarray]:
    """Ordered vertex loops of the boundary edges, each following the winding of its adjacent faces."""
    faces = np.asarray(faces)
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    undirected = defaultdict(int)
    for a, b in edges:
        undirected[min(a, b), max(a, b)] += 1
    # A boundary edge a->b borders one face; walking the loop the opposite way (b->a) gives the cap's winding.
    nxt = {int(b): int(a) for a, b in edges if undirected[min(a, b), max(a, b)] == 1}
    loops = []
    while nxt:
        start = next(iter(nxt))
        loop = [start]
        while True:
            step = nxt.pop(loop[-1], None)
            if step is None:
                raise ValueError("faces: boundary is not a set of simple loops (non-manifold edge)")
            if step == start:
                break
            loop.append(step)
        loops.append(np.array(loop))
    return loops


def cap_holes(faces: np.ndarray) -> np.ndarray:
    """``faces`` plus triangles closing every boundary loop, using only existing vertices.

    Each loop is triangulated as a fan from its first vertex, which is valid for a convex, nearly planar ring
    such as MANO's wrist; no vertex is added, so the vertex count (and every
    per-vertex array) stays the model's own. The cap follows the surface's winding, so a consistently wound
    surface stays consistently wound.
    """
    caps = []
    for loop in boundary_loops(faces):
        caps += [(loop[0], loop[i], loop[i + 1]) for i in range(1, len(loop) - 1)]
    if not caps:
        return np.asarray(faces).copy()
    return np.concatenate([faces, np.array(caps, dtype=np.asarray(faces).dtype)])


def signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Volume enclosed by a closed surface; negative when its faces wind inward."""
    tri = np.asarray(vertices, dtype=np.float64)[np.asarray(faces)]
    return float(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0)
