"""Per-frame charts of every loaded result, overlaid to compare methods (paper Fig. 7): acceleration error
against ground truth when one is known (else acceleration magnitude) and penetration depth, both from
core_model.figures.series. A cursor marks the current frame; clicking a chart or dragging the cursor seeks.

While a run streams in, the curves are recomputed at most every ``REFRESH_MS``: each recomputation covers the
whole sequence, and doing it per finished batch would load the GUI thread for nothing the eye can see.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from core_model.figures.accel import LINE_COLOURS
from core_model.figures.series import FrameSeries, acceleration_series, ground_truth_keypoints, penetration_series
from viewer.session import Session

REFRESH_MS = 300


class ChartsPanel(QtWidgets.QWidget):
    def __init__(self, session: Session, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.view = pg.GraphicsLayoutWidget(self)
        self.view.setBackground("w")
        self.accel = self.view.addPlot(row=0, col=0)
        self.depth = self.view.addPlot(row=1, col=0)
        self.depth.setXLink(self.accel)
        # Names go in the titles and units on the axes: a long vertical label overlaps its neighbour's.
        self.depth.setTitle("penetration depth", size="9pt")
        self.depth.setLabel("left", "mm")
        self.depth.setLabel("bottom", "frame")
        self.cursors = []
        for plot in (self.accel, self.depth):
            plot.showGrid(x=True, y=True, alpha=0.25)
            plot.addLegend(offset=(-10, 5), labelTextSize="8pt")
            cursor = pg.InfiniteLine(angle=90, movable=True, pen=pg.mkPen("#d62728", width=2))
            cursor.sigDragged.connect(lambda line: session.set_frame(round(line.value())))
            plot.addItem(cursor)
            self.cursors.append(cursor)
        self.view.scene().sigMouseClicked.connect(self._clicked)
        self.curves: list[pg.PlotDataItem] = []
        self.series: list[tuple[FrameSeries, FrameSeries]] = []
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view)
        self._refresh = QtCore.QTimer(self)
        self._refresh.setSingleShot(True)
        self._refresh.timeout.connect(self.recompute)
        session.results_changed.connect(self.recompute)
        session.frames_updated.connect(lambda _: self._refresh.isActive() or self._refresh.start(REFRESH_MS))
        session.frame_changed.connect(self.show_frame)
        self.recompute()

    def recompute(self) -> None:
        for plot in (self.accel, self.depth):
            plot.clear()  # also empties the legend
            plot.addItem(self.cursors[0] if plot is self.accel else self.cursors[1])
        loaded = self.session.results
        counts = {r.result.num_frames for r in loaded}
        gt = ground_truth_keypoints([r.result for r in loaded]) if len(counts) == 1 else None
        self.series = []
        for i, item in enumerate(loaded):
            own_gt = gt if gt is not None and len(gt) == item.result.num_frames else None
            series = (acceleration_series(item.result, own_gt, item.ready), penetration_series(item.result, item.ready))
            self.series.append(series)
            pen = pg.mkPen(LINE_COLOURS[i % len(LINE_COLOURS)], width=1.5)
            x = np.arange(item.result.num_frames)
            for plot, s in zip((self.accel, self.depth), series):
                plot.plot(x, s.values, pen=pen, name=item.label, connect="finite")
        if self.series:
            first = self.series[0][0]
            self.accel.setTitle(first.name, size="9pt")
            self.accel.setLabel("left", first.unit)
        else:
            self.accel.setTitle("acceleration", size="9pt")
            self.accel.setLabel("left", "")
        self.show_frame(self.session.frame)

    def show_frame(self, frame: int) -> None:
        for cursor in self.cursors:
            cursor.setValue(frame)

    def _clicked(self, event) -> None:
        if event.button() != QtCore.Qt.MouseButton.LeftButton:
            return
        for plot in (self.accel, self.depth):
            if plot.sceneBoundingRect().contains(event.scenePos()):
                x = plot.vb.mapSceneToView(event.scenePos()).x()
                self.session.set_frame(round(x))
                return

    def snapshot(self) -> QtGui.QImage:
        return self.view.grab().toImage()
