"""The Export menu: meshes (OBJ / PLY / GLB), paper figures, screenshots of a panel or the window, and the overlay
video. Each goes through the same core_model code as ``interhand export`` and ``interhand figures``; the overlay
video is written in the worker."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6 import QtCore, QtGui, QtWidgets

from viewer.jobs import overlay_job
from viewer.window_part import WindowPart
from viewer.worker import GeneratorWorker

if TYPE_CHECKING:
    from viewer.main_window import MainWindow


class Exports(WindowPart):
    """Exports what ``window`` shows: its session's primary result, its panels, itself."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.session = window.session

    def _faces(self, result=None):
        """(right, left) faces of ``result``'s hand model (default: the shown result's)."""
        from core_model.pipeline.models import faces_of, hand_model_of_result

        if result is None:
            primary = self.session.primary
            if primary is None:
                raise ValueError("export: open a result first")
            result = primary.result
        return faces_of(hand_model_of_result(result.meta.hand_model))

    def meshes(self, folder: Path, file_format: str, frames: range) -> list[Path]:
        """One mesh file per frame with both hands (core_model.pipeline.sequence_export.export_frames)."""
        from core_model.pipeline.sequence_export import export_frames

        primary = self.session.primary
        faces = self._faces()
        ready = [t for t in frames if primary.shows(t)]
        written = export_frames(primary.result, faces, folder, file_format, ready)
        if not written:
            raise ValueError(f"export: none of frames {frames.start}–{frames.stop - 1} has both hands reconstructed")
        self.window.statusBar().showMessage(f"wrote {len(written)} {file_format.upper()} file(s) to {folder}", 8000)
        return written

    def figure(self, kind: str, path: Path, frames: list[int] | None = None, views: list[str] | None = None,
               block: int = 0, heads: list[int] | None = None, dpi: int = 300, compare: bool = False,
               refined: bool = False) -> Path:
        """A paper figure through core_model.figures (the same code as ``interhand figures``). Multi-view:
        the shown result, or with ``compare`` every finished result loaded, side by side; ``refined`` adds the
        refinement of each that holds one (``interhand figures multiview A B --refined``)."""
        primary = self.session.primary
        if primary is None or not primary.ready.all():
            raise ValueError("figure: open a finished result first")
        frames = frames if frames else [self.session.frame]
        QtWidgets.QApplication.setOverrideCursor(QtCore.Qt.CursorShape.WaitCursor)
        try:
            if kind == "multiview":
                from core_model.figures.multiview import comparison_figure

                written = comparison_figure(self.figure_methods(compare, refined), frames, path,
                                            video=self.session.video_path, views=views or ("front", "alternative"),
                                            dpi=dpi)
            elif kind == "accel":
                from core_model.figures.accel import acceleration_figure

                written = acceleration_figure([(r.label, r.result) for r in self.session.results if r.ready.all()],
                                              path, dpi=dpi)
            elif kind == "attention":
                from core_model.figures.attention import attention_figure

                written = attention_figure(primary.result, frames[0], path, block=block, heads=heads or [0, 1],
                                           dpi=dpi)
            else:
                raise ValueError(f"figure: unknown kind {kind!r}")
        finally:
            QtWidgets.QApplication.restoreOverrideCursor()
        self.window.statusBar().showMessage(f"wrote {written}", 8000)
        return written

    def figure_methods(self, compare: bool, refined: bool) -> list:
        """The methods of a multi-view figure: the shown result (``compare``: every finished result loaded, in
        order), each followed by its refinement with ``refined``; labelled as the charts' legend labels them."""
        from core_model.figures.multiview import methods_of

        loaded = [r for r in self.session.results if r.ready.all()] if compare else [self.session.primary]
        faces = {}
        triples = []
        for item in loaded:
            name = item.result.meta.hand_model.lower()
            if name not in faces:
                faces[name] = self._faces(item.result)
            triples.append((item.label, item.result, faces[name]))
        methods = methods_of(triples, refined=refined)
        if len(methods) == 1:
            methods[0].label = ""  # one method: no method header, the view titles suffice
        return methods

    def panel_image(self, key: str) -> QtGui.QImage:
        """The panel ``key`` (a key of viewer.main_window.PANELS) as drawn, or with "window" the whole window."""
        return self.window.grab().toImage() if key == "window" else self.window.panels[key].snapshot()

    def screenshot(self, key: str, path: Path) -> Path:
        """Save :meth:`panel_image` of ``key`` to ``path`` (PNG or JPEG by its suffix)."""
        if not self.panel_image(key).save(str(path)):
            raise OSError(f"screenshot: cannot write {path} (a .png or .jpg in a writable folder)")
        return path

    def overlay_video(self, path: Path) -> None:
        """The overlay mp4 of the shown result over its video, written in the worker."""
        primary = self.session.primary
        if primary is None or self.session.video_path is None or not primary.ready.all():
            raise ValueError("overlay: open a video and its finished result first")
        runner = self.window.job_runner

        def on_items(items: list[tuple[int, int]]) -> None:
            runner.report(progress=("overlay video", *items[-1]))
            if items[-1][0] == items[-1][1]:
                runner.report(message=f"wrote {path}")

        runner.start(GeneratorWorker(overlay_job(self.session.video_path, primary.result, path,
                                                 self.window.panels["video"].mode.currentText()),
                                     "overlay video", self.window), on_items)

    def mesh_dialog(self) -> None:
        from viewer.dialogs import MeshExportDialog

        window = self.window
        dialog = MeshExportDialog(self.session.frame, self.session.num_frames, window.last_dir(), window)
        if dialog.exec() == QtWidgets.QDialog.DialogCode.Accepted:
            window.guarded("Cannot export", lambda: self.meshes(Path(dialog.folder.text()),
                                                                dialog.format.currentText(), dialog.frames()))

    def figure_dialog(self) -> None:
        from viewer.dialogs import FigureDialog

        window = self.window
        finished = [r for r in self.session.results if r.ready.all()]
        dialog = FigureDialog(self.session.frame, str(Path(window.last_dir()) / "figure.png"), window,
                              results=len(finished), refined=sum(bool(r.result.refined) for r in finished))
        if dialog.exec() == QtWidgets.QDialog.DialogCode.Accepted:
            window.guarded("Cannot make the figure", lambda: self.figure(**dialog.options()))

    def overlay_dialog(self) -> None:
        window = self.window
        path, _ = QtWidgets.QFileDialog.getSaveFileName(window, "Overlay video", window.last_dir(), "MP4 (*.mp4)")
        if path:
            window.guarded("Cannot export", lambda: self.overlay_video(Path(path)))

    def screenshot_dialog(self, key: str) -> None:
        window = self.window
        path, _ = QtWidgets.QFileDialog.getSaveFileName(window, "Screenshot", window.last_dir(), "PNG (*.png)")
        if path:
            window.guarded("Cannot save", lambda: self.screenshot(key, Path(path)))
