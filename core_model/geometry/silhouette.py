"""The silhouette of a triangle mesh seen from a point: the edges between a triangle facing that point and one facing
away (what VTK's vtkPolyDataSilhouette draws from a camera's position, without border edges).

Why not that filter: it rebuilds its edge map on every change, and the 3D view's meshes change every frame (~3 ms
per view in software GL). Here the adjacency is found once per mesh and each silhouette is a few vectorised
products.
"""

from __future__ import annotations

import numpy as np


def interior_edges(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The edges of ``faces`` [F, 3] shared by exactly two triangles: their end points [E, 2] and the two
    triangles [E, 2]."""
    edges = np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    owner = np.repeat(np.arange(len(faces)), 3)
    key = edges[:, 0] * (int(faces.max()) + 1) + edges[:, 1]
    order = np.argsort(key, kind="stable")
    key, edges, owner = key[order], edges[order], owner[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    counts = np.diff(np.r_[starts, len(key)])
    shared = starts[counts == 2]
    return edges[shared], np.stack([owner[shared], owner[shared + 1]], axis=1)


class SilhouetteEdges:
    """The interior edges of one triangle mesh (its ``faces`` [F, 3]), found once, and the silhouette among them of
    the mesh in any pose."""

    def __init__(self, faces: np.ndarray) -> None:
        self.faces = faces
        self.edges, self.sides = interior_edges(faces)

    def seen_from(self, points: np.ndarray, eye: np.ndarray) -> np.ndarray:
        """The edges [K, 2] (vertex indices) outlining the mesh with vertices ``points`` [V, 3] seen from ``eye``
        [3] (a perspective camera's position)."""
        a, b, c = (points[self.faces[:, i]] for i in range(3))
        normals = np.cross(b - a, c - a)
        towards = points[self.edges[:, 0]] - np.asarray(eye)
        facing = np.einsum("ij,ij->i", normals[self.sides[:, 0]], towards) * np.einsum(
            "ij,ij->i", normals[self.sides[:, 1]], towards)
        return self.edges[facing < 0]
