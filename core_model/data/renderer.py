"""Offscreen rendering of the synthetic hands with VTK (through pyvista; EGL or OSMesa without a display).

Chosen over pyrender: at 256 x 256 both draw two re-uploaded ~2,300-face hands at about 100 frames/s per process
on this CPU (Mesa llvmpipe), but VTK is already a dependency, while pyrender pins PyOpenGL 3.1.0 and needs a
``--no-deps`` install beside PyOpenGL 3.1.10 and pyglet 1.5.x.

Two passes per frame share the same meshes: a lit, anti-aliased colour pass (RGBA, the alpha is the
hands-and-forearms matte), and an unlit label pass without anti-aliasing whose red channel holds the part label
(1 right hand, 2 left hand, 3 right forearm, 4 left forearm) and whose green channel holds the depth quantised
over the scene's depth range, used for keypoint visibility. The camera is the project's: OpenCV axes, pinhole
``K`` with ``fx = fy`` and the principal point at the image centre ((S - 1) / 2, pixel centres at integers).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from core_model.render import off_screen_gl, polydata

LABELS = {"background": 0, "right_hand": 1, "left_hand": 2, "right_forearm": 3, "left_forearm": 4}
_LABEL_RED = 40  # red value per label step in the label pass


@dataclasses.dataclass
class RenderedFrame:
    """rgb [S, S, 3] premultiplied float in [0, 1]; alpha [S, S] float; labels [S, S] uint8 (see ``LABELS``);
    depth [S, S] float metres along z (inf on the background), quantised to about 1/255 of the scene's depth."""

    rgb: np.ndarray
    alpha: np.ndarray
    labels: np.ndarray
    depth: np.ndarray


class HandRenderer:
    """Renders ``parts`` (right hand, left hand, right forearm, left forearm) of fixed topology, frame after frame.

    faces: four [F, 3] arrays in that order. Keep one renderer per process and call :meth:`close` at the end.
    """

    def __init__(self, size: int, faces: Sequence[np.ndarray]) -> None:
        if size < 16:
            raise ValueError(f"size: expected at least 16 pixels, got {size}")
        if len(faces) != 4:
            raise ValueError(f"faces: expected four face arrays (two hands, two forearms), got {len(faces)}")
        off_screen_gl()
        import pyvista as pv

        self.size = size
        self._num_vertices = [int(f.max()) + 1 for f in faces]
        self._colour = pv.Plotter(off_screen=True, window_size=(size, size), lighting="none")
        self._label = pv.Plotter(off_screen=True, window_size=(size, size), lighting="none")
        self._colour.set_background("black")
        self._label.set_background("black")
        self._colour.enable_anti_aliasing("ssaa")
        self._meshes, self._label_meshes, self._actors = [], [], []
        for part, f in enumerate(faces):
            n = self._num_vertices[part]
            mesh = polydata(np.zeros((n, 3)), f)
            mesh.point_data["rgb"] = np.zeros((n, 3), np.uint8)
            actor = self._colour.add_mesh(mesh, scalars="rgb", rgb=True, smooth_shading=True, show_scalar_bar=False)
            label_mesh = polydata(np.zeros((n, 3)), f)
            label_mesh.point_data["rgb"] = np.zeros((n, 3), np.uint8)
            self._label.add_mesh(label_mesh, scalars="rgb", rgb=True, lighting=False, show_scalar_bar=False)
            self._meshes.append(mesh)
            self._label_meshes.append(label_mesh)
            self._actors.append(actor)
        self._key = pv.Light(light_type="camera light")
        self._fill = pv.Light(light_type="camera light")
        self._colour.add_light(self._key)
        self._colour.add_light(self._fill)

    def close(self) -> None:
        self._colour.close()
        self._label.close()

    def __enter__(self) -> HandRenderer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def set_camera(self, focal: float) -> None:
        """Pinhole camera at the origin looking down +z, y down, fx = fy = ``focal`` pixels, centred."""
        for plotter in (self._colour, self._label):
            cam = plotter.camera
            cam.position = (0.0, 0.0, 0.0)
            cam.focal_point = (0.0, 0.0, 1.0)
            cam.up = (0.0, -1.0, 0.0)
            cam.view_angle = float(np.degrees(2 * np.arctan(self.size / 2 / focal)))

    def set_appearance(self, colours: Sequence[np.ndarray], specular: float, specular_power: float, ambient: float,
                       lighting) -> None:
        """Per-vertex sRGB colours in [0, 1] of the four parts, the skin material and a :class:`Lighting`."""
        for mesh, actor, colour in zip(self._meshes, self._actors, colours):
            mesh.point_data["rgb"] = (np.clip(colour, 0, 1) * 255 + 0.5).astype(np.uint8)
            prop = actor.GetProperty()
            prop.SetSpecular(specular)
            prop.SetSpecularPower(specular_power)
            prop.SetAmbient(ambient)
            prop.SetDiffuse(1.0 - 0.5 * ambient)
        # Camera lights are given in the camera's own frame (x right, y up, z toward the viewer).
        for light, direction, colour, intensity in (
                (self._key, lighting.key_direction, lighting.key_colour, lighting.key_intensity),
                (self._fill, lighting.fill_direction, lighting.fill_colour, lighting.fill_intensity)):
            source = np.asarray(direction) * np.array([1.0, -1.0, -1.0])
            light.position = tuple(float(v) for v in source)
            light.focal_point = (0.0, 0.0, 0.0)
            light.diffuse_color = tuple(float(c) for c in colour)
            light.specular_color = tuple(float(c) for c in colour)
            light.intensity = float(intensity)

    def render(self, parts: Sequence[np.ndarray]) -> RenderedFrame:
        """parts: four vertex arrays [N_i, 3] metres in the camera frame (right/left hand, right/left forearm)."""
        if len(parts) != 4:
            raise ValueError(f"parts: expected four vertex arrays, got {len(parts)}")
        z_all = np.concatenate([p[:, 2] for p in parts])
        z_near, z_far = float(z_all.min()) - 1e-3, float(z_all.max()) + 1e-3
        for k, (mesh, label_mesh, verts) in enumerate(zip(self._meshes, self._label_meshes, parts)):
            if verts.shape != (self._num_vertices[k], 3):
                raise ValueError(f"parts[{k}]: expected shape ({self._num_vertices[k]}, 3), got {verts.shape}")
            mesh.points = np.asarray(verts, dtype=np.float64)
            label_mesh.points = mesh.points
            code = np.zeros((len(verts), 3), np.uint8)
            code[:, 0] = (k + 1) * _LABEL_RED
            code[:, 1] = np.clip(np.round((verts[:, 2] - z_near) / (z_far - z_near) * 254), 0, 254).astype(np.uint8)
            code[:, 2] = 255
            label_mesh.point_data["rgb"] = code
        for plotter in (self._colour, self._label):
            plotter.camera.clipping_range = (max(z_near * 0.5, 1e-3), z_far * 2.0)
            plotter.render()
        rgba = self._colour.screenshot(transparent_background=True, return_img=True).astype(np.float32) / 255.0
        code = self._label.screenshot(transparent_background=False, return_img=True)
        hit = code[..., 2] > 127
        labels = np.where(hit, np.clip(np.round(code[..., 0] / _LABEL_RED), 0, 4), 0).astype(np.uint8)
        depth = np.where(hit, z_near + code[..., 1].astype(np.float32) / 254 * (z_far - z_near), np.inf)
        return RenderedFrame(rgb=rgba[..., :3], alpha=rgba[..., 3], labels=labels, depth=depth.astype(np.float32))
