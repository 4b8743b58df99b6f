"""Attention of the window holding the current frame (paper Fig. 11/12): MHSA over both hands' 2T frames and
MHCA per hand (T x T), for a chosen temporal block and head, the current frame's row and column marked; and the
hand-chirality weight maps of the current frame laid over its crop. Darker = higher weight, as in the paper."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtGui, QtWidgets

from core_model.figures.attention import HAND_LABELS, has_attention, window_attention, window_for_frame
from core_model.figures.multiview import crop_image
from viewer.panels.graphics import batch_scene_updates
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
    """One heatmap in a ViewBox (row 0 at the top), with marker lines.

    Why the view is ranged by hand: with auto-range on, every change of the image or of the marks re-ranged the
    view at paint time, which dirtied the scene again and cost a second repaint (and window composition) per frame.
    The range is set when the map's extent changes; playback within a window only moves the marks."""

    def __init__(self, layout: pg.GraphicsLayoutWidget, row: int, col: int, title: str, lut: np.ndarray = BLUES
                 ) -> None:
        self.plot = layout.addPlot(row=row, col=col)
        self.plot.setTitle(title, size="8pt")
        self.lut = lut
        self.plot.setAspectLocked(True)
        self.plot.invertY(True)
        self.plot.hideAxis("left")
        self.plot.hideAxis("bottom")
        self.plot.vb.disableAutoRange()
        self.image = pg.ImageItem(axisOrder="row-major")
        self.plot.addItem(self.image)
        # One curve of segment pairs for all marker lines, updated in place: adding and removing pyqtgraph items
        # on every frame change cost the GUI thread tens of milliseconds. Segments span the map, not the view.
        self.marks = pg.PlotCurveItem(pen=MARK, connect="pairs")
        self.plot.addItem(self.marks, ignoreBounds=True)
        self._extent: tuple[int, int] | None = None  # (rows, cols) the view is ranged to and the image spans
        self._placed: tuple | None = None  # (extent, image shape) the image's rect was set for
        self._marked: tuple[int, ...] = ()

    def show(self, data: np.ndarray | None, marks: tuple[int, ...] = (), side: int | None = None) -> None:
        """Draw ``data`` (None: nothing) over a square of ``side`` (default: its own size), and its marks."""
        if data is None:
            self.image.clear()
            self.set_marks(())
            return
        self.image.setImage(data, levels=(0.0, max(float(np.nanmax(data)), 1e-6)), lut=self.lut)
        extent = (side, side) if side is not None else data.shape[:2]
        if (extent, data.shape[:2]) != self._placed:  # the image's scale depends on both
            self._placed = (extent, data.shape[:2])
            self.image.setRect(0, 0, extent[1], extent[0])
        if extent != self._extent:
            self._extent = extent
            self.plot.vb.setRange(xRange=(0, extent[1]), yRange=(0, extent[0]), padding=0.02)
            self._marked = ()
        self.set_marks(marks)

    def set_marks(self, marks: tuple[int, ...]) -> None:
        """Lines across the map at ``marks`` (row and column ``m``); none when empty."""
        if marks == self._marked and (bool(marks) == self.marks.isVisible()):
            return
        self._marked = marks
        if not marks:
            self.marks.setVisible(False)
            return
        rows, cols = self._extent
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
        self._shown: tuple | None = None  # (result, window, block, head) whose maps are drawn
        self.block = QtWidgets.QComboBox(self)
        self.head = QtWidgets.QComboBox(self)
        self.info = QtWidgets.QLabel(self)
        # Its text must not re-lay out the panel: a new layout re-ranged the maps and cost a second repaint.
        self.info.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Fixed)
        self.info.setToolTip("The red lines mark the current frame's row and column in its window's maps")
        bar = QtWidgets.QHBoxLayout()
        for widget in (QtWidgets.QLabel("Block", self), self.block, QtWidgets.QLabel("Head", self), self.head):
            bar.addWidget(widget)
        bar.addWidget(self.info, 1)
        self.view = pg.GraphicsLayoutWidget(self)
        self.view.setBackground("w")
        batch_scene_updates(self.view)
        self.mhsa = _MapView(self.view, 0, 0, "MHSA 2T×2T (right, left)")
        self.mhca = [_MapView(self.view, 0, 1 + h, f"MHCA {HAND_LABELS[h]} T×T") for h in range(2)]
        self.chirality = []
        for h in range(2):
            view = _MapView(self.view, 1, 1 + h, f"chirality {HAND_LABELS[h]}", OVERLAY)
            view.crop = pg.ImageItem(axisOrder="row-major")
            view.plot.addItem(view.crop)
            view.crop.setZValue(-1)
            view.crop_shape = None  # (crop size, map size) its rect was set for
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
            self._shown = None
            self.info.setText("no result open")
            for view in [self.mhsa, *self.mhca, *self.chirality]:
                view.show(None)
            return
        result = loaded.result
        window = window_for_frame(result, frame) if self.block.count() else None
        if window is None:
            self._shown = None
            self.mhsa.show(None)
            for view in self.mhca:
                view.show(None)
            # short enough for the panel's default width: the label may not widen the panel (see above)
            self.info.setText(f"frame {frame}: " + ("no maps until the run ends" if not loaded.ready.all()
                                                    else "no attention maps"))
        else:
            maps = window_attention(result, window, self.block.currentIndex())
            head, offset = self.head.currentIndex(), frame - maps.start
            shown = (result, window, self.block.currentIndex(), head)
            if self._shown is None or self._shown[0] is not result or self._shown[1:] != shown[1:]:
                # a window's maps are drawn when it becomes current; frames within it only move the marks
                self._shown = shown
                self.mhsa.show(maps.mhsa[head], (offset, offset + maps.length))
                for h, view in enumerate(self.mhca):
                    view.show(maps.mhca[h, head] if maps.mhca is not None else None, (offset,))
            else:
                self.mhsa.set_marks((offset, offset + maps.length))
                for view in self.mhca:
                    view.set_marks((offset,) if view.image.image is not None else ())
            self.info.setText(f"window {window}: frames {maps.start}–{maps.stop - 1}")  # the same for its frames
        self._show_chirality(frame)

    def _show_chirality(self, frame: int) -> None:
        """Each hand's weight map over the crop, both spanning the map's own extent: the crop's size in pixels
        changes from frame to frame, and ranging the view to it re-ranged (and repainted) the panel every frame."""
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
            view.show(weights)
            if crop is None:
                view.crop.clear()
                continue
            view.crop.setImage(crop, autoLevels=False)  # uint8 RGB as it is: no level scaling per frame
            if view.crop_shape != (crop.shape[:2], weights.shape):  # the rect scales the image as it is now
                view.crop_shape = (crop.shape[:2], weights.shape)
                view.crop.setRect(0, 0, weights.shape[1], weights.shape[0])

    def snapshot(self) -> QtGui.QImage:
        return self.grab().toImage()
