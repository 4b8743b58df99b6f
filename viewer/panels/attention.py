"""Attention of the window holding the current frame (paper Fig. 11/12): MHSA over both hands' 2T frames and
MHCA per hand (T x T), for a chosen temporal block and head, the current frame's row and column marked; and the
hand-chirality weight maps of the current frame laid over its crop. Darker = higher weight, as in the paper."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtGui, QtWidgets

from core_model.figures.attention import HAND_LABELS, has_attention, window_attention, window_for_frame
from core_model.figures.multiview import crop_image
from viewer.session import Session

MARK = pg.mkPen("#d62728", width=1.5)


def _heat_lut(colour: tuple[int, int, int]) -> np.ndarray:
    """White to ``colour``: darker means a higher weight."""
    ramp = np.linspace(0.0, 1.0, 256)[:, None]
    return (255 * (1 - ramp) + np.array(colour) * ramp).astype(np.uint8)


BLUES = _heat_lut((8, 48, 107))
# Over a crop: transparent where the weight is 0, opaque dark blue at the maximum, so the crop shows through.
OVERLAY = np.concatenate([np.tile(np.array([[8, 48, 107]], np.uint8), (256, 1)),
                          np.linspace(0, 220, 256).astype(np.uint8)[:, None]], axis=1)


class _MapView:
    """One heatmap in a ViewBox (row 0 at the top), with marker lines."""

    def __init__(self, layout: pg.GraphicsLayoutWidget, row: int, col: int, title: str, lut: np.ndarray = BLUES
                 ) -> None:
        self.plot = layout.addPlot(row=row, col=col)
        self.plot.setTitle(title, size="8pt")
        self.lut = lut
        self.plot.setAspectLocked(True)
        self.plot.invertY(True)
        self.plot.hideAxis("left")
        self.plot.hideAxis("bottom")
        self.image = pg.ImageItem(axisOrder="row-major")
        self.plot.addItem(self.image)
        # One curve of segment pairs for all marker lines, updated in place: adding and removing pyqtgraph items
        # on every frame change cost the GUI thread tens of milliseconds. Segments span the map, not the view.
        self.marks = pg.PlotCurveItem(pen=MARK, connect="pairs")
        self.plot.addItem(self.marks)

    def show(self, data: np.ndarray | None, marks: tuple[int, ...] = ()) -> None:
        if data is None:
            self.image.clear()
            marks = ()
        else:
            self.image.setImage(data, levels=(0.0, max(float(np.nanmax(data)), 1e-6)), lut=self.lut)
        if not marks:
            self.marks.setVisible(False)
            return
        rows, cols = data.shape[:2]
        x, y = [], []
        for m in marks:
            x += [0.0, float(cols), m + 0.5, m + 0.5]
            y += [m + 0.5, m + 0.5, 0.0, float(rows)]
        self.marks.setData(np.array(x), np.array(y))
        self.marks.setVisible(True)


class AttentionPanel(QtWidgets.QWidget):
    def __init__(self, session: Session, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.block = QtWidgets.QComboBox(self)
        self.head = QtWidgets.QComboBox(self)
        self.info = QtWidgets.QLabel(self)
        bar = QtWidgets.QHBoxLayout()
        for widget in (QtWidgets.QLabel("Block", self), self.block, QtWidgets.QLabel("Head", self), self.head):
            bar.addWidget(widget)
        bar.addWidget(self.info, 1)
        self.view = pg.GraphicsLayoutWidget(self)
        self.view.setBackground("w")
        self.mhsa = _MapView(self.view, 0, 0, "MHSA 2T×2T (right, left)")
        self.mhca = [_MapView(self.view, 0, 1 + h, f"MHCA {HAND_LABELS[h]} T×T") for h in range(2)]
        self.chirality = []
        for h in range(2):
            view = _MapView(self.view, 1, 1 + h, f"chirality {HAND_LABELS[h]}", OVERLAY)
            view.crop = pg.ImageItem(axisOrder="row-major")
            view.plot.addItem(view.crop)
            view.crop.setZValue(-1)
            self.chirality.append(view)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(bar)
        layout.addWidget(self.view, 1)
        self.block.currentIndexChanged.connect(lambda _: self.show_frame(session.frame))
        self.head.currentIndexChanged.connect(lambda _: self.show_frame(session.frame))
        session.results_changed.connect(self._on_results)
        session.frame_changed.connect(self.show_frame)
        session.frames_updated.connect(lambda frames: session.frame in frames and self.show_frame(session.frame))
        self._on_results()

    def _on_results(self) -> None:
        loaded = self.session.primary
        blocks = heads = 0
        if loaded is not None and has_attention(loaded.result):
            _, blocks, heads = loaded.result.mhsa_attention.shape[:3]
        for combo, count in ((self.block, blocks), (self.head, heads)):
            if combo.count() != count:
                combo.blockSignals(True)
                combo.clear()
                combo.addItems([str(i + 1) for i in range(count)])
                combo.blockSignals(False)
        self.show_frame(self.session.frame)

    def show_frame(self, frame: int) -> None:
        if not self.isVisible() and self.mhsa.image.image is not None:
            return
        loaded = self.session.primary
        if loaded is None:
            self.info.setText("no result open")
            for view in [self.mhsa, *self.mhca, *self.chirality]:
                view.show(None)
            return
        result = loaded.result
        window = window_for_frame(result, frame) if self.block.count() else None
        if window is None:
            self.mhsa.show(None)
            for view in self.mhca:
                view.show(None)
            self.info.setText(f"frame {frame}: no attention maps" + (" yet (they arrive when the run ends)"
                                                                    if not loaded.ready.all() else ""))
        else:
            maps = window_attention(result, window, self.block.currentIndex())
            head, offset = self.head.currentIndex(), frame - maps.start
            self.mhsa.show(maps.mhsa[head], (offset, offset + maps.length))
            for h, view in enumerate(self.mhca):
                view.show(maps.mhca[h, head] if maps.mhca is not None else None, (offset,))
            self.info.setText(f"window {window}: frames {maps.start}–{maps.stop - 1}, frame {frame} marked")
        self._show_chirality(frame)

    def _show_chirality(self, frame: int) -> None:
        loaded = self.session.primary
        ok = loaded.shows(frame) and np.isfinite(loaded.result.chirality_maps[frame]).all()
        bbox = loaded.result.bbox[frame]
        image = self.session.read_frame(frame) if ok and np.isfinite(bbox).all() else None
        crop = crop_image(image, bbox) if image is not None else None
        for h, view in enumerate(self.chirality):
            if not ok:
                view.show(None)
                view.crop.clear()
                continue
            weights = loaded.result.chirality_maps[frame, h]
            side = crop.shape[0] if crop is not None else weights.shape[0]
            view.show(weights)
            view.image.setRect(0, 0, side, side)
            if crop is not None:
                view.crop.setImage(crop, levels=(0, 255))
                view.crop.setRect(0, 0, side, side)
            else:
                view.crop.clear()

    def snapshot(self) -> QtGui.QImage:
        return self.grab().toImage()
