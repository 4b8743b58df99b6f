"""The hands as VTK PolyData that the 3D views share, and the ground truth's outline as each view's camera sees it.

Why the meshes are updated in place: a new actor per frame costs far more than replacing the points, normals and
colours of fixed PolyData objects that both views share; only the GUI thread touches VTK.
"""

from __future__ import annotations

import numpy as np

from core_model.geometry.normals import vertex_normals
from core_model.geometry.silhouette import SilhouetteEdges
from core_model.render import HAND_COLOURS, PENETRATION_COLOUR


def _rgb(colour: str) -> np.ndarray:
    return np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)], np.uint8)


class HandPolyData:
    """The meshes of one hand model as PolyData shared by every view: ``hands``, both hands of the result as one
    mesh (right then left, each in its colour), ``truth``, both ground-truth hands as one mesh, and ``refined``,
    the two refined hands apart (the second view draws them, each only where it was refined).

    Why both hands in one mesh: in software GL each draw call costs ~0.5 ms per view and frame beyond its
    triangles, and per-vertex colours tell the hands apart anyway. A frame change writes the points, normals and
    colours into the meshes' own arrays: pyvista's setters wrap new VTK arrays on every call, which cost ~1 ms per
    frame in Python alone."""

    def __init__(self, faces: tuple[np.ndarray, np.ndarray], num_vertices: int) -> None:
        import pyvista as pv

        self.faces = [np.asarray(f, np.int64) for f in faces]
        self.pair_faces = np.concatenate([self.faces[0], self.faces[1] + num_vertices])  # faces of a merged pair
        self.base = [np.tile(_rgb(c), (num_vertices, 1)) for c in HAND_COLOURS]
        self.red = _rgb(PENETRATION_COLOUR)

        def mesh(faces: np.ndarray, count: int, lit: bool):
            cells = np.hstack([np.full((len(faces), 1), 3), faces]).ravel()
            made = pv.PolyData(np.zeros((count, 3)), cells)
            made.point_data["rgb"] = np.zeros((count, 3), np.uint8)
            if lit:  # shaded from the vertex normals (the ground truth is drawn unlit, without them)
                made.point_data.active_normals = np.zeros((count, 3))
            return made

        self.hands = mesh(self.pair_faces, 2 * num_vertices, lit=True)
        self.truth = mesh(self.pair_faces, 2 * num_vertices, lit=False)
        self.refined = [mesh(f, num_vertices, lit=True) for f in self.faces]

    def update(self, vertices: np.ndarray, inside: np.ndarray, truth: np.ndarray | None) -> None:
        self._set_shaded(self.hands, self.pair_faces, np.concatenate(self.base), vertices.reshape(-1, 3),
                         inside.reshape(-1))
        if truth is not None:
            self.update_truth(truth)

    def update_truth(self, truth: np.ndarray) -> None:
        """The ground-truth hands [2, V, 3]."""
        _write(self.truth, truth.reshape(-1, 3))

    def update_refined(self, vertices: np.ndarray, inside: np.ndarray, hands: np.ndarray) -> None:
        """The refined hands; only those where ``hands`` [2] is True (the others keep their last points, hidden)."""
        for hand in np.flatnonzero(hands):
            self._set_shaded(self.refined[hand], self.faces[hand], self.base[hand], vertices[hand], inside[hand])

    def _set_shaded(self, mesh, faces: np.ndarray, base: np.ndarray, vertices: np.ndarray,
                    inside: np.ndarray) -> None:
        """Points, their normals, and ``base`` colours with the ``inside`` vertices red, into ``mesh``."""
        colours = base.copy()
        colours[np.asarray(inside, bool)] = self.red
        points = vertices.astype(np.float64)
        _write(mesh, points, vertex_normals(points, faces), colours)


def _write(mesh, points: np.ndarray, normals: np.ndarray | None = None, colours: np.ndarray | None = None) -> None:
    """Copy into ``mesh``'s point, normal and colour arrays in place and mark what changed as modified."""
    from vtkmodules.util.numpy_support import vtk_to_numpy

    data = mesh.GetPointData()
    for array, values in ((mesh.GetPoints().GetData(), points), (data.GetNormals(), normals),
                          (data.GetArray("rgb"), colours)):
        if values is not None:
            vtk_to_numpy(array)[:] = values
            array.Modified()
    mesh.Modified()


class Silhouette:
    """The outline of a mesh from a renderer's camera (core_model.geometry.silhouette, which says why not VTK's
    filter), drawn as ``lines`` over the mesh's own points and brought up to date when a render starts and the
    mesh or the camera changed since the last one, unless ``actor`` (the one drawing it, when set) is hidden: a
    following camera moves on every frame, and results without ground truth never show its outline."""

    def __init__(self, mesh, faces: np.ndarray, renderer) -> None:
        import pyvista as pv

        self.mesh, self.renderer = mesh, renderer
        self.actor = None
        self.edges = SilhouetteEdges(faces)
        self.lines = pv.PolyData()
        self.lines.SetPoints(mesh.GetPoints())  # the mesh's own points object: its updates are shared
        self._seen = (-1, -1)
        self._observer = renderer.AddObserver("StartEvent", lambda *_: self.update())

    def detach(self) -> None:
        """Stop following the renderer (the view shows other meshes)."""
        self.renderer.RemoveObserver(self._observer)

    def update(self) -> None:
        if self.actor is not None and not self.actor.GetVisibility():
            return
        camera = self.renderer.GetActiveCamera()
        seen = (self.mesh.GetMTime(), camera.GetMTime())
        if seen == self._seen:
            return
        self._seen = seen
        outline = self.edges.seen_from(self.mesh.points, np.asarray(camera.GetPosition()))
        self.lines.lines = np.hstack([np.full((len(outline), 1), 2), outline]).ravel()
