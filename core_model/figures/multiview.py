"""Paper Fig. 8/9: chosen frames, one row each: the input crop (when the video is given) and the two hands'
meshes from several views (camera view and the "alternative view" by default), penetrating vertices red.

The meshes are rendered with :func:`core_model.render.render_panels` (pyvista offscreen) at the panel's print
size, then laid out with matplotlib so crops, meshes and labels share one figure.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.image import imread

from core_model.figures._save import new_figure, save_figure
from core_model.render import FigurePanel, render_panels
from core_model.results import Reconstruction

VIEW_LABELS = {"front": "camera view", "alternative": "alternative view", "side": "side view", "top": "top view",
               "back": "back view"}


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
    """Write the figure; ``faces`` are the (right, left) faces of the result's hand model. A chosen frame without
    both hands reconstructed is refused by name."""
    frames = [int(f) for f in frames]
    if not frames:
        raise ValueError("frames: choose at least one frame")
    for f in frames:
        if not 0 <= f < result.num_frames:
            raise ValueError(f"frames: {f} is outside the result's 0..{result.num_frames - 1}")
        if not (result.valid[f].all() and np.isfinite(result.vertices[f]).all()):
            raise ValueError(f"frames: frame {f} does not have both hands reconstructed")
    unknown = [v for v in views if v not in VIEW_LABELS]
    if unknown or not views:
        raise ValueError(f"views: expected some of {sorted(VIEW_LABELS)}, got {list(views)}")
    pixels = round(panel_in * dpi)
    panels = [FigurePanel(result.vertices[f], faces, inside=result.inside[f], view=v) for f in frames for v in views]
    with tempfile.TemporaryDirectory() as tmp:
        grid = imread(render_panels(panels, Path(tmp) / "views.png", columns=len(views),
                                    panel_size=(pixels, pixels)))
    crops = _crops(video, result, frames) if video is not None else None
    columns = len(views) + (crops is not None)
    figure = new_figure(panel_in * columns, panel_in * len(frames) + 0.25)
    layout = figure.add_gridspec(len(frames), columns, left=0.01, right=0.99, top=1 - 0.25 / figure.get_figheight(),
                                 bottom=0.0, wspace=0.02, hspace=0.02)
    titles = (["input"] if crops is not None else []) + [VIEW_LABELS[v] for v in views]
    for r, f in enumerate(frames):
        images = [crops[r]] if crops is not None else []
        images += [grid[r * pixels:(r + 1) * pixels, c * pixels:(c + 1) * pixels] for c in range(len(views))]
        for c, image in enumerate(images):
            ax = figure.add_subplot(layout[r, c])
            ax.imshow(image)
            ax.set_axis_off()
            if r == 0:
                ax.set_title(titles[c], fontsize=8)
            if c == 0:
                ax.text(0.02, 0.98, f"frame {f}", transform=ax.transAxes, fontsize=6, va="top",
                        color="white" if crops is not None else "black")
    return save_figure(figure, path, dpi)


def _crops(video: str | os.PathLike[str], result: Reconstruction, frames: list[int]) -> list[np.ndarray]:
    from core_model.pipeline.video import open_source

    with open_source(video) as source:
        return [crop_image(source.read(f), result.bbox[f]) for f in frames]
