"""A Qt thread that drives a generator (napari / superqt ``thread_worker`` style, DESIGN section 10): the
generator does the work and yields progress; this thread only forwards each item to the GUI thread as a signal.
Cancel is cooperative: the generator gets a ``cancelled()`` callable to check inside long steps, and this thread
stops it after the item it is yielding when cancel was asked.

Items cross threads as Python objects (numpy arrays, RunEvents); the GUI thread alone touches widgets and VTK.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable, Iterator

from PySide6 import QtCore

from core_model.cancel import CancelledError


class GeneratorWorker(QtCore.QThread):
    """``job(cancelled)`` returns the generator to drive. Signals: yielded(item) per item; failed(message) with
    the exception's own message (core_model's errors are written for people); cancelled(message); succeeded()."""

    yielded = QtCore.Signal(object)
    failed = QtCore.Signal(str)
    cancelled = QtCore.Signal(str)
    succeeded = QtCore.Signal()

    def __init__(self, job: Callable[[Callable[[], bool]], Iterator[object]], title: str,
                 parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.job = job
        self.title = title
        self._cancel = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    def run(self) -> None:
        generator = None
        try:
            generator = self.job(self._cancel.is_set)
            for item in generator:
                self.yielded.emit(item)
                if self._cancel.is_set():
                    raise CancelledError(f"{self.title}: cancelled")
        except CancelledError as exc:
            self.cancelled.emit(str(exc))
        except Exception as exc:  # every failure reaches the user as a dialog, with the full trace in the log
            traceback.print_exc()
            self.failed.emit(str(exc) or type(exc).__name__)
        else:
            self.succeeded.emit()
        finally:
            if generator is not None:
                generator.close()  # a cancelled job's context managers (temporary files) clean up now
