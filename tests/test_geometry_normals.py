"""Vertex normals: outward on a closed sphere, area-weighted as trimesh's mean of unnormalised face normals,
zero on a vertex no face uses."""

from __future__ import annotations

import numpy as np
import trimesh

from core_model.geometry.normals import vertex_normals


def test_normals_of_a_sphere_point_outward():
    sphere = trimesh.creation.icosphere(subdivisions=3)
    normals = vertex_normals(np.asarray(sphere.vertices), np.asarray(sphere.faces))
    radial = sphere.vertices / np.linalg.norm(sphere.vertices, axis=1, keepdims=True)
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-12)
    assert np.einsum("ij,ij->i", normals, radial).min() > 0.999


def test_normals_weigh_faces_by_area_and_skip_unused_vertices():
    rng = np.random.default_rng(0)
    vertices = rng.normal(size=(40, 3))
    faces = np.array([rng.choice(39, 3, replace=False) for _ in range(60)])  # vertex 39 is on no face
    a, b, c = (vertices[faces[:, i]] for i in range(3))
    expected = trimesh.geometry.mean_vertex_normals(len(vertices), faces, np.cross(b - a, c - a))
    normals = vertex_normals(vertices, faces)
    np.testing.assert_allclose(normals, expected, atol=1e-12)
    assert np.array_equal(normals[39], np.zeros(3))
