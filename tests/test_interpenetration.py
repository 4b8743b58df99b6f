"""Interpenetration detector: analytic cases, agreement with trimesh/Embree, gradients and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import roma
import torch
import trimesh

from core_model.geometry.interpenetration import (
    ClosedMesh,
    HandMeshes,
    InterpenetrationInputError,
    OpenMeshError,
    detect_interpenetration,
)
from core_model.handmodel.poses import articulation_to_pose, rest_frames, sample_articulations
from core_model.handmodel.registry import load_hand_model

BACKENDS = ("numpy", "torch")


def _pair(mesh_a: trimesh.Trimesh, mesh_b: trimesh.Trimesh) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    return np.stack([mesh_a.vertices, mesh_b.vertices])[None], (mesh_a.faces, mesh_b.faces)


def _sphere(radius: float, centre=(0.0, 0.0, 0.0)) -> trimesh.Trimesh:
    mesh = trimesh.creation.icosphere(subdivisions=2, radius=radius)
    mesh.apply_translation(centre)
    return mesh


def _box(lo, hi) -> trimesh.Trimesh:
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    box = trimesh.creation.box(extents=hi - lo)
    box.apply_translation((lo + hi) / 2)
    return box


@pytest.fixture(scope="module")
def hands():
    """Eight random frames of two OpenHand hands in contact, with their trimesh/Embree reference."""
    model = load_hand_model("openhand")
    rng = np.random.default_rng(3)
    torch.manual_seed(3)
    n = 8
    poses = [articulation_to_pose(torch.as_tensor(sample_articulations(rng, n), dtype=torch.float32),
                                  rest_frames(layer)) for layer in model.sides]
    orient = roma.rotmat_to_rotvec(roma.random_rotmat((n, 2), dtype=torch.float32))
    with torch.no_grad():
        out = model(torch.zeros(n, 2, 10), orient, torch.stack(poses, 1), torch.zeros(n, 2, 3))
    vertices = out.vertices.clone()
    i, j = rng.integers(0, vertices.shape[2], size=(2, n))
    shift = vertices[np.arange(n), 0, i] - vertices[np.arange(n), 1, j]
    vertices[:, 1] += (shift + torch.as_tensor(rng.normal(0, 0.005, (n, 3)), dtype=torch.float32))[:, None]
    meshes = HandMeshes.from_model(model)
    faces = (model.right.data.closed_faces, model.left.data.closed_faces)
    v64 = vertices.double().numpy()
    reference = np.zeros(v64.shape[:-1], dtype=bool)
    for k in range(n):
        for h in range(2):
            reference[k, h] = trimesh.Trimesh(v64[k, 1 - h], faces[1 - h], process=False).contains(v64[k, h])
    return vertices, meshes, faces, reference


@pytest.mark.parametrize("backend", BACKENDS)
def test_sphere_inside_sphere(backend):
    small, big = _sphere(0.3), _sphere(1.0)
    vertices, faces = _pair(small, big)
    result = detect_interpenetration(vertices, faces, backend=backend)
    assert result.backend == backend
    assert result.inside[0, 0].all() and not result.inside[0, 1].any()
    _, expected, _ = trimesh.proximity.closest_point(big, small.vertices)
    np.testing.assert_allclose(result.depth[0, 0], expected, atol=1e-9)  # convex: trimesh.proximity is exact
    assert (result.depth[0, 1] == 0).all()
    vertex_depth = detect_interpenetration(vertices, faces, backend=backend, depth="vertices").depth
    assert (vertex_depth[0, 0] >= result.depth[0, 0] - 1e-12).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_disjoint_spheres(backend):
    vertices, faces = _pair(_sphere(0.5), _sphere(0.5, (1.2, 0.3, 0.0)))
    result = detect_interpenetration(vertices, faces, backend=backend)
    assert not result.inside.any() and (result.depth == 0).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_touching_spheres_share_a_vertex(backend):
    a = _sphere(0.5)
    b = _sphere(0.5)
    top = a.vertices[np.argmax(a.vertices[:, 0])]
    b.apply_translation(top - b.vertices[np.argmin(b.vertices[:, 0])])   # b's leftmost vertex on a's rightmost
    vertices, faces = _pair(a, b)
    result = detect_interpenetration(vertices, faces, backend=backend)
    assert not result.inside.any() and (result.depth == 0).all()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("lo", "hi", "where"), [
    ((1.0, -0.5, -0.5), (3.0, 1.5, 1.5), "vertex of b on a face of a, a vertex of a on a face of b"),
    ((1.0, 0.0, 1.0), (3.0, 2.0, 3.0), "vertex of b on an edge of a"),
    ((1.0, 1.0, 1.0), (3.0, 3.0, 3.0), "vertex on vertex"),
])
def test_boxes_touching_exactly(backend, lo, hi, where):
    vertices, faces = _pair(_box((-1, -1, -1), (1, 1, 1)), _box(lo, hi))
    result = detect_interpenetration(vertices, faces, backend=backend)
    assert not result.inside.any(), where
    assert (result.depth == 0).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_rays_through_vertices_and_edges(backend):
    """Query points straight below a pole vertex, and below the diagonal edges of a box's top face."""
    sphere = trimesh.creation.uv_sphere(radius=1.0, count=[16, 16])      # pole vertices on the z axis
    inner = trimesh.Trimesh(sphere.vertices * 0.2, sphere.faces)
    inner.vertices[:, :2] = np.round(inner.vertices[:, :2], 6)
    vertices, faces = _pair(inner, sphere)
    assert (np.abs(inner.vertices[:, :2]).sum(1) == 0).any()             # some rays run through the pole
    result = detect_interpenetration(vertices, faces, backend=backend)
    assert result.inside[0, 0].all() and not result.inside[0, 1].any()
    box = _box((-1, -1, -1), (1, 1, 1))
    small = _box((-0.5, -0.5, -0.5), (0.5, 0.5, 0.5))                    # its vertices sit below box diagonals
    small.vertices[:] = np.array([[0, 0, 0.5], [0, 0, -0.5], [0.25, 0.25, 0], [-0.25, -0.25, 0],
                                  [0.25, -0.25, 0.1], [-0.25, 0.25, -0.1], [0.0, 0.0, 0.2], [0.0, 0.0, -0.2]])
    vertices, faces = _pair(small, box)
    assert detect_interpenetration(vertices, faces, backend=backend).inside[0, 0].all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_hands_agree_with_trimesh_embree(hands, backend):
    vertices, meshes, _, reference = hands
    result = detect_interpenetration(vertices, meshes, backend=backend, fill_rule="evenodd")
    inside = np.asarray(result.inside)
    assert reference.any() and (~reference).any()
    assert (inside == reference).mean() >= 0.999


