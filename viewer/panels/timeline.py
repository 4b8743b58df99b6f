"""Frame slider, play/pause at the video's fps times a speed, step, loop and the frame counter.

Playback advances one frame per timer tick, every frame drawn: when drawing takes longer than a tick, the rate
drops rather than frames being skipped, and ``achieved_fps`` says what the viewer really delivered.
"""

from __future__ import annotations

import time

from PySide6 import QtCore, QtGui, QtWidgets

from viewer.session import Session

SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0)


class _JumpToClick(QtWidgets.QProxyStyle):
    """The slider style of the app's style, except that a left click on the track sets the value under the mouse
    (and goes on as a drag from there): ``SH_Slider_AbsoluteSetButtons``, Qt's own behaviour for the buttons it
    names. Most styles name none, or the middle button; a left click then steps a page (10 frames)."""

    def styleHint(self, hint, option=None, widget=None, returnData=None) -> int:  # noqa: N802 (Qt's name)
        if hint == QtWidgets.QStyle.StyleHint.SH_Slider_AbsoluteSetButtons:
            return QtCore.Qt.MouseButton.LeftButton.value
        return super().styleHint(hint, option, widget, returnData)


class FrameSlider(QtWidgets.QSlider):
    """A horizontal slider whose track, clicked, goes to the frame under the mouse."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(QtCore.Qt.Orientation.Horizontal, parent)
        self._style = _JumpToClick(self.style().name())  # a style of the same kind, owned here
        self._style.setParent(self)
        self.setStyle(self._style)

    def value_at(self, x: float) -> int:
        """The value a click at ``x`` pixels (widget coordinates) sets: the one whose handle is centred there, as
        QSlider computes it."""
        option = QtWidgets.QStyleOptionSlider()
        self.initStyleOption(option)
        control = QtWidgets.QStyle.ComplexControl.CC_Slider
        groove = self.style().subControlRect(control, option, QtWidgets.QStyle.SubControl.SC_SliderGroove, self)
        handle = self.style().subControlRect(control, option, QtWidgets.QStyle.SubControl.SC_SliderHandle, self)
        span = max(groove.width() - handle.width(), 1)
        position = int(x) - (handle.width() - 1) // 2 - groove.x()
        return QtWidgets.QStyle.sliderValueFromPosition(self.minimum(), self.maximum(), position, span,
                                                        option.upsideDown)


class TimelinePanel(QtWidgets.QWidget):
    playing_changed = QtCore.Signal(bool)

    def __init__(self, session: Session, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.timer = QtCore.QTimer(self)
        self.timer.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(self._tick)
        self._played = (0, 0.0)  # frames shown and start time of the current playback
        self.slider = FrameSlider(self)
        self.slider.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)  # keys belong to the window's shortcuts
        style = self.style()
        icons = QtWidgets.QStyle.StandardPixmap
        self.first = self._button(style.standardIcon(icons.SP_MediaSkipBackward), "First frame (Home)",
                                  lambda: session.set_frame(0))
        self.back = self._button(style.standardIcon(icons.SP_MediaSeekBackward),
                                 "Previous frame (Left; Shift+Left: 10 back)", lambda: self.step(-1))
        self.play = self._button(style.standardIcon(icons.SP_MediaPlay), "Play / pause (Space)", self.toggle)
        self.forward = self._button(style.standardIcon(icons.SP_MediaSeekForward),
                                    "Next frame (Right; Shift+Right: 10 forward)", lambda: self.step(1))
        self.last = self._button(style.standardIcon(icons.SP_MediaSkipForward), "Last frame (End)",
                                 lambda: session.set_frame(session.num_frames - 1))
        self.loop = QtWidgets.QCheckBox("loop", self)
        self.speed = QtWidgets.QComboBox(self)
        self.speed.addItems([f"{s:g}x" for s in SPEEDS])
        self.speed.setCurrentText("1x")
        self.speed.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
        self.counter = QtWidgets.QLabel(self)
        # A fixed size: a label whose size can change re-lays out the dock and the main window on every new text.
        self.counter.setFixedSize(130, self.counter.sizeHint().height())
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Preferred, QtWidgets.QSizePolicy.Policy.Fixed)
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        for widget in (self.first, self.back, self.play, self.forward, self.last):
            layout.addWidget(widget)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.counter)
        layout.addWidget(self.loop)
        layout.addWidget(self.speed)
        self.slider.valueChanged.connect(session.set_frame)
        self.speed.currentIndexChanged.connect(lambda _: self.playing and self._restart_timer())
        session.frame_changed.connect(self._on_frame)
        session.results_changed.connect(self._on_range)
        session.video_changed.connect(self._on_range)
        self._on_range()

    def _button(self, icon: QtGui.QIcon, tip: str, slot) -> QtWidgets.QToolButton:
        button = QtWidgets.QToolButton(self)
        button.setIcon(icon)
        button.setToolTip(tip)
        button.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
        button.clicked.connect(slot)
        return button

    def _on_range(self) -> None:
        n = self.session.num_frames
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(n - 1, 0))
        self.slider.blockSignals(False)
        self._on_frame(self.session.frame)

    def _on_frame(self, frame: int) -> None:
        self.slider.blockSignals(True)
        self.slider.setValue(frame)
        self.slider.blockSignals(False)
        n = self.session.num_frames
        self.counter.setText(f"frame {frame} / {max(n - 1, 0)}" if n else "no frames")

    @property
    def speed_factor(self) -> float:
        return SPEEDS[self.speed.currentIndex()]

    @property
    def playing(self) -> bool:
        return self.timer.isActive()

    def step(self, delta: int) -> None:
        self.session.set_frame(self.session.frame + delta)

    def toggle(self) -> None:
        self.pause() if self.playing else self.start()

    def start(self) -> None:
        if self.session.num_frames < 2:
            return
        if self.session.frame >= self.session.num_frames - 1 and not self.loop.isChecked():
            self.session.set_frame(0)
        self._played = (0, time.perf_counter())
        self._restart_timer()
        self.play.setIcon(self.style().standardIcon(QtWidgets.QStyle.StandardPixmap.SP_MediaPause))
        self.playing_changed.emit(True)

    def pause(self) -> None:
        self.timer.stop()
        self.play.setIcon(self.style().standardIcon(QtWidgets.QStyle.StandardPixmap.SP_MediaPlay))
        self.playing_changed.emit(False)

    def _restart_timer(self) -> None:
        """Start (or, while playing, re-time) the tick at the video's fps times the speed."""
        self.timer.start(max(1, round(1000.0 / (self.session.fps * self.speed_factor))))

    def _tick(self) -> None:
        n = self.session.num_frames
        following = self.session.frame + 1
        if following >= n:
            if not self.loop.isChecked():
                self.pause()
                return
            following = 0
        self.session.set_frame(following)
        self._played = (self._played[0] + 1, self._played[1])

    @property
    def achieved_fps(self) -> float:
        """Frames shown per second since playback last started."""
        shown, started = self._played
        elapsed = time.perf_counter() - started
        return shown / elapsed if shown and elapsed > 0 else 0.0

    def snapshot(self) -> QtGui.QImage:
        return self.grab().toImage()
