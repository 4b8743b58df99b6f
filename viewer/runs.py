"""Run ▸ Reconstruct video: the model (and the test-time refinement when asked) over a video in the worker, its
frames streaming into the session, and every panel, as their windows finish."""

from __future__ import annotations

import dataclasses
import gc
from typing import TYPE_CHECKING

import numpy as np
from PySide6 import QtWidgets

from core_model.pipeline.models import describe_run_model
from core_model.results import Reconstruction, ResultMeta
from viewer.jobs import ModelFactory, RunSettings, build_model, reconstruction_job
from viewer.session import LoadedResult
from viewer.window_part import WindowPart
from viewer.worker import GeneratorWorker

if TYPE_CHECKING:
    from viewer.main_window import MainWindow

CONTINUE_DIALOG = "continue-interrupted-run"
"""Object name of the question whether to continue an interrupted run."""


class Runs(WindowPart):
    """Starts reconstructions for ``window`` through its job runner and turns their RunEvents into a result that
    grows in the session: shown from the first finished window, replaced by the final one when the run ends, and
    removed if it ends unfinished (cancelled or failed)."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.session = window.session
        self._stream: LoadedResult | None = None
        self._settings: RunSettings | None = None
        self._model = ("", "")  # (preset, hand-model name) of the run in progress

    def start(self, settings: RunSettings, factory: ModelFactory = build_model) -> None:
        """Reconstruct ``settings.video`` in the worker; frames appear in every panel as their windows finish."""
        window = self.window
        if self.session.video_path is None or self.session.video_path.resolve() != settings.video.resolve():
            window.open_video(settings.video)
        self._settings = settings
        # Imports hold the GIL while a module's body runs (the pipeline's and the network's ~50 ms), and so does
        # loading MediaPipe (~0.2 s, see warm_up_detector). Done here, once, before the worker runs, not in the
        # worker, where they would freeze this (GUI) thread mid-run.
        import core_model.network
        import core_model.pipeline.run  # noqa: F401
        from core_model.pipeline.detect import warm_up_detector

        warm_up_detector()

        self._model = describe_run_model(settings.checkpoint, settings.hand_model, settings.untrained)
        hand_model = self._model[1]
        window.panels["scene"].prepare(hand_model)
        window.model_label.setText(f"Hand model: {hand_model}")
        # Python's cyclic GC runs a full collection over every live object (torch, VTK, Qt wrappers: a big
        # heap) while holding the GIL; triggered in the worker by the model's construction it froze this thread
        # for 150-400 ms. What is alive now is out of the collector's reach while the run goes on, and back
        # within it when the run ends (_ended): frozen objects are never collected, and garbage frozen with them
        # (a closed window's Python half) would otherwise live until the interpreter's exit, where shiboken no
        # longer clears weak references to the wrappers it frees (a segfault at exit, see viewer.app).
        gc.freeze()
        try:
            window.job_runner.start(GeneratorWorker(reconstruction_job(settings, factory), "reconstruction", window),
                                    self._on_events, repaint=True, on_end=self._ended)
        except BaseException:  # no run started (another job runs): nothing will unfreeze but this
            gc.unfreeze()
            raise

    def dialog(self) -> None:
        """Run ▸ Reconstruct video…: ask for the settings (and, when a killed run of them left its work, whether
        to continue it), then start."""
        from viewer.dialogs import RunDialog

        dialog = RunDialog(self.session.video_path, self.window)
        if dialog.exec() != QtWidgets.QDialog.DialogCode.Accepted:
            return
        settings = self.window.guarded("Cannot run", dialog.settings)
        if settings is not None:
            settings = self.window.guarded("Cannot run", lambda: self.continue_or_restart(settings))
        if settings is not None:
            self.window.guarded("Cannot run", lambda: self.start(settings))

    def continue_or_restart(self, settings: RunSettings) -> RunSettings | None:
        """``settings``, with ``resume`` as the user chooses when an interrupted run of the same video and settings
        left its finished windows (the dialog :data:`CONTINUE_DIALOG`); None when they cancel."""
        from viewer.jobs import interrupted_run

        found = interrupted_run(settings)
        if found is None:
            return settings
        if found.windows_total:
            done = f"{found.windows_done} of {found.windows_total} windows of the model were finished"
        elif found.record.get("progress", {}).get("stage") == "infer":
            done = "the hands had been found on every frame"
        else:
            done = "it had not finished finding the hands"
        box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Icon.Question, "Continue the interrupted run?",
                                    f"A run of {settings.video.name} into {settings.output.name} with these settings "
                                    f"was interrupted: {done}. Continue it, or start again and discard that work?",
                                    QtWidgets.QMessageBox.StandardButton.Cancel, self.window)
        box.setObjectName(CONTINUE_DIALOG)
        resume = box.addButton("Continue", QtWidgets.QMessageBox.ButtonRole.AcceptRole)
        restart = box.addButton("Start again", QtWidgets.QMessageBox.ButtonRole.DestructiveRole)
        box.setDefaultButton(resume)
        box.exec()
        clicked = box.clickedButton()
        box.deleteLater()
        if clicked is resume:
            return dataclasses.replace(settings, resume=True)
        if clicked is restart:
            return dataclasses.replace(settings, resume=False)
        return None

    def _on_events(self, events: list) -> None:
        """A batch of RunEvents: one progress update and one frames_updated for all of them, so a burst of
        small events costs the GUI thread one redraw."""
        report = self.window.job_runner.report
        frames = []
        for event in events:
            if event.note:
                report(message=event.note)
            if event.message and event.stage != "done":
                report(message=event.message)
            if event.stage == "model":
                if self._stream is None:
                    self._stream = self._streamed_result(event.arrays)
                    self.session.add_result(self._stream, primary=True)
                self._stream.ready[event.frames] = True
                frames.append(np.asarray(event.frames))
            elif event.stage == "done":
                final = LoadedResult(self._stream.label, event.result, np.ones(event.result.num_frames, bool),
                                     self._stream.path)
                self.session.replace_result(self._stream, final)
                self._stream = None
                report(message=event.message)
        if frames and self._stream is not None:
            self.session.frames_updated.emit(np.concatenate(frames))
        last = events[-1]
        if last.stage != "done":
            stage = {"detect": "detecting hands", "refine": "refining"}.get(last.stage, "reconstructing")
            report(progress=(stage, last.done, last.total))

    def _streamed_result(self, arrays: dict[str, np.ndarray]) -> LoadedResult:
        """A view of the run's arrays as a result whose frames become ready as the model finishes them."""
        settings = self._settings
        n = len(arrays["vertices"])
        meta = ResultMeta(source_path=str(settings.video), source_sha256="", fps=self.session.fps, frame_count=n,
                          model_preset=self._model[0], checkpoint_sha256="", hand_model=self._model[1])
        return LoadedResult(settings.output.stem, Reconstruction(meta=meta, **arrays), np.zeros(n, bool),
                            settings.output)

    def _ended(self) -> None:
        """The run's job ended: a result it left unfinished (cancelled or failed mid-run) leaves the session, and
        what ``start`` froze is the collector's again."""
        if self._stream is not None and not self._stream.ready.all():
            self.session.remove_result(self._stream)
        self._stream = None
        gc.unfreeze()
