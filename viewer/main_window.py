"""InterHand Studio's main window: the Session (one current frame), the dockable panels that show it, the menus,
and opening files. What the menus start is done elsewhere: viewer.runs (the model over a video), viewer.exports
and viewer.workspaces; what runs in the worker goes through viewer.job_runner."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from core_model.pipeline.video import VIDEO_SUFFIXES
from core_model.results import load_result, save_result
from viewer.exports import Exports
from viewer.job_runner import JobRunner
from viewer.panels.attention import AttentionPanel
from viewer.panels.charts import ChartsPanel
from viewer.panels.scene import ScenePanel
from viewer.panels.timeline import TimelinePanel
from viewer.panels.video import VideoPanel
from viewer.runs import Runs
from viewer.session import LoadedResult, Session
from viewer.workspaces import Workspaces

MAX_RECENT = 10
PANELS = {"video": "Video", "scene": "3D view", "timeline": "Timeline", "charts": "Charts",
          "attention": "Attention"}


def file_kind(path: Path) -> str | None:
    """'result', 'workspace' or 'video' (a video file or an image folder); None for anything else."""
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return "result"
    if suffix == ".json":
        return "workspace"
    if suffix in VIDEO_SUFFIXES or path.is_dir():
        return "video"
    return None


class MainWindow(QtWidgets.QMainWindow):
    """The panels docked around one Session, the menus, the status bar, and opening and saving files. ``runs``,
    ``exports`` and ``workspaces`` do what their menus ask; ``job_runner`` runs their background jobs."""

    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle("InterHand Studio")
        self.setAcceptDrops(True)
        self.setDockNestingEnabled(True)
        self.settings = QtCore.QSettings()
        self.session = Session(self)
        self.last_error = ""
        self.panels = {"video": VideoPanel(self.session), "scene": ScenePanel(self.session),
                       "timeline": TimelinePanel(self.session), "charts": ChartsPanel(self.session),
                       "attention": AttentionPanel(self.session)}
        self.panels["timeline"].playing_changed.connect(self.panels["scene"].set_playing)
        self.docks: dict[str, QtWidgets.QDockWidget] = {}
        for key, title in PANELS.items():
            dock = QtWidgets.QDockWidget(title, self)
            dock.setObjectName(f"dock-{key}")
            dock.setWidget(self.panels[key])
            self.docks[key] = dock
        area = QtCore.Qt.DockWidgetArea
        self.addDockWidget(area.LeftDockWidgetArea, self.docks["video"])
        self.addDockWidget(area.RightDockWidgetArea, self.docks["scene"])
        self.splitDockWidget(self.docks["video"], self.docks["attention"], QtCore.Qt.Orientation.Vertical)
        self.splitDockWidget(self.docks["scene"], self.docks["charts"], QtCore.Qt.Orientation.Vertical)
        self.addDockWidget(area.BottomDockWidgetArea, self.docks["timeline"])
        self.docks["timeline"].setFeatures(self.docks["timeline"].features()
                                           & ~QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.resize(1280, 900)
        # resizeDocks before the first show() is not always honoured; a floor keeps the charts readable.
        self.panels["charts"].setMinimumHeight(240)
        self.resizeDocks([self.docks["video"], self.docks["scene"]], [560, 720], QtCore.Qt.Orientation.Horizontal)
        self.resizeDocks([self.docks["scene"], self.docks["charts"], self.docks["video"], self.docks["attention"]],
                         [440, 320, 400, 360], QtCore.Qt.Orientation.Vertical)
        self.runs = Runs(self)
        self.exports = Exports(self)
        self.workspaces = Workspaces(self)
        self._build_status_bar()
        self._build_menus()
        self._build_shortcuts()
        self.session.results_changed.connect(self._on_results_changed)
        self._on_results_changed()
        geometry = self.settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
            self.restoreState(self.settings.value("window/state"))

    # ------------------------------------------------------------------------------------------------ building

    def _build_status_bar(self) -> None:
        from core_model.device import describe_device, pick_device

        bar = self.statusBar()
        self.job_runner = JobRunner(self)
        self.model_label = QtWidgets.QLabel(self)
        self.device_label = QtWidgets.QLabel(f"Device: {describe_device(pick_device())}", self)
        for widget in (self.job_runner.progress, self.job_runner.cancel_button, self.model_label, self.device_label):
            bar.addPermanentWidget(widget)
        bar.showMessage("Open a video or a result file: File ▸ Open (Ctrl+O), or drop it onto the window")

    def _action(self, menu: QtWidgets.QMenu, text: str, slot, shortcut: QtGui.QKeySequence | str | None = None
                ) -> QtGui.QAction:
        action = menu.addAction(text)
        action.triggered.connect(slot)
        if shortcut is not None:
            action.setShortcut(QtGui.QKeySequence(shortcut))
        return action

    def _build_menus(self) -> None:
        keys = QtGui.QKeySequence.StandardKey
        file = self.menuBar().addMenu("&File")
        self._action(file, "&Open…", self._open_dialog, keys.Open)
        self.recent_menu = file.addMenu("Open &recent")
        self._action(file, "Open &workspace…", lambda: self._open_dialog("Workspace (*.json)"))
        file.addSeparator()
        self.save_result_action = self._action(file, "&Save result as…", self._save_result_dialog, keys.Save)
        self._action(file, "Save wor&kspace as…", self.workspaces.save_dialog)
        file.addSeparator()
        self._action(file, "&Close all", self.close_all)
        self._action(file, "&Quit", self.close, keys.Quit)
        run = self.menuBar().addMenu("&Run")
        self._action(run, "&Reconstruct video…", self.runs.dialog, "Ctrl+R")
        self.cancel_action = self._action(run, "&Cancel", self.job_runner.cancel)
        self.cancel_action.setEnabled(False)  # while a job runs only
        self.job_runner.cancellable.connect(self.cancel_action.setEnabled)
        export = self.menuBar().addMenu("&Export")
        self._action(export, "&Meshes (OBJ / PLY / GLB)…", self.exports.mesh_dialog, "Ctrl+E")
        self._action(export, "&Overlay video (mp4)…", self.exports.overlay_dialog)
        self._action(export, "&Figure…", self.exports.figure_dialog, "Ctrl+Shift+F")
        shots = export.addMenu("&Screenshot")
        for key, title in {**PANELS, "window": "Whole window"}.items():
            self._action(shots, f"{title}…", lambda _=False, k=key: self.exports.screenshot_dialog(k))
        view = self.menuBar().addMenu("&View")
        for dock in self.docks.values():
            view.addAction(dock.toggleViewAction())
        help_menu = self.menuBar().addMenu("&Help")
        self._action(help_menu, "&Keyboard shortcuts…", self.show_key_map, keys.HelpContents)
        self._rebuild_recent()

    def _build_shortcuts(self) -> None:
        """The keyboard map (viewer.keymap): frames, playback and the 3D views, anywhere in the window."""
        from viewer.keymap import bind

        timeline: TimelinePanel = self.panels["timeline"]
        scene: ScenePanel = self.panels["scene"]
        session = self.session
        self.shortcuts = bind(self, {
            "frame-1": lambda: timeline.step(-1), "frame+1": lambda: timeline.step(1),
            "frame-10": lambda: timeline.step(-10), "frame+10": lambda: timeline.step(10),
            "first": lambda: session.set_frame(0), "last": lambda: session.set_frame(session.num_frames - 1),
            "play": timeline.toggle,
            "reset": lambda: scene.apply_preset(scene.preset.currentText()),
            "preset+1": lambda: self._cycle_preset(1), "preset-1": lambda: self._cycle_preset(-1)})

    def _cycle_preset(self, step: int) -> None:
        """The 3D view's next (``step`` 1) or previous (-1) camera preset."""
        from viewer.panels.scene import VIEW_PRESETS

        scene: ScenePanel = self.panels["scene"]
        index = VIEW_PRESETS.index(scene.preset.currentText()) if scene.preset.currentText() in VIEW_PRESETS else 0
        scene.apply_preset(VIEW_PRESETS[(index + step) % len(VIEW_PRESETS)])
        self.statusBar().showMessage(f"3D view: {scene.preset.currentText()}", 2000)

    def show_key_map(self) -> None:
        """Help ▸ Keyboard shortcuts."""
        from viewer.keymap import KeyMapDialog

        dialog = KeyMapDialog(self.menuBar(), self)
        dialog.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        self.key_map = dialog
        dialog.open()

    # ------------------------------------------------------------------------------------------------ errors

    def show_error(self, title: str, message: str) -> None:
        """core_model's message in a dialog (window-modal, so the event loop and a running model carry on)."""
        self.last_error = message
        box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Icon.Critical, title, message,
                                    QtWidgets.QMessageBox.StandardButton.Ok, self)
        box.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        self.statusBar().showMessage(f"{title}: {message}", 10000)

    # ------------------------------------------------------------------------------------------------ files

    def open_path(self, path: str | Path) -> bool:
        """Open a result, a workspace or a video by what it is; errors go to a dialog. True if it opened."""
        path = Path(path)
        kind = file_kind(path)
        try:
            if kind == "result":
                self.open_result(path)
            elif kind == "workspace":
                self.workspaces.open(path)
            elif kind == "video":
                self.open_video(path)
            else:
                raise ValueError(f"{path.name}: not a video ({', '.join(VIDEO_SUFFIXES)}), image folder, result "
                                 "(.npz) or workspace (.json)")
        except (ValueError, OSError) as exc:
            self.show_error("Cannot open", str(exc))
            return False
        self._remember(path)
        return True

    def open_video(self, path: Path) -> None:
        self.session.open_video(path)
        info = self.session.video.info
        self.statusBar().showMessage(f"{path.name}: {info.frame_count} frames, {info.fps:g} fps, "
                                     f"{info.width}x{info.height}", 8000)

    def open_result(self, path: Path) -> LoadedResult:
        """Load a result file; the first one becomes the shown result, later ones join the charts. A result
        whose source video still exists opens it too when no video is open."""
        loaded = LoadedResult.from_file(path, load_result(path))
        self.session.add_result(loaded)
        source = Path(loaded.result.meta.source_path)
        if self.session.video is None and loaded is self.session.primary and source.exists():
            self.open_video(source)
        return loaded

    def save_result(self, path: Path) -> Path:
        primary = self.session.primary
        if primary is None or not primary.ready.all():
            raise ValueError("save: no finished result to save")
        saved = save_result(primary.result, path)
        primary.path = saved
        return saved

    def close_all(self) -> None:
        self.job_runner.cancel()
        self.session.clear()

    def _remember(self, path: Path) -> None:
        recent = [str(path.resolve())] + [p for p in self.recent_files() if p != str(path.resolve())]
        self.settings.setValue("recent", recent[:MAX_RECENT])
        self.settings.setValue("last_dir", str(path.resolve().parent))
        self._rebuild_recent()

    def recent_files(self) -> list[str]:
        value = self.settings.value("recent", [])
        return [value] if isinstance(value, str) else list(value or [])

    def _rebuild_recent(self) -> None:
        self.recent_menu.clear()
        for path in self.recent_files():
            self._action(self.recent_menu, path, lambda _=False, p=path: self.open_path(p))
        self.recent_menu.setEnabled(bool(self.recent_files()))

    def last_dir(self) -> str:
        """Where file dialogs start: the folder of the file opened last."""
        return str(self.settings.value("last_dir", str(Path.home())))

    def _open_dialog(self, filters: str = "") -> None:
        filters = filters or ("Videos, results and workspaces (*.npz *.json "
                              + " ".join(f"*{s}" for s in VIDEO_SUFFIXES) + ");;All files (*)")
        paths, _ = QtWidgets.QFileDialog.getOpenFileNames(self, "Open", self.last_dir(), filters)
        for path in paths:
            self.open_path(path)

    def _save_result_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Save result", self.last_dir(), "Result (*.npz)")
        if path:
            self.guarded("Cannot save", lambda: self.save_result(Path(path)))

    def guarded(self, title: str, action: Callable[[], object]) -> object:
        """``action()``, or None with its error (ValueError, OSError: core_model's messages) shown in a dialog."""
        try:
            return action()
        except (ValueError, OSError) as exc:
            self.show_error(title, str(exc))
            return None

    def dragEnterEvent(self, event: QtGui.QDragEnterEvent) -> None:  # noqa: N802 (Qt's name)
        urls = event.mimeData().urls()
        if urls and all(u.isLocalFile() and file_kind(Path(u.toLocalFile())) for u in urls):
            event.acceptProposedAction()

    def dropEvent(self, event: QtGui.QDropEvent) -> None:  # noqa: N802 (Qt's name)
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls()]
        for path in sorted(paths, key=lambda p: file_kind(p) != "video"):  # the video first, then its results
            self.open_path(path)
        event.acceptProposedAction()

    def _on_results_changed(self) -> None:
        primary = self.session.primary
        if primary is not None:
            self.model_label.setText(f"Hand model: {primary.result.meta.hand_model}")
        else:
            from core_model.handmodel.registry import mano_available

            self.model_label.setText(f"Hand model: {'MANO' if mano_available() else 'OpenHand'}")
        self.save_result_action.setEnabled(primary is not None and bool(primary.ready.all()))
        names = ", ".join(r.label for r in self.session.results)
        self.setWindowTitle(f"InterHand Studio — {names}" if names else "InterHand Studio")

    # ------------------------------------------------------------------------------------------------ closing

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 (Qt's name)
        self.job_runner.stop()
        self.panels["timeline"].pause()
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.session.close_video()
        self.panels["scene"].close_views()
        super().closeEvent(event)
