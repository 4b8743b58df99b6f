"""Silhouette edges: shared edges only, and from in front of a box exactly the outline of its front face."""

from __future__ import annotations

import numpy as np
import trimesh

from core_model.geometry.silhouette import SilhouetteEdges, interior_edges


def test_a_border_edge_is_not_interior():
    square = np.array([[0, 1, 2], [0, 2, 3]])  # two triangles sharing the diagonal 0-2
    edges, sides = interior_edges(square)
    assert edges.tolist() == [[0, 2]] and sorted(sides[0].tolist()) == [0, 1]


def test_a_box_seen_from_the_front_is_outlined_by_its_front_face():
    box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    points, faces = np.asarray(box.vertices), np.asarray(box.faces)
    assert len(interior_edges(faces)[0]) == 18  # 12 sides and 6 diagonals, each shared by two triangles
    outline = SilhouetteEdges(faces).seen_from(points, np.array([0.1, -0.2, 10.0]))
    assert len(outline) == 4
    assert np.allclose(points[outline][..., 2], 0.5)  # the face toward the eye
    assert np.all(np.count_nonzero(np.diff(points[outline], axis=1)[:, 0], axis=1) == 1)  # sides, no diagonal
