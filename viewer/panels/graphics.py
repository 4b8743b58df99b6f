"""What the pyqtgraph panels (charts, attention) share about how their scenes reach the screen."""

from __future__ import annotations

import pyqtgraph as pg


def batch_scene_updates(view: pg.GraphicsView) -> None:
    """Route ``view``'s scene changes through the scene's queued ``changed`` signal.

    Why: without a receiver on ``changed``, the first scene to process its dirty items had the window repaint at
    once, before the other scene's queued processing; each frame of playback cost three window repaints (measured on
    the demo, when the 3D views were still OpenGL widgets and each repaint a full-window composition). With one:
    one repaint per frame.
    """
    view.scene().changed.connect(_ignore)


def _ignore(_rects: object) -> None:
    """The receiver whose presence selects the queued path; the view repaints itself from the same signal."""
