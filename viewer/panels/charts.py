"""Per-frame charts of every loaded result, overlaid to compare methods (paper Fig. 7): acceleration error
against ground truth when one is known (else acceleration magnitude) and penetration depth, both from
core_model.figures.series. A cursor marks the current frame; clicking a chart or dragging the cursor seeks.

Why the curves are kept rather than redrawn: each loaded result owns one PlotDataItem per chart for as long as it
is loaded, and an update only hands new values to it (``setData``), and only for a result whose values can have
changed (another result object, other finished frames, other ground truth). Clearing the plots and building new
items on every update cost the GUI thread tens of milliseconds per streamed batch (new items, legend layout,
a full re-layout of both plots). Items are created or removed only when the number of results changes (or a
result gains or loses its refinement).

A result carrying the test-time refinement's arrays (``result.refined``) has a second, dashed curve of its colour
in each chart, "<label> (refined)", computed by the same series functions from the refined arrays; frames the
refinement did not touch are gaps in it.

While a run streams in, the curves are recomputed at most every ``REFRESH_MS``: each recomputation covers the
whole sequence, and doing it per finished batch would load the GUI thread for nothing the eye can see.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from core_model.figures.accel import LINE_COLOURS
from core_model.figures.series import FrameSeries, acceleration_series, ground_truth_keypoints, penetration_series
from core_model.results import Reconstruction
from viewer.panels.graphics import batch_scene_updates
from viewer.session import LoadedResult, Session

REFRESH_MS = 300
EMPTY_TEXT = "no result open"
AXIS_WIDTH = 52  # pixels for the value axis: its label and ticks up to four digits
MIN_SPAN = 0.5  # mm or mm/frame²: the smallest value range a chart zooms to
EMPTY_FRAMES = 100  # the frame range behind the (hidden) axis when nothing says how long the sequence is
LEGEND_COLUMNS = 4  # legend entries per row above the charts; more results wrap to a second row
CACHED = QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache


def refined_view(result: Reconstruction) -> Reconstruction | None:
    """``result`` with the refinement's hands in place of the network's (what the series functions read: keypoints,
    vertices, inside, depth; ``valid`` only where a hand was refined), None without refined arrays. No copies."""
    refined = result.refined
    if not refined:
        return None
    valid = result.valid & np.isfinite(refined["keypoints"]).all(axis=(-1, -2))
    return dataclasses.replace(result, keypoints=refined["keypoints"], vertices=refined["vertices"],
                               inside=refined["inside"], depth=refined["depth"], valid=valid)


def _curve(pen: QtGui.QPen) -> pg.PlotDataItem:
    """A chart's curve, drawn from a pixmap cache when only the cursor moves over it."""
    item = pg.PlotDataItem(pen=pen, connect="finite")
    item.curve.setCacheMode(CACHED)
    return item


@dataclasses.dataclass
class _Curves:
    """The two curves (acceleration, depth) of the result at one position in ``session.results`` (and the two
    dashed ones of its refinement, when it has one), and what their values were computed from: an update with
    the same inputs leaves them alone."""

    accel: pg.PlotDataItem
    depth: pg.PlotDataItem
    colour: str
    loaded: LoadedResult | None = None
    ready: np.ndarray | None = None  # a copy of loaded.ready when computed (it fills in place while a run streams)
    gt: np.ndarray | None = None
    series: tuple[FrameSeries, FrameSeries] | None = None
    refined: tuple[pg.PlotDataItem, pg.PlotDataItem] | None = None  # (accel, depth), dashed
    refined_series: tuple[FrameSeries, FrameSeries] | None = None

    @property
    def items(self) -> list[pg.PlotDataItem]:
        return [self.accel, self.depth, *(self.refined or ())]

    def current(self, loaded: LoadedResult, gt: np.ndarray | None) -> bool:
        return (self.series is not None and self.loaded is loaded and self.gt is gt
                and np.array_equal(self.ready, loaded.ready))


