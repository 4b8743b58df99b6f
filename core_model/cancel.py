"""Cooperative cancellation: long work (detection, windowed inference, refinement) asks a ``cancel()`` callable
between its steps and raises :class:`CancelledError`, so that the caller's cleanup runs and nothing half-made is
left behind (the viewer's workers and ``Ctrl-C`` in the CLI alike)."""

from __future__ import annotations

from collections.abc import Callable


class CancelledError(Exception):
    """The work was cancelled between two of its steps."""


def check_cancel(cancel: Callable[[], bool] | None, message: str) -> None:
    """Raise :class:`CancelledError` with ``message`` when ``cancel()`` says so."""
    if cancel is not None and cancel():
        raise CancelledError(message)