def test_backends_agree_exactly_and_depth_is_exact(hands):
    vertices, meshes, faces, _ = hands
    a = detect_interpenetration(vertices.double(), meshes, backend="numpy")
    b = detect_interpenetration(vertices.double(), meshes, backend="torch")
    assert torch.equal(a.inside, b.inside)
    torch.testing.assert_close(a.depth, b.depth, atol=1e-12, rtol=0)
    v = vertices.double().numpy()
    k, h = 0, 0
    idx = np.flatnonzero(a.inside[k, h].numpy())[:20]
    assert len(idx)
    # Brute force over every triangle with trimesh's own point-triangle routine (trimesh.proximity prunes
    # candidates and was seen returning points up to 5 µm farther than the closest one).
    tri = v[k, 1][faces[1]]
    points = np.repeat(v[k, 0, idx], len(tri), axis=0)
    closest = trimesh.triangles.closest_point(np.tile(tri, (len(idx), 1, 1)), points)
    expected = np.linalg.norm(closest - points, axis=1).reshape(len(idx), len(tri)).min(1)
    np.testing.assert_allclose(a.depth[k, h, idx].numpy(), expected, atol=1e-10)


def test_auto_backend_and_types(hands):
    vertices, meshes, _, _ = hands
    assert detect_interpenetration(vertices[:1], meshes).backend == "numpy"
    numpy_result = detect_interpenetration(vertices[:1].numpy(), meshes)
    assert isinstance(numpy_result.inside, np.ndarray) and numpy_result.inside.shape == (1, 2, vertices.shape[2])
    grad = vertices[:1].clone().requires_grad_(True)
    result = detect_interpenetration(grad, meshes)
    assert result.backend == "torch" and result.depth.dtype == torch.float32
    mask_only = detect_interpenetration(vertices[:2], meshes, depth="none")
    assert torch.equal(mask_only.inside, detect_interpenetration(vertices[:2], meshes).inside)
    assert (mask_only.depth == 0).all()
    # [B, T] leading dims are kept
    bt = detect_interpenetration(vertices[:4].reshape(2, 2, 2, -1, 3), meshes)
    assert bt.inside.shape == (2, 2, 2, vertices.shape[2]) and bt.max_depth().shape == (2, 2, 2)


