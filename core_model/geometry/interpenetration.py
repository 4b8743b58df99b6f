"""Which vertices of each hand lie inside the other hand, and how deep (paper section 3.1, DESIGN section 6).

The inside test is the paper's ray casting, made exact: from every vertex a ray goes up the z axis and the
crossings of the other hand's closed mesh are counted. Rays through an edge or a vertex of the mesh are settled
by simulation of simplicity: each edge's side test is computed once per undirected edge (so the two faces sharing
it see exactly opposite signs) and a tie (exactly zero) is broken as if the vertex were moved by an infinitesimal
``(eps, eps**2)`` in the xy plane. Every ray therefore crosses a closed surface a consistent number of times, with
no random re-casting. Triangles are paired with rays through a uniform xy grid, after a bounding-box pre-filter
that drops every vertex outside the other hand's box.

Two back ends, one function (:func:`detect_interpenetration`):

- ``torch``: all frames at once on CPU or CUDA; penetration depth keeps gradients (training, eq. 6);
- ``numpy``: one frame at a time on the CPU, for the viewer; no torch threading, no per-frame BVH build (an
  Embree scene rebuild alone costs about 1 ms per hand here, more than this whole test).

``depth`` is the distance from an inside vertex to the other hand's surface (exact point-to-triangle distance),
or, with ``depth="vertices"``, the paper's cheaper distance to the other hand's vertex set. A vertex whose ray
meets the other surface within ``touch_tol`` of its start lies on that surface: touching, not inside.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from core_model.geometry.triangles import closest_point_on_triangle, point_triangle_distance

Backend = Literal["auto", "torch", "numpy"]
DepthMode = Literal["surface", "vertices", "none"]
FillRule = Literal["nonzero", "evenodd"]

TOUCH_TOL = 1e-6
"""Metres: a vertex whose ray meets the other surface this close to its start is on it (touching)."""
RAY_FRAME = Rotation.from_rotvec([0.31, -0.57, 0.23]).as_matrix()
"""Rows: the axes of the frame the test runs in; rays go along its z. A generic direction keeps the mesh's own
axis-aligned faces (boxes in tests) from standing exactly parallel to the rays, where a vertex lying on such a
face would not be seen as touching it."""
GRID_CELLS = 48
"""Grid cells per axis over a hand's xy bounding box in the torch back end (about 4 mm for a 20 cm hand)."""


class InterpenetrationInputError(ValueError):
    """Bad input to the interpenetration detector; the message names the argument."""


class OpenMeshError(InterpenetrationInputError):
    """The faces do not close a surface: inside and outside are undefined."""


# ----------------------------------------------------------------------------------------------- topology


