"""The main window's background jobs, one at a time: a GeneratorWorker whose items reach the GUI thread in
batches, its progress and messages on the status bar, and Cancel. What a job does is its generator's (viewer.jobs);
what its items mean, its starter's (viewer.runs, viewer.exports)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6 import QtCore, QtWidgets

from viewer.window_part import WindowPart
from viewer.worker import GeneratorWorker

if TYPE_CHECKING:
    from viewer.main_window import MainWindow

DRAIN_MS = 100  # the GUI takes in a running job's output at most this often
STATUS_MS = 250  # a running job's progress and messages reach the status bar at most this often


class JobRunner(WindowPart):
    """Runs one job at a time for ``window``. ``worker``: the running job's thread, None when idle; ``progress``
    and ``cancel_button``: the status bar's widgets for it, shown while a job runs (the window places them);
    ``cancellable``: whether there is a job to cancel now (False once asked to stop), for the window's Cancel."""

    cancellable = QtCore.Signal(bool)

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.worker: GeneratorWorker | None = None
        self._pending: list[object] = []  # items the worker yielded, not yet shown
        self._on_items: Callable[[list], None] | None = None
        self._on_end: Callable[[], None] | None = None
        self._drain = QtCore.QTimer(self)
        self._drain.setSingleShot(True)
        self._drain.setInterval(DRAIN_MS)
        self._drain.timeout.connect(self._drain_items)
        self._status_timer = QtCore.QTimer(self)
        self._status_timer.setSingleShot(True)
        self._status_timer.setInterval(STATUS_MS)
        self._status_timer.timeout.connect(self._show_status)
        self._status_message: str | None = None  # the latest, not yet shown, of a running job
        self._status_progress: tuple[str, int, int] | None = None
        self.progress = QtWidgets.QProgressBar(window)
        self.progress.setMaximumWidth(260)
        self.progress.setFormat("%p%")
        self.cancel_button = QtWidgets.QPushButton("Cancel", window)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress.hide()
        self.cancel_button.hide()

    def start(self, worker: GeneratorWorker, on_items: Callable[[list], None], repaint: bool = False,
              on_end: Callable[[], None] | None = None) -> None:
        """Run ``worker``; what it yields is handed to ``on_items`` in batches, at most every DRAIN_MS, and
        ``on_end`` is called once it ended (finished, failed or cancelled) after its last batch. With ``repaint``,
        the window is drawn at once before the worker starts: a job that changed much of it (a run opens its video
        and shows the progress) would otherwise have the whole window drawn in the next pass of the event loop,
        competing with the worker's start for the GIL and both cores (measured: a 150-200 ms freeze as the run
        began; none over 40 ms since)."""
        if self.worker is not None:
            raise ValueError(f"busy: {self.worker.title} is still running; cancel it first")
        self.worker = worker
        self._on_items = on_items
        self._on_end = on_end
        worker.yielded.connect(self._queue_item)
        worker.failed.connect(lambda message: self.window.show_error(f"{worker.title} failed", message))
        worker.cancelled.connect(lambda message: self.report(message=message))  # after what is pending
        worker.finished.connect(self._job_ended)
        self.progress.setValue(0)
        self.progress.show()
        self.cancel_button.show()
        self.cancel_button.setEnabled(True)
        self.cancellable.emit(True)
        if repaint:
            self.window.repaint()
        worker.start()

    def cancel(self) -> None:
        """Ask the running job, if any, to stop after its current batch."""
        if self.worker is not None:
            self.worker.cancel()
            self.cancel_button.setEnabled(False)
            self.cancellable.emit(False)
            self.window.statusBar().showMessage(f"{self.worker.title}: cancelling after the current batch…")

    def stop(self) -> None:
        """Cancel the running job, if any, and wait until its thread has ended (the window is closing)."""
        if self.worker is not None:
            self.worker.cancel()
            self.worker.wait()

    def report(self, message: str | None = None, progress: tuple[str, int, int] | None = None) -> None:
        """Show a running job's message and progress (stage, done, total) within STATUS_MS, the latest of each:
        a job reports several times per drain, and each change of the status bar costs a repaint."""
        if message is not None:
            self._status_message = message
        if progress is not None:
            self._status_progress = progress
        if not self._status_timer.isActive():
            self._status_timer.start()

    def _queue_item(self, item: object) -> None:
        self._pending.append(item)
        if not self._drain.isActive():
            self._drain.start()

    def _drain_items(self) -> None:
        items, self._pending = self._pending, []
        if items:
            self._on_items(items)

    def _job_ended(self) -> None:
        self._drain.stop()
        self._drain_items()  # what the worker yielded last, before it ended
        self._status_timer.stop()
        self._show_status()  # its last message (the result written) stays
        worker, self.worker = self.worker, None
        if worker is not None:
            worker.deleteLater()
        on_end, self._on_end = self._on_end, None
        if on_end is not None:
            on_end()
        self.progress.hide()
        self.cancel_button.hide()
        self.cancellable.emit(False)

    def _show_status(self) -> None:
        message, self._status_message = self._status_message, None
        progress, self._status_progress = self._status_progress, None
        bar = self.window.statusBar()
        if message is not None:
            self._deferred(bar, lambda: bar.showMessage(message, 10000))
        if progress is not None and self.progress.isVisible():
            self._deferred(self.progress, lambda: self._progress(*progress))

    @staticmethod
    def _deferred(widget: QtWidgets.QWidget, change: Callable[[], None]) -> None:
        """Make ``change`` to ``widget`` and leave its repaint to the next window update. QProgressBar.setValue and
        QStatusBar.showMessage repaint at once: a window flush of its own on the GUI thread for each message, on
        top of the next frame's."""
        widget.setUpdatesEnabled(False)
        try:
            change()
        finally:
            widget.setUpdatesEnabled(True)  # schedules one update() of the widget

    def _progress(self, stage: str, done: int, total: int) -> None:
        if self.progress.maximum() != max(total, 1):
            self.progress.setRange(0, max(total, 1))
        if not self.progress.format().startswith(stage):
            self.progress.setFormat(f"{stage} %v/%m")
        self.progress.setValue(done)
