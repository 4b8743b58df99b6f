"""Vertex normals of triangle meshes, for shading (the 3D view, every frame) and for telling the palm side of a hand
from its back (the synthetic hands' appearance).

Why not trimesh, which the project already uses: ``Trimesh.vertex_normals`` weighs each face by its corner angle,
which on OpenHand's rest mesh turns normals up to 43 degrees away from these (visible as changed shading), and
costs 5x as much per frame; ``trimesh.geometry.mean_vertex_normals`` given the unnormalised face normals gives
these to 2e-16 at the same speed, but importing trimesh costs the viewer, which otherwise never does, ~0.5 s.
"""

from __future__ import annotations

import numpy as np


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals [V, 3] of the triangle mesh ``vertices`` [V, 3], ``faces`` [F, 3]: the
    sum of the cross products of the faces around each vertex (each one's length is twice its face's area),
    normalised. They point to the side from which the faces' vertices run counter-clockwise; a vertex on no face
    gets a zero normal."""
    a, b, c = (vertices[faces[:, i]] for i in range(3))
    face_n = np.cross(b - a, c - a)
    normals = np.zeros_like(vertices)
    for i in range(3):
        for axis in range(3):
            normals[:, axis] += np.bincount(faces[:, i], face_n[:, axis], minlength=len(vertices))
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
