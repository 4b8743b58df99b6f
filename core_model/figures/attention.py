"""Attention maps of a result (stored per window of T frames) and the attention figure of paper Fig. 11/12.

MHSA attends over the concatenated sequence of both hands (2T tokens: the right hand's T frames, then the
left's); MHCA attends from one hand's T frames to the global feature sequence (T x T, per hand). The windows of a
run overlap (half a window by default): a frame belongs to the window whose centre is nearest.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core_model.figures._save import new_figure, save_figure
from core_model.results import Reconstruction

HAND_LABELS = ("right", "left")


@dataclasses.dataclass
class WindowAttention:
    """One window's maps in one temporal block. start/stop: its frames [start, stop); mhsa [heads, 2T, 2T];
    mhca [2, heads, T, T] or None when the result has no cross-attention maps."""

    window: int
    start: int
    stop: int
    mhsa: np.ndarray
    mhca: np.ndarray | None

    @property
    def length(self) -> int:
        return self.stop - self.start


def has_attention(result: Reconstruction) -> bool:
    return result.mhsa_attention is not None and result.window_frames is not None and len(result.window_frames) > 0


def window_for_frame(result: Reconstruction, frame: int) -> int | None:
    """Index of the window holding ``frame`` whose centre is nearest to it; None if no window holds it."""
    if not has_attention(result):
        return None
    spans = np.asarray(result.window_frames)
    holds = (spans[:, 0] <= frame) & (frame < spans[:, 1])
    if not holds.any():
        return None
    distance = np.abs((spans[:, 0] + spans[:, 1] - 1) / 2 - frame)
    return int(np.argmin(np.where(holds, distance, np.inf)))


def window_attention(result: Reconstruction, window: int, block: int = 0) -> WindowAttention:
    """The maps of ``window`` in temporal block ``block`` (checked against what the result holds)."""
    if not has_attention(result):
        raise ValueError("result: holds no attention maps (made without them, or by a model that has none)")
    count, blocks = result.mhsa_attention.shape[:2]
    if not 0 <= window < count:
        raise ValueError(f"window: expected 0..{count - 1}, got {window}")
    if not 0 <= block < blocks:
        raise ValueError(f"block: expected 0..{blocks - 1} (the model's temporal blocks), got {block}")
    start, stop = (int(v) for v in result.window_frames[window])
    mhca = result.mhca_attention[window, block] if result.mhca_attention is not None else None
    return WindowAttention(window, start, stop, result.mhsa_attention[window, block], mhca)


def attention_figure(result: Reconstruction, frame: int, path: str | os.PathLike[str], block: int = 0,
                     heads: Sequence[int] = (0, 1), dpi: int = 300, panel_in: float = 1.6) -> Path:
    """Fig. 11/12: for the window holding ``frame``, the MHSA maps of ``heads`` (top row) and each hand's MHCA maps
    (rows below), darker = higher weight, the frame's row and column marked. Size: panel_in inches per panel."""
    window = window_for_frame(result, frame)
    if window is None:
        raise ValueError(f"frame: no attention window holds frame {frame} of this result")
    maps = window_attention(result, window, block)
    available = maps.mhsa.shape[0]
    bad = [h for h in heads if not 0 <= h < available]
    if not heads or bad:
        raise ValueError(f"heads: expected indices in 0..{available - 1}, got {list(heads)}")
    rows = [("MHSA", maps.mhsa[list(heads)])]
    if maps.mhca is not None:
        rows += [(f"MHCA {HAND_LABELS[h]}", maps.mhca[h, list(heads)]) for h in range(2)]
    figure = new_figure(panel_in * len(heads) + 0.3, panel_in * len(rows) + 0.5)
    figure.suptitle(f"block {block + 1}, frames {maps.start}–{maps.stop - 1}; frame {frame} marked", fontsize=8)
    grid = figure.add_gridspec(len(rows), len(heads), left=0.08, right=0.98, top=0.9, bottom=0.04,
                               hspace=0.35, wspace=0.15)
    offset = frame - maps.start
    for r, (label, stack) in enumerate(rows):
        for c, head in enumerate(heads):
            ax = figure.add_subplot(grid[r, c])
            ax.imshow(stack[c], cmap="Blues", interpolation="nearest", vmin=0.0)
            marks = (offset, offset + maps.length) if label == "MHSA" else (offset,)
            for m in marks:
                ax.axhline(m, color="#d62728", lw=0.6)
                ax.axvline(m, color="#d62728", lw=0.6)
            ax.set_title(f"{label}, head {head + 1}", fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
    return save_figure(figure, path, dpi)
