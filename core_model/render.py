"""Headless rendering of hand meshes with pyvista (VTK offscreen, EGL/OSMesa without a display)."""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core_model.fileio import atomic_path

HAND_COLOURS = ("#6fa8dc", "#f6b26b")  # right, left: a colour-blind-safe blue/orange pair
PENETRATION_COLOUR = "#d62728"


def hex_rgb(colour: str) -> tuple[int, int, int]:
    """``"#rrggbb"`` -> (r, g, b) in 0-255, for drawing the colours above into images."""
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))


@dataclasses.dataclass
class FigurePanel:
    """One panel of a figure that render_panels draws: meshes of both hands. vertices [2, V, 3] metres; faces per
    hand [F, 3]; inside [2, V] bool."""

    vertices: np.ndarray
    faces: Sequence[np.ndarray]
    title: str = ""
    inside: np.ndarray | None = None
    view: str = "front"


def polydata(vertices: np.ndarray, faces: np.ndarray):
    """A pyvista triangle mesh of ``vertices`` [V, 3] and ``faces`` [F, 3]."""
    import pyvista as pv

    cells = np.hstack([np.full((len(faces), 1), 3), faces]).astype(np.int64).ravel()
    return pv.PolyData(np.asarray(vertices, dtype=np.float64), cells)


def off_screen_gl() -> None:
    """Ask VTK for off-screen render windows; on Linux without a display, EGL ones. Call before the first
    Plotter: without a display VTK would try X first, warn "bad X server connection" and only then fall back."""
    os.environ.setdefault("PYVISTA_OFF_SCREEN", "true")
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")


def set_view(plotter, view: str) -> None:
    # Camera convention of the project (OpenCV): x right, y down, z forward; "front" looks down +z.
    plotter.view_vector({"front": (0, 0, -1), "back": (0, 0, 1), "side": (1, 0, 0), "top": (0, 1, 0),
                         "alternative": (1, -1, 1)}[view], viewup=(0, -1, 0))
    plotter.reset_camera()
    plotter.camera.zoom(1.15)


@dataclasses.dataclass(frozen=True)
class CameraPose:
    """A perspective camera: position, focal_point and up [3] in the scene's frame (metres), view_angle the
    vertical field of view in degrees."""

    position: tuple[float, float, float]
    focal_point: tuple[float, float, float]
    up: tuple[float, float, float]
    view_angle: float


def fit_source_camera(points: np.ndarray | None, bounds: Sequence[float], window_size: tuple[int, int]
                      ) -> CameraPose:
    """The "camera" view preset: along the video camera's axis (OpenCV: z forward, y down) toward ``points``
    [N, 3] (the frame's hands; None: toward (0, 0, 1)), framing them and the scene's ``bounds`` (x0, x1, y0, y1,
    z0, z1) in a view of ``window_size`` (width, height) pixels.

    A camera-space result is seen from the real camera at the origin, widened to every point (the refined hands
    lie where the video shows them, possibly far from the network's). The network's results are root-relative
    (the right wrist at the origin), where the origin is inside a hand: the camera looks along the same axis
    from the distance at which the hands fill the view."""
    target = np.mean(points, 0) if points is not None else np.array([0.0, 0.0, 1.0])
    extent = np.asarray(bounds, float).reshape(3, 2)
    radius = max(0.5 * float(np.linalg.norm(extent[:, 1] - extent[:, 0])), 0.05)
    if points is not None:  # what is framed may lie beyond the scene's bounds (another view's actors)
        radius = max(radius, 0.5 * float(np.linalg.norm(points.max(0) - points.min(0))))
    # view_angle is the vertical one: a view narrower than tall sees less across
    width, height = window_size
    narrow = min(1.0, width / max(height, 1))
    view_angle = 30.0
    if target[2] > 2 * radius:
        position = (0.0, 0.0, 0.0)
        if points is not None:
            rays = points / np.linalg.norm(points, axis=1, keepdims=True)
            off = np.arccos(np.clip(rays @ (target / np.linalg.norm(target)), -1.0, 1.0)).max()
            needed = 2.0 * np.degrees(np.arctan(np.tan(min(1.1 * off, 1.4)) / narrow))
            view_angle = float(np.clip(needed, 30.0, 120.0))
    else:
        distance = 1.1 * radius / (np.tan(np.radians(15.0)) * narrow)
        position = tuple(target - np.array([0.0, 0.0, distance]))
    return CameraPose(position=position, focal_point=tuple(target), up=(0.0, -1.0, 0.0), view_angle=view_angle)


def render_panels(panels: Sequence[FigurePanel], path: str | Path, columns: int = 4,
                  panel_size: tuple[int, int] = (400, 400)) -> Path:
    """Render ``panels`` into one PNG, ``columns`` of them a row (written atomically); return its path."""
    off_screen_gl()
    import pyvista as pv

    rows = -(-len(panels) // columns)
    cols = min(columns, len(panels))
    plotter = pv.Plotter(off_screen=True, shape=(rows, cols), window_size=(panel_size[0] * cols,
                                                                          panel_size[1] * rows), border=False)
    try:
        plotter.set_background("white")
        for i, panel in enumerate(panels):
            plotter.subplot(i // columns, i % columns)
            for hand in range(2):
                mesh = polydata(panel.vertices[hand], panel.faces[hand])
                if panel.inside is not None and panel.inside[hand].any():
                    colours = np.tile(np.array(pv.Color(HAND_COLOURS[hand]).float_rgb), (mesh.n_points, 1))
                    colours[panel.inside[hand]] = pv.Color(PENETRATION_COLOUR).float_rgb
                    mesh.point_data["rgb"] = (colours * 255).astype(np.uint8)
                    plotter.add_mesh(mesh, scalars="rgb", rgb=True, smooth_shading=True, specular=0.2)
                else:
                    plotter.add_mesh(mesh, color=HAND_COLOURS[hand], smooth_shading=True, specular=0.2)
            if panel.title:
                plotter.add_text(panel.title, font_size=12, color="black")
            set_view(plotter, panel.view)
        with atomic_path(path) as tmp:
            plotter.screenshot(str(tmp))
    finally:
        plotter.close()
    return Path(path)
