"""File ▸ Save workspace / open a workspace: the window's state (results, video, frame, 3D cameras, overlay mode,
panel layout and geometry) into a workspace file (viewer.workspace_file) and back."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6 import QtCore, QtWidgets

from viewer.window_part import WindowPart
from viewer.workspace_file import Workspace, load_workspace, save_workspace

if TYPE_CHECKING:
    from viewer.main_window import MainWindow


class Workspaces(WindowPart):
    """Saves ``window``'s state to a workspace file and restores it (results and video by their paths)."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.session = window.session

    def current(self) -> Workspace:
        """The window's state now."""
        window, session = self.window, self.session
        return Workspace(
            results=[str(r.path.resolve()) for r in session.results if r.path is not None],
            video=str(session.video_path.resolve()) if session.video_path else None,
            frame=session.frame, cameras=window.panels["scene"].cameras(),
            layout=base64.b64encode(bytes(window.saveState())).decode(),
            geometry=base64.b64encode(bytes(window.saveGeometry())).decode(),
            overlay=window.panels["video"].mode.currentText())

    def save(self, path: Path) -> Path:
        return save_workspace(self.current(), path)

    def open(self, path: Path) -> None:
        """Close what is open and restore the workspace file ``path``; its errors are WorkspaceError (ValueError)
        or OSError."""
        workspace = load_workspace(path)
        window = self.window
        window.close_all()
        if workspace.video:
            window.open_video(Path(workspace.video))
        for result in workspace.results:
            window.open_result(Path(result))
        window.restoreGeometry(QtCore.QByteArray(base64.b64decode(workspace.geometry)))
        window.restoreState(QtCore.QByteArray(base64.b64decode(workspace.layout)))
        window.panels["video"].mode.setCurrentText(workspace.overlay)
        self.session.set_frame(workspace.frame, force=True)
        if workspace.cameras:
            window.panels["scene"].set_cameras(workspace.cameras)

    def save_dialog(self) -> None:
        window = self.window
        path, _ = QtWidgets.QFileDialog.getSaveFileName(window, "Save workspace", window.last_dir(),
                                                        "Workspace (*.json)")
        if path:
            window.guarded("Cannot save", lambda: self.save(Path(path)))
