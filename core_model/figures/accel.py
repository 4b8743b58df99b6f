"""Paper Fig. 7: per-frame acceleration error of several methods on one clip (acceleration magnitude when no
ground truth is known), one line each, from :mod:`core_model.figures.series`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core_model.figures._save import new_figure, save_figure
from core_model.figures.series import acceleration_series, ground_truth_keypoints
from core_model.results import Reconstruction

LINE_COLOURS = ("#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def acceleration_figure(results: Sequence[tuple[str, Reconstruction]], path: str | os.PathLike[str],
                        dpi: int = 300, size_in: tuple[float, float] = (6.0, 2.4)) -> Path:
    """One line per (label, result); all are measured against the first ground truth among them."""
    if not results:
        raise ValueError("results: give at least one result")
    counts = {r.num_frames for _, r in results}
    if len(counts) > 1:
        raise ValueError(f"results: methods must cover the same clip, got frame counts {sorted(counts)}")
    gt = ground_truth_keypoints([r for _, r in results])
    figure = new_figure(*size_in)
    ax = figure.add_axes((0.1, 0.2, 0.88, 0.72))
    unit = ""
    for i, (label, result) in enumerate(results):
        series = acceleration_series(result, gt)
        unit = series.unit
        ax.plot(np.arange(result.num_frames), series.values, lw=1.0, color=LINE_COLOURS[i % len(LINE_COLOURS)],
                label=f"{label} (mean {np.nanmean(series.values):.2f})" if np.isfinite(series.values).any()
                else label)
    ax.set_xlabel("frame", fontsize=8)
    ax.set_ylabel(f"{'acceleration error' if gt is not None else 'acceleration'} ({unit})", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3, lw=0.5)
    ax.legend(fontsize=7, frameon=False)
    return save_figure(figure, path, dpi)
