"""Saving matplotlib figures: Agg canvas (no pyplot, no GUI backend: safe inside the Qt app), exact pixel size
(``figsize x dpi``, no tight cropping, so a requested print size is the size written), written atomically."""

from __future__ import annotations

import os
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from core_model.fileio import atomic_path

FIGURE_SUFFIXES = (".png", ".pdf", ".svg")


def new_figure(width_in: float, height_in: float) -> Figure:
    figure = Figure(figsize=(width_in, height_in))
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Figure, path: str | os.PathLike[str], dpi: int) -> Path:
    target = Path(path)
    if target.suffix.lower() not in FIGURE_SUFFIXES:
        raise ValueError(f"path: a figure is one of {FIGURE_SUFFIXES}, got {target.name}")
    if not 30 <= dpi <= 1200:
        raise ValueError(f"dpi: expected 30..1200, got {dpi}")
    with atomic_path(target) as tmp:
        figure.savefig(tmp, dpi=dpi, facecolor="white")
    return target
