"""The video frame with the crop box and the projected hands (keypoints, mesh points, or nothing), drawn by
core_model.figures.overlay, the same function that writes the overlay mp4."""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from core_model.figures.overlay import OVERLAY_MODES, draw_overlay
from viewer.session import Session

EMPTY_HINT = ("No file open.\n\nOpen a video or a result file with File ▸ Open (Ctrl+O),\n"
              "or drop one onto this window.")


def to_qimage(image: np.ndarray) -> QtGui.QImage:
    """An RGB uint8 [H, W, 3] array as a QImage that owns a copy of the pixels."""
    image = np.ascontiguousarray(image)
    h, w = image.shape[:2]
    return QtGui.QImage(image.data, w, h, 3 * w, QtGui.QImage.Format.Format_RGB888).copy()


class FrameView(QtWidgets.QWidget):
    """Paints one image scaled to fit, keeping its aspect; a text when there is none."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.image: QtGui.QImage | None = None
        self.text = EMPTY_HINT
        self.setMinimumSize(160, 120)

    def set_image(self, image: QtGui.QImage | None, text: str = "") -> None:
        self.image, self.text = image, text
        self.update()

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:  # noqa: N802 (Qt's name)
        painter = QtGui.QPainter(self)
        painter.fillRect(self.rect(), QtGui.QColor(32, 32, 32))
        if self.image is not None:
            size = self.image.size().scaled(self.size(), QtCore.Qt.AspectRatioMode.KeepAspectRatio)
            target = QtCore.QRect(QtCore.QPoint(0, 0), size)
            target.moveCenter(self.rect().center())
            painter.setRenderHint(QtGui.QPainter.RenderHint.SmoothPixmapTransform)
            painter.drawImage(target, self.image)
        if self.text:
            painter.setPen(QtGui.QColor(230, 230, 230))
            painter.drawText(self.rect().adjusted(8, 8, -8, -8),
                             QtCore.Qt.AlignmentFlag.AlignCenter | QtCore.Qt.TextFlag.TextWordWrap, self.text)
        painter.end()


class VideoPanel(QtWidgets.QWidget):
    def __init__(self, session: Session, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.view = FrameView(self)
        self.mode = QtWidgets.QComboBox(self)
        self.mode.addItems(OVERLAY_MODES)
        self.mode.setToolTip("What to draw over the frame: the hands' keypoints, their mesh points, or nothing")
        self.box = QtWidgets.QCheckBox("crop box", self)
        self.box.setChecked(True)
        bar = QtWidgets.QHBoxLayout()
        bar.addWidget(QtWidgets.QLabel("Overlay", self))
        bar.addWidget(self.mode)
        bar.addWidget(self.box)
        bar.addStretch(1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(bar)
        layout.addWidget(self.view, 1)
        self.mode.currentTextChanged.connect(lambda _: self.show_frame(session.frame))
        self.box.toggled.connect(lambda _: self.show_frame(session.frame))
        session.frame_changed.connect(self.show_frame)
        session.frames_updated.connect(self._on_frames_updated)

    def _on_frames_updated(self, frames: np.ndarray) -> None:
        if self.session.frame in frames:
            self.show_frame(self.session.frame)

    def show_frame(self, frame: int) -> None:
        if not self.isVisible() and self.view.image is not None:
            return
        session = self.session
        image = session.read_frame(frame)
        loaded = session.primary
        if image is None:
            if loaded is None:
                self.view.set_image(None, EMPTY_HINT)
            else:
                self.view.set_image(None, f"frame {frame}: no video open (File ▸ Open video shows the frames "
                                          "under the hands)")
            return
        text = ""
        if loaded is not None and frame < loaded.result.num_frames:
            if loaded.shows(frame):
                image = draw_overlay(image, loaded.result, frame, self.mode.currentText(), self.box.isChecked())
            else:
                text = "not reconstructed yet"
        self.view.set_image(to_qimage(image), text)

    def snapshot(self) -> QtGui.QImage:
        return self.view.grab().toImage()
