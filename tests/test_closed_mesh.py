"""Capping open surfaces."""

from __future__ import annotations

import numpy as np
import trimesh

from core_model.geometry.closed_mesh import boundary_loops, cap_holes, signed_volume


def test_capping_a_cylinder_open_at_both_ends_makes_it_watertight():
    tube = trimesh.creation.cylinder(radius=0.01, height=0.05, sections=16)
    side = tube.faces[np.abs(tube.face_normals[:, 2]) < 0.5]  # drop both end caps
    _, inverse = np.unique(side, return_inverse=True)
    faces = inverse.reshape(-1, 3)
    vertices = tube.vertices[np.unique(side)]
    assert len(boundary_loops(faces)) == 2
    closed = cap_holes(faces)
    mesh = trimesh.Trimesh(vertices, closed, process=False)
    assert mesh.is_watertight and mesh.is_winding_consistent
    np.testing.assert_allclose(signed_volume(vertices, closed), mesh.volume, rtol=1e-9)
    np.testing.assert_allclose(mesh.volume, tube.volume, rtol=1e-6)


def test_closed_surface_is_left_alone_and_inward_winding_gives_negative_volume():
    sphere = trimesh.creation.icosphere(subdivisions=2)
    np.testing.assert_array_equal(cap_holes(sphere.faces), sphere.faces)
    assert signed_volume(sphere.vertices, sphere.faces[:, ::-1]) < 0