@pytest.mark.parametrize("depth", ["surface", "vertices"])
def test_depth_is_differentiable(hands, depth):
    vertices, meshes, _, _ = hands
    v = vertices[:2].clone().requires_grad_(True)
    result = detect_interpenetration(v, meshes, depth=depth)
    assert result.inside.any()
    result.depth.sum().backward()
    assert torch.isfinite(v.grad).all() and v.grad.abs().sum() > 0
    # gradients reach both the penetrating vertices and the other hand's surface
    assert v.grad[:, 0].abs().sum() > 0 and v.grad[:, 1].abs().sum() > 0


def test_fill_rules_differ_only_where_the_other_hand_overlaps_itself():
    outer = _box((-1, -1, -1), (1, 1, 1))
    doubled = trimesh.util.concatenate([outer, _box((-0.5, -0.5, -0.5), (0.5, 0.5, 0.5))])  # winding 2 in the core
    probe = trimesh.Trimesh(np.zeros((16, 3)) + [[0.1, 0.2, 0.3]] * np.arange(16)[:, None] / 16, doubled.faces[:0])
    points = probe.vertices
    vertices = np.stack([points, doubled.vertices[:16]])[None]
    faces = (doubled.faces, doubled.faces)
    nonzero = detect_interpenetration(vertices, faces, fill_rule="nonzero").inside[0, 0]
    evenodd = detect_interpenetration(vertices, faces, fill_rule="evenodd").inside[0, 0]
    core = (np.abs(points) < 0.5).all(1)
    assert nonzero.all() and (evenodd == ~core).all()


def test_bad_input_names_the_argument(hands):
    vertices, meshes, faces, _ = hands
    v = vertices[:1].clone()
    for bad in (float("nan"), float("inf")):
        broken = v.clone()
        broken[0, 1, 5, 2] = bad
        with pytest.raises(InterpenetrationInputError, match="vertices: contains NaN or inf"):
            detect_interpenetration(broken, meshes)
    with pytest.raises(InterpenetrationInputError, match="vertices: empty batch"):
        detect_interpenetration(v[:0], meshes)
    with pytest.raises(InterpenetrationInputError, match=r"vertices: expected shape \[..., 2, V, 3\]"):
        detect_interpenetration(v[..., :2], meshes)
    with pytest.raises(InterpenetrationInputError, match=r"vertices: expected shape"):
        detect_interpenetration(torch.cat([v, v[:, :1]], 1), meshes)
    with pytest.raises(InterpenetrationInputError, match="vertices: faces"):
        detect_interpenetration(v[:, :, :100], meshes)
    open_faces = faces[0][1:]
    with pytest.raises(OpenMeshError, match=r"faces\[0\] \(right\): open mesh"):
        detect_interpenetration(v, (open_faces, faces[1]))
    with pytest.raises(OpenMeshError, match="same direction"):
        ClosedMesh.from_faces(np.concatenate([faces[0], faces[0][:1]]))
    with pytest.raises(InterpenetrationInputError, match="faces:"):
        detect_interpenetration(v, faces[0])
    with pytest.raises(InterpenetrationInputError, match="backend:"):
        detect_interpenetration(v, meshes, backend="embree")
    with pytest.raises(ValueError, match="depth:"):
        detect_interpenetration(v, meshes, depth="deep")