class ChartsPanel(QtWidgets.QWidget):
    def __init__(self, session: Session, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.view = pg.GraphicsLayoutWidget(self)
        self.view.setBackground("w")
        batch_scene_updates(self.view)
        # One legend for both charts (their curves have the same pens), in a row of its own above them: inside a
        # plot it covered the curves, which rise to the top of an auto-ranged chart.
        self.legend = pg.LegendItem(labelTextSize="8pt", colCount=LEGEND_COLUMNS, frame=False, horSpacing=20,
                                    labelTextColor="#303030")
        policy = QtWidgets.QSizePolicy.Policy
        self.legend.setSizePolicy(policy.Maximum, policy.Fixed)  # as wide as its entries, not the row
        self.view.addItem(self.legend, row=0, col=0)
        self.view.ci.layout.setAlignment(self.legend, QtCore.Qt.AlignmentFlag.AlignHCenter)
        self.accel = self.view.addPlot(row=1, col=0)
        self.depth = self.view.addPlot(row=2, col=0)
        self.depth.setXLink(self.accel)
        # Names go in the titles and units on the axes: a long vertical label overlaps its neighbour's.
        self.accel.setTitle("acceleration", size="9pt")
        self.accel.setLabel("left", "mm/frame²")
        self.depth.setTitle("penetration depth", size="9pt")
        self.depth.setLabel("left", "mm")
        self.depth.setLabel("bottom", "frame")
        self.cursors = []
        self.empty_texts = []
        for plot in (self.accel, self.depth):
            plot.showGrid(x=True, y=True, alpha=0.25)
            plot.disableAutoRange(axis="x")  # the frame axis is set to the sequence (_update_axes)
            # A fixed width keeps both plots' frame axes aligned and spares a re-layout (and a second repaint)
            # whenever the tick labels change width as values stream in.
            plot.getAxis("left").setWidth(AXIS_WIDTH)
            # Values near zero (a result equal to its ground truth) keep plain tick labels and a span the eye can
            # read, not "(x1e-15)" in the axis title and noise blown up to fill the plot.
            plot.getAxis("left").enableAutoSIPrefix(False)
            plot.setLimits(minYRange=MIN_SPAN)
            cursor = pg.InfiniteLine(angle=90, movable=True, pen=pg.mkPen("#d62728", width=2))
            cursor.sigDragged.connect(lambda line: session.set_frame(round(line.value())))
            # Moving the cursor must repaint two thin strips, not the plot: an item that reports its moves makes
            # the auto-ranged view box re-range and repaint whole (axes, grid, curves) on every frame of playback.
            cursor.setFlag(cursor.GraphicsItemFlag.ItemSendsGeometryChanges, False)
            plot.addItem(cursor, ignoreBounds=True)
            # What the cursor strips uncover is copied from pixmaps: the grid (drawn by the axes) is otherwise
            # replayed line by line for every strip.
            for axis in ("left", "bottom"):
                plot.getAxis(axis).setCacheMode(CACHED)
            self.cursors.append(cursor)
            self.empty_texts.append(self._empty_text(plot))
        self.view.scene().sigMouseClicked.connect(self._clicked)
        self._curves: list[_Curves] = []
        self._frames = -1  # the frame count the x range was last fitted to
        self._empty: bool | None = None  # whether the "no result open" state is shown
        self.series: list[tuple[FrameSeries, FrameSeries]] = []
        # per result, its refinement's (acceleration, depth) series, None for a result without refinement
        self.refined_series: list[tuple[FrameSeries, FrameSeries] | None] = []
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view)
        self._refresh = QtCore.QTimer(self)
        self._refresh.setSingleShot(True)
        self._refresh.timeout.connect(self.recompute)
        session.results_changed.connect(self.recompute)
        session.frames_updated.connect(lambda _: self._refresh.isActive() or self._refresh.start(REFRESH_MS))
        session.video_changed.connect(self._on_video)
        session.frame_changed.connect(self.show_frame)
        self.recompute()

    @staticmethod
    def _empty_text(plot: pg.PlotItem) -> pg.TextItem:
        """A grey note centred in ``plot``'s view box, in pixels (it stays put whatever the axes show)."""
        text = pg.TextItem(EMPTY_TEXT, color="#808080", anchor=(0.5, 0.5))
        text.setParentItem(plot.vb)
        plot.vb.sigResized.connect(lambda vb: text.setPos(vb.width() / 2, vb.height() / 2))
        return text

    @property
    def curves(self) -> list[pg.PlotDataItem]:
        """Every curve, acceleration then depth for each result in order (then its refinement's, if any)."""
        return [item for c in self._curves for item in c.items]

    def recompute(self) -> None:
        """Bring the curves up to the session's results: new items only for new results, new values only for
        results that changed."""
        self._refresh.stop()  # an update pending from streamed frames is covered by this one
        loaded = self.session.results
        counts = {r.result.num_frames for r in loaded}
        gt = ground_truth_keypoints([r.result for r in loaded]) if len(counts) == 1 else None
        while len(self._curves) > len(loaded):
            gone = self._curves.pop()
            self._set_refined(gone, False)
            self.accel.removeItem(gone.accel)
            self.depth.removeItem(gone.depth)
        while len(self._curves) < len(loaded):
            colour = LINE_COLOURS[len(self._curves) % len(LINE_COLOURS)]
            pen = pg.mkPen(colour, width=1.5)
            self._curves.append(_Curves(_curve(pen), _curve(pen), colour))
            self.accel.addItem(self._curves[-1].accel)
            self.depth.addItem(self._curves[-1].depth)
        for curves, item in zip(self._curves, loaded):
            own_gt = gt if gt is not None and len(gt) == item.result.num_frames else None
            if not curves.current(item, own_gt):
                self._update(curves, item, own_gt)
        self._update_legends(loaded)
        self.series = [c.series for c in self._curves]
        self.refined_series = [c.refined_series for c in self._curves]
        self._update_axes()
        self.show_frame(self.session.frame)

    def _update(self, curves: _Curves, item: LoadedResult, gt: np.ndarray | None) -> None:
        ready = item.ready.copy()
        series = (acceleration_series(item.result, gt, ready), penetration_series(item.result, ready))
        x = np.arange(item.result.num_frames)
        self._set_data((curves.accel, curves.depth), series, curves.series, x)
        refined = refined_view(item.result)
        old = curves.refined_series if curves.refined is not None else None
        self._set_refined(curves, refined is not None)
        refined_series = None
        if refined is not None:
            refined_series = (acceleration_series(refined, gt, ready), penetration_series(refined, ready))
            self._set_data(curves.refined, refined_series, old, x)
        curves.loaded, curves.ready, curves.gt, curves.series = item, ready, gt, series
        curves.refined_series = refined_series

    @staticmethod
    def _set_data(items, series, old, x: np.ndarray) -> None:
        """New values to the (accel, depth) ``items``, each only where it differs from ``old``'s."""
        for curve, s, before in zip(items, series, old or (None, None)):
            same = before is not None and before.values.shape == s.values.shape and np.array_equal(
                before.values, s.values, equal_nan=True)
            if not same:
                curve.setData(x, s.values)

    def _set_refined(self, curves: _Curves, wanted: bool) -> None:
        """Give ``curves`` its dashed refinement curves, or take them away."""
        if wanted == (curves.refined is not None):
            return
        if wanted:
            pen = pg.mkPen(curves.colour, width=1.5, style=QtCore.Qt.PenStyle.DashLine)
            curves.refined = (_curve(pen), _curve(pen))
            self.accel.addItem(curves.refined[0])
            self.depth.addItem(curves.refined[1])
        else:
            self.accel.removeItem(curves.refined[0])
            self.depth.removeItem(curves.refined[1])
            curves.refined, curves.refined_series = None, None

    def _update_legends(self, loaded: list[LoadedResult]) -> None:
        """One legend entry per result (and one per refinement, after its result's), in order, relabelled only when
        a label changed; the samples are the acceleration chart's curves, drawn as the depth chart's are."""
        wanted = []
        for curves, r in zip(self._curves, loaded):
            wanted.append((curves.accel, r.label))
            if curves.refined is not None:
                wanted.append((curves.refined[0], f"{r.label} (refined)"))
        shown = [(sample.item, label.text) for sample, label in self.legend.items]
        if shown != wanted:
            self.legend.clear()
            self.legend.setColumnCount(max(1, min(len(wanted), LEGEND_COLUMNS)))
            for item, label in wanted:
                for curve in (item, *self._partners(item)):
                    curve.opts["name"] = label
                self.legend.addItem(item, label)
            self.legend.setVisible(bool(wanted))

    def _partners(self, accel: pg.PlotDataItem) -> list[pg.PlotDataItem]:
        """The depth chart's curve drawn like ``accel``."""
        for curves in self._curves:
            if accel is curves.accel:
                return [curves.depth]
            if curves.refined is not None and accel is curves.refined[0]:
                return [curves.refined[1]]
        return []

    def legend_labels(self) -> list[str]:
        """The legend's entries, in order (one per curve of each chart)."""
        return [label.text for _, label in self.legend.items]

    def _update_axes(self) -> None:
        empty = not self._curves
        if empty != self._empty:  # only on a change: restyling an axis redraws the whole chart
            self._empty = empty
            for plot, text, cursor in zip((self.accel, self.depth), self.empty_texts, self.cursors):
                text.setVisible(empty)
                cursor.setVisible(not empty)
                # nothing to measure: no value axis, no frame axis and no grid, only the note (an axis of
                # made-up frames 0-100 and values 0-1 said something that was not so)
                for axis in ("left", "bottom"):
                    plot.showAxis(axis, not empty)
                plot.showGrid(x=not empty, y=not empty, alpha=0.25)
            self.legend.setVisible(not empty)
        first = self.series[0][0] if self.series else None
        title, unit = (first.name, first.unit) if first is not None else ("acceleration", "mm/frame²")
        unit = unit.replace("^2", "²")  # core_model writes both spellings; one label, whether frames are in or not
        if self.accel.titleLabel.text != title:
            self.accel.setTitle(title, size="9pt")
        if self.accel.getAxis("left").labelText != unit:
            self.accel.setLabel("left", unit)
        frames = max((r.result.num_frames for r in self.session.results), default=0) or self.session.num_frames
        if empty:
            self._frames = -1
            for plot in (self.accel, self.depth):
                plot.disableAutoRange()
                plot.setYRange(0.0, 1.0, padding=0.05)
            self.accel.setXRange(0, frames - 1 if frames > 1 else EMPTY_FRAMES, padding=0.02)
        elif frames != self._frames:
            # The frame axis spans the whole sequence from the start, so it does not grow as frames stream in.
            self._frames = frames
            self.accel.setXRange(0, max(frames - 1, 1), padding=0.02)
            for plot in (self.accel, self.depth):
                plot.enableAutoRange(axis="y")

    def _on_video(self) -> None:
        if not self._curves:
            self._update_axes()

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