@dataclasses.dataclass(frozen=True)
class ClosedMesh:
    """One hand's closed, consistently wound triangle mesh, with the edge tables the ray test needs.

    faces: [F, 3] int64; edges: [E, 2] int64, each undirected edge once with ``edges[:, 0] < edges[:, 1]``;
    face_edges: [F, 3] index into ``edges`` of the face's edges (v0v1, v1v2, v2v0); face_flips: [F, 3] +1 where
    the face walks its edge from the lower to the higher vertex index, else -1.
    """

    faces: np.ndarray
    edges: np.ndarray
    face_edges: np.ndarray
    face_flips: np.ndarray

    @classmethod
    def from_faces(cls, faces, name: str = "faces") -> ClosedMesh:
        """Validate ``faces`` (watertight, every edge shared by two faces walking it in opposite directions)."""
        faces = np.asarray(faces.detach().cpu() if isinstance(faces, torch.Tensor) else faces)
        if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0 or not np.issubdtype(faces.dtype, np.integer):
            raise InterpenetrationInputError(f"{name}: expected integer faces of shape [F, 3], F > 0, got "
                                             f"{faces.dtype} {faces.shape}")
        if faces.min() < 0:
            raise InterpenetrationInputError(f"{name}: negative vertex index {faces.min()}")
        faces = faces.astype(np.int64)
        directed = np.stack([faces, np.roll(faces, -1, axis=1)], axis=-1).reshape(-1, 2)
        if (directed[:, 0] == directed[:, 1]).any():
            raise OpenMeshError(f"{name}: degenerate face (a vertex repeated)")
        n = int(faces.max()) + 1
        keys = directed[:, 0] * n + directed[:, 1]
        if len(np.unique(keys)) != len(keys):
            raise OpenMeshError(f"{name}: an edge is walked twice in the same direction (non-manifold or "
                                f"inconsistent winding)")
        reverse = directed[:, 1] * n + directed[:, 0]
        unmatched = ~np.isin(reverse, keys)
        if unmatched.any():
            a, b = directed[np.argmax(unmatched)]
            raise OpenMeshError(f"{name}: open mesh, {int(unmatched.sum())} boundary edges (e.g. {a}-{b}); cap "
                                f"the holes first (core_model.geometry.closed_mesh.cap_holes, or a model's "
                                f"closed_faces)")
        low, high = directed.min(1), directed.max(1)
        canonical, index = np.unique(low * n + high, return_inverse=True)
        edges = np.stack([canonical // n, canonical % n], axis=1)
        flips = np.where(directed[:, 0] < directed[:, 1], 1, -1).reshape(-1, 3)
        return cls(faces, edges, index.reshape(-1, 3).astype(np.int64), flips.astype(np.int64))

    @functools.cached_property
    def corner_lists(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The faces' first, second and third corners as three contiguous [F] arrays."""
        return tuple(np.ascontiguousarray(self.faces[:, k]) for k in range(3))

    @property
    def num_vertices_used(self) -> int:
        return int(self.faces.max()) + 1

    @functools.cached_property
    def _torch_cache(self) -> dict:
        return {}

    def torch_tables(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(faces, edges, face_edges, face_flips) as torch tensors on ``device``, made once per device."""
        key = str(device)
        if key not in self._torch_cache:
            self._torch_cache[key] = tuple(torch.as_tensor(a, device=device)
                                           for a in (self.faces, self.edges, self.face_edges, self.face_flips))
        return self._torch_cache[key]


@dataclasses.dataclass(frozen=True)
class HandMeshes:
    """The closed meshes of the right (0) and left (1) hand, validated once and reused every frame."""

    right: ClosedMesh
    left: ClosedMesh

    def __getitem__(self, hand: int) -> ClosedMesh:
        return (self.right, self.left)[hand]

    @classmethod
    def from_model(cls, model) -> HandMeshes:
        """From a ``core_model.handmodel`` ``HandModel`` (its watertight ``closed_faces``)."""
        return hand_meshes((model.right.data.closed_faces, model.left.data.closed_faces))


@functools.lru_cache(maxsize=16)
def _cached_meshes(digest: str, right: bytes, left: bytes, shapes: tuple) -> HandMeshes:
    arrays = [np.frombuffer(raw, dtype=np.int64).reshape(shape) for raw, shape in zip((right, left), shapes)]
    return HandMeshes(ClosedMesh.from_faces(arrays[0], "faces[0] (right)"),
                      ClosedMesh.from_faces(arrays[1], "faces[1] (left)"))


def hand_meshes(faces: HandMeshes | Sequence) -> HandMeshes:
    """Accept prepared :class:`HandMeshes` or a (right, left) pair of face arrays (validated once, cached)."""
    if isinstance(faces, HandMeshes):
        return faces
    if not isinstance(faces, Sequence) or len(faces) != 2:
        raise InterpenetrationInputError("faces: expected HandMeshes or a (right, left) pair of [F, 3] face arrays")
    arrays = []
    for h, f in enumerate(faces):
        f = np.asarray(f.detach().cpu() if isinstance(f, torch.Tensor) else f)
        if not np.issubdtype(f.dtype, np.integer):
            raise InterpenetrationInputError(f"faces[{h}]: expected integer vertex indices, got {f.dtype}")
        arrays.append(np.ascontiguousarray(f, dtype=np.int64))
    raw = [a.tobytes() for a in arrays]
    digest = hashlib.blake2b(raw[0] + b"|" + raw[1], digest_size=16).hexdigest()
    return _cached_meshes(digest, raw[0], raw[1], tuple(a.shape for a in arrays))


# ----------------------------------------------------------------------------------------------- result


@dataclasses.dataclass
class Interpenetration:
    """Per-vertex result for frames ``[...]`` (for example ``[B, T]``); hand axis 0 = right, 1 = left.

    inside: [..., 2, V] bool, vertex of hand h inside the other hand's closed mesh (Inter(V^h), eq. 4);
    depth: [..., 2, V] metres, distance to the other hand's surface (or vertex set) where inside, else 0;
    backend: the back end that ran; depth_mode: ``'surface'`` or ``'vertices'``.
    Arrays are torch tensors when the vertices were, else numpy arrays.
    """

    inside: torch.Tensor | np.ndarray
    depth: torch.Tensor | np.ndarray
    backend: str
    depth_mode: str

    def max_depth(self):
        """[..., 2] deepest penetration of each hand's vertices into the other hand (0 without contact)."""
        return self.depth.max(-1).values if isinstance(self.depth, torch.Tensor) else self.depth.max(-1)


# ----------------------------------------------------------------------------------------------- checks


def _check_vertices(vertices, meshes: HandMeshes) -> None:
    if not isinstance(vertices, torch.Tensor | np.ndarray):
        raise InterpenetrationInputError(f"vertices: expected a torch.Tensor or numpy array, got "
                                         f"{type(vertices).__name__}")
    shape = tuple(vertices.shape)
    if len(shape) < 3 or shape[-3] != 2 or shape[-1] != 3:
        raise InterpenetrationInputError(f"vertices: expected shape [..., 2, V, 3] (hand axis 0 = right, "
                                         f"1 = left), got {shape}")
    if int(np.prod(shape[:-3], dtype=np.int64)) == 0 or shape[-2] == 0:
        raise InterpenetrationInputError(f"vertices: empty batch, shape {shape}")
    for h in range(2):
        if meshes[h].num_vertices_used > shape[-2]:
            raise InterpenetrationInputError(f"vertices: faces[{h}] index vertex {meshes[h].num_vertices_used - 1} "
                                             f"but vertices has only V = {shape[-2]} per hand")
    if isinstance(vertices, torch.Tensor):
        if not vertices.is_floating_point():
            raise InterpenetrationInputError(f"vertices: expected floating point, got {vertices.dtype}")
        finite = bool(torch.isfinite(vertices).all())
    else:
        if not np.issubdtype(vertices.dtype, np.floating):
            raise InterpenetrationInputError(f"vertices: expected floating point, got {vertices.dtype}")
        finite = bool(np.isfinite(vertices).all())
    if not finite:
        raise InterpenetrationInputError("vertices: contains NaN or inf")


# ----------------------------------------------------------------------------------------------- shared kernel


def _crossings(px, py, pz, a, b, c, eu, ev, flips, touch_tol: float, xp):
    """Evaluate (ray, triangle) pairs: signed crossing (+1 / -1 / 0) and 'touching' per pair.

    px, py, pz [P]: ray origins (rays go to +z); a, b, c: triples of [P] coordinate arrays of the triangle's
    corners in face order; eu, ev: pairs (x, y) of [P, 3] arrays, the lower- and higher-index end of each of
    the triangle's three edges (canonical direction); flips [P, 3]: +1 where the face walks that edge
    canonically. Array-library agnostic (numpy or torch through ``xp.where``).
    """
    ex, ey = ev[0] - eu[0], ev[1] - eu[1]
    side = ex * (py[:, None] - eu[1]) - ey * (px[:, None] - eu[0])  # [P, 3], once per undirected edge
    # Simulation of simplicity: a point exactly on the edge's line moves by (eps, eps^2).
    tie = xp.where(ey != 0, -ey, ex)
    side = xp.where(side == 0, tie, side)
    sign = xp.where(side > 0, 1, -1) * flips
    within = (sign[:, 0] == sign[:, 1]) & (sign[:, 1] == sign[:, 2])
    abx, aby, abz = b[0] - a[0], b[1] - a[1], b[2] - a[2]
    acx, acy, acz = c[0] - a[0], c[1] - a[1], c[2] - a[2]
    nz = abx * acy - aby * acx
    # n . (a - p): the plane lies above p where this has the sign of n_z (= the projected orientation).
    height = ((aby * acz - abz * acy) * (a[0] - px) + (abz * acx - abx * acz) * (a[1] - py) + nz * (a[2] - pz))
    orient = sign[:, 0]
    touching = within & (abs(height) <= touch_tol * abs(nz))
    crossing = within & ~touching & (height * orient > 0)
    return xp.where(crossing, orient, 0), touching


def _decide(winding, count, touching, fill_rule: str, xp):
    inside = (count % 2 == 1) if fill_rule == "evenodd" else (winding != 0)
    return inside & ~touching


# ----------------------------------------------------------------------------------------------- numpy


def _to_ray_frame(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r = RAY_FRAME
    return tuple(r[i, 0] * x + r[i, 1] * y + r[i, 2] * z for i in range(3))


def _numpy_inside(points: np.ndarray, verts: np.ndarray, mesh: ClosedMesh, touch_tol: float,
                  fill_rule: str) -> np.ndarray:
    """Inside mask [M] of ``points`` [M, 3] against the closed mesh ``verts`` [V, 3], one frame.

    Coordinates are kept as separate contiguous x, y, z arrays: numpy reduces over a length-3 axis slowly.
    """
    inside = np.zeros(len(points), dtype=bool)
    X, Y, Z = (np.ascontiguousarray(verts[:, i]) for i in range(3))
    lo = np.array([X.min(), Y.min(), Z.min()])
    hi = np.array([X.max(), Y.max(), Z.max()])
    qx, qy, qz = points[:, 0], points[:, 1], points[:, 2]
    cand = np.flatnonzero((qx >= lo[0] - touch_tol) & (qx <= hi[0] + touch_tol) & (qy >= lo[1] - touch_tol)
                          & (qy <= hi[1] + touch_tol) & (qz >= lo[2] - touch_tol) & (qz <= hi[2] + touch_tol))
    if len(cand) == 0:
        return inside
    center = (lo + hi) / 2                                           # small coordinates keep precision
    X, Y, Z = _to_ray_frame(X - center[0], Y - center[1], Z - center[2])
    px, py, pz = _to_ray_frame(qx[cand] - center[0], qy[cand] - center[1], qz[cand] - center[2])
    f0, f1, f2 = mesh.corner_lists
    tx = (X[f0], X[f1], X[f2])
    ty = (Y[f0], Y[f1], Y[f2])
    tzmax = np.maximum(np.maximum(Z[f0], Z[f1]), Z[f2])
    txmin, txmax = np.minimum(np.minimum(*tx[:2]), tx[2]), np.maximum(np.maximum(*tx[:2]), tx[2])
    tymin, tymax = np.minimum(np.minimum(*ty[:2]), ty[2]), np.maximum(np.maximum(*ty[:2]), ty[2])
    x0, y0 = px.min(), py.min()
    x1, y1 = px.max(), py.max()
    keep = np.flatnonzero((tzmax >= pz.min() - touch_tol) & (txmax >= x0) & (txmin <= x1) & (tymax >= y0)
                          & (tymin <= y1))
    if len(keep) == 0:
        return inside
    # Uniform xy grid over the points' extent, cells about one mean triangle across.
    bx0, bx1, by0, by1 = txmin[keep], txmax[keep], tymin[keep], tymax[keep]
    cell = max(float(np.mean(bx1 - bx0) + np.mean(by1 - by0)) / 2, max(x1 - x0, y1 - y0) / 256, 1e-9)
    nx, ny = int((x1 - x0) / cell) + 1, int((y1 - y0) / cell) + 1
    cx0 = np.clip(((bx0 - x0) / cell).astype(np.int64), 0, nx - 1)
    cx1 = np.clip(((bx1 - x0) / cell).astype(np.int64), 0, nx - 1)
    cy0 = np.clip(((by0 - y0) / cell).astype(np.int64), 0, ny - 1)
    cy1 = np.clip(((by1 - y0) / cell).astype(np.int64), 0, ny - 1)
    width = cx1 - cx0 + 1
    counts = width * (cy1 - cy0 + 1)
    total = int(counts.sum())
    offset = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    width = np.repeat(width, counts)
    cell_id = (np.repeat(cy0, counts) + offset // width) * nx + np.repeat(cx0, counts) + offset % width
    order = np.argsort(cell_id, kind="stable")
    cell_tri = np.repeat(keep, counts)[order]
    per_cell = np.bincount(cell_id, minlength=nx * ny)
    cell_start = np.cumsum(per_cell) - per_cell
    p_id = ((py - y0) / cell).astype(np.int64).clip(0, ny - 1) * nx + ((px - x0) / cell).astype(np.int64).clip(
        0, nx - 1)
    p_count = per_cell[p_id]
    n_pairs = int(p_count.sum())
    if n_pairs == 0:
        return inside
    pair_pt = np.repeat(np.arange(len(px)), p_count)
    pair_tri = cell_tri[np.repeat(cell_start[p_id] - (np.cumsum(p_count) - p_count), p_count) + np.arange(n_pairs)]
    # Cheap rejection before the exact test: the ray starts above the triangle or misses its box.
    rx, ry, rz = px[pair_pt], py[pair_pt], pz[pair_pt]
    ok = np.flatnonzero((rz <= tzmax[pair_tri] + touch_tol) & (rx >= txmin[pair_tri]) & (rx <= txmax[pair_tri])
                        & (ry >= tymin[pair_tri]) & (ry <= tymax[pair_tri]))
    pair_pt, pair_tri, rx, ry, rz = pair_pt[ok], pair_tri[ok], rx[ok], ry[ok], rz[ok]
    corners = [mesh.faces[pair_tri, k] for k in range(3)]
    a, b, c = ((X[i], Y[i], Z[i]) for i in corners)
    edges = mesh.edges[mesh.face_edges[pair_tri]]                    # [P, 3, 2]
    eu, ev = (X[edges[..., 0]], Y[edges[..., 0]]), (X[edges[..., 1]], Y[edges[..., 1]])
    step, touching = _crossings(rx, ry, rz, a, b, c, eu, ev, mesh.face_flips[pair_tri], touch_tol, np)
    K = len(px)
    winding = np.bincount(pair_pt, weights=step, minlength=K)
    count = np.bincount(pair_pt[step != 0], minlength=K)
    touch = np.bincount(pair_pt[touching], minlength=K) > 0
    inside[cand] = _decide(np.rint(winding).astype(np.int64), count, touch, fill_rule, np)
    return inside


def _numpy_depth(points: np.ndarray, verts: np.ndarray, mesh: ClosedMesh, depth_mode: str) -> np.ndarray:
    """Distance of ``points`` [K, 3] to the mesh surface (or its vertices), one frame.

    Exact, with k-d trees instead of all pairs (and no BLAS, whose threads stall on a busy 2-core machine):
    the nearest vertex bounds the answer from above, so only triangles whose bounding sphere comes within that
    bound are measured. The few triangles much larger than the rest (a wrist cap) are always measured.
    """
    nearest_vertex = cKDTree(verts).query(points)[0]
    if depth_mode == "vertices":
        return nearest_vertex
    tri = verts[mesh.faces]
    centre = (tri[:, 0] + tri[:, 1] + tri[:, 2]) / 3
    radius = np.sqrt(np.maximum(np.maximum(((tri[:, 0] - centre) ** 2).sum(1), ((tri[:, 1] - centre) ** 2).sum(1)),
                                ((tri[:, 2] - centre) ** 2).sum(1)))
    limit = 3 * float(radius.mean())
    large = np.flatnonzero(radius > limit)
    small = np.flatnonzero(radius <= limit)
    tree = cKDTree(centre[small])
    # A tighter bound than the nearest vertex: the exact distance to the triangles with the nearest centres.
    k = min(8, len(small))
    near = small[tree.query(points, k=k)[1].reshape(len(points), k)]
    bound = point_triangle_distance(points[:, None], tri[near, 0], tri[near, 1], tri[near, 2], np).min(1)
    bound = np.minimum(bound, nearest_vertex)
    found = tree.query_ball_point(points, bound + limit + 1e-9, return_sorted=False)
    counts = np.fromiter(map(len, found), dtype=np.int64, count=len(found))
    pt = np.repeat(np.arange(len(points)), counts)
    tr = small[np.concatenate(found).astype(np.int64)] if counts.sum() else np.zeros(0, dtype=np.int64)
    if len(large):
        pt = np.concatenate([pt, np.repeat(np.arange(len(points)), len(large))])
        tr = np.concatenate([tr, np.tile(large, len(points))])
    gap = points[pt] - centre[tr]
    keep = np.flatnonzero((gap * gap).sum(1) <= (bound[pt] + radius[tr] + 1e-9) ** 2)
    pt, tr = pt[keep], tr[keep]
    dist = point_triangle_distance(points[pt], tri[tr, 0], tri[tr, 1], tri[tr, 2], np)
    out = bound.copy()
    np.minimum.at(out, pt, dist)
    return out


def _numpy_backend(vertices: np.ndarray, meshes: HandMeshes, depth_mode: str, touch_tol: float,
                   fill_rule: str) -> tuple[np.ndarray, np.ndarray]:
    lead = vertices.shape[:-3]
    flat = vertices.reshape(-1, 2, vertices.shape[-2], 3).astype(np.float64, copy=False)
    inside = np.zeros(flat.shape[:-1], dtype=bool)
    depth = np.zeros(flat.shape[:-1], dtype=np.float64)
    for i, frame in enumerate(flat):
        for h in range(2):
            other = meshes[1 - h]
            mask = _numpy_inside(frame[h], frame[1 - h], other, touch_tol, fill_rule)
            inside[i, h] = mask
            if mask.any() and depth_mode != "none":
                depth[i, h, mask] = _numpy_depth(frame[h, mask], frame[1 - h], other, depth_mode)
    shape = (*lead, 2, vertices.shape[-2])
    return inside.reshape(shape), depth.astype(vertices.dtype, copy=False).reshape(shape)


# ----------------------------------------------------------------------------------------------- torch


def _torch_inside(points: torch.Tensor, verts: torch.Tensor, mesh: ClosedMesh, touch_tol: float,
                  fill_rule: str) -> torch.Tensor:
    """Inside mask [N, M] of ``points`` [N, M, 3] against meshes ``verts`` [N, V, 3] (no gradients)."""
    device = points.device
    faces, edges, face_edges, face_flips = mesh.torch_tables(device)
    N, M, _ = points.shape
    inside = torch.zeros(N, M, dtype=torch.bool, device=device)
    lo, hi = verts.amin(1), verts.amax(1)                              # [N, 3]
    cand_n, cand_m = torch.nonzero(((points >= (lo - touch_tol)[:, None]) &
                                    (points <= (hi + touch_tol)[:, None])).all(-1), as_tuple=True)
    if cand_n.numel() == 0:
        return inside
    center = (lo + hi) / 2
    frame_rows = torch.as_tensor(RAY_FRAME, dtype=points.dtype, device=device)
    P = (points[cand_n, cand_m] - center[cand_n]) @ frame_rows.T        # [K, 3]
    W = (verts - center[:, None]) @ frame_rows.T                       # [N, V, 3]
    lo, hi = W.amin(1), W.amax(1)                                      # the box again, in the ray frame
    center = torch.zeros_like(center)
    tri = W[:, faces]                                                  # [N, F, 3, 3]
    tmin, tmax = tri.amin(2), tri.amax(2)                              # [N, F, 3]
    F = faces.shape[0]
    G = GRID_CELLS
    origin = (lo - center)[:, :2]                                      # grid over each mesh's xy box
    cell = ((hi - lo)[:, :2].amax(1) / G).clamp_min(1e-9)              # [N]

    def to_cell(xy: torch.Tensor, frame: torch.Tensor) -> torch.Tensor:
        return ((xy - origin[frame]) / cell[frame, None]).floor().long().clamp(0, G - 1)

    frame_of_tri = torch.arange(N, device=device).repeat_interleave(F)
    lo_cell = to_cell(tmin[..., :2].reshape(-1, 2), frame_of_tri)
    hi_cell = to_cell(tmax[..., :2].reshape(-1, 2), frame_of_tri)
    span = hi_cell - lo_cell + 1
    counts = span[:, 0] * span[:, 1]
    total = int(counts.sum())
    starts = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts, output_size=total)
    offset = torch.arange(total, device=device) - starts
    width = torch.repeat_interleave(span[:, 0], counts, output_size=total)
    cell_x = torch.repeat_interleave(lo_cell[:, 0], counts, output_size=total) + offset % width
    cell_y = torch.repeat_interleave(lo_cell[:, 1], counts, output_size=total) + offset // width
    tri_flat = torch.arange(N * F, device=device)
    cell_id = (torch.repeat_interleave(frame_of_tri, counts, output_size=total) * G + cell_y) * G + cell_x
    cell_id, order = torch.sort(cell_id, stable=True)
    cell_tri = torch.repeat_interleave(tri_flat, counts, output_size=total)[order]
    per_cell = torch.bincount(cell_id, minlength=N * G * G)
    cell_start = torch.cumsum(per_cell, 0) - per_cell
    p_cell = to_cell(P[:, :2], cand_n)
    p_id = (cand_n * G + p_cell[:, 1]) * G + p_cell[:, 0]
    p_count = per_cell[p_id]
    n_pairs = int(p_count.sum())
    if n_pairs == 0:
        return inside
    pair_pt = torch.repeat_interleave(torch.arange(len(P), device=device), p_count, output_size=n_pairs)
    first = torch.repeat_interleave(cell_start[p_id] - (torch.cumsum(p_count, 0) - p_count), p_count,
                                    output_size=n_pairs)
    pair_tri = cell_tri[first + torch.arange(n_pairs, device=device)]  # flat (frame * F + face)
    tmin_f, tmax_f = tmin.reshape(-1, 3), tmax.reshape(-1, 3)
    Pp = P[pair_pt]
    ok = ((Pp[:, 2] <= tmax_f[pair_tri, 2] + touch_tol) & (Pp[:, :2] >= tmin_f[pair_tri, :2]).all(1)
          & (Pp[:, :2] <= tmax_f[pair_tri, :2]).all(1))
    pair_pt, pair_tri, Pp = pair_pt[ok], pair_tri[ok], Pp[ok]
    frame, face = pair_tri // F, pair_tri % F
    tri_p = tri.reshape(-1, 3, 3)[pair_tri]
    e = edges[face_edges[face]]                                         # [P, 3, 2]
    eu, ev = W[frame[:, None], e[..., 0]], W[frame[:, None], e[..., 1]]  # [P, 3, 3]
    step, touching = _crossings(Pp[:, 0], Pp[:, 1], Pp[:, 2], tri_p[:, 0].unbind(-1), tri_p[:, 1].unbind(-1),
                                tri_p[:, 2].unbind(-1), (eu[..., 0], eu[..., 1]), (ev[..., 0], ev[..., 1]),
                                face_flips[face], touch_tol, torch)
    K = len(P)
    winding = torch.zeros(K, dtype=torch.long, device=device).index_add_(0, pair_pt, step.long())
    count = torch.zeros(K, dtype=torch.long, device=device).index_add_(0, pair_pt, (step != 0).long())
    touch = torch.zeros(K, dtype=torch.long, device=device).index_add_(0, pair_pt, touching.long()) > 0
    inside[cand_n, cand_m] = _decide(winding, count, touch, fill_rule, torch)
    return inside


def _torch_depth(points: torch.Tensor, frame: torch.Tensor, verts: torch.Tensor, mesh: ClosedMesh,
                 depth_mode: str, frames_per_chunk: int = 32) -> torch.Tensor:
    """Distance [K] of ``points`` [K, 3] (frame index ``frame`` [K], grouped by frame) to ``verts`` [N, V, 3].

    The search for the nearest vertex and the closest triangle runs without gradients, on points padded per
    frame so that ``torch.cdist`` compares whole frames at once; only triangles whose bounding sphere comes
    within the nearest vertex distance are measured exactly. The distance to the winner is then recomputed
    with gradients, which reach both the vertex and the three triangle corners.
    """
    faces = mesh.torch_tables(points.device)[0]
    N, K = verts.shape[0], len(points)
    work = torch.float64 if points.device.type == "cpu" else points.dtype
    slack = 1e-9 if work == torch.float64 else 2e-4     # covers cdist's rounding; it only adds candidates
    with torch.no_grad():
        pd, vd = points.detach().to(work), verts.detach().to(work)
        counts = torch.bincount(frame, minlength=N)
        first = torch.cumsum(counts, 0) - counts
        slot = torch.arange(K, device=points.device) - first[frame]
        padded = pd.new_zeros(N, int(counts.max()), 3)
        padded[frame, slot] = pd
        nearest = pd.new_zeros(N, padded.shape[1])
        nearest_index = torch.zeros(N, padded.shape[1], dtype=torch.long, device=points.device)
        for n0 in range(0, N, frames_per_chunk):
            d, i = torch.cdist(padded[n0:n0 + frames_per_chunk], vd[n0:n0 + frames_per_chunk]).min(-1)
            nearest[n0:n0 + frames_per_chunk], nearest_index[n0:n0 + frames_per_chunk] = d, i
    if depth_mode == "vertices":
        return (points - verts[frame, nearest_index[frame, slot]]).norm(dim=-1)
    with torch.no_grad():
        tri = vd[:, faces]                                                  # [N, F, 3, 3]
        centre = tri.mean(2)
        radius = (tri - centre[:, :, None]).norm(dim=-1).amax(-1)          # [N, F]
        occupied = torch.arange(padded.shape[1], device=points.device)[None] < counts[:, None]
        pairs = []
        for n0 in range(0, N, frames_per_chunk):
            n1 = min(n0 + frames_per_chunk, N)
            gap = torch.cdist(padded[n0:n1], centre[n0:n1]) - radius[n0:n1, None]
            near = (gap <= nearest[n0:n1, :, None] + slack) & occupied[n0:n1, :, None]
            fn, fs, ff = torch.nonzero(near, as_tuple=True)
            pairs.append((first[n0 + fn] + fs, ff))
        pt, tr = torch.cat([p for p, _ in pairs]), torch.cat([t for _, t in pairs])
        fr = frame[pt]
        dist = point_triangle_distance(pd[pt], tri[fr, tr, 0], tri[fr, tr, 1], tri[fr, tr, 2], torch)
        best = torch.full((K,), float("inf"), dtype=dist.dtype, device=points.device)
        best = best.scatter_reduce(0, pt, dist, reduce="amin")
        index = torch.where(dist == best[pt], torch.arange(len(dist), device=points.device), len(dist))
        winner = torch.full((K,), len(dist), dtype=torch.long, device=points.device)
        best_face = tr[winner.scatter_reduce(0, pt, index, reduce="amin")]
    corners = verts[frame[:, None], faces[best_face]]                      # [K, 3, 3] with gradients
    closest = closest_point_on_triangle(points, corners[:, 0], corners[:, 1], corners[:, 2], torch)
    return (points - closest).norm(dim=-1)


def _torch_backend(vertices: torch.Tensor, meshes: HandMeshes, depth_mode: str, touch_tol: float,
                   fill_rule: str) -> tuple[torch.Tensor, torch.Tensor]:
    lead, V = vertices.shape[:-3], vertices.shape[-2]
    flat = vertices.reshape(-1, 2, V, 3)
    inside, depth = [], []
    for h in range(2):
        other = meshes[1 - h]
        with torch.no_grad():
            # float64 on CPU, where it costs little; the input dtype on CUDA.
            work = flat.detach().double() if flat.device.type == "cpu" else flat.detach()
            mask = _torch_inside(work[:, h], work[:, 1 - h], other, touch_tol, fill_rule)
        d = flat.new_zeros(flat.shape[0], V)
        frame, vertex = torch.nonzero(mask, as_tuple=True)
        if len(frame) and depth_mode != "none":
            d = d.index_put((frame, vertex), _torch_depth(flat[frame, h, vertex], frame, flat[:, 1 - h],
                                                          other, depth_mode).to(d.dtype))
        inside.append(mask)
        depth.append(d)
    shape = (*lead, 2, V)
    return torch.stack(inside, 1).reshape(shape), torch.stack(depth, 1).reshape(shape)


# ----------------------------------------------------------------------------------------------- entry point


def detect_interpenetration(vertices: torch.Tensor | np.ndarray, faces: HandMeshes | Sequence, *,
                            depth: DepthMode = "surface", backend: Backend = "auto",
                            fill_rule: FillRule = "nonzero", touch_tol: float = TOUCH_TOL) -> Interpenetration:
    """Inside mask and penetration depth of each hand's vertices against the other hand's closed mesh.

    vertices: [..., 2, V, 3] metres (hand 0 right, 1 left), torch or numpy; faces: :class:`HandMeshes` (prepare
    once with :meth:`HandMeshes.from_model`) or a (right, left) pair of closed [F, 3] face arrays.
    depth: ``'surface'`` (exact), ``'vertices'`` (the paper's distance to the vertex set) or ``'none'`` (inside
    mask only, depth left 0: colouring a viewer frame).
    backend: ``'auto'`` picks ``'torch'`` for tensors that need gradients or live on a GPU and ``'numpy'`` (the
    per-frame CPU path) otherwise. fill_rule: ``'nonzero'`` counts a point inside an overlap of two fingers of a
    self-intersecting hand as inside; ``'evenodd'`` is plain ray-crossing parity.
    """
    meshes = hand_meshes(faces)
    _check_vertices(vertices, meshes)
    if depth not in ("surface", "vertices", "none"):
        raise InterpenetrationInputError(f"depth: expected 'surface', 'vertices' or 'none', got {depth!r}")
    if fill_rule not in ("nonzero", "evenodd"):
        raise InterpenetrationInputError(f"fill_rule: expected 'nonzero' or 'evenodd', got {fill_rule!r}")
    if backend not in ("auto", "torch", "numpy"):
        raise InterpenetrationInputError(f"backend: expected 'auto', 'torch' or 'numpy', got {backend!r}")
    if not touch_tol >= 0:
        raise InterpenetrationInputError(f"touch_tol: expected a non-negative distance, got {touch_tol!r}")
    is_tensor = isinstance(vertices, torch.Tensor)
    if backend == "auto":
        backend = "torch" if is_tensor and (vertices.requires_grad or vertices.device.type != "cpu") else "numpy"
    if backend == "torch":
        tensor = vertices if is_tensor else torch.from_numpy(np.asarray(vertices))
        inside, dep = _torch_backend(tensor, meshes, depth, touch_tol, fill_rule)
        if not is_tensor:
            inside, dep = inside.numpy(), dep.detach().numpy()
    else:
        array = vertices.detach().cpu().numpy() if is_tensor else np.asarray(vertices)
        inside, dep = _numpy_backend(array, meshes, depth, touch_tol, fill_rule)
        if is_tensor:
            inside = torch.from_numpy(inside).to(vertices.device)
            dep = torch.from_numpy(dep).to(device=vertices.device, dtype=vertices.dtype)
    return Interpenetration(inside=inside, depth=dep, backend=backend, depth_mode=depth)
