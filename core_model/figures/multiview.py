"""Paper Fig. 8/9: chosen frames, one row each: the input crop (when the video is given), then each method's two
hands from several views (camera view and the "alternative view" by default), penetrating vertices red, with a
header per method over its views. A method is a result's network hands or its test-time refinement's.

The panels of a row share one scale (the largest extent among its methods' hands), each centred on its own
hands: sizes compare like with like across methods, while no panel wastes its space on where another method put
the hands (results are wrist-relative: their placement in space says nothing).

The meshes are rendered offscreen with pyvista at the pixel size each panel has in print, crops are resized to it,
and both are placed with matplotlib without resampling (``interpolation="none"``): a PNG is one image pixel per
print pixel, and a PDF or SVG embeds the renders at full resolution beside vector text and rules, so it stays
sharp at any zoom.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core_model.figures._save import new_figure, save_figure
from core_model.render import HAND_COLOURS, PENETRATION_COLOUR, off_screen_gl, polydata, set_view
from core_model.results import Reconstruction

VIEW_LABELS = {"front": "camera view", "alternative": "alternative view", "side": "side view", "top": "top view",
               "back": "back view"}
HEADER_IN = 0.25  # inches above the panels for the column titles (one line)
METHOD_HEADER_IN = 0.45  # the same with a line of method names above the view titles
GROUP_GAP_IN = 0.12  # inches between the input column and each method's group of views
PAD = 0.01  # share of a panel left blank on each side of its image: a thin white gap between panels


@dataclasses.dataclass
class Method:
    """One method of a comparison figure: ``label`` (its column header), a ``result``, the (right, left)
    ``faces`` of the result's hand model, and ``refined``: the test-time refinement's hands
    (``result.refined``) instead of the network's."""

    label: str
    result: Reconstruction
    faces: Sequence[np.ndarray]
    refined: bool = False

    def hands(self, frame: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(vertices [2, V, 3] metres, inside [2, V] bool) of ``frame``; None unless both hands are there."""
        result = self.result
        if self.refined:
            if not result.refined:
                raise ValueError(f"methods: {self.label!r} asks for the refinement of a result that holds none "
                                 "(made without interhand run --refine)")
            vertices, inside = result.refined["vertices"][frame], result.refined["inside"][frame]
        else:
            vertices, inside = result.vertices[frame], result.inside[frame]
        if not (result.valid[frame].all() and np.isfinite(vertices).all()):
            return None
        return vertices, np.asarray(inside, bool)


def methods_of(results: Sequence[tuple[str, Reconstruction, Sequence[np.ndarray]]], refined: bool = False
               ) -> list[Method]:
    """The methods of (label, result, faces) triples in order; with ``refined``, each result that holds the
    test-time refinement is followed by it, labelled "<label> (refined)" (an error when none holds one)."""
    methods = []
    for label, result, faces in results:
        methods.append(Method(label, result, faces))
        if refined and result.refined:
            methods.append(Method(f"{label} (refined)", result, faces, refined=True))
    if refined and len(methods) == len(results):
        raise ValueError("refined: none of the results holds the test-time refinement (interhand run --refine)")
    return methods


def crop_image(frame_rgb: np.ndarray, bbox: np.ndarray) -> np.ndarray:
    """The square crop ``bbox`` (x, y, side, side) of a frame, padded with black where it leaves the frame."""
    x, y, w, h = (round(float(v)) for v in bbox)
    out = np.zeros((max(h, 1), max(w, 1), 3), np.uint8)
    fx0, fy0 = max(x, 0), max(y, 0)
    fx1, fy1 = min(x + w, frame_rgb.shape[1]), min(y + h, frame_rgb.shape[0])
    if fx1 > fx0 and fy1 > fy0:
        out[fy0 - y:fy1 - y, fx0 - x:fx1 - x] = frame_rgb[fy0:fy1, fx0:fx1]
    return out


def multiview_figure(result: Reconstruction, frames: Sequence[int], faces: Sequence[np.ndarray],
                     path: str | os.PathLike[str], video: str | os.PathLike[str] | None = None,
                     views: Sequence[str] = ("front", "alternative"), dpi: int = 300,
                     panel_in: float = 1.6) -> Path:
    """The figure of one result (its network hands): :func:`comparison_figure` with one method and no method
    header. ``faces`` are the (right, left) faces of the result's hand model."""
    return comparison_figure([Method("", result, faces)], frames, path, video=video, views=views, dpi=dpi,
                             panel_in=panel_in)


def comparison_figure(methods: Sequence[Method], frames: Sequence[int], path: str | os.PathLike[str],
                      video: str | os.PathLike[str] | None = None, views: Sequence[str] = ("front", "alternative"),
                      dpi: int = 300, panel_in: float = 1.6) -> Path:
    """Write the figure: a row per frame; the input crop (of the first method's region) when ``video`` is given;
    then per method its ``views``, each ``panel_in`` inches square. With more than one method each group of
    views has its method's label above it. A chosen frame without both hands in some method is refused by
    name."""
    methods = list(methods)
    if not methods:
        raise ValueError("methods: give at least one result")
    counts = sorted({m.result.num_frames for m in methods})
    if len(counts) > 1:
        raise ValueError(f"results: methods must cover the same clip, got frame counts {counts}")
    frames = [int(f) for f in frames]
    if not frames:
        raise ValueError("frames: choose at least one frame")
    unknown = [v for v in views if v not in VIEW_LABELS]
    if unknown or not views:
        raise ValueError(f"views: expected some of {sorted(VIEW_LABELS)}, got {list(views)}")
    if not 0.3 <= panel_in <= 10:
        raise ValueError(f"panel_in: expected 0.3..10 inches, got {panel_in}")
    hands = []  # [frame][method] (vertices, inside)
    for f in frames:
        if not 0 <= f < counts[0]:
            raise ValueError(f"frames: {f} is outside the result's 0..{counts[0] - 1}")
        row = [m.hands(f) for m in methods]
        missing = [m.label for m, h in zip(methods, row) if h is None]
        if missing:
            which = f" in {', '.join(repr(label) for label in missing)}" if len(methods) > 1 else ""
            raise ValueError(f"frames: frame {f} does not have both hands reconstructed{which}")
        hands.append(row)
    layout = _Layout(len(methods), len(views), len(frames), video is not None, panel_in)
    pixels = max(8, round(layout.image_in * dpi))
    renders = _render(hands, [m.faces for m in methods], list(views), pixels)
    crops = _crops(video, methods, frames, pixels) if video is not None else None
    figure = new_figure(layout.width, layout.height)
    for r, f in enumerate(frames):
        images = [crops[r]] if crops is not None else []
        images += [renders[r][m][v] for m in range(len(methods)) for v in range(len(views))]
        for c, image in enumerate(images):
            ax = figure.add_axes(layout.panel(r, c))
            ax.imshow(image, interpolation="none")
            ax.set_axis_off()
        _frame_label(figure, layout.panel(r, 0), f, dark=crops is not None)
    _headers(figure, layout, [m.label for m in methods], [VIEW_LABELS[v] for v in views])
    return save_figure(figure, path, dpi)


class _Layout:
    """Where each panel goes, in inches and as figure fractions: columns (the input, then each method's views)
    ``panel_in`` apart, groups of columns ``GROUP_GAP_IN`` apart when there are several methods; the header
    above."""

    def __init__(self, methods: int, views: int, rows: int, crop: bool, panel_in: float) -> None:
        self.methods, self.views, self.rows, self.crop, self.panel_in = methods, views, rows, crop, panel_in
        self.grouped = methods > 1
        gaps = (methods - 1 + crop) if self.grouped else 0
        self.width = panel_in * (crop + methods * views) + GROUP_GAP_IN * gaps
        self.header = METHOD_HEADER_IN if self.grouped else HEADER_IN
        self.height = panel_in * rows + self.header
        self.image_in = panel_in * (1 - 2 * PAD)

    def column_x(self, column: int) -> float:
        """Inches from the left edge to the slot of ``column`` (0: the input when there is one)."""
        if not self.grouped:
            return column * self.panel_in
        group = (column - self.crop) // self.views + self.crop if column >= self.crop else 0
        return column * self.panel_in + group * GROUP_GAP_IN

    def panel(self, row: int, column: int) -> tuple[float, float, float, float]:
        """The image's axes (left, bottom, width, height) in figure fractions."""
        x = self.column_x(column) + PAD * self.panel_in
        y = self.height - self.header - (row + 1) * self.panel_in + PAD * self.panel_in
        return (x / self.width, y / self.height, self.image_in / self.width, self.image_in / self.height)

    def span(self, first: int, count: int) -> tuple[float, float]:
        """Left and right figure fractions of ``count`` columns from ``first`` (their images' outer edges)."""
        left = self.column_x(first) + PAD * self.panel_in
        right = self.column_x(first + count - 1) + (1 - PAD) * self.panel_in
        return left / self.width, right / self.width


def _headers(figure, layout: _Layout, labels: list[str], view_titles: list[str]) -> None:
    """The input's and each view's title above its column; with several methods, each method's label above its
    views with a rule under it."""
    top = 1.0 - layout.header / layout.height  # the panels' top edge
    line = (top + 1.0) / 2 if not layout.grouped else top + 0.12 / layout.height  # view titles' baseline area
    size = 8 if not layout.grouped else 7
    titles = (["input"] if layout.crop else []) + view_titles * layout.methods
    for column, title in enumerate(titles):
        left, right = layout.span(column, 1)
        figure.text((left + right) / 2, line, title, ha="center", va="center", fontsize=size)
    if not layout.grouped:
        return
    rule = top + 0.24 / layout.height
    for m, label in enumerate(labels):
        left, right = layout.span(layout.crop + m * layout.views, layout.views)
        figure.text((left + right) / 2, top + 0.35 / layout.height, label, ha="center", va="center", fontsize=8,
                    fontweight="bold")
        figure.add_artist(_rule(left, right, rule))


def _rule(left: float, right: float, y: float):
    from matplotlib.lines import Line2D

    return Line2D([left, right], [y, y], lw=0.6, color="black", solid_capstyle="butt")


def _frame_label(figure, rect: tuple[float, float, float, float], frame: int, dark: bool) -> None:
    """"frame N" in the upper left of the row's first panel: white outlined in black over a crop (readable on a
    bright or a dark frame), black over a white render."""
    from matplotlib import patheffects

    left, bottom, width, height = rect
    text = figure.text(left + 0.02 * width, bottom + 0.98 * height, f"frame {frame}", fontsize=6, va="top",
                       color="white" if dark else "black")
    if dark:
        text.set_path_effects([patheffects.withStroke(linewidth=1.2, foreground="black")])


def _render(hands: list[list[tuple[np.ndarray, np.ndarray]]], faces: list[Sequence[np.ndarray]], views: list[str],
            pixels: int) -> list[list[list[np.ndarray]]]:
    """Render every panel in one offscreen plotter: [row][method][view] RGB images, ``pixels`` square. Each
    panel is centred on its method's hands at one scale for the whole row: the largest method's hands fill their
    panel as in a one-method figure, and every method's hands are drawn at that size."""
    off_screen_gl()
    import pyvista as pv

    rows, methods = len(hands), len(faces)
    columns = methods * len(views)
    plotter = pv.Plotter(off_screen=True, shape=(rows, columns), window_size=(pixels * columns, pixels * rows),
                         border=False)
    try:
        plotter.set_background("white")
        for r, row in enumerate(hands):
            lows = np.array([vertices.reshape(-1, 3).min(0) for vertices, _ in row])
            highs = np.array([vertices.reshape(-1, 3).max(0) for vertices, _ in row])
            half = (highs - lows).max(0) / 2  # the largest extent of the row's methods, per axis
            for m, (vertices, inside) in enumerate(row):
                centre = (lows[m] + highs[m]) / 2
                bounds = [float(v) for pair in zip(centre - half, centre + half) for v in pair]
                for v, view in enumerate(views):
                    plotter.subplot(r, m * len(views) + v)
                    for hand in range(2):
                        _add_hand(plotter, polydata(vertices[hand], faces[m][hand]), hand, inside[hand])
                    set_view(plotter, view)  # the view's direction ...
                    plotter.reset_camera(render=False, bounds=bounds)  # ... at the row's common scale
                    plotter.camera.zoom(1.15)
        image = plotter.screenshot(return_img=True)
    finally:
        plotter.close()
    return [[[image[r * pixels:(r + 1) * pixels, c * pixels:(c + 1) * pixels, :3]
              for c in range(m * len(views), (m + 1) * len(views))] for m in range(methods)] for r in range(rows)]


def _add_hand(plotter, mesh, hand: int, inside: np.ndarray) -> None:
    """One hand in its colour, penetrating vertices red, smooth shading (as ``core_model.render``)."""
    import pyvista as pv

    if inside.any():
        colours = np.tile(np.array(pv.Color(HAND_COLOURS[hand]).float_rgb), (mesh.n_points, 1))
        colours[inside] = pv.Color(PENETRATION_COLOUR).float_rgb
        mesh.point_data["rgb"] = (colours * 255).astype(np.uint8)
        plotter.add_mesh(mesh, scalars="rgb", rgb=True, smooth_shading=True, specular=0.2, reset_camera=False)
    else:
        plotter.add_mesh(mesh, color=HAND_COLOURS[hand], smooth_shading=True, specular=0.2, reset_camera=False)


def _crops(video: str | os.PathLike[str], methods: list[Method], frames: list[int], pixels: int
           ) -> list[np.ndarray]:
    """The input of each frame: the crop of the first method whose region there is known (else the frame's
    centred square), resized to ``pixels`` square."""
    import cv2

    from core_model.pipeline.video import open_source

    out = []
    with open_source(video) as source:
        for f in frames:
            frame = source.read(f)
            boxes = [m.result.bbox[f] for m in methods if np.isfinite(m.result.bbox[f]).all()]
            if not boxes:  # the frame's centred square
                side = min(frame.shape[:2])
                boxes = [np.array([(frame.shape[1] - side) // 2, (frame.shape[0] - side) // 2, side, side])]
            crop = crop_image(frame, boxes[0])
            shrink = max(crop.shape[:2]) > pixels
            out.append(cv2.resize(crop, (pixels, pixels), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC))
    return out
