"""The model runs in the worker thread on a real clip (a small randomly initialised lite STCNet: the machinery is
under test, not the weights): frames become scrubbable while it runs, the GUI thread never works 100 ms without
returning to its event loop, the result file is written at the end, cancel leaves nothing behind, and a failure
reaches a dialog."""

from __future__ import annotations

import json
import os
import time

import numpy as np
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
    """Gaps between ticks of a 5 ms timer on the GUI thread. ``busiest``: the most CPU time the GUI thread itself
    spent within one gap (``time.thread_time``), i.e. how long work on that thread kept its event loop from
    running: a slow slot, or a flood of the worker's signals. Waiting for a core, for the GIL or for the X server
    is not in it, so it does not grow when other processes load the machine. ``longest``: the longest gap by the
    wall clock, which holds those waits too (reported, not asserted)."""

    def __init__(self) -> None:
        super().__init__()
        self.longest = self.busiest = 0.0
        self.ticks = 0
        self._last, self._last_cpu = time.perf_counter(), time.thread_time()
        self.timer = QtCore.QTimer(self)
        self.timer.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(self._tick)
        self.timer.start(5)

    def _tick(self) -> None:
        now, cpu = time.perf_counter(), time.thread_time()
        self.longest = max(self.longest, now - self._last)
        self.busiest = max(self.busiest, cpu - self._last_cpu)
        self._last, self._last_cpu = now, cpu
        self.ticks += 1


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
    # Issue 8's limit: the GUI thread never works 100 ms at a stretch while the model runs. Measured as its own CPU
    # time between two ticks, so that the check holds or fails alike on an idle and on a loaded machine.
    figures = (f"GUI thread busy {meter.busiest * 1000:.0f} ms at most between two ticks of its event loop "
               f"(limit 100 ms); longest gap {meter.longest * 1000:.0f} ms by the wall clock, {meter.ticks} ticks, "
               f"load average {os.getloadavg()[0]:.1f}")
    print(figures)
    assert meter.ticks > 20, figures
    assert meter.busiest < 0.1, figures


def test_cancel_leaves_no_file_and_failure_shows_core_models_message(window, openhand, tmp_path, qtbot):
    clip = write_clip(tmp_path / "clip.avi", n=14)
    output = tmp_path / "run.npz"
    assert not window.cancel_action.isEnabled()  # Run ▸ Cancel: nothing runs
    window.runs.start(RunSettings(clip, output, untrained="lite", roi=(10, 10, 100, 100),
                                  hand_model="openhand", batch=1),
                      small_model(openhand))
    assert window.cancel_action.isEnabled()
    window.cancel_action.trigger()
    assert not window.cancel_action.isEnabled()  # asked once
    qtbot.waitUntil(lambda: window.job_runner.worker is None, timeout=60000)
    assert not output.exists() and window.session.results == []
    assert "cancel" in window.statusBar().currentMessage() and not window.cancel_action.isEnabled()
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
    dialog.show()
    qtbot.waitExposed(dialog)
    for edit in (dialog.checkpoint, dialog.device, dialog.roi):  # every hint shown whole, not cut off
        hint = edit.placeholderText()
        assert hint and edit.width() > edit.fontMetrics().horizontalAdvance(hint) + 4, hint
    dialog.hide()
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


def test_run_dialog_offers_to_continue_an_interrupted_run(window, openhand, tmp_path, qtbot):
    """A killed run's parts beside the result file, of the same video, checkpoint and settings: the app asks
    whether to continue it (and says how far it got). Cancel starts nothing; "Start again" runs with resume off,
    and the finished run removes the parts it superseded."""
    from PySide6 import QtWidgets

    from core_model.network import STCNet, STCNetConfig, save_checkpoint
    from core_model.pipeline import parts as run_parts
    from core_model.results import file_sha256
    from viewer.runs import CONTINUE_DIALOG

    clip = write_clip(tmp_path / "clip.avi", n=14)
    output = tmp_path / "run.npz"
    checkpoint = save_checkpoint(tmp_path / "ck.pt", STCNet(STCNetConfig.from_preset("lite", input_size=64, frames=4),
                                                            openhand, imagenet_weights=None))
    settings = RunSettings(clip, output, checkpoint=checkpoint, roi=(10, 10, 100, 100), hand_model="openhand",
                           batch=1)
    assert window.runs.continue_or_restart(settings) is settings  # nothing to continue: no question
    killed = tmp_path / ".run.0123456789abcdef.parts"
    killed.mkdir()
    (killed / "run.json").write_text(json.dumps({
        "format": run_parts.FORMAT, "version": run_parts.VERSION, "key": "killed", "output": str(output.resolve()),
        "source": run_parts.source_identity(clip), "model": {"checkpoint_sha256": file_sha256(checkpoint)},
        "settings": {"roi": [10, 10, 100, 100], "batch": 1, "device": "cpu", "refine": None},
        "progress": {"stage": "infer", "windows_done": 3, "windows_total": 6}}))
    asked = []

    def answer(button: str) -> None:
        boxes = [w for w in QtWidgets.QApplication.topLevelWidgets()
                 if w.objectName() == CONTINUE_DIALOG and w.isVisible()]
        if not boxes:
            QtCore.QTimer.singleShot(20, lambda: answer(button))
            return
        asked.append(boxes[0].text())
        next(b for b in boxes[0].buttons() if b.text().replace("&", "") == button).click()

    for button, resume in (("Cancel", None), ("Continue", True), ("Start again", False)):
        QtCore.QTimer.singleShot(0, lambda button=button: answer(button))
        chosen = window.runs.continue_or_restart(settings)
        assert (chosen.resume if chosen is not None else None) is resume, button
    assert len(asked) == 3 and "3 of 6 windows of the model were finished" in asked[0]
    assert window.runs.continue_or_restart(RunSettings(clip, output, checkpoint=checkpoint, hand_model="openhand",
                                                       batch=1)) is not None  # another region: no question
    window.runs.start(chosen, small_model(openhand))
    qtbot.waitUntil(lambda: window.job_runner.worker is None, timeout=60000)
    assert window.last_error == "" and output.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.pt", "clip.avi", "run.npz"]  # superseded parts gone
