"""Attention of the window holding the current frame (paper Fig. 11/12): MHSA over both hands' 2T frames and
MHCA per hand (T x T), for a chosen temporal block and head, the current frame's row and column marked; and the
hand-chirality weight maps of the current frame laid over its crop. Darker = higher weight, as in the paper; the
three attention maps share one scale, shown by the colour bar; their axes are the window's frames (MHSA's: the
right hand's T frames, then the left's, split by a dashed line)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from core_model.figures.attention import HAND_LABELS, has_attention, window_attention, window_for_frame
from core_model.figures.multiview import crop_image
from viewer.panels.graphics import batch_scene_updates
from viewer.session import Session

MARK = pg.mkPen("#d62728", width=1.5)
HALVES = pg.mkPen("#606060", width=1, style=QtCore.Qt.PenStyle.DashLine)  # MHSA: the right | left hand boundary
TITLE = {"size": "9pt", "color": "#202020"}
TEXT = "#303030"  # axes' and the colour bar's labels


def _heat_lut(colour: tuple[int, int, int]) -> np.ndarray:
    """White to ``colour``: darker means a higher weight."""
    ramp = np.linspace(0.0, 1.0, 256)[:, None]
    return (255 * (1 - ramp) + np.array(colour) * ramp).astype(np.uint8)


BLUES = _heat_lut((8, 48, 107))
# Over a crop: transparent where the weight is 0, opaque dark blue at the maximum, so the crop shows through.
OVERLAY = np.concatenate([np.tile(np.array([[8, 48, 107]], np.uint8), (256, 1)),
                          np.linspace(0, 220, 256).astype(np.uint8)[:, None]], axis=1)
CLEAR = np.zeros((256, 4), np.uint8)  # nothing over the crop


class _MapView:
    """One heatmap in a ViewBox (row 0 at the top), with marker lines; with ``axes``, its rows and columns labelled
    (``frame``) and ticked by :meth:`set_ticks`.

    Why the view is ranged by hand: with auto-range on, every change of the image or of the marks re-ranged the
    view at paint time, which dirtied the scene again and cost a second repaint (and window composition) per frame.
    The range is set when the map's extent changes; playback within a window only moves the marks."""

    def __init__(self, layout: pg.GraphicsLayoutWidget, row: int, col: int, title: str, lut: np.ndarray = BLUES,
                 axes: bool = False, rowspan: int = 1) -> None:
        self.plot = layout.addPlot(row=row, col=col, rowspan=rowspan)
        self.plot.setTitle(title, **TITLE)
        self.lut = lut
        # A picture (the crop under a weight map) keeps its aspect; a matrix with axes fills its plot, so that the
        # axes span the map and nothing else.
        self.plot.setAspectLocked(not axes)
        self._padding = 0.0 if axes else 0.02
        self.plot.invertY(True)
        self.plot.vb.disableAutoRange()
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(False, False)
        for side in ("left", "bottom"):
            if not axes:
                self.plot.hideAxis(side)
                continue
            axis = self.plot.getAxis(side)
            axis.setPen("#909090")  # first: it sets the label's colour too
            axis.setTextPen(TEXT)
            axis.setLabel("frame", **{"color": TEXT, "font-size": "8pt"})
            axis.setStyle(tickFont=_small_font(), tickLength=-4)
        self._ticks: list[tuple[float, str]] | None = None
        self.image = pg.ImageItem(axisOrder="row-major")
        self.plot.addItem(self.image)
        # One curve of segment pairs for all marker lines, updated in place: adding and removing pyqtgraph items
        # on every frame change cost the GUI thread tens of milliseconds. Segments span the map, not the view.
        self.marks = pg.PlotCurveItem(pen=MARK, connect="pairs")
        self.plot.addItem(self.marks, ignoreBounds=True)
        self._extent: tuple[int, int] | None = None  # (rows, cols) the view is ranged to and the image spans
        self._placed: tuple | None = None  # (extent, image shape) the image's rect was set for
        self._marked: tuple[int, ...] = ()

    def set_ticks(self, ticks: list[tuple[float, str]]) -> None:
        """The same (position, text) ticks on both axes (positions in map cells; none: no ticks)."""
        if ticks != self._ticks:
            self._ticks = ticks
            for side in ("left", "bottom"):
                self.plot.getAxis(side).setTicks([ticks, []])

    def show(self, data: np.ndarray | None, marks: tuple[int, ...] = (), side: int | None = None,
             levels: tuple[float, float] | None = None) -> None:
        """Draw ``data`` (None: nothing) over a square of ``side`` (default: its own size) with ``levels`` (white
        to the darkest colour; default 0 to its maximum), and its marks."""
        if data is None:
            self.image.clear()
            self.set_marks(())
            return
        if levels is None:
            levels = (0.0, max(float(np.nanmax(data)), 1e-6))
        self.image.setImage(data, levels=levels, lut=self.lut)
        extent = (side, side) if side is not None else data.shape[:2]
        if (extent, data.shape[:2]) != self._placed:  # the image's scale depends on both
            self._placed = (extent, data.shape[:2])
            self.image.setRect(0, 0, extent[1], extent[0])
        if extent != self._extent:
            self._extent = extent
            self.plot.vb.setRange(xRange=(0, extent[1]), yRange=(0, extent[0]), padding=self._padding)
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


def _small_font() -> QtGui.QFont:
    font = QtGui.QFont()
    font.setPointSizeF(7.5)
    return font


def mhsa_ticks(frames: int) -> list[tuple[float, str]]:
    """MHSA's axes: the right hand's ``frames`` tokens, then the left's; each half named at its middle."""
    return [(frames / 2, "right"), (frames * 1.5, "left")]


