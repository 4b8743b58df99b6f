"""The model runs in the worker thread on a real clip (a small randomly initialised lite STCNet: the machinery is
under test, not the weights): frames become scrubbable while it runs, the GUI thread never stalls for 100 ms,
the result file is written at the end, cancel leaves nothing behind, and a failure reaches a dialog."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch
from gui.factory import write_clip
from PySide6 import QtCore

from core_model.results import load_result
from viewer.jobs import RunSettings


def small_model(openhand):
    from core_model.network import STCNet, STCNetConfig

    def factory(settings: RunSettings):
        config = STCNetConfig.from_preset("lite", input_size=64, frames=4)
        return STCNet(config, openhand, imagenet_weights=None).eval(), "lite", "", torch.device("cpu")
    return factory


class StallMeter(QtCore.QObject):
    """The longest gap between ticks of a 5 ms timer on the GUI thread: how long the event loop was blocked."""

    def __init__(self) -> None:
        super().__init__()
        self.longest = 0.0
        self._last = time.perf_counter()
        self.timer = QtCore.QTimer(self)
        self.timer.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(self._tick)
        self.timer.start(5)

    def _tick(self) -> None:
        now = time.perf_counter()
        self.longest = max(self.longest, now - self._last)
        self._last = now


def test_run_streams_frames_and_never_blocks_the_gui(window, openhand, tmp_path, qtbot):
    frames = 60  # long enough that the model stage spans several 100 ms drains of the worker's output
    clip = write_clip(tmp_path / "clip.avi", n=frames)
    output = tmp_path / "run.npz"
    seen = []  # (ready frames, 3D label) whenever frames arrive mid-run
    window.session.frames_updated.connect(
        lambda frames: seen.append((int(window.session.primary.ready.sum()),
                                    window.panels["scene"].main.label_text)))
    window.runs.start(RunSettings(clip, output, untrained="lite", roi=(10, 10, 100, 100),
                                  hand_model="openhand", batch=1),
                      small_model(openhand))
    meter = StallMeter()
    runner = window.job_runner
    assert runner.worker.isRunning() and runner.progress.isVisible() and runner.cancel_button.isVisible()
    qtbot.waitUntil(lambda: window.job_runner.worker is None, timeout=60000)
    meter.timer.stop()
    assert window.last_error == ""
    assert len(seen) > 1 and seen[0][0] < frames  # scrubbable before the end: frames arrived in several batches
    result = load_result(output)
    assert window.session.primary.result.num_frames == frames and window.session.primary.ready.all()
    assert window.session.primary.path == output
    np.testing.assert_array_equal(window.session.primary.result.vertices, result.vertices)
    assert not window.job_runner.progress.isVisible()
    window.session.set_frame(9)
    qtbot.wait(30)
    assert "frame 9" in window.panels["scene"].main.label_text
    assert "window" in window.panels["attention"].info.text()  # the run's attention maps are shown
    if meter.longest >= 0.1:
        # The target holds on this 2-core machine with software GL when it is otherwise idle (issue 8). With other
        # processes on the cores (load average at or above the core count), waiting for CPU time alone can exceed
        # it: reported rather than hidden, with the load it was measured under.
        load = os.getloadavg()[0]
        message = f"the GUI thread stalled {meter.longest * 1000:.0f} ms (target < 100 ms), load average {load:.1f}"
        if load < (os.cpu_count() or 1):
            pytest.fail(message)
        pytest.xfail(message)


def test_cancel_leaves_no_file_and_failure_shows_core_models_message(window, openhand, tmp_path, qtbot):
    clip = write_clip(tmp_path / "clip.avi", n=14)
    output = tmp_path / "run.npz"
    window.runs.start(RunSettings(clip, output, untrained="lite", roi=(10, 10, 100, 100),
                                  hand_model="openhand", batch=1),
                      small_model(openhand))
    window.job_runner.cancel()
    qtbot.waitUntil(lambda: window.job_runner.worker is None, timeout=60000)
    assert not output.exists() and window.session.results == []
    assert "cancel" in window.statusBar().currentMessage()
    blank = write_clip(tmp_path / "blank.avi", n=6)
    window.runs.start(RunSettings(blank, tmp_path / "r.txt", untrained="lite", hand_model="openhand"),
                      small_model(openhand))
    qtbot.waitUntil(lambda: window.job_runner.worker is None, timeout=60000)
    assert "a result file ends in .npz" in window.last_error


def test_run_dialog_refine_reaches_the_result_file(window, openhand, tmp_path, qtbot):
    """The run dialog's "Refine" box: the worker refines after the network and the file holds the refined arrays
    beside the network's, with the run's refinement record."""
    from viewer.dialogs import RunDialog

    clip = write_clip(tmp_path / "clip.avi", n=14)
    output = tmp_path / "run.npz"
    dialog = RunDialog(clip, window)
    dialog.output.setText(str(output))
    dialog.untrained.setCurrentIndex(1)
    dialog.refine.setChecked(True)
    settings = dialog.settings()
    assert settings.refine and settings.untrained
    window.runs.start(RunSettings(clip, output, untrained="lite", roi=(10, 10, 100, 100), hand_model="openhand",
                                  batch=1, refine=settings.refine), small_model(openhand))
    qtbot.waitUntil(lambda: window.job_runner.worker is None, timeout=60000)
    assert window.last_error == ""
    result = load_result(output)
    assert set(result.refined) >= {"keypoints", "vertices", "gate"}
    assert result.refined["keypoints"].shape == result.keypoints.shape
    assert result.meta.extra["refine"]["chunks"] == 1
