"""The base of the objects that do one part of the main window's work (viewer.runs, viewer.exports,
viewer.workspaces, viewer.job_runner)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6 import QtCore

if TYPE_CHECKING:
    from viewer.main_window import MainWindow


class WindowPart(QtCore.QObject):
    """A QObject made with the main window it works for as its Qt parent, reached through :attr:`window`."""

    @property
    def window(self) -> MainWindow:
        """The window, this object's Qt parent: not an attribute, which would make the window and this keep each
        other's Python objects alive after the window is deleted (a reference cycle only the garbage collector
        breaks)."""
        return self.parent()