def window_ticks(start: int, stop: int) -> list[tuple[float, str]]:
    """A T x T map's axes: the window's first, middle and last frame numbers, at their cells' middles."""
    length = stop - start
    offsets = sorted({0, (length - 1) // 2, length - 1})
    return [(o + 0.5, str(start + o)) for o in offsets]


class AttentionPanel(QtWidgets.QWidget):
    def __init__(self, session: Session, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self._shown: tuple | None = None  # (result, window, block, head) whose maps are drawn
        self._axes_shown: bool | None = None  # whether the attention maps' axes and colour bar are shown
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
        # Three columns of square maps and no empty cell: the attention maps above, the crop and each hand's
        # weights over it below; the colour bar to the right of the attention maps.
        self.mhsa = _MapView(self.view, 0, 0, "MHSA, both hands", axes=True)
        self.halves = pg.PlotCurveItem(pen=HALVES, connect="pairs")  # where the right hand's tokens end
        self.mhsa.plot.addItem(self.halves, ignoreBounds=True)
        self.mhca = [_MapView(self.view, 0, 1 + h, f"MHCA {HAND_LABELS[h]}", axes=True) for h in range(2)]
        # One scale for the three attention maps (0 to the window's largest weight), read off this bar.
        self.colour_bar = pg.ColorBarItem(values=(0.0, 1.0), width=10, interactive=False, colorMapMenu=False,
                                          colorMap=pg.ColorMap([0.0, 1.0], [BLUES[0], BLUES[-1]]))
        self.colour_bar.axis.enableAutoSIPrefix(False)
        self.colour_bar.axis.setTextPen(TEXT)
        self.colour_bar.axis.setLabel("attention weight", **{"color": TEXT, "font-size": "8pt"})
        self.colour_bar.axis.setStyle(tickFont=_small_font())
        self.view.addItem(self.colour_bar, row=0, col=3)
        self.crop = _MapView(self.view, 1, 0, "crop", CLEAR)  # the crop alone (its map is never seen)
        self.chirality = [_MapView(self.view, 1, 1 + h, f"chirality {HAND_LABELS[h]}", OVERLAY) for h in range(2)]
        for view in (self.crop, *self.chirality):
            view.crop = pg.ImageItem(axisOrder="row-major")
            view.plot.addItem(view.crop)
            view.crop.setZValue(-1)
            view.crop_shape = None  # (crop size, map size) its rect was set for
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
            for view in [self.mhsa, *self.mhca, *self.chirality, self.crop]:
                view.show(None)
                getattr(view, "crop", view.image).clear()
            self._clear_axes()
            return
        result = loaded.result
        window = window_for_frame(result, frame) if self.block.count() else None
        if window is None:
            self._shown = None
            self.mhsa.show(None)
            for view in self.mhca:
                view.show(None)
            self._clear_axes()
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
                stack = [maps.mhsa[head]] + ([maps.mhca[h, head] for h in range(2)] if maps.mhca is not None else [])
                levels = (0.0, max(max(float(np.nanmax(m)) for m in stack), 1e-6))
                self.colour_bar.setLevels(levels)
                self.mhsa.show(maps.mhsa[head], (offset, offset + maps.length), levels=levels)
                self._show_halves(maps.length)
                for h, view in enumerate(self.mhca):
                    view.show(maps.mhca[h, head] if maps.mhca is not None else None, (offset,), levels=levels)
                    view.set_ticks(window_ticks(maps.start, maps.stop))
            else:
                self.mhsa.set_marks((offset, offset + maps.length))
                for view in self.mhca:
                    view.set_marks((offset,) if view.image.image is not None else ())
            self.info.setText(f"window {window}: frames {maps.start}–{maps.stop - 1}")  # the same for its frames
        self._show_chirality(frame)

    def _clear_axes(self) -> None:
        """No maps: no ticks, no halves, no axes and no colour bar (a scale of nothing)."""
        self.halves.setData(np.zeros(0), np.zeros(0))
        for view in (self.mhsa, *self.mhca):
            view.set_ticks([])
        self._show_axes(False)

    def _show_axes(self, shown: bool) -> None:
        if shown == self._axes_shown:  # only on a change: showing an axis lays the panel out again
            return
        self._axes_shown = shown
        for view in (self.mhsa, *self.mhca):
            for side in ("left", "bottom"):
                view.plot.showAxis(side, shown)
        self.colour_bar.setVisible(shown)

    def _show_halves(self, frames: int) -> None:
        """The boundary between the right hand's ``frames`` tokens and the left's, across MHSA, and its ticks."""
        self._show_axes(True)
        side = float(2 * frames)
        self.halves.setData(np.array([0.0, side, frames, frames]), np.array([frames, frames, 0.0, side]))
        self.mhsa.set_ticks(mhsa_ticks(frames))

    def _show_chirality(self, frame: int) -> None:
        """Each hand's weight map over the crop, both spanning the map's own extent: the crop's size in pixels
        changes from frame to frame, and ranging the view to it re-ranged (and repainted) the panel every frame."""
        loaded = self.session.primary
        ok = loaded.shows(frame) and np.isfinite(loaded.result.chirality_maps[frame]).all()
        bbox = loaded.result.bbox[frame]
        image = self.session.read_frame(frame) if ok and np.isfinite(bbox).all() else None
        crop = crop_image(image, bbox) if image is not None else None
        for h, view in enumerate((*self.chirality, self.crop)):
            if not ok:
                view.show(None)
                view.crop.clear()
                continue
            weights = loaded.result.chirality_maps[frame, h % 2]  # the crop's own view: its extent only
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
