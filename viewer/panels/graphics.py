"""What the pyqtgraph panels (charts, attention) share about how their scenes reach the screen."""

from __future__ import annotations

import pyqtgraph as pg


def batch_scene_updates(view: pg.GraphicsView) -> None:
    """Route ``view``'s scene changes through the scene's queued ``changed`` signal.

    Why: the 3D views are OpenGL widgets, so every repaint of the main window is a composition of the whole window
    in software GL (~5-10 ms on this class of machine). Without a receiver on ``changed``, the first scene to process
    its dirty items had the window repaint and composite at once, before the other scene's queued processing; each
    frame of playback cost three compositions. With one, measured on the demo: one composition per frame.
    """
    view.scene().changed.connect(_ignore)


def _ignore(_rects: object) -> None:
    """The receiver whose presence selects the queued path; the view repaints itself from the same signal."""
